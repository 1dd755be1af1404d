// Whole node processes embedding the engine: an idle engine does not keep
// the process alive, a pending op does, and an exception thrown by a JS
// callback becomes an uncaught exception without harming the engine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../../../tests/integration/helpers.mjs';

const require = createRequire(import.meta.url);
const { Engine, LmdbStore } = require('../index.js');
const INDEX = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'index.js');

// Runs `source` (ESM, with Engine, LmdbStore, MemoryStore and DIR in scope)
// in a new node process; resolves with its exit and output. Kills it (its pid
// only) if it has not ended by itself within `ms`.
// With `load: false` the main thread does not load the addon (DIR only).
function runNode(source, { ms = 10000, dir = '', load = true } = {}) {
  const prelude = (load ? `import { createRequire } from 'node:module';
const { Engine, LmdbStore, MemoryStore } = createRequire(import.meta.url)(${JSON.stringify(INDEX)});\n` : '') +
    `const DIR = ${JSON.stringify(dir)};\n`;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', prelude + source], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, ms);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut, stdout, stderr });
    });
  });
}

test('an idle engine (LMDB, writer thread) lets the process end by itself, without close()', async () => {
  const dir = tempDir('claps-node-');
  const run = await runNode(`
const store = new LmdbStore(DIR);
const engine = new Engine(store, { tickMs: 25, onUpdate: () => {} });
engine.subscribe(1, 'alice', 'a1');
const r = await engine.clap({ user: 'alice', article: 'a1', count: 3, opId: 'idle-1' });
console.log(JSON.stringify(r));
// No close(), no timer: nothing left but the idle engine and store.
`, { dir });
  assert.equal(run.timedOut, false, `the process did not end by itself: ${run.stderr}`);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(JSON.parse(run.stdout).accepted, 3);
});

test('a pending op keeps the process alive until its result arrives', async () => {
  const dir = tempDir('claps-node-');
  // A long tick: the result arrives ~300 ms later, with nothing else on the loop.
  const run = await runNode(`
const engine = new Engine(new LmdbStore(DIR), { tickMs: 300 });
engine.clap({ user: 'alice', article: 'a1', count: 2 }).then((r) => console.log('result', r.accepted, r.total));
`, { dir });
  assert.equal(run.timedOut, false, run.stderr);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout.trim(), 'result 2 2');
});

test('a throwing onUpdate: an uncaught exception, and the engine goes on serving', async () => {
  const dir = tempDir('claps-node-');
  const run = await runNode(`
let calls = 0;
const caught = [];
process.on('uncaughtException', (e) => caught.push(e.message));
const store = new LmdbStore(DIR);
const engine = new Engine(store, {
  tickMs: 5,
  onUpdate: (sub, updates) => { calls += 1; if (calls === 1) throw new Error('boom in onUpdate'); },
});
engine.subscribe(1, 'alice', 'a1');
engine.subscribe(2, 'bob', 'a1');
const first = await engine.clap({ user: 'alice', article: 'a1', count: 4, opId: 't-1' });
const second = await engine.clap({ user: 'bob', article: 'a1', count: 6, opId: 't-2' });
const replay = await engine.clap({ user: 'alice', article: 'a1', count: 4, opId: 't-1' });
await engine.close();
store.close();
console.log(JSON.stringify({ caught, calls, first: first.total, second: second.total, replayed: replay.replayed }));
`, { dir });
  assert.equal(run.code, 0, run.stderr);
  const out = JSON.parse(run.stdout);
  assert.deepEqual(out.caught, ['boom in onUpdate'], 'the exception reached uncaughtException once');
  assert.ok(out.calls >= 3, `the other subscriber of that tick and later ticks were still delivered (${out.calls} calls)`);
  assert.equal(out.first, 4);
  assert.equal(out.second, 10);
  assert.equal(out.replayed, true);
});

test('a throwing callback without a handler ends the process like any uncaught exception; nothing acknowledged is lost', async () => {
  const dir = tempDir('claps-node-');
  const run = await runNode(`
// Throws on the update of the clap's tick, which comes after the code awaiting its result.
const onUpdate = (sub, updates) => { if (updates[0].total > 0) throw new Error('fatal in onUpdate'); };
const engine = new Engine(new LmdbStore(DIR), { tickMs: 5, onUpdate });
engine.subscribe(1, 'alice', 'a1');
const r = await engine.clap({ user: 'alice', article: 'a1', count: 9, opId: 'f-1' });
console.log('acked', r.total);
setInterval(() => {}, 1000); // would keep it alive: only the exception ends it
`, { dir });
  assert.equal(run.timedOut, false);
  assert.notEqual(run.code, 0);
  assert.match(run.stderr, /fatal in onUpdate/);
  assert.equal(run.stdout.trim(), 'acked 9');
  const store = new LmdbStore(dir);
  const engine = new Engine(store);
  assert.equal(engine.read('alice', 'a1').total, 9, 'the acknowledged clap is in the store');
  await engine.close();
  store.close();
});

test('a worker thread with its own engine ends cleanly, also when terminated with ops pending', async () => {
  const dir = tempDir('claps-node-');
  const run = await runNode(`
import { Worker } from 'node:worker_threads';
const body = (dir, tick) => \`
  const { Engine, LmdbStore } = require(\${JSON.stringify(${JSON.stringify(INDEX)})});
  const { parentPort } = require('node:worker_threads');
  const engine = new Engine(new LmdbStore(\${JSON.stringify(dir)}), { tickMs: \${tick}, onUpdate: () => {} });
  engine.subscribe(1, 'w', 'a1');
  engine.clap({ user: 'w', article: 'a1', count: 2 }).then((r) => {
    parentPort.postMessage(r.total);
    // The next one waits for a tick.
    engine.clap({ user: 'w', article: 'a1', count: 1 }).then(() => parentPort.postMessage('second'));
    parentPort.postMessage('started');
  });\`;
const finished = new Worker(body(DIR + '/one', 5), { eval: true, execArgv: [] });
const total = await new Promise((resolve) => finished.on('message', (m) => typeof m === 'number' && resolve(m)));
const code = await new Promise((resolve) => finished.on('exit', resolve));
// A long tick: terminated while its second clap waits for the tick.
const busy = new Worker(body(DIR + '/two', 1000), { eval: true, execArgv: [] });
await new Promise((resolve) => busy.on('message', (m) => m === 'started' && resolve()));
const terminated = await busy.terminate();
console.log(JSON.stringify({ total, code, terminated }));
`, { dir, load: false }); // only the workers load the addon, so each one's end unloads it
  assert.equal(run.signal, null, `no crash: ${run.stderr}`);
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout), { total: 2, code: 0, terminated: 1 });
});
