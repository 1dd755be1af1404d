// The SIGTERM drain a load balancer can follow: /readyz 503 at once (admin
// listener and public port), the listener still serving for --drain-grace-s,
// then every client closed with 1001 in batches spread over --drain-spread-s,
// every acknowledged clap on disk, exit 0. With --reuse-port the listener
// closes at once instead, so the kernel sends new connects to the siblings.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  client, deadline, eventually, rawConnect, request, runClapsd, sseStream, startServer, tempDir,
} from './helpers.mjs';

const GRACE_MS = 2000;
const SPREAD_MS = 2000;
const CLIENTS = 40;

/** Resolves true when a fresh TCP connect to `port` is refused, false when it is accepted. */
async function refused(port) {
  try {
    const socket = await rawConnect(port);
    socket.destroy();
    return false;
  } catch (e) {
    if (e.code === 'ECONNREFUSED') return true;
    throw e;
  }
}

/** Opens `n` WebSockets, each recording when (ms after `clock.t0`) and how it closed. */
async function openClients(server, n, prefix, clock) {
  const out = [];
  for (let i = 0; i < n; ++i) {
    const c = await client.open(`${server.ws}?user=${prefix}-${i}`);
    c.closedAt = c.closed.then(({ code }) => ({ code, at: performance.now() - clock.t0 }));
    out.push(c);
  }
  return out;
}

/** Close times grouped into batches: a gap of more than 100 ms starts a new one. */
function batchesOf(times) {
  const sorted = [...times].sort((a, b) => a - b);
  let batches = sorted.length ? 1 : 0;
  for (let i = 1; i < sorted.length; ++i) if (sorted[i] - sorted[i - 1] > 100) ++batches;
  return { batches, first: sorted[0], last: sorted[sorted.length - 1] };
}

