// Readers behind a real load balancer: HAProxy (Debian's haproxy, in the
// foreground) runs the deployment example deploy/haproxy/haproxy.cfg, rendered
// by scripts/haproxy-config.sh with fast health checks, in front of two clapsd
// nodes on one redis-server. JS clients (bindings/js/claps-client.js) know only
// the balancer's URL and clap continuously; one node is SIGKILLed mid-clapping.
// Its clients must reconnect through the balancer to the survivor and go on
// clapping, and in the end every press the test made is counted exactly once:
// the survivor's totals and every user's own count equal the presses.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClapsClient } from '../../bindings/js/claps-client.js';
import { WebSocket, client, deadline, eventually, metric, request, tempDir } from '../integration/helpers.mjs';
import { freePorts, redis_setup } from './redis_harness.mjs';
import { connectedToRedis, readArticle, startRedisNode } from './node_helpers.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ARTICLES = ['lb-a', 'lb-b', 'lb-c'];
const USERS = ['ana', 'ben', 'cho', 'dan', 'eve', 'fay'];
const HAPROXY = process.env.HAPROXY || 'haproxy';  // /usr/sbin/haproxy on Debian
const PRESS_EVERY_MS = 40;  // each user presses once per 40 ms, cycling through ARTICLES

/** Renders the example config for these nodes, starts HAProxy on it and waits for both servers UP. */
async function startBalancer(nodes) {
  const [port, statsPort] = await freePorts(2);
  const args = ['--listen', `127.0.0.1:${port}`, '--stats', `127.0.0.1:${statsPort}`,
    '--check', 'inter 200ms fall 2 rise 1', '--maxconn', '1000'];
  for (const [name, node] of Object.entries(nodes)) args.push('--server', `${name}=127.0.0.1:${node.port}`);
  const config = await deadline(new Promise((resolve, reject) => {
    execFile(path.join(root, 'scripts/haproxy-config.sh'), args, (err, stdout, stderr) =>
      (err ? reject(new Error(`haproxy-config.sh: ${stderr}`)) : resolve(stdout)));
  }), 10000, 'scripts/haproxy-config.sh');
  const file = path.join(tempDir('claps-lb-'), 'haproxy.cfg');
  fs.writeFileSync(file, config);
  const child = spawn(HAPROXY, ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lb = {
    child, port, statsPort, output: '',
    ws: `ws://127.0.0.1:${port}/ws`,
    exited: new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal }))),
  };
  process.on('exit', () => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  child.stdout.on('data', (d) => { lb.output += d; });
  child.stderr.on('data', (d) => { lb.output += d; });
  lb.exited.then(({ code, signal }) => { lb.output += `\n[haproxy exited: ${code ?? signal}]`; });
  lb.stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await deadline(lb.exited, 10000, 'haproxy to exit');
  };
  lb.serverStatus = () => serverStatus(lb);
  await eventually(async () => {
    if (child.exitCode !== null) throw new Error(`haproxy exited: ${lb.output}`);
    try {
      const status = await serverStatus(lb);
      return Object.keys(nodes).every((name) => status[name] === 'UP');
    } catch { return false; }
  }, { ms: 15000, every: 50, what: 'HAProxy to mark both nodes UP (GET /readyz)' });
  return lb;
}

