// Limits that span connections (issue 11): one token bucket per user shared
// by WebSocket and REST, connections per client address (X-Forwarded-For
// only from --trusted-proxy), live op ids per user, a limiter that forgets
// idle users, and SSE readers that stopped reading.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { client, deadline, eventually, metric, request, startServer } from './helpers.mjs';

/** Opens a WebSocket; resolves to the client, or to the HTTP refusal {status, json}. */
async function tryOpen(url, options) {
  const c = new client(url, options);
  try {
    await deadline(c.opened, 5000, `open ${url}`);
    c.hello = await c.next((f) => f.type === 'hello');
    return c;
  } catch (e) {
    if (!e.status) throw e;
    return { status: e.status, json: JSON.parse(e.body) };
  }
}

/** An SSE stream's response status; a 200 stream stays open until `close()`. */
function openStream(url, headers = {}) {
  return deadline(new Promise((resolve, reject) => {
    const req = http.get(url, { headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      if (res.statusCode === 200) {
        resolve({ status: 200, res, close: () => req.destroy() });
        return;
      }
      res.on('end', () => resolve({ status: res.statusCode, json: JSON.parse(body) }));
    });
    req.on('error', reject);
  }), 5000, `GET ${url}`);
}

describe('one bucket per user', () => {
  let server;
  before(async () => {
    server = await startServer({ args: ['--store', 'memory', '--rate-limit', '2', '--rate-burst', '6'] });
  });
  after(async () => { await server?.stop(); });

  test('more connections do not buy a user more claps, and REST and reads share the bucket', async () => {
    const conns = await Promise.all([1, 2, 3].map(() => client.open(`${server.ws}?user=multi`)));
    const ids = [];
    conns.forEach((c, n) => {
      for (let i = 0; i < 4; i++) {
        const id = `m${n}-${i}`;
        ids.push([c, id]);
        c.send({ type: 'clap', article: 'multi-1', id });
      }
    });
    const replies = await Promise.all(ids.map(([c, id]) => c.ack(id)));
    const acks = replies.filter((r) => r.type === 'ack').length;
    assert.equal(replies.filter((r) => r.type === 'error' && r.code === 'rate_limited').length, 12 - acks);
    // Per connection (the old rule) all 12 would pass; per user the burst does.
    assert.ok(acks >= 6 && acks <= 8, `the user's burst of 6 (+ refill) acked, got ${acks}`);
    // The same user over REST, right behind: the bucket is the same one.
    const rest = await request(`${server.http}/api/articles/multi-1/claps?user=multi`, {
      method: 'POST', body: '{"count":1}',
    });
    assert.equal(rest.status, 429);
    assert.equal(rest.json.code, 'rate_limited');
    const read = await request(`${server.http}/api/articles/multi-1?user=multi`);
    assert.equal(read.status, 429, 'a read with a user costs a token too');
    // Another user, and an anonymous read from loopback (no per-address rule
    // there unless --max-connections-per-ip is given), are not affected.
    assert.equal((await request(`${server.http}/api/articles/multi-1?user=bystander`)).status, 200);
    assert.equal((await request(`${server.http}/api/articles/multi-1`)).status, 200);
    await Promise.all(conns.map((c) => c.close()));
  });
});

describe('limiter state is bounded', () => {
  let server;
  before(async () => {
    // A fast refill, so idle users are forgettable within a sweep or two.
    server = await startServer({ args: ['--store', 'memory', '--rate-limit', '1000', '--rate-burst', '5'] });
  });
  after(async () => { await server?.stop(); });

  test('users with no connection and a full bucket are forgotten', async () => {
    for (let i = 0; i < 40; i++) {
      const c = await client.open(`${server.ws}?user=churn-${i}`);
      assert.equal((await c.clap('churn-1', 1, `c${i}`)).type, 'ack');
      await c.close();
    }
    for (let i = 0; i < 40; i++) {
      const r = await request(`${server.http}/api/articles/churn-1/claps?user=rest-churn-${i}`, { method: 'POST' });
      assert.equal(r.status, 200);
    }
    await eventually(async () => (await metric(server, 'claps_limiter_users')) === 0,
      { ms: 10000, what: 'the limiter to forget 80 idle users' });
    // One still connected is remembered.
    const stays = await client.open(`${server.ws}?user=stays`);
    await eventually(async () => (await metric(server, 'claps_limiter_users')) === 1, { what: 'one user held' });
    await stays.close();
  });
});

