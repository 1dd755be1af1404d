// Protocol v1 over WebSocket: hello, subscriptions, fan-out, acks, cap, undo,
// op-id replay and error frames, against a real clapsd.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { client, request, startServer } from './helpers.mjs';

let server;
before(async () => { server = await startServer({ args: ['--tick-ms', '20'] }); });
after(async () => { await server?.stop(); });

const open = (user) => client.open(`${server.ws}${user ? `?user=${user}` : ''}`);

test('hello names the user, the tick and the cap; anonymous users get anon-*', async () => {
  const alice = await open('alice');
  assert.deepEqual(alice.hello, { type: 'hello', protocol: 1, user: 'alice', tick_ms: 20, cap: 50 });
  const anon = await open();
  assert.match(anon.hello.user, /^anon-[0-9a-f]{10}$/);
  const ack = await anon.clap('hello-anon', 2);
  assert.equal(ack.accepted, 2);
  await Promise.all([alice.close(), anon.close()]);
});

test('fan-out reaches viewers of the same article only', async () => {
  const [a, b, c] = await Promise.all([open('fa'), open('fb'), open('fc')]);
  const sa = await a.subscribe(['fan-1']);
  assert.deepEqual(sa.counts, [{ article: 'fan-1', total: 0, viewers: 1, mine: 0 }]);
  await b.subscribe(['fan-1']);
  await c.subscribe(['fan-2']);
  // a sees b arrive.
  await a.update('fan-1', (u) => u.viewers === 2);
  const ack = await a.clap('fan-1', 3);
  assert.equal(ack.type, 'ack');
  assert.equal(ack.total, 3);
  const seenByB = await b.update('fan-1', (u) => u.total === 3);
  assert.deepEqual(seenByB, { article: 'fan-1', total: 3, viewers: 2 });
  // c watches another article: a clap there reaches c, and c never saw fan-1.
  await b.clap('fan-2', 1);
  await c.update('fan-2', (u) => u.total === 1);
  assert.ok(!c.frames.some((f) => f.type === 'counts' && f.counts.some((x) => x.article === 'fan-1')),
    'c must not receive fan-1 updates');
  // Tick updates never carry "mine".
  assert.ok(b.frames.every((f) => f.type !== 'counts' || f.snapshot || f.counts.every((x) => !('mine' in x))));
  await Promise.all([a.close(), b.close(), c.close()]);
});

test('multi-article subscriptions get one frame per tick holding every changed article', async () => {
  // A long tick makes both claps land in the same tick.
  const slow = await startServer({ args: ['--tick-ms', '400', '--store', 'memory'] });
  try {
    const watcher = await client.open(`${slow.ws}?user=mw`);
    const snap = await watcher.subscribe(['multi-1', 'multi-2', 'multi-3']);
    assert.equal(snap.counts.length, 3);
    assert.equal(snap.snapshot, true);
    // The tick after a subscribe reports the new viewer counts; let it pass.
    await watcher.update('multi-2', (u) => u.viewers === 1);
    const clapper = await client.open(`${slow.ws}?user=mc`);
    clapper.send({ type: 'clap', article: 'multi-1', count: 2, id: 'm1' });
    clapper.send({ type: 'clap', article: 'multi-3', count: 5, id: 'm3' });
    await Promise.all([clapper.ack('m1'), clapper.ack('m3')]);
    const frame = await watcher.next((f) => f.type === 'counts' && !f.snapshot &&
      f.counts.some((x) => x.article === 'multi-1' && x.total === 2), { what: 'the tick frame' });
    assert.deepEqual(frame, { type: 'counts', counts: [
      { article: 'multi-1', total: 2, viewers: 1 },
      { article: 'multi-3', total: 5, viewers: 1 },
    ] });
    await Promise.all([watcher.close(), clapper.close()]);
  } finally {
    await slow.stop();
  }
});

test('acks, the cap, undo and op-id replay', async () => {
  const u = await open('capper');
  await u.subscribe(['cap-1']);
  const first = await u.clap('cap-1', 30, 'op-a');
  assert.deepEqual(first, { type: 'ack', id: 'op-a', article: 'cap-1', accepted: 30, total: 30, mine: 30, durability: 'local' });
  const second = await u.clap('cap-1', 30, 'op-b');
  assert.equal(second.accepted, 20, 'the cap of 50 leaves room for 20');
  assert.equal(second.mine, 50);
  const third = await u.clap('cap-1', 5, 'op-c');
  assert.equal(third.accepted, 0);
  assert.equal(third.total, 50);
  // Replay: the original accepted/mine with the current total.
  const other = await open('other-user');
  await other.clap('cap-1', 4);
  const replay = await u.clap('cap-1', 30, 'op-b');
  assert.equal(replay.accepted, 20);
  assert.equal(replay.mine, 50);
  assert.equal(replay.total, 54);
  // The same op id from another user is a different op.
  const scoped = await other.clap('cap-1', 1, 'op-a');
  assert.equal(scoped.accepted, 1);
  assert.equal(scoped.mine, 5);
  const undone = await u.undo('cap-1', 'op-u');
  assert.equal(undone.accepted, -50);
  assert.equal(undone.mine, 0);
  assert.equal(undone.total, 5);
  const snap = await u.subscribe(['cap-1']);
  assert.deepEqual(snap.counts, [{ article: 'cap-1', total: 5, viewers: 1, mine: 0 }]);
  await Promise.all([u.close(), other.close()]);
});

