#!/usr/bin/env node
// A small WebSocket server embedding the engine (no clapsd): enough of
// docs/protocol.md for the basic flow (hello, subscribe, clap, undo, acks,
// errors, tick updates), in demo mode (?user=NAME). bindings/js's
// ClapsClient and examples/claps-simulate.mjs work against it.
//
//   node ws_server.mjs [--port 8080] [--data DIR]   (LMDB in DIR; memory without)
//
// Prints "listening on ws://127.0.0.1:PORT/ws" once it accepts connections;
// on SIGINT/SIGTERM it stops, after every clap taken has its ack.
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { WebSocketServer } from 'ws';

const require = createRequire(import.meta.url);
const { Engine, LmdbStore, MemoryStore } = require('../index.js');

const { values: args } = parseArgs({
  options: { port: { type: 'string', default: '8080' }, data: { type: 'string' } },
});
const ID = /^[A-Za-z0-9._:-]{1,128}$/;
const OP_ID = /^[A-Za-z0-9._:-]{1,64}$/;
const TICK_MS = 25;
const CAP = 50;

const store = args.data ? new LmdbStore(args.data) : new MemoryStore();
const connections = new Map(); // subscriber id -> ws
let nextSubscriber = 1;

const send = (ws, frame) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(frame));
const badRequest = (message) => Object.assign(new Error(message), { wireName: 'bad_request' });
// The engine's errors carry the protocol's code as .wireName (and .reason).
const errorFrame = (error, id) => ({
  type: 'error', code: error.wireName, ...(error.reason ? { reason: error.reason } : {}),
  message: error.message, ...(id ? { id } : {}),
});

const engine = new Engine(store, {
  tickMs: TICK_MS,
  clapCap: CAP,
  // One counts frame per connection per tick, with every changed article.
  onUpdate(subscriber, updates) {
    const ws = connections.get(subscriber);
    if (ws) send(ws, { type: 'counts', counts: updates });
  },
});

function onMessage(ws, subscriber, user, text) {
  let m;
  try {
    m = JSON.parse(text);
  } catch {
    return send(ws, errorFrame(badRequest('malformed JSON')));
  }
  if (typeof m !== 'object' || m === null) return send(ws, errorFrame(badRequest('not an object')));
  const id = typeof m.id === 'string' && OP_ID.test(m.id) ? m.id : undefined;
  try {
    switch (m.type) {
      case 'subscribe': {
        if (!Array.isArray(m.articles) || !m.articles.every((a) => typeof a === 'string')) {
          throw badRequest('"articles" must be an array of strings');
        }
        // All or nothing, as clapsd: one snapshot per article, in order.
        const snaps = engine.subscribe(subscriber, user, m.articles, m.reading !== false);
        return send(ws, {
          type: 'counts', ...(id ? { id } : {}), snapshot: true,
          counts: snaps.map(({ article, total, viewers, mine }) => ({ article, total, viewers, mine })),
        });
      }
      case 'unsubscribe':
        for (const a of Array.isArray(m.articles) ? m.articles : []) {
          if (typeof a === 'string') engine.unsubscribe(subscriber, a);
        }
        return undefined;
      case 'clap':
      case 'undo': {
        if (typeof m.article !== 'string') throw badRequest('"article" must be a string');
        if (m.type === 'clap' && m.count !== undefined && !Number.isInteger(m.count)) {
          throw badRequest('"count" must be an integer');
        }
        const request = { user, article: m.article, opId: id };
        if (m.type === 'clap') request.count = m.count ?? 1;
        engine[m.type](request).then(
          (r) => send(ws, {
            type: 'ack', ...(id ? { id } : {}), article: r.article, accepted: r.accepted, total: r.total,
            mine: r.mine, durability: r.durability, ...(r.replayed ? { replayed: true } : {}),
          }),
          (error) => send(ws, errorFrame(error, id)));
        return undefined;
      }
      default:
        throw badRequest('unknown type');
    }
  } catch (error) {
    if (!error.wireName) throw error; // a bug here, not bad input
    return send(ws, errorFrame(error, id));
  }
}

const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(args.port), path: '/ws' });
wss.on('connection', (ws, request) => {
  const named = new URL(request.url, 'http://localhost').searchParams.get('user');
  const user = named ?? `anon-${Math.random().toString(16).slice(2, 12)}`;
  if (!ID.test(user)) return ws.close(1008, 'invalid user');
  const subscriber = nextSubscriber++;
  connections.set(subscriber, ws);
  send(ws, { type: 'hello', protocol: 1, user, tick_ms: TICK_MS, cap: CAP });
  ws.on('message', (data, isBinary) => {
    if (isBinary) return send(ws, errorFrame(badRequest('binary frame')));
    return onMessage(ws, subscriber, user, data.toString());
  });
  ws.on('close', () => {
    connections.delete(subscriber);
    if (!engine.closed) engine.unsubscribeAll(subscriber);
  });
  return undefined;
});
wss.on('listening', () => console.log(`listening on ws://127.0.0.1:${wss.address().port}/ws`));

async function shutdown() {
  wss.close(); // no new connections
  await engine.close(); // every clap taken has its result, and its ack went out
  if (store instanceof LmdbStore) store.close();
  for (const ws of wss.clients) ws.close(1001, 'going away');
}
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
