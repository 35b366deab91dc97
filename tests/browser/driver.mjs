// What the browser drivers (console.mjs, workspace.mjs) share: their
// environment, the `ok`/`FAIL` protocol the Rust tests read, and Debian's
// headless Chromium on a fresh profile.

import { chromium } from 'playwright-core';

/// An environment variable the Rust side must set; without it, FAIL setup.
export const env = (k) => {
  if (!process.env[k]) { console.log(`FAIL setup: ${k} is not set`); process.exit(1); }
  return process.env[k];
};

export const WAIT = 20000;
export const ok = (what) => console.log(`ok ${what}`);
export function check(cond, why) { if (!cond) throw new Error(why); }

/// Chromium at XJ_CHROMIUM with a fresh profile at XJ_PROFILE
/// (launchPersistentContext owns --user-data-dir).
export async function launch(options = {}) {
  return chromium.launchPersistentContext(env('XJ_PROFILE'), {
    executablePath: env('XJ_CHROMIUM'),
    headless: true,
    viewport: { width: 1366, height: 768 },
    locale: 'zh-CN',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
    ...options,
  });
}
