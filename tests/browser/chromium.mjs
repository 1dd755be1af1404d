// Shared by the browser suites: Debian's Chromium through playwright-core,
// with the headless flags this machine needs, and waits on page text.
import { chromium } from 'playwright-core';

const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

/** Launches headless /usr/bin/chromium (no browser download anywhere). */
export function launch_chromium() {
  return chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
}

export const by_testid = (id) => `[data-testid="${id}"]`;

/** Resolves when the element's text equals `expected`, or fails after `timeout`. */
export async function text_becomes(page, testid, expected, timeout = 10000) {
  try {
    await page.waitForFunction(([sel, want]) => document.querySelector(sel)?.textContent.trim() === want,
      [by_testid(testid), String(expected)], { timeout });
  } catch (err) {
    const actual = await page.textContent(by_testid(testid)).catch(() => '(gone)');
    throw new Error(`${testid} should become "${expected}" within ${timeout} ms; it is "${actual}" (${page.url()})`, { cause: err });
  }
}
