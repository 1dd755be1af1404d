#!/usr/bin/env node
// benchmarks/churn.mjs - distinct users coming and going (issue 12): each
// user connects, subscribes to a few articles, optionally claps once, and
// leaves; at most --concurrency users are connected at once. The server's RSS
// is sampled with nobody connected: at a warmed-up baseline (after
// --baseline-users), at the end, and after --settle-s. A server that keeps
// something for every user it ever saw grows by that much per user.
//
//   node benchmarks/churn.mjs --url ws://127.0.0.1:PORT/ws --server-pid PID
//        [--users 200000] [--baseline-users 20000] [--concurrency 1000]
//        [--subscriptions 2] [--articles 1000] [--clap-every 0]
//        [--source-ips 127.0.0.2-127.0.0.20] [--settle-s 3]
//        [--metrics http://127.0.0.1:PORT/metrics] [--json FILE] [--label NAME]
//
// --clap-every N: every Nth user claps once (with an op id) before leaving;
// 0: nobody claps. Users are churn-<pid>-<n>, distinct across runs.
// Source addresses rotate over --source-ips so that the client's TIME_WAIT
// sockets do not run one address out of ephemeral ports.
// Exits non-zero when a user fails (no hello, snapshot or ack, an error frame)
// or when the run passes --max-s.
import fs from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const { default: WebSocket } = await import(path.join(here, '../node_modules/ws/index.js'));

const { values: o } = parseArgs({
  options: {
    url: { type: 'string' },
    'server-pid': { type: 'string' },
    users: { type: 'string', default: '200000' },
    'baseline-users': { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '1000' },
    subscriptions: { type: 'string', default: '2' },
    articles: { type: 'string', default: '1000' },
    'clap-every': { type: 'string', default: '0' },
    'source-ips': { type: 'string', default: '127.0.0.2-127.0.0.20' },
    'settle-s': { type: 'string', default: '3' },
    'max-s': { type: 'string', default: '600' },
    'step-timeout-ms': { type: 'string', default: '30000' },
    metrics: { type: 'string' },
    json: { type: 'string' },
    label: { type: 'string', default: 'churn' },
  },
});
if (!o.url || !o['server-pid']) {
  console.error('usage: churn.mjs --url ws://HOST:PORT/ws --server-pid PID [options]; see the head of the file');
  process.exit(2);
}
const users = Number(o.users);
const baselineUsers = Math.min(Number(o['baseline-users']), users);
const concurrency = Number(o.concurrency);
const subscriptions = Number(o.subscriptions);
const articles = Number(o.articles);
const clapEvery = Number(o['clap-every']);
const settleMs = Number(o['settle-s']) * 1000;
const pid = Number(o['server-pid']);
const stepTimeoutMs = Number(o['step-timeout-ms']);

function sourceIps(spec) {
  const m = spec.match(/^(\d+\.\d+\.\d+\.)(\d+)-(?:\d+\.\d+\.\d+\.)?(\d+)$/);
  if (!m) return spec.split(',');
  const out = [];
  for (let i = Number(m[2]); i <= Number(m[3]); i++) out.push(m[1] + i);
  return out;
}
const ips = sourceIps(o['source-ips']);

function rssKb() {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(status.match(/^VmRSS:\s+(\d+)/m)[1]);
}

function fetchText(url) {
  return new Promise((resolve) => {
    const req = http.get(url, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(body));
    });
    req.on('error', () => resolve(''));
    req.setTimeout(5000, () => req.destroy());
  });
}

// A few engine gauges from /metrics, when given (the tally cache, subscribers).
async function gauges() {
  if (!o.metrics) return {};
  const text = await fetchText(o.metrics);
  const out = {};
  for (const name of ['claps_subscribers', 'claps_articles_cached', 'claps_tallies_cached', 'claps_connections']) {
    const m = text.match(new RegExp(`^${name} (\\S+)$`, 'm'));
    if (m) out[name] = Number(m[1]);
  }
  return out;
}

const run = `${process.pid}`;
const stats = { done: 0, failed: 0, claps: 0, firstError: '' };

