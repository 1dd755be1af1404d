// A client that sends subscribes faster than Redis answers them (found by
// the soak, docs/reliability.md). On a node of several every subscribe, even
// of articles the connection already watches, reads each article from Redis
// before its snapshot (one script call per article), and waiting subscribes
// are not output yet, so --slow-client-bytes does not see them. What bounds
// them is the user's token bucket (--rate-limit): past its burst a subscribe
// is refused at once with rate_limited, before any Redis work.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { client, deadline } from '../integration/helpers.mjs';
import { redis_setup } from './redis_harness.mjs';
import { connectedToRedis, processMemory, startRedisNode } from './node_helpers.mjs';

let redis;
let node;
before(async () => {
  redis = await redis_setup.start({ replicas: 0, sentinels: 0 });
  node = await startRedisNode({ port: redis.masterPort, id: 'A' });
  await connectedToRedis(node);
});
after(async () => {
  await node?.stop();
  await redis?.stop();
});

test('3,000 subscribes of 25 articles sent while Redis pauses 800 ms cost the node at most 10 MB', async () => {
    const articles = Array.from({ length: 25 }, (_, i) => `sf-${String(i).padStart(2, '0')}-${'x'.repeat(110)}`);
    const c = await client.open(`${node.ws}?user=flood`);
    await c.subscribe(articles);
    const start = processMemory(node.child.pid).rss;
    let peak = start;
    const sampler = setInterval(() => { peak = Math.max(peak, processMemory(node.child.pid).rss); }, 10);
    try {
      await redis.pause(redis.masterPort, 800);
      const message = JSON.stringify({ type: 'subscribe', articles });
      for (let i = 0; i < 3000; ++i) c.send(message);
      // Answered, or closed as a slow consumer: either way the node is done with them.
      let answered = 0;
      let limited = 0;
      await deadline(new Promise((resolve) => c.ws.on('message', (d) => {
        const f = JSON.parse(d);
        if (f.type === 'error' && f.code === 'rate_limited') limited++;
        if ((f.snapshot || f.type === 'error') && ++answered === 3000) resolve();
      })), 30000, 'every subscribe answered');
      // All but the burst (and what refilled meanwhile) refused before any Redis work.
      assert.ok(limited >= 2900, `${limited} of 3,000 refused as rate_limited`);
    } finally {
      clearInterval(sampler);
      c.terminate();
    }
    console.log(`node RSS ${start} KiB, peak ${peak} KiB`);
    assert.ok(peak - start <= 10 * 1024, `RSS grew ${peak - start} KiB`);
  });
