// The operator console. Plain JavaScript, no build step: views are
// rendered from the console's JSON (/console/api/*), and the live list is
// fed by server-sent events (/console/api/live) — no polling anywhere.
'use strict';

const I18N = {
  zh: {
    console: '运行控制台', nav_live: '实时', nav_overdue: '逾期', nav_dead: '死信', nav_health: '机构健康', nav_stats: '月度统计',
    search_hint: '消息编号、案件、当事人或信用代码', live_state: '实时连接', sign_out: '退出', sign_in: '登录',
    signin_hint: '使用运维令牌登录', token: '运维令牌', operator_name: '值班人员', bad_token: '令牌无效',
    live_title: '实时消息流', live_empty: '等待消息……', connected: '已连接', disconnected: '未连接',
    time: '时间', id: '消息编号', type: '类型', sender: '发送方', recipients: '接收方', case: '案件', status: '状态', rule: '规则',
    version: '规则版本', trace: '消息轨迹', trace_id: '追踪编号', total: '总耗时', routing: '路由决定', reasons: '理由',
    attempts: '投递记录', attempt: '第几次', http: '应答', ms: '耗时', error: '错误', hops: '经过环节', offset: '相对时间',
    service: '服务', case_title: '案件', parties: '参与机构', next: '下一步由谁办理', open_clocks: '进行中的时限', timeline: '时间线',
    clock: '时限', owner: '应办机构', supervisors: '监督机构', due: '截止', left: '剩余', late: '已逾期', basis: '依据',
    overdue_title: '逾期事项', all_orgs: '全部机构', lateness: '逾期时长', overdue_empty: '没有逾期事项',
    dead_title: '死信', dead_empty: '没有死信', org: '机构', reason: '原因', payload: '报文', replay: '重新投递',
    replaying: '已重放，投递中……', replayed_ok: '已投递', replay_failed: '重放失败', seq: '序号',
    health_title: '机构健康', channel: '通道', delivered_n: '已投递', failed_n: '失败尝试', dead_now: '待处理死信',
    failure_rate: '失败率', p50: '中位延迟', p95: '95%延迟', last_failure: '最近失败', sent_n: '发出',
    stats_title: '月度统计', month: '月份', referrals: '移送（发出 / 收到）', decisions: '立案决定（按时 / 逾期）',
    search_title: '搜索结果', messages: '消息', cases: '案件', party_hits: '当事人', no_results: '没有结果', name: '名称',
    uscc: '统一社会信用代码', opened: '立案', who_acts: '应办', none_open: '没有进行中的时限', reminder: '提醒',
    min: '分钟', hour: '小时', day: '天', hub_time: '演练时钟', replayed_by: '重放人', back: '返回', natural: '自然人',
    f_referrals_sent: '发出移送', f_referrals_received: '收到移送', f_decisions_on_time: '按时决定', f_decisions_late: '逾期决定',
    f_handoffs_sent: '涉刑移送发出', f_handoffs_received: '涉刑移送收到', f_police_decisions: '公安决定', f_overdue: '逾期',
    f_alerts: '监督提醒', f_messages: '消息数',
  },
  en: {
    console: 'Operator console', nav_live: 'Live', nav_overdue: 'Overdue', nav_dead: 'Dead letters', nav_health: 'Health', nav_stats: 'Statistics',
    search_hint: 'Message id, case, party or credit code', live_state: 'Live connection', sign_out: 'Sign out', sign_in: 'Sign in',
    signin_hint: 'Sign in with the operator token', token: 'Operator token', operator_name: 'Operator on duty', bad_token: 'Unknown token',
    live_title: 'Messages, live', live_empty: 'Waiting for messages…', connected: 'connected', disconnected: 'disconnected',
    time: 'Time', id: 'Message id', type: 'Type', sender: 'Sender', recipients: 'Recipients', case: 'Case', status: 'Status', rule: 'Rule',
    version: 'Rule set', trace: 'Message trace', trace_id: 'Trace id', total: 'Total', routing: 'Routing decision', reasons: 'Reasons',
    attempts: 'Delivery attempts', attempt: 'Attempt', http: 'Answer', ms: 'Took', error: 'Error', hops: 'Hops', offset: 'At',
    service: 'Service', case_title: 'Case', parties: 'Parties', next: 'Who must act next', open_clocks: 'Open clocks', timeline: 'Timeline',
    clock: 'Clock', owner: 'Owes it', supervisors: 'Supervisors', due: 'Due', left: 'Left', late: 'Late by', basis: 'Basis',
    overdue_title: 'Overdue', all_orgs: 'All organisations', lateness: 'Late by', overdue_empty: 'Nothing is overdue',
    dead_title: 'Dead letters', dead_empty: 'No dead letters', org: 'Organisation', reason: 'Reason', payload: 'Payload', replay: 'Replay',
    replaying: 'Replayed, delivering…', replayed_ok: 'Delivered', replay_failed: 'Replay failed', seq: 'Seq',
    health_title: 'Health per organisation', channel: 'Channel', delivered_n: 'Delivered', failed_n: 'Failed attempts', dead_now: 'Dead now',
    failure_rate: 'Failure rate', p50: 'p50 latency', p95: 'p95 latency', last_failure: 'Last failure', sent_n: 'Sent',
    stats_title: 'Monthly statistics', month: 'Month', referrals: 'Referrals (sent / received)', decisions: 'Decisions (on time / late)',
    search_title: 'Search', messages: 'Messages', cases: 'Cases', party_hits: 'Parties', no_results: 'Nothing found', name: 'Name',
    uscc: 'Credit code', opened: 'Opened', who_acts: 'To act', none_open: 'No open clocks', reminder: 'Reminder',
    min: 'min', hour: 'h', day: 'd', hub_time: 'Drill clock', replayed_by: 'Replayed by', back: 'Back', natural: 'natural person',
    f_referrals_sent: 'Referrals sent', f_referrals_received: 'Referrals received', f_decisions_on_time: 'Decisions on time', f_decisions_late: 'Decisions late',
    f_handoffs_sent: 'Hand-offs sent', f_handoffs_received: 'Hand-offs received', f_police_decisions: 'Police decisions', f_overdue: 'Overdue',
    f_alerts: 'Alerts', f_messages: 'Messages',
  },
};

