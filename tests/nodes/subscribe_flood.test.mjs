// A client that sends subscribes faster than Redis answers them (found by
// the soak, docs/reliability.md). On a node of several every subscribe, even
// of articles the connection already watches, reads each article from Redis
// before its snapshot (one script call per article), and nothing bounds how
// many subscribes a connection may have waiting: they are not output yet, so
// --slow-client-bytes does not see them, and subscribes are not rate-limited.
// Marked todo until that is bounded: it runs and reports, and does not fail
// the suite.
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

test('3,000 subscribes of 25 articles sent while Redis pauses 800 ms cost the node at most 10 MB',
  { todo: 'pending subscribes are not bounded per connection' }, async () => {
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
      await deadline(Promise.race([
        new Promise((resolve) => c.ws.on('message', (d) => { if (JSON.parse(d).snapshot && ++answered === 3000) resolve(); })),
        c.closed,
      ]), 30000, 'the subscribes to be answered or the client closed');
    } finally {
      clearInterval(sampler);
      c.terminate();
    }
    console.log(`node RSS ${start} KiB, peak ${peak} KiB`);
    assert.ok(peak - start <= 10 * 1024, `RSS grew ${peak - start} KiB`);
  });
