// The organisations' workspace (docs/workspace.md). A town clerk, a bureau
// or a procuratorate officer signs in with the organisation's token; every
// view is read from the gateway's own API (/v1/*) with that token, so the
// page shows exactly what the token may read and nothing the hub would
// refuse it. Forms are generated from the message schemas the gateway
// publishes (GET /v1/openapi.json) and sent to POST /v1/messages, whose
// answer — every problem with its JSON pointer — is shown at the field.
'use strict';

const W = {
  token: sessionStorage.getItem('xj-ws-token'),
  me: null, doc: null, cases: [],
};

// What a message received on a case may be answered with.
const ANSWERS = {
  clue_referral: ['referral_reply', 'referral_outcome'],
  case_referral: ['referral_reply', 'referral_outcome'],
  criminal_handoff: ['handoff_receipt', 'police_decision'],
  police_decision: ['reconsideration_request'],
  assistance_request: ['assistance_reply'],
  supervision_notice: ['supervision_reply'],
};
const ANSWER_LABELS = {
  referral_reply: '复函（接收处理情况）', referral_outcome: '反馈办理结果', handoff_receipt: '签收回执',
  police_decision: '立案 / 不予立案决定', reconsideration_request: '申请复议', assistance_reply: '协助答复',
  supervision_reply: '书面回复',
};
// What an organisation may start, and for whom (a supervisor's notices).
const STARTS = ['clue_referral', 'case_referral', 'criminal_handoff', 'info_share', 'assistance_request', 'monthly_report'];
const SUPERVISOR_STARTS = ['supervision_notice'];
// The messages that print as an official letter (GET /v1/messages/{id}/letter).
const LETTERS = new Set(['clue_referral', 'case_referral', 'referral_reply', 'criminal_handoff', 'handoff_receipt', 'police_decision', 'supervision_notice']);
const ROLES = { party: '当事机构', supervisor: '监督', operator: '运维' };
const VIEWS = { overdue: '逾期事项', crime_unreferred: '涉嫌犯罪未移送', disputes: '管辖争议', major_penalties: '重大处罚备案' };

const pick = (table, k) => (table[k] ? table[k][0] : (k || ''));
const typeName = (k) => pick(TYPES, k);
const stepName = (k) => pick(STEPS, k);
const clockName = (k) => pick(CLOCKS, k);
const $ = (id) => document.getElementById(id);
const view = () => $('view');
const badge = (s) => `<span class="badge ${esc(s)}" data-state="${esc(s)}">${esc(stepName(s))}</span>`;
const caseLink = (c) => `<a href="#/case/${encodeURIComponent(c)}" class="case-link">${esc(c)}</a>`;

class ApiError extends Error {
  constructor(status, body) {
    super(body.message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// One call of the gateway's API with the organisation's token.
async function api(path, opts = {}) {
  const headers = { authorization: `Bearer ${W.token}`, ...(opts.headers || {}) };
  const r = await fetch(path, { ...opts, headers, credentials: 'omit' });
  if (r.status === 401) { signOut(); throw new ApiError(401, { message: '令牌无效或已失效' }); }
  if (opts.raw) {
    if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => ({})));
    return r;
  }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

function fail(e) {
  view().innerHTML = `<div class="card"><p class="error" id="view-error">${esc(e.message)}</p></div>`;
}

// ---- sign-in ---------------------------------------------------------------

async function signIn(ev) {
  ev.preventDefault();
  const err = $('signin-error');
  err.hidden = true;
  W.token = $('token').value.trim();
  try {
    await start();
    sessionStorage.setItem('xj-ws-token', W.token);
    $('token').value = '';
  } catch (e) {
    W.token = null;
    err.textContent = e.status === 401 ? '令牌无效' : e.message;
    err.hidden = false;
  }
}

function signOut() {
  W.token = null;
  W.me = null;
  sessionStorage.removeItem('xj-ws-token');
  $('top').hidden = true;
  view().hidden = true;
  $('signin').hidden = false;
}

async function start() {
  const r = await fetch('/v1/me', { headers: { authorization: `Bearer ${W.token}` }, credentials: 'omit' });
  if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => ({})));
  W.me = await r.json();
  $('who').textContent = W.me.operator ? '运维（全部机构）' : `${W.me.name}（${W.me.org}）`;
  $('nav-supervise').hidden = !(W.me.operator || W.me.supervises);
  $('nav-new').hidden = !!W.me.operator || !!W.me.signs;
  $('signin').hidden = true;
  $('top').hidden = false;
  view().hidden = false;
  if (!location.hash || location.hash === '#/') location.hash = '#/inbox'; else route();
}