test('SIGTERM without --reuse-port: 503 first, the listener serves through the grace, then spread 1001 closes', async (t) => {
  const dir = tempDir();
  const args = ['--admin-listen', '127.0.0.1:0', '--drain-grace-s', String(GRACE_MS / 1000),
    '--drain-spread-s', String(SPREAD_MS / 1000), '--shutdown-timeout-s', '10', '--tick-ms', '20'];
  const server = await startServer({ dataDir: dir, args });
  const clock = { t0: 0 };
  const acked = [];
  try {
    assert.equal((await request(`${server.admin}/readyz`)).status, 200);
    const clients = await openClients(server, CLIENTS, 'held', clock);
    await clients[0].subscribe(['drain-a']);
    assert.equal((await clients[0].clap('drain-a', 1, 'before')).type, 'ack');
    acked.push({ article: 'drain-a', count: 1 });
    // An SSE reader is a client too: it ends in one of the batches.
    const reader = sseStream(`${server.http}/api/articles/drain-a/events`);
    assert.equal((await reader.response).statusCode, 200);
    const readerEnded = reader.closed.then(() => performance.now() - clock.t0);

    clock.t0 = performance.now();
    server.child.kill('SIGTERM');
    const since = () => performance.now() - clock.t0;

    // Readiness turns 503 at once, on both listeners, saying why.
    const admin503 = await eventually(async () => {
      const r = await request(`${server.admin}/readyz`);
      return r.status === 503 && r;
    }, { ms: 1000, every: 10, what: 'admin /readyz 503' });
    assert.equal(admin503.json.reason, 'draining', admin503.text);
    assert.match(admin503.json.message, /draining/);
    const main503 = await request(`${server.http}/readyz`);
    assert.equal(main503.status, 503);
    assert.equal(main503.json.reason, 'draining');
    const metrics = (await request(`${server.admin}/metrics`)).text;
    assert.match(metrics, /^claps_drain_phase\{phase="grace"\} 1$/m);
    assert.match(metrics, /^claps_ready 0$/m);
    assert.ok(since() < GRACE_MS / 2, `503 came ${since()} ms after SIGTERM`);

    // During the grace the listener accepts and serves as usual: a new
    // WebSocket subscribes and claps, and an existing one claps too.
    assert.equal(await refused(server.port), false, 'the listener accepts during the grace');
    const late = await client.open(`${server.ws}?user=late`);
    late.closedAt = late.closed.then(({ code }) => ({ code, at: performance.now() - clock.t0 }));
    clients.push(late);
    const snap = await late.subscribe(['drain-a']);
    assert.equal(snap.type, 'counts');
    const lateAck = await late.clap('drain-a', 2, 'late-1');
    assert.equal(lateAck.type, 'ack', JSON.stringify(lateAck));
    acked.push({ article: 'drain-a', count: 2 });
    const heldAck = await clients[1].clap('drain-b', 3, 'held-1');
    assert.equal(heldAck.type, 'ack', JSON.stringify(heldAck));
    acked.push({ article: 'drain-b', count: 3 });
    assert.ok(since() < GRACE_MS, `the grace checks ran ${since()} ms after SIGTERM, past the grace`);

    // After the grace the listener refuses new connections.
    await eventually(() => refused(server.port), { ms: GRACE_MS + 3000, every: 25, what: 'the listener to close' });
    const closedAt = since();
    assert.ok(closedAt >= GRACE_MS - 50, `the listener closed ${closedAt} ms after SIGTERM, before the grace ended`);
    assert.match((await request(`${server.admin}/metrics`)).text, /^claps_drain_phase\{phase="closing"\} 1$/m);

    // Clients not yet closed keep clapping while the batches go out.
    const stillOpen = clients.filter((c) => c.ws.readyState === 1).at(-1);
    stillOpen.send({ type: 'clap', article: 'drain-c', count: 1, id: 'spread-1' });
    const spreadAck = await deadline(stillOpen.answerOrClose('spread-1'), 5000, 'an answer or a close');
    if (spreadAck?.type === 'ack') acked.push({ article: 'drain-c', count: 1 });
    else if (spreadAck) assert.equal(spreadAck.code, 'unavailable', JSON.stringify(spreadAck));

    const closes = await deadline(Promise.all(clients.map((c) => c.closedAt)), SPREAD_MS + 5000, 'every close');
    assert.ok(closes.every((c) => c.code === 1001), JSON.stringify(closes.map((c) => c.code)));
    const spread = batchesOf(closes.map((c) => c.at));
    t.diagnostic(`closes after SIGTERM: ${JSON.stringify(spread)}`);
    const readerAt = await deadline(readerEnded, 5000, 'the SSE stream to end');
    assert.ok(readerAt >= GRACE_MS - 50, `the SSE stream ended ${readerAt} ms after SIGTERM, inside the grace`);
    assert.ok(spread.first >= GRACE_MS - 50, `the first close came ${spread.first} ms after SIGTERM, inside the grace`);
    assert.ok(spread.batches >= 3, `closes came in ${spread.batches} batches: ${JSON.stringify(spread)}`);
    assert.ok(spread.last - spread.first >= SPREAD_MS / 2,
      `closes spanned ${spread.last - spread.first} ms of a ${SPREAD_MS} ms spread`);

    const { code } = await deadline(server.exited, 10000, 'exit');
    assert.equal(code, 0, server.stderr);
    assert.ok(since() < GRACE_MS + SPREAD_MS + 3000, `exit took ${since()} ms`);
    // A log line per phase (41 WebSockets and the SSE stream).
    for (const phase of [/received SIGTERM: draining: readyz 503; listener serving 2 s more/,
      /drain: listener closed; closing 42 clients in 8 batches, one every 250 ms/,
      /drain: every client told to close/, /shut down cleanly/])
      assert.match(server.stderr, phase);
  } finally {
    if (server.child.exitCode === null) server.child.kill('SIGKILL');
  }

  // Every acknowledged clap is on disk.
  const again = await startServer({ dataDir: dir });
  try {
    const expected = {};
    for (const { article, count } of acked) expected[article] = (expected[article] ?? 0) + count;
    for (const [article, total] of Object.entries(expected)) {
      const r = await request(`${again.http}/api/articles/${article}`);
      assert.equal(r.json.total, total, `${article}: ${r.text}`);
    }
  } finally {
    await again.stop();
  }
});

