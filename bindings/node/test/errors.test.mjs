// Errors: bad input rejects (clap/undo) or throws (subscribe, read,
// constructors) with .code, and the engine keeps serving.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { tempDir } from '../../../tests/integration/helpers.mjs';

const require = createRequire(import.meta.url);
const { Engine, LmdbStore, MemoryStore } = require('../index.js');

const hasCode = (code, wireName) => (e) => {
  assert.equal(e.code, code);
  if (wireName) assert.equal(e.wireName, wireName);
  assert.ok(e instanceof Error && e.message.length > 0);
  return true;
};

test('clap() and undo() refusals reject with the claps::errc name and the wire name', async () => {
  const engine = new Engine(new MemoryStore(), { tickMs: 5, clapCap: 10 });
  await assert.rejects(engine.clap({ user: 'alice', article: 'a1', count: 0 }), hasCode('invalid_count', 'bad_request'));
  await assert.rejects(engine.clap({ user: 'alice', article: 'a1', count: 11 }), hasCode('invalid_count'));
  await assert.rejects(engine.clap({ user: 'alice', article: 'a1', count: 1.5 }), hasCode('invalid_count'));
  await assert.rejects(engine.clap({ user: 'alice', article: 'bad article!' }), hasCode('invalid_article', 'invalid_article'));
  await assert.rejects(engine.clap({ user: '', article: 'a1' }), hasCode('invalid_user', 'bad_request'));
  await assert.rejects(engine.clap({ user: 'alice', article: 'a1', opId: 'x'.repeat(65) }), hasCode('invalid_op_id'));
  await assert.rejects(engine.undo({ user: 'bad user', article: 'a1' }), hasCode('invalid_user'));
  // Still serving.
  const r = await engine.clap({ user: 'alice', article: 'a1', count: 10 });
  assert.equal(r.accepted, 10);
  await engine.close();
  await assert.rejects(engine.clap({ user: 'alice', article: 'a1' }), (e) => e.code === 'unavailable' && /closed/.test(e.message));
});

test('wrong JS types are programming errors: TypeError thrown at once', () => {
  const engine = new Engine(new MemoryStore());
  assert.throws(() => engine.clap(), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => engine.clap({ user: 1, article: 'a1' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => engine.clap({ user: 'u', article: 'a1', count: '3' }), { name: 'TypeError' });
  assert.throws(() => engine.subscribe('1', 'u', 'a1'), { name: 'TypeError' });
  assert.throws(() => engine.subscribe(-1, 'u', 'a1'), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => new Engine({}), { name: 'TypeError' });
  assert.throws(() => new Engine(new MemoryStore(), { onUpdate: 3 }), { name: 'TypeError' });
  return engine.close();
});

test('subscribe() and read() throw with .code; subscribe of several articles is all or nothing', async () => {
  const engine = new Engine(new MemoryStore(), { maxSubscriptions: 2 });
  assert.throws(() => engine.subscribe(1, 'alice', 'bad article!'), hasCode('invalid_article'));
  assert.throws(() => engine.subscribe(1, 'alice', ['ok1', 'bad article!']), hasCode('invalid_article'));
  assert.equal(engine.stats().subscriptions, 0, 'nothing subscribed');
  assert.throws(() => engine.subscribe(1, 'alice', ['s1', 's2', 's3']), hasCode('too_many_subscriptions'));
  assert.throws(() => engine.read('alice', ''), hasCode('invalid_article'));
  assert.equal(engine.subscribe(1, 'alice', ['s1', 's2']).length, 2);
  await engine.close();
});

test('bad options name the option; a store takes one engine; a closed store none', async () => {
  assert.throws(() => new Engine(new MemoryStore(), { tickMs: 0 }),
    (e) => e.code === 'bad_request' && /tick/.test(e.message) && /1\.\.1000/.test(e.message));
  assert.throws(() => new Engine(new MemoryStore(), { clapCap: 0 }), (e) => e.code === 'bad_request' && /clap_cap/.test(e.message));
  assert.throws(() => new Engine(new MemoryStore(), { tickMs: -1 }), { name: 'RangeError' });

  const store = new LmdbStore(tempDir('claps-node-'));
  const engine = new Engine(store);
  assert.throws(() => new Engine(store), { code: 'ERR_CLAPS_STORE_IN_USE' });
  assert.throws(() => store.close(), { code: 'ERR_CLAPS_STORE_IN_USE' });
  await engine.close();
  store.close();
  assert.throws(() => new Engine(store), hasCode('unavailable'));
  assert.throws(() => store.opCount(), hasCode('unavailable'));
});

test('LmdbStore: a path it cannot open is an Error with .code, not a crash', () => {
  const file = path.join(tempDir('claps-node-'), 'a-file');
  fs.writeFileSync(file, 'not a directory');
  assert.throws(() => new LmdbStore(path.join(file, 'db')), (e) => e.code === 'store_io' && e.wireName === 'unavailable' && /cannot open/.test(e.message));
  assert.throws(() => new LmdbStore(tempDir('claps-node-'), { mapSize: 1 << 30, maxMapSize: 1 << 20 }), hasCode('bad_request'));
  assert.throws(() => new LmdbStore(42), { name: 'TypeError' });
});
