// A Redis restarted with data takes a while to load it, and answers ROLE but
// not commands (-LOADING) meanwhile. Found by the soak (docs/reliability.md):
// clapsd took every ROLE answer for a ready master, lost the link at its first
// command and connected again at once, dozens of times a second for as long
// as the load took. It must instead wait, backing off, until Redis is loaded.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, metrics } from '../integration/helpers.mjs';
import { cli, redis_setup } from './redis_harness.mjs';
import { connectedToRedis, startRedisNode } from './node_helpers.mjs';

let redis;
let node;
before(async () => {
  // 100 us per key when loading, and client events served every KB of it, so
  // 20,000 keys take about 2 s to load while clients get -LOADING.
  redis = await redis_setup.start({
    replicas: 0, sentinels: 0, appendonly: true,
    serverConf: ['key-load-delay 100', 'loading-process-events-interval-bytes 1024'],
  });
  node = await startRedisNode({ port: redis.masterPort, id: 'A' });
  await connectedToRedis(node);
});
after(async () => {
  await node?.stop();
  await redis?.stop();
});

test('a Redis still loading its data after a restart is waited for, not reconnected to in a loop', async () => {
  const port = redis.masterPort;
  await cli(port, 'EVAL', "for i = 1, 20000 do redis.call('SET', 'filler:' .. i, 'x') end", '0');
  // Rewritten, the AOF starts with an RDB preamble, which key-load-delay slows.
  await cli(port, 'BGREWRITEAOF');
  await eventually(async () => /aof_rewrite_in_progress:0/.test(await cli(port, 'INFO', 'persistence')) &&
    /aof_last_bgrewrite_status:ok/.test(await cli(port, 'INFO', 'persistence')),
  { ms: 10000, every: 50, what: 'the AOF rewrite' });
  const before = await metrics(node);
  const t0 = Date.now();
  await redis.kill(port, 'SIGTERM');
  await redis.restart(port);  // returns once PING answers: the data is loaded
  const loadedMs = Date.now() - t0;
  await connectedToRedis(node);
  const after = await metrics(node);
  const reconnects = after.claps_redis_reconnects_total - before.claps_redis_reconnects_total;
  console.log(`Redis back after ${loadedMs} ms; clapsd connected ${reconnects} time(s), ` +
    `${after.claps_redis_not_master_total - before.claps_redis_not_master_total} -LOADING/not-master answers`);
  assert.ok(loadedMs >= 1000, `the load took ${loadedMs} ms: too short to show anything`);
  assert.ok(reconnects <= 2, `${reconnects} reconnects while Redis loaded`);
});
