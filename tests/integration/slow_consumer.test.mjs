// Slow consumers: a client that stops reading never grows server memory
// without bound. Its updates collapse to the newest count per article, and
// past --slow-client-bytes it is closed with 1008.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { client, deadline, metric, startServer } from './helpers.mjs';

let server;
before(async () => {
  server = await startServer({
    args: ['--store', 'memory', '--tick-ms', '5', '--slow-client-bytes', '100000',
      '--max-message-bytes', '65536', '--rate-limit', '1000000', '--rate-burst', '1000000'],
  });
});
after(async () => { await server?.stop(); });

// Long ids make every tick frame large (about 40 KB for 256 articles), so the
// kernel's socket buffers fill after a bounded number of ticks.
const articles = Array.from({ length: 256 }, (_, i) => `slow-${String(i).padStart(3, '0')}-${'x'.repeat(118)}`);

async function clapRounds(state, until) {
  // One round claps every article once; a user may give 50 claps per article,
  // so a new user takes over every 50 rounds.
  for (;;) {
    if (state.round % 50 === 0) {
      await state.user?.close();
      state.user = await client.open(`${server.ws}?user=clapper${state.round}`);
    }
    const ids = articles.map((a, i) => `r${state.round}-${i}`);
    articles.forEach((article, i) => state.user.send({ type: 'clap', article, id: ids[i] }));
    await state.user.ack(ids[ids.length - 1], 10000);
    state.round++;
    if (state.round % 5 === 0 && await until()) return;
    assert.ok(state.round < 3000, 'the server should have deferred updates by now');
  }
}

test('a client that stops reading gets collapsed updates, then 1008 past the byte bound', async () => {
  const slow = await client.open(`${server.ws}?user=slow`);
  const healthy = await client.open(`${server.ws}?user=healthy`);
  await slow.subscribe(articles);
  await healthy.subscribe([articles[0]]);
  slow.ws._socket.pause();  // stop reading; the server keeps producing

  // Phase 1: fill the socket until the server holds updates back for it.
  const state = { round: 0, user: null };
  await clapRounds(state, async () => (await metric(server, 'claps_update_frames_deferred_total')) >= 10);
  const rounds = state.round;
  // The healthy viewer is unaffected and sees the newest total.
  await healthy.update(articles[0], (u) => u.total === rounds);

  // Phase 2: once it reads again it catches up with the newest count of
  // every article: held-back updates collapsed to the latest, none was lost.
  const latest = new Map();
  const caughtUp = new Promise((resolve) => {
    slow.ws.on('message', () => {
      for (const f of slow.frames.splice(0)) {
        if (f.type !== 'counts') continue;
        for (const c of f.counts) latest.set(c.article, c.total);
      }
      if (articles.every((a) => latest.get(a) === rounds)) resolve();
    });
  });
  slow.ws._socket.resume();
  await deadline(caughtUp, 20000, 'the slow client to catch up with every article');
  assert.equal(await metric(server, 'claps_slow_client_drops_total'), 0, 'collapsed state stays under the bound');

  assert.equal(slow.ws.readyState, 1, 'still connected');

  // Phase 3: acks are events and cannot collapse. A client that claps but
  // never reads its acks is closed with 1008 once they pass --slow-client-bytes.
  const flooder = await client.open(`${server.ws}?user=flooder`);
  await flooder.subscribe(articles);
  flooder.ws._socket.pause();
  for (let i = 0; i < 3000; i++) flooder.send({ type: 'clap', article: articles[i % 256], id: `flood-${i}` });
  await clapRounds(state, async () => (await metric(server, 'claps_slow_client_drops_total')) >= 1);
  flooder.ws._socket.resume();
  const closed = await deadline(flooder.closed, 20000, 'the flooder to see its close');
  assert.equal(closed.code, 1008);
  assert.match(closed.reason, /slow consumer/);
  await Promise.all([state.user.close(), healthy.close(), slow.close()]);
});