// ---- views -----------------------------------------------------------------

async function loadCases() {
  const r = await api('/v1/cases?limit=1000');
  W.cases = r.cases;
  return r;
}

function dueText(c) {
  const late = new Date(c.due) < new Date() || c.status === 'overdue';
  return `<span class="${late ? 'error' : ''}">${esc(when(c.due))}</span>`;
}

async function renderInbox() {
  const parts = [];
  if (W.me.deliver === 'pull') {
    const inbox = await api('/v1/inbox?limit=100');
    const rows = inbox.messages.map((m) => {
      let b = {};
      try { b = JSON.parse(m.body); } catch (_) { /* shown as it came */ }
      return `<tr class="delivery" data-id="${esc(b.id)}"><td>${esc(when(b.sent_at))}</td><td>${esc(typeName(b.type))}</td>
        <td>${esc(b.sender)}</td><td>${b.case ? caseLink(b.case) : ''}</td><td>${esc(b.id)}</td>
        <td><button type="button" class="collect" data-cursor="${esc(m.cursor)}">签收</button></td></tr>`;
    }).join('');
    parts.push(`<div class="card"><h2>待签收（本机构无对接系统，投递在此等候签收；签收一条即签收其前的全部）</h2>
      ${rows ? `<table id="deliveries"><tr><th>发送时间</th><th>类型</th><th>发送机构</th><th>案件</th><th>编号</th><th></th></tr>${rows}</table>`
        : '<p class="empty" id="no-deliveries">没有待签收的投递</p>'}</div>`);
  }
  await loadCases();
  const act = W.cases.flatMap((c) => c.act.map((k) => ({ ...k, case: c.case })));
  act.sort((a, b) => a.due.localeCompare(b.due));
  const actRows = act.map((k) => `<tr class="act" data-clock="${esc(k.name)}"><td>${caseLink(k.case)}</td><td>${esc(clockName(k.name))}</td>
    <td>${esc(k.about)}</td><td>${dueText(k)}</td><td>${badge(k.status)}</td><td class="muted">${esc(k.basis)}</td></tr>`).join('');
  parts.push(`<div class="card"><h2>需要本机构办理</h2>${actRows
    ? `<table id="to-act"><tr><th>案件</th><th>时限</th><th>起因消息</th><th>截止</th><th>状态</th><th>依据</th></tr>${actRows}</table>`
    : '<p class="empty">没有需要本机构办理的时限</p>'}</div>`);
  const me = W.me.org;
  const received = W.cases.flatMap((c) => c.messages.filter((m) => m.recipients.includes(me)).map((m) => ({ ...m, case: c.case })));
  received.sort((a, b) => b.at.localeCompare(a.at));
  const recRows = received.slice(0, 100).map((m) => `<tr class="received"><td>${esc(when(m.at))}</td><td>${esc(typeName(m.type))}</td>
    <td>${esc(m.sender)}</td><td>${caseLink(m.case)}</td><td>${esc(m.id)}</td></tr>`).join('');
  if (!W.me.operator) {
    parts.push(`<div class="card"><h2>收到的消息</h2>${recRows
      ? `<table><tr><th>时间</th><th>类型</th><th>发送机构</th><th>案件</th><th>编号</th></tr>${recRows}</table>`
      : '<p class="empty">还没有收到消息</p>'}</div>`);
  }
  view().innerHTML = `<h1 class="view-title">待办</h1>${parts.join('')}`;
  view().querySelectorAll('button.collect').forEach((b) => b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      await api(`/v1/inbox?after=${encodeURIComponent(b.dataset.cursor)}&limit=1`);
      await renderInbox();
    } catch (e) { fail(e); }
  }));
}

