// The OpenAPI document (server/web/api/openapi.json) against the server it
// describes: the document is valid OpenAPI 3.1, clapsd serves it as it is,
// and every response a real clapsd gives to every documented operation (and
// to the errors it documents) has a documented status, content type and body.
// Object schemas are checked closed here (no field the document does not
// list), although clients must ignore unknown fields: the document has to
// name every field the server sends.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { Validator } from '../../node_modules/@seriousme/openapi-schema-validator/index.js';
import Ajv2020Module from '../../node_modules/ajv/dist/2020.js';
import { WebSocket, deadline, eventually, metrics, request, sseStream, startServer, tempDir } from './helpers.mjs';

const Ajv2020 = Ajv2020Module.default ?? Ajv2020Module;
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const docPath = path.join(repo, 'server/web/api/openapi.json');
const webRoot = path.join(repo, 'server/web');
const doc = JSON.parse(fs.readFileSync(docPath, 'utf8'));

// ---- the document's schemas, compiled with ajv's JSON Schema 2020-12 (OpenAPI 3.1's dialect)

const BASE = 'https://clapsd.invalid/openapi.json';
const esc = (s) => s.replaceAll('~', '~0').replaceAll('/', '~1');

/** A copy in which every object schema that lists properties rejects others. */
function closedObjects(node) {
  if (Array.isArray(node)) return node.map(closedObjects);
  if (node === null || typeof node !== 'object') return node;
  const out = {};
  for (const [k, v] of Object.entries(node)) out[k] = closedObjects(v);
  if (out.type === 'object' && out.properties && !('additionalProperties' in out) &&
      !('unevaluatedProperties' in out)) out.unevaluatedProperties = false;
  return out;
}

const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addSchema({ ...closedObjects(doc), $id: BASE });
const compiled = new Map();
function schemaAt(pointer) {
  if (!compiled.has(pointer)) compiled.set(pointer, ajv.compile({ $ref: `${BASE}#${pointer}` }));
  return compiled.get(pointer);
}
function resolvePointer(pointer) {
  return pointer.split('/').slice(1)
    .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'))
    .reduce((node, key) => node?.[key], doc);
}
function assertSchema(pointer, value, what) {
  const validate = schemaAt(pointer);
  assert.ok(validate(value), `${what}: ${JSON.stringify(value)} does not match ${pointer}: ${ajv.errorsText(validate.errors)}`);
}

// ---- which operations and statuses the test saw

const seen = new Map();  // 'get /path' -> Set of statuses
function documentedResponse(method, route, status) {
  const op = doc.paths[route]?.[method];
  assert.ok(op, `${method.toUpperCase()} ${route} is in the document`);
  const key = `${method} ${route}`;
  let pointer = `/paths/${esc(route)}/${method}/responses/${status}`;
  let response = op.responses[String(status)];
  assert.ok(response, `${key} answered ${status}, which the document does not list`);
  if (response.$ref) {
    pointer = response.$ref.slice(1);
    response = resolvePointer(pointer);
  }
  if (!seen.has(key)) seen.set(key, new Set());
  seen.get(key).add(String(status));
  return { response, pointer };
}

/** Checks a complete response ({status, type, text}) against the document; returns the parsed body. */
function check(method, route, { status, type, text }) {
  const what = `${method.toUpperCase()} ${route} ${status}`;
  const { response, pointer } = documentedResponse(method, route, status);
  assert.ok(response.content?.[type], `${what}: content-type ${type} is not documented (${Object.keys(response.content ?? {})})`);
  const schemaPointer = `${pointer}/content/${esc(type)}/schema`;
  const body = type === 'application/json' ? JSON.parse(text) : text;
  assertSchema(schemaPointer, body, what);
  return body;
}

/** An HTTP request checked against the document's operation `method route`. */
async function call(base, method, route, url, init = {}) {
  const res = await request(`${base}${url}`, { method: method.toUpperCase(), ...init });
  const body = check(method, route, { status: res.status, type: res.headers.get('content-type'), text: res.text });
  return { status: res.status, body };
}

// ---- SSE and WebSocket handshakes, which fetch() does not do