const S = {
  lang: localStorage.getItem('xj-lang') || 'zh',
  me: null, orgs: {}, msgs: new Map(), order: [], source: null, now: null, pending: {}, replays: {},
};

function t(k) { return (I18N[S.lang] || I18N.zh)[k] || I18N.zh[k] || k; }
function pick(table, k) { const v = table[k]; return v ? v[S.lang === 'en' ? 1 : 0] : (k || ''); }
const typeName = (k) => pick(TYPES, k);
const stepName = (k) => pick(STEPS, k);
const clockName = (k) => pick(CLOCKS, k);
function orgName(id) { return (S.orgs[id] && S.orgs[id].name) || (id === 'hub' ? (S.lang === 'en' ? 'the hub' : '衔接平台') : id || ''); }
function span(minutes) {
  const m = Math.max(0, Math.round(minutes));
  const d = Math.floor(m / 1440), h = Math.floor((m % 1440) / 60), r = m % 60;
  const parts = [];
  if (d) parts.push(`${d}${t('day')}`);
  if (h) parts.push(`${h}${t('hour')}`);
  if (!d && r) parts.push(`${r}${t('min')}`);
  return parts.join(S.lang === 'en' ? ' ' : '') || `0${t('min')}`;
}
const badge = (state) => `<span class="badge ${esc(state)}" data-state="${esc(state)}">${esc(stepName(state))}</span>`;
const caseLink = (c) => (c ? `<a href="#/case/${encodeURIComponent(c)}" class="case-link">${esc(c)}</a>` : '');
const msgLink = (id) => `<a href="#/msg/${encodeURIComponent(id)}" class="msg-link">${esc(id)}</a>`;

async function api(path, opts = {}) {
  const r = await fetch(path, { credentials: 'same-origin', headers: { 'content-type': 'application/json' }, ...opts });
  if (r.status === 401) { showSignin(); throw new Error('unauthorized'); }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.message || `HTTP ${r.status}`);
  return body;
}

// ---- sign-in -------------------------------------------------------------

function applyLang() {
  document.documentElement.lang = S.lang === 'en' ? 'en' : 'zh-CN';
  document.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll('[data-i18n-placeholder]').forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
  document.querySelectorAll('[data-i18n-title]').forEach((el) => { el.title = t(el.dataset.i18nTitle); });
  for (const id of ['lang', 'lang2']) document.getElementById(id).textContent = S.lang === 'en' ? '中文' : 'English';
}

function showSignin() {
  S.me = null;
  if (S.source) { S.source.close(); S.source = null; }
  document.getElementById('top').hidden = true;
  document.getElementById('view').hidden = true;
  document.getElementById('signin').hidden = false;
}

async function signIn(ev) {
  ev.preventDefault();
  const err = document.getElementById('signin-error');
  err.hidden = true;
  const r = await fetch('/console/api/session', {
    method: 'POST', credentials: 'same-origin', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: document.getElementById('token').value, name: document.getElementById('opname').value }),
  });
  if (!r.ok) { err.textContent = t('bad_token'); err.hidden = false; return; }
  document.getElementById('token').value = '';
  await start();
}

