// Exactness across nodes while Redis decides: three clapsd nodes on one Redis
// (a master, a replica and three sentinels). Op ids are scoped to (user,
// article); one user's claps through three nodes at once stop exactly at the
// cap; one op id sent to three nodes at once is applied once; and a SIGKILLed
// master under clap load, with clients retrying unacked ops under the same op
// id, loses no acknowledged clap.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, metric, request, startServer } from '../integration/helpers.mjs';
import { MASTER_NAME, redis_setup } from './redis_harness.mjs';
import { readArticle, retrying_clapper, untilReads } from './node_helpers.mjs';

const CAP = 50;
let redis;
const nodes = {};
const clappers = [];

function startNode(id) {
  return startServer({
    args: ['--sentinel', redis.sentinelList, '--sentinel-master', MASTER_NAME, '--node-id', id,
      '--redis-timeout-ms', '1000', '--clap-cap', String(CAP),
      '--rate-limit', '2000', '--rate-burst', '2000', '--log-level', 'warn'],
  });
}

async function clapper(node, user) {
  const c = await new retrying_clapper(node, user).connect();
  clappers.push(c);
  return c;
}

const sum = (acks) => acks.reduce((s, a) => s + a.accepted, 0);

/** Waits until `check(read)` holds for the article as `user` sees it on every node in `on`. */
function everyNodeShows(on, article, user, check, what, ms = 10000) {
  return untilReads(on.map((n) => [n, article, user, check]), { ms, what });
}

