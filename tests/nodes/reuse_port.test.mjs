// Two real clapsd processes on ONE port (--reuse-port: SO_REUSEPORT, the
// kernel spreads connects), joined by a real redis-server, as one process per
// core runs: clients on both see one total; SIGTERM of one closes exactly its
// clients (1001) while the other keeps serving the port. Also: a clapsd
// without --reuse-port cannot take the port, and running out of descriptors
// pauses accepting instead of spinning.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import {
  client, deadline, eventually, metric, rawConnect, request, runClapsd, startServer, tempDir,
} from '../integration/helpers.mjs';
import { redis_setup } from './redis_harness.mjs';
import { latestTotal, watcher } from './node_helpers.mjs';

const article = 'shared-port-1';

/** GET on a fresh connection (no keep-alive), so the kernel picks a process each time. */
function freshGet(port, path) {
  return deadline(new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    }).on('error', reject);
  }), 5000, `GET ${path}`);
}

describe('two clapsd processes sharing one port with --reuse-port', () => {
  let redis;
  let port;
  const procs = {};
  const viewers = [];
  let expected = 0;

  const startProcess = (id, listen) => startServer({
    listen,
    dataDir: tempDir(),
    args: ['--reuse-port', '--redis', redis.url, '--node-id', id, '--log-level', 'warn',
      '--shutdown-timeout-s', '3'],
  });
  const shared = () => ({ ws: `ws://127.0.0.1:${port}/ws`, http: `http://127.0.0.1:${port}` });

  before(async () => {
    redis = await redis_setup.start({ replicas: 0, sentinels: 0 });
    procs.A = await startProcess('A', '127.0.0.1:0');
    port = procs.A.port;
    procs.B = await startProcess('B', `127.0.0.1:${port}`);
    assert.equal(procs.B.port, port, 'the second process reports the shared port');
    // Both processes answer on the port and reach Redis.
    const connected = new Set();
    await eventually(async () => {
      const { body } = await freshGet(port, '/metrics');
      const node = body.match(/^claps_node_info\{node="(\w+)"\} 1$/m)?.[1];
      if (node && /^claps_redis_connected 1$/m.test(body)) connected.add(node);
      return connected.size === 2;
    }, { ms: 20000, every: 20, what: 'both processes to answer /metrics on the shared port, connected to Redis' });
  });

  after(async () => {
    for (const v of viewers) v.terminate();
    await Promise.all(Object.values(procs).map((p) => p.stop().catch(() => p.child.kill('SIGKILL'))));
    await redis?.stop();
  });

  test('a clapsd without --reuse-port cannot take the shared port; --reuse-port cannot take a plain one', async () => {
    // (Also when the suite runs with CLAPS_REUSE_PORT=1 in the environment.)
    const third = await runClapsd(['--listen', `127.0.0.1:${port}`, '--data-dir', tempDir(), '--redis', redis.url,
      '--node-id', 'C'], { CLAPS_REUSE_PORT: 'false' });
    assert.notEqual(third.code, 0);
    assert.equal(third.code, 1, third.stderr);
    assert.match(third.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}`));
    assert.equal(third.stdout, '');

    // A port held without SO_REUSEPORT (node's net.Server does not set it).
    const plain = net.createServer();
    await new Promise((resolve) => plain.listen(0, '127.0.0.1', resolve));
    const plainPort = plain.address().port;
    const sharer = await runClapsd(['--reuse-port', '--listen', `127.0.0.1:${plainPort}`, '--data-dir', tempDir()]);
    await new Promise((resolve) => plain.close(resolve));
    assert.equal(sharer.code, 1, sharer.stderr);
    assert.match(sharer.stderr, /cannot listen on 127\.0\.0\.1:\d+ with --reuse-port: bind: Address already in use/);
    assert.match(sharer.stderr, /without SO_REUSEPORT/);
  });

  test('40 viewers on the shared port land on both processes (hello.node)', async (t) => {
    for (let i = 0; i < 40; ++i) viewers.push(await watcher(shared(), article, `viewer-${i}`));
    // All on one process has probability 2^-39; if it happens, connect more (bounded).
    for (let extra = 0; extra < 100 && new Set(viewers.map((v) => v.hello.node)).size < 2; ++extra)
      viewers.push(await watcher(shared(), article, `extra-${extra}`));
    const nodes = new Set(viewers.map((v) => v.hello.node));
    assert.deepEqual([...nodes].sort(), ['A', 'B']);
    const onA = viewers.filter((v) => v.hello.node === 'A').length;
    assert.ok(onA > 0 && onA < viewers.length, `${onA} of ${viewers.length} on A`);
    t.diagnostic(`${onA} of ${viewers.length} viewers on A, ${viewers.length - onA} on B`);
  });

  test('a clap on one process reaches every viewer on both (through Redis)', async () => {
    const clapper = viewers.find((v) => v.hello.node === 'B');
    const ack = await clapper.clap(article, 5);
    assert.equal(ack.type, 'ack');
    expected = ack.total;
    assert.equal(expected, 5);
    await eventually(() => viewers.every((v) => latestTotal(v) === expected),
      { ms: 15000, what: `all ${viewers.length} viewers to show ${expected}` });
  });

  test('REST and /metrics work through the shared port', async () => {
    const posted = await request(`${shared().http}/api/articles/${article}/claps?user=rest-user`, {
      method: 'POST', body: JSON.stringify({ count: 2, id: 'rest-op-1' }),
    });
    assert.equal(posted.status, 200, posted.text);
    assert.equal(posted.json.accepted, 2);
    expected += 2;
    assert.equal(posted.json.total, expected);
    await eventually(() => viewers.every((v) => latestTotal(v) === expected),
      { ms: 15000, what: `all viewers to show ${expected} after the REST clap` });
    // Each process, asked on a fresh connection, answers the same total.
    const seen = new Set();
    await eventually(async () => {
      const { body } = await freshGet(port, '/metrics');
      const node = body.match(/^claps_node_info\{node="(\w+)"\} 1$/m)?.[1];
      assert.match(body, /^claps_accepts_total \d+$/m);
      const got = await freshGet(port, `/api/articles/${article}`);
      assert.equal(got.status, 200);
      assert.equal(JSON.parse(got.body).total, expected);
      if (node) seen.add(node);
      return seen.size === 2;
    }, { ms: 20000, every: 10, what: '/metrics from both processes' });
  });

  test('SIGTERM one process: exactly its clients get 1001; the other keeps the port and the claps', async () => {
    const onA = viewers.filter((v) => v.hello.node === 'A');
    const onB = viewers.filter((v) => v.hello.node === 'B');
    procs.A.child.kill('SIGTERM');
    const closes = await deadline(Promise.all(onA.map((v) => v.closed)), 15000, 'A\'s clients to be closed');
    assert.ok(closes.every((c) => c.code === 1001), `close codes ${closes.map((c) => c.code)}`);
    const { code } = await deadline(procs.A.exited, 15000, 'A to exit');
    assert.equal(code, 0, procs.A.stderr);
    delete procs.A;
    assert.ok(onB.every((v) => v.ws.readyState === v.ws.OPEN), 'every client on B is still open');

    const ack = await onB[0].clap(article, 3);
    assert.equal(ack.type, 'ack');
    expected += 3;
    assert.equal(ack.total, expected);
    await eventually(() => onB.every((v) => latestTotal(v) === expected),
      { ms: 15000, what: `B's viewers to show ${expected}` });

    // A connect may race A's close (reset in A's backlog); retry, bounded.
    let late;
    for (let attempt = 0; !late && attempt < 20; ++attempt) {
      try { late = await watcher(shared(), article, `late-${attempt}`); } catch { /* raced the close */ }
    }
    assert.ok(late, 'a new client could connect to the shared port');
    viewers.push(late);
    assert.equal(late.hello.node, 'B');
    assert.equal(latestTotal(late), expected);
    const lateAck = await late.clap(article, 1);
    assert.equal(lateAck.total, expected + 1);
    expected += 1;
  });
});