async function start() {
  let ov;
  try { ov = await api('/console/api/overview'); } catch (e) { return; }
  S.me = ov.operator;
  S.now = ov.now;
  S.orgs = Object.fromEntries(ov.orgs.map((o) => [o.id, o]));
  S.msgs = new Map();
  S.order = [];
  for (const m of ov.recent.slice().reverse()) remember(m);
  document.getElementById('who').textContent = S.me;
  S.manual = ov.clock_mode === 'manual';
  hubTime(ov.now);
  document.getElementById('signin').hidden = true;
  document.getElementById('top').hidden = false;
  document.getElementById('view').hidden = false;
  connect();
  if (!location.hash || location.hash === '#/') location.hash = '#/live'; else route();
}

/// The hub's time in the header, in drills (manual clock) only.
function hubTime(now) {
  if (!now) return;
  S.now = now;
  document.getElementById('hubtime').textContent = S.manual ? `${t('hub_time')} ${when(now)}` : '';
}

// ---- live stream ---------------------------------------------------------

function remember(m) {
  const key = `${m.sender}/${m.id}`;
  if (!S.msgs.has(key)) S.order.push(key);
  S.msgs.set(key, m);
  if (S.order.length > 1000) S.msgs.delete(S.order.shift());
  return key;
}

function connect() {
  if (S.source) S.source.close();
  const es = new EventSource('/console/api/live');
  const dot = document.getElementById('conn');
  es.onopen = () => { dot.className = 'conn on'; dot.dataset.state = 'on'; dot.title = t('connected'); };
  es.onerror = () => { dot.className = 'conn off'; dot.dataset.state = 'off'; dot.title = t('disconnected'); };
  es.addEventListener('step', (e) => onStep(JSON.parse(e.data)));
  es.addEventListener('resync', () => start());
  S.source = es;
}

function onStep(ev) {
  const m = ev.message;
  const key = remember(m);
  const view = S.view || {};
  if (view.name === 'live') upsertRow(key, true);
  if (view.name === 'msg' && view.arg === m.id) soon('msg', renderMsg);
  if (view.name === 'case' && view.arg === m.case) soon('case', renderCase);
  if (view.name === 'overdue' && m.type === 'supervision_alert') soon('overdue', renderOverdue);
  if (view.name === 'health' && ['delivered', 'attempt', 'dead', 'replayed'].includes(ev.step)) soon('health', renderHealth);
  if (view.name === 'dead') {
    if (ev.step === 'dead') soon('dead', renderDead);
    for (const [seq, r] of Object.entries(S.replays)) {
      if (r.id === m.id && m.deliveries && m.deliveries[r.org] === 'delivered') {
        r.done = true;
        const cell = document.querySelector(`[data-replay="${seq}"]`);
        if (cell) cell.innerHTML = `${badge('delivered')} <span class="muted">${esc(t('replayed_by'))}: ${esc(r.by)}</span>`;
      }
    }
  }
}

/// Re-renders a view at most every 400 ms, on what the stream reports.
function soon(name, fn) {
  if (S.pending[name]) return;
  S.pending[name] = setTimeout(() => { S.pending[name] = null; if ((S.view || {}).name === name) fn(S.view.arg); }, 400);
}

// ---- views ----------------------------------------------------------------

const VIEW = () => document.getElementById('view');

function route() {
  if (!S.me) return;
  const [path] = location.hash.split('?');
  const [, name = 'live', ...rest] = path.split('/');
  const arg = decodeURIComponent(rest.join('/'));
  S.view = { name, arg };
  document.querySelectorAll('#nav a').forEach((a) => a.classList.toggle('active', a.dataset.view === name));
  const views = { live: renderLive, msg: renderMsg, case: renderCase, overdue: renderOverdue, dead: renderDead, health: renderHealth, stats: renderStats, search: renderSearch };
  (views[name] || renderLive)(arg);
}

function liveRow(m) {
  const to = (m.recipients || []).map(orgName).join('、');
  return `<td class="when">${esc(when(m.last_at))}</td><td>${msgLink(m.id)}</td><td>${esc(typeName(m.type))}</td>`
    + `<td>${esc(orgName(m.sender))}</td><td>${esc(to)}</td><td>${caseLink(m.case)}</td>`
    + `<td>${badge(m.status)}</td><td><code>${esc(m.rule || '')}</code></td>`;
}

