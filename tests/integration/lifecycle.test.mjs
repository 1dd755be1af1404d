// Process lifecycle: SIGTERM drain and restart, kill -9 after acks, the data
// dir lock, exit codes, CLAPS_* environment variables, --articles-file.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { CLAPSD, client, deadline, eventually, metric, request, runClapsd, startServer, tempDir } from './helpers.mjs';

async function totals(server, articles, user) {
  const out = {};
  for (const a of articles) {
    const r = await request(`${server.http}/api/articles/${a}${user ? `?user=${user}` : ''}`);
    out[a] = user ? [r.json.total, r.json.mine] : r.json.total;
  }
  return out;
}

test('SIGTERM: readyz 503, no new connections, pending claps committed and acked, 1001, exit 0, totals survive', async () => {
  const dir = tempDir();
  let server = await startServer({ dataDir: dir, args: ['--tick-ms', '200', '--shutdown-timeout-s', '2'] });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const get = (p) => deadline(new Promise((resolve, reject) => {
    http.get(`${server.http}${p}`, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    }).on('error', reject);
  }), 5000, `GET ${p}`);
  assert.equal(await get('/readyz'), 200);

  const u = await client.open(`${server.ws}?user=drainer`);
  await u.subscribe(['drain-1']);
  assert.equal((await u.clap('drain-1', 3, 'd0')).total, 3);
  // A client that stops reading keeps the drain going for a while.
  const stubborn = await client.open(`${server.ws}?user=stubborn`);
  stubborn.ws._socket.pause();
  // These claps are still pending (200 ms tick) when the signal arrives.
  for (let i = 1; i <= 4; i++) u.send({ type: 'clap', article: 'drain-1', count: 2, id: `d${i}` });
  await new Promise((resolve) => setImmediate(resolve));
  const acksBefore = u.frames.filter((f) => f.type === 'ack').length;
  server.child.kill('SIGTERM');
  const acks = await Promise.all([1, 2, 3, 4].map((i) => u.ack(`d${i}`)));
  assert.ok(acks.every((a) => a.type === 'ack'), 'every clap sent before the signal is acknowledged');
  assert.equal(Math.max(...acks.map((a) => a.total)), 11);
  assert.equal(acksBefore, 0);
  assert.equal(await eventually(async () => (await get('/readyz')) === 503 && 503, { what: 'readyz 503' }), 503);
  await assert.rejects(request(`${server.http}/healthz`), 'no new connections while draining');
  const closed = await deadline(u.closed, 5000, 'close 1001');
  assert.equal(closed.code, 1001);
  const { code } = await deadline(server.exited, 10000, 'exit');
  assert.equal(code, 0);
  agent.destroy();

  server = await startServer({ dataDir: dir });
  assert.deepEqual(await totals(server, ['drain-1'], 'drainer'), { 'drain-1': [11, 11] });
  await server.stop();
});

test('kill -9 right after acks: every acknowledged clap is there after restart', async () => {
  const dir = tempDir();
  let server = await startServer({ dataDir: dir, args: ['--tick-ms', '10'] });
  const users = await Promise.all(['k1', 'k2', 'k3'].map((u) => client.open(`${server.ws}?user=${u}`)));
  const articles = ['kill-1', 'kill-2', 'kill-3', 'kill-4'];
  const acked = {};
  const pending = [];
  users.forEach((u, ui) => articles.forEach((a, ai) => {
    for (let n = 0; n < 5; n++) {
      pending.push(u.clap(a, 1 + ((ui + ai + n) % 4)).then((ack) => {
        assert.equal(ack.type, 'ack');
        acked[a] = Math.max(acked[a] ?? 0, ack.total);
      }));
    }
  }));
  await Promise.all(pending);
  server.child.kill('SIGKILL');
  assert.equal((await server.exited).signal, 'SIGKILL');
  server = await startServer({ dataDir: dir });
  assert.deepEqual(await totals(server, articles), acked);
  await server.stop();
});

test('a second clapsd on the same data dir fails fast with exit 1', async () => {
  const server = await startServer();
  const second = await runClapsd(['--listen', '127.0.0.1:0', '--data-dir', server.dataDir]);
  assert.equal(second.code, 1);
  assert.match(second.stderr, /in use by another clapsd/);
  assert.equal(second.stdout, '');
  // The port in use is a runtime failure too.
  const busy = await runClapsd(['--listen', `127.0.0.1:${server.port}`, '--data-dir', tempDir()]);
  assert.equal(busy.code, 1);
  assert.match(busy.stderr, /cannot listen/);
  await server.stop();
});

