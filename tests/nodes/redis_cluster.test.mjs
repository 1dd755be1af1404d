// Two clapsd nodes on a real Redis Cluster (3 masters, 3 replicas, started by
// the test): realtime updates, the exact cap and op ids across nodes; every
// article's keys on the master owning its slot, spread over all masters;
// resharding a hot article's slot under clap load shows clients no error; and
// kill -9 of the master owning a hot article's slot under clap load loses no
// acknowledged clap, keeps acknowledging, and both nodes converge.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { deadline, eventually, metric, request, startServer } from '../integration/helpers.mjs';
import { cli } from './redis_harness.mjs';
import { hashSlot, redis_cluster } from './redis_cluster_harness.mjs';
import { clapLoad, connectedToRedis, latestTotal, redisTotal, retrying_clapper, untilReads, watcher }
  from './node_helpers.mjs';

const CAP = 50;
let rc;
const nodes = {};
const clients = [];

const sum = (acks) => acks.reduce((s, a) => s + a.accepted, 0);
const nodeArgs = ['--redis-timeout-ms', '1000', '--clap-cap', String(CAP),
  '--rate-limit', '2000', '--rate-burst', '2000', '--log-level', 'warn'];

async function clapper(node, user) {
  const c = await new retrying_clapper(node, user).connect();
  clients.push(c);
  return c;
}

async function view(node, article) {
  const v = await watcher(node, article);
  clients.push(v);
  return v;
}

/** The first name `${prefix}${i}` whose slot `pick(slot)` accepts. */
function articleWhere(prefix, pick) {
  for (let i = 0; i < 1e6; ++i) if (pick(hashSlot(`${prefix}${i}`))) return `${prefix}${i}`;
  throw new Error(`no article ${prefix}N matches`);
}

const owns = (master, slot) => master.slots.some(([a, b]) => slot >= a && slot <= b);

