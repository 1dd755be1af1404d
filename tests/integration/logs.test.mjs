// --log-format json: every stderr line is one JSON object with ts, level and
// msg, however odd the text it quotes (here a --data-dir with quotes, a
// backslash, a newline, a tab and a control character). The text format
// stays the default, CLAPS_LOG_FORMAT sets it, and a bad value is refused.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { client, runClapsd, startServer, tempDir } from './helpers.mjs';

function jsonLines(stderr) {
  const lines = stderr.split('\n');
  assert.equal(lines.pop(), '', 'stderr ends with a newline');
  return lines.map((l) => {
    const o = JSON.parse(l);
    assert.match(o.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, l);
    assert.ok(Math.abs(Date.parse(o.ts) - Date.now()) < 120000, `ts is now: ${l}`);
    assert.ok(['trace', 'debug', 'info', 'warn', 'error'].includes(o.level), l);
    assert.equal(typeof o.msg, 'string', l);
    return o;
  });
}

test('--log-format json: one object per line, odd text escaped, lws lines too', async () => {
  const dir = path.join(tempDir(), 'we"ird\\dir\nwith\ttab\x01');
  const server = await startServer({ dataDir: dir, args: ['--log-format', 'json', '--log-level', 'debug'] });
  // A refused handshake logs at debug; a clap and a REST read go through.
  const wrong = new client(`ws://127.0.0.1:${server.port}/not-ws`);
  await assert.rejects(wrong.opened, (e) => e.status === 404);
  const c = await client.open(`${server.ws}?user=log-alice`);
  assert.equal((await c.clap('log1', 2)).type, 'ack');
  c.terminate();
  await server.stop();
  const logs = jsonLines(server.stderr);
  const store = logs.find((o) => o.msg.startsWith('store: lmdb in'));
  assert.ok(store, server.stderr);
  assert.equal(store.msg, `store: lmdb in '${dir}'`);
  assert.equal(store.level, 'info');
  assert.ok(logs.some((o) => o.level === 'debug' && o.msg.startsWith('handshake refused')), server.stderr);
  assert.ok(logs.some((o) => o.msg === 'shut down cleanly'), server.stderr);
  assert.ok(logs.every((o) => o.node === undefined), 'no node without --node-id');
  // libwebsockets' own lines (its notices at debug) come through the same emitter.
  assert.ok(logs.some((o) => o.source === 'lws'), server.stderr);
  for (const o of logs.filter((x) => x.source !== undefined)) assert.equal(o.source, 'lws');
});

test('text is the default; CLAPS_LOG_FORMAT=json sets json; a bad --log-format is refused', async () => {
  const text = await startServer({ args: [] });
  await text.stop();
  assert.match(text.stderr, /^clapsd info: store: lmdb in '/m);

  const env = await startServer({ env: { CLAPS_LOG_FORMAT: 'json' } });
  await env.stop();
  assert.ok(jsonLines(env.stderr).some((o) => o.msg === 'shut down cleanly'), env.stderr);

  const bad = await runClapsd(['--listen', '127.0.0.1:0', '--store=memory', '--log-format', 'xml']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--log-format must be text or json, not 'xml'/);
});
