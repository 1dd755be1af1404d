// Tests for bindings/js/claps-client.js against a real clapsd (node --test).
// The WebSocket is npm `ws`, optionally inside a fault-injecting wrapper
// that records frames, drops acks or refuses connections like a network
// outage would.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { ClapsClient, backoff_delay, OP_ID_PATTERN } from '../../bindings/js/claps-client.js';
import { eventually, startServer, tempDir } from '../integration/helpers.mjs';

/** Resolves with the first `type` event whose detail satisfies `match`. */
function next_event(client, type, match = () => true, timeout_ms = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no '${type}' event matching within ${timeout_ms} ms (status ${client.status})`));
    }, timeout_ms);
    const off = client.on(type, (detail) => {
      if (!match(detail)) return;
      clearTimeout(timer);
      off();
      resolve(detail);
    });
  });
}

async function live(client) {
  if (client.status !== 'live') await next_event(client, 'status', (s) => s.status === 'live');
}

/** Waits until the client has no unacknowledged ops (acks are events). */
async function settled(client, timeout_ms = 10000) {
  if (client.unacknowledged === 0) return;
  await next_event(client, 'ack', () => client.unacknowledged === 0, timeout_ms);
}

/**
 * A WebSocket constructor around npm ws that records every frame and lets a
 * test cut the network: while `network.down`, connections fail like an
 * unreachable host; `drop()` kills the live socket; `on_frame` may swallow
 * an incoming frame.
 */
function faulty_network() {
  const network = { down: false, sent: [], received: [], sockets: [], on_frame: null, attempts: 0 };
  network.drop = () => { for (const s of network.sockets) s.inner?.terminate(); };
  network.Socket = class FaultySocket {
    constructor(url) {
      network.attempts += 1;
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      if (network.down) {
        this.inner = null;
        queueMicrotask(() => {
          this.onerror?.({ type: 'error' });
          this.onclose?.({ code: 1006, reason: 'network down' });
        });
        return;
      }
      const inner = new WebSocket(url);
      this.inner = inner;
      network.sockets.push(this);
      inner.onopen = (e) => this.onopen?.(e);
      inner.onerror = (e) => this.onerror?.(e);
      inner.onclose = (e) => {
        network.sockets = network.sockets.filter((s) => s !== this);
        this.onclose?.(e);
      };
      inner.onmessage = (e) => {
        const frame = JSON.parse(e.data);
        network.received.push(frame);
        if (network.on_frame?.(frame, this) === 'drop') return;
        this.onmessage?.(e);
      };
    }
    get readyState() { return this.inner ? this.inner.readyState : 3; }
    send(data) {
      network.sent.push(JSON.parse(data));
      this.inner.send(data);
    }
    close(code, reason) { this.inner?.close(code, reason); }
  };
  return network;
}

async function rest_total(server, article) {
  const response = await fetch(`${server.http}/api/articles/${article}`);
  assert.equal(response.status, 200);
  return (await response.json()).total;
}

test('backoff_delay draws from [0, min(cap, base * 2^attempt)) (full jitter)', () => {
  const top = () => 1 - Number.EPSILON;
  const bottom = () => 0;
  for (let attempt = 0; attempt < 40; attempt += 1) {
    const ceiling = Math.min(5000, 250 * 2 ** attempt);
    assert.ok(backoff_delay(attempt, { random: top }) < ceiling);
    assert.ok(backoff_delay(attempt, { random: top }) >= ceiling - 1);
    assert.equal(backoff_delay(attempt, { random: bottom }), 0);
  }
  // The default cap is 5 s however long the outage.
  assert.ok(backoff_delay(1000, { random: top }) <= 5000);
  for (let i = 0; i < 1000; i += 1) {
    const d = backoff_delay(3);
    assert.ok(d >= 0 && d < 2000);
  }
});

test('the client refuses bad ids and a missing WebSocket before touching the network', () => {
  assert.throws(() => new ClapsClient({ url: 'ws://127.0.0.1:9/ws', user: 'bad name', WebSocket }), /user/);
  const saved = globalThis.WebSocket;
  try {
    delete globalThis.WebSocket;
    assert.throws(() => new ClapsClient({ url: 'ws://127.0.0.1:9/ws' }), /WebSocket/);
  } finally {
    if (saved) globalThis.WebSocket = saved;
  }
  const client = new ClapsClient({ url: 'ws://127.0.0.1:9/ws', WebSocket, connect: false });
  assert.throws(() => client.clap('no spaces allowed'), /article/);
  assert.throws(() => client.subscribe(['ok', 'not/ok']), /article/);
  client.close();
});

describe('against a real clapsd', () => {
  let server;
  const clients = [];
  const make = (options) => {
    const client = new ClapsClient({ url: server.ws, WebSocket, ...options });
    clients.push(client);
    return client;
  };

  before(async () => { server = await startServer(); });
  after(async () => {
    for (const c of clients) c.close();
    await server.stop();
  });

  test('hello sets user, cap and tick; subscribe yields a snapshot with mine', async () => {
    const client = make({ user: 'hello-user', connect: false });
    const snapshot = next_event(client, 'counts', (e) => e.source === 'snapshot');
    client.subscribe(['hello-article']);
    assert.equal(client.status, 'connecting');
    client.connect();
    await live(client);
    const { articles } = await snapshot;
    assert.equal(client.user, 'hello-user');
    assert.equal(client.cap, 50);
    assert.ok(client.tickMs > 0);
    assert.equal(articles[0].article, 'hello-article');
    assert.equal(articles[0].total, 0);
    assert.equal(articles[0].mine, 0);
    assert.equal(articles[0].viewers, 1);
  });

  test('presses within a tick go out as one clap message, with valid unique op ids', async () => {
    const network = faulty_network();
    const client = make({ user: 'batcher', WebSocket: network.Socket });
    client.subscribe(['batch-article']);
    await live(client);
    for (let i = 0; i < 10; i += 1) assert.equal(client.clap('batch-article'), 1);
    assert.equal(client.view('batch-article').mine, 10, 'optimistic view counts unsent claps');
    const ack = await next_event(client, 'ack');
    assert.equal(ack.accepted, 10);
    assert.equal(ack.total, 10);
    assert.equal(ack.mine, 10);
    let claps = network.sent.filter((f) => f.type === 'clap');
    assert.equal(claps.length, 1, 'ten presses in one tick -> one message');
    assert.equal(claps[0].count, 10);

    // A second burst in a later tick is a second message with a new id.
    client.clap('batch-article', 3);
    await settled(client);
    claps = network.sent.filter((f) => f.type === 'clap');
    assert.equal(claps.length, 2);
    assert.equal(claps[1].count, 3);
    assert.notEqual(claps[0].id, claps[1].id);
    for (const c of claps) assert.match(c.id, OP_ID_PATTERN);
    assert.equal(await rest_total(server, 'batch-article'), 13);
  });

  test('opts in to batch frames: a tick of acks arrives as one frame, each reported as an ack', async () => {
    const network = faulty_network();
    const client = make({ user: 'acks-batcher', WebSocket: network.Socket });
    // Short ids: a batch frame is cut where lws cuts a send() (276 bytes
    // with clapsd's default --rx-buffer-bytes 256), and two acks must fit.
    const articles = Array.from({ length: 8 }, (_, i) => `ab-${i}`);
    client.subscribe(articles);
    await live(client);
    assert.equal(new URL(network.sockets[0].inner.url).searchParams.get('batch'), '1');
    const acks = [];
    client.on('ack', (a) => acks.push(a));
    // One press per article: eight clap messages in one flush, so eight acks
    // complete in the same commit.
    for (const a of articles) assert.equal(client.clap(a), 1);
    client.flush();
    await settled(client);
    assert.deepEqual(acks.map((a) => a.article).sort(), [...articles].sort());
    for (const a of acks) assert.equal(a.accepted, 1);
    for (const a of articles) assert.equal(client.view(a).mine, 1);
    // However the eight messages fell into ticks, one tick held at least two
    // of them, and its acks shared a frame.
    const batches = network.received.filter((f) => f.type === 'batch');
    assert.ok(batches.some((b) => b.messages.filter((m) => m.type === 'ack').length >= 2),
      `expected a batch of acks, got ${JSON.stringify(network.received.map((f) => f.type))}`);
    assert.equal(network.received.filter((f) => f.type === 'ack').length +
      batches.reduce((n, b) => n + b.messages.filter((m) => m.type === 'ack').length, 0), 8, 'every ack once');
  });

  test('claps stop at the cap, and undo takes them all back for everyone', async () => {
    const clapper = make({ user: 'capper' });
    const watcher = make({ user: 'cap-watcher' });
    clapper.subscribe(['cap-article']);
    watcher.subscribe(['cap-article']);
    await Promise.all([live(clapper), live(watcher)]);
    assert.equal(clapper.clap('cap-article', 60), 50, 'queues only up to the cap');
    assert.equal(clapper.clap('cap-article'), 0, 'nothing past the cap');
    assert.equal(clapper.view('cap-article').capped, true);
    await settled(clapper);
    assert.equal(clapper.view('cap-article').mine, 50);
    // The update may already have arrived while the clapper waited for its acks.
    if (watcher.view('cap-article').total !== 50)
      await next_event(watcher, 'counts', () => watcher.view('cap-article').total === 50);

    const undo_ack = next_event(clapper, 'ack', (a) => a.kind === 'undo');
    clapper.undo('cap-article');
    assert.equal(clapper.view('cap-article').mine, 0, 'optimistic undo');
    const ack = await undo_ack;
    assert.equal(ack.accepted, -50);
    assert.equal(ack.mine, 0);
    assert.equal(ack.total, 0);
    if (watcher.view('cap-article').total !== 0)
      await next_event(watcher, 'counts', () => watcher.view('cap-article').total === 0);
    assert.equal(clapper.clap('cap-article'), 1, 'can clap again after undo');
    await settled(clapper);
    assert.equal(await rest_total(server, 'cap-article'), 1);
  });

  test('a clap whose ack was lost is retried with the same op id and counted once', async () => {
    const network = faulty_network();
    // Swallow the first ack and cut the connection: the server committed the
    // clap, the client cannot know.
    let dropped = null;
    network.on_frame = (frame) => {
      if (frame.type === 'ack' && !dropped) {
        dropped = frame;
        network.drop();
        return 'drop';
      }
      return undefined;
    };
    const client = make({ user: 'retrier', WebSocket: network.Socket, backoff: { baseMs: 20, capMs: 200 } });
    client.subscribe(['retry-article']);
    await live(client);
    const reconnecting = next_event(client, 'status', (s) => s.status === 'reconnecting');
    client.clap('retry-article', 5);
    await reconnecting;
    assert.ok(dropped, 'the first ack was dropped');
    await live(client);
    await settled(client);
    const claps = network.sent.filter((f) => f.type === 'clap');
    assert.equal(claps.length, 2, 'sent once, resent once');
    assert.equal(claps[1].id, claps[0].id, 'the retry reuses the op id');
    assert.equal(claps[1].count, 5);
    // The resend precedes the resubscribe, so the snapshot already holds it.
    const resend_at = network.sent.indexOf(claps[1]);
    const resubscribe_at = network.sent.findIndex((f, i) => i > resend_at && f.type === 'subscribe');
    assert.ok(resubscribe_at > resend_at);
    assert.equal(client.view('retry-article').total, 5);
    assert.equal(client.view('retry-article').mine, 5);
    assert.equal(await rest_total(server, 'retry-article'), 5, 'counted once');
  });

  test('after a network outage it resubscribes and takes the new snapshot as the truth', async () => {
    const network = faulty_network();
    const away = make({ user: 'away', WebSocket: network.Socket, backoff: { baseMs: 20, capMs: 100 } });
    const other = make({ user: 'stayed' });
    away.subscribe(['outage-article']);
    other.subscribe(['outage-article']);
    await Promise.all([live(away), live(other)]);
    away.clap('outage-article', 3);
    await settled(away);

    network.down = true;
    const reconnecting = next_event(away, 'status', (s) => s.status === 'reconnecting');
    network.drop();
    await reconnecting;
    // While it is away: someone else claps, and it claps too (held locally).
    other.clap('outage-article', 4);
    await settled(other);
    away.clap('outage-article', 2);
    assert.equal(away.view('outage-article').total, 5, 'stale total + own unsent claps');
    const attempts_before = network.attempts;
    await eventually(() => network.attempts >= attempts_before + 3, { what: 'three failed reconnect attempts' });

    network.down = false;
    const snapshot = next_event(away, 'counts', (e) => e.source === 'snapshot');
    await live(away);
    const { articles } = await snapshot;
    // 3 (own, earlier) + 4 (other) committed, + 2 own claps held while away.
    assert.equal(articles[0].total, 9);
    await settled(away);
    assert.equal(away.view('outage-article').total, 9);
    assert.equal(away.view('outage-article').mine, 5);
    assert.equal(away.view('outage-article').viewers, 2);
    assert.equal(await rest_total(server, 'outage-article'), 9);
  });

  test('reports offline when reconnecting takes too long, and keeps trying', async () => {
    const network = faulty_network();
    const client = make({ user: 'offliner', WebSocket: network.Socket, offlineAfterMs: 200, backoff: { baseMs: 20, capMs: 60 } });
    client.subscribe(['offline-article']);
    await live(client);
    network.down = true;
    const offline = next_event(client, 'status', (s) => s.status === 'offline');
    network.drop();
    await offline;
    const attempts = network.attempts;
    await eventually(() => network.attempts > attempts, { what: 'attempts while offline' });
    network.down = false;
    await live(client);
  });
});

test('survives clapsd being killed and restarted on the same port: backoff capped, nothing lost or doubled', async (t) => {
  const data_dir = tempDir('claps-client-');
  let server = await startServer({ dataDir: data_dir });
  const port = server.port;
  const statuses = [];
  const client = new ClapsClient({ url: server.ws, user: 'survivor', WebSocket, backoff: { baseMs: 50, capMs: 400 } });
  t.after(async () => {
    client.close();
    await server.stop();
  });
  client.on('status', (s) => statuses.push(s));
  client.subscribe(['restart-article']);
  await live(client);
  client.clap('restart-article', 4);
  await settled(client);

  // Clap and crash at once: the clap may or may not have been committed.
  client.clap('restart-article', 3);
  client.flush();
  assert.equal(client.unacknowledged, 1);
  const reconnecting = next_event(client, 'status', (s) => s.status === 'reconnecting');
  await server.stop('SIGKILL');
  await reconnecting;
  // Let it fail a few times against the closed port; each delay obeys the cap.
  await next_event(client, 'status', (s) => s.attempt >= 3);

  server = await startServer({ dataDir: data_dir, listen: `127.0.0.1:${port}` });
  assert.equal(server.port, port);
  await live(client);
  await settled(client);
  assert.equal(client.view('restart-article').total, 7);
  assert.equal(client.view('restart-article').mine, 7);
  assert.equal(await rest_total(server, 'restart-article'), 7, 'the crashed clap counted exactly once');

  const retries = statuses.filter((s) => s.attempt !== undefined);
  assert.ok(retries.length >= 3);
  for (const s of retries) {
    assert.ok(s.delayMs >= 0 && s.delayMs < Math.min(400, 50 * 2 ** s.attempt), JSON.stringify(s));
  }
  assert.deepEqual(retries.map((s) => s.attempt), retries.map((_, i) => i), 'attempts count up from 0');
  assert.equal(statuses.at(-1).status, 'live');
});

describe('against a clapsd with a strict rate limit (10/s, burst 5)', () => {
  let server;
  const clients = [];
  const make = (options) => {
    const client = new ClapsClient({ url: server.ws, WebSocket, ...options });
    clients.push(client);
    return client;
  };
  before(async () => { server = await startServer({ args: ['--rate-limit', '10', '--rate-burst', '5'] }); });
  after(async () => {
    for (const c of clients) c.close();
    await server.stop();
  });

  test('ops refused as rate_limited are resent with the same id until counted', async () => {
    const network = faulty_network();
    // The client's own limiter off, so the server's has to refuse.
    const client = make({ user: 'flooder', WebSocket: network.Socket, retryAfterMs: 150, rateLimit: null });
    const errors = [];
    client.on('error', (e) => errors.push(e));
    client.subscribe(['flood-article']);
    await live(client);
    // Twelve separate messages at once: past the burst of 5.
    for (let i = 0; i < 12; i += 1) {
      client.clap('flood-article', 1);
      client.flush();
    }
    await settled(client, 20000);
    assert.ok(errors.some((e) => e.code === 'rate_limited' && e.willRetry), 'some were rate limited');
    const ids = new Set(network.sent.filter((f) => f.type === 'clap').map((f) => f.id));
    assert.equal(ids.size, 12, 'retries reuse their ids');
    assert.equal(client.view('flood-article').mine, 12);
    assert.equal(await rest_total(server, 'flood-article'), 12);

    // An undo while refused claps wait for their resend: they were never
    // applied, so the undo covers them and they must not land after it.
    const refused_before = errors.length;
    for (let i = 0; i < 12; i += 1) {
      client.clap('undo-flood-article', 1);
      client.flush();
    }
    await eventually(() => errors.length > refused_before, { what: 'a rate_limited refusal' });
    client.undo('undo-flood-article');
    await settled(client, 20000);
    assert.equal(client.view('undo-flood-article').mine, 0);
    assert.equal(await rest_total(server, 'undo-flood-article'), 0);
  });

  test('subscribes refused as rate_limited are sent again until answered', async () => {
    const network = faulty_network();
    const client = make({ user: 'subflood', WebSocket: network.Socket, retryAfterMs: 150, rateLimit: null });
    const errors = [];
    client.on('error', (e) => errors.push(e));
    await live(client);
    // Eight subscribe messages at once draw on the user's bucket (burst 5).
    const articles = Array.from({ length: 8 }, (_, i) => `subflood-${i}`);
    for (const article of articles) client.subscribe([article]);
    await eventually(() => articles.every((a) => client.view(a).known && client.view(a).total !== null),
      { ms: 10000, what: 'a snapshot for every article' });
    const refused = errors.filter((e) => e.code === 'rate_limited');
    assert.ok(refused.length > 0, 'some subscribes were refused');
    assert.ok(refused.every((e) => e.willRetry && e.articles.length === 1));
    const subscribes = network.sent.filter((f) => f.type === 'subscribe');
    assert.ok(subscribes.length > articles.length, 'refused ones were sent again');
    // Subscribed for real: a clap by someone else reaches this client.
    const other = make({ user: 'subflood-other', WebSocket });
    other.clap('subflood-7', 3);
    await settled(other);
    await eventually(() => client.view('subflood-7').total === 3, { what: 'the update for the last article' });
  });

  test('the client keeps under the limit itself: held-back presses merge into later messages', async () => {
    const network = faulty_network();
    const client = make({ user: 'polite', WebSocket: network.Socket, rateLimit: { perSecond: 10, burst: 5 } });
    const errors = [];
    client.on('error', (e) => errors.push(e));
    client.subscribe(['polite-article']);
    await live(client);
    for (let i = 0; i < 20; i += 1) {
      client.clap('polite-article', 1);
      client.flush(); // asks for a message per press; the limiter says no past 5
    }
    await settled(client, 20000);
    const claps = network.sent.filter((f) => f.type === 'clap');
    assert.deepEqual(errors, []);
    assert.ok(claps.length < 20, `${claps.length} messages for 20 presses`);
    assert.equal(claps.reduce((sum, f) => sum + f.count, 0), 20);
    assert.equal(await rest_total(server, 'polite-article'), 20);
  });
});
