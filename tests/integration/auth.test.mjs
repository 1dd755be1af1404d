// Auth mode: identity only from HS256 JWTs (?token= or Authorization: Bearer),
// exp enforced with a leeway of at most 30 s, sub a valid user id.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { client, request, runClapsd, startServer, tempDir } from './helpers.mjs';

const secret = 'integration-secret-0123456789abcdef';  // 32 bytes or more, as clapsd demands
let server;
before(async () => {
  const file = path.join(tempDir(), 'secret');
  fs.writeFileSync(file, `${secret}\n`);  // the trailing newline is not part of the secret
  server = await startServer({ args: ['--store', 'memory', '--auth-secret-file', file] });
});
after(async () => { await server?.stop(); });

const b64 = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);
// Test tokens are built here with node's HMAC; the server verifies with libjwt.
function token(claims, { alg = 'HS256', key = secret } = {}) {
  const head = `${b64({ alg, typ: 'JWT' })}.${b64(claims)}`;
  if (alg === 'none') return `${head}.`;
  const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
  return `${head}.${crypto.createHmac(hash, key).update(head).digest('base64url')}`;
}

async function handshake(query, headers = {}) {
  const c = new client(`${server.ws}${query}`, { headers });
  try {
    await c.opened;
    const hello = await c.next((f) => f.type === 'hello');
    c.terminate();
    return { status: 101, user: hello.user };
  } catch (e) {
    return { status: e.status, body: e.body };
  }
}

test('a valid HS256 token names the user, from the query or a bearer header', async () => {
  const t = token({ sub: 'alice', exp: now() + 60 });
  assert.deepEqual(await handshake(`?token=${t}`), { status: 101, user: 'alice' });
  assert.deepEqual(await handshake('', { authorization: `Bearer ${t}` }), { status: 101, user: 'alice' });
  // ?user= is ignored when a token decides.
  assert.deepEqual(await handshake(`?token=${t}&user=mallory`), { status: 101, user: 'alice' });
  // exp inside the leeway still passes.
  assert.equal((await handshake(`?token=${token({ sub: 'late', exp: now() - 10 })}`)).status, 101);
});

test('the Authorization header wins over ?token=, which ends up in proxy logs', async () => {
  const good = token({ sub: 'carol', exp: now() + 60 });
  const other = token({ sub: 'mallory', exp: now() + 60 });
  assert.deepEqual(await handshake(`?token=${other}`, { authorization: `Bearer ${good}` }), { status: 101, user: 'carol' });
  // An expired header token is not rescued by a valid query token.
  const expired = token({ sub: 'carol', exp: now() - 3600 });
  assert.equal((await handshake(`?token=${good}`, { authorization: `Bearer ${expired}` })).status, 401);
});

test('an exp as far ahead as a 64-bit integer allows is refused for its lifetime, not overflowed into "expired"', async () => {
  // Written as text: a JavaScript number cannot hold 2^63 - 1 exactly.
  const t = token('{"sub":"far","exp":9223372036854775807,"nbf":-9223372036854775807}');
  const r = await handshake(`?token=${t}`);
  assert.equal(r.status, 401);
  assert.match(JSON.parse(r.body).message, /lives longer/);
  // Within the maximum lifetime (7 days by default) a token passes.
  assert.equal((await handshake(`?token=${token({ sub: 'week', exp: now() + 6 * 24 * 3600 })}`)).status, 101);
  assert.equal((await handshake(`?token=${token({ sub: 'month', exp: now() + 30 * 24 * 3600 })}`)).status, 401);
});

test('--jwt-audience and --jwt-issuer: tokens must name them', async () => {
  const file = path.join(tempDir(), 'secret');
  fs.writeFileSync(file, secret);
  const strict = await startServer({
    args: ['--store', 'memory', '--auth-secret-file', file, '--jwt-audience', 'claps-web', '--jwt-issuer', 'accounts'],
  });
  try {
    const shake = async (claims) => {
      const c = new client(`${strict.ws}?token=${token(claims)}`);
      return c.opened.then(() => { c.terminate(); return 101; }, (e) => e.status);
    };
    const base = { sub: 'ann', exp: now() + 60 };
    assert.equal(await shake({ ...base, aud: 'claps-web', iss: 'accounts' }), 101);
    assert.equal(await shake({ ...base, aud: ['other', 'claps-web'], iss: 'accounts' }), 101);
    assert.equal(await shake({ ...base, aud: 'other', iss: 'accounts' }), 401);
    assert.equal(await shake({ ...base, aud: ['other'], iss: 'accounts' }), 401);
    assert.equal(await shake({ ...base, iss: 'accounts' }), 401);
    assert.equal(await shake({ ...base, aud: 'claps-web', iss: 'elsewhere' }), 401);
    assert.equal(await shake({ ...base, aud: 'claps-web' }), 401);
  } finally {
    await strict.stop();
  }
});

