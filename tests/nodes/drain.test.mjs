// The SIGTERM drain with Redis: node A is drained (grace, then 1001 closes in
// batches) while its clients clap without pause; every clap A acknowledged
// reaches node B through Redis, and A exits 0 within grace + spread + margin.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { client, deadline, tempDir } from '../integration/helpers.mjs';
import { redis_setup } from './redis_harness.mjs';
import { connectedToRedis, startRedisNode, untilReads } from './node_helpers.mjs';

const GRACE_S = 1;
const SPREAD_S = 2;
const CLAPPERS = 16;
const ARTICLE = 'drain-nodes';

let redis;
const nodes = {};
const clients = [];

/** Claps 1 at a time (the next once the last is answered) until the connection closes. */
async function clapUntilClosed(c, name, t0) {
  let closed = false;
  c.closed.then(() => { closed = true; });
  const acked = [];
  for (let i = 0; !closed && i < 200; ++i) {
    const id = `${name}-${i}`;
    c.send({ type: 'clap', article: ARTICLE, count: 1, id });
    const reply = await c.answerOrClose(id);
    if (reply?.type === 'ack') acked.push({ ...reply, at: performance.now() - t0.at });
    else if (reply) assert.equal(reply.code, 'unavailable', JSON.stringify(reply));
  }
  return acked;
}

describe('draining a node on Redis', () => {
  before(async () => {
    redis = await redis_setup.start({ replicas: 0, sentinels: 0 });
    const start = (id, args = []) => startRedisNode({ port: redis.masterPort, id, dataDir: tempDir(), args });
    [nodes.A, nodes.B] = await Promise.all([
      // A 100 ms tick keeps many claps in flight; no rate limit in the way.
      start('A', ['--drain-grace-s', String(GRACE_S), '--drain-spread-s', String(SPREAD_S),
        '--shutdown-timeout-s', '8', '--tick-ms', '100', '--rate-limit', '1000', '--rate-burst', '1000',
        '--log-level', 'info']),
      start('B'),
    ]);
    await Promise.all([connectedToRedis(nodes.A), connectedToRedis(nodes.B)]);
  });

  after(async () => {
    for (const c of clients) c.terminate();
    await Promise.all(Object.values(nodes).map((n) => n.stop().catch(() => n.child.kill('SIGKILL'))));
    await redis?.stop();
  });

  test('claps keep being acknowledged through the grace and the spread, and every one reaches the other node', async (t) => {
    const clappers = [];
    for (let i = 0; i < CLAPPERS; ++i) {
      const c = await client.open(`${nodes.A.ws}?user=drain-${i}`);
      clients.push(c);
      clappers.push(c);
    }
    const t0 = performance.now();
    const closes = clappers.map((c) => c.closed.then(({ code }) => ({ code, at: performance.now() - t0 })));
    const runs = clappers.map((c, i) => clapUntilClosed(c, `c${i}`, { at: t0 }));
    nodes.A.child.kill('SIGTERM');

    const acked = (await deadline(Promise.all(runs), 20000, 'the clappers to be closed')).flat();
    const closed = await Promise.all(closes);
    assert.ok(closed.every((c) => c.code === 1001), JSON.stringify(closed.map((c) => c.code)));
    const times = closed.map((c) => c.at).sort((a, b) => a - b);
    assert.ok(times[0] >= GRACE_S * 1000 - 50, `first close ${times[0]} ms after SIGTERM, inside the grace`);
    assert.ok(times.at(-1) - times[0] >= SPREAD_S * 1000 / 2, `closes spanned ${times.at(-1) - times[0]} ms`);
    const inRedis = acked.filter((a) => a.durability === 'cluster');
    assert.equal(inRedis.length, acked.length, 'every ack says the clap is in Redis');
    assert.ok(acked.length >= CLAPPERS * 10, `only ${acked.length} claps acknowledged during the drain`);
    // Clients not yet closed clap on while the batches go out.
    const inSpread = acked.filter((a) => a.at > times[0]).length;
    t.diagnostic(`${acked.length} claps acked, ${inSpread} after the first close; closes ${Math.round(times[0])}-${Math.round(times.at(-1))} ms after SIGTERM`);
    assert.ok(inSpread > 0, 'no clap was acknowledged after the first batch closed');

    const { code } = await deadline(nodes.A.exited, 10000, 'A to exit');
    assert.equal(code, 0, nodes.A.stderr);
    assert.ok(performance.now() - t0 < (GRACE_S + SPREAD_S + 4) * 1000, 'A exited within grace + spread + 4 s');
    const total = acked.reduce((sum, a) => sum + a.accepted, 0);
    await untilReads([[nodes.B, ARTICLE, undefined, (r) => r.total === total]],
      { ms: 10000, what: `B to show exactly the ${total} claps A acknowledged (more: an ack was cut off by a close)` });
  });
});
