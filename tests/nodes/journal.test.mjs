// Each node's LMDB journal is the source of truth for its claps; Redis only
// holds a copy. Two clapsd nodes A and B on one standalone redis-server: a
// clap A acknowledged as "local" while Redis was down survives a SIGKILL of A
// and reaches B once Redis is back, with or without its data; claps A made
// long before the outage are re-asserted when Redis returns empty; and a node
// restarted with its wall clock a day behind still writes claps Redis takes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { client, eventually, metric, startServer, tempDir } from '../integration/helpers.mjs';
import { redis_setup } from './redis_harness.mjs';
import { latestTotal, readArticle, untilReads, watcher, connectedToRedis, startRedisNode } from './node_helpers.mjs';

const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
// The step is of the wall clock only, as an NTP step would be; the monotonic clock runs on.
// A sanitizer build of clapsd wants its runtime first among the preloaded
// libraries; libfaketime ahead of it is harmless, so that check is turned off.
const ONE_DAY_BACK = { LD_PRELOAD: LIBFAKETIME, FAKETIME: '-1d', FAKETIME_DONT_FAKE_MONOTONIC: '1',
  ASAN_OPTIONS: [process.env.ASAN_OPTIONS, 'verify_asan_link_order=0'].filter(Boolean).join(':') };

let redis;
let port;
const nodes = {};
const dirs = { A: tempDir(), B: tempDir() };
const clients = [];

const startNode = (id, env = {}) => startRedisNode({ port, id, dataDir: dirs[id], env });
const connected = connectedToRedis;

async function open(node, user) {
  const c = await client.open(`${node.ws}?user=${user}`);
  clients.push(c);
  return c;
}

/** Claps through a fresh connection as `user` on `node`; resolves the ack. */
async function clap(node, user, article, count) {
  const c = await open(node, user);
  const ack = await c.clap(article, count);
  c.terminate();
  return ack;
}

async function stopRedis() {
  await redis.kill(port, 'SIGTERM');
  for (const n of [nodes.A, nodes.B])
    await eventually(async () => (await metric(n, 'claps_redis_connected')) === 0,
      { ms: 10000, what: 'node to notice Redis is gone' });
}

/** SIGKILLs A (no drain, nothing flushed beyond its LMDB) and starts it again on the same directory and id. */
async function crashAndRestartA() {
  nodes.A.child.kill('SIGKILL');
  await nodes.A.exited;
  nodes.A = await startNode('A');
}

/** untilReads() until `end` (ms since epoch), naming the nodes' stale-write and re-assert counters on a timeout. */
function convergedBy(end, expectations, what) {
  return untilReads(expectations, {
    ms: end - Date.now(), what,
    diagnose: async () => {
      const counters = [];
      for (const [id, n] of Object.entries(nodes))
        for (const m of ['claps_cluster_stale_writes_total', 'claps_cluster_reasserts_total'])
          counters.push(`${id}(:${n.port}) ${m}=${await metric(n, m).catch(() => '?')}`);
      return counters.join(', ');
    },
  });
}

