// The simulator CLI (examples/claps-simulate.mjs) against a real clapsd: it
// runs for its duration, exits 0, and every clap it reports as acknowledged
// is in the server's totals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { deadline, request, startServer } from '../integration/helpers.mjs';

const SIMULATOR = fileURLToPath(new URL('../../examples/claps-simulate.mjs', import.meta.url));

test('claps-simulate opens N users over M articles, reports progress and exits after --duration', async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const articles = ['sim-a', 'sim-b'];
  const child = spawn(process.execPath, [SIMULATOR, '--url', server.ws, '--users', '6',
    '--articles', articles.join(','), '--rate', '4', '--duration', '2', '--prefix', 'simtest'],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const code = await deadline(new Promise((resolve) => child.on('exit', resolve)), 30000, 'claps-simulate to exit');
  assert.equal(code, 0, stderr);
  assert.match(stdout, /live \d+\/6 · claps sent \d+ · acked \d+ · updates received \d+/);
  const summary = /done; (\d+) claps sent, (\d+) acknowledged, (\d+) updates received, (\d+) errors/.exec(stdout);
  assert.ok(summary, stdout);
  const [sent, acked, updates, errors] = summary.slice(1).map(Number);
  assert.ok(sent > 0);
  assert.equal(acked, sent, 'every clap sent was acknowledged before exit');
  assert.ok(updates > 0, 'readers received tick updates');
  assert.equal(errors, 0);
  let total = 0;
  for (const article of articles) total += (await request(`${server.http}/api/articles/${article}`)).json.total;
  assert.equal(total, acked, 'the server counted exactly what was acknowledged');
});