/** Writes `n` keys `filler:{article}:i` (the article's slot) to the master on `port`. */
function fill(port, article, n) {
  const lines = Array.from({ length: n }, (_, i) => `SET filler:{${article}}:${i} x`).join('\n') + '\n';
  return deadline(new Promise((resolve, reject) => {
    const child = spawn('redis-cli', ['-h', '127.0.0.1', '-p', String(port), '--pipe'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.on('exit', (code) => (code === 0 && /errors: 0, replies: \d+/.test(out) ? resolve() : reject(new Error(`redis-cli --pipe: ${out}`))));
    child.stdin.end(lines);
  }), 10000, `${n} filler keys in ${article}'s slot`);
}

/** The nodes' Redis Cluster counters, summed: what a reshard or failover made them do. */
async function redirects() {
  const names = ['moved', 'ask', 'tryagain', 'slot_map_refreshes', 'reconnects'];
  const out = {};
  for (const name of names) {
    out[name] = 0;
    for (const n of Object.values(nodes)) out[name] += (await metric(n, `claps_redis_${name}_total`)) ?? 0;
  }
  return out;
}
const since = (before, after) => Object.entries(after).map(([k, v]) => `${k} ${v - before[k]}`).join(', ');

/** What the nodes and the cluster show of `article`, for a failing assertion. */
async function diagnose(article) {
  const shown = [];
  for (const n of Object.values(nodes))
    shown.push(`:${n.port} degraded=${await metric(n, 'claps_cluster_degraded')} connected=${await metric(n, 'claps_redis_connected')}`);
  try { shown.push(`redis ${await redisTotal(await rc.masterOf(`{${article}}`), article)}`); } catch (e) { shown.push(e.message); }
  return shown.join(', ');
}

describe('two clapsd nodes on a Redis Cluster of 3 masters and 3 replicas', () => {
  before(async () => {
    rc = await redis_cluster.start({ masters: 3, replicasPerMaster: 1, nodeTimeoutMs: 1500 });
    // A knows every node; B (through the environment) one replica, and discovers the rest.
    const replica = Number(Object.keys(rc.replicaOf)[0]);
    [nodes.A, nodes.B] = await Promise.all([
      startServer({ args: ['--redis-cluster', rc.seeds, '--node-id', 'A', ...nodeArgs] }),
      startServer({ args: ['--node-id', 'B', ...nodeArgs], env: { CLAPS_REDIS_CLUSTER: `127.0.0.1:${replica}` } }),
    ]);
    await Promise.all([connectedToRedis(nodes.A), connectedToRedis(nodes.B)]);
  });

  after(async () => {
    for (const c of clients) c.terminate();
    await Promise.all(Object.values(nodes).map((n) => n.stop().catch(() => n.child.kill('SIGKILL'))));
    await rc?.stop();
  });

  test('a viewer on one node sees claps sent to the other, on articles of every master', async () => {
    const masters = await rc.masters();
    assert.equal(masters.length, 3);
    // One article per master, so every shard's pub/sub carries updates.
    const articles = masters.map((m, i) => articleWhere(`rt${i}-`, (slot) => owns(m, slot)));
    for (const a of articles) assert.equal(Number(await cli(masters[0].port, 'CLUSTER', 'KEYSLOT', `{${a}}`)), hashSlot(a));
    const onA = await clapper(nodes.A, 'rita');
    const onB = await clapper(nodes.B, 'rob');
    for (const [i, article] of articles.entries()) {
      const [watchA, watchB] = await Promise.all([view(nodes.A, article), view(nodes.B, article)]);
      const fromB = await onB.clap(article, 3 + i, `rob-${article}`);
      assert.equal(fromB.durability, 'cluster', JSON.stringify(fromB));
      await eventually(() => latestTotal(watchA) === 3 + i,
        { ms: 5000, what: `A's viewer of ${article} (master :${masters[i].port}) to see B's ${3 + i} claps` });
      await onA.clap(article, 2, `rita-${article}`);
      await eventually(() => latestTotal(watchB) === 5 + i && latestTotal(watchA) === 5 + i,
        { ms: 5000, what: `both viewers of ${article} to see ${5 + i}` });
      assert.equal(await redisTotal(masters[i].port, article), 5 + i, `the tally of ${article} on master :${masters[i].port}`);
    }
  });

  test('one user clapping 300 times through both nodes at once gets exactly the cap', async () => {
    const article = 'cap-rc';
    const user = 'ivy';
    const conns = await Promise.all([nodes.A, nodes.B, nodes.A, nodes.B].map((n) => clapper(n, user)));
    const acks = await Promise.all(Array.from({ length: 300 },
      (_, i) => conns[i % conns.length].clap(article, 1, `ivy-cap-${i}`)));
    for (const a of acks) assert.ok(a.accepted === 0 || a.accepted === 1, JSON.stringify(a));
    assert.equal(sum(acks), CAP, `accepted over all acks (${acks.filter((a) => a.replayed).length} replays)`);
    await untilReads([nodes.A, nodes.B].map((n) => [n, article, user, (r) => r.total === CAP && r.mine === CAP]),
      { what: `both nodes to show total and mine ${CAP}` });
    assert.equal(await redisTotal(await rc.masterOf(`{${article}}`), article), CAP);
  });

  test('one op id sent to both nodes at the same moment is applied once', async () => {
    const article = 'once-rc';
    const users = Array.from({ length: 8 }, (_, i) => `una${i}`);
    const count = 3;
    const perOp = (await Promise.all(users.map(async (user) => {
      const pair = await Promise.all([nodes.A, nodes.B].map((n) => clapper(n, user)));
      const ops = [];
      for (let k = 0; k < 2; ++k) {
        const id = `${user}-dup-${k}`;
        ops.push({ id, acks: await Promise.all(pair.map((c) => c.clap(article, count, id))) });
      }
      return ops;
    }))).flat();
    for (const { id, acks } of perOp) {
      assert.equal(acks.filter((a) => !a.replayed).length, 1, `${id}: exactly one ack not replayed: ${JSON.stringify(acks)}`);
      for (const a of acks) assert.equal(a.accepted, count, `${id}: ${JSON.stringify(a)}`);
    }
    const total = users.length * 2 * count;
    await untilReads([nodes.A, nodes.B].flatMap((n) => users.map((u) => [n, article, u, (r) => r.total === total && r.mine === 2 * count])),
      { what: `both nodes to count every op id once (total ${total})` });
    assert.equal(await redisTotal(await rc.masterOf(`{${article}}`), article), total);
  });

  test('keys of 200 articles land on every master, each on the master owning its slot', async () => {
    const articles = Array.from({ length: 200 }, (_, i) => `spread-${i}`);
    const [onA, onB] = await Promise.all([clapper(nodes.A, 'kim'), clapper(nodes.B, 'kim')]);
    const acks = await Promise.all(articles.map((a, i) => (i % 2 ? onB : onA).clap(a, 1, `kim-${a}`)));
    for (const a of acks) assert.deepEqual([a.accepted, a.durability], [1, 'cluster'], JSON.stringify(a));

    const masters = await rc.masters();
    const keysOf = {};
    for (const m of masters) keysOf[m.port] = await rc.keysOn(m.port, '*spread-*');
    const perMaster = {};
    for (const m of masters) {
      perMaster[m.port] = 0;
      for (const key of keysOf[m.port]) {
        const tag = /\{(spread-\d+)\}/.exec(key)?.[1];
        assert.ok(tag, `key ${key} on :${m.port} names an article outside a hash tag`);
        assert.ok(owns(m, hashSlot(tag)), `key ${key} on :${m.port}, whose slots do not hold ${tag}'s slot ${hashSlot(tag)}`);
      }
    }
    for (const a of articles) {
      const owner = masters.find((m) => owns(m, hashSlot(a)));
      const mine = keysOf[owner.port].filter((k) => k.includes(`{${a}}`));
      assert.ok(mine.includes(`claps:t:{${a}}`), `${a}'s tally on its master :${owner.port}: ${mine.join(' ')}`);
      assert.ok(mine.length >= 2, `${a}: the tally and kim's keys on :${owner.port}: ${mine.join(' ')}`);
      ++perMaster[owner.port];
    }
    // 200 articles over 3 masters: 66.7 each, a standard deviation of 6.7; ±30% is 3 of them.
    const keyCounts = Object.fromEntries(masters.map((m) => [m.port, keysOf[m.port].length]));
    console.log(`of 200 articles per master ${JSON.stringify(perMaster)}, their keys ${JSON.stringify(keyCounts)}, ` +
      `DBSIZE (every test's keys) ${JSON.stringify(await rc.keysPerMaster())}`);
    const mean = articles.length / masters.length;
    const meanKeys = Object.values(keyCounts).reduce((s, v) => s + v, 0) / masters.length;
    for (const m of masters) {
      assert.ok(Math.abs(perMaster[m.port] - mean) <= 0.3 * mean, `:${m.port} holds ${perMaster[m.port]} of 200 articles (mean ${mean.toFixed(1)})`);
      assert.ok(Math.abs(keyCounts[m.port] - meanKeys) <= 0.3 * meanKeys, `:${m.port} holds ${keyCounts[m.port]} of their keys (mean ${meanKeys.toFixed(1)})`);
    }
  });

  test('resharding slots (the hot article\'s among them) under clap load: no errors, every clap acked, totals exact', async () => {
    const K = 40;
    const [from, to] = await rc.masters();
    // redis-cli --cluster reshard moves the source's lowest slots: the hot article's is among the first K.
    const first = from.slots[0][0];
    const article = articleWhere('hot-rs-', (slot) => slot >= first && slot < first + K && owns(from, slot));
    // 2,000 more keys in the hot article's slot (not clapsd's: `filler:{article}:N`), as a
    // slot of a long-lived article holds: its migration then takes long enough that claps
    // meet it half moved (ASK, TRYAGAIN) rather than slipping past it.
    await fill(from.port, article, 2000);
    const [watchA, watchB] = await Promise.all([view(nodes.A, article), view(nodes.B, article)]);
    let resharded = false;
    let failed = false;
    let ackedAfter = 0;
    const load = clapLoad({ nodes: [nodes.A, nodes.B], article, perNode: 2,
      keepGoing: () => !failed && (!resharded || ackedAfter < 100), onAck: () => { if (resharded) ++ackedAfter; } });
    const counters = await redirects();
    const began = Date.now();
    try {
      await load.started;
      await eventually(() => load.acked.length >= 100, { ms: 15000, what: '100 acks before the reshard' });
      await rc.reshard(from.port, to.port, K);
      resharded = true;
    } finally {
      failed = !resharded;  // stops the load when the reshard failed
    }
    console.log(`reshard of ${K} slots from :${from.port} to :${to.port} took ${Date.now() - began} ms, ${load.acked.length} claps acked so far; ` +
      `the nodes' redirects: ${since(counters, await redirects())}`);
    assert.equal(await rc.masterOf(hashSlot(article)), to.port, `${article}'s slot ${hashSlot(article)} moved`);
    const seen = await redirects();
    assert.ok(seen.ask + seen.tryagain + seen.moved > counters.ask + counters.tryagain + counters.moved,
      `the nodes met the slot in migration (${since(counters, seen)})`);
    const { acked, errors } = await load.done;
    assert.deepEqual(errors, [], 'no error frames');
    const local = acked.filter((a) => a.durability !== 'cluster');
    // Not an error: while the slot is half moved a script's keys are split between two
    // masters (TRYAGAIN until they are together), and a node that cannot commit within
    // --redis-timeout-ms acks locally and re-asserts later, as in any Redis outage.
    console.log(`reshard: ${acked.length} claps acked, ${local.length} of them durability local`);
    const total = sum(acked);
    assert.equal(total, acked.length, 'every clap of 1 accepted');
    await untilReads([nodes.A, nodes.B].map((n) => [n, article, undefined, (r) => r.total === total]),
      { what: `both nodes to show ${total}`, diagnose: () => diagnose(article) });
    await eventually(() => latestTotal(watchA) === total && latestTotal(watchB) === total,
      { ms: 10000, what: `both viewers to be shown ${total} after the slot moved (A ${latestTotal(watchA)}, B ${latestTotal(watchB)})` });
    assert.equal(await redisTotal(to.port, article), total, `the tally on the new owner :${to.port}`);
    // One more clap after the move reaches the other node's viewer: pub/sub follows the slot.
    const late = await clapper(nodes.B, 'late');
    await late.clap(article, 1, 'late-1');
    await eventually(() => latestTotal(watchA) === total + 1, { ms: 5000, what: 'A\'s viewer to see a clap on B after the move' });
  });

  // Last: it changes which servers are masters.
  test('kill -9 of the master owning a hot article\'s slot under clap load: no acknowledged clap lost', async () => {
    const masters = await rc.masters();
    await rc.rememberReplicas();
    const victim = masters.find((m) => Object.values(rc.replicaOf).includes(m.port));
    const hot = articleWhere('hot-fo-', (slot) => owns(victim, slot));
    const cold = articleWhere('cold-fo-', (slot) => !owns(victim, slot));
    const articles = [hot, cold];
    const [watchA, watchB] = await Promise.all([view(nodes.A, hot), view(nodes.B, hot)]);

    // 16 lanes, each a user clapping every 100 ms (alternating nodes, an op id
    // per clap, resent with the same id until acked); after 40 claps the lane
    // goes on as a fresh user, so the cap never trims an accepted count.
    let killedAt;
    let healthyAt;
    let failed = false;
    let ackedAfterHealthy = 0;
    const acks = [];
    const running = () => !failed && (healthyAt === undefined || ackedAfterHealthy < 150);
    const lanes = Array.from({ length: 16 }, async (_, lane) => {
      const article = lane % 4 === 3 ? cold : hot;
      for (let gen = 0; running(); ++gen) {
        const user = `fo${lane}-${gen}`;
        const via = await Promise.all([nodes.A, nodes.B].map((n) => clapper(n, user)));
        for (let k = 0; k < 40 && running(); ++k) {
          const ack = await via[k % 2].clap(article, 1, `${user}-${k}`);
          acks.push({ ...ack, user, at: Date.now() });
          if (healthyAt !== undefined) ++ackedAfterHealthy;
          await new Promise((r) => setTimeout(r, 100));  // the pace of the load, not a wait
        }
        for (const c of via) c.terminate();
      }
    });
    const load = deadline(Promise.all(lanes), 90000, 'the clap load to finish');

    let promoted;
    const counters = await redirects();
    try {
      await eventually(() => acks.length >= 150, { ms: 15000, what: '150 acks before the kill' });
      killedAt = Date.now();
      await rc.kill9(victim.port);
      promoted = await rc.waitForFailover(victim.port);
      healthyAt = Date.now();
    } finally {
      failed = healthyAt === undefined;  // stops the load when the failover failed
    }
    await load;

    const during = acks.filter((a) => a.at > killedAt && a.at < healthyAt);
    const retries = clients.reduce((s, c) => s + (c.retries ?? 0), 0);
    console.log(`failover :${victim.port} -> :${promoted} in ${healthyAt - killedAt} ms; ${acks.length} claps acked, ` +
      `${during.length} between the kill and the cluster being ok (${during.filter((a) => a.article === hot).length} on the hot article), ` +
      `${acks.filter((a) => a.durability === 'local').length} durability local, ${retries} resends; ` +
      `the nodes' redirects: ${since(counters, await redirects())}`);
    assert.ok(during.some((a) => a.article === hot), 'claps on the hot article are acknowledged during the failover');
    assert.equal(sum(acks), acks.length, 'every clap of 1 was accepted');

    const totals = Object.fromEntries(articles.map((a) => [a, sum(acks.filter((x) => x.article === a))]));
    const users = [...new Set(acks.map((a) => `${a.user} ${a.article}`))].map((s) => s.split(' '));
    const expectations = [nodes.A, nodes.B].flatMap((n) => [
      ...articles.map((a) => [n, a, undefined, (r) => r.total === totals[a]]),
      ...users.map(([u, a]) => [n, a, u, (r) => r.mine === sum(acks.filter((x) => x.user === u))]),
    ]);
    await untilReads(expectations, {
      ms: Math.max(0, healthyAt + 15000 - Date.now()),
      what: `both nodes to count every acknowledged clap within 15 s of the failover (${JSON.stringify(totals)})`,
      diagnose: () => diagnose(hot),
    });
    console.log(`failover: both nodes converged ${Date.now() - healthyAt} ms after the cluster was ok`);
    for (const a of articles)
      await eventually(async () => (await redisTotal(await rc.masterOf(hashSlot(a)), a)) === totals[a],
        { ms: Math.max(1000, healthyAt + 15000 - Date.now()), what: `Redis to hold ${totals[a]} claps of ${a}` });
    await eventually(() => latestTotal(watchA) === totals[hot] && latestTotal(watchB) === totals[hot],
      { ms: Math.max(1000, healthyAt + 15000 - Date.now()), what: `both viewers of ${hot} to be shown ${totals[hot]}` });
    // A second look: nothing counted twice either.
    await untilReads(expectations, { ms: 0, what: 'both nodes to still show exactly the acknowledged claps' });
    // Each node has re-asserted its claps of the failover: no longer degraded.
    for (const n of [nodes.A, nodes.B])
      await eventually(async () => {
        const ready = await request(`${n.http}/readyz`);
        return ready.status === 200 && !/degraded/.test(ready.text);
      }, { ms: Math.max(1000, healthyAt + 15000 - Date.now()), what: `:${n.port}'s readyz to say ready, not degraded` });
  });
});
