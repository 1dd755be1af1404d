// What the node tests share besides Redis: viewers that remember the latest
// total they were shown, a bounded clap load, and Redis's view of a total.
import { client, deadline } from '../integration/helpers.mjs';
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
