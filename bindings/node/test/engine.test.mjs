// The engine through the addon, on Node's own loop: the cap, undo, op-id
// replays, deliveries, LMDB reopen, and close() settling every op.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { deadline, eventually, tempDir } from '../../../tests/integration/helpers.mjs';

const require = createRequire(import.meta.url);
const { Engine, LmdbStore, MemoryStore } = require('../index.js');

const stores = {
  memory: () => ({ store: new MemoryStore(), close() {} }),
  'lmdb (writer thread)': () => {
    const store = new LmdbStore(tempDir('claps-node-'));
    return { store, close: () => store.close() };
  },
  'lmdb (inline)': () => {
    const store = new LmdbStore(tempDir('claps-node-'), { writerThread: false });
    return { store, close: () => store.close() };
  },
};

for (const [kind, open] of Object.entries(stores)) {
  test(`${kind}: the cap, undo and op-id replays, with their deliveries`, async () => {
    const { store, close } = open();
    const seen = [];
    const engine = new Engine(store, {
      tickMs: 10,
      clapCap: 50,
      onUpdate: (subscriber, updates) => seen.push({ subscriber, updates }),
    });
    assert.deepEqual(engine.subscribe(7, 'alice', 'a1', true),
      { article: 'a1', total: 0, viewers: 1, mine: 0, global: true });

    const first = await deadline(engine.clap({ user: 'alice', article: 'a1', count: 30, opId: 'op-1' }), 5000, 'op-1');
    assert.deepEqual(first, {
      user: 'alice', article: 'a1', opId: 'op-1', accepted: 30, total: 30, mine: 30, replayed: false, durability: 'local',
    });
    const capped = await deadline(engine.clap({ user: 'alice', article: 'a1', count: 30, opId: 'op-2' }), 5000, 'op-2');
    assert.equal(capped.accepted, 20, 'the cap of 50 leaves 20 of 30');
    assert.equal(capped.mine, 50);
    const over = await deadline(engine.clap({ user: 'alice', article: 'a1', count: 1 }), 5000, 'over the cap');
    assert.equal(over.accepted, 0);
    assert.equal(over.opId, null);

    const replay = await deadline(engine.clap({ user: 'alice', article: 'a1', count: 30, opId: 'op-1' }), 5000, 'replay');
    assert.equal(replay.replayed, true);
    assert.equal(replay.accepted, 30, 'a replay repeats the original accepted');
    assert.equal(replay.total, 50, 'with the current total');

    const bob = await deadline(engine.clap({ user: 'bob', article: 'a1', count: 5, opId: 'op-1' }), 5000, 'bob');
    assert.equal(bob.replayed, false, 'op ids are scoped to (user, article)');
    assert.equal(bob.total, 55);

    const undone = await deadline(engine.undo({ user: 'alice', article: 'a1', opId: 'u-1' }), 5000, 'undo');
    assert.equal(undone.accepted, -50);
    assert.equal(undone.mine, 0);
    assert.equal(undone.total, 5);
    const undoReplay = await deadline(engine.undo({ user: 'alice', article: 'a1', opId: 'u-1' }), 5000, 'undo replay');
    assert.equal(undoReplay.replayed, true);
    assert.equal(undoReplay.accepted, -50);

    assert.deepEqual(engine.read('bob', 'a1'), { article: 'a1', total: 5, viewers: 1, mine: 5, global: true });
    // A tick's onUpdate calls come right after the code awaiting its results.
    const totals = () => seen.filter((d) => d.subscriber === 7).flatMap((d) => d.updates.map((u) => u.total));
    await eventually(() => totals().includes(5), { what: 'the delivery of total 5' });
    assert.deepEqual(totals().filter((t) => t !== 0), [30, 50, 55, 5], 'each committed total delivered once, in order');
    assert.ok(seen.every((d) => d.updates.every((u) => u.article === 'a1' && u.viewers === 1)));

    await deadline(engine.close(), 5000, 'close');
    assert.equal(engine.closed, true);
    close();
  });
}

test('lmdb: totals, tallies and op ids survive a close and a reopen', async () => {
  const dir = tempDir('claps-node-');
  let store = new LmdbStore(dir);
  let engine = new Engine(store, { tickMs: 5 });
  await engine.clap({ user: 'alice', article: 'a1', count: 7, opId: 'keep-1' });
  await engine.clap({ user: 'bob', article: 'a1', count: 3 });
  await engine.close();
  store.close();
  assert.equal(store.closed, true);

  store = new LmdbStore(dir);
  engine = new Engine(store, { tickMs: 5 });
  assert.deepEqual(engine.read('alice', 'a1'), { article: 'a1', total: 10, viewers: 0, mine: 7, global: true });
  const replay = await deadline(engine.clap({ user: 'alice', article: 'a1', count: 7, opId: 'keep-1' }), 5000, 'replay');
  assert.equal(replay.replayed, true, 'an op id is remembered across the reopen');
  assert.equal(replay.total, 10, 'and not applied twice');
  assert.ok(store.opCount() >= 1);
  await engine.close();
  store.close();
});

test('close() settles every op taken before it, and every one is durable', async () => {
  const dir = tempDir('claps-node-');
  let store = new LmdbStore(dir);
  // A long tick: nothing commits before close() does.
  let engine = new Engine(store, { tickMs: 1000, clapCap: 1000 });
  const ops = [];
  for (let i = 0; i < 200; ++i) {
    ops.push(engine.clap({ user: `u${i % 20}`, article: `a${i % 3}`, count: 2, opId: `op-${i}` }));
  }
  const settled = [];
  ops.forEach((p, i) => p.then(() => settled.push(i)));
  const closing = engine.close();
  assert.equal(engine.closed, false);
  await assert.rejects(engine.clap({ user: 'late', article: 'a0' }), (e) => e.code === 'unavailable');
  assert.throws(() => engine.subscribe(1, 'late', 'a0'), (e) => e.code === 'unavailable');
  await deadline(closing, 5000, 'close');
  assert.equal(engine.closed, true);
  assert.equal(settled.length, 200, 'every op had its result when close() resolved');
  const results = await Promise.all(ops);
  assert.ok(results.every((r) => r.accepted === 2));
  await engine.close(); // again: resolves at once
  store.close();

  store = new LmdbStore(dir);
  engine = new Engine(store);
  let sum = 0;
  for (const a of ['a0', 'a1', 'a2']) sum += engine.read(null, a).total;
  assert.equal(sum, 400, 'what close() acknowledged was committed');
  await engine.close();
  store.close();
});

test('two subscribers see one clap; unsubscribe stops the deliveries', async () => {
  const got = { 1: [], 2: [] };
  const engine = new Engine(new MemoryStore(), {
    tickMs: 5,
    onUpdate: (sub, updates) => got[sub].push(...updates.map((u) => u.total)),
  });
  assert.deepEqual(engine.subscribe(1, 'alice', ['x1', 'x2']).map((s) => s.article), ['x1', 'x2']);
  engine.subscribe(2, 'bob', 'x1', false);
  await engine.clap({ user: 'alice', article: 'x1', count: 4 });
  await eventually(() => got[1].includes(4) && got[2].includes(4), { what: 'both deliveries of 4' });
  engine.unsubscribe(2, 'x1');
  await engine.clap({ user: 'alice', article: 'x1', count: 1 });
  await eventually(() => got[1].includes(5), { what: 'the delivery of 5' });
  assert.ok(!got[2].includes(5), 'unsubscribed: no delivery');
  engine.unsubscribeAll(1);
  assert.equal(engine.stats().subscriptions, 0);
  await engine.close();
});