describe('exact cap and op ids across three clapsd nodes', () => {
  before(async () => {
    redis = await redis_setup.start({ replicas: 1, sentinels: 3 });
    [nodes.A, nodes.B, nodes.C] = await Promise.all([startNode('A'), startNode('B'), startNode('C')]);
    for (const n of Object.values(nodes))
      await eventually(async () => (await metric(n, 'claps_redis_connected')) === 1 &&
        (await metric(n, 'claps_cluster_degraded')) === 0,
      { ms: 15000, what: 'node connected to the Redis master' });
  });

  after(async () => {
    for (const c of clappers) c.terminate();
    await Promise.all(Object.values(nodes).map((n) => n.stop().catch(() => n.child.kill('SIGKILL'))));
    await redis?.stop();
  });

  test('op ids are scoped to (user, article): the same id on another article is a new op, on any node', async () => {
    const user = 'olga';
    const id = 'olga-op-1';
    const [onA, onB, onC] = await Promise.all([clapper(nodes.A, user), clapper(nodes.B, user), clapper(nodes.C, user)]);
    const first = await onA.clap('scope-1', 2, id);
    assert.equal(first.accepted, 2);
    assert.equal(first.replayed, undefined);
    assert.equal(first.durability, 'cluster');

    // Same id, another article, same node: a new op.
    const sameNode = await onA.clap('scope-2', 3, id);
    assert.equal(sameNode.replayed, undefined, JSON.stringify(sameNode));
    assert.equal(sameNode.article, 'scope-2');
    assert.equal(sameNode.accepted, 3);
    assert.equal(sameNode.mine, 3);

    // Same id, a third article, another node: a new op too, not A's replay.
    const otherNode = await onB.clap('scope-3', 4, id);
    assert.equal(otherNode.replayed, undefined, JSON.stringify(otherNode));
    assert.equal(otherNode.article, 'scope-3');
    assert.equal(otherNode.accepted, 4);
    assert.equal(otherNode.mine, 4);

    // And over REST on C for a fourth article.
    const rest = await request(`${nodes.C.http}/api/articles/scope-4/claps?user=${user}`,
      { method: 'POST', body: JSON.stringify({ count: 5, id }) });
    assert.equal(rest.status, 200, rest.text);
    assert.equal(rest.json.replayed, undefined, rest.text);
    assert.equal(rest.json.accepted, 5);

    // The same (user, article, id) again, anywhere, is a replay of that op only.
    for (const [c, article, accepted] of [[onC, 'scope-1', 2], [onC, 'scope-2', 3], [onA, 'scope-3', 4]]) {
      const again = await c.clap(article, 9, id);
      assert.equal(again.replayed, true, `${article}: ${JSON.stringify(again)}`);
      assert.equal(again.article, article);
      assert.equal(again.accepted, accepted);
    }

    const expected = { 'scope-1': 2, 'scope-2': 3, 'scope-3': 4, 'scope-4': 5 };
    for (const [article, n] of Object.entries(expected))
      await everyNodeShows(Object.values(nodes), article, user, (r) => r.total === n && r.mine === n,
        `every node to show ${n} claps of ${user} on ${article}`);
  });

  test('one user clapping 1,000 times through three nodes at once gets exactly the cap', async () => {
    const article = 'cap-3n';
    const user = 'ivy';
    const overshoot = async () => {
      let s = 0;
      for (const n of Object.values(nodes)) s += await metric(n, 'claps_cluster_cap_overshoot_total');
      return s;
    };
    assert.equal(await overshoot(), 0);
    // Two connections per node, all sending at once, each op its own id.
    const conns = await Promise.all([nodes.A, nodes.B, nodes.C, nodes.A, nodes.B, nodes.C].map((n) => clapper(n, user)));
    const acks = await Promise.all(Array.from({ length: 1000 },
      (_, i) => conns[i % conns.length].clap(article, 1, `ivy-cap-${i}`)));

    for (const a of acks) {
      assert.equal(a.durability, 'cluster', JSON.stringify(a));
      assert.ok(a.accepted === 0 || a.accepted === 1, JSON.stringify(a));
    }
    assert.equal(sum(acks), CAP, `accepted over all acks (${acks.filter((a) => a.replayed).length} replays)`);
    await everyNodeShows(Object.values(nodes), article, user, (r) => r.total === CAP && r.mine === CAP,
      `every node to show total and mine ${CAP}`);
    for (const n of Object.values(nodes)) {
      const r = await readArticle(n, article, user);
      assert.deepEqual([r.total, r.mine], [CAP, CAP], `node :${n.port}`);
    }
    assert.equal(await overshoot(), 0, 'claps_cluster_cap_overshoot_total stays 0');
  });

  test('one op id sent to three nodes at the same moment is applied once', async () => {
    const article = 'once-3n';
    const users = Array.from({ length: 8 }, (_, i) => `una${i}`);
    const opsPerUser = 2;
    const count = 3;
    const results = await Promise.all(users.map(async (user) => {
      const trio = await Promise.all([nodes.A, nodes.B, nodes.C].map((n) => clapper(n, user)));
      const perOp = [];
      for (let k = 0; k < opsPerUser; ++k) {
        const id = `${user}-dup-${k}`;
        // Unavailable ("another node is still applying this id") is retried with the same id.
        perOp.push({ id, acks: await Promise.all(trio.map((c) => c.clap(article, count, id))) });
      }
      return perOp;
    }));

    for (const { id, acks } of results.flat()) {
      assert.equal(acks.filter((a) => !a.replayed).length, 1, `${id}: exactly one ack not replayed: ${JSON.stringify(acks)}`);
      assert.equal(acks.filter((a) => a.replayed === true).length, 2, id);
      for (const a of acks) {
        assert.equal(a.accepted, count, `${id}: ${JSON.stringify(a)}`);
        assert.equal(a.article, article);
      }
    }
    const total = users.length * opsPerUser * count;
    for (const user of users)
      await everyNodeShows(Object.values(nodes), article, user,
        (r) => r.total === total && r.mine === opsPerUser * count,
        `every node to count ${user}'s op ids once (total ${total})`);
  });

  // Last: it changes which server is the master.
  test('SIGKILL of the Redis master under clap load: every acknowledged clap is counted on both nodes', async () => {
    const on = [nodes.A, nodes.B];
    const articles = ['fo-1', 'fo-2'];
    const users = Array.from({ length: 20 }, (_, i) => ({ name: `fo${i}`, article: articles[i % 2], acks: [] }));
    for (const u of users) u.via = await Promise.all(on.map((n) => clapper(n, u.name)));
    const oldMaster = await redis.sentinelMasterPort();
    const reconnects = await Promise.all(on.map((n) => metric(n, 'claps_redis_reconnects_total')));

    let promotedAt;
    let acked = 0;
    let ackedAfterPromotion = 0;
    const running = () => promotedAt === undefined || ackedAfterPromotion < 100;
    // Each user claps about three times a second, alternating nodes, and
    // retries an unacked op with its op id until it is acked; at most 45 claps
    // each, so the cap never trims an accepted count.
    const load = Promise.all(users.map(async (u) => {
      for (let k = 0; k < 45 && running(); ++k) {
        const ack = await u.via[k % 2].clap(u.article, 1, `${u.name}-fo-${k}`);
        u.acks.push(ack);
        ++acked;
        if (promotedAt !== undefined) ++ackedAfterPromotion;
        await new Promise((r) => setTimeout(r, 300));  // pacing of the load, not a wait
      }
    }));

    await eventually(() => acked >= 150, { ms: 15000, what: '150 acks before the kill' });
    await redis.kill(oldMaster);
    await eventually(async () => {
      if ((await redis.sentinelMasterPort()) === oldMaster) return false;
      const now = await Promise.all(on.map((n) => metric(n, 'claps_redis_reconnects_total')));
      return now.every((v, i) => v > reconnects[i]);
    }, { ms: 30000, every: 100, what: 'sentinels to promote the replica and both nodes to reconnect' });
    promotedAt = Date.now();
    await load;

    const all = users.flatMap((u) => u.acks);
    const retries = users.reduce((s, u) => s + u.via[0].retries + u.via[1].retries, 0);
    const local = all.filter((a) => a.durability === 'local').length;
    console.log(`failover: ${all.length} claps acked (${local} durability local, ${retries} resends)`);
    assert.equal(sum(all), all.length, 'every clap of 1 was accepted (the load stays under the cap)');

    const totals = Object.fromEntries(articles.map((a) =>
      [a, sum(users.filter((u) => u.article === a).flatMap((u) => u.acks))]));
    const expectations = on.flatMap((n) => [
      ...articles.map((a) => [n, a, undefined, (r) => r.total === totals[a]]),
      ...users.map((u) => [n, u.article, u.name, (r) => r.mine === sum(u.acks)]),
    ]);
    await untilReads(expectations, {
      ms: Math.max(5000, promotedAt + 10000 - Date.now()),
      what: `both nodes to count every acknowledged clap (${JSON.stringify(totals)})`,
    });
    console.log(`failover: converged ${Date.now() - promotedAt} ms after the promotion was seen`);
    // A second look: nothing counted twice either.
    await untilReads(expectations, { ms: 0, what: 'both nodes to still show exactly the acknowledged claps' });
  });
});