/** {server name: 'UP' | 'DOWN' | ...} of backend clapsd, from the stats page's CSV. */
async function serverStatus(lb) {
  const { text } = await request(`http://127.0.0.1:${lb.statsPort}/;csv`);
  const [header, ...rows] = text.trim().split('\n');
  const columns = header.replace(/^# /, '').split(',');
  const at = (name) => columns.indexOf(name);
  const out = {};
  for (const row of rows) {
    const cells = row.split(',');
    if (cells[at('pxname')] === 'clapsd' && !['BACKEND', 'FRONTEND'].includes(cells[at('svname')]))
      out[cells[at('svname')]] = cells[at('status')].split(' ')[0];
  }
  return out;
}

/**
 * One user behind the balancer: a ClapsClient whose WebSocket notes the node
 * named in each connection's hello frame (clapsd --node-id), and the presses
 * the test made, per article.
 */
class reader {
  constructor(url, user, source) {
    this.user = user;
    this.source = source;  // its own loopback address: the nodes allow one connection per address
    this.presses = Object.fromEntries(ARTICLES.map((a) => [a, 0]));
    this.hellos = [];  // node of each connection, in order
    this.refused = [];  // errors the client will not retry: presses lost
    // The client's own count must never fall below the presses made so far:
    // that would be a press the user saw vanish.
    this.mineBelow = [];
    this.mineDips = [];  // ...but it may come down after showing a press twice (reported)
    this.lastMine = Object.fromEntries(ARTICLES.map((a) => [a, 0]));
    this.helloWaiters = [];
    const self = this;
    this.onClapSent = null;  // called right after a clap message goes out
    class noting_socket extends WebSocket {
      constructor(target) {
        super(target, { localAddress: source });
        this.on('message', (data) => self.#note(JSON.parse(data.toString())));
      }

      send(data) {
        super.send(data);
        if (JSON.parse(data).type === 'clap') self.onClapSent?.();
      }
    }
    this.client = new ClapsClient({ url, user, WebSocket: noting_socket });
    this.client.on('error', (e) => { if (!e.willRetry) this.refused.push(e); });
    this.client.on('counts', ({ articles }) => {
      for (const v of articles) {
        if (!(v.article in this.lastMine)) continue;
        if (v.mine < this.presses[v.article]) this.mineBelow.push(`${v.article}: ${v.mine} < ${this.presses[v.article]} pressed`);
        if (v.mine < this.lastMine[v.article]) this.mineDips.push(`${v.article}: ${this.lastMine[v.article]} -> ${v.mine}`);
        this.lastMine[v.article] = v.mine;
      }
    });
    this.client.subscribe(ARTICLES);
  }

  #note(frame) {
    for (const f of frame.type === 'batch' ? frame.messages : [frame]) {
      if (f.type !== 'hello') continue;
      this.hellos.push(f.node);
      for (const w of [...this.helloWaiters]) w();
    }
  }

  get node() { return this.hellos.at(-1); }

  /** Resolves once a hello satisfies `pred(hellos)`. */
  untilHello(pred, ms, what) {
    if (pred(this.hellos)) return Promise.resolve();
    return deadline(new Promise((resolve) => {
      const w = () => {
        if (!pred(this.hellos)) return;
        this.helloWaiters.splice(this.helloWaiters.indexOf(w), 1);
        resolve();
      };
      this.helloWaiters.push(w);
    }), ms, `${this.user}: ${what} (hellos so far: ${this.hellos.join(',')})`);
  }

  /** Resolves once `pred()` holds after some ack (or at once if it holds now). */
  untilAck(pred, ms, what) {
    if (pred()) return Promise.resolve();
    let off;
    return deadline(new Promise((resolve) => {
      const check = () => { if (pred()) resolve(); };
      const offs = [this.client.on('ack', check), this.client.on('error', check)];
      off = () => offs.forEach((f) => f());
    }), ms, `${this.user}: ${what} (status ${this.client.status}, ` +
      `${this.client.unacknowledged} unacknowledged)`).finally(() => off());
  }

  press(i) {
    const article = ARTICLES[i % ARTICLES.length];
    const queued = this.client.clap(article, 1);
    assert.equal(queued, 1, `${this.user}: clap() queued ${queued} on ${article} (cap ${this.client.cap})`);
    this.presses[article] += 1;
  }
}

describe('JS clients through HAProxy: one node SIGKILLed mid-clapping', () => {
  let redis;
  let lb;
  const nodes = {};
  const readers = [];
  let pressing = null;

  const startNode = (id, { dataDir = tempDir(), listen } = {}) => startRedisNode({
    port: redis.masterPort, id, dataDir, listen,
    // One connection per client address: a node that counted the balancer's
    // address instead of X-Forwarded-For would refuse all readers but one.
    // --op-pending-s 3: a clap A decided in Redis and never journaled is taken
    // over by B 3 s after A's death (30 s by default), when its client resends it.
    args: ['--clap-cap', '100000', '--trusted-proxy', '127.0.0.1/32', '--max-connections-per-ip', '1',
      '--op-pending-s', '3'],
  });

  before(async () => {
    redis = await redis_setup.start({ replicas: 0, sentinels: 0 });
    [nodes.A, nodes.B] = await Promise.all([startNode('A'), startNode('B')]);
    await Promise.all(Object.values(nodes).map(connectedToRedis));
    lb = await startBalancer(nodes);
  });

  after(async () => {
    clearInterval(pressing);
    for (const r of readers) r.client.close();
    await lb?.stop().catch(() => lb.child.kill('SIGKILL'));
    await Promise.all(Object.values(nodes).map((n) => n.stop().catch(() => n.child.kill('SIGKILL'))));
    await redis?.stop();
  });

  test('the nodes count connections per reader address, from X-Forwarded-For, not per balancer', async () => {
    const open = async (source, user) => {
      const c = new client(`${lb.ws}?user=${user}`, { localAddress: source });
      try {
        await deadline(c.opened, 5000, `WebSocket from ${source}`);
        return { c, node: (await c.next((f) => f.type === 'hello')).node };
      } catch (err) {
        c.terminate();
        return { status: err.status, body: err.body };
      }
    };
    // leastconn sends the second connection to the other node, where that
    // address has none yet; the third finds both nodes holding one.
    const first = await open('127.0.0.2', 'xff-1');
    const second = await open('127.0.0.2', 'xff-2');
    assert.deepEqual([first.node, second.node].sort(), ['A', 'B']);
    const third = await open('127.0.0.2', 'xff-3');
    assert.equal(third.status, 429, `a third connection from 127.0.0.2: ${JSON.stringify(third)}`);
    assert.match(third.body, /rate_limited/);
    // Another address is another client, though HAProxy's own address is the same.
    const other = await open('127.0.0.3', 'xff-4');
    assert.ok(other.node, `a connection from 127.0.0.3: ${JSON.stringify(other)}`);
    // A forged X-Forwarded-For is replaced by the balancer: it cannot take another's place.
    const forged = new client(`${lb.ws}?user=xff-5`, { localAddress: '127.0.0.2', headers: { 'X-Forwarded-For': '127.0.0.77' } });
    await assert.rejects(deadline(forged.opened, 5000, 'the forged connection'), (err) => err.status === 429);
    forged.terminate();
    await Promise.all([first, second, other].map(({ c }) => c.close()));
    for (const n of Object.values(nodes))
      await eventually(async () => (await metric(n, 'claps_connections')) === 0,
        { ms: 5000, what: `node :${n.port} to see its test connections closed` });
  });

  test('readers move to the survivor and every press counts exactly once', async (t) => {
    USERS.forEach((user, i) => readers.push(new reader(lb.ws, user, `127.0.0.${10 + i}`)));
    await Promise.all(readers.map((r) => r.untilHello((h) => h.length === 1, 10000, 'first hello through the balancer')));
    const on = (id) => readers.filter((r) => r.node === id);
    // leastconn spreads the connections: both nodes hold some.
    assert.ok(on('A').length > 0 && on('B').length > 0,
      `connections per node: A ${on('A').length}, B ${on('B').length}`);

    let i = 0;
    pressing = setInterval(() => { for (const r of readers) r.press(i); ++i; }, PRESS_EVERY_MS);
    // Every reader has claps acknowledged through the balancer before the kill.
    await Promise.all(readers.map((r) => r.untilAck(() => r.client.stats.claps_acked >= 10, 15000,
      '10 claps acknowledged before the kill')));

    const victims = on('A');
    const survivors = on('B');
    const ackedBefore = new Map(victims.map((r) => [r, r.client.stats.acks]));
    // The kill lands right behind a clap on its way to A, so that clap's fate
    // is open: never read, decided in Redis, in A's journal, or acknowledged.
    let killedAt;
    await deadline(new Promise((resolve) => {
      victims[0].onClapSent = () => {
        victims[0].onClapSent = null;
        killedAt = Date.now();
        nodes.A.child.kill('SIGKILL');
        resolve();
      };
    }), 5000, `a clap from ${victims[0].user} to node A`);
    await deadline(nodes.A.exited, 10000, 'node A to die');

    // Each of A's readers reconnects through the balancer and lands on B...
    await Promise.all(victims.map((r) => r.untilHello((h) => h.length === 2, 20000,
      'a second connection after node A died')));
    const movedMs = Date.now() - killedAt;
    for (const r of victims) {
      assert.deepEqual(r.hellos, ['A', 'B'], `${r.user} moved from A to B`);
      assert.equal(r.client.node, 'B', `${r.user}'s client.node`);
    }
    await eventually(async () => (await lb.serverStatus()).A === 'DOWN',
      { ms: 10000, every: 50, what: 'HAProxy to mark node A DOWN' });
    const downMs = Date.now() - killedAt;
    // ...and keeps clapping there: new acks from B.
    await Promise.all(victims.map((r) => r.untilAck(() => r.client.stats.acks >= ackedBefore.get(r) + 10, 30000,
      '10 more acks after moving to B')));

    // A stays dead. A clap its script decided in Redis but its journal never
    // got (or got, unacknowledged) is resent by its client to B, which takes
    // the op over once A's pending record passes its deadline: counted once.
    clearInterval(pressing);
    pressing = null;
    // Everything pressed is acknowledged: a clap A decided but never answered
    // is resent with its op id, and B answers it as A's replay, or takes it
    // over once A's pending record passes its deadline.
    await Promise.all(readers.map((r) => r.untilAck(() => r.client.unacknowledged === 0, 60000,
      'every press acknowledged')));
    const settledMs = Date.now() - killedAt;
    const presses = readers.reduce((s, r) => s + Object.values(r.presses).reduce((a, b) => a + b, 0), 0);
    t.diagnostic(`${victims.length} of ${readers.length} readers on A moved to B within ${movedMs} ms of the kill; ` +
      `A DOWN on the stats page after ${downMs} ms; all ${presses} presses ` +
      `acknowledged ${settledMs} ms after the kill; ops resent after reconnecting: ` +
      `${victims.map((r) => r.client.stats.retries).join(',')}; ops B took over from A: ` +
      `${await metric(nodes.B, 'claps_cluster_op_id_takeovers_total')}`);

    // B's connections never broke: the balancer moved only A's readers.
    for (const r of survivors) assert.deepEqual(r.hellos, ['B'], `${r.user} stayed on B`);
    assert.equal(await metric(nodes.B, 'claps_connections'), readers.length);
    for (const r of readers) {
      assert.deepEqual(r.refused, [], `${r.user}: errors the client gave up on`);
      assert.deepEqual(r.mineBelow, [], `${r.user}: own count below the presses`);
      // A clap A's script decided but A's journal never got is counted in
      // Redis (A's part) and by the client (unacknowledged) until B takes it
      // over: the count shows it twice, then comes back down.
      if (r.mineDips.length) t.diagnostic(`${r.user}'s own count came down: ${r.mineDips.join(', ')}`);
    }

    // Exactly once: the survivor's totals and each user's own count are the presses.
    const pressed = (article) => readers.reduce((s, r) => s + r.presses[article], 0);
    const expected = {};
    for (const article of ARTICLES)
      expected[article] = { total: pressed(article), mine: Object.fromEntries(readers.map((r) => [r.user, r.presses[article]])) };
    const shown = {};
    const read = async () => {
      for (const article of ARTICLES) {
        shown[article] = { total: (await readArticle(nodes.B, article)).total, mine: {} };
        for (const r of readers) shown[article].mine[r.user] = (await readArticle(nodes.B, article, r.user)).mine;
      }
      return JSON.stringify(shown) === JSON.stringify(expected);
    };
    // B reads A's part, which a takeover changes, on its 5 s refresh; a read
    // round every 500 ms stays inside each user's rate limit.
    await eventually(read, { ms: 15000, every: 500, what: 'survivor B to show the presses' }).catch(() => {});
    assert.deepEqual(shown, expected, 'survivor B: totals and per-user claps against the presses');
    // Each reader's own view agrees once the last update is in.
    for (const r of readers)
      for (const article of ARTICLES) {
        await eventually(() => r.client.view(article).total === expected[article].total,
          { ms: 10000, what: `${r.user}'s view of ${article} to reach ${expected[article].total}` });
        assert.equal(r.client.view(article).mine, r.presses[article], `${r.user}'s own claps on ${article}`);
      }
  });
});
