// --node-id is bound to one data directory: a second clapsd started with the
// same node id on another directory (a copy-paste in a deployment) must not
// overwrite the first one's per-node values in Redis. It keeps serving, acks
// claps as locally durable, and /readyz answers 503 so it is drained; the
// rightful node, restarted on its own directory, keeps its id.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { client, eventually, metric, request, startServer, tempDir } from '../integration/helpers.mjs';
import { cli, redis_setup } from './redis_harness.mjs';

let redis;
let port;
const servers = [];
const clients = [];
const dirs = { first: tempDir(), second: tempDir() };

function startNode(dataDir, id = 'N1') {
  const s = startServer({
    dataDir,
    args: ['--redis', `redis://127.0.0.1:${port}`, '--node-id', id, '--redis-timeout-ms', '1000',
      '--log-level', 'warn'],
  });
  s.then((server) => servers.push(server));
  return s;
}

async function open(node, user) {
  const c = await client.open(`${node.ws}?user=${user}`);
  clients.push(c);
  return c;
}

// This node's part of an article in Redis ("version:total" under field `id`).
async function redisPart(article, id) {
  const v = await cli(port, 'HGET', `claps:t:{${article}}`, id);
  return v ? Number(v.split(':')[1]) : undefined;
}

describe('one --node-id per data directory', () => {
  before(async () => {
    redis = await redis_setup.start({ replicas: 0, sentinels: 0 });
    port = redis.masterPort;
  });

  after(async () => {
    for (const c of clients) c.terminate();
    await Promise.all(servers.map((s) => s.stop().catch(() => s.child.kill('SIGKILL'))));
    await redis?.stop();
  });

  test('a second directory with the same node id writes nothing to Redis and is drained', async () => {
    const first = await startNode(dirs.first);
    await eventually(async () => (await request(`${first.http}/readyz`)).json?.status === 'ready',
      { ms: 15000, what: 'the first node ready on Redis' });
    const owner = readFileSync(`${dirs.first}/node-owner`, 'utf8').trim();
    assert.match(owner, /^[0-9a-f]{32}$/);
    assert.equal(await cli(port, 'GET', 'claps:node:{N1}'), owner);
    const alice = await open(first, 'alice');
    const ack = await alice.clap('dup1', 7);
    assert.equal(ack.durability, 'cluster');
    assert.equal(await redisPart('dup1', 'N1'), 7);

    const second = await startNode(dirs.second);
    await eventually(async () => (await metric(second, 'claps_cluster_node_id_taken')) === 1,
      { ms: 15000, what: 'the second node to find its id taken' });
    // The log line may arrive just after the metric flips.
    await eventually(() => /node id 'N1' belongs to another data directory/.test(second.stderr),
      { ms: 5000, what: 'the second node to log why it writes nothing to Redis' });
    const ready = await request(`${second.http}/readyz`);
    assert.equal(ready.status, 503);
    assert.match(ready.json.message, /belongs to another data directory/);
    assert.equal(await metric(second, 'claps_ready'), 0, 'claps_ready says what /readyz says');
    assert.equal(await metric(first, 'claps_ready'), 1);
    // It still serves, and keeps what it acknowledges, but only locally.
    const bob = await open(second, 'bob');
    const local = await bob.clap('dup1', 2);
    assert.equal(local.accepted, 2);
    assert.equal(local.durability, 'local');
    assert.equal(await metric(second, 'claps_cluster_degraded'), 1);
    // The first node's value in Redis was not overwritten, and it still owns the id.
    assert.equal(await redisPart('dup1', 'N1'), 7);
    assert.equal(await cli(port, 'GET', 'claps:node:{N1}'), owner);
    assert.equal(await metric(first, 'claps_cluster_node_id_taken'), 0);
    assert.equal((await alice.clap('dup1', 1)).durability, 'cluster');
    await eventually(async () => (await redisPart('dup1', 'N1')) === 8, { what: 'the first node\'s next write' });
    await second.stop();

    // The rightful node restarts on its own directory: same owner, same id.
    await first.stop();
    const again = await startNode(dirs.first);
    await eventually(async () => (await request(`${again.http}/readyz`)).json?.status === 'ready',
      { ms: 15000, what: 'the restarted node ready on Redis' });
    assert.equal(await metric(again, 'claps_cluster_node_id_taken'), 0);
    const carol = await open(again, 'carol');
    const acked = await carol.clap('dup1', 1);
    assert.equal(acked.durability, 'cluster');
    assert.equal(acked.total, 9);
  });
});