async function renderCases() {
  await loadCases();
  const rows = W.cases.map((c) => `<tr class="row case-row" data-case="${esc(c.case)}"><td>${caseLink(c.case)}</td>
    <td>${badge(c.status)}</td><td>${esc(ROLES[c.role] || c.role)}</td><td>${esc(c.parties.join('、'))}</td>
    <td>${c.clocks.map((k) => `${esc(clockName(k.name))} ${dueText(k)}`).join('<br>')}</td><td>${esc(when(c.updated_at))}</td></tr>`).join('');
  view().innerHTML = `<h1 class="view-title">案件</h1><div class="card">${rows
    ? `<table id="cases"><tr><th>案件</th><th>状态</th><th>身份</th><th>参与机构</th><th>进行中的时限</th><th>更新</th></tr>${rows}</table>`
    : '<p class="empty">没有可查看的案件</p>'}</div>`;
}

async function renderSent() {
  await loadCases();
  const me = W.me.org;
  const sent = W.cases.flatMap((c) => c.messages.filter((m) => m.sender === me).map((m) => ({ ...m, case: c.case })));
  sent.sort((a, b) => b.at.localeCompare(a.at));
  const shown = sent.slice(0, 50);
  view().innerHTML = `<h1 class="view-title">已发消息</h1><div class="card">${shown.length
    ? `<table id="sent"><tr><th>时间</th><th>类型</th><th>编号</th><th>案件</th><th>接收机构</th><th>现在在哪里</th></tr>${shown.map((m) => `
      <tr class="sent-row" data-id="${esc(m.id)}"><td>${esc(when(m.at))}</td><td>${esc(typeName(m.type))}</td><td>${esc(m.id)}</td>
      <td>${caseLink(m.case)}</td><td>${esc(m.recipients.join('、'))}</td><td class="where">…</td></tr>`).join('')}</table>`
    : '<p class="empty">还没有发出消息</p>'}</div>`;
  // Where each is: the last step of its trace, as its sender may see it.
  for (const row of view().querySelectorAll('tr.sent-row')) {
    api(`/v1/messages/${encodeURIComponent(row.dataset.id)}/trace`).then((tr) => {
      const hops = tr.hops || [];
      const last = hops[hops.length - 1];
      const d = (last && last.detail) || {};
      const to = d.recipient || (d.recipients || []).join('、');
      row.querySelector('.where').innerHTML = last ? `${badge(last.step)} ${esc(to)} ${esc(when(last.at))}` : '';
    }).catch(() => { row.querySelector('.where').textContent = '—'; });
  }
}

async function renderCase(id) {
  let c;
  try { c = await api(`/v1/cases/${encodeURIComponent(id)}`); } catch (e) {
    if (e.status === 404) {
      view().innerHTML = `<div class="card"><p class="error" id="view-error">没有本机构可查看的案件 ${esc(id)}</p></div>`;
      return;
    }
    throw e;
  }
  const me = W.me.org;
  const msgs = c.messages.map((m) => {
    const answers = (!W.me.operator && m.recipients.includes(me)) ? (ANSWERS[m.type] || []) : [];
    const buttons = answers.map((a) => `<button type="button" class="answer" data-type="${a}" data-to="${esc(m.sender)}"
      data-reply="${esc(m.id)}">${esc(ANSWER_LABELS[a] || typeName(a))}</button>`).join(' ');
    const letter = LETTERS.has(m.type)
      ? `<button type="button" class="link letter" data-id="${esc(m.id)}" data-sender="${esc(m.sender)}">下载公文</button>` : '';
    return `<li class="msg" data-id="${esc(m.id)}"><span class="when">${esc(when(m.at))}</span>
      <b>${esc(typeName(m.type))}</b> ${esc(m.sender)} → ${esc((m.recipients || []).join('、'))} <code>${esc(m.id)}</code>
      ${letter} <div class="summary muted">${esc(summaryText(m.summary))}</div><div class="actions">${buttons}</div></li>`;
  }).join('');
  const clocks = c.clocks.map((k) => `<tr class="clock"><td>${esc(clockName(k.name))}</td><td>${esc(k.owner)}</td>
    <td>${dueText(k)}</td><td>${badge(k.status)}</td><td class="muted">${esc(k.basis)}</td></tr>`).join('');
  view().innerHTML = `<h1 class="view-title">案件 <code id="case-id">${esc(c.case)}</code> ${badge(c.status)}</h1>
    <div class="card"><dl class="kv"><dt>参与机构</dt><dd>${esc((c.parties || []).join('、'))}</dd>
      <dt>立卷</dt><dd>${esc(when(c.opened_at))}</dd></dl></div>
    <div class="card"><h2>时限</h2>${clocks ? `<table id="clocks"><tr><th>时限</th><th>应办机构</th><th>截止</th><th>状态</th><th>依据</th></tr>${clocks}</table>`
      : '<p class="empty">没有时限</p>'}</div>
    <div class="card"><h2>消息</h2><p id="letter-status"></p><ol class="timeline" id="messages">${msgs}</ol></div>
    <div id="form-slot"></div>`;
  view().querySelectorAll('button.answer').forEach((b) => b.addEventListener('click', () => {
    openForm(b.dataset.type, { case: c.case, recipient: b.dataset.to, reply_to: b.dataset.reply });
  }));
  view().querySelectorAll('button.letter').forEach((b) => b.addEventListener('click', () => downloadLetter(b.dataset.id, b.dataset.sender)));
}

