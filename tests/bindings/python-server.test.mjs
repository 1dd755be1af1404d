// bindings/python/examples/server.py (the Python binding inside an asyncio
// WebSocket server) against the real JS client and raw frames: subscribe,
// clap, counts and acks, a second client's update, undo, errors, a clean
// SIGTERM and the totals after a restart on the same LMDB directory, and
// examples/claps-simulate.mjs against it.
// Needs PYTHON (Debian's python3) and PYTHONPATH (build/bindings/python).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { ClapsClient } from '../../bindings/js/claps-client.js';
import { client, deadline, tempDir } from '../integration/helpers.mjs';

const SERVER = fileURLToPath(new URL('../../bindings/python/examples/server.py', import.meta.url));
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';

async function start(dataDir) {
  const child = spawn(PYTHON, [SERVER, '--listen', '127.0.0.1:0', '--data-dir', dataDir],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  const server = { child, stdout: '', stderr: '' };
  server.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  child.stderr.on('data', (d) => { server.stderr += d; });
  const port = await deadline(new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      server.stdout += d;
      const m = /listening on ws:\/\/127\.0\.0\.1:(\d+)\/ws/.exec(server.stdout);
      if (m) resolve(Number(m[1]));
    });
    server.exited.then(({ code }) => reject(new Error(`server.py exited (${code}): ${server.stderr}`)));
  }), 15000, 'server.py to listen');
  server.ws = `ws://127.0.0.1:${port}/ws`;
  server.stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const result = await deadline(server.exited, 15000, 'server.py to exit');
    assert.equal(result.code, 0, `server.py exited with ${result.code} (${result.signal}):\n${server.stderr}`);
  };
  return server;
}

function next_event(c, type, match = () => true, ms = 10000) {
  return deadline(new Promise((resolve) => {
    const off = c.on(type, (detail) => {
      if (!match(detail)) return;
      off();
      resolve(detail);
    });
  }), ms, `a '${type}' event`);
}

test('the JS client claps through server.py; a second client sees the update', async (t) => {
  const server = await start(tempDir('claps-py-server-'));
  t.after(() => server.stop());
  const alice = new ClapsClient({ url: `${server.ws}?user=alice`, WebSocket });
  const bob = new ClapsClient({ url: `${server.ws}?user=bob`, WebSocket });
  t.after(() => { alice.close(); bob.close(); });
  alice.subscribe(['py-a1']);
  bob.subscribe(['py-a1']);
  for (const c of [alice, bob]) {
    if (c.status !== 'live') await next_event(c, 'status', (s) => s.status === 'live');
  }
  assert.equal(alice.user, 'alice', 'from the hello frame');

  const acked = next_event(alice, 'ack');
  const bob_sees = next_event(bob, 'counts', ({ articles }) => articles.some((a) => a.article === 'py-a1' && a.total === 3));
  alice.clap('py-a1', 3);
  const ack = await acked;
  assert.equal(ack.article, 'py-a1');
  assert.equal(ack.accepted, 3);
  assert.equal(ack.total, 3);
  await bob_sees;
  assert.equal(bob.view('py-a1').viewers, 2);
  assert.equal(alice.view('py-a1').mine, 3);
  assert.equal(alice.unacknowledged, 0);
});

test('server.py answers raw frames as docs/protocol.md says, and keeps its totals across a restart', async () => {
  const dataDir = tempDir('claps-py-server-');
  let server = await start(dataDir);
  try {
    const c = await client.open(`${server.ws}?user=carol`);
    assert.deepEqual(c.hello, { type: 'hello', protocol: 1, user: 'carol', tick_ms: 25, cap: 50 });
    const snap = await c.subscribe(['py-b1']);
    assert.equal(snap.snapshot, true);
    assert.deepEqual(snap.counts, [{ article: 'py-b1', total: 0, viewers: 1, mine: 0 }]);

    let ack = await c.clap('py-b1', 40, 'op-1');
    assert.deepEqual([ack.type, ack.accepted, ack.total, ack.mine, ack.durability], ['ack', 40, 40, 40, 'local']);
    ack = await c.clap('py-b1', 40, 'op-2');
    assert.equal(ack.accepted, 10, 'the cap');
    ack = await c.clap('py-b1', 40, 'op-1');
    assert.deepEqual([ack.accepted, ack.total, ack.replayed], [40, 50, true]);
    const update = await c.update('py-b1', (u) => u.total === 50);
    assert.equal(update.viewers, 1);

    let error = await c.clap('py-b1', 0, 'op-3');
    assert.deepEqual([error.type, error.code, error.id], ['error', 'bad_request', 'op-3']);
    error = await c.clap('bad article!', 1, 'op-4');
    assert.equal(error.code, 'invalid_article');
    c.send('{not json');
    error = await c.error((f) => f.code === 'bad_request' && /JSON/.test(f.message));
    assert.ok(error);

    ack = await c.undo('py-b1', 'op-5');
    assert.deepEqual([ack.accepted, ack.total, ack.mine], [-50, 0, 0]);
    await c.clap('py-b1', 7, 'op-6');
    const closed = c.closed;
    await server.stop();
    assert.equal((await closed).code, 1001, 'closed as a server shutdown');

    server = await start(dataDir);
    const again = await client.open(`${server.ws}?user=carol`);
    const reopened = await again.subscribe(['py-b1']);
    assert.deepEqual([reopened.counts[0].total, reopened.counts[0].mine], [7, 7]);
    ack = await again.clap('py-b1', 7, 'op-6');
    assert.equal(ack.replayed, true, 'op ids survive the restart');
    again.ws.close();
  } finally {
    await server.stop();
  }
});

test('server.py refuses a bad handshake before the upgrade', async (t) => {
  const server = await start(tempDir('claps-py-server-'));
  t.after(() => server.stop());
  await assert.rejects(client.open(`${server.ws}?user=${encodeURIComponent('no spaces')}`), (e) => e.status === 400);
  await assert.rejects(client.open(server.ws.replace('/ws', '/other')), (e) => e.status === 404);
});

test('claps-simulate runs against server.py: every clap it sent is acknowledged', async (t) => {
  const server = await start(tempDir('claps-py-server-'));
  t.after(() => server.stop());
  const simulator = fileURLToPath(new URL('../../examples/claps-simulate.mjs', import.meta.url));
  const child = spawn(process.execPath, [simulator, '--url', server.ws, '--users', '4',
    '--articles', 'py-s1,py-s2', '--rate', '4', '--duration', '2', '--prefix', 'pysim'],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const code = await deadline(new Promise((resolve) => child.on('exit', resolve)), 30000, 'claps-simulate to exit');
  assert.equal(code, 0, stderr);
  const summary = /done; (\d+) claps sent, (\d+) acknowledged, (\d+) updates received, (\d+) errors/.exec(stdout);
  assert.ok(summary, stdout);
  const [sent, acked, updates, errors] = summary.slice(1).map(Number);
  assert.ok(sent > 0);
  assert.equal(acked, sent);
  assert.ok(updates > 0);
  assert.equal(errors, 0);
});
