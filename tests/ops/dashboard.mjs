// docs/ops/grafana-dashboard.json as the ops tests read it: its PromQL
// queries, and those queries as Prometheus would get them from Grafana (its
// variables replaced), so promtool can check them. Grafana itself cannot run here.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

export const dashboardPath = fileURLToPath(new URL('../../docs/ops/grafana-dashboard.json', import.meta.url));

export function readDashboard(path = dashboardPath) {
  return JSON.parse(fs.readFileSync(path, 'utf8'));
}

/**
 * Every PromQL query of `dash`: each panel target's `expr` (rows' nested
 * panels too), and the series selector of each query variable's
 * label_values(selector, label). `where` names the panel or variable.
 */
export function dashboardQueries(dash) {
  const queries = [];
  const walk = (panels) => {
    for (const p of panels ?? []) {
      if (p.type !== 'row') {
        assert.equal(p.datasource?.uid, '${DS_PROMETHEUS}', `panel '${p.title}' uses the datasource variable`);
        assert.ok(p.targets?.length > 0, `panel '${p.title}' has queries`);
      }
      for (const t of p.targets ?? []) {
        assert.equal(typeof t.expr, 'string', `panel '${p.title}' target ${t.refId} has an expr`);
        queries.push({ where: `panel '${p.title}' ${t.refId}`, expr: t.expr });
      }
      walk(p.panels);
    }
  };
  walk(dash.panels);
  for (const v of dash.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const query = v.query?.query ?? v.query;
    // label_values(metric, label) and label_values(label) are Grafana's, not PromQL.
    const m = /^label_values\((?:(.+),)?\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$/.exec(query);
    assert.ok(m, `variable '${v.name}': a label_values() query (${query})`);
    if (m[1]) queries.push({ where: `variable '${v.name}'`, expr: m[1].trim() });
  }
  return queries;
}

// Grafana's global variables, with a value of the kind Grafana puts there:
// durations where PromQL takes a duration, numbers where it takes a number.
const builtins = {
  __rate_interval: '1m',
  __interval: '15s',
  __range: '6h',
  __interval_ms: '15000',
  __range_ms: '21600000',
  __range_s: '21600',
};

/**
 * `expr` as Grafana hands it to Prometheus: its $name, ${name} and [[name]]
 * variables replaced. A dashboard variable becomes its "All" value (a
 * regex; every panel matches it with =~) or its first option. Fails on a
 * variable neither Grafana nor the dashboard defines.
 */
export function substituteVariables(expr, dash) {
  const own = {};
  for (const v of dash.templating?.list ?? []) {
    if (v.type === 'datasource') continue;
    own[v.name] = v.includeAll ? (v.allValue ?? '.*') : (v.options?.[0]?.value ?? v.current?.value);
    assert.equal(typeof own[v.name], 'string', `variable '${v.name}' has a value to check its queries with`);
  }
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]/g, (whole, a, b, c) => {
    const name = a ?? b ?? c;
    const value = builtins[name] ?? own[name];
    assert.ok(value !== undefined, `unknown Grafana variable ${whole} in: ${expr}`);
    return value;
  });
}
