// Limits and bad input at the connection level: message size (1009), UTF-8
// (1007), rate limit, connection limit (503), Origin (403), handshake and
// idle timeouts. The limits across connections (per user, per address, op
// ids, stalled SSE readers) are in abuse_limits.test.mjs.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WebSocket, client, deadline, eventually, metric, rawConnect, request, startServer } from './helpers.mjs';

describe('message size and encoding', () => {
  let server;
  before(async () => { server = await startServer({ args: ['--store', 'memory', '--rx-buffer-bytes', '256'] }); });
  after(async () => { await server?.stop(); });

  test('a message over 4096 bytes closes with 1009', async () => {
    const u = await client.open(`${server.ws}?user=big`);
    const padded = JSON.stringify({ type: 'clap', article: 'size-1', pad: 'x'.repeat(4096) });
    assert.ok(Buffer.byteLength(padded) > 4096);
    u.send(padded);
    const { code } = await deadline(u.closed, 5000, 'close 1009');
    assert.equal(code, 1009);
  });

  test('a message of exactly 4096 bytes, larger than the receive buffer, is reassembled', async () => {
    const u = await client.open(`${server.ws}?user=fits`);
    const base = JSON.stringify({ type: 'clap', article: 'size-2', id: 'fit', pad: '' });
    const exact = base.replace('"pad":""', `"pad":"${'y'.repeat(4096 - Buffer.byteLength(base))}"`);
    assert.equal(Buffer.byteLength(exact), 4096);
    u.send(exact);
    assert.equal((await u.ack('fit')).accepted, 1);
    await u.close();
  });

  test('fragments are reassembled, and count against the limit together', async () => {
    const u = await client.open(`${server.ws}?user=frag`);
    const msg = JSON.stringify({ type: 'clap', article: 'frag-1', count: 2, id: 'fr1' });
    const third = Math.floor(msg.length / 3);
    u.ws.send(msg.slice(0, third), { fin: false });
    u.ws.send(msg.slice(third, 2 * third), { fin: false });
    u.ws.send(msg.slice(2 * third), { fin: true });
    assert.equal((await u.ack('fr1')).accepted, 2);
    const chunk = 'z'.repeat(1500);
    u.ws.send(`{"type":"clap","pad":"${chunk}`, { fin: false });
    u.ws.send(chunk, { fin: false });
    u.ws.send(`${chunk}"}`, { fin: true });
    assert.equal((await deadline(u.closed, 5000, 'close 1009')).code, 1009);
    assert.ok(await metric(server, 'claps_oversize_closes_total') >= 1);
  });

  test('invalid UTF-8 in a text frame closes with 1007', async () => {
    const u = await client.open(`${server.ws}?user=utf`);
    u.ws.send(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), { binary: false });
    assert.equal((await deadline(u.closed, 5000, 'close 1007')).code, 1007);
  });
});

describe('rate limit', () => {
  let server;
  before(async () => {
    server = await startServer({ args: ['--store', 'memory', '--rate-limit', '2', '--rate-burst', '5'] });
  });
  after(async () => { await server?.stop(); });

  test('a clap flood is answered with rate_limited past the burst', async () => {
    const u = await client.open(`${server.ws}?user=flood`);
    const ids = Array.from({ length: 15 }, (_, i) => `f${i}`);
    for (const id of ids) u.send({ type: 'clap', article: 'flood-1', id });
    // A subscribe right behind the flood draws on the same empty bucket.
    u.send({ type: 'subscribe', articles: ['flood-1'], id: 'sub-in-flood' });
    const replies = await Promise.all(ids.map((id) => u.ack(id)));
    const acks = replies.filter((r) => r.type === 'ack').length;
    const limited = replies.filter((r) => r.type === 'error' && r.code === 'rate_limited').length;
    assert.equal(acks + limited, ids.length);
    assert.ok(acks >= 5 && acks <= 7, `burst 5 (+ refill) acked, got ${acks}`);
    assert.ok(limited >= 8, `the rest rate_limited, got ${limited}`);
    assert.equal(await metric(server, 'claps_claps_rejected_total{reason="rate_limited"}'), limited);
    const refusedSub = await u.ack('sub-in-flood');
    assert.equal(refusedSub.type, 'error');
    assert.equal(refusedSub.code, 'rate_limited');
    assert.equal(await metric(server, 'claps_reads_rate_limited_total'), 1);
    // Once the bucket refills (2/s) the subscribe is answered.
    const snap = await eventually(async () => {
      const r = await u.subscribe(['flood-1']);
      return r.type === 'counts' && r;
    }, { ms: 10000, every: 250, what: 'a subscribe answered after the refill' });
    assert.equal(snap.counts[0].total, acks);
    await u.close();
  });

  test('REST claps are rate-limited per user with the same bucket', async () => {
    const results = [];
    for (let i = 0; i < 10; i++) {
      results.push(await request(`${server.http}/api/articles/flood-2/claps?user=rest-flood`, {
        method: 'POST', body: JSON.stringify({ count: 1 }),
      }));
    }
    const ok = results.filter((r) => r.status === 200).length;
    const limited = results.filter((r) => r.status === 429);
    assert.ok(ok >= 5 && ok <= 7, `got ${ok} accepted`);
    assert.equal(ok + limited.length, 10);
    assert.equal(limited[0].json.code, 'rate_limited');
  });
});

