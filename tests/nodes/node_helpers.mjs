// What the node tests share besides Redis: viewers that remember the latest
// total they were shown, a bounded clap load, and Redis's view of a total.
import fs from 'node:fs';
import { client, deadline, eventually, metric, request, startServer } from '../integration/helpers.mjs';
import { cli } from './redis_harness.mjs';

/**
 * Opens a viewer of `article` on `node`; `viewer.latest` is the total of the
 * newest snapshot or update it received.
 */
export async function watcher(node, article, user) {
  const c = await client.open(`${node.ws}${user ? `?user=${user}` : ''}`);
  c.latest = undefined;
  c.ws.on('message', (data) => {
    const f = JSON.parse(data.toString());
    const item = f.type === 'counts' && f.counts.find((x) => x.article === article);
    if (item) c.latest = item.total;
  });
  await c.subscribe([article]);
  return c;
}

/** The newest total `viewer` (from watcher()) was shown. */
export function latestTotal(viewer) { return viewer.latest; }

/** Sum over nodes of the article's per-node totals ("version:total") in Redis on `port`. */
export async function redisTotal(port, article) {
  const out = await cli(port, 'HGETALL', `claps:t:{${article}}`);
  const lines = out ? out.split('\n') : [];
  let sum = 0;
  for (let i = 1; i < lines.length; i += 2) sum += Number(lines[i].split(':')[1]);
  return sum;
}

/**
 * Claps 1 at a time, each with its own op id, from `perNode` connections per
 * node, while keepGoing() and before deadlineMs. Every user claps at most 40
 * times (under the cap), then a fresh user takes over. Resolves `done` with
 * every ack and error once all sent claps are answered.
 */
export function clapLoad({ nodes, article, perNode = 2, keepGoing, onAck = () => {}, deadlineMs = 60000 }) {
  const acked = [];
  const errors = [];
  const end = Date.now() + deadlineMs;
  const opened = [];
  let seq = 0;
  async function loop(node, n, k) {
    let c;
    let sent = 0;
    let gen = 0;
    const connect = async () => {
      c = await client.open(`${node.ws}?user=load-${n}-${k}-${gen++}`);
      sent = 0;
    };
    const first = connect();
    opened.push(first);
    await first;
    while (keepGoing() && Date.now() < end) {
      if (sent === 40) {
        c.terminate();
        await connect();
      }
      const id = `load-${n}-${k}-${seq++}`;
      c.send({ type: 'clap', article, count: 1, id });
      ++sent;
      const reply = await c.ack(id, 20000);
      if (reply.type === 'ack') {
        acked.push(reply);
        onAck(reply);
      } else {
        errors.push(reply);
      }
    }
    c.terminate();
  }
  const loops = [];
  nodes.forEach((node, n) => { for (let k = 0; k < perNode; ++k) loops.push(loop(node, n, k)); });
  const started = new Promise((resolve) => setImmediate(resolve)).then(() => Promise.all(opened));
  const done = deadline(Promise.all(loops), deadlineMs + 30000, 'the clap load to finish')
    .then(() => ({ acked, errors }));
  return { acked, errors, started, done };
}

/** GET /api/articles/{article} on `node` (with ?user= when given): the parsed body. */
export async function readArticle(node, article, user) {
  const r = await request(`${node.http}/api/articles/${article}${user ? `?user=${user}` : ''}`);
  if (r.status !== 200) throw new Error(`GET ${article} on :${node.port}: ${r.status} ${r.text}`);
  return r.json;
}

/**
 * One user's WebSocket on one node that resends an op with the same op id
 * until it is acknowledged, as a client should: after an `unavailable` or
 * `rate_limited` error, after `attemptMs` without an answer, and after the
 * connection closed (it reconnects as the same user first).
 */
export class retrying_clapper {
  constructor(node, user, { attemptMs = 10000 } = {}) {
    this.node = node;
    this.user = user;
    this.attemptMs = attemptMs;
    this.retries = 0;
    this.c = undefined;
  }

  async connect() {
    this.c = await client.open(`${this.node.ws}?user=${this.user}`);
    this.c.dead = false;
    const c = this.c;
    c.closed.then(() => { c.dead = true; });
    return this;
  }

  /** Sends {type, article, count, id} until acked; resolves the ack. */
  async op(message, { ms = 60000 } = {}) {
    const end = Date.now() + ms;
    for (let attempt = 0; ; ++attempt) {
      if (Date.now() > end) throw new Error(`${this.user}: op ${message.id} not acked within ${ms} ms`);
      if (attempt > 0) {
        ++this.retries;
        // Back off a little so a retry does not spin while a node fails over.
        await new Promise((r) => setTimeout(r, Math.min(50 * attempt, 500)));
      }
      if (!this.c || this.c.dead) {
        try { await this.connect(); } catch { continue; }
      }
      const c = this.c;
      try { c.send(message); } catch { c.dead = true; continue; }
      const reply = await Promise.race([
        c.ack(message.id, this.attemptMs).catch(() => ({ type: 'timeout' })),
        c.closed.then(() => ({ type: 'closed' })),
      ]);
      if (reply.type === 'ack') return reply;
      if (reply.type === 'error' && !['unavailable', 'rate_limited'].includes(reply.code))
        throw new Error(`${this.user}: op ${message.id} refused: ${JSON.stringify(reply)}`);
    }
  }

  clap(article, count, id) { return this.op({ type: 'clap', article, count, id }); }

  undo(article, id) { return this.op({ type: 'undo', article, id }); }

  /** A clean close (close frame), resolved once the socket is closed. */
  close() { return this.c && !this.c.dead ? this.c.close() : Promise.resolve(); }

  terminate() { this.c?.terminate(); }
}

/**
 * Polls REST reads until `check(read)` holds for every [node, article, user,
 * check] (user may be undefined), within `ms`. On a timeout the error lists
 * what each failing read showed, plus what `diagnose()` adds.
 */
export async function untilReads(expectations, { ms = 10000, what = 'reads to match', diagnose = async () => '' } = {}) {
  let wrong = [];
  try {
    await eventually(async () => {
      wrong = [];
      for (const [node, article, user, check] of expectations) {
        const read = await readArticle(node, article, user);
        if (!check(read)) wrong.push(`:${node.port} ${JSON.stringify(read)}`);
      }
      return wrong.length === 0;
    }, { ms: Math.max(0, ms), every: 50, what });
  } catch (e) {
    e.message += `; still wrong: ${wrong.join(', ')} ${await diagnose()}`;
    throw e;
  }
}

// A clapsd node `id` on the standalone Redis at `port`, keeping its journal in
// `dataDir`; on `listen` when given (a restart on the same port), else a free port.
export function startRedisNode({ port, id, dataDir, env = {}, args = [], listen }) {
  return startServer({
    dataDir, env, ...(listen ? { listen } : {}),
    args: ['--redis', `redis://127.0.0.1:${port}`, '--node-id', id, '--redis-timeout-ms', '1000',
      '--log-level', 'warn', ...args],
  });
}

// Waits until `node` is connected to Redis and no longer degraded (its journal is in Redis).
export async function connectedToRedis(node) {
  await eventually(async () => (await metric(node, 'claps_redis_connected')) === 1 &&
    (await metric(node, 'claps_cluster_degraded')) === 0,
  { ms: 15000, what: 'node connected to Redis and not degraded' });
}

/** A process's resident memory from /proc/<pid>/status, in KiB: {rss, anon, file}. */
export function processMemory(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)[1]);
  return { rss: kib('VmRSS'), anon: kib('RssAnon'), file: kib('RssFile') };
}
