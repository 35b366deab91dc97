// Drives the organisations' workspace (/workspace) in Debian's headless
// Chromium, as a town clerk and then a procuratorate officer would, against
// a hub that tests/workspace.rs started and filled. Each check prints
// `ok <what>`; the first failure prints `FAIL <what>: <why>` and exits 1.
// The reply it sends is printed as `reply <id>` for the Rust side to follow.
//
// Environment: XJ_BASE, XJ_CHROMIUM, XJ_SHOTS, XJ_PROFILE, XJ_DOWNLOADS,
// XJ_TOWN_TOKEN, XJ_PROCURATORATE_TOKEN, XJ_REFERRAL (the referral's id),
// XJ_REFERRAL_CASE, XJ_CRIME_CASE (crime suspected, this county),
// XJ_FAR_CASE (crime suspected, the next county).

import { WAIT, check, env, launch, ok } from './driver.mjs';

const BASE = env('XJ_BASE');
const SHOTS = env('XJ_SHOTS');
const DOWNLOADS = env('XJ_DOWNLOADS');
const REFERRAL = env('XJ_REFERRAL');
const REF_CASE = env('XJ_REFERRAL_CASE');
const CRIME_CASE = env('XJ_CRIME_CASE');
const FAR_CASE = env('XJ_FAR_CASE');

let current = 'start';
const context = await launch({ acceptDownloads: true, viewport: { width: 1366, height: 900 } });
const page = context.pages()[0] || await context.newPage();
const shot = async (name) => page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });

// Shows `hash` again and again (the tracker may be a moment behind) until
// `selector` is on the page.
async function until(hash, selector, what) {
  const end = Date.now() + WAIT;
  for (;;) {
    await page.evaluate((h) => {
      if (location.hash !== h) location.hash = h; else window.dispatchEvent(new HashChangeEvent('hashchange'));
    }, hash);
    try {
      await page.waitForSelector(selector, { timeout: 1500 });
      return;
    } catch (e) {
      if (Date.now() > end) throw new Error(`${what}: ${selector} never appeared at ${hash}`);
    }
  }
}

async function signIn(token) {
  await page.goto(`${BASE}/workspace`);
  await page.waitForSelector('#signin:not([hidden])');
  await page.fill('#token', token);
  await page.click('#signin-button');
  await page.waitForSelector('#top:not([hidden])');
}

