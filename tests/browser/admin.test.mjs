// The live admin page in Chromium: it opens /admin on the admin listener and
// follows the admin frames as a test client connects and claps.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { by_testid, launch_chromium, text_becomes } from './chromium.mjs';
import { client, startServer } from '../integration/helpers.mjs';

let server;
let browser;

before(async () => {
  server = await startServer({ args: ['--store', 'memory', '--admin-listen', '127.0.0.1:0'] });
  browser = await launch_chromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** The text of the value cell of row `key` in table `testid`. */
const row_value = (page, testid, key) =>
  page.textContent(`${by_testid(testid)} tr[data-key="${key}"] td`);

test('the admin page shows connections and the top article live', async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(`${server.admin}/admin`);
  await text_becomes(page, 'admin-status', 'live');
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.trim() === '0',
    `${by_testid('connections-table')} tr[data-key="ws"] td`, { timeout: 10000 });

  const reader = await client.open(`${server.ws}?user=browser-reader`);
  await reader.subscribe(['admin-top']);
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.trim() === '1',
    `${by_testid('connections-table')} tr[data-key="ws"] td`, { timeout: 10000 });
  assert.equal((await row_value(page, 'connections-table', 'admin')).trim(), '1');

  // Before the clap the article is listed by viewers with total 0; after it
  // the claps/s table shows it (for the second its claps fall in) and the total follows.
  await page.waitForSelector(`${by_testid('by-viewers')} tr[data-article="admin-top"]`, { timeout: 10000 });
  reader.send({ type: 'clap', article: 'admin-top', count: 3, id: 'b1' });
  await reader.ack('b1');
  await page.waitForSelector(`${by_testid('by-claps')} tr[data-article="admin-top"]`, { timeout: 10000 });
  await page.waitForFunction((sel) => document.querySelectorAll(sel)[4]?.textContent === '3',
    `${by_testid('by-viewers')} tr[data-article="admin-top"] td`, { timeout: 10000 });
  const cells = await page.$$eval(`${by_testid('by-viewers')} tr[data-article="admin-top"] td`,
    (tds) => tds.map((td) => td.textContent));
  assert.equal(cells[0], 'admin-top');
  assert.equal(cells[1], '1', 'one viewer');
  assert.equal(cells[2], '1', 'on this node');

  // The socket drops with the reader; the count follows.
  await reader.close();
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.trim() === '0',
    `${by_testid('connections-table')} tr[data-key="ws"] td`, { timeout: 10000 });
  await page.waitForSelector(`${by_testid('by-viewers')} tr[data-article="admin-top"]`,
    { state: 'detached', timeout: 10000 });
  if (process.env.CLAPS_TEST_ARTIFACTS) {
    mkdirSync(process.env.CLAPS_TEST_ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(process.env.CLAPS_TEST_ARTIFACTS, 'admin.png'), fullPage: true });
  }

  // The server goes away: the page says so (and keeps retrying).
  await server.stop();
  await text_becomes(page, 'admin-status', 'disconnected');
  assert.deepEqual(errors, []);
  await page.close();
});