describe('the journal is the source of truth across Redis outages', () => {
  before(async () => {
    redis = await redis_setup.start({ replicas: 0, sentinels: 0, appendonly: true });
    port = redis.masterPort;
    [nodes.A, nodes.B] = await Promise.all([startNode('A'), startNode('B')]);
    await Promise.all([connected(nodes.A), connected(nodes.B)]);
  });

  after(async () => {
    for (const c of clients) c.terminate();
    await Promise.all(Object.values(nodes).map((n) => n.stop().catch(() => n.child.kill('SIGKILL'))));
    await redis?.stop();
  });

  // Claps acknowledged so far, per article and per user: what every node must converge to.
  const acked = {};
  const note = (article, user, ack) => {
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
    acked[article] ??= { total: 0, mine: {} };
    acked[article].total += ack.accepted;
    acked[article].mine[user] = (acked[article].mine[user] ?? 0) + ack.accepted;
  };
  const totalIs = (article) => (r) => r.total === acked[article].total;
  const mineIs = (article, user) => (r) => r.total === acked[article].total && r.mine === acked[article].mine[user];

  test('a "local" clap survives SIGKILL of its node and reaches the other node when Redis returns with its data', async () => {
    const article = 'jr-kept';
    let ack = await clap(nodes.A, 'ann', article, 2);
    assert.equal(ack.durability, 'cluster');
    note(article, 'ann', ack);
    await convergedBy(Date.now() + 10000, [[nodes.B, article, undefined, totalIs(article)]], 'B to show A\'s first clap');
    const viewerB = await watcher(nodes.B, article);
    clients.push(viewerB);

    await stopRedis();
    ack = await clap(nodes.A, 'ann', article, 3);
    assert.equal(ack.accepted, 3);
    assert.equal(ack.durability, 'local');
    note(article, 'ann', ack);

    await crashAndRestartA();
    // A's own answer comes from its journal even before Redis is back.
    assert.equal((await readArticle(nodes.A, article, 'ann')).mine, 5);

    await redis.restart(port);
    const end = Date.now() + 10000;
    await convergedBy(end, [[nodes.B, article, 'ann', mineIs(article, 'ann')], [nodes.A, article, 'ann', mineIs(article, 'ann')]],
      `both nodes to show ${acked[article].total} within 10 s of Redis's return`);
    await eventually(() => latestTotal(viewerB) === acked[article].total,
      { ms: Math.max(1000, end - Date.now()), what: `B's viewer to be shown ${acked[article].total}` });
  });

  test('Redis returns empty: both nodes re-assert every acknowledged clap from their journals, old ones too', async () => {
    // Claps made long before the outage, with Redis up: Redis has them, then loses them.
    const old = 'jr-old';
    for (const [node, user, n] of [[nodes.A, 'olive', 4], [nodes.A, 'oscar', 6], [nodes.B, 'bea', 1]]) {
      const ack = await clap(node, user, old, n);
      assert.equal(ack.durability, 'cluster');
      note(old, user, ack);
    }
    await convergedBy(Date.now() + 10000, [[nodes.B, old, 'olive', mineIs(old, 'olive')]], 'B to show the early claps');

    await stopRedis();
    const during = 'jr-outage';
    for (const [node, user, n] of [[nodes.A, 'dora', 5], [nodes.B, 'dan', 2], [nodes.A, 'olive', 7]]) {
      const ack = await clap(node, user, during, n);
      assert.equal(ack.accepted, n);
      assert.equal(ack.durability, 'local');
      note(during, user, ack);
    }
    await crashAndRestartA();

    await redis.restart(port, { empty: true });
    const end = Date.now() + 10000;
    const expectations = [];
    for (const node of [nodes.B, nodes.A]) {
      for (const article of Object.keys(acked)) expectations.push([node, article, undefined, totalIs(article)]);
      // B's view of A's users (and A's of B's).
      expectations.push([node, old, 'olive', mineIs(old, 'olive')], [node, old, 'bea', mineIs(old, 'bea')],
        [node, during, 'dora', mineIs(during, 'dora')], [node, during, 'olive', mineIs(during, 'olive')]);
    }
    await convergedBy(end, expectations,
      `both nodes to converge within 10 s of Redis's return to ${JSON.stringify(acked)}`);
  });

  const haveFaketime = fs.existsSync(LIBFAKETIME);
  test('a node restarted with its wall clock a day behind still gets its claps into Redis', {
    skip: !haveFaketime && `faketime is not installed (no ${LIBFAKETIME}; scripts/deps.sh test installs it)`,
  }, async () => {
    // The preload works here: `date` under it is a day behind.
    const shifted = Number(execFileSync('date', ['+%s'], { env: { ...process.env, ...ONE_DAY_BACK } }).toString());
    assert.ok(Math.abs(Date.now() / 1000 - 86400 - shifted) < 60, `faketime shifts the clock (${shifted})`);

    const article = 'jr-clock';
    let ack = await clap(nodes.A, 'cleo', article, 2);
    assert.equal(ack.durability, 'cluster');
    note(article, 'cleo', ack);
    await convergedBy(Date.now() + 10000, [[nodes.B, article, 'cleo', mineIs(article, 'cleo')]], 'B to show the first clap');

    const { code } = await nodes.A.stop();
    assert.equal(code, 0);
    nodes.A = await startNode('A', ONE_DAY_BACK);
    await connected(nodes.A);
    ack = await clap(nodes.A, 'cleo', article, 3);
    assert.equal(ack.accepted, 3);
    assert.equal(ack.durability, 'cluster');
    note(article, 'cleo', ack);
    await convergedBy(Date.now() + 10000,
      [[nodes.B, article, 'cleo', mineIs(article, 'cleo')], [nodes.A, article, 'cleo', mineIs(article, 'cleo')]],
      `B to show both claps of cleo (${acked[article].total})`);
  });
});
