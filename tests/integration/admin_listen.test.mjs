// --admin-listen: metrics and readiness of this very process on a listener of
// their own, behind the admin token off loopback; the public port keeps
// /healthz and /readyz for load balancers and stops serving /metrics.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { client, request, runClapsd, startServer, tempDir } from './helpers.mjs';

test('a loopback admin listener serves metrics and readiness, and nothing else', async () => {
  const server = await startServer({ args: ['--store', 'memory', '--admin-listen', '127.0.0.1:0'] });
  try {
    assert.ok(server.admin, 'the admin line on stdout');
    const metrics = await request(`${server.admin}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /^claps_ready 1$/m);
    assert.deepEqual((await request(`${server.admin}/readyz`)).json, { status: 'ready' });
    assert.equal((await request(`${server.admin}/healthz`)).status, 200);
    const api = await request(`${server.admin}/api/articles/adm-1`);
    assert.equal(api.status, 404, 'no public routes on the admin listener');
    assert.equal(api.json.code, 'not_found');
    const upgrade = new client(`${server.admin.replace('http', 'ws')}/ws?user=a`);
    const refused = await upgrade.opened.then(() => null, (e) => e);
    assert.equal(refused?.status, 404, 'no /ws on the admin listener (its socket is /admin/ws)');
    // The public port: readiness for load balancers, no metrics.
    const pub = await request(`${server.http}/metrics`);
    assert.equal(pub.status, 404);
    assert.match(pub.json.message, /--admin-listen/);
    assert.deepEqual((await request(`${server.http}/readyz`)).json, { status: 'ready' });
  } finally {
    await server.stop();
  }
});

test('off loopback the admin listener needs the admin token', async () => {
  const dir = tempDir();
  const tokenFile = path.join(dir, 'admin-token');
  const token = 'an-admin-token-of-32-bytes-long!';
  fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  // ::ffff:127.0.0.1 is loopback underneath, but not an address clapsd
  // treats as loopback: it stands in for a public interface here.
  const server = await startServer({
    args: ['--store', 'memory', '--admin-listen', '[::ffff:127.0.0.1]:0', '--admin-token-file', tokenFile],
  });
  try {
    const bare = await request(`${server.admin}/metrics`);
    assert.equal(bare.status, 401);
    assert.equal(bare.json.code, 'unauthorized');
    const wrong = await request(`${server.admin}/metrics`, { headers: { authorization: `Bearer ${token.slice(0, -1)}x` } });
    assert.equal(wrong.status, 401);
    const longer = await request(`${server.admin}/readyz`, { headers: { authorization: `Bearer ${token}x` } });
    assert.equal(longer.status, 401);
    const good = await request(`${server.admin}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(good.status, 200);
    assert.match(good.text, /^claps_ready 1$/m);
  } finally {
    await server.stop();
  }
});

test('bad admin settings refuse to start', async () => {
  const open = await runClapsd(['--store', 'memory', '--listen', '127.0.0.1:0', '--admin-listen', '0.0.0.0:0']);
  assert.equal(open.code, 2);
  assert.match(open.stderr, /--admin-token-file/);
  const dir = tempDir();
  const short = path.join(dir, 'short');
  fs.writeFileSync(short, 'too-short\n');
  const weak = await runClapsd(['--store', 'memory', '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0',
    '--admin-token-file', short]);
  assert.equal(weak.code, 1);
  assert.match(weak.stderr, /at least 16 bytes/);
  const port = await runClapsd(['--store', 'memory', '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:x']);
  assert.equal(port.code, 2);
  assert.match(port.stderr, /--admin-listen: port/);
});