test('claps_ack_latency_seconds: one sample per ack (claps, undos, replays), none for an error, each within the client\'s round trip', async () => {
  // A node of its own, so the histogram holds only this test's acks.
  const own = await startServer({ args: ['--tick-ms', '50'] });
  try {
    const histogram = async () => {
      const { text } = await request(`${own.http}/metrics`);
      const buckets = [...text.matchAll(/^claps_ack_latency_seconds_bucket\{le="([^"]+)"\} (\d+)$/gm)]
        .map((m) => ({ le: m[1] === '+Inf' ? Infinity : Number(m[1]), count: Number(m[2]) }));
      const value = (name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
      return { buckets, sum: value('claps_ack_latency_seconds_sum'), count: value('claps_ack_latency_seconds_count'),
        acks: value('claps_acks_sent_total') };
    };
    const u = await client.open(`${own.ws}?user=lat`);
    assert.equal((await histogram()).count, 0);
    let waited = 0;  // the client's round trips, in seconds
    const timed = async (answer) => {
      const started = performance.now();
      const frame = await answer();
      waited += (performance.now() - started) / 1000;
      return frame;
    };
    assert.equal((await timed(() => u.clap('lat-1', 2, 'lat-a'))).accepted, 2);
    let h = await histogram();
    assert.equal(h.count, 1);
    assert.ok(h.sum > 0 && h.sum <= waited, `server-side ${h.sum} s within the client's ${waited} s`);
    // Cumulative buckets: the one sample lies in the first bucket that counts it.
    const at = h.buckets.findIndex((b) => b.count === 1);
    assert.ok(at >= 0 && h.buckets[at].le >= h.sum && (at === 0 || h.buckets[at - 1].le < h.sum),
      `bucket le=${h.buckets[at]?.le} holds ${h.sum}`);
    assert.equal(h.buckets.at(-1).le, Infinity);
    assert.ok(h.buckets.every((b, i) => i === 0 || (b.le > h.buckets[i - 1].le && b.count >= h.buckets[i - 1].count)));

    assert.equal((await timed(() => u.clap('lat-1', 2, 'lat-a'))).accepted, 2, 'a replay');
    assert.equal((await timed(() => u.undo('lat-1', 'lat-u'))).accepted, -2);
    assert.equal((await u.clap('bad id!', 1, 'lat-x')).code, 'invalid_article');
    h = await histogram();
    assert.equal(h.count, 3, 'the error answer is not an ack');
    assert.equal(h.acks, 3);
    assert.ok(h.sum <= waited, `server-side ${h.sum} s within the client's ${waited} s`);
    await u.close();
  } finally {
    await own.stop();
  }
});

test('reading:false subscribers get counts but are not viewers', async () => {
  const reader = await open('reader');
  const home = await open('home');
  await reader.subscribe(['read-1']);
  const snap = await home.subscribe(['read-1'], { reading: false });
  assert.equal(snap.counts[0].viewers, 1);
  await reader.clap('read-1', 1);
  const seen = await home.update('read-1', (u) => u.total === 1);
  assert.equal(seen.viewers, 1);
  await Promise.all([reader.close(), home.close()]);
});

test('unsubscribe stops updates and has no reply', async () => {
  const w = await open('unsub');
  const c = await open('unsub-clapper');
  await w.subscribe(['uns-1', 'uns-2']);
  w.send({ type: 'unsubscribe', articles: ['uns-1'] });
  // Order on one connection: the subscribe reply below comes after the unsubscribe took effect.
  await w.subscribe(['uns-2']);
  await c.clap('uns-1', 1);
  await c.clap('uns-2', 1);
  await w.update('uns-2', (u) => u.total === 1);
  assert.ok(!w.frames.some((f) => f.type === 'counts' && !f.snapshot && f.counts.some((x) => x.article === 'uns-1' && x.total > 0)));
  assert.ok(!w.frames.some((f) => f.type === 'error'));
  await Promise.all([w.close(), c.close()]);
});

test('bad input gets an error frame and the connection stays usable', async () => {
  const u = await open('bad');
  const cases = [
    ['{not json', 'bad_request'],
    [JSON.stringify([1, 2]), 'bad_request'],
    [JSON.stringify({ type: 'dance', id: 'x1' }), 'bad_request'],
    [JSON.stringify({ type: 'clap', article: 7, id: 'x2' }), 'bad_request'],
    [JSON.stringify({ type: 'clap', article: 'ok', count: '3', id: 'x3' }), 'bad_request'],
    [JSON.stringify({ type: 'clap', article: 'ok', count: 1.5, id: 'x4' }), 'bad_request'],
    [JSON.stringify({ type: 'clap', article: 'ok', count: 0, id: 'x5' }), 'bad_request'],
    [JSON.stringify({ type: 'clap', article: 'ok', count: 51, id: 'x6' }), 'bad_request'],
    [JSON.stringify({ type: 'clap', article: 'bad id!', id: 'x7' }), 'invalid_article'],
    [JSON.stringify({ type: 'clap', article: 'x'.repeat(129), id: 'x8' }), 'invalid_article'],
    [JSON.stringify({ type: 'subscribe', articles: 'a1', id: 'x9' }), 'bad_request'],
    [JSON.stringify({ type: 'subscribe', articles: [1], id: 'x10' }), 'bad_request'],
    [JSON.stringify({ type: 'subscribe', articles: ['a1'], reading: 'yes', id: 'x11' }), 'bad_request'],
    [JSON.stringify({ type: 'undo', article: '../etc', id: 'x12' }), 'invalid_article'],
    [JSON.stringify({ type: 'clap', article: 'ok', id: 'has space' }), 'bad_request'],
    [JSON.stringify({ type: 'clap', article: 'ok', id: 'x'.repeat(65) }), 'bad_request'],
    [JSON.stringify({ type: 7 }), 'bad_request'],
  ];
  for (const [text, code] of cases) {
    u.send(text);
    const err = await u.error();
    assert.equal(err.code, code, `for ${text}`);
    assert.equal(typeof err.message, 'string');
    const id = (() => { try { return JSON.parse(text).id; } catch { return undefined; } })();
    if (typeof id === 'string' && /^[A-Za-z0-9._:-]{1,64}$/.test(id)) assert.equal(err.id, id);
    else assert.equal(err.id, undefined);
  }
  // Binary frames are refused the same way.
  u.ws.send(Buffer.from('{"type":"clap","article":"ok"}'), { binary: true });
  assert.equal((await u.error()).code, 'bad_request');
  // Still usable.
  const ack = await u.clap('still-ok', 1);
  assert.equal(ack.accepted, 1);
  await u.close();
});

test('a subscribe is all or nothing, and re-subscribing is a no-op', async () => {
  const u = await open('allornothing');
  u.send({ type: 'subscribe', articles: ['aon-1', 'bad id', 'aon-2'], id: 'sub-1' });
  const err = await u.error((e) => e.id === 'sub-1');
  assert.equal(err.code, 'invalid_article');
  const snap = await u.subscribe(['aon-1']);
  assert.equal(snap.counts[0].viewers, 1, 'the rejected subscribe added nothing');
  const again = await u.subscribe(['aon-1']);
  assert.equal(again.counts[0].viewers, 1);
  await u.close();
});

test('an error frame quoting a bad id stays valid UTF-8, and the connection stays open', async () => {
  const u = await open('utf8echo');
  // 127 ASCII bytes then two-byte characters: a cut at 128 bytes would split one.
  const bad = 'a'.repeat(127) + 'é'.repeat(100);
  u.send({ type: 'subscribe', articles: [bad], id: 'utf8-1' });
  const err = await u.error((e) => e.id === 'utf8-1');
  assert.equal(err.code, 'invalid_article');
  assert.ok(!err.message.includes('\uFFFD'), 'no broken character in the message');
  assert.ok(err.message.endsWith('a') || err.message.endsWith('é'), `message ends whole: ${err.message.slice(-8)}`);
  const ack = await u.clap('utf8-still-open', 1);
  assert.equal(ack.accepted, 1);
  await u.close();
});

test('at most 256 subscriptions per connection', async () => {
  const u = await open('manysubs');
  const ids = Array.from({ length: 257 }, (_, i) => `ms${i}`);
  u.send({ type: 'subscribe', articles: ids, id: 'too-many' });
  const err = await u.error((e) => e.id === 'too-many');
  assert.equal(err.code, 'too_many_subscriptions');
  const ok = await u.subscribe(ids.slice(0, 256));
  assert.equal(ok.counts.length, 256);
  u.send({ type: 'subscribe', articles: ['ms256'], id: 'one-more' });
  assert.equal((await u.error((e) => e.id === 'one-more')).code, 'too_many_subscriptions');
  // Already-watched ids do not count twice.
  const same = await u.subscribe(['ms0']);
  assert.equal(same.counts.length, 1);
  await u.close();
});
