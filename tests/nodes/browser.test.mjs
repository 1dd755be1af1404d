// The two-node demo in a real browser: Chromium (npm playwright-core) opens
// the same article on node A and on node B, which share a real redis-server.
// Readers see each other (viewers 2 on both) and each other's claps.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { by_testid, launch_chromium, text_becomes } from '../browser/chromium.mjs';
import { eventually, metric, startServer } from '../integration/helpers.mjs';
import { redis_setup } from './redis_harness.mjs';

const ARTIFACTS = process.env.CLAPS_TEST_ARTIFACTS ?? join(process.cwd(), '../../test-artifacts');
const ARTICLE = 'why-realtime-matters';

describe('the two-node demo in Chromium', () => {
  let redis;
  let browser;
  const nodes = {};
  const page_errors = [];

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    redis = await redis_setup.start({ replicas: 0, sentinels: 0 });
    const port = redis.masterPort;
    for (const id of ['A', 'B'])
      nodes[id] = await startServer({ args: ['--redis', `redis://127.0.0.1:${port}`, '--node-id', id, '--log-level', 'warn'] });
    for (const n of Object.values(nodes))
      await eventually(async () => (await metric(n, 'claps_redis_connected')) === 1, { ms: 10000, what: 'node on Redis' });
    browser = await launch_chromium();
  });

  after(async () => {
    await browser?.close();
    await Promise.all(Object.values(nodes).map((n) => n.stop().catch(() => n.child.kill('SIGKILL'))));
    await redis?.stop();
  });

  async function open(node, user) {
    const context = await browser.newContext({ viewport: { width: 900, height: 760 } });
    const page = await context.newPage();
    page.on('pageerror', (err) => page_errors.push(`${page.url()}: ${err.message}`));
    await page.goto(`${node.http}/articles/${ARTICLE}?user=${user}`);
    await text_becomes(page, 'connection-status', 'live');
    return page;
  }

  test('a reader on A and a reader on B see each other and each other\'s claps', async () => {
    const alice = await open(nodes.A, 'alice');
    const bob = await open(nodes.B, 'bob');
    // Viewers are global: each node adds the other node's reader.
    await text_becomes(alice, 'viewers', '2');
    await text_becomes(bob, 'viewers', '2');

    await alice.click(by_testid('clap-button'));
    await text_becomes(bob, 'clap-total', '1', 5000);
    await bob.click(by_testid('clap-button'));
    await bob.click(by_testid('clap-button'));
    await text_becomes(alice, 'clap-total', '3', 5000);
    await text_becomes(alice, 'my-claps', '1');
    await text_becomes(bob, 'my-claps', '2');
    await alice.screenshot({ path: join(ARTIFACTS, 'nodes-demo-node-a.png') });
    await bob.screenshot({ path: join(ARTIFACTS, 'nodes-demo-node-b.png') });

    // Bob leaves node B: node A's count of readers follows.
    await bob.context().close();
    await text_becomes(alice, 'viewers', '1', 30000);
    assert.deepEqual(page_errors, []);
  });
});