function renderLive() {
  const rows = S.order.slice().reverse().map((k) => S.msgs.get(k)).filter(Boolean);
  VIEW().innerHTML = `<h1 class="view-title">${esc(t('live_title'))} <span class="muted" id="live-count">${rows.length}</span></h1>
    <div class="card scroll"><table id="live"><thead><tr><th>${esc(t('time'))}</th><th>${esc(t('id'))}</th><th>${esc(t('type'))}</th>
    <th>${esc(t('sender'))}</th><th>${esc(t('recipients'))}</th><th>${esc(t('case'))}</th><th>${esc(t('status'))}</th><th>${esc(t('rule'))}</th></tr></thead>
    <tbody>${rows.map((m) => `<tr class="row" data-key="${esc(`${m.sender}/${m.id}`)}" data-id="${esc(m.id)}">${liveRow(m)}</tr>`).join('')}</tbody></table>
    ${rows.length ? '' : `<p class="empty" id="live-empty">${esc(t('live_empty'))}</p>`}</div>`;
  VIEW().querySelector('tbody').addEventListener('click', (e) => {
    const tr = e.target.closest('tr.row');
    if (tr && !e.target.closest('a')) location.hash = `#/msg/${encodeURIComponent(tr.dataset.id)}`;
  });
}

function upsertRow(key, fresh) {
  const tbody = document.querySelector('#live tbody');
  if (!tbody) return;
  const m = S.msgs.get(key);
  let tr = [...tbody.rows].find((r) => r.dataset.key === key);
  if (!tr) {
    tr = document.createElement('tr');
    tr.className = 'row';
    tr.dataset.key = key;
    tr.dataset.id = m.id;
    tbody.prepend(tr);
    const empty = document.getElementById('live-empty');
    if (empty) empty.remove();
    document.getElementById('live-count').textContent = tbody.rows.length;
  }
  tr.innerHTML = liveRow(m);
  if (fresh) { tr.classList.remove('fresh'); void tr.offsetWidth; tr.classList.add('fresh'); }
}

function hopDetail(h) {
  const bits = [];
  if (h.recipient) bits.push(`→ ${esc(orgName(h.recipient))}`);
  else if (h.recipients && h.recipients.length) bits.push(`→ ${h.recipients.map((r) => esc(orgName(r))).join('、')}`);
  if (h.rule) bits.push(`<code>${esc(h.rule)}</code>`);
  if (h.attempt) bits.push(`${esc(t('attempt'))} ${esc(h.attempt)}`);
  if (h.status) bits.push(`HTTP ${esc(h.status)}`);
  if (h.ms != null) bits.push(`${esc(h.ms)} ms`);
  if (h.error) bits.push(`<span class="reason">${esc(h.error)}</span>`);
  if (h.replayed_by) bits.push(`${esc(t('replayed_by'))}: ${esc(h.replayed_by)}`);
  return bits.join(' · ');
}

function hopChart(hops, total) {
  const w = 1240, rowH = 22, left = 150, width = w - left - 70;
  const scale = (ms) => left + (total > 0 ? (ms / total) * width : 0);
  const bars = hops.map((h, i) => {
    const x = scale(h.offset_ms), y = 6 + i * rowH, bw = Math.max(6, h.ms ? (h.ms / Math.max(total, 1)) * width : 6);
    return `<text x="4" y="${y + 13}">${esc(stepName(h.step))} · ${esc(h.service)}</text>`
      + `<rect class="hopbar ${esc(h.step)}" x="${x}" y="${y}" width="${bw}" height="14" rx="2"></rect>`
      + `<text x="${Math.min(x + bw + 6, w - 60)}" y="${y + 12}">+${esc(h.offset_ms)} ms</text>`;
  }).join('');
  return `<svg class="chart" id="hop-chart" viewBox="0 0 ${w} ${hops.length * rowH + 10}" width="100%">${bars}</svg>`;
}

