// report.mjs - turns one benchmarks/run.sh result folder into docs/benchmarks.md
// and the docs/bench-*.png plots (gnuplot).
//
//   node benchmarks/report.mjs RESULTS_DIR DOCS_DIR
//
// Numbers come only from the result files; the hand-written analysis lives in
// benchmarks/findings.md and is copied in as is.
//
// A partial run (run.sh --only) does not drop what it did not measure: the
// scenarios it left out are carried over from DOCS_DIR/bench-results.json,
// each with the date and commit of the run that measured it, and the report
// says which run every section comes from. A full run replaces everything.
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { judgeStep, ackP99LimitMs, minAchievedFraction } from "./rate_step.mjs";

const [resultsDir, docsDir] = process.argv.slice(2);
if (!resultsDir || !docsDir) {
  console.error("usage: node benchmarks/report.mjs RESULTS_DIR DOCS_DIR");
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));

const machine = Object.fromEntries(
  fs.readFileSync(path.join(resultsDir, "machine.txt"), "utf8").trim().split("\n")
    .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]));
const runs = fs.readFileSync(path.join(resultsDir, "runs.jsonl"), "utf8").trim().split("\n")
  .filter(Boolean).map((line) => JSON.parse(line));
for (const run of runs) {
  run.data = JSON.parse(fs.readFileSync(path.join(resultsDir, run.file), "utf8"));
  run.source = machine;
  // Repeats of one step (scenario 1's interleaved pairs) are numbered from 1.
  run.pair = run.pair ?? 1;
}