/**
 * Opens an SSE stream (helpers' sseStream, which checks the framing). A
 * refusal resolves {status, body} checked against the document; a 200
 * resolves the open stream, whose every event is checked against the
 * documented event schemas as it arrives (a mismatch rejects its waits).
 */
async function openEvents(base, url, headers = {}) {
  const route = '/api/articles/{id}/events';
  const { response } = documentedResponse('get', route, 200);
  const documented = response['x-sse-events'];
  const stream = sseStream(`${base}${url}`, { headers, ms: 8000 });
  // Set before the response: the first event may come with the headers.
  stream.onEvent = (e) => {
    assert.ok(documented[e.event], `SSE event ${e.event} is not documented`);
    assertSchema(documented[e.event].$ref.slice(1), e.data, `SSE ${e.event} event`);
  };
  const res = await deadline(stream.response, 5000, `GET ${url}`);
  const type = res.headers['content-type'];
  if (res.statusCode !== 200) {
    const text = await deadline(stream.body, 5000, `the body of GET ${url}`);
    return { status: res.statusCode, body: check('get', route, { status: res.statusCode, type, text }) };
  }
  try {
    assert.ok(response.content[type], `SSE content-type ${type}`);
    assert.equal(res.headers['cache-control'], response.headers['cache-control'].schema.const);
  } catch (e) {
    stream.close();
    throw e;
  }
  stream.status = 200;
  return stream;
}

/** A WebSocket handshake checked against GET /ws: resolves {status, body?, ws?}. */
function handshake(base, query, headers = {}) {
  return deadline(new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base.replace('http', 'ws')}/ws${query}`, { headers });
    ws.once('open', () => {
      documentedResponse('get', '/ws', 101);
      resolve({ status: 101, ws });
    });
    ws.once('unexpected-response', (req, res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode, body: check('get', '/ws', { status: res.statusCode, type: res.headers['content-type'], text }) });
        } catch (e) {
          reject(e);
        }
        req.destroy();
      });
    });
    ws.on('error', reject);  // after a refusal too: a second settle is a no-op
  }), 5000, `WebSocket handshake /ws${query}`);
}

const secret = crypto.randomBytes(32).toString('hex');
const b64 = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
function jwt(sub) {
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + 600 })}`;
  return `${head}.${crypto.createHmac('sha256', secret).update(head).digest('base64url')}`;
}

// ---- the servers

let main;   // demo mode, LMDB, an articles file, an admin listener
let auth;   // auth mode
let tight;  // tiny limits, and a web root without the document
before(async () => {
  const dir = tempDir('clapsd-openapi-');
  const articles = path.join(dir, 'articles.json');
  fs.writeFileSync(articles, JSON.stringify(['oa-1', 'oa-2', 'oa-sse', 'oa-big'].map((id) => ({ id }))));
  const secretFile = path.join(dir, 'secret');
  fs.writeFileSync(secretFile, `${secret}\n`);
  const emptyWeb = tempDir('clapsd-openapi-web-');
  [main, auth, tight] = await Promise.all([
    startServer({ args: ['--tick-ms', '20', '--web-root', webRoot, '--articles-file', articles,
      '--admin-listen', '127.0.0.1:0', '--max-message-bytes', '512', '--ping-interval-s', '1'] }),
    startServer({ args: ['--store', 'memory', '--tick-ms', '20', '--web-root', webRoot, '--auth-secret-file', secretFile] }),
    startServer({ args: ['--store', 'memory', '--tick-ms', '20', '--web-root', emptyWeb,
      '--max-connections', '2', '--max-sse-streams', '1', '--max-connections-per-user', '1',
      '--max-connections-per-ip', '8', '--rate-limit', '0.01', '--rate-burst', '1',
      // A closed SSE stream is noticed when a heartbeat cannot be written.
      '--ping-interval-s', '1'] }),
  ]);
});
after(async () => {
  await Promise.all([main?.stop(), auth?.stop(), tight?.stop()]);
});

