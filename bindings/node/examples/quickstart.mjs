import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const { Engine, LmdbStore } = require('@libclaps/engine');

const store = new LmdbStore('./claps-data');
const engine = new Engine(store, {
  tickMs: 25,
  clapCap: 50,
  onUpdate: (subscriber, updates) => console.log('to', subscriber, updates),
});

console.log(engine.subscribe(1, 'bob', 'post-1'));    // {article, total, viewers, mine, global}
const r = await engine.clap({ user: 'alice', article: 'post-1', count: 30, opId: 'c-1' });
console.log(r.accepted, r.total, r.mine);              // durable now
await engine.clap({ user: 'alice', article: 'post-1', count: 0 })
  .catch((e) => console.log(e.code));                  // invalid_count
await engine.close();                                  // every op has its result
store.close();
