// claps-client.js - the JavaScript client for clapsd's WebSocket protocol v1.
//
// One dependency-free ES module for browsers and Node >= 18. Node 20 has no
// global WebSocket, so pass one (e.g. npm `ws`) as options.WebSocket.
//
// What it does for its caller:
//   - reconnects with exponential backoff and full jitter, capped at 5 s;
//   - on reconnect first resends every unacknowledged clap/undo with its
//     original op id (the server counts an op id once), then resubscribes and
//     takes the new snapshot as the truth;
//   - batches clap() calls into one clap message per article per tick;
//   - keeps an optimistic view per article (committed state plus this
//     client's unacknowledged ops) and reports it through small events:
//     counts, ack, status, error.
// See README.md next to this file for the API.

/** Ids on the wire: article, user and op ids share this alphabet. */
export const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
export const OP_ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * Full-jitter exponential backoff ("Exponential Backoff And Jitter", AWS
 * architecture blog): a uniform draw from [0, min(cap, base * 2^attempt)).
 * Jitter spreads a crowd of clients that lost the same server over the whole
 * window instead of letting them stampede it together when it comes back.
 */
export function backoff_delay(attempt, { baseMs = 250, capMs = 5000, random = Math.random } = {}) {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

function random_token(length) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = new Uint8Array(length);
  globalThis.crypto.getRandomValues(bytes);
  let out = '';
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return out;
}

const READY_OPEN = 1;

/**
 * A client for one user on one WebSocket connection.
 *
 * States (the `status` event): 'connecting' (first attempt), 'live' (hello
 * received, retries resolved and every subscription's snapshot in),
 * 'reconnecting' (lost the connection, trying again), 'offline' (closed by
 * close(), or still failing after offlineAfterMs; it keeps trying).
 */
export class ClapsClient {
  #url;
  #WebSocket;
  #tick_override;
  #backoff;
  #offline_after_ms;
  #retry_after_ms;
  #bucket = null; // client-side mirror of the server's per-connection token bucket

  #ws = null;
  #status = 'connecting';
  #closed = false;
  #attempt = 0;
  #down_since = 0;
  #reconnect_timer = null;
  #offline_timer = null;
  #flush_timer = null;
  #flush_due = 0;
  #phase = 'down'; // 'down' | 'hello' | 'retrying' | 'subscribing' | 'live'
  #awaiting_snapshots = new Set(); // subscribe ids sent in this connection, not yet answered
  #subscribes_sent = new Map(); // subscribe id -> reading, until its snapshot or error

  #listeners = new Map();
  #articles = new Map(); // article -> state (see #state)
  #outstanding = []; // ops sent or to be sent, in order: {id, article, kind, count, sent}
  #op_prefix = random_token(8);
  #op_counter = 0;
  #sub_counter = 0;

  /** Filled from the server's hello frame. */
  user = null;
  cap = 50;
  tickMs = 25;
  protocol = null;
  /** The clapsd node this connection is on (hello's `node`, with --node-id), for display only. */
  node = null;

  /** Counters, for tools such as the simulator. */
  stats = {
    connects: 0,
    reconnects: 0,
    clap_messages: 0,
    claps_sent: 0,
    undo_messages: 0,
    retries: 0,
    acks: 0,
    claps_acked: 0,
    update_frames: 0,
    update_items: 0,
    errors: 0,
  };

