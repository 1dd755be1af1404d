// Measures cross-node latency (a measurement, not a test): a viewer on node A,
// claps made one at a time on node B; each sample is the time from sending the
// clap on B to the update frame showing it on A.
//
// Usage: node tests/nodes/cross_node_latency.mjs ws://127.0.0.1:8081/ws ws://127.0.0.1:8082/ws [claps=500]
// (e.g. against scripts/demo-cluster.sh). Also reports B's ack latency for comparison.
import { client } from '../integration/helpers.mjs';

const [urlA, urlB, countArg] = process.argv.slice(2);
if (!urlA || !urlB) {
  console.error('usage: cross_node_latency.mjs WS_URL_A WS_URL_B [claps]');
  process.exit(2);
}
const count = Number(countArg ?? 500);
const article = `lat-${Date.now().toString(36)}`;

const viewer = await client.open(urlA);
await viewer.subscribe([article]);
const warm = await client.open(`${urlB}?user=lat-warm`);
// Warm-up: the first clap proves A's channel subscription is live.
await warm.clap(article, 1);
await viewer.update(article, (c) => c.total >= 1, 10000);
let total = 1;

const cross = [];
const acks = [];
let clapper;
for (let i = 0; i < count; ++i) {
  if (i % 40 === 0) {  // stay under the per-user cap and the rate limit's burst
    clapper?.terminate();
    clapper = await client.open(`${urlB}?user=lat-${i}`);
  }
  const started = performance.now();
  const seen = viewer.update(article, (c) => c.total >= total + 1, 10000);
  const ack = await clapper.clap(article, 1);
  acks.push(performance.now() - started);
  await seen;
  cross.push(performance.now() - started);
  total = ack.total;
  // Pace below the default rate limit (20 claps/s per connection).
  await new Promise((r) => setTimeout(r, 55));
}
clapper.terminate();
warm.terminate();
viewer.terminate();

function summary(name, xs) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(1);
  console.log(`${name}: n=${s.length} p50=${q(0.5)} ms p90=${q(0.9)} ms p99=${q(0.99)} ms max=${s.at(-1).toFixed(1)} ms`);
}
summary('clap on B -> ack on B        ', acks);
summary('clap on B -> update on A     ', cross);