test('--reuse-port out of descriptors: accepting pauses (counted, no spin) and recovers', async (t) => {
  // About 14 descriptors are clapsd's own: the rest is far fewer than 60 connections.
  const server = await startServer({
    launcher: ['prlimit', '--nofile=32', '--'],
    args: ['--reuse-port', '--store=memory', '--handshake-timeout-s', '1', '--log-level', 'error'],
  });
  try {
    const started = Date.now();
    // Held silent: the handshake deadline closes each, freeing a descriptor
    // for the connects that wait in the backlog meanwhile.
    const sockets = await Promise.all(Array.from({ length: 60 }, () => rawConnect(server.port)));
    await deadline(Promise.all(sockets.map((s) => {
      s.on('error', () => {});
      return new Promise((resolve) => s.once('close', resolve));
    })), 60000, 'every held connection to be accepted and timed out');
    const elapsed = Date.now() - started;
    const pauses = await metric(server, 'claps_accept_fd_exhausted_total');
    t.diagnostic(`${pauses} accept pauses (EMFILE) in ${elapsed} ms`);
    assert.ok(pauses >= 1, 'running out of descriptors was counted');
    // One pause per 100 ms at most: a spinning accept would count thousands.
    assert.ok(pauses <= elapsed / 100 + 5, `${pauses} pauses in ${elapsed} ms`);
    assert.ok((await metric(server, 'claps_accepts_total')) >= 60);
    const c = await client.open(`${server.ws}?user=after`);
    assert.equal(c.hello.type, 'hello');
    assert.equal('node' in c.hello, false, 'no "node" in hello without --node-id');
    await c.close();
  } finally {
    await server.stop();
  }
});