  /**
   * @param {object} options
   * @param {string} options.url       ws:// or wss:// URL of clapsd's /ws endpoint.
   * @param {string} [options.user]    demo mode user (sent as ?user=).
   * @param {string} [options.token]   auth mode JWT (sent as ?token=).
   * @param {Function} [options.WebSocket] constructor; defaults to globalThis.WebSocket.
   * @param {number} [options.tickMs]  batching period; defaults to the hello frame's tick_ms.
   * @param {number} [options.cap]     clap cap used before hello arrives (the server's wins).
   * @param {{baseMs?:number, capMs?:number, random?:Function}} [options.backoff]
   * @param {number} [options.offlineAfterMs] reconnecting longer than this shows 'offline' (15000).
   * @param {number} [options.retryAfterMs]   delay before resending an op the server refused
   *                                          as rate_limited/unavailable (1000).
   * @param {{perSecond:number, burst:number}|null} [options.rateLimit] the server's per-user
   *        limit on clap/undo/subscribe messages (clapsd's defaults: 20/s, burst 40). The client
   *        keeps 10% under it; claps held back merge into the next message. null turns it off.
   *        A subscribe the server refuses as rate_limited/unavailable is sent again after
   *        retryAfterMs (its 'error' event says willRetry and the articles).
   * @param {boolean} [options.connect] connect at once (default true); else call connect().
   */
  constructor(options = {}) {
    const { url, user, token } = options;
    if (!url) throw new TypeError('ClapsClient: options.url is required');
    const WebSocketImpl = options.WebSocket ?? globalThis.WebSocket;
    if (typeof WebSocketImpl !== 'function') {
      throw new TypeError('ClapsClient: no WebSocket; pass options.WebSocket (e.g. npm ws in Node)');
    }
    if (user !== undefined && user !== null && !ID_PATTERN.test(user)) {
      throw new TypeError(`ClapsClient: user "${user}" must be 1-128 characters of [A-Za-z0-9._:-]`);
    }
    const parsed = new URL(url);
    if (user) parsed.searchParams.set('user', user);
    if (token) parsed.searchParams.set('token', token);
    // Replies made together (a tick's acks) may come as one "batch" frame.
    parsed.searchParams.set('batch', '1');
    this.#url = parsed.toString();
    this.#WebSocket = WebSocketImpl;
    this.#tick_override = options.tickMs;
    if (options.cap) this.cap = options.cap;
    if (options.tickMs) this.tickMs = options.tickMs;
    this.#backoff = { baseMs: 250, capMs: 5000, ...(options.backoff ?? {}) };
    this.#offline_after_ms = options.offlineAfterMs ?? 15000;
    this.#retry_after_ms = options.retryAfterMs ?? 1000;
    const limit = options.rateLimit === undefined ? { perSecond: 20, burst: 40 } : options.rateLimit;
    if (limit) {
      // Keep a margin under the server's bucket: it counts arrivals, and
      // network jitter can bunch up messages this client spaced out.
      const rate = limit.perSecond * 0.9;
      const burst = Math.max(1, Math.floor(limit.burst * 0.9));
      this.#bucket = { rate, burst, tokens: burst, at: Date.now() };
    }
    this.user = user ?? null;
    if (options.connect !== false) this.#connect();
  }

  // ---- events ----