async function renderMsg(id) {
  let tr;
  try { tr = await api(`/console/api/messages/${encodeURIComponent(id)}/trace`); } catch (e) {
    VIEW().innerHTML = `<p class="empty">${esc(e.message)}</p>`; return;
  }
  const r = tr.routing || {};
  VIEW().innerHTML = `<h1 class="view-title">${esc(t('trace'))} <code>${esc(tr.id)}</code> <span class="muted">${esc(typeName(tr.type))}</span></h1>
  <div class="grid2">
    <div class="card"><dl class="kv">
      <dt>${esc(t('sender'))}</dt><dd>${esc(orgName(tr.sender))} <code>${esc(tr.sender)}</code></dd>
      <dt>${esc(t('case'))}</dt><dd>${caseLink(tr.case)}</dd>
      <dt>${esc(t('trace_id'))}</dt><dd><code>${esc(tr.trace_id)}</code></dd>
      <dt>${esc(t('total'))}</dt><dd>${esc(tr.total_ms)} ms</dd></dl></div>
    <div class="card" id="routing"><h2>${esc(t('routing'))}</h2><dl class="kv">
      <dt>${esc(t('rule'))}</dt><dd><code id="rule">${esc(r.rule || '')}</code> ${r.step === 'unplaced' ? badge('unplaced') : ''}</dd>
      <dt>${esc(t('version'))}</dt><dd><code>${esc(r.rule_version || '')}</code></dd>
      <dt>${esc(t('recipients'))}</dt><dd>${(r.recipients || []).map((x) => esc(orgName(x))).join('、')}</dd>
      <dt>${esc(t('reasons'))}</dt><dd>${(r.reasons || []).map(esc).join('<br>')}</dd></dl></div>
  </div>
  <div class="card"><h2>${esc(t('hops'))}</h2>${hopChart(tr.hops, tr.total_ms)}
    <ol class="timeline" id="hops">${tr.hops.map((h) => `<li class="${esc(h.step)}" data-step="${esc(h.step)}"><span class="when">+${esc(h.offset_ms)} ms</span>
      <b>${esc(stepName(h.step))}</b> <span class="muted">${esc(h.service)} · ${esc(when(h.at))}</span><br>${hopDetail(h)}</li>`).join('')}</ol></div>
  <div class="card"><h2>${esc(t('attempts'))}</h2><table id="attempts"><thead><tr><th>${esc(t('time'))}</th><th>${esc(t('recipients'))}</th><th>${esc(t('attempt'))}</th>
    <th>${esc(t('status'))}</th><th>${esc(t('http'))}</th><th class="num">${esc(t('ms'))}</th><th>${esc(t('error'))}</th></tr></thead><tbody>
    ${tr.attempts.map((a) => `<tr><td>${esc(when(a.at))}</td><td>${esc(orgName(a.recipient))}</td><td>${esc(a.attempt)}</td><td>${badge(a.step)}</td>
      <td>${esc(a.status || '')}</td><td class="num">${esc(a.ms == null ? '' : a.ms)}</td><td class="reason">${esc(a.error || '')}</td></tr>`).join('')}</tbody></table></div>`;
}

async function renderCase(id) {
  let c;
  try { c = await api(`/console/api/cases/${encodeURIComponent(id)}`); } catch (e) {
    VIEW().innerHTML = `<p class="empty">${esc(e.message)}</p>`; return;
  }
  hubTime(c.now);
  const item = (e) => {
    if (e.kind === 'message') {
      return `<li class="message"><span class="when">${esc(when(e.at))}</span><b>${esc(typeName(e.type))}</b> ${msgLink(e.id)}
        · ${esc(e.sender_name)} → ${e.recipient_names.map(esc).join('、')} ${e.rule ? `· <code>${esc(e.rule)}</code>` : ''}
        ${e.decision ? `· ${esc(e.decision)}` : ''}${e.alert ? ` · ${esc(e.alert)}` : ''}</li>`;
    }
    const k = e.clock;
    return `<li class="${esc(e.kind)}"><span class="when">${esc(when(e.at))}</span><b>${esc(stepName(e.kind))}</b> ${esc(clockName(k.name))}
      · ${esc(t('owner'))}: ${esc(k.owner_name)} · ${esc(t('due'))} ${esc(when(k.due))} ${badge(k.status)}</li>`;
  };
  VIEW().innerHTML = `<h1 class="view-title">${esc(t('case_title'))} <code>${esc(c.case)}</code> ${badge(c.status)}</h1>
  <div class="grid2">
    <div class="card next" id="next"><h2>${esc(t('next'))}</h2>${c.next.length ? c.next.map((n) => `<div class="who">${esc(n.name)}</div>
      <div class="muted">${esc(clockName(n.clock))} · ${esc(t('due'))} ${esc(when(n.due))} ${n.overdue ? badge('overdue') : ''}</div>`).join('')
      : `<p class="muted">${esc(t('none_open'))}</p>`}</div>
    <div class="card"><dl class="kv"><dt>${esc(t('parties'))}</dt><dd>${c.parties.map((p) => esc(p.name)).join('、')}</dd>
      <dt>${esc(t('opened'))}</dt><dd>${esc(when(c.opened_at))}</dd></dl></div>
  </div>
  <div class="card"><h2>${esc(t('open_clocks'))}</h2><table id="clocks"><thead><tr><th>${esc(t('clock'))}</th><th>${esc(t('owner'))}</th><th>${esc(t('due'))}</th>
    <th>${esc(t('left'))} / ${esc(t('late'))}</th><th>${esc(t('status'))}</th><th>${esc(t('basis'))}</th></tr></thead><tbody>
    ${c.open_clocks.map((k) => `<tr><td>${esc(clockName(k.name))}</td><td>${esc(k.owner_name)}</td><td>${esc(when(k.due))}</td>
      <td>${k.overdue ? `<span class="reason">${esc(span(k.late_minutes))}</span>` : esc(span(k.left_minutes))}</td><td>${badge(k.status)}</td>
      <td class="muted">${esc(k.basis)}</td></tr>`).join('')}</tbody></table></div>
  <div class="card"><h2>${esc(t('timeline'))}</h2><ol class="timeline" id="case-timeline">${c.timeline.map(item).join('')}</ol></div>`;
}

