// Slow consumers: a client that stops reading never grows server memory
// without bound. Its updates collapse to the newest count per article, and
// a client whose unsent output passes --slow-client-bytes is closed with 1008.
//
// When the server starts holding output back depends on how much the kernel's
// socket buffers absorb first (megabytes on loopback) and on how lws cuts its
// writes (tx_packet_size), so nothing here counts rounds or bytes to get
// there: each phase produces output until the server reports the event it
// waits for (held-back updates, a drop), within a generous deadline.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { client, deadline, metric, startServer } from './helpers.mjs';

const slowClientBytes = 100000;
let server;
before(async () => {
  server = await startServer({
    args: ['--store', 'memory', '--tick-ms', '5', '--slow-client-bytes', String(slowClientBytes),
      '--max-message-bytes', '65536', '--rate-limit', '1000000', '--rate-burst', '1000000',
      '--max-op-ids-per-user', '0'],  // the clapper makes 12,800 op ids per user
  });
});
after(async () => { await server?.stop(); });

// Long ids make every tick frame large (about 43 KB for 256 articles), so the
// socket buffers fill quickly.
const articles = Array.from({ length: 256 }, (_, i) => `slow-${String(i).padStart(3, '0')}-${'x'.repeat(118)}`);
// One tick frame with every article changed: the least a viewer of all 256
// would be owed per round if held-back updates were queued, not collapsed.
const fullFrameBytes = JSON.stringify({
  type: 'counts',
  counts: articles.map((article) => ({ article, total: 1000, viewers: 1 })),
}).length;

/** Claps every article once per round (a new user every 50 rounds: the cap) until `until()` holds. */
async function clapRounds(state, until, what) {
  const run = (async () => {
    for (;;) {
      if (state.round % 50 === 0) {
        await state.user?.close();
        state.user = await client.open(`${server.ws}?user=clapper${state.round}`);
      }
      const ids = articles.map((a, i) => `r${state.round}-${i}`);
      articles.forEach((article, i) => state.user.send({ type: 'clap', article, id: ids[i] }));
      await state.user.ack(ids[ids.length - 1], 10000);
      state.user.frames.length = 0;  // acks are not looked at again
      state.round++;
      if (state.round % 5 === 0 && await until()) return;
    }
  })();
  await deadline(run, 90000, what);
}

test('a slow reader gets the newest count per article, and its held-back updates stay bounded', async () => {
  const slow = await client.open(`${server.ws}?user=slow`);
  const healthy = await client.open(`${server.ws}?user=healthy`);
  await slow.subscribe(articles);
  await healthy.subscribe([articles[0]]);
  slow.ws._socket.pause();  // stop reading; the server keeps producing

  // Phase 1: produce until the server holds updates back for the slow
  // reader, then keep going: updates made while held back collapse into one
  // entry per article, so however many rounds pass, the held-back state
  // stays under --slow-client-bytes and the reader is not dropped.
  const state = { round: 0, user: null };
  await clapRounds(state, async () => (await metric(server, 'claps_update_frames_deferred_total')) >= 1,
    'the server to hold updates back for the client that stopped reading');
  const heldFrom = state.round;
  const extraRounds = Math.ceil((20 * slowClientBytes) / fullFrameBytes);
  await clapRounds(state, async () => state.round - heldFrom >= extraRounds, `${extraRounds} more rounds`);
  const rounds = state.round;
  assert.ok((rounds - heldFrom) * fullFrameBytes >= 20 * slowClientBytes,
    'queued rather than collapsed, the held-back updates would have passed the bound many times');
  assert.equal(await metric(server, 'claps_slow_client_drops_total'), 0, 'collapsed state stays under the bound');
  // The healthy viewer is unaffected and sees the newest total.
  await healthy.update(articles[0], (u) => u.total === rounds, 10000);

  // Phase 2: once it reads again it catches up with the newest count of
  // every article: held-back updates collapsed to the latest, none was lost.
  const latest = new Map();
  const caughtUp = new Promise((resolve) => {
    const take = () => {
      for (const f of slow.frames.splice(0)) {
        if (f.type !== 'counts') continue;
        for (const c of f.counts) latest.set(c.article, c.total);
      }
      if (articles.every((a) => latest.get(a) === rounds)) resolve();
    };
    slow.ws.on('message', take);
    take();
  });
  slow.ws._socket.resume();
  await deadline(caughtUp, 30000, 'the slow client to catch up with every article');
  assert.equal(slow.ws.readyState, 1, 'still connected');
  assert.equal(await metric(server, 'claps_slow_client_drops_total'), 0);
  await Promise.all([state.user.close(), healthy.close(), slow.close()]);
});

test('a client that claps but never reads is closed with 1008 once its unsent acks pass the bound', async () => {
  // Acks are events and cannot collapse: every one must be delivered. A
  // client that keeps clapping without reading them piles them up until the
  // server gives up on it.
  const flooder = await client.open(`${server.ws}?user=flooder`);
  const bystander = await client.open(`${server.ws}?user=bystander`);
  await flooder.subscribe(articles);  // its tick frames fill the socket buffers sooner
  await bystander.subscribe([articles[0]]);
  const dropsBefore = await metric(server, 'claps_slow_client_drops_total');
  flooder.ws._socket.pause();
  let sent = 0;
  const flood = (async () => {
    for (;;) {
      // Past the cap (50 per article) every clap is still acked, with accepted 0.
      for (let i = 0; i < 256; i++) flooder.send({ type: 'clap', article: articles[i], id: `flood-${sent++}` });
      // Let the server read and answer before the next round.
      await new Promise((resolve) => setImmediate(resolve));
      if (sent % 2560 === 0 && (await metric(server, 'claps_slow_client_drops_total')) > dropsBefore) return;
      if (flooder.ws.readyState !== 1) return;
    }
  })();
  await deadline(flood, 90000, 'the server to drop the client that does not read its acks');
  assert.equal(await metric(server, 'claps_slow_client_drops_total'), dropsBefore + 1, 'exactly this client');
  flooder.ws._socket.resume();
  const closed = await deadline(flooder.closed, 20000, 'the flooder to see its close');
  assert.equal(closed.code, 1008);
  assert.match(closed.reason, /slow consumer/);
  // The others are unaffected.
  const ack = await bystander.clap(articles[0]);
  assert.equal(ack.accepted, 1);
  assert.equal(bystander.ws.readyState, 1);
  await bystander.close();
});
