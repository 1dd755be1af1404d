// The admin page's frame on nodes sharing Redis: this node's id, the Redis
// state, the other node's readers and claps in the top articles, and the
// table of every node (live, viewers, part of the totals), where a node
// killed with SIGKILL goes stale.
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
  // adm-c is killed by the node table test.
  for (const id of ['adm-a', 'adm-b', 'adm-c'])
    nodes.push(await startRedisNode({ port: redis.masterPort, id, dataDir: tempDir(), args: ['--admin-listen', '127.0.0.1:0'] }));
  await Promise.all(nodes.map((n) => connectedToRedis({ http: n.admin })));
});

after(async () => {
  for (const c of clients) c.terminate();
  // adm-c died by SIGKILL: its exit is not clean.
  await Promise.all(nodes.map((s) => s.stop('SIGTERM', { clean: s !== nodes[2] }).catch(() => s.child.kill('SIGKILL'))));
  await redis?.stop();
});

async function open(node, user) {
  const c = await client.open(`${node.ws}?user=${user}`);
  clients.push(c);
  return c;
}

async function subscribe_admin(node) {
  const admin = new client(`${node.admin.replace('http', 'ws')}/admin/ws`);
  clients.push(admin);
  await deadline(admin.opened, 5000, 'the admin socket');
  admin.send({ type: 'subscribe_admin' });
  return admin;
}

/** The rows of a frame's node table by id. */
const node_rows = (f) => Object.fromEntries((f.redis?.nodes ?? []).map((n) => [n.id, n]));

test('a node\'s admin page lists every node: live, its viewers and part of the totals; a killed one goes stale', async () => {
  const [a, , c] = nodes;
  const admin = await subscribe_admin(a);
  const here = await open(a, 'adm-node-reader-a');
  await here.subscribe(['adm-nodes']);
  const there = await open(c, 'adm-node-reader-c');
  await there.subscribe(['adm-nodes']);
  there.send({ type: 'clap', article: 'adm-nodes', count: 5, id: 'n1' });
  await there.ack('n1');

  // Every node in the table (adm-b only through its heartbeat: it has no part
  // of adm-nodes), all live, adm-c with its reader and its 5 claps.
  const full = await admin.next((f) => {
    if (f.type !== 'admin') return false;
    const r = node_rows(f);
    return ['adm-a', 'adm-b', 'adm-c'].every((id) => r[id]?.live) && r['adm-c'].total === 5 &&
      r['adm-c'].viewers === 1 && r['adm-a'].viewers === 1;
  }, { ms: 20000, what: 'all three nodes live, adm-c with its viewer and claps' });
  const rows = node_rows(full);
  assert.deepEqual(full.redis.nodes.map((n) => n.id), ['adm-a', 'adm-b', 'adm-c'], 'sorted by id, nobody else');
  assert.equal(rows['adm-a'].self, true);
  assert.equal(rows['adm-c'].self, false);
  assert.equal(rows['adm-a'].total, 0, 'adm-a clapped nothing');
  assert.equal(rows['adm-b'].viewers, 0);
  assert.equal(rows['adm-b'].total, 0);
  assert.equal(rows['adm-c'].articles, 1);
  for (const id of ['adm-a', 'adm-b', 'adm-c'])
    assert.ok(rows[id].heartbeat_age_ms !== null && rows[id].heartbeat_age_ms < 20000, `${id} heard lately`);

  // kill -9 adm-c: on adm-a's page its heartbeat ages past the viewer TTL,
  // its reader expires with it, and its claps stay counted.
  c.child.kill('SIGKILL');
  await deadline(c.exited, 5000, 'adm-c to die');
  const from = admin.frames.length;
  const stale = await admin.next((f) => f.type === 'admin' && node_rows(f)['adm-c']?.live === false,
    { ms: 45000, from, what: 'adm-c stale on adm-a\'s page' });
  assert.ok(node_rows(stale)['adm-c'].heartbeat_age_ms >= 20000, JSON.stringify(node_rows(stale)['adm-c']));
  assert.equal(node_rows(stale)['adm-a'].live, true);
  assert.equal(node_rows(stale)['adm-b'].live, true);
  const gone = await admin.next((f) => f.type === 'admin' && node_rows(f)['adm-c']?.viewers === 0,
    { ms: 30000, what: 'adm-c\'s reader expired' });
  assert.equal(node_rows(gone)['adm-c'].total, 5, 'a dead node\'s claps still count');
  await here.close();
});

test('a node\'s admin frame shows Redis and the other node\'s readers and claps', async () => {
  const [a, b] = nodes;
  const admin = await subscribe_admin(a);
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