// ---- counters scraped by run.sh: /metrics of clapsd, INFO of Redis ----
const readIfExists = (file) => (fs.existsSync(file) ? fs.readFileSync(file, "utf8") : null);
const parseMetrics = (text) => {
  const values = {};
  for (const line of text.split("\n")) {
    const m = line.match(/^(claps_[a-z_]*)(\{[^}]*\})?\s+([0-9.eE+-]+)$/);
    if (m && !m[1].endsWith("_bucket")) values[m[1] + (m[2] ?? "")] = Number(m[3]);
  }
  return values;
};
// Counters (…_total, …_sum, …_count) as after minus before; gauges as their value after.
const metricsDelta = (before, after) => Object.fromEntries(Object.keys(after).map((k) => {
  const name = k.replace(/\{.*$/, "");
  const counter = /_(total|sum|count)$/.test(name);
  const delta = counter ? after[k] - (before[k] ?? 0) : after[k];
  return [k, Number.isInteger(delta) ? delta : Number(delta.toFixed(6))];
}));
const parseRedisInfo = (text) => {
  const info = { commands: {} };
  for (const line of text.split(/\r?\n/)) {
    const cmd = line.match(/^cmdstat_([a-z|_-]+):calls=(\d+),usec=(\d+)/);
    if (cmd) { info.commands[cmd[1]] = { calls: Number(cmd[2]), usec: Number(cmd[3]) }; continue; }
    const kv = line.match(/^([a-z_]+):([0-9.]+)$/);
    if (kv) info[kv[1]] = Number(kv[2]);
  }
  return info;
};
const redisDelta = (a, b) => {
  const commands = {};
  for (const [name, c] of Object.entries(b.commands)) {
    const calls = c.calls - (a.commands[name]?.calls ?? 0), usec = c.usec - (a.commands[name]?.usec ?? 0);
    if (calls > 0) commands[name] = { calls, usec };
  }
  const d = (k) => (b[k] ?? 0) - (a[k] ?? 0);
  return { cpu_s: Number((d("used_cpu_sys") + d("used_cpu_user")).toFixed(6)),
    total_commands_processed: d("total_commands_processed"), pubsub_channels: b.pubsub_channels ?? null, commands };
};
for (const run of runs) {
  const name = run.file.replace(/\.json$/, "");
  // Whole-run counters (connect and drain included), as scenario 2 shows them.
  const before = readIfExists(path.join(resultsDir, `${name}.metrics-before.txt`));
  const after = readIfExists(path.join(resultsDir, `${name}.metrics-after.txt`));
  if (before && after) run.data.metrics_delta = metricsDelta(parseMetrics(before), parseMetrics(after));
  // Measure-window counters, scraped by the load generator's window hook (scenarios 6 and 7),
  // and the same over its idle phase (scenario 7: everyone connected, nobody clapping).
  for (const [from, to, key] of [["start", "end", "window_counters"], ["idle-start", "idle-end", "idle_counters"]]) {
    const window = {};
    for (const node of ["A", "B"]) {
      const start = readIfExists(path.join(resultsDir, `${name}.${node}.metrics-${from}.txt`));
      const end = readIfExists(path.join(resultsDir, `${name}.${node}.metrics-${to}.txt`));
      if (start && end) window[node] = metricsDelta(parseMetrics(start), parseMetrics(end));
    }
    const redisStart = readIfExists(path.join(resultsDir, `${name}.redis-${from}.txt`));
    const redisEnd = readIfExists(path.join(resultsDir, `${name}.redis-${to}.txt`));
    if (redisStart && redisEnd) window.redis = redisDelta(parseRedisInfo(redisStart), parseRedisInfo(redisEnd));
    if (Object.keys(window).length) run.data[key] = window;
  }
  // Scenario 7's one master against three: per-master figures from benchmarks/redis_spread.mjs.
  const spread = readIfExists(path.join(resultsDir, `${name}.spread.json`));
  if (spread) run.data.spread = JSON.parse(spread);
  // run.sh's phase probes (scenario 1's throttle pair): the server's CPU time and
  // /metrics before the load generator starts, when its measure window opens and
  // closes, and once every connection has closed. Stored with the run.
  const stamps = ["before", "start", "end", "after"].map((at) => {
    const cpu = readIfExists(path.join(resultsDir, `${name}.cpu-${at}.txt`));
    const metrics = readIfExists(path.join(resultsDir, `${name}.metrics-${at}.txt`));
    if (!cpu || !metrics) return null;
    const [ns, wall] = cpu.trim().split(/\s+/).map(Number);
    return { cpu_s: ns / 1e9, wall_s: wall, metrics: parseMetrics(metrics) };
  });
  if (stamps.every(Boolean)) {
    const phase = (a, b) => {
      const m = metricsDelta(a.metrics, b.metrics);
      return { wall_s: Number((b.wall_s - a.wall_s).toFixed(3)), cpu_s: Number((b.cpu_s - a.cpu_s).toFixed(4)),
        update_frames_sent: m.claps_update_frames_sent_total ?? null, update_frames_deferred: m.claps_update_frames_deferred_total ?? null,
        updates_encoded: m.claps_updates_total ?? null, ticks: m.claps_ticks_total ?? null };
    };
    run.data.phases = { join: phase(stamps[0], stamps[1]), window: phase(stamps[1], stamps[2]), leave: phase(stamps[2], stamps[3]) };
  }
}

// ---- a partial run keeps the older scenarios of DOCS_DIR/bench-results.json ----
const allParts = ["engine", "1", "2", "3", "4", "5", "6", "7", "8"];
const parts = (machine.only ?? allParts.join(",")).split(",");
const previousFile = path.join(docsDir, "bench-results.json");
if (!allParts.every((p) => parts.includes(p)) && fs.existsSync(previousFile)) {
  const previous = JSON.parse(fs.readFileSync(previousFile, "utf8"));
  const key = (r) => `${r.scenario}/${r.target}/${r.step}/${r.pair ?? 1}`;
  const measured = new Set(runs.map(key));
  for (const r of previous.runs) {
    if (parts.includes(String(r.scenario)) || measured.has(key(r))) continue;
    runs.push({ scenario: String(r.scenario), target: r.target, step: r.step, pair: r.pair ?? 1,
      file: r.file ?? (r.scenario === "engine" ? "engine.json" : `s${r.scenario}-${r.target}-${r.step}.json`),
      server_cmd: r.server_cmd, client_cmd: r.client_cmd, data: r.result, source: r.source ?? previous.machine });
  }
}
// One object per run of run.sh (carried results each parsed their own copy).
const sourceByKey = new Map();
for (const r of runs) {
  const key = `${r.source.date_utc} ${r.source.commit}`;
  if (!sourceByKey.has(key)) sourceByKey.set(key, r.source);
  r.source = sourceByKey.get(key);
}
const sources = [...sourceByKey.values()].sort((a, b) => (a.date_utc < b.date_utc ? -1 : 1));
const sourceLabel = (src) => `the run of ${src.date_utc}, commit \`${src.commit}\``;
// One line under a section's heading when the report merges several runs.
const fromRun = (sectionRuns) => {
  if (sources.length < 2) return;
  const used = [...new Set(sectionRuns.filter(Boolean).map((r) => r.source))];
  if (used.length) out(`*Measured in ${used.map(sourceLabel).join(" and ")}.*\n`);
};

const find = (scenario, target, step) => runs.find((r) => r.scenario === String(scenario) && r.target === target &&
  (step === undefined || r.step === step));
const all = (scenario, target) => runs.filter((r) => r.scenario === String(scenario) && r.target === target)
  .sort((a, b) => a.step - b.step || a.pair - b.pair);
// Every pair of one step, in the order run.sh ran them.
const pairsOf = (scenario, target, step) => all(scenario, target).filter((r) => r.step === step);
const median = (values) => {
  const v = values.filter((x) => x !== null && x !== undefined && !Number.isNaN(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
// The run whose value is the median (the lower middle one of an even count).
const medianRun = (runList, value) => {
  const v = runList.filter((r) => value(r) !== null && value(r) !== undefined).sort((a, b) => value(a) - value(b));
  return v.length ? v[Math.floor((v.length - 1) / 2)] : null;
};
// Result names, for finding a figure's command under *Exact commands*.
const runName = (r) => `\`${r.file.replace(/\.json$/, "")}\``;
const runNames = (list) => list.filter(Boolean).map(runName).join(", ");

const names = {
  clapsd: "clapsd (LMDB, fsync)",
  "clapsd-memory": "clapsd (--store memory)",
  "clapsd-noping": "clapsd, lws pings off (diagnostic)",
  "sio-coalesced": "Socket.IO 4, coalesced",
  "sio-naive": "Socket.IO 4, naive",
  floor: "send floor (sendfloor)",
  "clapsd-tick10": "clapsd (LMDB, fsync), --tick-ms 10",
  "floor-tick10": "send floor (sendfloor), --tick-ms 10",
  "clapsd-vu0": "clapsd, --viewer-updates-per-s 0 (off)",
  "clapsd-vu1": "clapsd, --viewer-updates-per-s 1",
};
const fmt = (v, digits = 1) => (v === null || v === undefined || Number.isNaN(v) ? "n/a" :
  Number(v).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }));
const int = (v) => fmt(v, 0);
const ratio = (a, b) => (a && b ? `${fmt(a / b, 2)}x` : "n/a");
const cpuPerFrame = (run) => run?.target.startsWith("floor") ? run.data.cpu_us_per_frame : run?.data.server_cpu_us_per_frame;
const status = (ok) => (ok === null ? "not measured" : ok ? "**met**" : "**missed**");

const lines = [];
const out = (s = "") => lines.push(s);
const table = (header, rows) => {
  out(`| ${header.join(" | ")} |`);
  out(`|${header.map(() => "---").join("|")}|`);
  for (const row of rows) out(`| ${row.join(" | ")} |`);
  out();
};

// ---- targets ----
// issue12: the targets of issue 12 ("fan-out at the physical limit"), as
// [target, limit, measured, status, runs]; targets: the older issues' targets
// that still stand, as [target, measured, status]. A scenario's own function
// (e.g. scenario 8's) may push its rows onto either.
const issue12 = [];
const targets = [];
// Targets of older issues that issue 12 replaced; the report lists them.
const superseded = [
  "S1: CPU per frame <= 1.2x floor from one run per step (issue 5): now the median of three interleaved pairs, at 2k, 10k and 19.9k viewers",
  "S1: p99 <= 2 ticks (50 ms) at 2k, <= 100 ms at 10k, <= 250 ms at 19.9k (issue 5): now tick + 1.1 x viewers x the floor's us per frame + 5 ms, at --tick-ms 25 and 10",
  "S4: <= 2 KiB RSS per idle subscribed connection (issue 5): now <= 1.9 KiB at 19.9k",
  "engine: >= 10M claps/s intake with a new op id on every clap (issue 11): now >= 5M/s",
];

// Scenario 1 (issue 12): per tick and step, the pairs (clapsd, sendfloor) run.sh interleaved.
const s1Ticks = [[25, "clapsd", "floor"], [10, "clapsd-tick10", "floor-tick10"]];
const s1Steps = [...new Set(all(1, "clapsd").map((r) => r.step))];
const s1Step = (tick, server, floor, step) => {
  const cs = pairsOf(1, server, step), fs_ = pairsOf(1, floor, step);
  if (!cs.length) return null;
  const floorUs = median(fs_.map(cpuPerFrame));
  // Each pair's ratio is its clapsd run over the floor run right after it.
  const ratios = cs.map((c) => {
    const f = fs_.find((x) => x.pair === c.pair);
    return f && cpuPerFrame(c) && cpuPerFrame(f) ? cpuPerFrame(c) / cpuPerFrame(f) : null;
  });
  const p99s = cs.map((c) => c.data.latency_ms.p99);
  const unseen = cs.reduce((sum, c) => sum + c.data.latency_pairs_missing, 0);
  const expected = cs.reduce((sum, c) => sum + c.data.latency_pairs_expected, 0);
  const limitMs = floorUs !== null ? tick + 1.1 * step * floorUs / 1000 + 5 : null;
  // A pair whose clapsd did not hold every viewer did not measure the step.
  const short = cs.filter((c) => c.data.connections - c.data.clappers < step)
    .map((c) => `pair ${c.pair} held ${int(c.data.connections - c.data.clappers)} viewers`);
  const shortNote = short.length ? `; **not every viewer connected**: ${short.join(", ")}` : "";
  return { tick, step, cs, fs: fs_, floorUs, ratios, ratio: median(ratios), p99s, p99: median(p99s), unseen, expected, limitMs, short, shortNote,
    medianP99Run: medianRun(cs, (c) => c.data.latency_ms.p99) };
};
const s1 = s1Ticks.flatMap(([tick, server, floor]) =>
  [...new Set(all(1, server).map((r) => r.step))].map((step) => s1Step(tick, server, floor, step)).filter(Boolean));
const list = (values, digits, unit = "") => values.map((v) => (v === null ? "n/a" : fmt(v, digits) + unit)).join(", ");
for (const st of s1) {
  const n = st.cs.length, of = n > 1 ? ` (median of ${n} pairs: ${list(st.p99s, 1)})` : "";
  issue12.push([`S1 ${int(st.step)} viewers, --tick-ms ${st.tick}: p99 clap to viewer, 0 unseen`,
    st.limitMs !== null ? `<= ${fmt(st.limitMs, 1)} ms = ${st.tick} + 1.1 x ${int(st.step)} x ${fmt(st.floorUs, 2)} us + 5` : "n/a (no floor run)",
    `p99 ${fmt(st.p99, 1)} ms${of}; ${int(st.unseen)} of ${int(st.expected)} pairs unseen${st.shortNote}`,
    status(st.limitMs !== null && st.p99 !== null ? st.p99 <= st.limitMs && st.unseen === 0 && !st.short.length : null), runNames([...st.cs, ...st.fs])]);
}
for (const st of s1.filter((x) => x.tick === 25)) {
  const n = st.cs.length;
  issue12.push([`S1 ${int(st.step)} viewers: CPU per frame / sendfloor's`, "<= 1.20x",
    `${ratio(st.ratio, 1)}${n > 1 ? ` (median of ${n} pairs: ${list(st.ratios, 2, "x")})` : ""}; clapsd ${list(st.cs.map(cpuPerFrame), 2)} us, floor ${list(st.fs.map(cpuPerFrame), 2)} us${st.shortNote}`,
    status(st.ratio !== null ? st.ratio <= 1.2 && !st.short.length : null), runNames([...st.cs, ...st.fs])]);
}
// The Socket.IO comparison (issue 5) stands: the peers run once per step, against clapsd's median pair.
for (const step of s1Steps) {
  const st = s1.find((x) => x.tick === 25 && x.step === step), s = find(1, "sio-coalesced", step);
  const cf = median(st?.cs.map(cpuPerFrame) ?? []), sf = cpuPerFrame(s), c = st?.cs[0];
  const partial = s && c && s.data.connections < 0.95 * c.data.connections
    ? ` (Socket.IO held only ${int(s.data.connections)} of ${int(s.data.connections_wanted)} connections)` : "";
  targets.push([`S1 ${int(step)} viewers: >= 3x better than coalesced Socket.IO`, sf && cf ? `${fmt(sf, 2)} us vs ${fmt(cf, 2)} us = ${ratio(sf, cf)}${partial}` : "n/a",
    status(cf && sf ? sf / cf >= 3 : null)]);
}
{
  const c = find(2, "clapsd");
  if (c) {
    const d = c.data, ticks = d.window_s * 1000 / 25;
    const perTick = d.update_frames / Math.max(1, d.viewers) / ticks;
    targets.push(["S2: at most one frame per connection per tick", `busiest connection got ${int(d.max_update_frames_per_conn)} update frames in ${fmt(d.window_s, 1)} s = ${fmt(ticks, 0)} ticks; mean ${fmt(perTick, 3)} frames per connection per tick, ${fmt(d.updates_received / Math.max(1, d.update_frames), 2)} updates per frame`,
      status(d.max_update_frames_per_conn <= Math.ceil(ticks) + 1)]);
  }
  const i = find(4, "clapsd");
  if (i) {
    const d = i.data, per = (d.server_rss_kb - d.server_rss_kb_before) / Math.max(1, d.connections);
    const at = d.viewers >= 19900 ? "" : ` (the target is at 19,900; this run had ${int(d.viewers)})`;
    issue12.push(["S4: RSS per idle subscribed connection at 19.9k", "<= 1.9 KiB", `${fmt(per, 2)} KiB per connection (${int(d.connections)} connections)${at}`,
      status(d.viewers >= 19900 ? per <= 1.9 : null), runName(i)]);
  } else {
    issue12.push(["S4: RSS per idle subscribed connection at 19.9k", "<= 1.9 KiB", "n/a", status(null), "-"]);
  }
  const l = find(3, "clapsd"), m = find(5, "clapsd-memory");
  issue12.push(["S5: fsync'd LMDB ingest / the memory store's", ">= 0.90x",
    l && m ? `${int(l.data.accepted_per_s)} vs ${int(m.data.accepted_per_s)} claps/s = ${ratio(l.data.accepted_per_s, m.data.accepted_per_s)}` : "n/a",
    status(l && m ? l.data.accepted_per_s / m.data.accepted_per_s >= 0.9 : null), runNames([l, m]) || "-"]);
  const e = find("engine", "engine");
  if (e) {
    const intake = e.data.intake.find((r) => r.store === "memory" && r.op_ids);
    const intakeLmdb = e.data.intake.find((r) => r.store === "lmdb" && r.op_ids);
    const intakeNoOps = e.data.intake.find((r) => r.store === "memory" && !r.op_ids);
    issue12.push(["engine: op-id intake on one core (memory_store, a new op id on every clap)", ">= 5M claps/s",
      `${int(intake.claps_per_s)} claps/s${intakeLmdb ? ` (lmdb_store: ${int(intakeLmdb.claps_per_s)})` : ""}`,
      status(intake.claps_per_s >= 5e6), runName(e)]);
    // engine_bench writes these once the engine accounts for its op ids.
    for (const [key, what] of [["bytes_per_live_op_id", "engine memory"], ["store_bytes_per_live_op_id", "store"]]) {
      const v = e.data[key];
      issue12.push([`engine: bytes per live op id (${what}, \`${key}\`)`, "<= 64 bytes",
        v === null || v === undefined ? "not measured (engine_bench does not write it yet)" : `${fmt(v, 1)} bytes`,
        status(v === null || v === undefined ? null : v <= 64), runName(e)]);
    }
    targets.push(["engine: >= 10M claps/s intake on one core (memory_store), claps without op ids",
      `${int(intakeNoOps.claps_per_s)} claps/s`, status(intakeNoOps.claps_per_s >= 10e6)]);
    targets.push(["engine: lmdb_store commit of a 1k-article tick < 1 ms median",
      `median ${fmt(e.data.lmdb_commit_1k.median_ms, 3)} ms, p99 ${fmt(e.data.lmdb_commit_1k.p99_ms, 3)} ms`,
      status(e.data.lmdb_commit_1k.median_ms < 1)]);
  } else {
    issue12.push(["engine: op-id intake on one core (memory_store, a new op id on every clap)", ">= 5M claps/s", "n/a", status(null), "-"]);
    for (const key of ["bytes_per_live_op_id", "store_bytes_per_live_op_id"])
      issue12.push([`engine: bytes per live op id (\`${key}\`)`, "<= 64 bytes", "n/a", status(null), "-"]);
  }
}

// ---- scenario 1's hot-article throttle (issue 12): clapsd --viewer-updates-per-s 0 and 1 ----
const throttle = (() => {
  const skipped = all(1, "throttle-skipped")[0];
  const off = all(1, "clapsd-vu0")[0], on = all(1, "clapsd-vu1")[0];
  if (!off && !on) return skipped ? { skipped } : null;
  return { off, on, viewers: (off ?? on).step };
})();
const throttlePhases = [["join", "join wave (connect and settle)"], ["window", "clap window (measured)"], ["leave", "leave wave (drain, then the viewers leave)"]];
if (throttle?.skipped) {
  issue12.push([`Hot article at ${int(throttle.skipped.step)} viewers: viewer-count-only updates at most 1/s (--viewer-updates-per-s 1)`, "measure the saving",
    throttle.skipped.data.skipped ? `skipped: ${throttle.skipped.data.skipped}` : "skipped", "not measured", runName(throttle.skipped)]);
} else if (throttle) {
  const { off, on } = throttle;
  const po = off?.data.phases, pn = on?.data.phases;
  const saving = (key) => throttlePhases.map(([p]) => `${p} ${fmt(po?.[p]?.[key], key === "cpu_s" ? 2 : 0)} -> ${fmt(pn?.[p]?.[key], key === "cpu_s" ? 2 : 0)}` +
    ` (off / 1/s = ${po?.[p]?.[key] != null && pn?.[p]?.[key] ? ratio(po[p][key], pn[p][key]) : "n/a"})`).join("; ");
  issue12.push([`Hot article at ${int(throttle.viewers)} viewers: update frames sent without -> with --viewer-updates-per-s 1`, "measure the saving",
    po && pn ? saving("update_frames_sent") : "n/a (phase probes missing)", "recorded", runNames([off, on])]);
  issue12.push([`Hot article at ${int(throttle.viewers)} viewers: server CPU s without -> with --viewer-updates-per-s 1`, "measure the saving",
    po && pn ? saving("cpu_s") : "n/a (phase probes missing)", "recorded", runNames([off, on])]);
}
// ---- scenario 8: churn of distinct users (issue 12) ----
// Step 0: nobody claps (the target); step 10: every 10th user claps once.
const s8Growth = (r) => r.data.growth_settled_mb;
{
  const c = find(8, "clapsd", 0);
  if (c) {
    const d = c.data;
    issue12.push([`churn: ${int(d.users / 1000)}k distinct users connecting and leaving: RSS growth over the warmed-up baseline`, "<= 10 MB",
      `${fmt(s8Growth(c), 2)} MiB after ${int(d.users - d.baseline_users)} users past the baseline of ${int(d.baseline_users)} ` +
      `(${fmt(d.bytes_per_user, 1)} B per user), ${int(d.failed)} failed`,
      status(d.failed === 0 && s8Growth(c) <= 10), runName(c)]);
  }
}
const s8Section = () => {
  const rows = all(8, "clapsd");
  if (!rows.length) return;
  out("## Scenario 8: churn of distinct users");
  out();
  fromRun(rows);
  out("Distinct users (`churn-<pid>-<n>`) each connect, subscribe to 2 of 1k articles and leave, at most " +
    `${int(rows[0].data.concurrency)} connected at once (\`benchmarks/churn.mjs\`). clapsd's RSS is sampled with nobody connected: ` +
    "after the first users (the warmed-up baseline), at the end, and after a settle. Growth is settled RSS minus the baseline. " +
    "With claps, each clap's op id stays in memory for the op-id window (15 minutes) by design.");
  out();
  table(["Who claps", "Users", "Baseline after", "Users/s", "RSS baseline MiB", "RSS end MiB", "RSS settled MiB", "Growth MiB", "B per user", "Tallies cached (settled)", "Failed"],
    rows.map((r) => {
      const d = r.data;
      return [d.clap_every ? `every ${int(d.clap_every)}th user, once` : "nobody", int(d.users), int(d.baseline_users), int(d.users_per_s),
        fmt(d.rss_baseline_kb / 1024, 1), fmt(d.rss_end_kb / 1024, 1), fmt(d.rss_settled_kb / 1024, 1), fmt(s8Growth(r), 2),
        fmt(d.bytes_per_user, 1), d.gauges_settled?.claps_tallies_cached ?? "n/a", int(d.failed)];
    }));
};

// ---- scenario 7: the cluster write path (issue 10) ----
const tickMs = 25;
const s7Limits = { redisUsPerClap: 20, commandsPerClap: 8, nodeRatio: 1.3, latencyP99Ms: 2 * tickMs + 10 };
// The window hook's own INFO calls are the measuring tool's, not the cluster's.
const ownCommands = new Set(["info"]);
const procOf = (run, name) => (run?.data.servers ?? []).find((p) => p.name === name);
// Claps acknowledged as accepted within the measure window (the load generator's count).
const ackedIn = (run) => (run ? Math.round(run.data.accepted_per_s * run.data.window_s) : 0);
const redisCommandsPerClap = (run) => {
  const cmds = run?.data.window_counters?.redis?.commands, claps = ackedIn(run);
  if (!cmds || !claps) return null;
  return Object.entries(cmds).filter(([n]) => !ownCommands.has(n)).reduce((sum, [, c]) => sum + c.calls, 0) / claps;
};
// One round of scenario 7: *cross* and *single* measured one after the other.
const s7Round = (cross, single) => {
  const f = { cross, single, round: (cross ?? single).step };
  if (single) {
    const a = procOf(single, "A");
    f.singleClaps = ackedIn(single);
    f.singleUsPerClap = a?.cpu_s != null && f.singleClaps ? a.cpu_s * 1e6 / f.singleClaps : null;
  }
  if (cross) {
    const d = cross.data, w = d.window_s, claps = ackedIn(cross), idleS = d.idle_window_s || 0;
    const redis = procOf(cross, "redis"), A = procOf(cross, "A"), B = procOf(cross, "B");
    const per = (v) => (v !== null && v !== undefined && claps ? v * 1e6 / claps : null);
    Object.assign(f, { claps, window: w, idleS });
    f.redisCpuPct = redis?.cpu_s != null ? redis.cpu_s / w * 100 : null;
    f.redisUsPerClap = per(redis?.cpu_s);
    if (redis?.idle_cpu_s != null && idleS) {
      f.redisIdleCpuPct = redis.idle_cpu_s / idleS * 100;
      f.redisNetUsPerClap = per(redis.cpu_s - redis.idle_cpu_s / idleS * w);
    }
    f.aUsPerClap = per(A?.cpu_s);
    f.bUsPerClap = per(B?.cpu_s);
    f.abUsPerClap = A?.cpu_s != null && B?.cpu_s != null ? per(A.cpu_s + B.cpu_s) : null;
    const cmds = d.window_counters?.redis?.commands, idleCmds = d.idle_counters?.redis?.commands;
    if (cmds && claps) {
      const haveIdle = Boolean(idleCmds && idleS);
      const names = [...new Set([...Object.keys(cmds), ...Object.keys(idleCmds ?? {})])].filter((n) => !ownCommands.has(n));
      f.commands = names.map((n) => {
        const calls = cmds[n]?.calls ?? 0, usec = cmds[n]?.usec ?? 0;
        const idleCalls = haveIdle ? idleCmds[n]?.calls ?? 0 : null;
        return { name: n, calls, usec, perClap: calls / claps, idleCalls,
          backgroundPerClap: haveIdle ? idleCalls / idleS * w / claps : null, usPerCall: calls ? usec / calls : null };
      }).sort((x, y) => y.calls - x.calls || (x.name < y.name ? -1 : 1));
      f.commandsPerClap = f.commands.reduce((sum, c) => sum + c.calls, 0) / claps;
      f.usecInCommandsPerClap = f.commands.reduce((sum, c) => sum + c.usec, 0) / claps;
      if (haveIdle) {
        f.idleCommandsPerS = f.commands.reduce((sum, c) => sum + c.idleCalls, 0) / idleS;
        f.backgroundPerClap = f.commands.reduce((sum, c) => sum + c.backgroundPerClap, 0);
        f.netCommandsPerClap = f.commandsPerClap - f.backgroundPerClap;
      }
    }
    if (d.window_counters?.A && d.window_counters?.B && claps)
      f.requestsPerClap = ["A", "B"].reduce((sum, n) => sum + (d.window_counters[n].claps_redis_requests_total ?? 0), 0) / claps;
    f.latency = d.latency_ms;
    f.missing = d.latency_pairs_missing;
    f.pairs = d.latency_pairs_expected;
  }
  return f;
};
// Rounds repeat *single* and *cross* (run.sh alternates them). Other jobs on
// the cores only ever add CPU time and stalls, so the CPU figures take each
// process's lowest per-clap cost over the rounds and the latency the round with
// the lower p99; commands per clap (which noise does not move) take the highest.
// Every round's figures are listed too.
const s7 = (() => {
  const steps = all(7, "rate");
  const roundKeys = [...new Set([...all(7, "cross"), ...all(7, "single")].map((r) => r.step))].sort((a, b) => a - b);
  if (!roundKeys.length && !steps.length) return null;
  const rounds = roundKeys.map((k) => s7Round(find(7, "cross", k), find(7, "single", k)));
  const pick = (key, agg) => {
    const values = rounds.map((r) => r[key]).filter((v) => v !== null && v !== undefined);
    return values.length ? agg(...values) : null;
  };
  const f = { rounds, cross: rounds.find((r) => r.cross)?.cross, single: rounds.find((r) => r.single)?.single };
  for (const key of ["redisUsPerClap", "redisNetUsPerClap", "bUsPerClap", "aUsPerClap", "abUsPerClap", "singleUsPerClap", "redisCpuPct", "redisIdleCpuPct"])
    f[key] = pick(key, Math.min);
  for (const key of ["commandsPerClap", "netCommandsPerClap", "backgroundPerClap", "requestsPerClap", "usecInCommandsPerClap", "idleCommandsPerS"])
    f[key] = pick(key, Math.max);
  // The breakdown table and the latency come from one round each: the most commands per clap, and the lower p99.
  f.breakdown = rounds.filter((r) => r.commands).sort((a, b) => b.commandsPerClap - a.commandsPerClap)[0] ?? null;
  f.latencyRound = rounds.filter((r) => r.latency).sort((a, b) => a.latency.p99 - b.latency.p99)[0] ?? null;
  f.missing = rounds.reduce((sum, r) => sum + (r.missing ?? 0), 0);
  f.ratio = f.bUsPerClap && f.singleUsPerClap ? f.bUsPerClap / f.singleUsPerClap : null;
  // The rate steps: run.sh stops at the first one not sustained, so the last good is the one before it.
  // A step not sustained ran once more (rate-again); it counts as sustained when either try was.
  f.steps = steps.map((first) => {
    const again = find(7, "rate-again", first.step);
    const tries = [first, again].filter(Boolean).map((run) => ({ run, again: run === again, ...judgeStep(run.data) }));
    const good = tries.find((t) => t.ok);
    return { rate: first.step, tries, ok: Boolean(good), run: (good ?? tries[tries.length - 1]).run,
      reasons: tries.filter((t) => !t.ok).flatMap((t) => t.reasons.map((why) => (tries.length > 1 ? `${t.again ? "second" : "first"} try: ${why}` : why))) };
  });
  f.firstBad = f.steps.find((st) => !st.ok) ?? null;
  f.lastGood = [...f.steps].reverse().find((st) => st.ok && (!f.firstBad || st.rate < f.firstBad.rate)) ?? null;
  return f;
})();
// "a (rounds: a, b)" when there are several rounds.
const perRound = (key, digits, unit = "") => (s7 && s7.rounds.length > 1
  ? ` (rounds: ${s7.rounds.map((r) => (r[key] == null ? "n/a" : fmt(r[key], digits) + unit)).join(", ")})` : "");
const s7Sustained = () => {
  if (!s7?.steps.length) return "n/a";
  const good = s7.lastGood, bad = s7.firstBad;
  const goodText = good ? `${int(good.rate)} claps/s (accepted ${int(good.run.data.accepted_per_s)}/s, ack p99 ${fmt(good.run.data.ack_latency_ms.p99)} ms` +
    `${good.tries.length > 1 ? ", at the second try" : ""})`
    : `below ${int(s7.steps[0].rate)} claps/s`;
  const badText = bad ? `; ${int(bad.rate)} claps/s not sustained: ${bad.reasons.join("; ")}` : "; every step sustained, so the figure is a lower bound";
  return goodText + badText;
};
if (s7) {
  const f = s7, lat = f.latencyRound;
  if (f.cross) {
    const lowest = f.rounds.length > 1 ? `lowest of ${f.rounds.length} rounds: ` : "";
    targets.push([`S7: Redis CPU per acknowledged clap <= ${s7Limits.redisUsPerClap} us (1k claps/s, two nodes)`,
      f.redisUsPerClap !== null ? `${lowest}${fmt(f.redisUsPerClap, 1)} us` + (f.redisNetUsPerClap != null ? ` (${fmt(f.redisNetUsPerClap, 1)} us without the idle background)` : "") : "n/a",
      status(f.redisUsPerClap !== null ? f.redisUsPerClap <= s7Limits.redisUsPerClap : null)]);
    targets.push([`S7: Redis commands per clap <= ${s7Limits.commandsPerClap} (EVALSHA and the commands its scripts run)`,
      f.commandsPerClap != null ? `${fmt(f.commandsPerClap, 1)}` + (f.netCommandsPerClap != null ? ` (${fmt(f.netCommandsPerClap, 1)} without the idle background)` : "") : "n/a",
      status(f.commandsPerClap != null ? f.commandsPerClap <= s7Limits.commandsPerClap : null)]);
    targets.push([`S7: clapping node's CPU per clap <= ${s7Limits.nodeRatio}x a single node's`,
      f.ratio !== null ? `${lowest}${fmt(f.bUsPerClap, 1)} us vs ${fmt(f.singleUsPerClap, 1)} us = ${ratio(f.bUsPerClap, f.singleUsPerClap)}` : "n/a",
      status(f.ratio !== null ? f.ratio <= s7Limits.nodeRatio : null)]);
    targets.push([`S7: cross-node clap-to-viewer p99 <= 2 ticks + 10 ms (${s7Limits.latencyP99Ms} ms)`,
      lat ? `p50 ${fmt(lat.latency.p50)} / p99 ${fmt(lat.latency.p99)} ms${f.rounds.length > 1 ? " (the round with the lower p99)" : ""}, ${int(f.missing)} pairs unseen` : "n/a",
      status(lat ? lat.latency.p99 <= s7Limits.latencyP99Ms && f.missing === 0 : null)]);
  }
  if (f.steps.length)
    targets.push([`S7: claps/s two nodes on one Redis sustain with ack p99 <= ${ackP99LimitMs} ms (new figure, no target yet)`, s7Sustained(), "recorded"]);
}

// Scenario 7, one Redis master against a Redis Cluster of three (issue 13):
// the same load on both; every master's keys and commands within ±20% of the mean.
const s7Spread = (() => {
  const one = all(7, "spread-one").at(-1), cluster = all(7, "spread-cluster").at(-1);
  if (!one?.data.spread && !cluster?.data.spread) return null;
  return { one, cluster, oneS: one?.data.spread ?? null, clusterS: cluster?.data.spread ?? null };
})();
const evalshaPerClap = (sp) => (sp.claps ? sp.masters.reduce((sum, m) => sum + (m.commands_by_name?.evalsha ?? 0), 0) / sp.claps : null);
const spreadVerdict = (sp) => (sp ? sp.keys_within && sp.commands_within : null);
if (s7Spread?.clusterS) {
  const c = s7Spread.clusterS, o = s7Spread.oneS;
  const dev = (key) => fmt(Math.max(...c.masters.map((m) => Math.abs(m[key]) * 100)), 1);
  targets.push([`S7: 3 Redis masters, every master's keys and commands within ±${fmt(c.tolerance * 100, 0)}% of the mean (${int(c.articles)} articles)`,
    `keys at most ${dev("keys_vs_mean")}% off, commands at most ${dev("commands_vs_mean")}% off; Redis CPU per clap ${c.masters.map((m) => fmt(m.us_per_clap, 1)).join(" / ")} us per master` +
    (o ? ` against ${fmt(o.us_per_clap, 1)} us on one master` : ""),
    status(spreadVerdict(c))]);
}

// ---- document ----
out("# Benchmarks");
out();
// The command that measured a run (run.sh records its arguments and whether make called it).
const commandOf = (src) => {
  if (src.args === undefined) return "`make bench` (`benchmarks/run.sh`)";
  const runSh = `\`benchmarks/run.sh ${src.args}\``;
  return src.via_make === "1" ? `\`make bench\` (${runSh})` : runSh;
};
if (sources.length < 2) {
  out(`Generated by ${commandOf(machine)} on ${machine.date_utc}, commit \`${machine.commit}\`; ` +
    `the whole run took ${machine.elapsed_s} s. Do not edit by hand: rerun \`make bench\`.`);
} else {
  out(`Generated by \`benchmarks/run.sh\` from ${sources.length} runs: the latest (\`--only ${machine.only}\`) measured only some scenarios, ` +
    "and the others are kept from the run that last measured them (`docs/bench-results.json` records each result's run). " +
    "Every section names its run. Do not edit by hand: `make bench` measures everything again in one run.");
  out();
  table(["Run (UTC)", "Commit", "Command", "Scenarios", "Took", "nice", "Load average (start / end)"], sources.map((src) => [src.date_utc, `\`${src.commit}\``, commandOf(src),
    [...new Set(runs.filter((r) => r.source === src).map((r) => r.scenario))].join(", "), `${src.elapsed_s} s`, src.nice ?? "0",
    `${src.loadavg_start} / ${src.loadavg_end}`]));
  lines.pop();  // the table's own blank line; one follows below
}
if (machine.quick === "1") out("\n> **Quick mode** (`run.sh --quick`): small steps and short runs, for checking the pipeline only.");
out();
out("## Targets");
out();
out("### Issue 12: fan-out at the physical limit");
out();
out("Scenario 1 runs each step as " + (s1[0] ? `${s1[0].cs.length} interleaved pair${s1[0].cs.length === 1 ? "" : "s"}` : "interleaved pairs") + " (a clapsd run, then a `sendfloor` run at the same connection count and tick). " +
  "The p99 limit of a step is tick + 1.1 x viewers x the floor's CPU us per frame (the median of that step's floor runs) + 5 ms; the measured p99 is the median of the step's clapsd runs, " +
  "and *unseen* sums their (clap, viewer) pairs never seen. CPU per frame / sendfloor's is the median of the pairs' ratios. " +
  "*Runs* name the result files; their commands are under *Exact commands*.");
out();
table(["Target", "Limit", "Measured", "Status", "Runs"], issue12);
out("### Older issues' targets that still stand");
out();
table(["Target (issue 2 / issue 5 / issue 10 / issue 11)", "Measured", "Status"], targets);
out("Replaced by issue 12's (and no longer shown): " + superseded.map((t) => `${t}.`).join(" "));
out();

const findings = path.join(here, "findings.md");
if (fs.existsSync(findings)) {
  out(fs.readFileSync(findings, "utf8").trim());
  out();
}

out("## Machine and method");
out();
table(["", ""], [
  ["CPU", `${machine.cpu}, ${machine.cores} cores (shared with other workloads)`],
  ["Memory", machine.memory], ["OS / kernel", `${machine.os} / ${machine.kernel}`],
  ["libwebsockets", machine.lws], ["Node.js / Socket.IO", `${machine.node} / ${machine.socketio}`],
  ["Build type", machine.build_type || "unknown"],
  ...(sources.length < 2 ? [["Load average", `${machine.loadavg_start} at start, ${machine.loadavg_end} at end`]] : []),
  ...(find(6, "cross") || find(7, "cross") ? [["Redis (scenarios 6 and 7)", `${machine.redis ?? "unknown"}, appendonly ${machine.redis_appendonly === "everysec" ? "yes, fsync every second" : "no"}, no snapshots`]] : []),
]);
out("- **Pinning.** Every server (clapsd, the Socket.IO peer, sendfloor's sender) runs on core 0 and the load generator (and sendfloor's receiver) on core 1, with `taskset`. Each step starts a fresh server with a fresh data directory." +
  (machine.nice && machine.nice !== "0" ? ` All of them ran at \`nice -n ${machine.nice}\` (\`run.sh --nice ${machine.nice}\`), so that other jobs sharing the cores took less of them; every target got the same treatment.` : "") +
  (find(6, "cross") || find(7, "cross") ? " In scenarios 6 and 7 both nodes and Redis share core 0." : ""));
out("- **Same load, same tool.** `claps-loadgen` (epoll, one thread) drives clapsd with its JSON protocol and the peers with Engine.IO v4 / Socket.IO v5 framing over WebSocket (websocket transport only). Viewers connect first (at most 256 handshakes in flight), then the run settles for a moment before the measured window starts.");
out("- **Users.** Clappers rotate users (`lg-<pid>-<clapper>-<n>`) after 45 claps on one article, so nobody reaches the cap of 50, and stay under 19 claps/s per connection (clapsd's default limit is 20/s). Only scenario 3 and 5 raise `--rate-limit`.");
out("- **Latency.** From the moment a clap is written to its socket until a viewer receives a total that includes it. Every ack carries the committed total after the clap's batch (T); totals only grow, so a viewer has seen the clap when it receives a total >= T. Coalescing servers skip intermediate totals, which this handles. Each (clap, viewer) pair is one sample; pairs never seen are reported as *unseen*.");
out("- **Server CPU.** The run time of all the server's threads over the measured window, from `/proc/<pid>/task/*/schedstat` (ns; runs before scenario 6 was added read the same total as `utime + stime` from `/proc/<pid>/stat`, in 10 ms ticks). *CPU per frame* divides it by every WebSocket message the load generator received in the window. Loopback delivery runs in the sender's context, so this includes the kernel's work for the receiving side too, exactly as in the floor.");
out("- **System calls.** `perf stat -e raw_syscalls:sys_enter -p <pid>` over the window (a tracepoint counter; `strace -c` would stop the server on every call).");
out("- **The floor.** `sendfloor` writes the same 78-byte WebSocket frame (a one-article counts update) over the same number of loopback TCP connections, one `send()` per frame, one round per 25 ms tick (back to back once a round takes longer than a tick, as clapsd's rounds do), and reports the sender's CPU per frame (getrusage). Its receiver, like the load generator, runs on the other core.");
out("- **Load generator headroom.** *Loadgen CPU %* is the load generator's own CPU over the window; most of it is the kernel's receive path (recv, and ACKs that loopback processes in the receiver's context). Below about 90% it is not what limits a run.");
out("- **Noise.** The machine has 2 cores shared with other jobs, so absolute numbers move between runs; the ratios, measured side by side in one run, are the result.");
out();

// Engine
const engine = find("engine", "engine");
if (engine) {
  out("## libclaps engine (in-process)");
  out();
  fromRun([engine]);
  out("`engine_bench`, pinned to one core, timed in thread CPU time (so other jobs' slices do not count). Intake counts whole `clap()` calls (id validation, cap lookup, op-id check) from 1k users over 100 articles (100k user-article pairs, each far below the cap); a tick runs every 50k claps and is timed apart. With op ids, every clap carries a new one, so each call also misses the op-id cache and asks the store. Fan-out delivers to 10k in-memory subscribers over 1k articles: *uniform* is 10 subscribers per article with all 1k articles changed each tick, *hot* is all 10k on one article, *timeline* is 50 articles per subscriber. A delivery builds the subscriber's frame from the shared per-article encodings.");
  out();
  table(["Store", "Op ids", "Claps", "clap() calls/s", "Including ticks/s"], engine.data.intake.map((r) =>
    [r.store, r.op_ids ? "yes" : "no", int(r.claps), int(r.claps_per_s), int(r.claps_per_s_including_ticks)]));
  table(["Store", "Layout", "Deliveries/s", "Updates/s", "Tick CPU p50 ms", "Tick CPU p99 ms", "Tick wall p50 ms"], engine.data.fanout.map((r) =>
    [r.store, r.layout, int(r.deliveries_per_s), int(r.updates_per_s), fmt(r.tick_ms_p50, 3), fmt(r.tick_ms_p99, 3), fmt(r.wall_tick_ms_p50, 3)]));
  out("lmdb_store commits of one 1k-article tick, wall time (waiting for fsync is the cost). The first row is the tick clapsd writes when every clap carries an op id; the others split its cost. Each commit inserts new keys (fresh users and op ids), the expensive case for a B-tree.");
  out();
  table(["Commit", "Median ms", "p99 ms", "Commits"], (engine.data.lmdb_commit_variants ?? [engine.data.lmdb_commit_1k]).map((c) =>
    [c.variant ?? "full tick", fmt(c.median_ms, 3), fmt(c.p99_ms, 3), int(c.commits)]));
}

// Scenario 1
const s1Row = (r, label, floorFrame, clapsdFrame) => {
  const d = r.data;
  if (r.target.startsWith("floor"))
    return [label, int(d.connections), int(d.frames_per_s), "-", "-", "-", "-", "-", "-", fmt(d.cpu_pct, 0), fmt(d.cpu_us_per_frame, 2), "1.00x", "-", "-", "-"];
  const l = d.latency_ms;
  return [label, int(d.connections), int(d.frames_per_s), fmt(l.p50), fmt(l.p90), fmt(l.p99), fmt(l.p999), fmt(l.max),
    int(d.latency_pairs_missing), fmt(d.server_cpu_pct, 0), fmt(d.server_cpu_us_per_frame, 2),
    ratio(d.server_cpu_us_per_frame, floorFrame), fmt(d.syscalls_per_frame, 2),
    r.target.startsWith("clapsd") ? "-" : ratio(d.server_cpu_us_per_frame, clapsdFrame), fmt(d.loadgen_cpu_pct, 0)];
};
const s1Header = ["Run", "Conns", "Frames/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "Unseen pairs", "CPU %", "CPU us/frame", "x floor", "Syscalls/frame", "Socket.IO / clapsd", "Loadgen CPU %"];
if (s1.length) {
  const s1Runs = runs.filter((r) => r.scenario === "1");
  const c0 = s1[0].cs[0].data;
  out("## Scenario 1: hot-article fan-out");
  out();
  fromRun(s1Runs);
  out(`One article, ${int(c0.clap_rate)} claps/s from ${int(c0.clappers)} publishers, viewers at each step; clapsd with LMDB and fsync. ` +
    `At each step run.sh runs ${s1[0].cs.length} pair${s1[0].cs.length === 1 ? "" : "s"} back to back: clapsd (*pair n*), then \`sendfloor\` at the same connection count and tick (the floor of *pair n*), ` +
    "so that drift in what other jobs take from the shared cores lands on both halves of a pair. *x floor* is a clapsd run's CPU per frame over its own pair's floor; " +
    "*Socket.IO / clapsd* is a peer's CPU per frame over clapsd's median. The Socket.IO peers (a comparison, not a target) run once per step, at the 25 ms tick.");
  out();
  for (const [tick, server] of s1Ticks) {
    const steps = s1.filter((st) => st.tick === tick);
    if (!steps.length) continue;
    out(`### --tick-ms ${tick} (${fmt(1000 / tick, 0)} frames/s per viewer demanded)`);
    out();
    table(["Viewers", "Pairs", "p99 ms (median; each pair)", "p99 limit ms", "Unseen pairs", "Floor us/frame (median)", "clapsd us/frame (each pair)", "x floor (median; each pair)", "Status (p99)"],
      steps.map((st) => [int(st.step), int(st.cs.length), `${fmt(st.p99)}; ${list(st.p99s, 1)}`, fmt(st.limitMs, 1), int(st.unseen), fmt(st.floorUs, 2),
        list(st.cs.map(cpuPerFrame), 2), `${ratio(st.ratio, 1)}; ${list(st.ratios, 2, "x")}`,
        status(st.limitMs !== null && st.p99 !== null ? st.p99 <= st.limitMs && st.unseen === 0 && !st.short.length : null)]));
    for (const st of steps) {
      out(`#### ${int(st.step)} viewers, --tick-ms ${tick}`);
      out();
      const rows = [];
      const clapsdFrame = median(st.cs.map(cpuPerFrame));
      for (const c of st.cs) {
        const f = st.fs.find((x) => x.pair === c.pair);
        rows.push(s1Row(c, `${names[server]}, pair ${c.pair}`, cpuPerFrame(f), null));
        if (f) rows.push(s1Row(f, `floor, pair ${f.pair}`, null, null));
      }
      if (tick === 25)
        for (const target of ["clapsd-noping", "sio-coalesced", "sio-naive"]) {
          const r = find(1, target, st.step);
          if (r) rows.push(s1Row(r, names[target], st.floorUs, clapsdFrame));
        }
      table(s1Header, rows);
    }
  }
  out("![Latency CDF](bench-latency-cdf.png)");
  out();
  out("![p99 latency against viewers](bench-p99-vs-viewers.png) ![CPU per frame against viewers](bench-cpu-per-frame.png)");
  out();
  out("The plots show, for clapsd, the pair with the median p99 (CDF, p99) and the median CPU per frame, and place each server at the number of viewers it actually held (the coalesced Socket.IO peer held fewer than the larger steps asked for; see *Conns*).");
  out();
}

// The hot-article throttle (issue 12)
if (throttle) {
  out("## Hot article: viewer-count updates at most once a second");
  out();
  fromRun(runs.filter((r) => r.scenario === "1" && (r.target.startsWith("clapsd-vu") || r.target === "throttle-skipped")));
  if (throttle.skipped) {
    out(`Not measured: ${throttle.skipped.data.skipped ?? "skipped"}. run.sh runs this pair only when \`clapsd --help\` lists \`--viewer-updates-per-s\`.`);
    out();
  } else {
    const { off, on } = throttle, d0 = (off ?? on).data;
    out(`Scenario 1's load at ${int(throttle.viewers)} viewers (one article, ${int(d0.clap_rate)} claps/s from ${int(d0.clappers)} publishers, --tick-ms 25), ` +
      "run twice side by side: clapsd with `--viewer-updates-per-s 0` (every change goes out in the next tick) and with `--viewer-updates-per-s 1` " +
      "(a change that only moves the viewer count goes out at most once a second per article). " +
      `Viewers join evenly over ${fmt(d0.ramp_s, 0)} s (\`--ramp\`) and, after the drain, leave evenly over ${fmt(d0.leave_s, 0)} s (\`--leave\`), so the count moves every tick in both waves. ` +
      "run.sh reads the server's CPU time (all threads, `/proc/<pid>/task/*/schedstat`) and `/metrics` before the load generator starts, when its measure window opens and closes (its window hook), " +
      "and once `/metrics` shows no open connection after it exits: the *join wave* is connect plus settle, the *leave wave* the drain plus the server closing every connection. " +
      "*Frames sent* is `claps_update_frames_sent_total` over the phase.");
    out();
    const rows = [];
    for (const [p, label] of throttlePhases) {
      const a = off?.data.phases?.[p], b = on?.data.phases?.[p];
      rows.push([label, `${fmt(a?.wall_s, 1)} / ${fmt(b?.wall_s, 1)}`, int(a?.update_frames_sent), int(b?.update_frames_sent),
        a && b ? ratio(a.update_frames_sent, b.update_frames_sent) : "n/a", fmt(a?.cpu_s, 2), fmt(b?.cpu_s, 2), a && b ? ratio(a.cpu_s, b.cpu_s) : "n/a",
        `${int(a?.updates_encoded)} / ${int(b?.updates_encoded)}`]);
    }
    table(["Phase", "Seconds (off / 1/s)", "Frames sent, off", "Frames sent, 1/s", "Frames off / 1/s", "Server CPU s, off", "Server CPU s, 1/s", "CPU off / 1/s", "Updates encoded (off / 1/s)"], rows);
    const rows2 = [off, on].filter(Boolean).map((r) => [names[r.target], int(r.data.connections), fmt(r.data.connect_s, 2), fmt(r.data.latency_ms.p50), fmt(r.data.latency_ms.p99),
      int(r.data.latency_pairs_missing), fmt(r.data.server_cpu_us_per_frame, 2), int(r.data.update_frames), int(r.data.errors)]);
    out("The measure window as the load generator saw it:");
    out();
    table(["Run", "Conns", "Connect s", "p50 ms", "p99 ms", "Unseen pairs", "CPU us/frame", "Update frames received", "Errors"], rows2);
  }
}

// Scenario 2
if (find(2, "clapsd") || find(2, "sio-coalesced")) {
  out("## Scenario 2: timeline");
  out();
  fromRun(runs.filter((r) => r.scenario === "2"));
  const floorFrame = cpuPerFrame(find(2, "floor"));
  const rows = [];
  for (const target of ["clapsd", "sio-coalesced", "floor"]) {
    const r = find(2, target);
    if (!r) continue;
    const d = r.data;
    if (target === "floor") {
      rows.push([names[target], int(d.connections), int(d.frames_per_s), "-", "-", "-", "-", "-", "-", fmt(d.cpu_us_per_frame, 2), "-", "-"]);
      continue;
    }
    const ticks = d.window_s * 1000 / 25;
    rows.push([names[target], int(d.connections), int(d.frames_per_s), int(d.updates_per_s), fmt(d.updates_received / Math.max(1, d.update_frames), 2),
      fmt(d.update_frames / Math.max(1, d.viewers) / ticks, 3), `${int(d.max_update_frames_per_conn)} / ${fmt(ticks, 0)}`, int(d.sub_tick_pairs), fmt(d.latency_ms.p99),
      fmt(d.server_cpu_us_per_frame, 2), fmt(d.server_cpu_s * 1e6 / Math.max(1, d.updates_received), 3), ratio(d.server_cpu_us_per_frame, floorFrame)]);
  }
  const d = (find(2, "clapsd") ?? find(2, "sio-coalesced")).data;
  out(`${int(d.viewers)} connections, each subscribed to ${d.subscriptions_per_conn} of ${int(d.articles)} articles; ${int(d.clap_rate)} claps/s from ${int(d.clappers)} clappers spread uniformly over all articles. *Frames per conn per tick* divides the update frames by connections and by 25 ms ticks in the window; *busiest conn* compares the most update frames any one connection received in the window with the number of ticks in it; *close pairs* counts two updates on one connection less than half a tick apart (a delayed tick followed by an on-time one also counts, so this is a hint, not a proof).`);
  out();
  table(["Server", "Conns", "Frames/s", "Updates/s", "Updates/frame", "Frames per conn per tick", "Busiest conn: frames / ticks", "Close pairs", "p99 ms", "CPU us/frame", "CPU us/update", "x floor"], rows);
  // The tick, frame and commit counters of the whole run (stored with the run, so a carried-over run keeps them).
  const metricDelta = (run) => Object.entries(run.data.metrics_delta ?? {})
    .filter(([k]) => /^claps_[a-z_]*(tick|frame|commit)[a-z_]*(\{|$)/.test(k))
    .map(([k, v]) => [k, Number.isInteger(v) ? int(v) : fmt(v, 4)]);
  const c = find(2, "clapsd");
  const deltas = c ? metricDelta(c) : [];
  if (deltas.length) {
    out("clapsd's own counters over the same run (`/metrics`, after minus before; includes connect and drain):");
    out();
    table(["Metric", "Delta"], deltas);
  }
}

// Scenarios 3 and 5
if (find(3, "clapsd") || find(5, "clapsd-memory")) {
  out("## Scenario 3: ingest, and scenario 5: durability cost");
  out();
  fromRun(runs.filter((r) => r.scenario === "3" || r.scenario === "5"));
  const r0 = (find(3, "clapsd") ?? find(5, "clapsd-memory")).data;
  out(`${int(r0.clappers)} clappers, each keeping ${32} claps in flight (a new clap for every ack), over ${int(r0.articles)} articles, no viewers. clapsd runs with \`--rate-limit 1000000 --rate-burst 1000000\` (the only scenarios that raise it). Users rotate before the cap, so every clap is accepted; *accepted/s* counts only accepted claps acknowledged within the window.`);
  out();
  const base = find(3, "clapsd")?.data.accepted_per_s;
  const rows = [];
  for (const [scenario, target] of [[3, "clapsd"], [5, "clapsd-memory"], [3, "sio-coalesced"], [3, "sio-naive"]]) {
    const r = find(scenario, target);
    if (!r) continue;
    const d = r.data;
    rows.push([names[target], int(d.accepted_per_s), base ? ratio(d.accepted_per_s, base) : "n/a", fmt(d.ack_latency_ms.p50), fmt(d.ack_latency_ms.p99),
      fmt(d.server_cpu_pct, 0), d.accepted_per_s ? fmt(d.server_cpu_s * 1e6 / (d.accepted_per_s * d.window_s), 2) : "n/a",
      int(d.claps_refused_by_cap), int(d.errors)]);
  }
  table(["Server", "Accepted claps/s", "vs clapsd LMDB", "Ack p50 ms", "Ack p99 ms", "CPU %", "CPU us/clap", "Zero-accepted acks", "Errors"], rows);
}

// Scenario 4
if (find(4, "clapsd") || find(4, "sio-coalesced")) {
  out("## Scenario 4: idle connections");
  out();
  fromRun(runs.filter((r) => r.scenario === "4"));
  const rows = [];
  for (const target of ["clapsd", "sio-coalesced"]) {
    const r = find(4, target);
    if (!r) continue;
    const d = r.data;
    const per = (d.server_rss_kb - d.server_rss_kb_before) / Math.max(1, d.connections);
    rows.push([names[target], int(d.connections), fmt(d.connect_s, 2), int(d.connect_rate), int(d.server_rss_kb_before / 1024), int(d.server_rss_kb / 1024), fmt(per, 2), int(d.errors)]);
  }
  rows.push(["Centrifugo (published)", "-", "-", "-", "-", "-", "about 30", "-"]);
  rows.push(["Phoenix channels (published)", "-", "-", "-", "-", "-", "about 33", "-"]);
  out("Subscribed viewers spread uniformly over 1k articles (each connection watches one), nobody claps. RSS per connection is (RSS after connecting - RSS before) / connections.");
  out();
  table(["Server", "Connections", "Connect s", "Connects/s", "RSS before MiB", "RSS after MiB", "KiB per connection", "Errors"], rows);
  out("![RSS against connections](bench-rss-vs-connections.png)");
  out();
}

// Scenario 6
const s6Runs = runs.filter((r) => r.scenario === "6");
if (s6Runs.length) {
  out("## Scenario 6: two nodes on one Redis");
  out();
  fromRun(s6Runs);
  // Endpoints are in the load generator's order: node A's URL first (--url A), then B's.
  const figures = (run) => {
    if (!run) return null;
    const d = run.data, w = d.window_s, counters = d.window_counters ?? {};
    const proc = Object.fromEntries((d.servers ?? []).map((p) => [p.name, p]));
    const per = (cpu, count) => (cpu !== null && cpu !== undefined && count ? cpu * 1e6 / count : null);
    const nodes = ["A", "B"].filter((n) => proc[n]).map((n, i) => {
      const e = d.endpoints?.[i] ?? {}, m = counters[n] ?? {}, cpu = proc[n].cpu_s;
      const received = m.claps_cluster_remote_messages_total ?? 0, published = m.claps_cluster_published_total ?? 0;
      const claps = m.claps_claps_accepted_total ?? 0;
      return { name: n, viewers: e.viewers ?? 0, clappers: e.clappers ?? 0, cpu, cpuPct: cpu / w * 100,
        frames: e.frames_received ?? 0, framesPerS: (e.frames_received ?? 0) / w, usPerFrame: per(cpu, e.frames_received),
        received, receivedPerS: received / w, usPerReceived: per(cpu, received),
        published, publishedPerS: published / w, usPerPublished: per(cpu, published),
        claps, clapsPerS: claps / w, usPerClap: per(cpu, claps),
        redisRequests: m.claps_redis_requests_total ?? 0 };
    });
    let redis = null;
    if (proc.redis) {
      const r = counters.redis ?? { commands: {} }, cpu = proc.redis.cpu_s;
      const published = nodes.reduce((sum, n) => sum + n.published, 0);
      const received = nodes.reduce((sum, n) => sum + n.received, 0);
      const cmd = (name) => r.commands?.[name] ?? { calls: 0, usec: 0 };
      // What the nodes sent (INFO's command counts include the scripts' inner calls).
      const requests = nodes.reduce((sum, n) => sum + n.redisRequests, 0);
      redis = { cpu, cpuPct: cpu / w * 100, infoCpu: r.cpu_s, requestsPerS: requests / w, usPerRequest: per(cpu, requests),
        published, publishedPerS: published / w, usPerPublished: per(cpu, published), received,
        claps: nodes.reduce((sum, n) => sum + n.claps, 0),
        publish: cmd("publish"), evalsha: cmd("evalsha"), eval: cmd("eval") };
      redis.usPerClap = per(cpu, redis.claps);
    }
    return { run, d, nodes, redis };
  };
  const steps = [...new Set(s6Runs.filter((r) => ["single", "cross", "split"].includes(r.target)).map((r) => r.step))].sort((a, b) => a - b);
  const persistence = (machine.redis_appendonly ?? "no") === "everysec"
    ? "`--appendonly yes --appendfsync everysec --save ''`: an append-only file written every event-loop round and fsync'd once a second, no snapshots"
    : "`--appendonly no --save ''`: a bench Redis that keeps nothing";
  const d0 = (find(6, "cross") ?? find(6, "single") ?? s6Runs[0]).data;
  out(`Two clapsd nodes (\`--redis\`, \`--node-id A\` / \`B\`, each its own LMDB with fsync, as in scenario 1) share a fresh Redis ${machine.redis ?? ""} started by run.sh for each step ` +
    `(${persistence}; the nodes' LMDB is each node's durable copy). ` +
    `The hot-article load of scenario 1 (one article, ${int(d0.clap_rate)} claps/s from ${int(d0.clappers)} clappers) runs in three layouts, side by side in one run: ` +
    "*single*, one clusterless clapsd, the baseline; *cross*, every viewer on node A and every clapper on node B, so each update A delivers came through Redis; " +
    "*split*, viewers and clappers alternating between A and B. A fourth step, *bus*, makes bus messages rather than frames the nodes' work: " +
    "4 viewers on A each watch 250 of 1k articles and 60 clappers on B clap 1000/s spread over all 1k; *bus-single* is that load on one clusterless clapsd. " +
    "The load generator samples each node's and Redis's CPU (their threads' run time, `/proc/<pid>/task/*/schedstat`) over its measure window and, at both ends of the window, " +
    "runs a hook that saves each node's `/metrics` and Redis's `INFO all`; message and clap counts are those counters' differences.");
  out();
  out("### Cost per node");
  out();
  out("Each *us per ...* figure divides the process's whole CPU time in the window by that count, so the figures of one row are not additive: " +
    "each is meaningful where its item dominates the process's work (frames: A in *cross* and *single*; bus messages: A in *bus*; claps and publishes: B). " +
    "*Frames* are every WebSocket message the node's connections received (updates, and acks on clappers' connections). " +
    "*x single* is the node's CPU per frame over the single node's at the same total number of viewers (in *split* each node holds half of them).");
  out();
  const rows = [];
  const singleFrame = (step) => figures(find(6, "single", step))?.nodes[0]?.usPerFrame;
  for (const target of ["single", "cross", "split", "bus-single", "bus"]) {
    for (const run of s6Runs.filter((r) => r.target === target).sort((a, b) => a.step - b.step)) {
      const f = figures(run), clusterless = target === "single" || target === "bus-single";
      for (const n of f.nodes) {
        rows.push([int(f.d.viewers), target, n.name, `${int(n.viewers)} / ${int(n.clappers)}`, fmt(n.cpuPct, 0),
          int(n.framesPerS), fmt(n.usPerFrame, 2), !["cross", "split"].includes(target) || n.viewers === 0 ? "-" : ratio(n.usPerFrame, singleFrame(run.step)),
          clusterless ? "-" : int(n.receivedPerS), clusterless ? "-" : fmt(n.usPerReceived, 1),
          clusterless ? "-" : int(n.publishedPerS), clusterless ? "-" : fmt(n.usPerPublished, 1),
          int(n.clapsPerS), fmt(n.usPerClap, 1)]);
      }
    }
  }
  table(["Viewers", "Layout", "Node", "Viewers / clappers on it", "CPU %", "Frames/s", "us per frame", "x single",
    "Bus msgs received/s", "us per received msg", "Published/s", "us per published msg", "Claps/s", "us per clap"], rows);
  out("Redis over the same windows. *us per published message* divides all of Redis's CPU (scripts, viewer heartbeats and PUBLISH) by the messages the nodes published; " +
    "*PUBLISH us/call* and *EVALSHA us/call* are Redis's own `INFO commandstats` time per call (PUBLISH's includes matching the channel's subscribers and queueing the message to each, not the socket write).");
  out();
  const redisRows = [];
  for (const target of ["cross", "split", "bus"]) {
    for (const run of s6Runs.filter((r) => r.target === target).sort((a, b) => a.step - b.step)) {
      const f = figures(run), r = f.redis;
      if (!r) continue;
      const subscribers = target === "split" ? 2 : 1;
      redisRows.push([int(f.d.viewers), target, fmt(r.cpuPct, 1), int(r.requestsPerS), fmt(r.usPerRequest, 1), int(r.publishedPerS),
        `${subscribers}${subscribers > 1 ? " (A, B: each node gets its own messages back)" : " (A)"}`, fmt(r.usPerPublished, 1), fmt(r.usPerClap, 1),
        r.publish.calls ? fmt(r.publish.usec / r.publish.calls, 2) : "n/a", r.evalsha.calls ? `${int(r.evalsha.calls / f.d.window_s)} / ${fmt(r.evalsha.usec / r.evalsha.calls, 2)}` : "n/a"]);
    }
  }
  if (redisRows.length)
    table(["Viewers", "Layout", "Redis CPU %", "Requests/s from the nodes", "us per request", "PUBLISH/s", "Nodes subscribed to a channel", "us per published msg", "us per clap", "PUBLISH us/call", "EVALSHA/s / us per call"], redisRows);
  out("### Latency");
  out();
  out("Each sample is one (clap, viewer) pair, from the moment the clap was written to node B's socket until the viewer received a total that includes it " +
    "(a total >= the one the clap's ack carried). In *cross* every pair crosses the bus: clap on B, ack by B, B's commit to LMDB and Redis, PUBLISH, A's next tick, A's frame. " +
    "In *split* half the pairs are local; there the method is approximate, because a viewer's total sums two nodes' parts that travel separately " +
    "(A's own claps can lift the total past a B clap's ack total before B's part arrives), so it can only err early.");
  out();
  const latRows = [];
  for (const target of ["single", "cross", "split", "bus-single", "bus"]) {
    for (const run of s6Runs.filter((r) => r.target === target).sort((a, b) => a.step - b.step)) {
      const d = run.data, l = d.latency_ms, a = d.ack_latency_ms;
      latRows.push([int(d.viewers), target, int(l.samples), fmt(l.p50), fmt(l.p90), fmt(l.p99), fmt(l.max), int(d.latency_pairs_missing), fmt(a.p50), fmt(a.p99), int(d.errors)]);
    }
  }
  table(["Viewers", "Layout", "Pairs", "p50 ms", "p90 ms", "p99 ms", "max ms", "Unseen pairs", "Ack p50 ms", "Ack p99 ms", "Errors"], latRows);

  // ---- projection, from the figures above ----
  // Frames are projected from the smallest step: at the larger ones a fan-out
  // round outlasts the tick on this machine, so ticks (and frames per round) differ.
  const lo = steps[0];
  const perFrame = steps.map((step) => [step, figures(find(6, "cross", step))?.nodes[0]?.usPerFrame, figures(find(6, "single", step))?.nodes[0]?.usPerFrame]);
  const bus = figures(find(6, "bus"));
  const f = figures(find(6, "single", lo))?.nodes[0]?.usPerFrame;
  const m = bus?.nodes[0]?.usPerReceived;
  const c = bus?.nodes[1]?.usPerClap;
  const c1 = figures(find(6, "bus-single"))?.nodes[0]?.usPerClap;
  const rPub = bus?.redis?.usPerPublished;
  const rClap = bus?.redis?.usPerClap;
  const pubCall = bus?.redis?.publish.calls ? bus.redis.publish.usec / bus.redis.publish.calls : null;
  out("### What the figures mean for N nodes");
  out();
  out(`- **Cost per frame is per node and does not depend on the number of nodes.** A node's frames go to its own connections; a remote update reaches the engine as the remote part of an article and leaves in the node's next tick exactly like a local one. ` +
    "A in *cross* paid " + perFrame.map(([step, a, one]) => `${fmt(a, 2)} us per frame against ${fmt(one, 2)} us for the single node at ${int(step)} viewers (${ratio(a, one)})`).join(", and ") + ".");
  out(`- **Bus messages.** A node receives, per tick, one message for each article it has viewers of and whose part changed on some *other* node in that tick, one per such node (up to N-1 per article per tick, at most 40 ticks/s), and it gets its own publishes back from Redis and drops them. ` +
    `In *bus*, where messages outnumber frames, A's whole CPU came to ${fmt(m, 1)} us per received message (an upper bound: it includes its frames and idle work).`);
  out(`- **Publishing and claps.** A node publishes at most one message per changed article per tick (its own part), whatever the number of nodes. In *bus* B's whole CPU was ${fmt(c, 1)} us per accepted clap, including its LMDB commit, its Redis scripts and its publishes, against ${fmt(c1, 1)} us on one clusterless node with the same load (*bus-single*, ${ratio(c, c1)})` +
    (c && c1 && c / c1 >= 2 ? ": the Redis round trips of a clap cost the node more than the clap itself (see *What the profiles say*)." : "."));
  out(`- **Redis.** Every published message goes to each node subscribed to the article (every node with viewers of it, the publisher included), so PUBLISH fan-out grows with the number of subscribed nodes per article: a hot article watched on N nodes and clapped on all of them costs Redis up to 40 x N publishes/s and 40 x N^2 deliveries/s. ` +
    `Here Redis used ${fmt(rPub, 1)} us of CPU per published message, scripts included.`);
  const busLatency = find(6, "bus")?.data.latency_ms, oneLatency = find(6, "bus-single")?.data.latency_ms;
  if (busLatency && oneLatency)
    out(`- **Latency.** With few viewers per article (*bus*), a clap on B reached A's viewers at p50 ${fmt(busLatency.p50)} / p99 ${fmt(busLatency.p99)} / max ${fmt(busLatency.max)} ms, ` +
      `against p50 ${fmt(oneLatency.p50)} / p99 ${fmt(oneLatency.p99)} / max ${fmt(oneLatency.max)} ms on one node (*bus-single*): the bus adds the receiving node's next tick (0-25 ms) and B's Redis commit and publish. ` +
      "It does not grow with the number of nodes: a message goes from the publishing node through Redis to each subscribed node directly.");
  if (f && m) {
    const perNodeViewers = 50000, n = 20;
    const frameCores = perNodeViewers * 40 * f / 1e6, busCores = (n - 1) * 40 * m / 1e6;
    out(`- **Worked example** (same machine's figures, a hot article changing every tick): 1M viewers on ${n} nodes is ${int(perNodeViewers)} viewers per node, ` +
      `${int(perNodeViewers * 40)} frames/s x ${fmt(f, 2)} us = ${fmt(frameCores, 1)} cores per node for frames, and at most ${n - 1} x 40 = ${int((n - 1) * 40)} bus messages/s x ${fmt(m, 1)} us = ${fmt(busCores * 100, 1)}% of a core; ` +
      `Redis takes ${n} x 40 = ${int(n * 40)} publishes/s${pubCall ? ` (PUBLISH itself ${fmt(pubCall, 1)} us per call in its commandstats)` : ""} and queues ${int(n * n * 40)} deliveries/s. ` +
      (c && rClap ? `Claps cost with the clap rate, not the viewers: 1,000 claps/s spread over the ${n} nodes cost each node 50 x ${fmt(c, 0)} us = ${fmt(50 * c / 1e4, 1)}% of a core, and Redis, whose CPU follows the claps (${fmt(rClap, 0)} us per clap in *bus*, scripts and publishes included), ${fmt(1000 * rClap / 1e4, 1)}% of its core. ` : "") +
      "Frames dominate, as on one node.");
  }
  out();
}

// Scenario 7
if (s7) {
  const f = s7, s7Runs = runs.filter((r) => r.scenario === "7"), lat = f.latencyRound, br = f.breakdown;
  out("## Scenario 7: the cluster write path (two nodes, 1k claps/s, an op id on every clap)");
  out();
  fromRun(s7Runs);
  const d0 = (f.cross ?? f.single ?? f.steps[0].run).data;
  const idleS = f.rounds.find((r) => r.idleS)?.idleS ?? 0;
  out(`The targets of issue 10, measured side by side in one run. ${int(d0.clappers)} clappers send ${int(d0.clap_rate)} claps/s spread uniformly over ${int(d0.articles)} articles, ` +
    "each clap with a new op id (`\"id\":\"c<n>\"`; op ids are scoped to the user), under clapsd's default per-connection rate limit; " +
    "a clapper comes back as a new user after 45 claps on one article, so nobody reaches the cap of 50 " +
    `(acks that accepted nothing: ${int(f.rounds.reduce((sum, r) => sum + (r.cross?.data.claps_refused_by_cap ?? 0) + (r.single?.data.claps_refused_by_cap ?? 0), 0))}). ` +
    `${int(d0.viewers)} viewers each watch all ${int(d0.articles)} articles. ` +
    "*cross*: two clapsd nodes (each its own LMDB with fsync) on one Redis started for the step (as in scenario 6), every viewer on node A and every clapper on node B, " +
    "so every (clap, viewer) pair crosses Redis; *single*: the same load on one clusterless clapsd. " +
    (f.rounds.length > 1 ? `run.sh runs *single* then *cross*, ${f.rounds.length} times (rounds); other jobs on the cores only ever add CPU time and stalls, so the CPU figures take each process's lowest cost per clap over the rounds and the latency the round with the lower p99 (commands per clap, which noise does not move, take the highest). ` : "") +
    `Before *cross*'s measured window the load generator holds everyone connected for ${fmt(idleS, 0)} s with nobody clapping (its *idle phase*); ` +
    "the processes' CPU and Redis's `INFO commandstats` over it give the background (node heartbeats, refresh reads), which is shown per clap and subtracted in parentheses. " +
    "Per-clap figures divide by the claps acknowledged as accepted within the measured window. Commands per clap sum `calls` over every command in `INFO commandstats` " +
    "(which counts a script's inner commands as well as the `EVALSHA` itself), leaving out the `INFO` calls of the measurement; *requests per clap* are what the nodes sent " +
    "(`claps_redis_requests_total`: one per `EVALSHA`, `PUBLISH`, ...).");
  out();
  const rows = [];
  if (f.cross) {
    rows.push(["Redis CPU per acknowledged clap", `<= ${s7Limits.redisUsPerClap} us`,
      `${fmt(f.redisUsPerClap, 1)} us${perRound("redisUsPerClap", 1)}; Redis at ${fmt(f.redisCpuPct, 1)}% of a core` +
      (f.redisIdleCpuPct != null ? `, ${fmt(f.redisIdleCpuPct, 2)}% while idle, so ${fmt(f.redisNetUsPerClap, 1)} us per clap without the background` : ""),
      status(f.redisUsPerClap != null ? f.redisUsPerClap <= s7Limits.redisUsPerClap : null)]);
    rows.push(["Redis commands per clap", `<= ${s7Limits.commandsPerClap}`,
      f.commandsPerClap != null ? `${fmt(f.commandsPerClap, 2)}${perRound("commandsPerClap", 2)}` +
        (f.backgroundPerClap != null ? `; background ${fmt(f.backgroundPerClap, 3)} per clap (${fmt(f.idleCommandsPerS, 1)} commands/s while idle), so ${fmt(f.netCommandsPerClap, 2)} for the claps` : "") +
        (f.requestsPerClap != null ? `; ${fmt(f.requestsPerClap, 2)} requests per clap from the nodes` : "") +
        `; Redis's own time in commands ${fmt(f.usecInCommandsPerClap, 1)} us per clap` : "n/a",
      status(f.commandsPerClap != null ? f.commandsPerClap <= s7Limits.commandsPerClap : null)]);
    rows.push(["Clapping node's CPU per clap, x a single node's", `<= ${s7Limits.nodeRatio}x`,
      `B ${fmt(f.bUsPerClap, 1)} us${perRound("bUsPerClap", 1)} vs ${fmt(f.singleUsPerClap, 1)} us${perRound("singleUsPerClap", 1)} on one node = ${ratio(f.bUsPerClap, f.singleUsPerClap)}` +
      `; A (the viewers' node) ${fmt(f.aUsPerClap, 1)} us per clap, A + B ${fmt(f.abUsPerClap, 1)} us = ${ratio(f.abUsPerClap, f.singleUsPerClap)}`,
      status(f.ratio !== null ? f.ratio <= s7Limits.nodeRatio : null)]);
    if (lat)
      rows.push(["Cross-node clap-to-viewer latency", `p99 <= ${s7Limits.latencyP99Ms} ms (2 ticks + 10 ms)`,
        `p50 ${fmt(lat.latency.p50)} / p90 ${fmt(lat.latency.p90)} / p99 ${fmt(lat.latency.p99)} / max ${fmt(lat.latency.max)} ms over ${int(lat.latency.samples)} pairs` +
        `${f.rounds.length > 1 ? ` (round ${lat.round}, the lower p99; p99 per round: ${f.rounds.filter((r) => r.latency).map((r) => fmt(r.latency.p99)).join(", ")} ms)` : ""}, ${int(f.missing)} unseen in all` +
        (lat.single ? `; one node: p50 ${fmt(lat.single.data.latency_ms.p50)} / p99 ${fmt(lat.single.data.latency_ms.p99)} ms` : ""),
        status(lat.latency.p99 <= s7Limits.latencyP99Ms && f.missing === 0)]);
    rows.push(["Clap-to-ack latency (send to ack, in the load generator)", "-",
      f.rounds.filter((r) => r.cross).map((r) => `${f.rounds.length > 1 ? `round ${r.round}: ` : ""}p50 ${fmt(r.cross.data.ack_latency_ms.p50)} / p99 ${fmt(r.cross.data.ack_latency_ms.p99)} ms` +
        (r.single ? ` (one node: ${fmt(r.single.data.ack_latency_ms.p50)} / ${fmt(r.single.data.ack_latency_ms.p99)} ms)` : "") +
        `, acks ${Object.entries(r.cross.data.acks_by_durability ?? {}).map(([k, v]) => `${k} ${int(v)}`).join(", ") || "n/a"}`).join("; "), "-"]);
  }
  if (f.steps.length)
    rows.push(["Claps/s two nodes on one Redis sustain (rate steps below)", `new figure: ack p99 <= ${ackP99LimitMs} ms`, s7Sustained(), "recorded"]);
  table(["Figure", "Target", "Measured", "Status"], rows);
  if (br) {
    out(`Redis's \`INFO commandstats\` over *cross*'s measured window${f.rounds.length > 1 ? ` (round ${br.round})` : ""} (${fmt(br.window, 1)} s, ${int(br.claps)} acknowledged claps), per acknowledged clap. ` +
      `*Background per clap* is the command's rate over the idle phase (${fmt(br.idleS, 1)} s) times the window, per clap.`);
    out();
    table(["Command", "Calls", "Per clap", "Background per clap", "us per call"], [
      ...br.commands.map((c) => [`\`${c.name.toUpperCase().replace("|", " ")}\``, int(c.calls), fmt(c.perClap, 3), c.backgroundPerClap == null ? "n/a" : fmt(c.backgroundPerClap, 3), c.usPerCall == null ? "-" : fmt(c.usPerCall, 2)]),
      ["**All**", int(br.commands.reduce((sum, c) => sum + c.calls, 0)), `**${fmt(br.commandsPerClap, 2)}**`, br.backgroundPerClap == null ? "n/a" : fmt(br.backgroundPerClap, 3), "-"]]);
  }
  if (f.steps.length) {
    const sd = f.steps[0].run.data;
    out("### Rate steps");
    out();
    out(`Each step is a fresh pair of nodes on a fresh Redis, as above, offered one clap rate for ${fmt(sd.duration_s, 0)} s: ${int(sd.clappers)} clappers and ${int(sd.viewers)} viewers (each watching all ${int(sd.articles)} articles) alternate between A and B, ` +
      "so both nodes take claps on articles they have viewers of; the nodes' per-connection rate limit is raised (`--rate-limit 1000000 --rate-burst 1000000`, as in scenario 3) " +
      "so that the write path, not the number of clapping connections, runs out first. The rates double until a step is not sustained twice in a row " +
      `(\`benchmarks/rate_step.mjs\`: clap-to-ack p99 above ${ackP99LimitMs} ms, fewer than ${fmt(minAchievedFraction * 100, 0)}% of the offered claps accepted within the window, ` +
      "more than 1% of the claps unacknowledged or in error, or more than 1% of the acks only locally durable): a step that fails runs once more (*again*), " +
      "since on cores shared with other jobs one stall can push a short step's p99 over the limit. Both nodes and Redis share core 0, as everywhere in this suite; " +
      "a *Loadgen CPU %* near 100 would mean the load generator, not the cluster, set the limit.");
    out();
    table(["Offered claps/s", "Accepted claps/s", "Ack p50 ms", "Ack p99 ms", "Viewer p99 ms", "A CPU %", "B CPU %", "Redis CPU %", "Redis us per clap", "Redis commands per clap", "Loadgen CPU %", "Sustained"],
      f.steps.flatMap((st) => st.tries).map(({ run, again, ok, reasons }) => {
        const rate = run.step, d = run.data, w = d.window_s, claps = ackedIn(run);
        const pct = (n) => { const p = procOf(run, n); return p?.cpu_s != null ? fmt(p.cpu_s / w * 100, 0) : "n/a"; };
        const redis = procOf(run, "redis");
        return [`${int(rate)}${again ? " (again)" : ""}`, int(d.accepted_per_s), fmt(d.ack_latency_ms.p50), fmt(d.ack_latency_ms.p99), fmt(d.latency_ms.p99), pct("A"), pct("B"), pct("redis"),
          redis?.cpu_s != null && claps ? fmt(redis.cpu_s * 1e6 / claps, 1) : "n/a", fmt(redisCommandsPerClap(run), 2), fmt(d.loadgen_cpu_pct, 0),
          ok ? "yes" : `**no**: ${reasons.join("; ")}`];
      }));
  }
  out("Run it alone with `benchmarks/run.sh --only 7 <build-dir>` (add `--nice -10` on a shared machine); the exact commands of this run:");
  out();
  out("```");
  for (const r of s7Runs) {
    out(`# ${r.file}`);
    if (r.server_cmd) out(r.server_cmd);
    out(r.client_cmd);
  }
  out("```");
  out();
}

// Scenario 7, one master against three
if (s7Spread) {
  const { one, cluster, oneS, clusterS } = s7Spread;
  const d0 = (cluster ?? one).data;
  out("## Scenario 7: one Redis master against a Redis Cluster of three");
  out();
  fromRun([one, cluster]);
  out(`The same load on two clapsd nodes: ${int(d0.clappers)} clappers send ${int(d0.clap_rate)} claps/s spread uniformly over ${int(d0.articles)} articles, ` +
    `each clap with a new op id, ${int(d0.viewers)} viewers each watching ${int(d0.subscriptions_per_conn ?? 0) || "some"} of them; viewers and clappers alternate between the nodes. ` +
    "*one*: a single Redis master (`--redis`); *cluster*: a Redis Cluster of three masters and no replicas (`--redis-cluster`, keys and sharded pub/sub channels hash-tagged by article). " +
    "Every master runs on core 0 with the nodes, so on this 2-core machine the cluster cannot raise throughput; what shows the scaling is each master's share of the work. " +
    "Per master over the measure window: CPU (utime + stime from `/proc/PID/stat`) divided by the claps acknowledged as accepted, " +
    "keys (`DBSIZE` at the window's end: tallies, per-user keys and the op ids' keys, which live 15 minutes) and commands " +
    "(the sum of `calls` in `INFO commandstats`, a script's inner commands included, without the measurement's own `INFO` and `DBSIZE`). " +
    `The target: every master's keys and commands within ±${fmt((clusterS ?? oneS).tolerance * 100, 0)}% of the mean over the masters.`);
  out();
  const rows = [];
  for (const [label, run, sp] of [["one", one, oneS], ["cluster", cluster, clusterS]]) {
    if (!sp) continue;
    for (const m of sp.masters)
      rows.push([label, `${m.label} (:${m.port})`, fmt(m.cpu_s, 2), fmt(m.us_per_clap, 1), int(m.keys), fmt(m.key_share * 100, 1),
        int(m.commands), fmt(m.command_share * 100, 1), fmt(m.commands / Math.max(1, sp.claps), 2)]);
    if (sp.masters_count > 1) rows.push([`**${label}, all**`, `${sp.masters_count} master${sp.masters_count > 1 ? "s" : ""}, ${int(sp.claps)} claps in ${fmt(sp.window_s, 1)} s (${int(run.data.accepted_per_s)}/s)`,
      fmt(sp.cpu_s, 2), `**${fmt(sp.us_per_clap, 1)}**`, int(sp.keys), "100.0", int(sp.commands), "100.0", fmt(sp.commands_per_clap, 2)]);
  }
  table(["Layout", "Master", "CPU s", "us per clap", "Keys", "Key share %", "Commands", "Command share %", "Commands per clap"], rows);
  if (clusterS) {
    const worst = (key) => clusterS.masters.reduce((w, m) => (Math.abs(m[key]) > Math.abs(w[key]) ? m : w));
    const k = worst("keys_vs_mean"), c = worst("commands_vs_mean");
    out(`Spread over the three masters: keys at most ${fmt(Math.abs(k.keys_vs_mean) * 100, 1)}% from the mean (${k.label}), ` +
      `commands at most ${fmt(Math.abs(c.commands_vs_mean) * 100, 1)}% (${c.label}): ${status(spreadVerdict(clusterS))} (±${fmt(clusterS.tolerance * 100, 0)}%). ` +
      (oneS ? `Redis CPU per clap: ${fmt(oneS.us_per_clap, 1)} us on one master; ${fmt(clusterS.us_per_clap, 1)} us summed over three ` +
        `(${clusterS.masters.map((m) => `${m.label} ${fmt(m.us_per_clap, 1)}`).join(", ")} us), so the busiest master carries ${ratio(Math.max(...clusterS.masters.map((m) => m.us_per_clap)), oneS.us_per_clap)} of the one master's cost per clap; ` +
        `commands per clap ${fmt(oneS.commands_per_clap, 2)} against ${fmt(clusterS.commands_per_clap, 2)}, ` +
        `script calls (\`EVALSHA\`) per clap ${fmt(evalshaPerClap(oneS), 2)} against ${fmt(evalshaPerClap(clusterS), 2)} ` +
        "(on Redis Cluster one script call holds one article's keys, where one master takes a tick's articles in one call)." : ""));
    out();
  }
}

// Errors worth a look
s8Section();

const errorRows = runs.filter((r) => r.data.errors).map((r) => [r.file.replace(/\.json$/, ""),
  Object.entries(r.data.errors_by_kind).map(([k, v]) => `${k}: ${v}`).join(", ")]);
if (errorRows.length) {
  out("## Errors seen by the load generator");
  out();
  table(["Run", "Errors"], errorRows);
}

out("## Exact commands");
out();
out("`$OUT` is the result folder (`<build>/bench-results/<utc>/`). Regenerate everything with `make bench`, or `benchmarks/run.sh [--quick] [--only engine,1,2,3,4,5,6,7] <build-dir>`. Results carried over from an older run have their own `$OUT`.");
out();
out("```");
for (const r of runs) {
  out(`# ${r.file}`);
  if (r.server_cmd) out(r.server_cmd);
  out(r.client_cmd);
}
out("```");
out();

fs.mkdirSync(docsDir, { recursive: true });
fs.writeFileSync(path.join(docsDir, "benchmarks.md"), lines.join("\n"));

// Raw results, with the CDFs thinned, for anyone who wants to recompute.
const raw = runs.map((r) => {
  const d = { ...r.data };
  if (Array.isArray(d.latency_cdf) && d.latency_cdf.length > 200) {
    const step = Math.ceil(d.latency_cdf.length / 200);
    d.latency_cdf = d.latency_cdf.filter((_, i) => i % step === 0 || i === d.latency_cdf.length - 1);
  }
  const run = { scenario: r.scenario, target: r.target, step: r.step, pair: r.pair, file: r.file, server_cmd: r.server_cmd, client_cmd: r.client_cmd, result: d };
  // Carried over from an older run: say which.
  if (r.source !== machine) run.source = r.source;
  return run;
});
fs.writeFileSync(path.join(docsDir, "bench-results.json"), JSON.stringify({ machine, runs: raw }, null, 1) + "\n");

// ---- plots ----
const plotDir = path.join(resultsDir, "plots");
fs.mkdirSync(plotDir, { recursive: true });
const write = (name, rows) => {
  const file = path.join(plotDir, name);
  fs.writeFileSync(file, rows.map((r) => r.join(" ")).join("\n") + "\n");
  return file;
};
const plots = [];
// A plot is redrawn only when this run measured some of its data: carried-over
// results keep the plot their own run drew (from the full, unthinned CDFs).
const measuredNow = (...scenarios) => runs.some((r) => r.source === machine && scenarios.includes(r.scenario));
const term = 'set terminal pngcairo size 1000,600 font "DejaVu Sans,10"';
const missing = (v) => (v === null || v === undefined || Number.isNaN(v) ? "?" : v);

// Latency CDF: clapsd at each step, the peers at theirs.
if (measuredNow("1")) {
  const series = [];
  const dash = { clapsd: "", "clapsd-tick10": "dt 4 ", "clapsd-noping": "dt 3 ", "sio-coalesced": "dt 2 " };
  // clapsd: the pair with the median p99 at each step.
  const medianPairs = (target) => (target.startsWith("clapsd") && target !== "clapsd-noping"
    ? s1.filter((st) => st.cs[0].target === target).map((st) => st.medianP99Run).filter(Boolean) : all(1, target));
  for (const target of ["clapsd", "clapsd-tick10", "clapsd-noping", "sio-coalesced"]) {
    for (const r of medianPairs(target)) {
      if (!r.data.latency_cdf?.length) continue;
      const file = write(`cdf-${target}-${r.step}.dat`, r.data.latency_cdf.map(([ms, f]) => [Math.max(ms, 0.01), f]));
      const held = r.data.connections - r.data.clappers;
      const label = r.data.connections < 0.95 * r.data.connections_wanted ? `${held} of ${r.step} viewers connected` : `${r.step} viewers`;
      series.push(`"${file}" using 1:2 with lines lw 2 ${dash[target]}title "${names[target]}, ${label}"`);
    }
  }
  if (series.length) plots.push([`bench-latency-cdf.png`, [term, 'set title "Scenario 1: clap-to-viewer latency CDF"',
    'set xlabel "latency (ms)"', 'set ylabel "fraction of (clap, viewer) pairs"', "set logscale x", "set grid", "set key bottom right",
    "set yrange [0:1.02]", `plot ${series.join(", ")}`]]);
}
// p99 and CPU per frame against the viewers each server actually held.
if (s1Steps.length && measuredNow("1")) {
  const held = (r) => (r.target.startsWith("floor") ? r.data.connections : r.data.connections - r.data.clappers);
  // Repeated steps (scenario 1's pairs) plot their median.
  const seriesFor = (targets, value, prefix) => targets.flatMap((t) => {
    const points = [...new Set(all(1, t).map((r) => r.step))].map((step) => {
      const rs = pairsOf(1, t, step);
      return [median(rs.map(held)), median(rs.map(value))];
    }).filter(([, v]) => v !== null && v !== undefined);
    if (!points.length) return [];
    const file = write(`${prefix}-${t}.dat`, points);
    return [`"${file}" using 1:2 with linespoints lw 2 ${t.startsWith("floor") ? "dt 2 " : ""}title "${names[t]}"`];
  });
  const p99 = seriesFor(["clapsd", "clapsd-tick10", "clapsd-noping", "sio-coalesced", "sio-naive"], (r) => r.data.latency_ms.p99, "p99");
  plots.push(["bench-p99-vs-viewers.png", [term, 'set title "Scenario 1: p99 clap-to-viewer latency"', 'set xlabel "viewers connected"',
    'set ylabel "p99 latency (ms)"', "set logscale y", "set grid", "set key top left", `plot ${p99.join(", ")}`]]);
  const cpu = seriesFor(["clapsd", "clapsd-tick10", "clapsd-noping", "sio-coalesced", "sio-naive", "floor", "floor-tick10"], (r) => cpuPerFrame(r), "cpu");
  plots.push(["bench-cpu-per-frame.png", [term, 'set title "Scenario 1: server CPU time per delivered frame"', 'set xlabel "viewers connected"',
    'set ylabel "CPU per frame (us)"', "set grid", "set key top left", "set yrange [0:*]", `plot ${cpu.join(", ")}`]]);
}
// RSS against connections, from scenarios 1 and 4.
if (measuredNow("1", "4")) {
  const series = [];
  for (const target of ["clapsd", "sio-coalesced"]) {
    const points = [...all(1, target).filter((r) => r.pair === 1), ...all(4, target)].filter((r) => r.data.server_rss_kb)
      .map((r) => [r.data.connections, r.data.server_rss_kb / 1024]).sort((a, b) => a[0] - b[0]);
    if (!points.length) continue;
    const file = write(`rss-${target}.dat`, points);
    series.push(`"${file}" using 1:2 with linespoints lw 2 title "${names[target]}"`);
  }
  if (series.length) plots.push(["bench-rss-vs-connections.png", [term, 'set title "Server RSS against open connections (scenarios 1 and 4)"',
    'set xlabel "connections"', 'set ylabel "RSS (MiB)"', "set grid", "set key top left", "set yrange [0:*]", `plot ${series.join(", ")}`]]);
}
for (const [name, script] of plots) {
  const [terminal, ...rest] = script;
  try {
    execFileSync("gnuplot", [], { input: [terminal, `set output "${path.join(docsDir, name)}"`, ...rest].join("\n") + "\n" });
  } catch (e) {
    console.error(`report.mjs: gnuplot failed for ${name}: ${e.message}`);
  }
}
console.error(`report.mjs: wrote ${path.join(docsDir, "benchmarks.md")} and ${plots.length} plots`);