async function renderOverdue(org) {
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  org = q.get('org') || '';
  const b = await api(`/console/api/overdue${org ? `?org=${encodeURIComponent(org)}` : ''}`);
  hubTime(b.now);
  const opts = Object.values(S.orgs).map((o) => `<option value="${esc(o.id)}" ${o.id === org ? 'selected' : ''}>${esc(o.name)}</option>`).join('');
  VIEW().innerHTML = `<h1 class="view-title">${esc(t('overdue_title'))} <span class="muted" id="overdue-count">${b.items.length}</span></h1>
  <div class="toolbar"><label>${esc(t('org'))} <select id="overdue-org"><option value="">${esc(t('all_orgs'))}</option>${opts}</select></label>
    <span class="muted">${esc(when(b.now))}</span></div>
  <div class="card scroll"><table id="overdue"><thead><tr><th>${esc(t('lateness'))}</th><th>${esc(t('case'))}</th><th>${esc(t('clock'))}</th>
    <th>${esc(t('owner'))}</th><th>${esc(t('supervisors'))}</th><th>${esc(t('due'))}</th><th>${esc(t('basis'))}</th></tr></thead><tbody>
    ${b.items.map((k) => `<tr data-case="${esc(k.case)}" data-owner="${esc(k.owner)}"><td class="reason">${esc(span(k.late_minutes))}</td><td>${caseLink(k.case)}</td>
      <td>${esc(clockName(k.name))} ${badge(k.status)}</td><td class="owner"><b>${esc(k.owner_name)}</b></td><td>${k.supervisor_names.map(esc).join('、')}</td>
      <td>${esc(when(k.due))}</td><td class="muted">${esc(k.basis)}</td></tr>`).join('')}</tbody></table>
    ${b.items.length ? '' : `<p class="empty">${esc(t('overdue_empty'))}</p>`}</div>`;
  document.getElementById('overdue-org').addEventListener('change', (e) => {
    location.hash = e.target.value ? `#/overdue?org=${encodeURIComponent(e.target.value)}` : '#/overdue';
  });
}

async function renderDead() {
  const d = await api('/console/api/dead');
  const items = d.dead_letters.slice().reverse();
  VIEW().innerHTML = `<h1 class="view-title">${esc(t('dead_title'))} <span class="muted" id="dead-count">${items.length}</span></h1>
  <div class="card scroll"><table id="dead"><thead><tr><th>${esc(t('seq'))}</th><th>${esc(t('time'))}</th><th>${esc(t('org'))}</th><th>${esc(t('id'))}</th>
    <th>${esc(t('case'))}</th><th>${esc(t('reason'))}</th><th class="num">${esc(t('attempt'))}</th><th>${esc(t('payload'))}</th><th></th></tr></thead><tbody>
    ${items.map((x) => `<tr data-seq="${esc(x.seq)}" data-id="${esc(x.id)}"><td>${esc(x.seq)}</td><td>${esc(when(x.at))}</td><td>${esc(x.org_name || x.org)}</td>
      <td>${msgLink(x.id)}</td><td>${caseLink(x.case)}</td><td class="reason">${esc(x.reason)}</td><td class="num">${esc(x.attempts)}</td>
      <td><details><summary>JSON</summary><pre>${esc(JSON.stringify(x.payload, null, 2))}</pre></details></td>
      <td data-replay="${esc(x.seq)}"><button type="button" class="replay" data-seq="${esc(x.seq)}" data-org="${esc(x.org)}" data-id="${esc(x.id)}">${esc(t('replay'))}</button></td></tr>`).join('')}
    </tbody></table>${items.length ? '' : `<p class="empty">${esc(t('dead_empty'))}</p>`}</div>`;
  VIEW().querySelectorAll('button.replay').forEach((b) => b.addEventListener('click', () => replay(b)));
}

async function replay(button) {
  const { seq, org, id } = button.dataset;
  button.disabled = true;
  const cell = document.querySelector(`[data-replay="${seq}"]`);
  try {
    const r = await api(`/console/api/dead/${seq}/replay`, { method: 'POST', body: '{}' });
    S.replays[seq] = { id, org, by: r.replayed_by, done: false };
    cell.innerHTML = `${badge('replayed')} <span class="muted">${esc(t('replaying'))} ${esc(t('replayed_by'))}: ${esc(r.replayed_by)}</span>`;
    // The delivery may already have been reported before this answer.
    const m = S.msgs.get([...S.msgs.keys()].find((k) => k.endsWith(`/${id}`)));
    if (m && m.deliveries && m.deliveries[org] === 'delivered' && m.status === 'delivered') onStep({ step: 'delivered', message: m });
  } catch (e) {
    cell.innerHTML = `<span class="reason">${esc(t('replay_failed'))}: ${esc(e.message)}</span>`;
  }
}

