#!/usr/bin/env node
// How --reuse-port spreads one port over clapsd processes (one per core), and
// what it costs, against one process without it. Not a test: it prints figures.
//
//   CLAPSD=build-reuse-rel/server/clapsd node benchmarks/reuse_port_spread.mjs \
//     [--viewers 4000,16000] [--procs 2] [--claps-per-s 100] [--seconds 8]
//
// For every viewer count, two setups, each on a fresh redis-server:
//   shared: --procs clapsd with --reuse-port on one port (own --node-id, own
//           --data-dir, one --redis);
//   single: one clapsd without --reuse-port (same flags otherwise).
// Viewers are WebSocket clients in worker processes of at most 8000 each
// (every process here may hold 20,000 descriptors); all watch one article.
// Figures: viewers per process (hello.node), connect rate (open + hello),
// then --claps-per-s claps for --seconds from 20 clappers (under the per-user
// cap and rate limit): CPU of each clapsd (/proc/PID/stat) per update frame
// it sent (claps_update_frames_sent_total, read from each process's /metrics).
import { fork } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const ARTICLE = 'hot';
const PER_WORKER = 8000;

function flag(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

// ---------------------------------------------------------------- worker --
// A worker opens its share of viewers, reports where they landed, counts the
// update frames they get and answers how many have seen a given total.
async function worker() {
  const { WebSocket } = await import('../tests/integration/helpers.mjs');
  const url = flag('url');
  const count = Number(flag('count'));
  const inFlight = 256;
  const viewers = [];
  let frames = 0;
  let failures = 0;
  const nodes = {};
  const open = (i) => new Promise((resolve) => {
    const ws = new WebSocket(`${url}?user=v-${process.pid}-${i}`, { perMessageDeflate: false });
    const v = { ws, latest: 0 };
    ws.on('error', () => {});
    ws.on('close', () => { v.closed = true; });
    ws.on('message', (data) => {
      const f = JSON.parse(data.toString());
      if (f.type === 'hello') {
        nodes[f.node ?? 'single'] = (nodes[f.node ?? 'single'] ?? 0) + 1;
        viewers.push(v);
        resolve(true);
      } else if (f.type === 'counts') {
        if (!f.snapshot) ++frames;
        const item = f.counts.find((c) => c.article === ARTICLE);
        if (item) v.latest = Math.max(v.latest, item.total);
      }
    });
    ws.once('unexpected-response', () => { ++failures; resolve(false); });
    ws.once('error', () => { ++failures; resolve(false); });
  });
  process.send({ type: 'ready' });
  await new Promise((resolve) => process.once('message', resolve));  // "go"
  const started = Date.now();
  let next = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < count) {
      const i = next++;
      // A connect the backlog dropped is retried: the figure is the rate of successful ones.
      for (let attempt = 0; attempt < 5 && !(await open(i)); ++attempt);
    }
  }));
  const connected = Date.now();
  for (const v of viewers) v.ws.send(JSON.stringify({ type: 'subscribe', articles: [ARTICLE] }));
  process.send({ type: 'connected', started, connected, viewers: viewers.length, failures, nodes });
  process.on('message', (m) => {
    if (m.type === 'seen') {
      const cpu = process.cpuUsage();
      process.send({ type: 'seen', seen: viewers.filter((v) => v.latest >= m.total).length,
        closed: viewers.filter((v) => v.closed).length, frames, cpu_s: (cpu.user + cpu.system) / 1e6 });
    } else if (m.type === 'exit') {
      for (const v of viewers) v.ws.terminate();
      process.exit(0);
    }
  });
}

// ------------------------------------------------------------------ main --
function ask(child, message, type) {
  return new Promise((resolve) => {
    const on = (m) => { if (m.type === type) { child.off('message', on); resolve(m); } };
    child.on('message', on);
    child.send(message);
  });
}

function freshGet(port, p) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