describe('the document', () => {
  test('is valid OpenAPI 3.1 (@seriousme/openapi-schema-validator), its $refs resolving', async () => {
    const validator = new Validator();
    const result = await validator.validate(docPath);
    assert.deepEqual(result, { valid: true }, JSON.stringify(result.errors, null, 2));
    assert.equal(validator.version, '3.1');
    assert.equal(doc.openapi, '3.1.0');
  });

  test('the validator does fail a broken document (so the check above can fail)', async () => {
    const broken = structuredClone(doc);
    delete broken.paths['/healthz'].get.responses['200'].description;
    assert.equal((await new Validator().validate(broken)).valid, false);
    const dangling = structuredClone(doc);
    dangling.paths['/healthz'].get.responses['200'].content['application/json'].schema = { $ref: '#/components/schemas/Nope' };
    assert.equal((await new Validator().validate(dangling)).valid, false);
  });

  test('clapsd serves it at /api/openapi.json as it is in the tree', async () => {
    const res = await request(`${main.http}/api/openapi.json`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.equal(res.text, fs.readFileSync(docPath, 'utf8'));
    check('get', '/api/openapi.json', { status: res.status, type: res.headers.get('content-type'), text: res.text });
    // A web root without it: 404, as documented.
    const missing = await call(tight.http, 'get', '/api/openapi.json', '/api/openapi.json');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.code, 'not_found');
  });
});

