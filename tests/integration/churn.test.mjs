// A short run of benchmarks/churn.mjs (scenario 8, issue 12): distinct users
// connect, subscribe to two articles and leave. Readers who never clap must
// leave nothing behind: no subscriber, no cached tally, and (generously) no
// RSS growth worth the name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, tempDir, deadline } from './helpers.mjs';

const churn = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../benchmarks/churn.mjs');

function runChurn(args) {
  const child = spawn(process.execPath, [churn, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, output })));
}

test('5,000 distinct readers come and go: no per-user state, RSS flat', async () => {
  const server = await startServer({ args: ['--store', 'memory', '--log-level', 'warn'] });
  try {
    const json = path.join(tempDir(), 'churn.json');
    const { code, output } = await deadline(runChurn([
      '--url', server.ws, '--server-pid', String(server.child.pid), '--metrics', `${server.http}/metrics`,
      '--users', '5000', '--baseline-users', '1000', '--concurrency', '200', '--settle-s', '1',
      '--source-ips', '127.0.0.1', '--max-s', '100', '--json', json,
    ]), 110000, 'the churn run to finish');
    assert.equal(code, 0, output);
    const r = JSON.parse(fs.readFileSync(json, 'utf8'));
    assert.equal(r.done, 5000);
    assert.equal(r.failed, 0);
    // Nobody is connected, and nobody clapped: the engine holds no subscriber
    // and no tally (a subscribe reads the user's claps without caching them).
    assert.equal(r.gauges_settled.claps_subscribers, 0);
    assert.equal(r.gauges_settled.claps_tallies_cached, 0);
    assert.equal(r.gauges_settled.claps_connections, 0);
    // Generous: 4,000 users past the baseline at the old ~190 B each were
    // 0.75 MB; this catches kilobytes per user, not allocator noise.
    assert.ok(r.growth_settled_mb < 8, `RSS grew ${r.growth_settled_mb.toFixed(2)} MB over the baseline`);
  } finally {
    await server.stop();
  }
});
