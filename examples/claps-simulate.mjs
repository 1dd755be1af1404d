#!/usr/bin/env node
// claps-simulate: N simulated readers over M articles, clapping at R claps/s
// each, through clapsd's WebSocket protocol and the JS client
// (bindings/js/claps-client.js) with npm `ws`. Prints a live progress line and
// exits after --duration seconds.
//
//   node examples/claps-simulate.mjs --url ws://127.0.0.1:8080/ws \
//        --users 50 --articles 3 --rate 2 --duration 20
//
// --articles takes a count (the first M demo articles, then article-N) or a
// comma-separated list of ids. A reader that reaches the cap leaves and a new
// one (a new user name) takes its seat, so long runs keep clapping.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { ClapsClient, ID_PATTERN } from '../bindings/js/claps-client.js';

const HELP = `usage: node examples/claps-simulate.mjs [options]
  --url URL          clapsd WebSocket endpoint (default ws://127.0.0.1:8080/ws)
  --users N          simulated readers, one connection each (default 10)
  --articles M|IDS   number of articles, or comma-separated ids (default 3)
  --rate R           claps per second per reader (default 1)
  --duration S       seconds to run before stopping (default 10)
  --prefix P         user name prefix (default sim-<random>)
  --help             this text`;

function parse_options() {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: 'ws://127.0.0.1:8080/ws' },
      users: { type: 'string', default: '10' },
      articles: { type: 'string', default: '3' },
      rate: { type: 'string', default: '1' },
      duration: { type: 'string', default: '10' },
      prefix: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  const number = (name, min, max) => {
    const n = Number(values[name]);
    if (!Number.isFinite(n) || n < min || n > max) {
      console.error(`claps-simulate: --${name} must be a number in [${min}, ${max}]\n\n${HELP}`);
      process.exit(2);
    }
    return n;
  };
  const users = Math.floor(number('users', 1, 10000));
  const rate = number('rate', 0.01, 1000);
  const duration = number('duration', 0.1, 86400);
  const articles = article_ids(values.articles);
  const prefix = values.prefix ?? `sim-${Math.random().toString(36).slice(2, 6)}`;
  for (const id of [...articles, prefix]) {
    if (!ID_PATTERN.test(id)) {
      console.error(`claps-simulate: "${id}" is not a valid id ([A-Za-z0-9._:-], 1-128 characters)`);
      process.exit(2);
    }
  }
  return { url: values.url, users, rate, duration, articles, prefix };
}

function article_ids(spec) {
  if (!/^\d+$/.test(spec)) return spec.split(',').map((s) => s.trim()).filter(Boolean);
  const count = Number(spec);
  let demo = [];
  try {
    const file = new URL('../server/web/static/articles.json', import.meta.url);
    demo = JSON.parse(readFileSync(file, 'utf8')).map((a) => a.id);
  } catch { /* not run from a checkout: generated ids only */ }
  const ids = demo.slice(0, count);
  for (let i = ids.length + 1; ids.length < count; i += 1) ids.push(`article-${i}`);
  return ids;
}

const options = parse_options();
const started = Date.now();
const retired = { claps_sent: 0, claps_acked: 0, updates: 0, errors: 0, reconnects: 0 };
const readers = [];
let stopping = false;

function spawn(reader) {
  const user = reader.generation ? `${reader.base}.${reader.generation}` : reader.base;
  reader.client = new ClapsClient({ url: options.url, user, WebSocket });
  reader.client.subscribe([reader.article], { reading: true });
  reader.client.on('error', (err) => {
    if (!err.willRetry) last_error = `${err.code}: ${err.message}`;
  });
}

function retire(reader) {
  const s = reader.client.stats;
  retired.claps_sent += s.claps_sent;
  retired.claps_acked += s.claps_acked;
  retired.updates += s.update_items;
  retired.errors += s.errors;
  retired.reconnects += Math.max(0, s.connects - 1);
  reader.client.close();
}

function clap(reader) {
  const client = reader.client;
  if (client.status !== 'live') return;
  if (client.clap(reader.article, 1) > 0) return;
  if (client.unacknowledged > 0) return;
  // At the cap: this reader leaves and a fresh one takes the seat.
  retire(reader);
  reader.generation += 1;
  spawn(reader);
}

function totals() {
  const t = { ...retired, live: 0 };
  for (const r of readers) {
    const s = r.client.stats;
    t.claps_sent += s.claps_sent;
    t.claps_acked += s.claps_acked;
    t.updates += s.update_items;
    t.errors += s.errors;
    t.reconnects += Math.max(0, s.connects - 1);
    if (r.client.status === 'live') t.live += 1;
  }
  return t;
}

let last_error = '';
function progress_line() {
  const t = totals();
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  return `[${secs.padStart(6)}s] live ${t.live}/${readers.length} · claps sent ${t.claps_sent}`
    + ` · acked ${t.claps_acked} · updates received ${t.updates}`
    + (t.errors ? ` · errors ${t.errors}` : '') + (t.reconnects ? ` · reconnects ${t.reconnects}` : '')
    + (last_error ? ` · last error ${last_error}` : '');
}

const tty = process.stdout.isTTY;
function print_progress(final = false) {
  const line = progress_line();
  if (tty) process.stdout.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
  else console.log(line);
}

console.log(`claps-simulate: ${options.users} readers over ${options.articles.length} articles`
  + ` (${options.articles.join(', ')}) at ${options.rate} claps/s each for ${options.duration}s -> ${options.url}`);

for (let i = 0; i < options.users; i += 1) {
  const reader = {
    base: `${options.prefix}-${i + 1}`,
    article: options.articles[i % options.articles.length],
    generation: 0,
    client: null,
    timer: null,
  };
  readers.push(reader);
  spawn(reader);
  const period = 1000 / options.rate;
  const next = () => {
    reader.timer = setTimeout(() => {
      if (stopping) return;
      clap(reader);
      next();
    }, period * (0.5 + Math.random()));
  };
  next();
}

const progress_timer = setInterval(() => print_progress(), tty ? 250 : 1000);

async function finish(reason) {
  if (stopping) return;
  stopping = true;
  for (const r of readers) clearTimeout(r.timer);
  for (const r of readers) r.client.flush();
  // Give outstanding claps a bounded chance to be acknowledged.
  const deadline = Date.now() + 5000;
  await new Promise((resolve) => {
    const check = () => {
      const open = readers.some((r) => r.client.unacknowledged > 0 && r.client.status === 'live');
      if (!open || Date.now() > deadline) return resolve();
      setTimeout(check, 50);
    };
    check();
  });
  clearInterval(progress_timer);
  print_progress(true);
  const t = totals();
  for (const r of readers) retire(r);
  console.log(`claps-simulate: ${reason}; ${t.claps_sent} claps sent, ${t.claps_acked} acknowledged,`
    + ` ${t.updates} updates received, ${t.errors} errors`);
  process.exit(t.claps_sent > 0 || options.rate * options.duration < 1 ? 0 : 1);
}

setTimeout(() => finish('done'), options.duration * 1000);
process.on('SIGINT', () => finish('interrupted'));
process.on('SIGTERM', () => finish('terminated'));