describe('articles', () => {
  const counts = '/api/articles/{id}';
  const claps = '/api/articles/{id}/claps';

  test('GET, POST and DELETE answer with their documented bodies', async () => {
    let r = await call(main.http, 'get', counts, '/api/articles/oa-1');
    assert.deepEqual(r, { status: 200, body: { article: 'oa-1', total: 0, viewers: 0 } });
    r = await call(main.http, 'post', claps, '/api/articles/oa-1/claps?user=oa-alice', { body: '{"count":3,"id":"op-1"}' });
    assert.deepEqual(r.body, { article: 'oa-1', accepted: 3, total: 3, mine: 3, durability: 'local' });
    r = await call(main.http, 'post', claps, '/api/articles/oa-1/claps?user=oa-alice', { body: '{"count":3,"id":"op-1"}' });
    assert.equal(r.body.replayed, true, 'a replay says so');
    r = await call(main.http, 'post', claps, '/api/articles/oa-1/claps?user=oa-alice');
    assert.equal(r.body.accepted, 1, 'no body: one clap');
    r = await call(main.http, 'get', counts, '/api/articles/oa-1?user=oa-alice');
    assert.deepEqual(r.body, { article: 'oa-1', total: 4, viewers: 0, mine: 4 });
    r = await call(main.http, 'delete', claps, '/api/articles/oa-1/claps?user=oa-alice&id=op-2');
    assert.deepEqual(r.body, { article: 'oa-1', accepted: -4, total: 0, mine: 0, durability: 'local' });
  });

  test('400, 404, 405 and 413 are documented Error bodies', async () => {
    const bad = [
      ['get', counts, '/api/articles/bad%20id', 'invalid_article'],
      ['get', counts, '/api/articles/oa-1?user=bad%20user', 'bad_request'],
      ['post', claps, '/api/articles/oa-1/claps', 'bad_request'],  // demo mode without a user
      ['post', claps, '/api/articles/bad%20id/claps?user=oa-bob', 'invalid_article'],
      ['delete', claps, '/api/articles/oa-1/claps?user=oa-bob&id=bad%20op', 'bad_request'],
      ['delete', claps, '/api/articles/oa-1/claps', 'bad_request'],
    ];
    for (const [method, route, url, code] of bad) {
      const r = await call(main.http, method, route, url);
      assert.deepEqual([r.status, r.body.code], [400, code], `${method} ${url}`);
    }
    for (const body of ['{"count":"two"}', '{"count":0}', '{nope', '{"id":"bad op"}']) {
      const r = await call(main.http, 'post', claps, '/api/articles/oa-1/claps?user=oa-bob', { body });
      assert.equal(r.status, 400, body);
    }
    for (const [method, route, url] of [['get', counts, '/api/articles/oa-unlisted'],
      ['post', claps, '/api/articles/oa-unlisted/claps?user=oa-bob'],
      ['delete', claps, '/api/articles/oa-unlisted/claps?user=oa-bob']]) {
      const r = await call(main.http, method, route, url);
      assert.deepEqual([r.status, r.body.code], [404, 'invalid_article'], `${method} ${url}`);
    }
    const big = await call(main.http, 'post', claps, '/api/articles/oa-big/claps?user=oa-bob',
      { body: JSON.stringify({ count: 1, pad: 'p'.repeat(1000) }) });
    assert.deepEqual([big.status, big.body.code], [413, 'message_too_large']);
    // Methods a path does not take: 405 with an Error body, as info.description says.
    for (const [method, url] of [['PUT', '/api/articles/oa-1'], ['POST', '/api/articles/oa-1'],
      ['PUT', '/api/articles/oa-1/claps'], ['DELETE', '/api/articles/oa-1/events']]) {
      const r = await request(`${main.http}${url}`, { method });
      assert.equal(r.status, 405, `${method} ${url}`);
      assert.equal(r.headers.get('content-type'), 'application/json');
      assertSchema('/components/schemas/Error', r.json, `${method} ${url}`);
    }
    // Nothing refused was counted.
    assert.equal((await call(main.http, 'get', counts, '/api/articles/oa-big')).body.total, 0);
  });

  test('auth mode: 401 without a valid token, 200 with one in the header or ?token=', async () => {
    let r = await call(auth.http, 'post', claps, '/api/articles/oa-1/claps', { body: '{"count":2}' });
    assert.deepEqual([r.status, r.body.code], [401, 'unauthorized']);
    r = await call(auth.http, 'delete', claps, '/api/articles/oa-1/claps?user=oa-alice');
    assert.deepEqual([r.status, r.body.code], [401, 'unauthorized'], '?user= is no identity in auth mode');
    r = await call(auth.http, 'get', counts, '/api/articles/oa-1?token=not.a.jwt');
    assert.deepEqual([r.status, r.body.code], [401, 'unauthorized']);
    r = await call(auth.http, 'get', counts, '/api/articles/oa-1?user=oa-carol');
    assert.deepEqual([r.status, r.body.code], [401, 'unauthorized'], 'a read naming a user without a token');
    r = await call(auth.http, 'post', claps, '/api/articles/oa-1/claps', { body: '{"count":2}', headers: { authorization: `Bearer ${jwt('oa-carol')}` } });
    assert.deepEqual(r.body, { article: 'oa-1', accepted: 2, total: 2, mine: 2, durability: 'local' });
    r = await call(auth.http, 'get', counts, `/api/articles/oa-1?token=${jwt('oa-carol')}`);
    assert.deepEqual(r.body, { article: 'oa-1', total: 2, viewers: 0, mine: 2 });
    r = await call(auth.http, 'get', counts, '/api/articles/oa-1');
    assert.deepEqual(r.body, { article: 'oa-1', total: 2, viewers: 0 }, 'an anonymous read');
    r = await call(auth.http, 'delete', claps, `/api/articles/oa-1/claps?token=${jwt('oa-carol')}`);
    assert.equal(r.body.accepted, -2);
  });

  test('429 once a bucket is empty', async () => {
    let r = await call(tight.http, 'get', counts, '/api/articles/t-1?user=t-reader');
    assert.equal(r.status, 200);
    r = await call(tight.http, 'get', counts, '/api/articles/t-1?user=t-reader');
    assert.deepEqual([r.status, r.body.code], [429, 'rate_limited']);
    r = await call(tight.http, 'post', claps, '/api/articles/t-1/claps?user=t-clapper');
    assert.equal(r.body.accepted, 1);
    r = await call(tight.http, 'post', claps, '/api/articles/t-1/claps?user=t-clapper');
    assert.deepEqual([r.status, r.body.code], [429, 'rate_limited']);
    r = await call(tight.http, 'delete', claps, '/api/articles/t-1/claps?user=t-clapper');
    assert.deepEqual([r.status, r.body.code], [429, 'rate_limited']);
  });
});

