// redis_spread.mjs - scenario 7's one master against three (issue 13): what
// each Redis master cost and held over the load generator's measure window.
//
//   node benchmarks/redis_spread.mjs RESULTS_DIR NAME CLK_TCK
//
// Reads NAME.masters.txt (label, port, pid per master, written by run.sh),
// the window hook's NAME.<label>.stat-{start,end}.txt (/proc/PID/stat),
// NAME.<label>.info-{start,end}.txt (INFO all) and NAME.<label>.dbsize-end.txt,
// and NAME.json (the load generator's accepted claps/s and window). Writes
// NAME.spread.json and prints one line per master:
//   - CPU per clap: utime + stime over the window (in CLK_TCK ticks), divided
//     by the claps acknowledged as accepted within it;
//   - keys: DBSIZE at the window's end, and its share of all masters' keys;
//   - commands: the sum of `calls` in INFO commandstats over the window (a
//     script's inner commands included), without the hook's own INFO and
//     DBSIZE, and its share of all masters' commands;
// and whether every master's keys and commands are within ±20% of the mean.
import fs from "node:fs";
import path from "node:path";

const spreadTolerance = 0.2;
// The window hook's own calls are the measuring tool's, not the cluster's.
const ownCommands = new Set(["info", "dbsize"]);

const [dir, name, clkTck] = process.argv.slice(2);
if (!dir || !name || !clkTck) {
  console.error("usage: node benchmarks/redis_spread.mjs RESULTS_DIR NAME CLK_TCK");
  process.exit(2);
}
const read = (file) => fs.readFileSync(path.join(dir, file), "utf8");

// /proc/PID/stat: utime and stime are fields 14 and 15, counted after the
// parenthesised command name (which may hold spaces).
const cpuTicks = (text) => {
  const fields = text.slice(text.lastIndexOf(")") + 2).trim().split(/\s+/);
  return Number(fields[11]) + Number(fields[12]);
};
const commandCalls = (text) => {
  const calls = {};
  for (const line of text.split(/\r?\n/)) {
    const m = line.match(/^cmdstat_([a-z|_-]+):calls=(\d+)/);
    if (m) calls[m[1]] = Number(m[2]);
  }
  return calls;
};
const infoField = (text, field) => Number(new RegExp(`^${field}:(\\d+)`, "m").exec(text)?.[1] ?? NaN);

const run = JSON.parse(read(`${name}.json`));
const claps = Math.round(run.accepted_per_s * run.window_s);
const masters = read(`${name}.masters.txt`).trim().split("\n").map((line) => {
  const [label, port, pid] = line.split(" ");
  const ticks = cpuTicks(read(`${name}.${label}.stat-end.txt`)) - cpuTicks(read(`${name}.${label}.stat-start.txt`));
  const infoStart = read(`${name}.${label}.info-start.txt`), infoEnd = read(`${name}.${label}.info-end.txt`);
  const before = commandCalls(infoStart), after = commandCalls(infoEnd);
  const byCommand = Object.fromEntries(Object.entries(after)
    .map(([cmd, n]) => [cmd, n - (before[cmd] ?? 0)]).filter(([cmd, n]) => n > 0 && !ownCommands.has(cmd)));
  const cpu_s = ticks / Number(clkTck);
  return {
    label, port: Number(port), pid: Number(pid), cpu_s,
    us_per_clap: claps ? cpu_s * 1e6 / claps : null,
    keys: Number(read(`${name}.${label}.dbsize-end.txt`).trim()),
    commands: Object.values(byCommand).reduce((s, n) => s + n, 0),
    total_commands_processed: infoField(infoEnd, "total_commands_processed") - infoField(infoStart, "total_commands_processed"),
    commands_by_name: byCommand,
  };
});
const total = (key) => masters.reduce((s, m) => s + m[key], 0);
const mean = (key) => total(key) / masters.length;
// Nothing on any master is no spread at all.
const within = (key) => mean(key) > 0 && masters.every((m) => Math.abs(m[key] - mean(key)) <= spreadTolerance * mean(key));
for (const m of masters) {
  m.key_share = total("keys") ? m.keys / total("keys") : null;
  m.command_share = total("commands") ? m.commands / total("commands") : null;
  m.keys_vs_mean = mean("keys") ? m.keys / mean("keys") - 1 : null;
  m.commands_vs_mean = mean("commands") ? m.commands / mean("commands") - 1 : null;
}
const result = {
  name, masters_count: masters.length, claps, window_s: run.window_s, accepted_per_s: run.accepted_per_s,
  articles: run.articles, clap_rate: run.clap_rate, clk_tck: Number(clkTck),
  cpu_s: total("cpu_s"), us_per_clap: claps ? total("cpu_s") * 1e6 / claps : null,
  keys: total("keys"), commands: total("commands"), commands_per_clap: claps ? total("commands") / claps : null,
  tolerance: spreadTolerance, keys_within: within("keys"), commands_within: within("commands"), masters,
};
fs.writeFileSync(path.join(dir, `${name}.spread.json`), JSON.stringify(result, null, 1) + "\n");
const pct = (v) => `${(v * 100).toFixed(1)}%`;
console.log(`${name}: ${claps} claps accepted in ${run.window_s.toFixed(1)} s; Redis ${result.us_per_clap?.toFixed(1)} us per clap over ${masters.length} master(s)`);
for (const m of masters)
  console.log(`  ${m.label} :${m.port}  CPU ${m.cpu_s.toFixed(2)} s = ${m.us_per_clap?.toFixed(1)} us/clap  keys ${m.keys} (${pct(m.key_share)})  ` +
    `commands ${m.commands} (${pct(m.command_share)}, ${(m.commands / Math.max(1, claps)).toFixed(2)}/clap)`);
if (masters.length > 1)
  console.log(`  within ±${spreadTolerance * 100}% of the mean: keys ${result.keys_within ? "yes" : "no"}, commands ${result.commands_within ? "yes" : "no"}`);