test('bad flags exit 2 with a message; --help documents every flag', async () => {
  for (const [args, env, pattern] of [
    [['--tick-ms', '0'], {}, /tick-ms/],
    [['--store', 'sqlite'], {}, /--store/],
    [['--listen', 'nonsense'], {}, /--listen/],
    [['--no-such-flag'], {}, /no-such-flag/],
    [['--max-connections', 'many'], {}, /many/],
    [['extra-argument'], {}, /extra-argument/],
    [[], { CLAPS_TICK_MS: 'soon' }, /soon/],
    [[], { CLAPS_LOG_LEVEL: 'loud' }, /log-level/],
    [['--lmdb-map-size', String(8 << 20), '--lmdb-max-size', String(4 << 20)], {}, /--lmdb-max-size/],
    [['--op-id-window-s', '0'], {}, /--op-id-window-s/],
    [['--drain-grace-s', '-1'], {}, /--drain-grace-s/],
    [['--op-pending-s', '0'], {}, /--op-pending-s must be 1..3600/],
    [['--drain-spread-s', '20'], {}, /do not fit in --shutdown-timeout-s 15/],
    [['--redis-cluster', '127.0.0.1:7000', '--redis', 'redis://127.0.0.1', '--node-id', 'a'], {}, /one of --redis/],
    [['--redis-cluster', '127.0.0.1:7000,', '--node-id', 'a'], {}, /--redis-cluster: expected/],
    [['--redis-cluster', '127.0.0.1:7000'], {}, /need --node-id/],
    [['--node-id', 'a'], { CLAPS_REDIS_CLUSTER: 'h:0' }, /--redis-cluster: expected/],
  ]) {
    const r = await runClapsd(args, env);
    assert.equal(r.code, 2, `${args} ${JSON.stringify(env)}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
  }
  const help = await runClapsd(['--help']);
  assert.equal(help.code, 0);
  for (const flag of ['listen', 'data-dir', 'store', 'tick-ms', 'clap-cap', 'auth-secret-file', 'allowed-origin',
    'max-connections', 'rate-limit', 'rate-burst', 'max-message-bytes', 'max-subscriptions', 'slow-client-bytes',
    'lmdb-map-size', 'lmdb-max-size', 'op-id-window-s', 'articles-file', 'log-level', 'web-root', 'client-root', 'ping-interval-s',
    'idle-timeout-s', 'handshake-timeout-s', 'shutdown-timeout-s', 'drain-grace-s', 'drain-spread-s', 'request-timeout-s',
    'rx-buffer-bytes', 'redis-cluster', 'op-pending-s']) {
    assert.match(help.stdout, new RegExp(`--${flag}\\b`), flag);
  }
  assert.match(help.stdout, /CLAPS_DATA_DIR/);
});

test('CLAPS_* environment variables, with the command line winning', async () => {
  const dir = tempDir();
  let server = await startServer({
    dataDir: dir,
    env: { CLAPS_CLAP_CAP: '5', CLAPS_TICK_MS: '30', CLAPS_ALLOWED_ORIGIN: 'http://a.example,http://b.example' },
  });
  let u = await client.open(`${server.ws}?user=env`);
  assert.equal(u.hello.cap, 5);
  assert.equal(u.hello.tick_ms, 30);
  assert.equal((await u.clap('env-1', 9)).type, 'error', 'count above the cap of 5');
  u.terminate();
  for (const origin of ['http://a.example', 'http://b.example']) {
    const c = await client.open(`${server.ws}?user=o`, { origin });
    c.terminate();
  }
  await server.stop();
  // The data dir itself can come from the environment.
  server = await startServer({ dataDir: dir, args: ['--clap-cap', '7', '--data-dir', dir], env: { CLAPS_CLAP_CAP: '5' } });
  u = await client.open(`${server.ws}?user=env`);
  assert.equal(u.hello.cap, 7);
  u.terminate();
  await server.stop();
  const envDir = tempDir();
  server = await startServer({ dataDir: envDir, args: ['--data-dir', envDir] });
  await server.stop();
  const viaEnv = await runClapsd(['--listen', '127.0.0.1:0'], { CLAPS_DATA_DIR: dir, CLAPS_TICK_MS: '0' });
  assert.equal(viaEnv.code, 2, 'the environment value is validated like the flag');
});

test('--articles-file takes the demo JSON or a plain id list', async () => {
  const dir = tempDir();
  const json = path.join(dir, 'articles.json');
  fs.writeFileSync(json, JSON.stringify([{ id: 'art-1', title: 'One', author: 'A', paragraphs: ['p'] }, { id: 'art-2' }]));
  const text = path.join(dir, 'articles.txt');
  fs.writeFileSync(text, '# allowed articles\nart-3\n\n  art-4  # inline comment\n');
  for (const [file, allowed, refused] of [[json, 'art-2', 'art-3'], [text, 'art-4', 'art-1']]) {
    const server = await startServer({ args: ['--store', 'memory', '--articles-file', file] });
    const u = await client.open(`${server.ws}?user=a`);
    assert.equal((await u.clap(allowed, 1)).type, 'ack');
    const err = await u.clap(refused, 1);
    assert.equal(err.code, 'invalid_article');
    u.send({ type: 'subscribe', articles: [allowed, refused], id: 'sub' });
    assert.equal((await u.error((e) => e.id === 'sub')).code, 'invalid_article');
    assert.equal((await request(`${server.http}/api/articles/${refused}`)).status, 404);
    assert.equal((await request(`${server.http}/api/articles/${allowed}`)).status, 200);
    u.terminate();
    await server.stop();
  }
  const broken = path.join(dir, 'broken.json');
  fs.writeFileSync(broken, '[{"title":"no id"}]');
  const r = await runClapsd(['--listen', '127.0.0.1:0', '--store', 'memory', '--articles-file', broken]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /"id"/);
  assert.ok(fs.existsSync(CLAPSD));
});

test('a full store: new claps refused at once (store_full), undos pass, readyz degraded, recovery without a restart', async () => {
  const dir = tempDir();
  // A 4 MiB maximum (2 MiB of it in reserve) fills after some thousands of
  // op ids; they are remembered for 8 s only, so the store can recover.
  const args = ['--tick-ms', '10', '--lmdb-map-size', String(256 << 10), '--lmdb-max-size', String(4 << 20),
    '--op-id-window-s', '8', '--rate-limit', '100000', '--rate-burst', '100000',
    // One user floods here; the per-user op-id cap would stop it before the store fills.
    '--max-op-ids-per-user', '0'];
  let server = await startServer({ dataDir: dir, args });
  try {
    const u = await client.open(`${server.ws}?user=filler`);
    const kept = [];
    for (let i = 0; i < 4; i++) {
      const ack = await u.clap(`keep-${i}`, 2, `keep-op-${i}`);
      assert.equal(ack.type, 'ack');
      kept.push(ack.article);
    }
    // The flood: op ids on a few articles, so that op records, not tallies,
    // fill the store. Every clap sent gets an answer, ack or error, before
    // the next group goes.
    const answer = new Map();
    u.ws.on('message', (data) => {
      const f = JSON.parse(data.toString());
      if ((f.type === 'ack' || f.type === 'error') && f.id?.startsWith('flood-')) answer.set(f.id, f);
    });
    const started = Date.now();
    let sent = 0;
    let refusal;
    while (!refusal && sent < 100000) {
      const group = [];
      for (let end = sent + 250; sent < end; sent++) {
        const id = `flood-${sent}-${'o'.repeat(50)}`;
        group.push(id);
        u.send({ type: 'clap', article: `flood-${sent % 8}`, id });
      }
      await eventually(() => group.every((id) => answer.has(id)), { ms: 10000, what: 'every clap of a group answered' });
      refusal = group.map((id) => answer.get(id)).find((f) => f.type === 'error');
    }
    const toRefusalMs = Date.now() - started;
    console.log(`# flood: ${sent} claps, first store_full after ${toRefusalMs} ms`);
    assert.ok(refusal, `a refusal within ${sent} claps`);
    assert.equal(refusal.code, 'unavailable');
    assert.equal(refusal.reason, 'store_full');
    assert.equal(answer.size, sent, 'every clap of the flood was answered');
    const acked = [...answer.values()].filter((f) => f.type === 'ack').length;
    assert.ok(acked > 1000, `${acked} claps acked before the store was short of space`);

    // From now on new claps are refused at once, a fresh user's too, and REST's.
    const more = await u.clap('flood-0', 1, 'flood-more');
    assert.equal(more.reason, 'store_full');
    const fresh = await client.open(`${server.ws}?user=fresh`);
    const refused = await fresh.clap('fresh-1', 1, 'fresh-op-0');
    assert.equal(refused.type, 'error');
    assert.equal(refused.code, 'unavailable');
    assert.equal(refused.reason, 'store_full');
    const rest = await request(`${server.http}/api/articles/rest-1/claps?user=rester`, {
      method: 'POST', body: JSON.stringify({ id: 'rest-op-1' }),
    });
    assert.equal(rest.status, 503);
    assert.equal(rest.json.code, 'unavailable');
    assert.equal(rest.json.reason, 'store_full');
    // Undos of acked claps pass, from the reserve.
    for (const article of kept.slice(0, 2)) {
      const undo = await u.undo(article, `undo-${article}`);
      assert.equal(undo.type, 'ack', JSON.stringify(undo));
      assert.equal(undo.accepted, -2);
    }
    // Degraded, not drained: reads, undos and existing users still work.
    const ready = await request(`${server.http}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.json, { status: 'degraded', reason: 'store_full' });
    assert.equal(await metric(server, 'claps_store_full'), 1);
    assert.equal(await metric(server, 'claps_lmdb_map_max_bytes'), 4 << 20);
    assert.ok(await metric(server, 'claps_lmdb_map_used_bytes') > 1.5 * (1 << 20), 'refusing until used falls below max - 5/4 headroom');
    assert.ok(await metric(server, 'claps_lmdb_map_size_bytes') <= 4 << 20);
    assert.ok(await metric(server, 'claps_claps_rejected_total{reason="store_full"}') >= 4);
    assert.equal(await metric(server, 'claps_commit_failures_total'), 0, 'refused in time: no commit ever failed');
    assert.equal((await request(`${server.http}/api/articles/${kept[3]}`)).json.total, 2);
    await eventually(() => /refusing new claps/.test(server.stderr), { what: 'the store_full warning' });

    // The flood has stopped; once its op ids expire (8 s) and are purged, new
    // claps are accepted again, without a restart.
    const recovering = Date.now();
    let probe = 0;
    const back = await eventually(async () => {
      const r = await fresh.clap('fresh-1', 1, `fresh-op-${++probe}`);
      return r.type === 'ack' && r;
    }, { ms: 30000, every: 100, what: 'a new clap accepted again' });
    const recoveryMs = Date.now() - recovering;
    assert.equal(back.accepted, 1);
    assert.deepEqual((await request(`${server.http}/readyz`)).json, { status: 'ready' });
    assert.equal(await metric(server, 'claps_store_full'), 0);
    console.log(`# store_full: first refusal ${toRefusalMs} ms after the flood began (${sent} claps sent, ${acked} acked); ` +
      `accepting again ${recoveryMs} ms after it stopped`);

    // Nothing acknowledged is lost across a restart.
    const articles = [...kept, ...Array.from({ length: 8 }, (_, i) => `flood-${i}`), 'fresh-1'];
    const before = await totals(server, articles);
    assert.equal(before[kept[0]], 0);
    assert.equal(before['fresh-1'], 1);
    u.terminate();
    fresh.terminate();
    const { code } = await server.stop('SIGTERM');
    assert.equal(code, 0);
    server = await startServer({ dataDir: dir, args });
    assert.deepEqual(await totals(server, articles), before);
    await server.stop();
  } finally {
    // On a failed assertion: no clapsd is left running (ctest would wait for it).
    if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
  }
});

test('a new data dir is 0700 and its files 0600; a symlinked lock file refuses to start', async () => {
  const dir = path.join(tempDir(), 'fresh-data');  // does not exist yet
  const server = await startServer({ dataDir: dir });
  try {
    const ack = await (await client.open(`${server.ws}?user=perm`)).clap('perm-1', 1);
    assert.equal(ack.accepted, 1);
  } finally {
    await server.stop();
  }
  const mode = (p) => (fs.statSync(p).mode & 0o777).toString(8);
  assert.equal(mode(dir), '700');
  for (const name of fs.readdirSync(dir)) {
    const p = path.join(dir, name);
    if (fs.statSync(p).isFile()) assert.equal(mode(p), '600', `${name} is readable by others`);
  }
  // A lock file that is a symlink (to a file someone else owns) is not followed.
  const trap = tempDir();
  const victim = path.join(trap, 'victim');
  fs.writeFileSync(victim, 'keep me\n');
  fs.rmSync(path.join(dir, 'clapsd.lock'));
  fs.symlinkSync(victim, path.join(dir, 'clapsd.lock'));
  const r = await runClapsd(['--data-dir', dir, '--listen', '127.0.0.1:0']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /lock file/);
  assert.equal(fs.readFileSync(victim, 'utf8'), 'keep me\n', 'the symlink target was not truncated');
});

test('demo mode says so, and refuses an address other machines can reach unless --allow-anonymous', async () => {
  const refused = await runClapsd(['--listen', '0.0.0.0:0', '--data-dir', tempDir(), '--store', 'memory']);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /--auth-secret-file/);
  assert.match(refused.stderr, /--allow-anonymous/);
  // On loopback demo mode starts, and warns.
  const server = await startServer({ args: ['--store', 'memory'] });
  try {
    await eventually(() => /demo mode/.test(server.stderr), { ms: 5000, what: 'the demo-mode warning' });
  } finally {
    await server.stop();
  }
});
