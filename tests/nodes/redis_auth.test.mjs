// Redis and Sentinel with passwords: clapsd reads them from files
// (--redis-password-file, --sentinel-password-file), so they appear neither
// in ps nor in a URL.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { client, eventually, metric, startServer, tempDir } from '../integration/helpers.mjs';
import { redis_setup } from './redis_harness.mjs';
import { connectedToRedis } from './node_helpers.mjs';

const PASSWORD = 'redis-pass-0123456789';
process.env.REDISCLI_AUTH = PASSWORD;  // the harness's redis-cli calls authenticate

describe('Redis and Sentinel behind passwords', () => {
  let redis;
  const nodes = [];
  const files = tempDir();
  const secret = (name, text) => {
    const file = path.join(files, name);
    fs.writeFileSync(file, `${text}\n`, { mode: 0o600 });
    return file;
  };

  before(async () => { redis = await redis_setup.start({ replicas: 1, sentinels: 3, password: PASSWORD }); });
  after(async () => {
    for (const n of nodes) await n.stop();
    redis?.killAll();
  });

  const startNode = (id, passwordFile) => startServer({
    args: ['--sentinel', redis.sentinelList, '--sentinel-master', 'claps', '--node-id', id,
      '--sentinel-password-file', passwordFile, '--redis-password-file', passwordFile,
      '--redis-timeout-ms', '1000', '--log-level', 'warn'],
  });

  test('with the passwords from files, claps are acknowledged as cluster-durable', async () => {
    const node = await startNode('pw-a', secret('good', PASSWORD));
    nodes.push(node);
    await connectedToRedis(node);
    const c = await client.open(`${node.ws}?user=pat`);
    const ack = await c.clap('pw-1', 2, 'pw-op-1');
    assert.equal(ack.accepted, 2);
    assert.equal(ack.durability, 'cluster');
    await c.close();
  });

  test('a wrong password never reaches Redis: acks say local and the node stays degraded', async () => {
    const node = await startNode('pw-b', secret('bad', 'not-the-password'));
    nodes.push(node);
    const c = await client.open(`${node.ws}?user=pia`);
    const ack = await c.clap('pw-2', 1, 'pw-op-2');
    assert.equal(ack.accepted, 1);
    assert.equal(ack.durability, 'local');
    await eventually(async () => (await metric(node, 'claps_cluster_degraded')) === 1,
      { ms: 5000, what: 'the node to report degraded' });
    assert.equal(await metric(node, 'claps_redis_connected'), 0);
    await c.close();
  });

  test('an unreadable password file stops clapsd at start with the flag named', async () => {
    const { runClapsd } = await import('../integration/helpers.mjs');
    const r = await runClapsd(['--listen', '127.0.0.1:0', '--data-dir', tempDir(), '--redis', 'redis://127.0.0.1:1',
      '--node-id', 'pw-c', '--redis-password-file', path.join(files, 'missing')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--redis-password-file/);
  });
});
