// The admin page's frame on two nodes sharing Redis: this node's id, the
// Redis state, and the other node's readers and claps in the top articles.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { client, deadline, tempDir } from '../integration/helpers.mjs';
import { connectedToRedis, startRedisNode } from './node_helpers.mjs';
import { redis_setup } from './redis_harness.mjs';

let redis;
const nodes = [];
const clients = [];

before(async () => {
  redis = await redis_setup.start({ replicas: 0, sentinels: 0 });
  for (const id of ['adm-a', 'adm-b'])
    nodes.push(await startRedisNode({ port: redis.masterPort, id, dataDir: tempDir(), args: ['--admin-listen', '127.0.0.1:0'] }));
  await Promise.all(nodes.map((n) => connectedToRedis({ http: n.admin })));
});

after(async () => {
  for (const c of clients) c.terminate();
  await Promise.all(nodes.map((s) => s.stop().catch(() => s.child.kill('SIGKILL'))));
  await redis?.stop();
});

async function open(node, user) {
  const c = await client.open(`${node.ws}?user=${user}`);
  clients.push(c);
  return c;
}

test('a node\'s admin frame shows Redis and the other node\'s readers and claps', async () => {
  const [a, b] = nodes;
  const admin = new client(`${a.admin.replace('http', 'ws')}/admin/ws`);
  clients.push(admin);
  await deadline(admin.opened, 5000, 'the admin socket');
  admin.send({ type: 'subscribe_admin' });
  const first = await admin.next((f) => f.type === 'admin', { ms: 10000 });
  assert.equal(first.node, 'adm-a');
  assert.equal(first.redis.connected, true);
  assert.equal(first.redis.bus_healthy, true);
  assert.equal(first.redis.node_id_taken, false);
  assert.equal(first.degraded, false);

  const here = await open(a, 'adm-reader-a');
  await here.subscribe(['adm-shared']);
  const there = await open(b, 'adm-reader-b');
  await there.subscribe(['adm-shared']);
  there.send({ type: 'clap', article: 'adm-shared', count: 4, id: 'c1' });
  await there.ack('c1');
  // Node b's reader and claps reach node a through Redis.
  const frame = await admin.next((f) => f.type === 'admin' && f.articles.by_viewers.some((x) =>
    x.article === 'adm-shared' && x.viewers === 2 && x.total === 4), { ms: 15000, what: 'the other node\'s part' });
  const row = frame.articles.by_viewers.find((x) => x.article === 'adm-shared');
  assert.equal(row.local_viewers, 1);
  assert.equal(row.remote_viewers, 1);
  assert.equal(row.claps_per_s, 0, 'claps/s counts this node\'s claps only');

  // Redis gone: the frame says so.
  await redis.kill(redis.masterPort);
  await admin.next((f) => f.type === 'admin' && f.redis.connected === false, { ms: 15000, what: 'Redis disconnected' });
});
