// Virtual readers for the article page: each is its own ClapsClient (its own
// WebSocket and user name), so its claps travel through the server exactly
// like a real reader's.
import { ClapsClient } from '/client/claps-client.js';

function session_tag() {
  return Math.random().toString(36).slice(2, 6);
}

export class VirtualReaders {
  #url;
  #article;
  #readers = [];
  #timers = [];
  #totals = { claps_sent: 0, claps_acked: 0 };
  #stats_timer = null;
  on_change = () => {};

  constructor({ url, article }) {
    this.#url = url;
    this.#article = article;
  }

  get running() { return this.#readers.length > 0; }

  /** count readers, each clapping `rate` times per second (with jitter). */
  start({ count, rate }) {
    this.stop();
    const tag = session_tag();
    for (let i = 1; i <= count; i += 1) {
      const reader = { base: `sim-${tag}-${i}`, generation: 0, client: null };
      this.#readers.push(reader);
      this.#spawn(reader);
      const period = 1000 / rate;
      // Desynchronise the readers so they do not all clap on the same beat.
      const next = () => {
        const timer = setTimeout(() => {
          this.#clap(reader);
          next();
        }, period * (0.5 + Math.random()));
        this.#timers[i - 1] = timer;
      };
      next();
    }
    this.#stats_timer = setInterval(() => this.on_change(this.stats()), 250);
    this.on_change(this.stats());
  }

  stop() {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers = [];
    for (const reader of this.#readers) this.#retire(reader);
    this.#readers = [];
    clearInterval(this.#stats_timer);
    this.#stats_timer = null;
    this.on_change(this.stats());
  }

  stats() {
    let live = 0;
    let sent = this.#totals.claps_sent;
    let acked = this.#totals.claps_acked;
    for (const r of this.#readers) {
      if (r.client.status === 'live') live += 1;
      sent += r.client.stats.claps_sent;
      acked += r.client.stats.claps_acked;
    }
    return { running: this.running, readers: this.#readers.length, live, claps_sent: sent, claps_acked: acked };
  }

  #spawn(reader) {
    const user = reader.generation ? `${reader.base}.${reader.generation}` : reader.base;
    reader.client = new ClapsClient({ url: this.#url, user });
    reader.client.subscribe([this.#article], { reading: true });
  }

  #retire(reader) {
    this.#totals.claps_sent += reader.client.stats.claps_sent;
    this.#totals.claps_acked += reader.client.stats.claps_acked;
    reader.client.close();
  }

  #clap(reader) {
    if (reader.client.status !== 'live') return;
    if (reader.client.clap(this.#article, 1) > 0) return;
    // At the cap, once its claps are acknowledged, the reader leaves and a
    // fresh one takes its seat, so a busy article stays busy.
    if (reader.client.unacknowledged > 0) return;
    this.#retire(reader);
    reader.generation += 1;
    this.#spawn(reader);
  }
}