async function renderHealth() {
  const h = await api('/console/api/health');
  const pct = (x) => `${(x * 100).toFixed(x > 0 && x < 0.1 ? 1 : 0)}%`;
  VIEW().innerHTML = `<h1 class="view-title">${esc(t('health_title'))}</h1>
  <div class="card scroll"><table id="health"><thead><tr><th>${esc(t('org'))}</th><th>${esc(t('status'))}</th><th>${esc(t('channel'))}</th>
    <th class="num">${esc(t('sent_n'))}</th><th class="num">${esc(t('delivered_n'))}</th><th class="num">${esc(t('failed_n'))}</th>
    <th class="num">${esc(t('dead_now'))}</th><th class="num">${esc(t('failure_rate'))}</th><th class="num">${esc(t('p50'))}</th>
    <th class="num">${esc(t('p95'))}</th><th>${esc(t('last_failure'))}</th></tr></thead><tbody>
    ${h.orgs.map((o) => `<tr data-org="${esc(o.id)}"><td>${esc(o.name)}<br><code class="muted">${esc(o.id)}</code></td><td>${badge(o.health)}</td>
      <td>${esc(o.channel)}${o.format !== 'canonical' ? ` · ${esc(o.format)}` : ''}</td><td class="num">${esc(o.sent)}</td><td class="num">${esc(o.delivered)}</td>
      <td class="num">${esc(o.failed_attempts)}</td><td class="num">${esc(o.dead_now)}</td><td class="num">${pct(o.failure_rate)}</td>
      <td class="num">${o.p50_ms == null ? '' : `${esc(o.p50_ms)} ms`}</td><td class="num">${o.p95_ms == null ? '' : `${esc(o.p95_ms)} ms`}</td>
      <td class="reason">${esc(o.last_failure || '')}${o.last_failure_at ? `<br><span class="muted">${esc(when(o.last_failure_at))}</span>` : ''}</td></tr>`).join('')}
    </tbody></table></div>`;
}

/// Grouped bars: one group per organisation, one bar per series.
function barChart(id, rows, series) {
  const w = 620, h = 230, left = 28, bottom = 62, top = 12;
  const max = Math.max(1, ...rows.flatMap((r) => series.map((s) => r.values[s.key] || 0)));
  const gw = (w - left - 10) / Math.max(rows.length, 1), bw = Math.min(26, (gw - 10) / series.length);
  const y = (v) => top + (h - top - bottom) * (1 - v / max);
  let out = `<svg class="chart" id="${esc(id)}" viewBox="0 0 ${w} ${h}" width="100%">`;
  for (let i = 0; i <= 4; i += 1) {
    const v = Math.round((max * i) / 4);
    out += `<text x="4" y="${y(v) + 4}">${v}</text><line x1="${left}" x2="${w}" y1="${y(v)}" y2="${y(v)}" stroke="#eef1f5"></line>`;
  }
  rows.forEach((r, i) => {
    const gx = left + i * gw + 5;
    series.forEach((s, j) => {
      const v = r.values[s.key] || 0;
      out += `<rect class="${s.cls}" x="${gx + j * bw}" y="${y(v)}" width="${bw - 2}" height="${Math.max(0, h - bottom - y(v))}"><title>${esc(r.label)}: ${v}</title></rect>`;
      if (v) out += `<text x="${gx + j * bw + 2}" y="${y(v) - 3}">${v}</text>`;
    });
    const label = r.label.length > 8 ? `${r.label.slice(0, 8)}…` : r.label;
    out += `<text x="${gx}" y="${h - bottom + 16}" transform="rotate(25 ${gx} ${h - bottom + 16})">${esc(label)}</text>`;
  });
  return `${out}</svg><div class="legend">${series.map((s) => `<span><i class="${s.cls.replace('bar-', '')}"></i>${esc(t(`f_${s.key}`))}</span>`).join('')}</div>`;
}

