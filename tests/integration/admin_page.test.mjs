// The live admin page on --admin-listen: /admin and its WebSocket /admin/ws,
// where {"type":"subscribe_admin"} brings an `admin` frame about once a second.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { client, deadline, metric, request, startServer, tempDir } from './helpers.mjs';

/** Opens /admin/ws (no hello frame there) and subscribes. */
async function admin_socket(server, headers = {}) {
  const c = new client(`${server.admin.replace('http', 'ws')}/admin/ws`, { headers });
  await deadline(c.opened, 5000, 'the admin socket to open');
  c.send({ type: 'subscribe_admin' });
  return c;
}

/** The first admin frame matching `pred` among those received from index `from` on. */
const admin_frame = (c, pred, what, from = 0) =>
  c.next((f) => f.type === 'admin' && pred(f), { ms: 10000, what, from });

test('a loopback admin listener serves the admin page and live admin frames', async () => {
  const server = await startServer({ args: ['--store', 'memory', '--admin-listen', '127.0.0.1:0'] });
  try {
    // Only on the admin listener.
    assert.equal((await request(`${server.http}/admin`)).status, 404);
    assert.equal((await request(`${server.http}/admin/ws`)).status, 404);
    const page = await request(`${server.admin}/admin`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type'), /text\/html/);
    assert.match(page.text, /admin\.js/);
    const script = await request(`${server.admin}/admin/admin.js`);
    assert.equal(script.status, 200);
    assert.match(script.text, /subscribe_admin/);

    const admin = await admin_socket(server);
    const first = await admin_frame(admin, () => true, 'a first admin frame');
    assert.equal(first.ready, true);
    assert.equal(first.degraded, false);
    assert.equal(first.redis, null, 'no Redis on a single node');
    assert.deepEqual(Object.keys(first.connections).sort(), ['admin', 'max', 'rest_in_flight', 'sse', 'ws', 'ws_total']);
    assert.equal(first.connections.ws, 0);
    assert.equal(first.connections.admin, 1);
    assert.deepEqual(first.articles, { by_viewers: [], by_claps_per_s: [] });
    for (const key of ['ticks_per_s', 'commits_per_s', 'pending_ops', 'subscribers', 'commit_latency'])
      assert.ok(key in first.engine, `engine.${key}`);
    for (const key of ['slow_ws_closed', 'stalled_sse_closed'])
      assert.equal(first.clients[key], 0, `clients.${key}`);
    for (const key of ['max_connections', 'per_user', 'per_address', 'claps_rate_limited', 'reads_rate_limited'])
      assert.equal(first.limits[key], 0, `limits.${key}`);

    // A reader and a clapper: the next frames show them.
    const reader = await client.open(`${server.ws}?user=adm-reader`);
    await reader.subscribe(['adm-hot']);
    const clapper = await client.open(`${server.ws}?user=adm-clapper`);
    const beforeClap = admin.frames.length;
    clapper.send({ type: 'clap', article: 'adm-hot', count: 7, id: 'c1' });
    await clapper.ack('c1');
    const busy = await admin_frame(admin, (f) => f.connections.ws === 2 &&
      f.articles.by_claps_per_s.some((a) => a.article === 'adm-hot'), 'the clients and their claps', beforeClap);
    const hot = busy.articles.by_claps_per_s.find((a) => a.article === 'adm-hot');
    assert.ok(hot.claps_per_s > 0 && hot.claps_per_s <= 7, `claps/s ${hot.claps_per_s}`);
    assert.equal(hot.total, 7);
    const watched = await admin_frame(admin, (f) => f.articles.by_viewers.some((a) => a.article === 'adm-hot'),
      'the article among the top by viewers');
    const row = watched.articles.by_viewers.find((a) => a.article === 'adm-hot');
    assert.equal(row.viewers, 1);
    assert.equal(row.local_viewers, 1);
    assert.equal(row.remote_viewers, 0);
    const latency = await admin_frame(admin, (f) => f.engine.commit_latency.count > 0, 'a commit in the window');
    assert.ok(latency.engine.commit_latency.p99_ms >= latency.engine.commit_latency.p50_ms);

    // The claps/s fall back once nobody claps; the connection count follows closes.
    const beforeClose = admin.frames.length;
    await Promise.all([reader.close(), clapper.close()]);
    await admin_frame(admin, (f) => f.connections.ws === 0 && f.articles.by_claps_per_s.length === 0 &&
      f.articles.by_viewers.length === 0, 'the clients gone, no viewers and the claps/s back to none', beforeClose);

    // What the admin socket refuses.
    admin.send('not json');
    const error = await admin.next((f) => f.type === 'error');
    assert.equal(error.code, 'bad_request');
    const elsewhere = new client(`${server.admin.replace('http', 'ws')}/ws?user=a`);
    assert.equal((await elsewhere.opened.then(() => null, (e) => e))?.status, 404);
    const foreign = new client(`${server.admin.replace('http', 'ws')}/admin/ws`, { headers: { origin: 'http://evil.example' } });
    assert.equal((await foreign.opened.then(() => null, (e) => e))?.status, 403);
    const publicPort = new client(`${server.http.replace('http', 'ws')}/admin/ws`);
    assert.equal((await publicPort.opened.then(() => null, (e) => e))?.status, 404, 'no admin socket on the public port');
    admin.ws.close();
    await admin.closed;
  } finally {
    await server.stop();
  }
});

test('admin sockets: a cap with an error frame, bad input answered, pings, an idle close, tick duration', async () => {
  const server = await startServer({
    args: ['--store', 'memory', '--admin-listen', '127.0.0.1:0', '--max-admin-subscribers', '2',
      '--ping-interval-s', '1', '--idle-timeout-s', '3', '--tick-ms', '10'],
  });
  const opened = [];
  try {
    const first = await admin_socket(server);
    const second = await admin_socket(server);
    opened.push(first, second);
    await admin_frame(second, (f) => f.connections.admin === 2, 'two admin sockets counted');

    // One past the cap: told why, then closed with 1013 (try again later).
    const third = new client(`${server.admin.replace('http', 'ws')}/admin/ws`);
    opened.push(third);
    await deadline(third.opened, 5000, 'the third admin socket to open');
    const refused = await third.next((f) => f.type === 'error', { what: 'the cap\'s error frame' });
    assert.equal(refused.code, 'too_many_admin_subscribers');
    assert.match(refused.message, /at most 2 admin sockets.*--max-admin-subscribers/);
    const thirdClose = await deadline(third.closed, 5000, 'the refused socket to close');
    assert.equal(thirdClose.code, 1013);
    assert.equal(third.frames.filter((f) => f.type === 'admin').length, 0, 'no admin frame past the cap');

    // Bad input on a subscribed socket: a clear error, and frames keep coming.
    first.send('x'.repeat(5000));
    assert.equal((await first.next((f) => f.type === 'error', { what: 'message_too_large' })).code, 'message_too_large');
    const sent = first.frames.length;
    first.send({ type: 'clap', article: 'a', count: 1, id: 'x' });
    const wrongType = await first.next((f) => f.type === 'error', { from: sent, what: 'bad_request' });
    assert.equal(wrongType.code, 'bad_request');
    assert.match(wrongType.message, /subscribe_admin/);
    await admin_frame(first, () => true, 'frames after bad input', first.frames.length);
    assert.equal((await request(`${server.admin}/readyz`)).status, 200, 'the node keeps serving');

    // A clap makes ticks do work; their duration shows beside commit latency
    // and as a Prometheus histogram.
    const clapper = await client.open(`${server.ws}?user=adm-tick`);
    opened.push(clapper);
    clapper.send({ type: 'clap', article: 'adm-tick', count: 2, id: 't1' });
    await clapper.ack('t1');
    const timed = await admin_frame(first, (f) => f.engine.tick_duration.count > 0 && f.engine.commit_latency.count > 0,
      'ticks timed in the window');
    const tick = timed.engine.tick_duration;
    assert.ok(tick.p50_ms > 0 && tick.p99_ms >= tick.p50_ms && tick.avg_ms > 0, JSON.stringify(tick));
    assert.ok(timed.engine.ticks_per_s > 0);
    assert.ok((await metric({ http: server.admin }, 'claps_tick_duration_seconds_count')) > 0);

    // A slot frees when a socket closes.
    second.ws.close();
    await second.closed;
    const again = await admin_socket(server);
    opened.push(again);
    await admin_frame(again, (f) => f.connections.admin === 2, 'a new subscriber in the freed slot');

    // Pings: a peer that answers stays; one that never does is dropped.
    const mute = new client(`${server.admin.replace('http', 'ws')}/admin/ws`, { autoPong: false });
    // The cap is 2 and two are open: free one for the mute peer.
    again.ws.close();
    await again.closed;
    opened.push(mute);
    await deadline(mute.opened, 5000, 'the mute admin socket to open');
    let pings = 0;
    const threePings = new Promise((resolve) => first.ws.on('ping', () => { if (++pings === 3) resolve(); }));
    const muteClose = await deadline(mute.closed, 10000, 'the silent admin socket to be dropped');
    assert.notEqual(muteClose.code, 1000);
    await deadline(threePings, 10000, 'three pings on the answering admin socket');
    assert.equal(first.ws.readyState, 1, 'an admin socket that answers pings stays open');
    await admin_frame(first, (f) => f.connections.admin === 1, 'the dropped socket no longer counted', first.frames.length);
  } finally {
    for (const c of opened) c.ws.terminate();
    await server.stop();
  }
});

test('with a token file the admin page and socket need the token, on loopback too', async () => {
  const dir = tempDir();
  const tokenFile = path.join(dir, 'admin-token');
  const token = 'an-admin-token-of-32-bytes-long!';
  fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  const server = await startServer({
    args: ['--store', 'memory', '--admin-listen', '127.0.0.1:0', '--admin-token-file', tokenFile],
  });
  try {
    const wsUrl = `${server.admin.replace('http', 'ws')}/admin/ws`;
    const bare = new client(wsUrl);
    assert.equal((await bare.opened.then(() => null, (e) => e))?.status, 401);
    const wrong = new client(wsUrl, { headers: { authorization: `Bearer ${token.slice(0, -1)}x` } });
    assert.equal((await wrong.opened.then(() => null, (e) => e))?.status, 401);
    assert.equal((await request(`${server.admin}/admin`)).status, 401);
    assert.equal((await request(`${server.admin}/admin?token=nope`, { redirect: 'manual' })).status, 401);

    const bearer = await admin_socket(server, { authorization: `Bearer ${token}` });
    const frame = await admin_frame(bearer, () => true, 'an admin frame with the bearer token');
    assert.equal(frame.connections.admin, 1);
    bearer.ws.close();

    // ?token= once: a cookie for /admin, then the token leaves the URL.
    const exchange = await request(`${server.admin}/admin?token=${encodeURIComponent(token)}`, { redirect: 'manual' });
    assert.equal(exchange.status, 303);
    assert.equal(exchange.headers.get('location'), '/admin');
    const cookie = exchange.headers.get('set-cookie');
    assert.match(cookie, /^claps_admin=[0-9a-f]+; Path=\/admin; HttpOnly; SameSite=Strict$/);
    const jar = cookie.split(';')[0];
    assert.equal((await request(`${server.admin}/admin`, { headers: { cookie: jar } })).status, 200);
    const byCookie = await admin_socket(server, { cookie: jar });
    await admin_frame(byCookie, (f) => f.connections.admin >= 1, 'an admin frame with the cookie');
    byCookie.ws.close();
    const forged = new client(wsUrl, { headers: { cookie: 'claps_admin=00ff' } });
    assert.equal((await forged.opened.then(() => null, (e) => e))?.status, 401);
  } finally {
    await server.stop();
  }
});

test('--trusted-proxy with an admin listener but no token file is warned about', async () => {
  const server = await startServer({
    args: ['--store', 'memory', '--admin-listen', '127.0.0.1:0', '--trusted-proxy', '127.0.0.1/32'],
  });
  try {
    assert.match(server.stderr, /--admin-listen without --admin-token-file while --trusted-proxy is set/);
  } finally {
    await server.stop();
  }
});
