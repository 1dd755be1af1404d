// Two real clapsd nodes on one real redis-server (--redis URL): with Redis
// fully down claps are still acknowledged (locally durable) and readyz says
// degraded; once Redis is back (empty: it kept nothing) both nodes re-assert
// and converge; a restarted node keeps its totals.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { client, eventually, metric, request, runClapsd, startServer, tempDir } from '../integration/helpers.mjs';
import { redis_setup } from './redis_harness.mjs';
import { latestTotal, redisTotal, watcher, connectedToRedis, startRedisNode } from './node_helpers.mjs';

let redis;
let port;
const nodes = {};
const dirs = { A: tempDir(), B: tempDir() };
const clients = [];

const startNode = (id) => startRedisNode({ port, id, dataDir: dirs[id] });
const connected = connectedToRedis;

describe('clapsd nodes when Redis goes away and comes back', () => {
  before(async () => {
    redis = await redis_setup.start({ replicas: 0, sentinels: 0 });
    port = redis.masterPort;
    [nodes.A, nodes.B] = await Promise.all([startNode('A'), startNode('B')]);
    await Promise.all([connected(nodes.A), connected(nodes.B)]);
  });

  after(async () => {
    for (const c of clients) c.terminate();
    await Promise.all(Object.values(nodes).map((n) => n.stop().catch(() => n.child.kill('SIGKILL'))));
    await redis?.stop();
  });

  const article = 'down1';
  let expected = 0;

  test('Redis fully down: claps acked "local", readyz 200 degraded; merged when it is back', async () => {
    const watchA = await watcher(nodes.A, article);
    const watchB = await watcher(nodes.B, article);
    clients.push(watchA, watchB);
    const onA = await client.open(`${nodes.A.ws}?user=erin`);
    const onB = await client.open(`${nodes.B.ws}?user=frank`);
    clients.push(onA, onB);

    let ack = await onA.clap(article, 3);
    assert.equal(ack.durability, 'cluster');
    ack = await onB.clap(article, 4);
    assert.equal(ack.durability, 'cluster');
    expected = 7;
    await eventually(() => latestTotal(watchA) === 7 && latestTotal(watchB) === 7,
      { ms: 10000, what: 'both nodes to show 7' });

    await redis.kill(port);
    for (const n of [nodes.A, nodes.B])
      await eventually(async () => (await metric(n, 'claps_redis_connected')) === 0,
        { ms: 10000, what: 'node to notice Redis is gone' });

    // Still acknowledged, as locally durable.
    for (const [c, n] of [[onA, 5], [onB, 6], [onA, 2]]) {
      ack = await c.clap(article, n, undefined);
      assert.equal(ack.type, 'ack');
      assert.equal(ack.accepted, n);
      assert.equal(ack.durability, 'local');
      expected += n;
    }
    for (const n of [nodes.A, nodes.B]) {
      const ready = await request(`${n.http}/readyz`);
      assert.equal(ready.status, 200);
      assert.match(ready.text, /degraded/);
      assert.equal(await metric(n, 'claps_cluster_degraded'), 1);
    }
    // Each node still serves its own viewers its own claps.
    await eventually(() => latestTotal(watchA) === 3 + 5 + 2 + 4, { ms: 5000, what: 'A to show its local claps' });

    // Redis comes back empty (no persistence): the nodes re-assert everything.
    await redis.restart(port);
    await Promise.all([connected(nodes.A), connected(nodes.B)]);
    await eventually(() => latestTotal(watchA) === expected && latestTotal(watchB) === expected,
      { ms: 15000, what: `both nodes to converge on ${expected}` });
    await eventually(async () => (await redisTotal(port, article)) === expected,
      { ms: 10000, what: `Redis to hold ${expected} again` });
    const ready = await request(`${nodes.A.http}/readyz`);
    assert.equal(ready.status, 200);
    assert.doesNotMatch(ready.text, /degraded/);
  });

  test('restart a node: totals intact on both nodes', async () => {
    assert.ok(expected > 0);
    const watchB = await watcher(nodes.B, article);
    clients.push(watchB);
    const { code } = await nodes.A.stop();
    assert.equal(code, 0);
    nodes.A = await startNode('A');
    await connected(nodes.A);
    const watchA = await watcher(nodes.A, article);
    clients.push(watchA);
    await eventually(() => latestTotal(watchA) === expected, { ms: 15000, what: `restarted A to show ${expected}` });
    assert.equal(latestTotal(watchB), expected);
    // A keeps clapping on top of what it had.
    const onA = await client.open(`${nodes.A.ws}?user=erin`);
    clients.push(onA);
    const ack = await onA.clap(article, 1);
    assert.equal(ack.accepted, 1);
    assert.equal(ack.durability, 'cluster');
    await eventually(() => latestTotal(watchB) === expected + 1, { ms: 10000, what: 'B to see the new clap' });
  });

  test('a crashed node\'s viewers expire from the other nodes within 30 s', async () => {
    nodes.C = await startNode('C');
    await connected(nodes.C);
    const viewersOf = (c) => c.viewers;
    const onA = await client.open(nodes.A.ws);
    clients.push(onA);
    onA.ws.on('message', (d) => {
      const f = JSON.parse(d.toString());
      const item = f.type === 'counts' && f.counts.find((x) => x.article === 'crash1');
      if (item) onA.viewers = item.viewers;
    });
    await onA.subscribe(['crash1']);
    const onC = await client.open(nodes.C.ws);
    clients.push(onC);
    await onC.subscribe(['crash1']);
    await eventually(() => viewersOf(onA) === 2, { ms: 10000, what: 'A to count C\'s reader' });
    nodes.C.child.kill('SIGKILL');
    await nodes.C.exited;
    delete nodes.C;
    const killed = Date.now();
    await eventually(() => viewersOf(onA) === 1, { ms: 35000, every: 100, what: 'C\'s reader to expire on A' });
    const took = Date.now() - killed;
    console.log(`crashed node's viewer expired after ${took} ms`);
    assert.ok(took <= 30000, `expired after ${took} ms`);
  });

  test('SIGTERM while Redis hangs: an in-flight clap is still acked (local) before the 1001 close', async () => {
    nodes.D = await startNode('D');
    await connected(nodes.D);
    const c = await client.open(`${nodes.D.ws}?user=gina`);
    clients.push(c);
    await c.subscribe(['hang1']);
    const proc = redis.procs.find((p) => p.port === port);
    proc.child.kill('SIGSTOP');
    try {
      const received = await metric(nodes.D, 'claps_messages_received_total');
      c.send({ type: 'clap', article: 'hang1', count: 2, id: 'gina-1' });
      // The clap is in flight (its op-id lookup or commit waits on Redis) when the drain starts.
      await eventually(async () => (await metric(nodes.D, 'claps_messages_received_total')) === received + 1,
        { what: 'the clap to reach node D' });
      nodes.D.child.kill('SIGTERM');
      const ack = await c.ack('gina-1', 10000);
      assert.equal(ack.type, 'ack');
      assert.equal(ack.accepted, 2);
      assert.equal(ack.durability, 'local');
      const closed = await c.closed;
      assert.equal(closed.code, 1001);
      assert.equal((await nodes.D.exited).code, 0);
      delete nodes.D;
    } finally {
      proc.child.kill('SIGCONT');
    }
  });

  test('flags: --redis or --sentinel need a valid --node-id; bad URLs exit non-zero', async () => {
    let r = await runClapsd(['--redis', `redis://127.0.0.1:${port}`, '--data-dir', tempDir()]);
    assert.equal(r.code, 2);
    assert.match(r.stdout + r.stderr, /--node-id/);
    r = await runClapsd(['--sentinel', '127.0.0.1:1', '--node-id', 'A', '--data-dir', tempDir()]);
    assert.equal(r.code, 2);
    assert.match(r.stdout + r.stderr, /--sentinel-master/);
    r = await runClapsd(['--redis', 'http://nope', '--node-id', 'A', '--data-dir', tempDir(), '--listen', '127.0.0.1:0']);
    assert.equal(r.code, 1);
    assert.match(r.stdout + r.stderr, /redis:\/\//);
    r = await runClapsd(['--redis', `redis://127.0.0.1:${port}`, '--node-id', 'bad id!', '--data-dir', tempDir()]);
    assert.equal(r.code, 2);
    r = await runClapsd(['--help']);
    assert.match(r.stdout, /--sentinel-master/);
    assert.match(r.stdout, /--node-id/);
  });
});