describe('connections per client address', () => {
  test('the cap counts WebSockets and SSE streams from one address, and loopback counts when the flag is given', async () => {
    const server = await startServer({ args: ['--store', 'memory', '--max-connections-per-ip', '2'] });
    try {
      const a = await tryOpen(`${server.ws}?user=ip-a`);
      const b = await tryOpen(`${server.ws}?user=ip-b`);
      const c = await tryOpen(`${server.ws}?user=ip-c`);
      assert.equal(c.status, 429);
      assert.equal(c.json.code, 'rate_limited');
      assert.match(c.json.message, /127\.0\.0\.1/);
      const sse = await openStream(`${server.http}/api/articles/ip-1/events`);
      assert.equal(sse.status, 429, 'an SSE stream counts against the same address');
      assert.equal(await metric(server, 'claps_connections_refused_total{reason="per_address"}'), 2);
      await a.close();
      const stream = await eventually(async () => {
        const s = await openStream(`${server.http}/api/articles/ip-1/events`);
        return s.status === 200 && s;
      }, { what: 'room for a stream once a WebSocket closed' });
      stream.close();
      await b.close();
    } finally {
      await server.stop();
    }
  });

  test('X-Forwarded-For names the client only when the peer is a --trusted-proxy', async () => {
    const behind = await startServer({
      args: ['--store', 'memory', '--max-connections-per-ip', '1', '--trusted-proxy', '127.0.0.1/32'],
    });
    const direct = await startServer({ args: ['--store', 'memory', '--max-connections-per-ip', '1'] });
    try {
      const xff = (v) => ({ headers: { 'x-forwarded-for': v } });
      const first = await tryOpen(`${behind.ws}?user=p1`, xff('203.0.113.5'));
      assert.ok(first.hello, 'first client behind the proxy');
      const same = await tryOpen(`${behind.ws}?user=p2`, xff('203.0.113.5'));
      assert.equal(same.status, 429, 'the same client address, through the proxy');
      // A client-written entry left of the proxy's proves nothing: the
      // rightmost untrusted address is the one counted.
      const spoofed = await tryOpen(`${behind.ws}?user=p3`, xff('198.51.100.1, 203.0.113.5'));
      assert.equal(spoofed.status, 429);
      const other = await tryOpen(`${behind.ws}?user=p4`, xff('203.0.113.6'));
      assert.ok(other.hello, 'another client behind the proxy');
      // Without --trusted-proxy the header is ignored: both come from 127.0.0.1.
      const d1 = await tryOpen(`${direct.ws}?user=d1`, xff('203.0.113.7'));
      assert.ok(d1.hello);
      const d2 = await tryOpen(`${direct.ws}?user=d2`, xff('203.0.113.8'));
      assert.equal(d2.status, 429);
      await Promise.all([first.close(), other.close(), d1.close()]);
    } finally {
      await behind.stop();
      await direct.stop();
    }
  });

  test('a bad --trusted-proxy refuses to start', async () => {
    const { runClapsd } = await import('./helpers.mjs');
    const r = await runClapsd(['--store', 'memory', '--listen', '127.0.0.1:0', '--trusted-proxy', '10.0.0.0/33']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--trusted-proxy '10\.0\.0\.0\/33'/);
  });
});

describe('live op ids per user', () => {
  let server;
  before(async () => {
    server = await startServer({ args: ['--store', 'memory', '--max-op-ids-per-user', '3'] });
  });
  after(async () => { await server?.stop(); });

  test('new op ids past the cap are refused at once; replays and other users still answer', async () => {
    const u = await client.open(`${server.ws}?user=minting`);
    for (let i = 0; i < 3; i++) assert.equal((await u.clap(`mint-${i}`, 1, `op-${i}`)).type, 'ack');
    const refused = await u.clap('mint-9', 1, 'op-9');
    assert.equal(refused.type, 'error');
    assert.equal(refused.code, 'rate_limited');
    assert.match(refused.message, /op ids/);
    const replay = await u.clap('mint-0', 1, 'op-0');
    assert.equal(replay.type, 'ack');
    assert.equal(replay.replayed, true);
    const rest = await request(`${server.http}/api/articles/mint-9/claps?user=minting`, {
      method: 'POST', body: '{"id":"op-rest"}',
    });
    assert.equal(rest.status, 429);
    const other = await client.open(`${server.ws}?user=modest`);
    assert.equal((await other.clap('mint-9', 1, 'op-9')).type, 'ack');
    assert.equal(await metric(server, 'claps_claps_rejected_total{reason="op_ids"}'), 2);
    assert.equal(await metric(server, 'claps_claps_rejected_total{reason="invalid"}'), 0, 'counted once, as op_ids');
    await Promise.all([u.close(), other.close()]);
  });
});

describe('SSE readers that stop reading', () => {
  let server;
  before(async () => {
    server = await startServer({
      args: ['--store', 'memory', '--tick-ms', '5', '--ping-interval-s', '1', '--idle-timeout-s', '2',
        '--rate-limit', '100000', '--rate-burst', '100000'],
    });
  });
  after(async () => { await server?.stop(); });

  test('a stream whose reader takes no bytes is dropped; a reading one stays', async () => {
    // Node cannot shrink a TCP receive buffer; Python can, so the stalled
    // reader's window shuts after a few events instead of megabytes.
    const stalled = spawn('python3', ['-c', `
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
s.connect(('127.0.0.1', ${server.port}))
s.sendall(b'GET /api/articles/stall-1/events HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n')
print('requested', flush=True)
sys.stdin.read()  # never reads the socket; ends when the test closes stdin
`], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      await deadline(new Promise((resolve) => stalled.stdout.once('data', resolve)), 5000, 'the stalled reader to connect');
      await eventually(async () => (await metric(server, 'claps_sse_streams')) === 1, { what: 'the stalled stream open' });
      const healthy = await openStream(`${server.http}/api/articles/stall-1/events`);
      assert.equal(healthy.status, 200);
      let received = 0;
      healthy.res.on('data', () => { received++; });
      // Every clap changes the total: one event per tick to both streams,
      // until the server gives up on the one that does not read.
      let n = 0;
      const clapper = async () => {
        while ((await metric(server, 'claps_sse_stall_drops_total')) === 0) {
          const batch = [];
          for (let i = 0; i < 20; i++, n++) {
            batch.push(request(`${server.http}/api/articles/stall-1/claps?user=sc-${Math.floor(n / 50)}`, { method: 'POST' }));
          }
          await Promise.all(batch);
        }
      };
      await deadline(clapper(), 30000, 'the stalled stream to be dropped');
      await eventually(async () => (await metric(server, 'claps_sse_streams')) === 1,
        { what: 'only the reading stream left' });
      const before = received;
      await request(`${server.http}/api/articles/stall-1/claps?user=after-drop`, { method: 'POST' });
      await eventually(() => received > before, { what: 'the reading stream to get the next event' });
      healthy.close();
    } finally {
      stalled.stdin.end();
      stalled.kill();
    }
  });
});
