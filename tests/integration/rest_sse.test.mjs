// REST, SSE, health, metrics and static files against the same counts the
// WebSocket clients see.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { client, deadline, request, sseStream, startServer, tempDir } from './helpers.mjs';

let server;
let webRoot;
let clientRoot;
before(async () => {
  webRoot = tempDir('clapsd-web-');
  clientRoot = tempDir('clapsd-client-');
  fs.writeFileSync(path.join(webRoot, 'index.html'), '<!doctype html><title>home</title>');
  fs.writeFileSync(path.join(webRoot, 'article.html'), '<!doctype html><title>article</title>');
  fs.mkdirSync(path.join(webRoot, 'static', 'js'), { recursive: true });
  fs.writeFileSync(path.join(webRoot, 'static', 'js', 'app.js'), 'export const x = 1;\n');
  fs.writeFileSync(path.join(webRoot, 'static', 'style.css'), 'body { color: black }\n');
  fs.writeFileSync(path.join(webRoot, 'static', 'articles.json'), '[{"id":"a1"}]\n');
  fs.writeFileSync(path.join(webRoot, 'secret.txt'), 'not for the web\n');
  fs.writeFileSync(path.join(clientRoot, 'claps-client.js'), 'export class ClapsClient {}\n');
  server = await startServer({
    args: ['--tick-ms', '20', '--web-root', webRoot, '--client-root', clientRoot, '--max-message-bytes', '1024',
      '--ping-interval-s', '1', '--idle-timeout-s', '3'],
  });
});
after(async () => { await server?.stop(); });

const api = (p) => `${server.http}/api/articles/${p}`;

