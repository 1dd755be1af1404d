// Shared helpers for clapsd integration tests: start the real server on a
// free loopback port, talk to it with npm `ws`, wait on events with deadlines.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from '../../node_modules/ws/wrapper.mjs';

export { WebSocket };

export const CLAPSD = process.env.CLAPSD ??
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../build/server/clapsd');

/** A fresh temporary directory, removed at process exit. */
export function tempDir(prefix = 'clapsd-test-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Resolves with `promise`, or rejects after `ms` with `what` in the message. */
export function deadline(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Starts clapsd with `args` (plus --listen 127.0.0.1:0 and a temp --data-dir
 * unless given) and waits for its "listening" line. `launcher` runs it
 * through another command, e.g. ['prlimit', '--nofile=64', '--'].
 * SIGTERM drains without the balancer grace and closes every client at once
 * (--drain-grace-s 0 --drain-spread-s 0), so stops stay quick; a test that
 * passes either flag itself wins (the last value of a flag counts).
 */
export async function startServer({ args = [], env = {}, dataDir, listen = '127.0.0.1:0', launcher = [] } = {}) {
  const dir = dataDir ?? tempDir();
  const fullArgs = ['--listen', listen, '--drain-grace-s', '0', '--drain-spread-s', '0', ...args];
  if (!args.includes('--data-dir') && !args.includes('--store=memory')) fullArgs.push('--data-dir', dir);
  const [command, ...commandArgs] = [...launcher, CLAPSD, ...fullArgs];
  const child = spawn(command, commandArgs, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const server = {
    child, dataDir: dir, stdout: '', stderr: '', port: 0,
    exited: new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal }))),
  };
  child.stderr.on('data', (d) => { server.stderr += d; });
  const listening = new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      server.stdout += d;
      const m = server.stdout.match(/clapsd listening on http:\/\/([^:\s]+):(\d+)\n/);
      if (m) resolve(Number(m[2]));
    });
    server.exited.then(({ code }) =>
      reject(new Error(`clapsd exited (${code}) before listening: ${server.stderr}`)));
  });
  server.port = await deadline(listening, 10000, 'clapsd to listen');
  // With --admin-listen, its line comes first.
  const admin = server.stdout.match(/clapsd admin on (http:\/\/\S+):(\d+)\n/);
  if (admin) server.admin = `${admin[1]}:${admin[2]}`.replace('[::ffff:127.0.0.1]', '127.0.0.1');
  server.http = `http://127.0.0.1:${server.port}`;
  server.ws = `ws://127.0.0.1:${server.port}/ws`;
  // A SIGTERM stop must be clean (exit 0): under sanitizers that also means
  // no leak and no memory error. Pass {clean: false} to inspect the code.
  server.stop = async (signal = 'SIGTERM', { clean = signal === 'SIGTERM' } = {}) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const result = await deadline(server.exited, 15000, 'clapsd to exit');
    if (clean && result.code !== 0) {
      throw new Error(`clapsd exited with ${result.code} (${result.signal}); stderr:\n${server.stderr}`);
    }
    return result;
  };
  return server;
}

/** Runs clapsd to completion (for flag errors); resolves {code, stdout, stderr}. */
export function runClapsd(args, env = {}) {
  return deadline(new Promise((resolve) => {
    const child = spawn(CLAPSD, args, { env: { ...process.env, ...env } });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  }), 15000, `clapsd ${args.join(' ')} to exit`);
}

/**
 * A WebSocket client that records every frame, so a test can wait for the
 * frame it expects: `await c.next(f => f.type === 'ack')`.
 */
export class client {
  constructor(url, options = {}) {
    this.frames = [];
    this.waiters = [];
    this.ws = new WebSocket(url, options);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('unexpected-response', (req, res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, body })));
      });
      this.ws.once('error', reject);
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    this.ws.on('error', () => {});
    this.ws.on('message', (data) => {
      const frame = JSON.parse(data.toString());
      this.frames.push(frame);
      for (const w of [...this.waiters]) w(frame);
    });
  }

  static async open(url, options) {
    const c = new client(url, options);
    await deadline(c.opened, 5000, `WebSocket ${url} to open`);
    c.hello = await c.next((f) => f.type === 'hello');
    return c;
  }

  send(message) { this.ws.send(typeof message === 'string' ? message : JSON.stringify(message)); }

  /** The first frame (already received or future) after index `from` matching `pred`. */
  next(pred, { from = 0, ms = 5000, what = 'a matching frame' } = {}) {
    const seen = this.frames.slice(from).find(pred);
    if (seen) {
      this.frames.splice(this.frames.indexOf(seen), 1);
      return Promise.resolve(seen);
    }
    return deadline(new Promise((resolve) => {
      const w = (frame) => {
        if (!pred(frame)) return;
        this.waiters.splice(this.waiters.indexOf(w), 1);
        this.frames.splice(this.frames.indexOf(frame), 1);
        resolve(frame);
      };
      this.waiters.push(w);
    }), ms, what);
  }

  ack(id, ms) { return this.next((f) => (f.type === 'ack' || f.type === 'error') && f.id === id, { ms, what: `ack ${id}` }); }

  /**
   * The ack or error answering op `id`, or null when the connection closes
   * first (a server closing it, say). No deadline of its own: bound it by the
   * caller's, since a close is an answer too.
   */
  answerOrClose(id) {
    const seen = this.frames.find((f) => (f.type === 'ack' || f.type === 'error') && f.id === id);
    if (seen) return Promise.resolve(seen);
    if (this.ws.readyState !== WebSocket.OPEN) return Promise.resolve(null);
    return new Promise((resolve) => {
      const check = (f) => {
        if ((f.type !== 'ack' && f.type !== 'error') || f.id !== id) return;
        finish(f);
      };
      const onClose = () => finish(null);
      const finish = (value) => {
        this.waiters.splice(this.waiters.indexOf(check), 1);
        this.ws.off('close', onClose);
        resolve(value);
      };
      this.waiters.push(check);
      this.ws.on('close', onClose);
    });
  }
  error(pred = () => true, ms) { return this.next((f) => f.type === 'error' && pred(f), { ms, what: 'an error frame' }); }
  snapshot(id) { return this.next((f) => f.type === 'counts' && f.id === id, { what: `snapshot ${id}` }); }

  /** Waits for a tick update in which `article` satisfies `pred`. */
  update(article, pred = () => true, ms) {
    return this.next((f) => f.type === 'counts' && !f.snapshot &&
      f.counts.some((c) => c.article === article && pred(c)), { ms, what: `update for ${article}` })
      .then((f) => f.counts.find((c) => c.article === article));
  }

  async subscribe(articles, extra = {}) {
    const id = `s${Math.random().toString(36).slice(2, 10)}`;
    this.send({ type: 'subscribe', articles, id, ...extra });
    const reply = await this.next((f) => f.id === id, { what: `reply to subscribe ${id}` });
    return reply;
  }

  async clap(article, count = 1, id = `op-${Math.random().toString(36).slice(2, 12)}`) {
    this.send({ type: 'clap', article, count, id });
    return this.ack(id);
  }

  async undo(article, id = `op-${Math.random().toString(36).slice(2, 12)}`) {
    this.send({ type: 'undo', article, id });
    return this.ack(id);
  }

  close() {
    this.ws.close();
    return deadline(this.closed, 5000, 'WebSocket close');
  }
  terminate() { this.ws.terminate(); }
}