// One user's visit; resolves when its connection has closed.
function visit(n) {
  return new Promise((resolve) => {
    const user = `churn-${run}-${n}`;
    const ws = new WebSocket(`${o.url}?user=${user}`, { localAddress: ips[n % ips.length], perMessageDeflate: false });
    const claps = clapEvery > 0 && n % clapEvery === 0;
    let stage = 'hello';
    let failed = false;
    const fail = (why) => {
      if (failed) return;
      failed = true;
      stats.failed++;
      if (!stats.firstError) stats.firstError = `user ${n}: ${why}`;
      ws.terminate();
    };
    const timer = setTimeout(() => fail(`no ${stage} within ${stepTimeoutMs} ms`), stepTimeoutMs);
    const first = (n * 7919) % articles;
    const list = [];
    for (let i = 0; i < subscriptions; i++) list.push(`churn-a${(first + i) % articles}`);
    ws.on('message', (data) => {
      const m = JSON.parse(data);
      if (m.type === 'error') return fail(`error frame ${data}`);
      if (stage === 'hello' && m.type === 'hello') {
        stage = 'snapshot';
        ws.send(JSON.stringify({ type: 'subscribe', articles: list, id: 's' }));
      } else if (stage === 'snapshot' && m.type === 'counts' && m.snapshot && m.id === 's') {
        if (claps) {
          stage = 'ack';
          ws.send(JSON.stringify({ type: 'clap', article: list[0], count: 1, id: `c${n}` }));
        } else {
          stage = 'close';
          ws.close(1000);
        }
      } else if (stage === 'ack' && m.type === 'ack') {
        stats.claps++;
        stage = 'close';
        ws.close(1000);
      }
    });
    ws.on('error', (e) => fail(`${stage}: ${e.message}`));
    ws.on('close', () => {
      clearTimeout(timer);
      if (!failed && stage !== 'close') fail(`closed during ${stage}`);
      if (!failed) stats.done++;
      resolve();
    });
  });
}

// Runs users [from, to) with at most `concurrency` connected at once; resolves
// once all of them have left.
async function wave(from, to) {
  let next = from;
  const worker = async () => {
    while (next < to) await visit(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, to - from) }, worker));
}

const wait = (ms) => new Promise((r) => setTimeout(r, ms));
const giveUp = setTimeout(() => {
  console.error(`churn: still running after ${o['max-s']} s; giving up`);
  process.exit(1);
}, Number(o['max-s']) * 1000);
giveUp.unref();

const t0 = performance.now();
const rssStartKb = rssKb();
await wave(0, baselineUsers);
// Nobody connected: what the server holds now is what it keeps.
await wait(1000);
const rssBaselineKb = rssKb();
const gaugesBaseline = await gauges();
const t1 = performance.now();
await wave(baselineUsers, users);
const t2 = performance.now();
await wait(1000);
const rssEndKb = rssKb();
const gaugesEnd = await gauges();
await wait(settleMs);
const rssSettledKb = rssKb();
const gaugesSettled = await gauges();

const churned = users - baselineUsers;
const result = {
  label: o.label,
  users, baseline_users: baselineUsers, concurrency, subscriptions, articles, clap_every: clapEvery,
  done: stats.done, failed: stats.failed, claps: stats.claps, first_error: stats.firstError,
  users_per_s: churned / ((t2 - t1) / 1000),
  elapsed_s: (performance.now() - t0) / 1000,
  rss_start_kb: rssStartKb, rss_baseline_kb: rssBaselineKb, rss_end_kb: rssEndKb, rss_settled_kb: rssSettledKb,
  growth_mb: (rssEndKb - rssBaselineKb) / 1024,
  growth_settled_mb: (rssSettledKb - rssBaselineKb) / 1024,
  bytes_per_user: ((rssSettledKb - rssBaselineKb) * 1024) / Math.max(1, churned),
  gauges_baseline: gaugesBaseline, gauges_end: gaugesEnd, gauges_settled: gaugesSettled,
};
if (o.json) fs.writeFileSync(o.json, JSON.stringify(result, null, 2) + '\n');
const mb = (kb) => (kb / 1024).toFixed(1);
console.log(`users                        ${users} (${stats.done} done, ${stats.failed} failed, ${stats.claps} clapped), at most ${concurrency} at once`);
console.log(`churn rate                   ${result.users_per_s.toFixed(0)} users/s after the baseline; ${result.elapsed_s.toFixed(1)} s in all`);
console.log(`server RSS                   start ${mb(rssStartKb)} MiB, baseline (after ${baselineUsers} users) ${mb(rssBaselineKb)} MiB, end ${mb(rssEndKb)} MiB, settled ${mb(rssSettledKb)} MiB`);
console.log(`growth over the baseline     ${result.growth_mb.toFixed(2)} MiB at the end, ${result.growth_settled_mb.toFixed(2)} MiB settled (${result.bytes_per_user.toFixed(1)} B per user)`);
if (o.metrics) console.log(`engine gauges                baseline ${JSON.stringify(gaugesBaseline)} settled ${JSON.stringify(gaugesSettled)}`);
if (stats.failed) console.error(`churn: ${stats.failed} users failed; first: ${stats.firstError}`);
process.exit(stats.failed ? 1 : 0);
