// The operations files against a live clapsd: its /metrics passes
// `promtool check metrics` (Prometheus naming conventions), and every metric
// that docs/ops/grafana-dashboard.json and docs/ops/alerts.yml name exists on
// it, so neither can refer to a metric that is gone or renamed (ops.dashboard
// checks that the dashboard's queries parse). Run twice:
// one node on LMDB alone, and one node on a real redis-server (the Redis and
// cluster metrics), the latter logging JSON (--log-format json) with its node id.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { client, eventually, request, startServer } from '../integration/helpers.mjs';
import { redis_setup } from '../nodes/redis_harness.mjs';
import { dashboardQueries, readDashboard } from './dashboard.mjs';

const file = (rel) => fileURLToPath(new URL(rel, import.meta.url));
const promtool = execFileSync(file('../../scripts/promtool.sh'),
  [process.env.PROMTOOL_DIR ?? file('../../build/tools/prometheus')], { stdio: ['ignore', 'pipe', 'inherit'] })
  .toString().trim();

const servers = [];
const clients = [];
let redis;

after(async () => {
  for (const c of clients) c.terminate();
  await Promise.all(servers.map((s) => s.stop()));
  await redis?.stop();
});

/** The metric names (sample names: histograms add _bucket, _sum, _count) on `text`. */
function sampleNames(text) {
  const names = new Set();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (m) names.add(m[1]);
  }
  return names;
}

/** Families whose samples are not in one group (the text format wants each family together). */
function splitFamilies(text) {
  const histograms = new Set([...text.matchAll(/^# TYPE (\S+) histogram$/gm)].map((m) => m[1]));
  const family = (name) => {
    const base = name.replace(/_(bucket|sum|count)$/, '');
    return histograms.has(base) ? base : name;
  };
  const done = new Set();
  const split = new Set();
  let current;
  for (const name of text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => family(/^[^{ ]+/.exec(l)[0]))) {
    if (name === current) continue;
    if (done.has(name)) split.add(name);
    if (current) done.add(current);
    current = name;
  }
  return [...split];
}

/** `promtool check metrics` on `text`: its findings (empty when clean) and exit status. */
function checkMetrics(text) {
  const r = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: r.status, findings: (r.stdout + r.stderr).trim() };
}

function dashboardNames() {
  return namesIn(dashboardQueries(readDashboard()).map((q) => q.expr));
}

/** Every claps_* name in the alert rules' expressions. */
function alertNames() {
  const exprs = fs.readFileSync(file('../../docs/ops/alerts.yml'), 'utf8').split('\n')
    .filter((l) => /^\s*expr:/.test(l));
  assert.ok(exprs.length >= 8, `alerts.yml has its rules (${exprs.length})`);
  return namesIn(exprs);
}

function namesIn(exprs) {
  const names = new Set();
  for (const e of exprs) for (const m of e.matchAll(/\bclaps_[a-z0-9_]+/g)) names.add(m[0]);
  return names;
}

async function scrape(server) {
  const r = await request(`${server.http}/metrics`);
  assert.equal(r.status, 200);
  return r.text;
}

// Names only a node with Redis has, and names that appear only with a flag
// this test does not give (--reuse-port's accept counters are not charted).
const redisOnly = (name) => /^claps_(cluster|redis|bus)_/.test(name);

describe('docs/ops against a live clapsd', () => {
  const seen = new Set();

  test('one node on LMDB: /metrics passes promtool check metrics', async () => {
    const server = await startServer({ args: ['--tick-ms', '20'] });
    servers.push(server);
    const c = await client.open(`${server.ws}?user=ops-alice`);
    clients.push(c);
    const ack = await c.clap('ops1', 3);
    assert.equal(ack.type, 'ack');
    const text = await scrape(server);
    const names = sampleNames(text);
    assert.ok(names.has('claps_commit_latency_seconds_bucket') && names.has('claps_lmdb_map_used_bytes'));
    assert.ok(![...names].some(redisOnly), 'no Redis metrics without Redis');
    const { status, findings } = checkMetrics(text);
    assert.equal(findings, '', 'promtool check metrics finds nothing');
    assert.equal(status, 0);
    assert.deepEqual(splitFamilies(text), [], 'every family\'s samples are together');
    for (const n of names) seen.add(n);
  });

  test('one node on Redis, logging JSON: /metrics passes promtool check metrics; every log line is JSON with its node', async () => {
    redis = await redis_setup.start({ replicas: 0, sentinels: 0 });
    const server = await startServer({
      args: ['--redis', `redis://127.0.0.1:${redis.masterPort}`, '--node-id', 'ops-n1', '--log-format', 'json'],
    });
    servers.push(server);
    await eventually(async () => (await request(`${server.http}/readyz`)).json?.status === 'ready',
      { ms: 15000, what: 'the node ready on Redis' });
    const c = await client.open(`${server.ws}?user=ops-bob`);
    clients.push(c);
    const ack = await c.clap('ops2', 2);
    assert.equal(ack.type, 'ack');
    const text = await scrape(server);
    const names = sampleNames(text);
    for (const n of ['claps_redis_connected', 'claps_cluster_degraded', 'claps_cluster_op_id_conflicts_total'])
      assert.ok(names.has(n), `${n} on a node with Redis`);
    const { status, findings } = checkMetrics(text);
    assert.equal(findings, '', 'promtool check metrics finds nothing');
    assert.equal(status, 0);
    assert.deepEqual(splitFamilies(text), [], 'every family\'s samples are together');
    for (const n of names) seen.add(n);

    await server.stop();
    const lines = server.stderr.split('\n').filter((l) => l !== '');
    assert.ok(lines.some((l) => l.includes('redis: connected')), server.stderr);
    for (const l of lines) {
      const o = JSON.parse(l);
      assert.match(o.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, l);
      assert.ok(['trace', 'debug', 'info', 'warn', 'error'].includes(o.level), l);
      assert.equal(typeof o.msg, 'string', l);
      if (o.source !== 'lws') assert.equal(o.node, 'ops-n1', l);
    }
  });

  test('every metric the dashboard and the alerts name is on /metrics', () => {
    assert.ok(seen.size > 50, `both scrapes ran (${seen.size} names)`);
    for (const [what, names] of [['docs/ops/grafana-dashboard.json', dashboardNames()],
      ['docs/ops/alerts.yml', alertNames()]]) {
      const missing = [...names].filter((n) => !seen.has(n));
      assert.deepEqual(missing, [], `${what} names metrics clapsd does not export`);
    }
  });
});
