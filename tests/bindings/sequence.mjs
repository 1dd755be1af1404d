#!/usr/bin/env node
// The Node.js runner of SEQUENCE.md: the scripted sequence through the
// @libclaps/engine addon (bindings/node), LMDB with its writer thread on
// Node's own loop. Usage: node sequence.mjs DIR (a fresh directory). Prints
// one JSON line per step, nothing else; exits non-zero when a step fails.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { Engine, LmdbStore } = require('../../bindings/node/index.js');

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node sequence.mjs DIR');
  process.exit(2);
}

const print = (line) => process.stdout.write(JSON.stringify(line) + '\n');

// Rejects when `promise` has not settled within `ms`.
function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// One clap or undo, waited for (5 s deadline), printed as SEQUENCE.md says:
// an error at once or in the result prints its name and zeros elsewhere.
async function op(engine, kind, user, article, count, opId) {
  const line = { step: kind, user, article, count, op: opId, error: '', accepted: 0, total: 0, mine: 0, replayed: false };
  const request = kind === 'clap' ? { user, article, count, opId } : { user, article, opId };
  try {
    const r = await within(engine[kind](request), 5000, `${kind} ${opId}`);
    // The tick's onUpdate calls run right after the code awaiting its
    // results, in the same loop pass: let them run before the next step.
    await new Promise(setImmediate);
    Object.assign(line, { accepted: r.accepted, total: r.total, mine: r.mine, replayed: r.replayed });
  } catch (error) {
    if (!error.code || error.code.startsWith('ERR_') || !error.wireName) throw error;
    line.error = error.code;
  }
  print(line);
}

const engineOptions = (onUpdate) => ({ tickMs: 25, clapCap: 50, onUpdate });

// 1-2
let store = new LmdbStore(dir);
const totals = [];
let firstDelivery;
const delivered = new Promise((resolve) => { firstDelivery = resolve; });
let engine = new Engine(store, engineOptions((subscriber, updates) => {
  if (subscriber !== 1) return;
  for (const u of updates) if (u.article === 'a1') totals.push(u.total);
  firstDelivery();
}));
print({ step: 'open' });
const snap = engine.subscribe(1, 'alice', 'a1', true);
print({ step: 'subscribe', subscriber: 1, article: snap.article, total: snap.total, viewers: snap.viewers, mine: snap.mine });
// The subscription's own update (the viewer count) first, in a tick of its own.
await within(delivered, 5000, 'the first delivery to subscriber 1');
// 3-9
await op(engine, 'clap', 'alice', 'a1', 30, 'op-1');
await op(engine, 'clap', 'alice', 'a1', 30, 'op-2');
await op(engine, 'clap', 'bob', 'a1', 5, 'op-3');
await op(engine, 'clap', 'alice', 'a1', 30, 'op-1');
await op(engine, 'clap', 'alice', 'a1', 0, 'op-5');
await op(engine, 'clap', 'alice', 'bad article!', 1, 'op-6');
await op(engine, 'undo', 'alice', 'a1', 0, 'op-4');
// 10
print({ step: 'deliveries', subscriber: 1, totals });
// 11
await within(engine.close(), 5000, 'close');
store.close();
print({ step: 'close' });
// 12
store = new LmdbStore(dir);
engine = new Engine(store, engineOptions());
for (const user of ['alice', 'bob']) {
  const view = engine.read(user, 'a1');
  print({ step: 'read', user, article: 'a1', total: view.total, mine: view.mine });
}
// 13-14
await op(engine, 'clap', 'bob', 'a1', 5, 'op-3');
await within(engine.close(), 5000, 'close');
store.close();
print({ step: 'close' });