async function renderStats() {
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  const month = q.get('month');
  const s = await api(`/console/api/stats${month ? `?month=${encodeURIComponent(month)}` : ''}`);
  const rows = Object.entries(s.orgs).map(([id, values]) => ({ id, label: s.names[id] || orgName(id), values }));
  VIEW().innerHTML = `<h1 class="view-title">${esc(t('stats_title'))}</h1>
  <div class="toolbar"><label>${esc(t('month'))} <select id="stats-month">${s.months.slice().reverse().map((m) => `<option ${m === s.month ? 'selected' : ''}>${esc(m)}</option>`).join('')}</select></label></div>
  <div class="grid2">
    <div class="card"><h2>${esc(t('referrals'))}</h2>${barChart('chart-referrals', rows, [{ key: 'referrals_sent', cls: 'bar-a' }, { key: 'referrals_received', cls: 'bar-b' }])}</div>
    <div class="card"><h2>${esc(t('decisions'))}</h2>${barChart('chart-decisions', rows, [{ key: 'decisions_on_time', cls: 'bar-c' }, { key: 'decisions_late', cls: 'bar-d' }, { key: 'overdue', cls: 'bar-b' }])}</div>
  </div>
  <div class="card scroll"><table id="stats"><thead><tr><th>${esc(t('org'))}</th>${s.fields.map((f) => `<th class="num">${esc(t(`f_${f}`))}</th>`).join('')}</tr></thead><tbody>
    ${rows.map((r) => `<tr data-org="${esc(r.id)}"><td>${esc(r.label)}</td>${s.fields.map((f) => `<td class="num">${esc(r.values[f] || 0)}</td>`).join('')}</tr>`).join('')}
  </tbody></table>${rows.length ? '' : `<p class="empty">${esc(t('no_results'))}</p>`}</div>`;
  document.getElementById('stats-month').addEventListener('change', (e) => { location.hash = `#/stats?month=${encodeURIComponent(e.target.value)}`; });
}

async function renderSearch(q) {
  const r = await api(`/console/api/search?q=${encodeURIComponent(q)}`);
  const none = !r.messages.length && !r.cases.length && !r.parties.length;
  VIEW().innerHTML = `<h1 class="view-title">${esc(t('search_title'))} <code>${esc(r.q)}</code></h1>
  ${r.messages.length ? `<div class="card"><h2>${esc(t('messages'))}</h2><table id="search-messages"><tbody>${r.messages.map((m) => `<tr><td>${msgLink(m.id)}</td>
    <td>${esc(typeName(m.type))}</td><td>${esc(orgName(m.sender))}</td><td>${caseLink(m.case)}</td><td>${esc(when(m.at))}</td></tr>`).join('')}</tbody></table></div>` : ''}
  ${r.cases.length ? `<div class="card"><h2>${esc(t('cases'))}</h2><table id="search-cases"><tbody>${r.cases.map((c) => `<tr><td>${caseLink(c.case)}</td><td>${badge(c.status)}</td>
    <td>${c.parties.map(orgName).map(esc).join('、')}</td><td>${esc(when(c.opened_at))}</td></tr>`).join('')}</tbody></table></div>` : ''}
  ${r.parties.length ? `<div class="card"><h2>${esc(t('party_hits'))}</h2><table id="search-parties"><thead><tr><th>${esc(t('name'))}</th><th>${esc(t('uscc'))}</th>
    <th>${esc(t('id'))}</th><th>${esc(t('type'))}</th><th>${esc(t('sender'))}</th><th>${esc(t('case'))}</th></tr></thead><tbody>${r.parties.map((p) => `<tr>
    <td>${esc(p.name)}${p.natural ? ` <span class="muted">(${esc(t('natural'))})</span>` : ''}</td><td><code>${esc(p.uscc || '')}</code></td><td>${msgLink(p.id)}</td>
    <td>${esc(typeName(p.type))}</td><td>${esc(orgName(p.sender))}</td><td>${caseLink(p.case)}</td></tr>`).join('')}</tbody></table></div>` : ''}
  ${none ? `<p class="empty">${esc(t('no_results'))}</p>` : ''}`;
}

// ---- wiring ----------------------------------------------------------------

function toggleLang() {
  S.lang = S.lang === 'en' ? 'zh' : 'en';
  localStorage.setItem('xj-lang', S.lang);
  applyLang();
  if (S.me) route();
}

document.addEventListener('DOMContentLoaded', async () => {
  applyLang();
  document.getElementById('signin-form').addEventListener('submit', signIn);
  document.getElementById('lang').addEventListener('click', toggleLang);
  document.getElementById('lang2').addEventListener('click', toggleLang);
  document.getElementById('signout').addEventListener('click', async () => {
    await fetch('/console/api/session', { method: 'DELETE', credentials: 'same-origin' });
    showSignin();
  });
  document.getElementById('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const q = document.getElementById('search').value.trim();
    if (q) location.hash = `#/search/${encodeURIComponent(q)}`;
  });
  window.addEventListener('hashchange', route);
  const r = await fetch('/console/api/session', { credentials: 'same-origin' });
  if (r.ok) await start(); else showSignin();
});