try {
  page.setDefaultTimeout(WAIT);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));

  current = 'sign-in refuses a wrong token';
  await page.goto(`${BASE}/workspace`);
  await page.fill('#token', 'not-a-token-of-anyone');
  await page.click('#signin-button');
  await page.waitForSelector('#signin-error:not([hidden])');
  ok(current);

  current = 'the pull inbox lists the referral';
  await signIn(env('XJ_TOWN_TOKEN'));
  check((await page.textContent('#who')).includes('临水镇'), `signed in as ${await page.textContent('#who')}`);
  await page.waitForSelector(`#deliveries tr.delivery[data-id="${REFERRAL}"]`);
  check(await page.isHidden('#nav-supervise'), 'a town is offered the supervision boards');
  await shot('workspace-inbox');
  ok(current);

  current = 'collecting it makes the decision clock the town\'s';
  // Uncollected, the town owes the collection, not yet the decision.
  await until('#/inbox', '#to-act tr.act[data-clock="inbox_collection"]', current);
  check(!(await page.$('#to-act tr.act[data-clock="referral_decision"]')), 'the decision clock runs before collection');
  await page.click(`#deliveries tr.delivery[data-id="${REFERRAL}"] button.collect`);
  await page.waitForSelector(`#deliveries tr.delivery[data-id="${REFERRAL}"]`, { state: 'detached' });
  await until('#/inbox', '#to-act tr.act[data-clock="referral_decision"]', current);
  check((await page.textContent('#to-act tr.act[data-clock="referral_decision"]')).includes(REF_CASE),
    'the decision clock is not on the referral\'s case');
  await until('#/inbox', '#to-act:not(:has(tr.act[data-clock="inbox_collection"]))', current);
  ok(current);

  current = 'the 复函 form is generated from the schema';
  await page.evaluate((c) => { location.hash = `#/case/${c}`; }, REF_CASE);
  const answer = `li.msg[data-id="${REFERRAL}"] button.answer[data-type="referral_reply"]`;
  await page.waitForSelector(answer);
  await page.click(answer);
  await page.waitForSelector('#msg-form [data-ptr="/body/decision"]');
  for (const ptr of ['/body/reason', '/body/case_no', '/body/received/volumes', '/body/received/pages', '/body/decided_on']) {
    check(await page.$(`#msg-form [data-ptr="${ptr}"]`), `no field for ${ptr}`);
  }
  ok(current);

  current = 'the problem shows at its field';
  await page.selectOption('#msg-form [data-ptr="/body/decision"]', 'declined');
  await page.click('#msg-form button.send');
  await page.waitForSelector('#msg-form .field[data-pointer="/body/reason"].invalid .field-error:not([hidden])');
  const said = await page.textContent('#msg-form .field[data-pointer="/body/reason"] .field-error');
  check(said.includes('/body/reason'), `the field says ${said}`);
  check(await page.isHidden('#msg-form .sent-ok'), 'a refused answer reads as sent');
  await shot('workspace-form-error');
  ok(current);

  current = 'the reply is sent';
  await page.selectOption('#msg-form [data-ptr="/body/decision"]', 'accepted');
  await page.fill('#msg-form [data-ptr="/body/case_no"]', '临水综执立〔2026〕7号');
  await page.fill('#msg-form [data-ptr="/body/received/volumes"]', '1');
  await page.fill('#msg-form [data-ptr="/body/received/pages"]', '12');
  await page.fill('#msg-form [data-ptr="/body/decided_on"]', '2026-11-21');
  await page.click('#msg-form button.send');
  await page.waitForSelector('#msg-form .sent-ok:not([hidden])');
  const reply = (await page.textContent('#msg-form .sent-id')).trim();
  check(reply.startsWith('WS-'), `the receipt names ${reply}`);
  console.log(`reply ${reply}`);
  await shot('workspace-reply-sent');
  ok(current);

  current = 'the letter downloads';
  await until(`#/case/${REF_CASE}`, `li.msg[data-id="${reply}"] button.letter`, current);
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.click(`li.msg[data-id="${reply}"] button.letter`),
  ]);
  await download.saveAs(`${DOWNLOADS}/letter.pdf`);
  check(!(await page.textContent('#letter-status')).includes('无法'), await page.textContent('#letter-status'));
  ok(current);

  current = 'sent messages say where each is';
  await until('#/sent', `#sent tr.sent-row[data-id="${reply}"] .where .badge`, current);
  ok(current);

  current = 'another organisation\'s case stays closed';
  await page.evaluate((c) => { location.hash = `#/case/${c}`; }, CRIME_CASE);
  await page.waitForSelector('#view-error');
  check(!(await page.textContent('#view')).includes('WS-CRIME-1'), 'the case\'s messages show');
  await page.evaluate(() => { location.hash = '#/cases'; });
  await page.waitForSelector('#cases');
  const listed = await page.textContent('#cases');
  check(listed.includes(REF_CASE) && !listed.includes(CRIME_CASE), `the town lists ${listed}`);
  await page.evaluate(() => { location.hash = '#/supervise/crime_unreferred'; });
  await page.waitForSelector('#view-error');
  ok(current);

  current = 'the county\'s crime-suspected cases';
  await page.click('#signout');
  await signIn(env('XJ_PROCURATORATE_TOKEN'));
  check(await page.isVisible('#nav-supervise'), 'no supervision boards for the procuratorate');
  await page.click('#nav-supervise');
  await page.click('#boards a[data-board="crime_unreferred"]');
  await page.waitForSelector(`#board tr.board-item[data-case="${CRIME_CASE}"]`);
  await shot('workspace-supervision');
  ok(current);

  current = 'nothing of another county';
  check(!(await page.textContent('#board')).includes(FAR_CASE), 'the next county\'s case is on the board');
  await page.evaluate((c) => { location.hash = `#/case/${c}`; }, FAR_CASE);
  await page.waitForSelector('#view-error');
  await page.evaluate(() => { location.hash = '#/cases'; });
  await page.waitForSelector('#cases');
  const seen = await page.textContent('#cases');
  check(seen.includes(CRIME_CASE) && !seen.includes(FAR_CASE), `the procuratorate lists ${seen}`);
  ok(current);

  current = 'no script errors';
  check(errors.length === 0, errors.join('; '));
  ok(current);
  console.log('ALL OK');
} catch (e) {
  console.log(`FAIL ${current}: ${e.message}`);
  await shot('workspace-failure').catch(() => {});
  await context.close();
  process.exit(1);
}
await context.close();