/** {node: {frames, ...}} from each process's /metrics, asked on fresh connections until all answered. */
async function metricsByNode(port, names, processes) {
  const byNode = {};
  for (let tries = 0; Object.keys(byNode).length < processes && tries < 200; ++tries) {
    const body = await freshGet(port, '/metrics');
    const node = body.match(/^claps_node_info\{node="([^"]+)"\} 1$/m)?.[1] ?? 'single';
    const values = {};
    for (const name of names) values[name] = Number(body.match(new RegExp(`^${name} (\\S+)$`, 'm'))?.[1]);
    byNode[node] = values;
  }
  return byNode;
}

function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;  // utime + stime, in USER_HZ (100)
}

async function eventually(check, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function scenario({ shared, viewers, procs, clapsPerS, seconds, redisUrl, helpers }) {
  const { client, startServer } = helpers;
  const base = ['--redis', redisUrl, '--max-connections', '19000', '--lmdb-no-sync', '--log-level', 'warn',
    '--shutdown-timeout-s', '10'];
  const servers = [];
  const count = shared ? procs : 1;
  for (let i = 0; i < count; ++i) {
    const listen = i === 0 ? '127.0.0.1:0' : `127.0.0.1:${servers[0].port}`;
    const args = [...base, '--node-id', `p${i + 1}`, ...(shared ? ['--reuse-port'] : [])];
    servers.push(await startServer({ listen, args }));
  }
  const port = servers[0].port;
  const url = `ws://127.0.0.1:${port}/ws`;
  try {
    const workers = [];
    for (let left = viewers; left > 0; left -= PER_WORKER) {
      const w = fork(fileURLToPath(import.meta.url), ['--worker', '--url', url, '--count', String(Math.min(left, PER_WORKER))]);
      await new Promise((resolve) => w.once('message', resolve));
      workers.push(w);
    }
    const reports = await Promise.all(workers.map((w) => ask(w, { type: 'go' }, 'connected')));
    const start = Math.min(...reports.map((r) => r.started));
    const end = Math.max(...reports.map((r) => r.connected));
    const nodes = {};
    for (const r of reports) for (const [n, c] of Object.entries(r.nodes)) nodes[n] = (nodes[n] ?? 0) + c;
    const connectedCount = reports.reduce((s, r) => s + r.viewers, 0);
    const failures = reports.reduce((s, r) => s + r.failures, 0);

    // Everyone subscribed (viewer gauges say so) before the claps start.
    await eventually(async () => {
      const m = await metricsByNode(port, ['claps_subscriptions'], count);
      return Object.values(m).reduce((s, v) => s + v.claps_subscriptions, 0) >= connectedCount;
    }, 60000, 'every viewer to be subscribed');

    const clappers = [];
    for (let i = 0; i < 20; ++i) clappers.push(await client.open(`${url}?user=clapper-${i}`));
    const names = ['claps_update_frames_sent_total', 'claps_update_frames_deferred_total', 'claps_updates_total'];
    const before = await metricsByNode(port, names, count);
    const workersBefore = await Promise.all(workers.map((w) => ask(w, { type: 'seen', total: Infinity }, 'seen')));
    const cpuBefore = servers.map((s) => cpuSeconds(s.child.pid));
    const total = Math.round(clapsPerS * seconds);
    let sent = 0;
    let lastAck;
    const phaseStart = Date.now();
    await new Promise((resolve) => {
      const timer = setInterval(() => {
        const due = Math.min(total, Math.floor(((Date.now() - phaseStart) / 1000) * clapsPerS));
        for (; sent < due; ++sent) {
          const id = `b-${sent}`;
          clappers[sent % clappers.length].send({ type: 'clap', article: ARTICLE, count: 1, id });
          lastAck = clappers[sent % clappers.length].ack(id, 60000);
        }
        if (sent >= total) { clearInterval(timer); resolve(); }
      }, 5);
    });
    const finalAck = await lastAck;
    const finalTotal = Math.max(finalAck.total ?? 0, ...(await Promise.all(clappers.map(async (c) => {
      const snap = await c.subscribe([ARTICLE]);
      return snap.counts?.[0]?.total ?? 0;
    }))));
    // Until every viewer has been shown the last total.
    await eventually(async () => {
      const seen = await Promise.all(workers.map((w) => ask(w, { type: 'seen', total: finalTotal }, 'seen')));
      return seen.reduce((s, r) => s + r.seen + r.closed, 0) >= connectedCount;
    }, 180000, `every viewer to see ${finalTotal}`);
    const delivered = (Date.now() - phaseStart) / 1000;
    const cpuAfter = servers.map((s) => cpuSeconds(s.child.pid));
    const after = await metricsByNode(port, names, count);
    const seen = await Promise.all(workers.map((w) => ask(w, { type: 'seen', total: finalTotal }, 'seen')));
    const perProcess = servers.map((s, i) => {
      const node = `p${i + 1}`;
      const delta = (name) => after[node][name] - before[node][name];
      const frames = delta('claps_update_frames_sent_total');
      const cpu = cpuAfter[i] - cpuBefore[i];
      return { node, viewers: nodes[node] ?? 0, cpu_s: +cpu.toFixed(2), frames,
        deferred: delta('claps_update_frames_deferred_total'), ticks_with_update: delta('claps_updates_total'),
        cpu_us_per_frame: frames ? +((cpu * 1e6) / frames).toFixed(2) : null };
    });
    for (const c of clappers) c.terminate();
    for (const w of workers) w.send({ type: 'exit' });
    return {
      setup: shared ? `${procs} processes, --reuse-port` : '1 process',
      viewers: connectedCount, connect_failures: failures, spread: nodes,
      connect_s: +((end - start) / 1000).toFixed(2),
      connects_per_s: Math.round(connectedCount / ((end - start) / 1000)),
      claps_sent: total, final_total: finalTotal, delivered_after_s: +delivered.toFixed(1),
      viewers_closed: seen.reduce((s, r) => s + r.closed, 0),
      frames_received: seen.reduce((s, r) => s + r.frames, 0),
      // The viewers' own worker processes: when they are busy, sockets fill and clapsd coalesces.
      client_cpu_s: +seen.reduce((s, r, i) => s + r.cpu_s - workersBefore[i].cpu_s, 0).toFixed(2),
      client_workers: workers.length,
      per_process: perProcess,
    };
  } finally {
    await Promise.all(servers.map((s) => s.stop('SIGTERM', { clean: false }).catch(() => s.child.kill('SIGKILL'))));
  }
}

async function main() {
  process.env.CLAPSD ??= path.resolve(here, '../build-reuse-rel/server/clapsd');
  process.setMaxListeners(0);  // every Redis harness and temp dir cleans up at exit
  const helpers = await import('../tests/integration/helpers.mjs');
  const { redis_setup } = await import('../tests/nodes/redis_harness.mjs');
  const viewerCounts = flag('viewers', '4000,16000').split(',').map(Number);
  const procs = Number(flag('procs', '2'));
  const clapsPerS = Number(flag('claps-per-s', '100'));
  const seconds = Number(flag('seconds', '8'));
  console.error(`clapsd: ${process.env.CLAPSD}`);
  const results = [];
  for (const viewers of viewerCounts) {
    for (const shared of [true, false]) {
      const redis = await redis_setup.start({ replicas: 0, sentinels: 0 });
      try {
        const r = await scenario({ shared, viewers, procs, clapsPerS, seconds, redisUrl: redis.url, helpers });
        console.log(JSON.stringify(r));
        results.push(r);
      } finally {
        await redis.stop();
      }
    }
  }
  console.log('\n| viewers | setup | spread (hello.node) | connects/s | CPU µs per frame (per process) | frames sent | client CPU | delivered after |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    const cpu = r.per_process.map((p) => `${p.node}: ${p.cpu_us_per_frame} (${p.cpu_s} s)`).join(', ');
    const frames = r.per_process.map((p) => p.frames).join(' + ');
    console.log(`| ${r.viewers} | ${r.setup} | ${Object.entries(r.spread).map(([n, c]) => `${n} ${c}`).join(', ')} | ` +
      `${r.connects_per_s} | ${cpu} | ${frames} | ${r.client_cpu_s} s in ${r.client_workers} | ${r.delivered_after_s} s |`);
  }
}

if (process.argv.includes('--worker')) await worker();
else await main();