describe('streams', () => {
  const events = '/api/articles/{id}/events';

  test('SSE: a snapshot, an event per change and heartbeats, all as documented', async () => {
    const stream = await openEvents(main.http, '/api/articles/oa-sse/events');
    await stream.until(() => true, 'the snapshot event');
    assert.deepEqual(stream.events[0], { event: 'count', data: { article: 'oa-sse', total: 0, viewers: 1 } });
    await call(main.http, 'post', '/api/articles/{id}/claps', '/api/articles/oa-sse/claps?user=oa-dave', { body: '{"count":5}' });
    await stream.until((e) => e.data.total === 5, 'the clap event');
    await stream.waitFor(() => stream.heartbeats >= 1, 'a heartbeat (--ping-interval-s 1)');
    stream.close();
  });

  test('SSE refusals: 400, 401, 403, 404, 429 and 503', async () => {
    let r = await openEvents(main.http, '/api/articles/bad%20id/events');
    assert.deepEqual([r.status, r.body.code], [400, 'invalid_article']);
    r = await openEvents(main.http, '/api/articles/oa-unlisted/events');
    assert.deepEqual([r.status, r.body.code], [404, 'invalid_article']);
    r = await openEvents(main.http, '/api/articles/oa-sse/events', { origin: 'http://evil.example' });
    assert.deepEqual([r.status, r.body.code], [403, 'forbidden']);
    r = await openEvents(auth.http, '/api/articles/oa-1/events');
    assert.deepEqual([r.status, r.body.code], [401, 'unauthorized']);
    const authed = await openEvents(auth.http, `/api/articles/oa-1/events?token=${jwt('oa-erin')}`);
    assert.equal(authed.status, 200);
    authed.close();

    // tight: one SSE stream at most, two connections, one bucket token per address.
    const held = await openEvents(tight.http, '/api/articles/t-2/events');
    assert.equal(held.status, 200);
    r = await openEvents(tight.http, '/api/articles/t-2/events');
    assert.deepEqual([r.status, r.body.code], [503, 'unavailable'], '--max-sse-streams');
    held.close();
    await eventually(async () => (await metrics(tight)).claps_sse_streams === 0, { ms: 10000, what: 'the server to notice the stream closed (heartbeats)' });
    r = await openEvents(tight.http, '/api/articles/t-2/events');
    assert.deepEqual([r.status, r.body.code], [429, 'rate_limited'], 'the address bucket is empty');
  });

  test('the WebSocket handshake: 101, and refusals 400, 401, 403, 426, 429 and 503', async () => {
    let r = await handshake(main.http, '?user=oa-ws');
    assert.equal(r.status, 101);
    r.ws.close();
    r = await handshake(main.http, '?user=bad%20user');
    assert.deepEqual([r.status, r.body.code], [400, 'bad_request']);
    r = await handshake(auth.http, '');
    assert.deepEqual([r.status, r.body.code], [401, 'unauthorized']);
    r = await handshake(main.http, '?user=oa-ws', { origin: 'http://evil.example' });
    assert.deepEqual([r.status, r.body.code], [403, 'forbidden']);
    const plain = await call(main.http, 'get', '/ws', '/ws');
    assert.deepEqual([plain.status, plain.body.code], [426, 'bad_request']);

    // tight: --max-connections 2, --max-connections-per-user 1.
    const first = await handshake(tight.http, '?user=t-ws');
    assert.equal(first.status, 101);
    r = await handshake(tight.http, '?user=t-ws');
    assert.deepEqual([r.status, r.body.code], [429, 'rate_limited'], '--max-connections-per-user');
    const second = await handshake(tight.http, '?user=t-ws2');
    assert.equal(second.status, 101);
    r = await handshake(tight.http, '?user=t-ws3');
    assert.deepEqual([r.status, r.body.code], [503, 'unavailable'], '--max-connections');
    first.ws.close();
    second.ws.close();
  });
});

