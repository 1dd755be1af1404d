// ctest ops.dashboard: every PromQL query of docs/ops/grafana-dashboard.json
// parses. Grafana cannot run here, so its variables are replaced the way
// Grafana would ($__rate_interval by a duration, $instance by its "All"
// regex) and promtool checks each query as a recording rule. The check is
// shown to refuse a broken query, and an unknown variable fails the test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { dashboardQueries, readDashboard, substituteVariables } from './dashboard.mjs';

const file = (rel) => fileURLToPath(new URL(rel, import.meta.url));
const promtool = execFileSync(file('../../scripts/promtool.sh'),
  [process.env.PROMTOOL_DIR ?? file('../../build/tools/prometheus')], { stdio: ['ignore', 'pipe', 'inherit'] })
  .toString().trim();

/** `promtool check rules` on `queries` ({where, expr}) as recording rules: its status and output. */
function checkQueries(queries) {
  const rules = queries.map((q, i) =>
    `      # ${q.where}\n      - record: dashboard:query_${i}\n        expr: ${JSON.stringify(q.expr)}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'claps-ops-dashboard-'));
  try {
    const rulesFile = path.join(dir, 'dashboard-queries.yml');
    fs.writeFileSync(rulesFile, `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`);
    const r = spawnSync(promtool, ['check', 'rules', rulesFile], { encoding: 'utf8' });
    const output = r.stdout + r.stderr;
    // promtool names a failing rule by its name: say which panel it came from.
    const failing = [...output.matchAll(/dashboard:query_(\d+)/g)].map((m) => queries[Number(m[1])].where);
    return { status: r.status, output, failing };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const dash = readDashboard();
const asPrometheusGetsThem = (d) =>
  dashboardQueries(d).map((q) => ({ where: q.where, expr: substituteVariables(q.expr, d) }));

test('every dashboard query, its variables replaced as Grafana would, passes promtool check rules', () => {
  const queries = asPrometheusGetsThem(dash);
  assert.ok(queries.length >= 20, `the dashboard has its queries (${queries.length})`);
  assert.ok(queries.some((q) => q.where.startsWith('variable')), 'the instance variable\'s selector is checked');
  for (const q of queries) assert.doesNotMatch(q.expr, /\$|\[\[/, `${q.where}: no Grafana variable left`);
  const { status, output, failing } = checkQueries(queries);
  assert.deepEqual(failing, [], output);
  assert.equal(status, 0, output);
  assert.match(output, new RegExp(`SUCCESS: ${queries.length} rules found`));
});

test('the check refuses a broken query and names its panel', () => {
  // The dashboard with one more panel whose query lost a closing parenthesis.
  const broken = structuredClone(dash);
  const good = broken.panels.find((p) => p.targets?.[0]?.expr.endsWith(')'));
  const panel = structuredClone(good);
  panel.title = 'Broken on purpose';
  panel.targets = [{ ...good.targets[0], expr: good.targets[0].expr.slice(0, -1) }];
  broken.panels.push(panel);
  const { status, output, failing } = checkQueries(asPrometheusGetsThem(broken));
  assert.notEqual(status, 0, `promtool accepted a broken query:\n${output}`);
  assert.deepEqual(failing, [`panel 'Broken on purpose' ${panel.targets[0].refId}`], output);
  assert.match(output, /parse error|could not parse/i);
});

test('a query with a variable the dashboard does not define fails the test', () => {
  assert.throws(() => substituteVariables('rate(claps_ticks_total{instance=~"$node"}[5m])', dash),
    /unknown Grafana variable \$node/);
  assert.equal(substituteVariables('rate(x{instance=~"${instance}"}[$__rate_interval])', dash),
    'rate(x{instance=~".*"}[1m])');
});