test('SIGTERM with --reuse-port: the listener closes at once, clients still get spread closes', async (t) => {
  const args = ['--admin-listen', '127.0.0.1:0', '--reuse-port', '--drain-grace-s', String(GRACE_MS / 1000),
    '--drain-spread-s', String(SPREAD_MS / 1000), '--shutdown-timeout-s', '10'];
  const server = await startServer({ args });
  const clock = { t0: 0 };
  try {
    const clients = await openClients(server, 24, 'shared', clock);
    clock.t0 = performance.now();
    server.child.kill('SIGTERM');
    const since = () => performance.now() - clock.t0;
    await eventually(async () => (await request(`${server.admin}/readyz`)).status === 503,
      { ms: 1000, every: 10, what: 'admin /readyz 503' });
    await eventually(() => refused(server.port), { ms: 1000, every: 10, what: 'the listener to close' });
    assert.ok(since() < GRACE_MS / 2, `the listener closed ${since()} ms after SIGTERM: it waited for a grace`);

    const closes = await deadline(Promise.all(clients.map((c) => c.closedAt)), SPREAD_MS + 5000, 'every close');
    assert.ok(closes.every((c) => c.code === 1001), JSON.stringify(closes.map((c) => c.code)));
    const spread = batchesOf(closes.map((c) => c.at));
    t.diagnostic(`closes after SIGTERM: ${JSON.stringify(spread)}`);
    assert.ok(spread.first < GRACE_MS / 2, `the first close came ${spread.first} ms after SIGTERM`);
    assert.ok(spread.batches >= 3, `closes came in ${spread.batches} batches: ${JSON.stringify(spread)}`);
    assert.ok(spread.last - spread.first >= SPREAD_MS / 2,
      `closes spanned ${spread.last - spread.first} ms of a ${SPREAD_MS} ms spread`);
    const { code } = await deadline(server.exited, 10000, 'exit');
    assert.equal(code, 0, server.stderr);
    assert.match(server.stderr, /no grace \(--reuse-port/);
  } finally {
    if (server.child.exitCode === null) server.child.kill('SIGKILL');
  }
});

test('SIGINT drains without grace or spread; a second SIGTERM during the grace exits at once', async () => {
  const args = ['--drain-grace-s', String(GRACE_MS / 1000), '--drain-spread-s', String(SPREAD_MS / 1000),
    '--shutdown-timeout-s', '10'];
  const dir = tempDir();
  let server = await startServer({ dataDir: dir, args });
  const clock = { t0: 0 };
  const clients = await openClients(server, 10, 'ctrl-c', clock);
  assert.equal((await clients[0].clap('drain-int', 2, 'int-1')).type, 'ack');
  clock.t0 = performance.now();
  server.child.kill('SIGINT');
  const closes = await deadline(Promise.all(clients.map((c) => c.closedAt)), 5000, 'every close');
  assert.ok(closes.every((c) => c.code === 1001), JSON.stringify(closes.map((c) => c.code)));
  const spread = batchesOf(closes.map((c) => c.at));
  assert.equal(spread.batches, 1, `SIGINT closed in ${spread.batches} batches: ${JSON.stringify(spread)}`);
  assert.ok(spread.last < GRACE_MS / 2, `SIGINT closed clients ${spread.last} ms after the signal`);
  assert.equal((await deadline(server.exited, 5000, 'exit')).code, 0, server.stderr);
  assert.match(server.stderr, /received SIGINT: draining: readyz 503; no grace \(SIGINT\)/);

  // A second signal in the grace: out at once, the claps still committed.
  server = await startServer({ dataDir: dir, args });
  const held = await client.open(`${server.ws}?user=twice`);
  assert.equal((await held.clap('drain-int', 3, 'int-2')).type, 'ack');
  const t0 = performance.now();
  server.child.kill('SIGTERM');
  await eventually(async () => (await request(`${server.http}/readyz`)).status === 503,
    { ms: 1000, every: 10, what: '/readyz 503' });
  server.child.kill('SIGTERM');
  assert.equal((await deadline(server.exited, 5000, 'exit')).code, 0, server.stderr);
  assert.ok(performance.now() - t0 < GRACE_MS, `a second SIGTERM took ${performance.now() - t0} ms to exit`);
  assert.match(server.stderr, /second signal: exiting without waiting for clients/);
  const again = await startServer({ dataDir: dir });
  try {
    assert.equal((await request(`${again.http}/api/articles/drain-int`)).json.total, 5);
  } finally {
    await again.stop();
  }
});

test('a drain that does not fit in --shutdown-timeout-s is refused at start', async () => {
  const r = await runClapsd(['--store', 'memory', '--listen', '127.0.0.1:0', '--drain-grace-s', '5',
    '--drain-spread-s', '5', '--shutdown-timeout-s', '8']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--drain-grace-s 5 \+ --drain-spread-s 5 do not fit in --shutdown-timeout-s 8/);
  assert.equal(r.stdout, '');
});