  /** Registers a listener; returns a function that removes it. Types: counts, ack, status, error. */
  on(type, listener) {
    if (!this.#listeners.has(type)) this.#listeners.set(type, new Set());
    this.#listeners.get(type).add(listener);
    return () => this.off(type, listener);
  }

  off(type, listener) {
    this.#listeners.get(type)?.delete(listener);
  }

  #emit(type, detail) {
    for (const listener of [...(this.#listeners.get(type) ?? [])]) {
      try {
        listener(detail);
      } catch (err) {
        // A throwing listener must not break the protocol state machine.
        queueMicrotask(() => { throw err; });
      }
    }
  }

  // ---- public API ----

  get status() { return this.#status; }

  /**
   * Watches articles. reading=true counts this client in "reading now";
   * reading=false (a timeline, the home page) only receives counts.
   * Snapshots arrive as `counts` events.
   */
  subscribe(articles, { reading = true } = {}) {
    const list = [...new Set(Array.isArray(articles) ? articles : [articles])];
    for (const article of list) {
      if (!ID_PATTERN.test(article)) throw new TypeError(`ClapsClient: invalid article id "${article}"`);
    }
    const fresh = list.filter((a) => !this.#articles.get(a)?.subscribed);
    for (const article of fresh) {
      const st = this.#state(article);
      st.subscribed = true;
      st.reading = reading;
    }
    if (fresh.length && (this.#phase === 'live' || this.#phase === 'subscribing')) {
      this.#send_subscribe(fresh, reading);
    }
  }

  unsubscribe(articles) {
    const list = Array.isArray(articles) ? articles : [articles];
    const gone = list.filter((a) => this.#articles.get(a)?.subscribed);
    for (const article of gone) this.#articles.get(article).subscribed = false;
    if (gone.length && this.#phase !== 'down' && this.#phase !== 'hello') {
      this.#send({ type: 'unsubscribe', articles: gone });
    }
  }

  /**
   * Adds `count` claps (default 1) for `article`, to be sent with the next
   * tick's batch. Never goes past the cap as far as this client knows.
   * Returns how many claps were queued (0 at the cap).
   */
  clap(article, count = 1) {
    if (!ID_PATTERN.test(article)) throw new TypeError(`ClapsClient: invalid article id "${article}"`);
    if (!Number.isInteger(count) || count < 1) throw new TypeError('ClapsClient: count must be a positive integer');
    const view = this.view(article);
    const queued = Math.max(0, Math.min(count, this.cap - view.mine));
    if (queued === 0) return 0;
    this.#state(article).pending += queued;
    this.#schedule_flush();
    this.#emit_counts([article]);
    return queued;
  }

  /** Removes all of this user's claps on `article` (claps not yet sent are dropped). */
  undo(article) {
    if (!ID_PATTERN.test(article)) throw new TypeError(`ClapsClient: invalid article id "${article}"`);
    const st = this.#state(article);
    st.pending = 0;
    // Claps the server refused (rate_limited) and that wait for a resend were
    // never applied: the undo covers them, so they must not follow it.
    this.#outstanding = this.#outstanding.filter((o) => !(o.article === article && o.refused && !o.sent));
    const op = { id: this.#next_op_id(), article, kind: 'undo', count: 0, sent: false, not_before: 0 };
    this.#outstanding.push(op);
    this.#pump();
    this.#emit_counts([article]);
    return op.id;
  }

  /**
   * This client's view of an article: committed total/viewers/mine from the
   * server, with its own unacknowledged and unsent claps applied on top.
   */
  view(article) {
    const st = this.#articles.get(article);
    if (!st) return { article, total: null, viewers: null, mine: 0, unconfirmed: 0, capped: false, known: false };
    let total = st.total ?? 0;
    let mine = st.mine;
    let unconfirmed = 0;
    for (const op of this.#outstanding) {
      if (op.article !== article) continue;
      unconfirmed += 1;
      if (op.kind === 'clap') {
        mine += op.count;
        total += op.count;
      } else {
        total -= mine;
        mine = 0;
      }
    }
    mine += st.pending;
    total += st.pending;
    return {
      article,
      total: st.total === null ? null : total,
      viewers: st.viewers,
      mine,
      unconfirmed: unconfirmed + (st.pending ? 1 : 0),
      capped: mine >= this.cap,
      known: st.total !== null,
    };
  }

  /** Ops (claps and undos) not yet acknowledged by the server, including unsent claps. */
  get unacknowledged() {
    let pending = 0;
    for (const st of this.#articles.values()) pending += st.pending ? 1 : 0;
    return this.#outstanding.length + pending;
  }

  /** Starts connecting, for a client made with connect: false. No-op otherwise. */
  connect() {
    if (this.#closed || this.#ws || this.#reconnect_timer !== null) return;
    this.#connect();
  }

  /** Sends pending claps now instead of at the end of the tick (within the rate limit). */
  flush() {
    this.#pump();
  }

  /** Closes for good: no more reconnects. Unacknowledged ops are abandoned. */
  close() {
    this.#closed = true;
    this.#clear_timers();
    if (this.#ws) {
      const ws = this.#ws;
      this.#ws = null;
      this.#detach(ws);
      try { ws.close(1000, 'bye'); } catch { /* already closed */ }
    }
    this.#phase = 'down';
    this.#set_status('offline');
  }

  // ---- connection ----

  #connect() {
    if (this.#closed) return;
    this.#reconnect_timer = null;
    this.#phase = 'down';
    let ws;
    try {
      ws = new this.#WebSocket(this.#url);
    } catch (err) {
      this.#emit('error', { code: 'connect_failed', message: String(err?.message ?? err) });
      this.#schedule_reconnect();
      return;
    }
    this.#ws = ws;
    ws.onopen = () => { this.#phase = 'hello'; };
    ws.onmessage = (event) => this.#on_message(event.data);
    ws.onerror = () => { /* onclose follows; the close decides what to do */ };
    ws.onclose = () => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      this.#detach(ws);
      this.#on_down();
    };
  }

  #detach(ws) {
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
  }

  #on_down() {
    this.#phase = 'down';
    this.#awaiting_snapshots.clear();
    this.#subscribes_sent.clear();
    if (this.#flush_timer !== null) {
      clearTimeout(this.#flush_timer);
      this.#flush_timer = null;
    }
    // Everything sent on the dead connection may or may not have been applied:
    // resend it with the same op id on the next one.
    for (const op of this.#outstanding) op.sent = false;
    if (this.#closed) return;
    if (!this.#down_since) this.#down_since = Date.now();
    this.#schedule_reconnect();
  }

  #schedule_reconnect() {
    if (this.#closed || this.#reconnect_timer !== null) return;
    const delay = backoff_delay(this.#attempt, this.#backoff);
    const attempt = this.#attempt;
    this.#attempt += 1;
    this.stats.reconnects += 1;
    const down_for = this.#down_since ? Date.now() - this.#down_since : 0;
    const status = down_for >= this.#offline_after_ms ? 'offline' : 'reconnecting';
    this.#set_status(status, { attempt, delayMs: delay });
    if (status === 'reconnecting' && this.#offline_timer === null) {
      this.#offline_timer = setTimeout(() => {
        this.#offline_timer = null;
        if (this.#phase !== 'live' && !this.#closed) this.#set_status('offline');
      }, Math.max(0, this.#offline_after_ms - down_for));
    }
    this.#reconnect_timer = setTimeout(() => this.#connect(), delay);
  }

  #set_status(status, extra = {}) {
    const changed = status !== this.#status;
    this.#status = status;
    if (changed || extra.attempt !== undefined) this.#emit('status', { status, ...extra });
  }

  #clear_timers() {
    for (const t of [this.#reconnect_timer, this.#offline_timer, this.#flush_timer]) {
      if (t !== null) clearTimeout(t);
    }
    this.#reconnect_timer = this.#offline_timer = this.#flush_timer = null;
  }

  #send(frame) {
    const ws = this.#ws;
    if (!ws || ws.readyState !== READY_OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  // ---- protocol ----

  #on_message(data) {
    let frame;
    try {
      frame = JSON.parse(typeof data === 'string' ? data : String(data));
    } catch {
      this.#emit('error', { code: 'bad_frame', message: 'server sent a frame that is not JSON' });
      return;
    }
    this.#dispatch(frame);
  }

  #dispatch(frame) {
    switch (frame?.type) {
      case 'batch':
        // Each message is exactly the frame it would have been alone, in order.
        for (const message of Array.isArray(frame.messages) ? frame.messages : []) this.#dispatch(message);
        return;
      case 'hello': return this.#on_hello(frame);
      case 'counts': return this.#on_counts(frame);
      case 'ack': return this.#on_ack(frame);
      case 'error': return this.#on_error(frame);
      default: return; // unknown frames are ignored, as the protocol asks
    }
  }

  #on_hello(frame) {
    this.protocol = frame.protocol ?? null;
    this.node = typeof frame.node === 'string' ? frame.node : null;
    if (typeof frame.user === 'string') this.user = frame.user;
    if (Number.isInteger(frame.cap) && frame.cap > 0) this.cap = frame.cap;
    if (!this.#tick_override && Number.isInteger(frame.tick_ms) && frame.tick_ms > 0) this.tickMs = frame.tick_ms;
    this.stats.connects += 1;
    this.#phase = 'retrying';
    // Unacknowledged ops go first, with their original ids, and the snapshot
    // is asked for only once they are resolved: then it already holds them
    // and can be taken as the truth without double counting.
    // The server's bucket is per connection, so a new one starts full.
    if (this.#bucket) {
      this.#bucket.tokens = this.#bucket.burst;
      this.#bucket.at = Date.now();
    }
    for (const op of this.#outstanding.filter((o) => !o.sent)) {
      if (this.stats.connects > 1) this.stats.retries += 1;
      op.not_before = 0;
      this.#take_token(true);
      this.#send_op(op);
    }
    this.#maybe_subscribe_phase();
  }

  #maybe_subscribe_phase() {
    if (this.#phase !== 'retrying') return;
    if (this.#outstanding.some((op) => op.sent)) return; // wait for their acks
    this.#phase = 'subscribing';
    const by_reading = new Map();
    for (const [article, st] of this.#articles) {
      if (!st.subscribed) continue;
      if (!by_reading.has(st.reading)) by_reading.set(st.reading, []);
      by_reading.get(st.reading).push(article);
    }
    for (const [reading, list] of by_reading) this.#send_subscribe(list, reading);
    this.#maybe_live();
  }

  #send_subscribe(articles, reading) {
    const id = `sub-${++this.#sub_counter}`;
    if (this.#phase === 'subscribing') this.#awaiting_snapshots.add(id);
    // Subscribes cost a token of the server's per-user limit, as claps do.
    this.#take_token(true);
    this.#subscribes_sent.set(id, reading);
    this.#send({ type: 'subscribe', articles, reading, id });
    const st_list = articles.map((a) => this.#articles.get(a));
    for (const st of st_list) st.subscribe_id = id;
  }

  #maybe_live() {
    if (this.#phase !== 'subscribing' || this.#awaiting_snapshots.size) return;
    this.#phase = 'live';
    this.#attempt = 0;
    this.#down_since = 0;
    if (this.#offline_timer !== null) {
      clearTimeout(this.#offline_timer);
      this.#offline_timer = null;
    }
    this.#set_status('live');
    // Ops queued while down (undos) and claps held back go out now.
    this.#pump();
  }

  #on_counts(frame) {
    if (!Array.isArray(frame.counts)) return;
    const changed = [];
    let snapshot = false;
    for (const item of frame.counts) {
      if (!item || typeof item.article !== 'string') continue;
      const st = this.#state(item.article);
      if (typeof item.total === 'number') st.total = item.total;
      if (typeof item.viewers === 'number') st.viewers = item.viewers;
      // Only snapshot items carry "mine"; a snapshot is the truth.
      if (typeof item.mine === 'number') {
        st.mine = item.mine;
        snapshot = true;
        if (st.subscribe_id) this.#awaiting_snapshots.delete(st.subscribe_id);
      }
      changed.push(item.article);
    }
    // clapsd also marks a snapshot reply with "snapshot":true and the subscribe's id.
    if (frame.snapshot === true) snapshot = true;
    if (snapshot && typeof frame.id === 'string') {
      this.#awaiting_snapshots.delete(frame.id);
      this.#subscribes_sent.delete(frame.id);
    }
    if (!snapshot) {
      this.stats.update_frames += 1;
      this.stats.update_items += changed.length;
    }
    this.#emit_counts(changed, snapshot ? 'snapshot' : 'update');
    this.#maybe_live();
  }

  #on_ack(frame) {
    const index = this.#outstanding.findIndex((op) => op.id === frame.id);
    const op = index >= 0 ? this.#outstanding.splice(index, 1)[0] : null;
    const article = typeof frame.article === 'string' ? frame.article : op?.article;
    if (article) {
      const st = this.#state(article);
      if (typeof frame.total === 'number') st.total = frame.total;
      if (typeof frame.mine === 'number') st.mine = frame.mine;
    }
    this.stats.acks += 1;
    if (op?.kind === 'clap' && typeof frame.accepted === 'number') this.stats.claps_acked += frame.accepted;
    this.#emit('ack', { ...frame, kind: op?.kind ?? null, requested: op?.count ?? null, known: op !== null });
    if (article) this.#emit_counts([article], 'ack');
    this.#maybe_subscribe_phase();
  }

  #on_error(frame) {
    this.stats.errors += 1;
    const detail = { code: frame.code ?? 'unknown', message: frame.message ?? '', id: frame.id ?? null };
    // Why, when the server says (e.g. 'store_full' on an 'unavailable': retried like any unavailable).
    if (typeof frame.reason === 'string') detail.reason = frame.reason;
    const op = frame.id ? this.#outstanding.find((o) => o.id === frame.id) : null;
    if (op) {
      detail.article = op.article;
      const index = this.#outstanding.indexOf(op);
      const undone_later = op.kind === 'clap' && this.#outstanding.some(
        (o, i) => i > index && o.article === op.article && o.kind === 'undo');
      if ((frame.code === 'rate_limited' || frame.code === 'unavailable') && !undone_later) {
        // Not applied: send the same op again a little later.
        op.sent = false;
        op.refused = true;
        op.not_before = Date.now() + this.#retry_after_ms;
        detail.willRetry = true;
        this.#schedule_pump(this.#retry_after_ms);
      } else {
        // Refused for good, or refused and then covered by a later undo.
        this.#outstanding.splice(index, 1);
        detail.willRetry = false;
      }
      this.#emit('error', detail);
      this.#emit_counts([op.article], 'error');
      this.#maybe_subscribe_phase();
      return;
    }
    if (frame.id && this.#subscribes_sent.has(frame.id)) {
      const reading = this.#subscribes_sent.get(frame.id);
      this.#subscribes_sent.delete(frame.id);
      const articles = [];
      for (const [article, st] of this.#articles) if (st.subscribe_id === frame.id) articles.push(article);
      detail.articles = articles;
      if (frame.code === 'rate_limited' || frame.code === 'unavailable') {
        // Not refused for good: ask again later, for the articles still wanted.
        // The old id stays awaited meanwhile, so a resubscribe phase does not
        // go live without them.
        detail.willRetry = true;
        const ws = this.#ws;
        setTimeout(() => {
          this.#awaiting_snapshots.delete(frame.id);
          if (this.#ws !== ws || (this.#phase !== 'live' && this.#phase !== 'subscribing')) return;
          const still = articles.filter((a) => this.#articles.get(a)?.subscribed &&
            this.#articles.get(a).subscribe_id === frame.id);
          if (still.length) this.#send_subscribe(still, reading);
          this.#maybe_live();
        }, this.#retry_after_ms);
      } else {
        // Refused for good: drop those articles so a reconnect does not repeat it.
        for (const article of articles) this.#articles.get(article).subscribed = false;
        this.#awaiting_snapshots.delete(frame.id);
        detail.willRetry = false;
      }
      this.#emit('error', detail);
      this.#maybe_live();
      return;
    }
    this.#emit('error', detail);
  }

  #send_op(op) {
    const frame = op.kind === 'clap'
      ? { type: 'clap', article: op.article, count: op.count, id: op.id }
      : { type: 'undo', article: op.article, id: op.id };
    if (!this.#send(frame)) return;
    op.sent = true;
    op.refused = false;
    if (op.kind === 'clap') {
      this.stats.clap_messages += 1;
      this.stats.claps_sent += op.count;
    } else {
      this.stats.undo_messages += 1;
    }
  }

  #schedule_flush() {
    if (this.#phase === 'live') this.#schedule_pump(this.tickMs);
  }

  #schedule_pump(delay) {
    if (this.#flush_timer !== null) {
      if (this.#flush_due <= Date.now() + delay) return;
      clearTimeout(this.#flush_timer);
    }
    this.#flush_due = Date.now() + delay;
    this.#flush_timer = setTimeout(() => {
      this.#flush_timer = null;
      this.#pump();
    }, delay);
  }

  /**
   * Takes a token from the client-side bucket. Returns 0 when taken, else
   * how many ms until one is free. `force` takes it anyway (may go below 0).
   */
  #take_token(force = false) {
    const b = this.#bucket;
    if (!b) return 0;
    const now = Date.now();
    b.tokens = Math.min(b.burst, b.tokens + ((now - b.at) * b.rate) / 1000);
    b.at = now;
    if (b.tokens >= 1 || force) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - b.tokens) * 1000) / b.rate));
  }

  /**
   * Sends what is due, in order: unsent ops (undos, refused claps whose
   * retry time came), then each article's pending claps as one message.
   * Per article, nothing overtakes an op that must wait, so a clap never
   * lands on the wrong side of an undo. Within the rate limit; claps held
   * back keep accumulating and go out together.
   */
  #pump() {
    if (this.#flush_timer !== null) {
      clearTimeout(this.#flush_timer);
      this.#flush_timer = null;
    }
    if (this.#phase !== 'live') return;
    const now = Date.now();
    const blocked = new Set();
    let wait = Infinity;
    for (const op of this.#outstanding) {
      if (op.sent) continue;
      if (blocked.has(op.article)) continue;
      if (op.not_before > now) {
        blocked.add(op.article);
        wait = Math.min(wait, op.not_before - now);
        continue;
      }
      const token_wait = this.#take_token();
      if (token_wait) {
        this.#schedule_pump(token_wait);
        return;
      }
      this.#send_op(op);
    }
    for (const [article, st] of this.#articles) {
      if (st.pending <= 0 || blocked.has(article)) continue;
      const token_wait = this.#take_token();
      if (token_wait) {
        this.#schedule_pump(token_wait);
        return;
      }
      const count = Math.min(st.pending, this.cap);
      st.pending -= count;
      const op = { id: this.#next_op_id(), article, kind: 'clap', count, sent: false, not_before: 0 };
      this.#outstanding.push(op);
      this.#send_op(op);
      if (st.pending > 0) wait = Math.min(wait, this.tickMs);
    }
    if (wait !== Infinity) this.#schedule_pump(wait);
  }

  #next_op_id() {
    this.#op_counter += 1;
    return `${this.#op_prefix}-${this.#op_counter}`;
  }

  #state(article) {
    let st = this.#articles.get(article);
    if (!st) {
      st = { total: null, viewers: null, mine: 0, pending: 0, subscribed: false, reading: true, subscribe_id: null };
      this.#articles.set(article, st);
    }
    return st;
  }

  #emit_counts(articles, source = 'local') {
    if (!articles.length) return;
    this.#emit('counts', { source, articles: articles.map((a) => this.view(a)) });
  }
}

export default ClapsClient;