describe('operations', () => {
  test('/healthz, /readyz and /metrics on the admin listener; /metrics is 404 on the public port then', async () => {
    for (const base of [main.http, main.admin]) {
      assert.deepEqual(await call(base, 'get', '/healthz', '/healthz'), { status: 200, body: { status: 'ok' } });
      assert.deepEqual(await call(base, 'get', '/readyz', '/readyz'), { status: 200, body: { status: 'ready' } });
    }
    const m = await call(main.admin, 'get', '/metrics', '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.body, /^claps_ready 1$/m);
    const r = await call(main.http, 'get', '/metrics', '/metrics');
    assert.deepEqual([r.status, r.body.code], [404, 'not_found']);
  });

  test('/readyz is 503 with reason draining from the moment a shutdown starts', async () => {
    const draining = await startServer({ args: ['--store', 'memory', '--drain-grace-s', '3'] });
    try {
      assert.equal((await call(draining.http, 'get', '/readyz', '/readyz')).status, 200);
      draining.child.kill('SIGTERM');
      const r = await eventually(async () => {
        const res = await call(draining.http, 'get', '/readyz', '/readyz');
        return res.status === 503 && res;
      }, { what: '/readyz to answer 503' });
      assert.deepEqual([r.body.code, r.body.reason], ['unavailable', 'draining']);
      const { code } = await deadline(draining.exited, 15000, 'the drained clapsd to exit');
      assert.equal(code, 0);
    } finally {
      await draining.stop();  // a no-op once it exited
    }
  });
});

/** A request over `agent` (node:http, so a kept-alive socket can be reused on purpose): {status, type, text}. */
function agentRequest(agent, url, method, body) {
  return deadline(new Promise((resolve, reject) => {
    const req = http.request(url, { agent, method }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], text }));
    });
    req.on('error', reject);
    req.end(body);
  }), 5000, `${method} ${url}`);
}

describe('during the drain', () => {
  test('claps and undos on a kept-alive connection get 503 once the listener closed', async () => {
    const draining = await startServer({ args: ['--store', 'memory', '--drain-grace-s', '0', '--drain-spread-s', '4'] });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const held = [];
    try {
      // Open WebSockets keep the drain going: the first of their three close
      // batches goes at once, the last over 2 s later. The listener is closed
      // from the start, so only an already open connection gets in.
      for (let i = 0; i < 3; i++) {
        held.push(await handshake(draining.http, `?user=d-ws${i}`));
        assert.equal(held[i].status, 101);
      }
      const ready = await agentRequest(agent, `${draining.http}/readyz`, 'GET');
      assert.equal(check('get', '/readyz', ready).status, 'ready');
      draining.child.kill('SIGTERM');
      const clap = await eventually(async () => {
        const res = await agentRequest(agent, `${draining.http}/api/articles/d-1/claps?user=d-alice`, 'POST');
        check('post', '/api/articles/{id}/claps', res);
        return res.status === 503 && res;
      }, { what: 'a clap refused for the drain' });
      assert.equal(JSON.parse(clap.text).code, 'unavailable');
      const undo = await agentRequest(agent, `${draining.http}/api/articles/d-1/claps?user=d-alice`, 'DELETE');
      assert.deepEqual([undo.status, check('delete', '/api/articles/{id}/claps', undo).code], [503, 'unavailable']);
      const { code } = await deadline(draining.exited, 15000, 'the drained clapsd to exit');
      assert.equal(code, 0);
    } finally {
      for (const h of held) h.ws.terminate();
      agent.destroy();
      await draining.stop();
    }
  });
});

// Documented statuses that a test on loopback with a working store cannot
// provoke, and why. Everything else the document lists must have been seen.
const unreachable = {
  'get /api/articles/{id}': { 503: 'a store that fails a read' },
  'get /healthz': { 401: 'the admin token is asked off loopback only; tests bind to loopback' },
  'get /readyz': { 401: 'as for /healthz' },
  'get /metrics': { 401: 'as for /healthz' },
};

test('every documented operation, and every documented status that can be provoked, was exercised', () => {
  const missing = [];
  for (const [route, item] of Object.entries(doc.paths)) {
    for (const method of ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']) {
      if (!item[method]) continue;
      const key = `${method} ${route}`;
      assert.ok(seen.has(key), `${key} is documented but was never exercised`);
      for (const status of Object.keys(item[method].responses)) {
        if (!seen.get(key).has(status) && !unreachable[key]?.[status]) missing.push(`${key} ${status}`);
      }
    }
  }
  assert.deepEqual(missing, [], 'documented statuses never seen');
  for (const [key, statuses] of Object.entries(unreachable)) {
    for (const status of Object.keys(statuses)) {
      const [method, route] = key.split(' ');
      assert.ok(doc.paths[route][method].responses[status], `${key} ${status} is listed as unreachable but not documented`);
    }
  }
});