/** fetch() with a JSON body parsed. */
export async function request(url, init = {}) {
  const res = await deadline(fetch(url, init), 5000, `${init.method ?? 'GET'} ${url}`);
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, text, json };
}

/**
 * An SSE stream (GET `url`, with `headers`). clapsd's framing is strict: each
 * block is `event: NAME` + `data: JSON` (pushed to `events` as {event, data})
 * or a `:` heartbeat comment (counted in `heartbeats`); any other block sets
 * `error`. `onEvent` (if set) sees each event; an exception it throws sets
 * `error` too. `until(pred, what)` waits for a matching event and
 * `waitFor(check, what)` for any state of the stream; both reject with
 * `error` once set, or after `ms`. `response` resolves the response; a
 * refusal's body is `body` (a promise of its text). `stall()` stops reading
 * from the socket (a reader that never reads) and `close()` hangs up.
 */
export function sseStream(url, { ms = 5000, headers = {} } = {}) {
  const events = [];
  const waiters = [];
  let buffer = '';
  const req = http.get(url, { headers });
  const stream = { req, events, heartbeats: 0, error: undefined, onEvent: undefined };
  const block = (text) => {
    if (/^(:[^\n]*)(\n:[^\n]*)*$/.test(text)) {
      ++stream.heartbeats;
      return;
    }
    const m = /^event: (\S+)\ndata: (.*)$/.exec(text);
    if (!m) throw new Error(`an SSE block is neither an event nor a heartbeat: ${JSON.stringify(text)}`);
    const e = { event: m[1], data: JSON.parse(m[2]) };
    events.push(e);
    stream.onEvent?.(e);
  };
  stream.response = new Promise((resolve, reject) => {
    req.on('response', (res) => {
      res.setEncoding('utf8');
      if (res.statusCode !== 200) {
        stream.body = new Promise((done) => {
          let text = '';
          res.on('data', (d) => { text += d; });
          res.on('end', () => done(text));
        });
        resolve(res);
        return;
      }
      res.on('data', (chunk) => {
        buffer += chunk;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const text = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          try {
            block(text);
          } catch (e) {
            stream.error ??= e;
          }
          for (const w of [...waiters]) w();
        }
      });
      resolve(res);
    });
    req.on('error', reject);
  });
  stream.response.catch(() => {});
  stream.closed = new Promise((resolve) => req.on('close', resolve));
  stream.waitFor = (check, what) => deadline(new Promise((resolve, reject) => {
    const w = () => {
      const hit = stream.error ? undefined : check();
      if (!stream.error && !hit) return;
      waiters.splice(waiters.indexOf(w), 1);
      if (stream.error) reject(stream.error);
      else resolve(hit);
    };
    waiters.push(w);
    w();
  }), ms, what);
  stream.until = (pred, what) => stream.waitFor(() => events.find(pred), what);
  stream.stall = () => req.socket.pause();
  stream.close = () => req.destroy();
  return stream;
}

/** Reads one counter/gauge from /metrics. */
export async function metric(server, name) {
  return (await metrics(server))[name];
}

/** Every sample on /metrics: {'name' or 'name{labels}': value}. */
export async function metrics(server) {
  const { text } = await request(`${server.http}/metrics`);
  const out = {};
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m && !(m[1] in out)) out[m[1]] = Number(m[2]);
  }
  return out;
}

/** Polls `check` until it returns a truthy value (for state only visible by asking). */
export async function eventually(check, { ms = 5000, every = 20, what = 'condition' } = {}) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Opens a raw TCP connection (for handshake-level tests). */
export function rawConnect(port) {
  return deadline(new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  }), 5000, 'TCP connect');
}