test('a secret shorter than 32 bytes refuses to start', async () => {
  const file = path.join(tempDir(), 'short');
  fs.writeFileSync(file, 'too-short-secret\n');
  const r = await runClapsd(['--store', 'memory', '--auth-secret-file', file]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /at least 32 bytes/);
});

test('in auth mode an SSE stream needs a token too (?token=, as EventSource sets no headers)', async () => {
  const status = (query) => new Promise((resolve, reject) => {
    const req = http.get(`${server.http}/api/articles/auth-sse/events${query}`, (res) => {
      req.destroy();
      resolve(res.statusCode);
    });
    req.on('error', (e) => (e.code === 'ECONNRESET' ? undefined : reject(e)));
  });
  assert.equal(await status(''), 401);
  assert.equal(await status(`?token=${token({ sub: 'sam', exp: now() - 3600 })}`), 401);
  assert.equal(await status(`?token=${token({ sub: 'sam', exp: now() + 60 })}`), 200);
});

test('everything else gets 401', async () => {
  const bad = {
    'no token': '',
    'user only': '?user=alice',
    expired: `?token=${token({ sub: 'alice', exp: now() - 3600 })}`,
    'expired past the leeway': `?token=${token({ sub: 'alice', exp: now() - 45 })}`,
    'no exp': `?token=${token({ sub: 'alice' })}`,
    'string exp': `?token=${token({ sub: 'alice', exp: String(now() + 60) })}`,
    'alg none': `?token=${token({ sub: 'alice', exp: now() + 60 }, { alg: 'none' })}`,
    HS384: `?token=${token({ sub: 'alice', exp: now() + 60 }, { alg: 'HS384' })}`,
    HS512: `?token=${token({ sub: 'alice', exp: now() + 60 }, { alg: 'HS512' })}`,
    'wrong key': `?token=${token({ sub: 'alice', exp: now() + 60 }, { key: 'other' })}`,
    'key with newline': `?token=${token({ sub: 'alice', exp: now() + 60 }, { key: `${secret}\n` })}`,
    'bad sub': `?token=${token({ sub: 'bad sub!', exp: now() + 60 })}`,
    'no sub': `?token=${token({ exp: now() + 60 })}`,
    'numeric sub': `?token=${token({ sub: 42, exp: now() + 60 })}`,
    'not before': `?token=${token({ sub: 'alice', exp: now() + 600, nbf: now() + 300 })}`,
    garbage: '?token=not.a.jwt',
    // nbf at the far future must not overflow the leeway arithmetic into the past.
    'nbf at the far future': `?token=${token('{"sub":"alice","exp":9223372036854775807,"nbf":9223372036854775807}')}`,
  };
  for (const [name, query] of Object.entries(bad)) {
    const r = await handshake(query);
    assert.equal(r.status, 401, name);
    assert.equal(JSON.parse(r.body).code, 'unauthorized', name);
  }
});

test('REST in auth mode: bearer tokens for claps, 401 without', async () => {
  const t = token({ sub: 'bob', exp: now() + 60 });
  let r = await request(`${server.http}/api/articles/auth-1/claps`, {
    method: 'POST', headers: { authorization: `Bearer ${t}` }, body: '{"count":4,"id":"op-1"}',
  });
  assert.equal(r.status, 200);
  assert.equal(r.json.mine, 4);
  r = await request(`${server.http}/api/articles/auth-1/claps?user=bob`, { method: 'POST', body: '{}' });
  assert.equal(r.status, 401);
  assert.equal(r.json.code, 'unauthorized');
  r = await request(`${server.http}/api/articles/auth-1/claps`, {
    method: 'DELETE', headers: { authorization: `Bearer ${token({ sub: 'bob', exp: now() - 3600 })}` },
  });
  assert.equal(r.status, 401);
  r = await request(`${server.http}/api/articles/auth-1/claps?token=${t}`, { method: 'DELETE' });
  assert.deepEqual(r.json, { article: 'auth-1', accepted: -4, total: 0, mine: 0, durability: 'local' });
  // Reading needs no identity.
  r = await request(`${server.http}/api/articles/auth-1`);
  assert.equal(r.status, 200);
  // The WebSocket user from the token claps as that user.
  const ws = await client.open(`${server.ws}?token=${t}`);
  const ack = await ws.clap('auth-1', 2);
  assert.equal(ack.mine, 2);
  await ws.close();
});