describe('connection limit', () => {
  let server;
  before(async () => { server = await startServer({ args: ['--store', 'memory', '--max-connections', '3'] }); });
  after(async () => { await server?.stop(); });

  test('extra handshakes get HTTP 503, and room frees up when a client leaves', async () => {
    const open = await Promise.all([1, 2, 3].map((i) => client.open(`${server.ws}?user=c${i}`)));
    const extra = new client(`${server.ws}?user=c4`);
    const refused = await extra.opened.then(() => null, (e) => e);
    assert.equal(refused?.status, 503);
    assert.equal(JSON.parse(refused.body).code, 'unavailable');
    // SSE streams count against the same limit.
    const sse = await request(`${server.http}/api/articles/lim-1/events`);
    assert.equal(sse.status, 503);
    assert.equal(await metric(server, 'claps_connections_refused_total{reason="max_connections"}'), 2);
    await open[0].close();
    await eventually(async () => (await metric(server, 'claps_connections')) === 2, { what: 'the server to see the close' });
    const again = await client.open(`${server.ws}?user=c5`);
    assert.equal(again.hello.user, 'c5');
    await Promise.all([again.close(), open[1].close(), open[2].close()]);
  });
});

describe('connections per user', () => {
  let server;
  before(async () => {
    server = await startServer({ args: ['--store', 'memory', '--max-connections-per-user', '3'] });
  });
  after(async () => { await server?.stop(); });

  test('one user cannot multiply the per-connection limits: extra handshakes get 429 until one closes', async () => {
    const held = await Promise.all([1, 2, 3].map(() => client.open(`${server.ws}?user=greedy`)));
    const extra = new client(`${server.ws}?user=greedy`);
    const refused = await extra.opened.then(() => null, (e) => e);
    assert.equal(refused?.status, 429);
    assert.equal(JSON.parse(refused.body).code, 'rate_limited');
    // Other users are not affected.
    const other = await client.open(`${server.ws}?user=modest`);
    assert.equal(other.hello.user, 'modest');
    await held[0].close();
    await eventually(async () => {
      const c = new client(`${server.ws}?user=greedy`);
      const ok = await c.opened.then(() => true, () => false);
      if (ok) c.terminate();
      return ok;
    }, { what: 'room for greedy once one connection closed' });
    await Promise.all([other.close(), held[1].close(), held[2].close()]);
  });
});

describe('origin check', () => {
  let server;
  before(async () => {
    server = await startServer({ args: ['--store', 'memory', '--allowed-origin', 'https://claps.example'] });
  });
  after(async () => { await server?.stop(); });

  const tryOpen = async (origin, headers = {}) => {
    const c = new client(`${server.ws}?user=o`, { origin, headers });
    try {
      await deadline(c.opened, 5000, 'handshake');
      await c.next((f) => f.type === 'hello');
      c.terminate();
      return 101;
    } catch (e) {
      return e.status;
    }
  };

  test('a foreign Origin gets 403; same host, listed origins and no Origin are allowed', async () => {
    assert.equal(await tryOpen('http://evil.example'), 403);
    assert.equal(await tryOpen('null'), 403);
    assert.equal(await tryOpen(`http://127.0.0.1:${server.port + 1}`), 403);
    assert.equal(await tryOpen(`http://127.0.0.1:${server.port}`), 101);
    assert.equal(await tryOpen(`http://localhost:${server.port}`, { host: `localhost:${server.port}` }), 101);
    assert.equal(await tryOpen(`http://localhost:${server.port}`), 403, 'localhost origin against a 127.0.0.1 Host');
    assert.equal(await tryOpen('https://claps.example'), 101);
    assert.equal(await tryOpen(undefined), 101);
    assert.equal(await metric(server, 'claps_connections_refused_total{reason="origin"}'), 4);
  });
});

describe('timeouts', () => {
  let server;
  before(async () => {
    server = await startServer({
      args: ['--store', 'memory', '--handshake-timeout-s', '1', '--ping-interval-s', '1', '--idle-timeout-s', '3'],
    });
  });
  after(async () => { await server?.stop(); });

  test('a connection that never finishes its handshake is dropped', async () => {
    const silent = await rawConnect(server.port);
    const partial = await rawConnect(server.port);
    partial.write('GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const closed = (s) => new Promise((resolve) => s.on('close', resolve));
    await deadline(Promise.all([closed(silent), closed(partial)]), 8000, 'the server to drop both');
  });

  test('the server pings idle peers and drops one that never answers', async () => {
    const answering = await client.open(`${server.ws}?user=pong`);
    const mute = await client.open(`${server.ws}?user=mute`, { autoPong: false });
    let pings = 0;
    const threePings = new Promise((resolve) => answering.ws.on('ping', () => { if (++pings === 3) resolve(); }));
    const muteClose = await deadline(mute.closed, 10000, 'the mute client to be dropped');
    assert.notEqual(muteClose.code, 1000);
    await deadline(threePings, 10000, 'three pings');
    assert.equal(answering.ws.readyState, WebSocket.OPEN, 'a peer that answers pings stays');
    await answering.close();
  });
});
