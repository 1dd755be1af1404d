// Test support: runs a real clapsd for node tests (bindings and browser).
//
// The binary comes from $CLAPSD (CMake passes $<TARGET_FILE:clapsd>). The
// server prints `clapsd listening on http://HOST:PORT` once it accepts
// connections; we wait for that line, never for a fixed time.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const LISTENING = /^clapsd listening on http:\/\/([^\s:]+|\[[^\]]+\]):(\d+)\s*$/m;

export function clapsd_binary() {
  const binary = process.env.CLAPSD;
  if (!binary) throw new Error('set CLAPSD to the clapsd binary (ctest does this)');
  return binary;
}

export function temp_data_dir(tag = 'claps-test') {
  return mkdtempSync(join(tmpdir(), `${tag}-`));
}

/**
 * Starts clapsd on 127.0.0.1 (port 0 = any free port) and resolves once it
 * listens. Returns { port, http_url, ws_url, data_dir, stop(), kill(), exited }.
 */
export async function start_clapsd({ port = 0, data_dir, args = [], timeout_ms = 20000 } = {}) {
  const dir = data_dir ?? temp_data_dir();
  const child = spawn(clapsd_binary(),
    ['--listen', `127.0.0.1:${port}`, '--data-dir', dir, ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.stderr.on('data', (d) => {
    stderr += d;
    if (stderr.length > 65536) stderr = stderr.slice(-32768);
  });
  const listening = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`clapsd did not report listening within ${timeout_ms} ms\nstderr:\n${stderr}`)), timeout_ms);
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = LISTENING.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve({ host: m[1], port: Number(m[2]) });
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`clapsd exited (code ${code}, signal ${signal}) before listening\nstderr:\n${stderr}`));
    });
  });
  child.stdout.resume();

  let done = false;
  exited.then(() => { done = true; });
  const wait_exit = async (limit_ms) => {
    let timer;
    const result = await Promise.race([
      exited,
      new Promise((resolve) => { timer = setTimeout(() => resolve(null), limit_ms); }),
    ]);
    clearTimeout(timer);
    return result;
  };
  return {
    port: listening.port,
    host: listening.host,
    http_url: `http://127.0.0.1:${listening.port}`,
    ws_url: `ws://127.0.0.1:${listening.port}/ws`,
    data_dir: dir,
    pid: child.pid,
    get stderr() { return stderr; },
    exited,
    /** SIGTERM (graceful: pending claps commit), then SIGKILL past the deadline. */
    async stop(limit_ms = 10000) {
      if (done) return exited;
      child.kill('SIGTERM');
      const result = await wait_exit(limit_ms);
      if (result) return result;
      child.kill('SIGKILL');
      return exited;
    },
    /** SIGKILL: a crash, nothing graceful. */
    async kill() {
      if (done) return exited;
      child.kill('SIGKILL');
      return exited;
    },
  };
}

export function remove_dir(dir) {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Polls `probe` (sync or async) until it returns a truthy value, or throws
 * after `timeout_ms` with `what` and the last value seen. For conditions that
 * have no event of their own; each poll yields to the event loop.
 */
export async function eventually(probe, { timeout_ms = 5000, interval_ms = 10, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout_ms;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout_ms} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((resolve) => setTimeout(resolve, interval_ms));
  }
}
