// Drives the operator console as an operator would, in Debian's headless
// Chromium, against a hub that tests/console.rs started and filled. Each
// check prints `ok <what>`; the first failure prints `FAIL <what>: <why>`
// and exits 1. The Rust test reads this output.
//
// Environment: XJ_BASE (the hub), XJ_OPERATOR_TOKEN, XJ_ORG_TOKEN (qh-market's),
// XJ_CHROMIUM (executable), XJ_SHOTS (folder for screenshots), XJ_PROFILE
// (a fresh user-data dir), XJ_DEAD_ID (the message waiting as a dead letter).

import { WAIT, check, env, launch, ok } from './driver.mjs';

const BASE = env('XJ_BASE');
const OPERATOR = env('XJ_OPERATOR_TOKEN');
const ORG = env('XJ_ORG_TOKEN');
const SHOTS = env('XJ_SHOTS');
const DEAD_ID = env('XJ_DEAD_ID');

let current = 'start';

async function hub(path, token, body) {
  const r = await fetch(`${BASE}${path}`, {
    method: body ? 'POST' : 'GET',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await r.json().catch(() => ({}));
  if (r.status >= 300) throw new Error(`${path}: HTTP ${r.status} ${JSON.stringify(json)}`);
  return json;
}

function referral(id, name) {
  return {
    id, type: 'clue_referral', sender: 'qh-market', recipient: null, case: null, reply_to: null,
    sent_at: new Date(Date.now() - 60000).toISOString(), classification: 'internal',
    body: {
      matter: 'FOOD-STALL', cause: '涉嫌无证经营',
      party: { name, uscc: process.env.XJ_USCC, address: '东关镇人民路1号' },
      found_on: '2026-01-05', location: { region: '990101101', address: '东关镇人民路1号' },
      reason: '该事项已赋权乡镇，超出本机关管辖范围', legal_basis: '《行政处罚法》第二十二条', facts: { sales_amount: 1200 },
      officers: [{ name: '张三', cert_no: '99010100001' }, { name: '李四', cert_no: '99010100002' }],
      materials: [{ title: '现场检查笔录', copies: 1 }], contact: { name: '王五', phone: '0999-1234567', address: '清河县人民路8号' },
    },
  };
}

const context = await launch();
const shot = async (page, name) => page.screenshot({ path: `${SHOTS}/${name}.png` });

const page = context.pages()[0] || await context.newPage();
try {
  page.setDefaultTimeout(WAIT);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));

  current = 'sign-in refuses a wrong token';
  await page.goto(`${BASE}/`);
  await page.fill('#token', 'not-the-token');
  await page.click('#signin-button');
  await page.waitForSelector('#signin-error:not([hidden])');
  await shot(page, 'console-signin');
  ok(current);

  current = 'sign-in with the operator token shows the live list';
  await page.fill('#token', OPERATOR);
  await page.fill('#opname', '张值班');
  await page.click('#signin-button');
  await page.waitForSelector('#live tbody tr');
  await page.waitForSelector('#conn[data-state="on"]');
  const before = await page.locator('#live tbody tr').count();
  check(before >= 2, `expected the earlier messages in the list, saw ${before} rows`);
  ok(current);

  current = 'the live list updates as a message flows';
  await hub('/v1/messages', ORG, referral('LIVE-1', '清河县某食品店'));
  await page.waitForSelector('#live tr[data-id="LIVE-1"]');
  await page.waitForSelector('#live tr[data-id="LIVE-1"] .badge[data-state="delivered"]');
  check((await page.locator('#live tbody tr').first().getAttribute('data-id')) === 'LIVE-1', 'the newest message is on top');
  await hub('/v1/messages', ORG, referral('LIVE-2', '清河县另一食品店'));
  await page.waitForSelector('#live tr[data-id="LIVE-2"] .badge[data-state="delivered"]');
  await shot(page, 'console-live');
  ok(current);

  current = 'a message trace shows its hops, rule and attempts';
  await page.click('#live tr[data-id="LIVE-1"] td.when');
  await page.waitForSelector('#hops li[data-step="delivered"]');
  const steps = await page.locator('#hops li').evaluateAll((els) => els.map((e) => e.dataset.step));
  for (const s of ['accepted', 'routed', 'delivered']) check(steps.includes(s), `hop ${s} missing: ${steps}`);
  const rule = await page.textContent('#rule');
  check(rule.includes('matter:FOOD-STALL'), `rule shown: ${rule}`);
  check((await page.locator('#attempts tbody tr').count()) >= 1, 'attempts listed');
  check((await page.locator('#hop-chart rect').count()) === steps.length, 'a bar per hop');
  await shot(page, 'console-trace');
  ok(current);

  current = 'a case timeline shows its clock and who acts next';
  await page.click('a.case-link');
  await page.waitForSelector('#next .who');
  const who = await page.textContent('#next .who');
  check(who.includes('qh-town-dg'), `next to act: ${who}`);
  await page.waitForSelector('#clocks tbody tr');
  check((await page.locator('#case-timeline li').count()) >= 2, 'timeline entries');
  await shot(page, 'console-case');
  ok(current);

  current = "this month's statistics with charts";
  await page.click('nav a[data-view="stats"]');
  await page.waitForSelector('#stats tr[data-org="qh-market"]');
  const sent = await page.locator('#stats tr[data-org="qh-market"] td').nth(1).textContent();
  check(Number(sent) >= 1, `referrals sent by qh-market: ${sent}`);
  check((await page.locator('#chart-referrals rect').count()) >= 2, 'bars drawn');
  await shot(page, 'console-stats');
  ok(current);

  current = 'search by party name and by credit code';
  await page.fill('#search', '某食品店');
  await page.press('#search', 'Enter');
  await page.waitForSelector('#search-parties tbody tr');
  const hits = await page.locator('#search-parties tbody tr').count();
  check(hits >= 1, 'party found');
  await page.fill('#search', 'LIVE-2');
  await page.press('#search', 'Enter');
  await page.waitForSelector('#search-messages a.msg-link');
  ok(current);

  current = 'a dead letter shows its reason and payload, and replay delivers it';
  await page.click('nav a[data-view="dead"]');
  const row = `#dead tr[data-id="${DEAD_ID}"]`;
  await page.waitForSelector(row);
  const reason = await page.textContent(`${row} td.reason`);
  check(reason.length > 0, 'a reason');
  await page.click(`${row} summary`);
  check((await page.textContent(`${row} pre`)).includes('"clue_referral"'), 'payload shown');
  await shot(page, 'console-dead');
  await page.click(`${row} button.replay`);
  await page.waitForSelector(`${row} .badge[data-state="delivered"]`);
  check((await page.textContent(`${row} [data-replay]`)).includes('张值班'), 'who replayed it');
  const trace = await hub(`/v1/messages/${DEAD_ID}/trace`, OPERATOR);
  const replayed = trace.hops.find((h) => h.step === 'replayed');
  check(replayed && replayed.detail.replayed_by === '张值班', `replay recorded: ${JSON.stringify(replayed)}`);
  await shot(page, 'console-replayed');
  ok(current);

  current = 'health per organisation';
  await page.click('nav a[data-view="health"]');
  await page.waitForSelector('#health tr[data-org="qh-enforce"]');
  const dg = await page.textContent('#health tr[data-org="qh-town-dg"] td:nth-child(5)');
  check(Number(dg) >= 2, `deliveries to qh-town-dg: ${dg}`);
  await shot(page, 'console-health');
  ok(current);

  current = 'an overdue item appears after the manual clock advances, with who owes it';
  await page.click('nav a[data-view="overdue"]');
  await page.waitForSelector('#overdue-count');
  await hub('/v1/admin/clock/advance', OPERATOR, { by: 'P15D' });
  await page.waitForSelector('#overdue tr[data-owner="qh-town-dg"]');
  const owner = await page.textContent('#overdue tr[data-owner="qh-town-dg"] td.owner');
  check(owner.includes('qh-town-dg'), `owner: ${owner}`);
  await page.selectOption('#overdue-org', 'qh-eco');
  await page.waitForFunction(() => document.querySelector('#overdue-org').value === 'qh-eco' && !document.querySelector('#overdue tr[data-owner="qh-town-dg"]'));
  await page.selectOption('#overdue-org', 'qh-town-dg');
  await page.waitForSelector('#overdue tr[data-owner="qh-town-dg"]');
  await shot(page, 'console-overdue');
  ok(current);

  current = 'English labels';
  await page.click('#lang');
  await page.waitForFunction(() => document.querySelector('nav a[data-view="live"]').textContent === 'Live');
  await page.click('nav a[data-view="live"]');
  await page.waitForSelector('#live tbody tr');
  await shot(page, 'console-live-en');
  ok(current);

  current = 'no script errors';
  check(errors.length === 0, errors.join('; '));
  ok(current);
  console.log('ALL OK');
} catch (e) {
  console.log(`FAIL ${current}: ${e.message.split('\n')[0]}`);
  await shot(page, 'failure').catch(() => {});
  process.exitCode = 1;
} finally {
  await context.close();
}