describe('REST', () => {
  test('GET, POST and DELETE agree with the WebSocket view', async () => {
    const ws = await client.open(`${server.ws}?user=watcher`);
    await ws.subscribe(['rest-1']);
    let r = await request(api('rest-1'));
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.deepEqual(r.json, { article: 'rest-1', total: 0, viewers: 1 });

    r = await request(`${api('rest-1/claps')}?user=carol`, { method: 'POST', body: JSON.stringify({ count: 2, id: 'op-9' }) });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { article: 'rest-1', accepted: 2, total: 2, mine: 2, durability: 'local' });
    assert.equal((await ws.update('rest-1', (u) => u.total === 2)).viewers, 1);

    // Replay through REST.
    r = await request(`${api('rest-1/claps')}?user=carol`, { method: 'POST', body: JSON.stringify({ count: 2, id: 'op-9' }) });
    assert.equal(r.json.accepted, 2);
    assert.equal(r.json.total, 2);
    // An empty body is one clap.
    r = await request(`${api('rest-1/claps')}?user=carol`, { method: 'POST' });
    assert.equal(r.json.accepted, 1);
    assert.equal(r.json.mine, 3);
    // A WebSocket clap shows up in REST.
    await ws.clap('rest-1', 4);
    r = await request(`${api('rest-1')}?user=carol`);
    assert.deepEqual(r.json, { article: 'rest-1', total: 7, viewers: 1, mine: 3 });

    r = await request(`${api('rest-1/claps')}?user=carol`, { method: 'DELETE' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { article: 'rest-1', accepted: -3, total: 4, mine: 0, durability: 'local' });
    await ws.update('rest-1', (u) => u.total === 4);
    await ws.close();
  });

  test('REST errors are JSON with honest status codes', async () => {
    let r = await request(api('rest-2/claps'), { method: 'POST', body: '{"count":1}' });
    assert.equal(r.status, 400, 'demo mode without a user');
    assert.equal(r.json.code, 'bad_request');
    r = await request(`${api('bad%20id/claps')}?user=x`, { method: 'POST' });
    assert.equal(r.status, 400);
    assert.equal(r.json.code, 'invalid_article');
    r = await request(`${api('rest-2/claps')}?user=bad%20user`, { method: 'POST' });
    assert.equal(r.status, 400);
    r = await request(`${api('rest-2/claps')}?user=x`, { method: 'POST', body: '{"count":"two"}' });
    assert.equal(r.status, 400);
    assert.equal(r.json.code, 'bad_request');
    r = await request(`${api('rest-2/claps')}?user=x`, { method: 'POST', body: '{"count":51}' });
    assert.equal(r.status, 400);
    r = await request(`${api('rest-2/claps')}?user=x`, { method: 'POST', body: '{nope' });
    assert.equal(r.status, 400);
    r = await request(`${api('rest-2/claps')}?user=x`, { method: 'POST', body: JSON.stringify({ count: 1, pad: 'p'.repeat(2000) }) });
    assert.equal(r.status, 413);
    assert.equal(r.json.code, 'message_too_large');
    r = await request(`${api('rest-2/claps')}?user=x`, { method: 'PUT' });
    assert.equal(r.status, 405);
    r = await request(`${server.http}/api/nothing`);
    assert.equal(r.status, 404);
    assert.equal(r.json.code, 'not_found');
    r = await request(`${server.http}/ws`);
    assert.equal(r.status, 426);
    // Nothing of the refused requests was counted.
    r = await request(api('rest-2'));
    assert.equal(r.json.total, 0);
  });

  test('health, readiness and metrics', async () => {
    let r = await request(`${server.http}/healthz`);
    assert.equal(r.status, 200);
    r = await request(`${server.http}/readyz`);
    assert.equal(r.status, 200);
    r = await request(`${server.http}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/plain; version=0.0.4/);
    for (const name of ['claps_connections', 'claps_subscriptions', 'claps_claps_accepted_total',
      'claps_claps_rejected_total{reason="cap"}', 'claps_claps_rejected_total{reason="rate_limited"}',
      'claps_ticks_total', 'claps_commit_latency_seconds_bucket{le="+Inf"}', 'claps_commit_latency_seconds_count',
      'claps_update_frames_sent_total', 'claps_slow_client_drops_total']) {
      assert.match(r.text, new RegExp(`^${name.replace(/[{}+"]/g, (c) => `\\${c}`)} \\d`, 'm'), name);
    }
    assert.ok(Number(r.text.match(/^claps_commit_latency_seconds_count (\d+)/m)[1]) > 0, 'commits were timed');
  });
});

describe('SSE', () => {
  const openStream = (article) => sseStream(api(`${article}/events`));

  test('a snapshot first, then one event per tick with changes; SSE readers are viewers', async () => {
    await request(`${api('sse-1/claps')}?user=dave`, { method: 'POST', body: '{"count":5}' });
    const stream = openStream('sse-1');
    const res = await deadline(stream.response, 5000, 'SSE response');
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'text/event-stream');
    const first = await stream.until(() => true, 'the snapshot');
    assert.deepEqual(first, { event: 'count', data: { article: 'sse-1', total: 5, viewers: 1 } });
    const ws = await client.open(`${server.ws}?user=erin`);
    const snap = await ws.subscribe(['sse-1']);
    assert.equal(snap.counts[0].viewers, 2, 'the SSE reader counts as a viewer');
    await ws.clap('sse-1', 3);
    const ev = await stream.until((e) => e.data.total === 8, 'the clap event');
    assert.deepEqual(ev, { event: 'count', data: { article: 'sse-1', total: 8, viewers: 2 } });
    const rest = await request(api('sse-1'));
    assert.deepEqual(rest.json, { article: 'sse-1', total: 8, viewers: 2 });
    stream.close();
    await ws.update('sse-1', (u) => u.viewers === 1);
    await ws.close();
  });

  // The status of a stream's response (its body, when it is a refusal); the stream is then closed.
  async function streamStatus(url, headers = {}) {
    const stream = sseStream(url, { headers });
    const res = await deadline(stream.response, 5000, `GET ${url}`);
    if (res.statusCode === 200) {
      stream.close();
      return { status: 200 };
    }
    return { status: res.statusCode, json: JSON.parse(await deadline(stream.body, 5000, `the body of GET ${url}`)) };
  }

  test('a cross-site Origin is refused with 403, as for WebSockets', async () => {
    const r = await streamStatus(api('sse-origin/events'), { origin: 'http://evil.example' });
    assert.equal(r.status, 403);
    assert.equal(r.json.code, 'forbidden');
    const host = new URL(server.http).host;
    assert.equal((await streamStatus(api('sse-origin/events'), { origin: `http://${host}` })).status, 200);
  });

  test('SSE streams have a cap of their own: readers that never read cannot take every connection', async () => {
    const small = await startServer({ args: ['--store', 'memory', '--max-connections', '20', '--max-sse-streams', '3'] });
    const held = [];
    try {
      for (let i = 0; i < 3; i++) {
        const req = http.get(`${small.http}/api/articles/cap-${i}/events`);
        held.push(req);
        const res = await deadline(new Promise((resolve, reject) => {
          req.on('response', resolve);
          req.on('error', reject);
        }), 5000, `stream ${i}`);
        assert.equal(res.statusCode, 200);
        res.pause();  // never read
      }
      const refused = await streamStatus(`${small.http}/api/articles/cap-9/events`);
      assert.equal(refused.status, 503);
      assert.equal(refused.json.code, 'unavailable');
      // WebSockets still get in.
      const ws = await client.open(`${small.ws}?user=still-room`);
      assert.equal((await ws.clap('cap-ws', 1)).accepted, 1);
      await ws.close();
    } finally {
      for (const req of held) req.destroy();
      await small.stop();
    }
  });

  test('SSE on an invalid article is a 400', async () => {
    const r = await request(api('no%20way/events'));
    assert.equal(r.status, 400);
  });
});

describe('static files', () => {
  const get = (p) => request(`${server.http}${p}`);

  test('the app pages, static files and the JS client with their content types', async () => {
    let r = await get('/');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.match(r.text, /home/);
    r = await get('/articles/a1');
    assert.equal(r.status, 200);
    assert.match(r.text, /article/);
    r = await get('/static/js/app.js');
    assert.equal(r.headers.get('content-type'), 'text/javascript; charset=utf-8');
    r = await get('/static/style.css');
    assert.equal(r.headers.get('content-type'), 'text/css; charset=utf-8');
    r = await get('/static/articles.json');
    assert.equal(r.headers.get('content-type'), 'application/json');
    r = await get('/client/claps-client.js');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.match(r.text, /ClapsClient/);
  });

  test('misses are 404 JSON and nothing escapes the roots', async () => {
    for (const p of ['/static/missing.js', '/articles/bad%20id', '/secret.txt', '/static/../secret.txt',
      '/static/%2e%2e/secret.txt', '/static/..%2fsecret.txt', '/client/../secret.txt', '/static/.hidden',
      '/static//etc/passwd', '/static/js/', '/client/%2e%2e%2f%2e%2e%2fetc%2fpasswd']) {
      const r = await get(p);
      assert.ok(r.status === 404 || r.status === 403 || r.status === 400, `${p} -> ${r.status}`);
      assert.doesNotMatch(r.text, /not for the web|root:/, p);
    }
    // A raw request line, with no client-side normalisation of "..".
    const raw = await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: server.port, path: '/static/../../../../etc/passwd' }, (res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => resolve({ status: res.statusCode, body }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.notEqual(raw.status, 200);
    assert.doesNotMatch(raw.body, /root:/);
  });
});