function summaryText(s) {
  if (!s || typeof s !== 'object') return '';
  if (s.withheld) return '（敏感内容，不向监督机构显示）';
  return Object.entries(s).filter(([k]) => k !== 'classification')
    .map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join('；');
}

async function downloadLetter(id, sender) {
  const status = $('letter-status');
  let r;
  try {
    r = await api(`/v1/messages/${encodeURIComponent(id)}/letter?sender=${encodeURIComponent(sender)}`, { raw: true });
  } catch (e) {
    status.textContent = `公文无法生成：${e.message}`;
    status.className = 'error';
    return;
  }
  status.textContent = `已下载 ${id} 的公文`;
  status.className = 'muted';
  const blob = await r.blob();
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = `${id}.pdf`;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

async function renderNew() {
  const types = [...STARTS, ...(W.me.supervises ? SUPERVISOR_STARTS : [])];
  view().innerHTML = `<h1 class="view-title">发起</h1><div class="card toolbar">
    <label>类型 <select id="new-type">${types.map((k) => `<option value="${k}">${esc(typeName(k))}</option>`).join('')}</select></label>
    <button type="button" id="new-open">填写</button></div><div id="form-slot"></div>`;
  $('new-open').addEventListener('click', () => openForm($('new-type').value, {}));
}

async function renderSupervise(which) {
  const name = VIEWS[which] ? which : 'overdue';
  const tabs = Object.entries(VIEWS).map(([k, v]) => `<a href="#/supervise/${k}" class="${k === name ? 'active' : ''}" data-board="${k}">${esc(v)}</a>`).join(' · ');
  const v = await api(`/v1/supervision?view=${name}`);
  const rows = v.items.map((i) => `<tr class="board-item" data-case="${esc(i.case)}"><td>${caseLink(i.case)}</td>
    <td>${esc(i.clock ? clockName(i.clock) : (i.status ? stepName(i.status) : ''))}</td><td>${esc(i.owner || (i.parties || []).join('、'))}</td>
    <td>${i.due ? dueText(i) : esc(when(i.opened_at))}</td><td>${i.status ? badge(i.status) : ''}</td></tr>`).join('');
  view().innerHTML = `<h1 class="view-title">监督 <span class="muted">${esc(v.region || '全部县')}</span></h1>
    <div class="card toolbar" id="boards">${tabs}</div>
    <div class="card"><h2>${esc(VIEWS[name])}</h2>${rows
      ? `<table id="board"><tr><th>案件</th><th>事项</th><th>机构</th><th>时间</th><th>状态</th></tr>${rows}</table>`
      : '<p class="empty" id="board-empty">没有</p>'}</div>`;
}

// ---- forms from the JSON Schemas ---------------------------------------------

async function schemas() {
  if (!W.doc) {
    const r = await fetch('/v1/openapi.json', { credentials: 'omit' });
    W.doc = await r.json();
  }
  return W.doc.components.schemas;
}

// The schema at a local reference of the OpenAPI document.
function deref(ref) {
  return ref.replace(/^#\//, '').split('/').reduce((o, k) => (o ? o[k.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined), W.doc);
}

// A schema with its reference followed and its allOf merged: what the form
// shows. Conditions (if/then) are the gateway's to check.
function flat(schema) {
  let s = schema || {};
  let name = '';
  while (s.$ref) {
    name = s.$ref.split('/').pop();
    const { $ref, ...rest } = s;
    s = { ...deref($ref), ...rest };
  }
  if (Array.isArray(s.allOf)) {
    const merged = { ...s, type: 'object', properties: { ...(s.properties || {}) }, required: [...(s.required || [])] };
    delete merged.allOf;
    for (const part of s.allOf) {
      const p = flat(part);
      Object.assign(merged.properties, p.properties || {});
      merged.required.push(...(p.required || []));
    }
    s = merged;
  }
  return { ...s, _name: s._name || name };
}

function kindOf(s) {
  if (s.enum) return 'enum';
  const type = Array.isArray(s.type) ? s.type.find((x) => x !== 'null') : s.type;
  if (type === 'object' && s.properties && s.properties.sha256 && s.properties.size) return 'attachment';
  if (type === 'object' && s.properties) return 'object';
  if (type === 'object') return 'map';
  if (type === 'array') return 'array';
  if (type === 'integer' || type === 'number') return type;
  if (type === 'boolean') return 'boolean';
  if (type === 'string') return s.format === 'date' || s._name === 'date' ? 'date' : (s.format === 'date-time' ? 'datetime' : 'string');
  return 'json';
}

function labelOf(name, s) {
  const d = s.description || '';
  return /[\u4e00-\u9fff]/.test(d) && d.length < 40 ? `${d}（${name}）` : name;
}

// Options named by a description of the form "甲 / 乙 / 丙", one per value.
function optionLabels(s) {
  const parts = (s.description || '').split(' / ');
  return parts.length === s.enum.length ? parts : s.enum.map(() => '');
}

function el(html) {
  const t = document.createElement('template');
  t.innerHTML = html.trim();
  return t.content.firstElementChild;
}

// One field of the form for `schema` at JSON pointer `ptr`.
function field(name, schema, ptr, required) {
  const s = flat(schema);
  const kind = kindOf(s);
  const star = required ? '<span class="req">*</span>' : '';
  const help = s.description && !/[\u4e00-\u9fff]/.test(labelOf(name, s)) ? `<small class="muted">${esc(s.description)}</small>` : '';
  const wrap = (inner) => el(`<div class="field" data-pointer="${esc(ptr)}"><label><span>${esc(labelOf(name, s))}${star}</span>${inner}</label>${help}<div class="field-error" hidden></div></div>`);
  switch (kind) {
    case 'enum': {
      const names = optionLabels(s);
      return wrap(`<select data-kind="enum" data-ptr="${esc(ptr)}"><option value=""></option>${s.enum.map((v, i) => `<option value="${esc(v)}">${esc(v)}${names[i] ? ` ${esc(names[i])}` : ''}</option>`).join('')}</select>`);
    }
    case 'object': {
      const box = el(`<fieldset class="group" data-pointer="${esc(ptr)}"><legend>${esc(labelOf(name, s))}${star}</legend><div class="field-error" hidden></div></fieldset>`);
      const req = new Set(s.required || []);
      for (const [k, sub] of Object.entries(s.properties)) box.appendChild(field(k, sub, `${ptr}/${k}`, req.has(k)));
      box.dataset.kind = 'object';
      return box;
    }
    case 'array': {
      const items = s.items || {};
      const box = el(`<fieldset class="group list" data-pointer="${esc(ptr)}" data-kind="array"><legend>${esc(labelOf(name, s))}${star}</legend>
        <div class="items"></div><button type="button" class="add">添加一项</button><div class="field-error" hidden></div></fieldset>`);
      const list = box.querySelector('.items');
      const add = () => {
        const i = list.children.length;
        const item = field(`${i + 1}`, items, `${ptr}/${i}`, false);
        item.classList.add('item');
        list.appendChild(item);
      };
      box.querySelector('.add').addEventListener('click', add);
      if (required) add();
      return box;
    }
    case 'attachment': {
      const f = wrap(`<input type="file" data-kind="attachment" data-ptr="${esc(ptr)}"><span class="muted uploaded"></span>`);
      const input = f.querySelector('input');
      input.addEventListener('change', async () => {
        const file = input.files[0];
        if (!file) { delete input.dataset.value; return; }
        try {
          const up = await api('/v1/attachments', { method: 'POST', body: await file.arrayBuffer(), headers: { 'content-type': 'application/octet-stream' } });
          input.dataset.value = JSON.stringify({ sha256: up.sha256, size: up.size });
          f.querySelector('.uploaded').textContent = `已上传 ${up.sha256.slice(0, 12)}… ${up.size} 字节`;
        } catch (e) { showError(f, e.message); }
      });
      return f;
    }
    case 'map':
      return wrap(`<textarea data-kind="map" data-ptr="${esc(ptr)}" rows="3" placeholder="每行一项：名称: 数值"></textarea>`);
    case 'json':
      return wrap(`<textarea data-kind="json" data-ptr="${esc(ptr)}" rows="3" placeholder="JSON"></textarea>`);
    case 'boolean':
      return wrap(`<input type="checkbox" data-kind="boolean" data-ptr="${esc(ptr)}">`);
    case 'integer': case 'number':
      return wrap(`<input type="number" step="${kind === 'integer' ? '1' : 'any'}" data-kind="${kind}" data-ptr="${esc(ptr)}">`);
    case 'date':
      return wrap(`<input type="date" data-kind="string" data-ptr="${esc(ptr)}">`);
    case 'datetime':
      return wrap(`<input type="datetime-local" data-kind="datetime" data-ptr="${esc(ptr)}">`);
    default: {
      const long = (s.maxLength || 0) > 200;
      return wrap(long ? `<textarea data-kind="string" data-ptr="${esc(ptr)}" rows="3"></textarea>` : `<input type="text" data-kind="string" data-ptr="${esc(ptr)}">`);
    }
  }
}

// The value an input holds, or undefined when it holds none (left out).
function valueOf(input) {
  const v = input.value;
  switch (input.dataset.kind) {
    case 'boolean': return input.checked ? true : undefined;
    case 'integer': case 'number': return v === '' ? undefined : Number(v);
    case 'attachment': return input.dataset.value ? JSON.parse(input.dataset.value) : undefined;
    // China time, as the hub's dates are.
    case 'datetime': return v ? `${v.length === 16 ? `${v}:00` : v}+08:00` : undefined;
    case 'map': {
      if (!v.trim()) return undefined;
      const out = {};
      for (const line of v.split('\n').filter((l) => l.trim())) {
        const [k, ...rest] = line.split(/[:：]/);
        const text = rest.join(':').trim();
        out[k.trim()] = text !== '' && !isNaN(Number(text)) ? Number(text) : text;
      }
      return out;
    }
    case 'json': {
      if (!v.trim()) return undefined;
      try { return JSON.parse(v); } catch (_) { return v; }
    }
    default: return v === '' ? undefined : v;
  }
}

// Sets `value` at `ptr` (relative to the body) in `obj`, making objects and
// arrays on the way; arrays are compacted afterwards.
function put(obj, ptr, value) {
  const keys = ptr.split('/').slice(1);
  let o = obj;
  keys.forEach((k, i) => {
    if (i === keys.length - 1) { o[k] = value; return; }
    if (o[k] === undefined) o[k] = /^\d+$/.test(keys[i + 1]) ? [] : {};
    o = o[k];
  });
}

function compact(v) {
  if (Array.isArray(v)) return v.filter((x) => x !== undefined).map(compact);
  if (v && typeof v === 'object') {
    for (const k of Object.keys(v)) v[k] = compact(v[k]);
    return v;
  }
  return v;
}

function collect(form) {
  const body = {};
  for (const input of form.querySelectorAll('[data-ptr]')) {
    const v = valueOf(input);
    if (v !== undefined) put(body, input.dataset.ptr.replace(/^\/body/, ''), v);
  }
  return compact(body);
}

function showError(target, message) {
  const box = target.querySelector(':scope > .field-error') || target.querySelector('.field-error');
  target.classList.add('invalid');
  box.hidden = false;
  box.textContent = box.textContent ? `${box.textContent}；${message}` : message;
}

// Each problem the gateway located, at the field its pointer names, or the
// nearest enclosing one (a missing property is located at its object).
function showProblems(form, details) {
  form.querySelectorAll('.invalid').forEach((x) => x.classList.remove('invalid'));
  form.querySelectorAll('.field-error').forEach((x) => { x.hidden = true; x.textContent = ''; });
  for (const d of details) {
    let p = d.pointer || '';
    let target = null;
    for (;;) {
      target = form.querySelector(`[data-pointer="${CSS.escape(p)}"]`);
      if (target || !p) break;
      p = p.slice(0, p.lastIndexOf('/'));
    }
    showError(target || form, `${d.pointer || '/'}：${d.message}`);
  }
}

let serial = 0;
function newId() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  serial += 1;
  return `WS-${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}-${serial}-${Math.random().toString(36).slice(2, 6)}`;
}

async function openForm(type, env) {
  const all = await schemas();
  const slot = $('form-slot');
  const isReply = !!env.reply_to;
  const form = el(`<form class="card msg-form" id="msg-form" data-type="${esc(type)}" novalidate>
    <h2>${esc(ANSWER_LABELS[type] || typeName(type))} <small class="muted">${esc(type)}</small></h2>
    <p class="muted">${isReply ? `答复 <code>${esc(env.reply_to)}</code>，发往 ${esc(env.recipient)}；案件 ${esc(env.case)}`
      : '接收机构可留空，由平台按管辖规则确定'}</p>
    <div class="field" data-pointer="/id"><div class="field-error" hidden></div></div>
    ${isReply ? '' : `<div class="field" data-pointer="/recipient"><label><span>接收机构（机构编号，可留空）</span><input type="text" id="f-recipient"></label><div class="field-error" hidden></div></div>`}
    <div class="field" data-pointer="/classification"><label><span>密级</span><select id="f-classification">
      <option value="internal">internal 内部</option><option value="public">public 公开</option>
      <option value="sensitive">sensitive 敏感</option><option value="secret">secret 秘密</option></select></label><div class="field-error" hidden></div></div>
    <div class="fields"></div>
    <div class="form-problems error" hidden></div>
    <button type="submit" class="send">发送</button> <button type="button" class="link cancel">取消</button>
    <p class="sent-ok" hidden></p></form>`);
  const body = flat(all[type]);
  const box = field('body', body, '/body', true);
  box.querySelector('legend').textContent = '正文';
  form.querySelector('.fields').appendChild(box);
  form.querySelector('.cancel').addEventListener('click', () => { slot.innerHTML = ''; });
  // One id and time per form: sending again after a lost answer is the
  // same message (the gateway answers 200 with the first receipt).
  const id = newId();
  const sentAt = new Date().toISOString();
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const recipient = isReply ? env.recipient : (($('f-recipient') || {}).value || '').trim() || null;
    const message = {
      id, type, sender: W.me.org, recipient, case: env.case || null, reply_to: env.reply_to || null,
      sent_at: sentAt, classification: $('f-classification').value, body: collect(form),
    };
    const send = form.querySelector('.send');
    send.disabled = true;
    try {
      const receipt = await api('/v1/messages', { method: 'POST', body: JSON.stringify(message), headers: { 'content-type': 'application/json' } });
      showProblems(form, []);
      const ok = form.querySelector('.sent-ok');
      ok.hidden = false;
      ok.innerHTML = `已发送：编号 <code class="sent-id">${esc(receipt.id)}</code>，案件 ${caseLink(receipt.case)}`;
      form.querySelectorAll('input, select, textarea, button.send').forEach((x) => { x.disabled = true; });
    } catch (e) {
      send.disabled = false;
      const details = (e.body && e.body.details) || [];
      showProblems(form, details.length ? details : [{ pointer: '', message: e.message }]);
      const all2 = form.querySelector('.form-problems');
      all2.hidden = false;
      all2.textContent = `未发送：${e.message}`;
    }
  });
  slot.innerHTML = '';
  slot.appendChild(form);
  form.scrollIntoView();
}

// ---- routing -----------------------------------------------------------------

// One view at a time: a view asked for while another loads is drawn after
// it, so the last asked for is the one shown.
let routing = Promise.resolve();
function route() {
  routing = routing.then(draw, draw);
  return routing;
}

async function draw() {
  if (!W.me) return;
  const [, name, arg] = (location.hash || '#/inbox').split('/');
  document.querySelectorAll('#nav a').forEach((a) => a.classList.toggle('active', a.dataset.view === name));
  view().innerHTML = '<p class="muted">……</p>';
  try {
    if (name === 'cases') await renderCases();
    else if (name === 'case') await renderCase(decodeURIComponent(arg || ''));
    else if (name === 'sent') await renderSent();
    else if (name === 'new') await renderNew();
    else if (name === 'supervise') await renderSupervise(arg);
    else await renderInbox();
  } catch (e) { fail(e); }
}

document.addEventListener('DOMContentLoaded', async () => {
  $('signin-form').addEventListener('submit', signIn);
  $('signout').addEventListener('click', signOut);
  window.addEventListener('hashchange', route);
  if (W.token) {
    try { await start(); return; } catch (_) { signOut(); }
  }
  signOut();
});
