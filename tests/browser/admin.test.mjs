// The live admin page in Chromium: it opens /admin on the admin listener and
// follows the admin frames as a test client connects and claps; on two nodes
// sharing a real redis-server it shows the table of nodes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { by_testid, launch_chromium, text_becomes } from './chromium.mjs';
import { client, startServer, tempDir } from '../integration/helpers.mjs';
import { connectedToRedis, startRedisNode } from '../nodes/node_helpers.mjs';
import { redis_setup } from '../nodes/redis_harness.mjs';

const haveRedis = spawnSync('redis-server', ['--version']).status === 0;

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
  assert.equal(await page.isVisible(by_testid('cluster-section')), false, 'no node table on a single node');
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

test('on nodes sharing Redis the admin page lists every node', { skip: !haveRedis && 'no redis-server' }, async () => {
  const redis = await redis_setup.start({ replicas: 0, sentinels: 0 });
  const nodes = [];
  let reader;
  try {
    for (const id of ['brw-a', 'brw-b'])
      nodes.push(await startRedisNode({ port: redis.masterPort, id, dataDir: tempDir(), args: ['--admin-listen', '127.0.0.1:0'] }));
    await Promise.all(nodes.map((n) => connectedToRedis({ http: n.admin })));
    reader = await client.open(`${nodes[1].ws}?user=brw-reader`);
    await reader.subscribe(['brw-article']);
    reader.send({ type: 'clap', article: 'brw-article', count: 2, id: 'r1' });
    await reader.ack('r1');
    // Node a learns of the article's parts when someone reads it there.
    const viewer = await client.open(`${nodes[0].ws}?user=brw-viewer`);
    await viewer.subscribe(['brw-article']);

    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(`${nodes[0].admin}/admin`);
    await text_becomes(page, 'admin-status', 'live');
    const row = (id) => `${by_testid('cluster-nodes')} tr[data-node="${id}"]`;
    await page.waitForSelector(`${row('brw-a')}[data-live="true"]`, { timeout: 20000 });
    await page.waitForSelector(`${row('brw-b')}[data-live="true"]`, { timeout: 20000 });
    // Node b's row: its reader and its 2 claps, as node a's store knows them.
    await page.waitForFunction((sel) => {
      const tds = [...document.querySelectorAll(`${sel} td`)].map((td) => td.textContent);
      return tds[3] === '1' && tds[4] === '2';
    }, row('brw-b'), { timeout: 20000 });
    const cells = await page.$$eval(`${row('brw-a')} td`, (tds) => tds.map((td) => td.textContent));
    assert.equal(cells[0], 'brw-a (this node)');
    assert.equal(cells[1], 'yes');
    assert.equal(cells[3], '1', 'node a\'s own viewer');
    assert.equal(await page.isVisible(by_testid('cluster-nodes')), true);
    if (process.env.CLAPS_TEST_ARTIFACTS) {
      mkdirSync(process.env.CLAPS_TEST_ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(process.env.CLAPS_TEST_ARTIFACTS, 'admin-cluster.png'), fullPage: true });
    }
    assert.deepEqual(errors, []);
    await page.close();
    viewer.ws.terminate();
  } finally {
    reader?.ws.terminate();
    await Promise.all(nodes.map((n) => n.stop()));
    await redis.stop();
  }
});
