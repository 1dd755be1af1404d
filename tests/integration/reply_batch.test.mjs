// Reply batching: replies made in one loop pass (a commit's acks, the errors
// of one read) leave a connection together. A client that connected with
// ?batch=1 gets them as {"type":"batch","messages":[...]} frames, each as large
// as lws writes in one send(); every other client gets exactly the frames it
// got before, one reply each.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { client, deadline, startServer } from './helpers.mjs';

let server;
before(async () => {
  // A long tick, so claps written together are very likely one tick's batch;
  // the assertions below hold however they fall into ticks.
  server = await startServer({ args: ['--store', 'memory', '--tick-ms', '200'] });
});
after(async () => { await server?.stop(); });

/** Sends several messages in one write, so the server reads them in one pass. */
function sendTogether(c, messages) {
  c.ws._socket.cork();
  for (const m of messages) c.send(m);
  process.nextTick(() => c.ws._socket.uncork());
}

/** Waits until `count` replies matching `pred` arrived, bare or inside batch frames. */
async function collect(c, pred, count, what) {
  const messages = () => c.frames.flatMap((f) => (f.type === 'batch' ? f.messages : [f])).filter(pred);
  if (messages().length >= count) return messages();
  await deadline(new Promise((resolve) => {
    const w = () => {
      if (messages().length < count) return;
      c.waiters.splice(c.waiters.indexOf(w), 1);
      resolve();
    };
    c.waiters.push(w);
  }), 10000, what);
  return messages();
}

const claps = (prefix, n) => Array.from({ length: n }, (_, i) => ({ type: 'clap', article: `${prefix}-${i}`, id: `${prefix}-op-${i}` }));

test('with ?batch=1 the acks of one commit share frames, in order, each exactly once', async () => {
  const c = await client.open(`${server.ws}?user=batcher&batch=1`);
  assert.equal(c.hello.type, 'hello', 'a reply made alone is a plain frame');
  const sent = claps('bat', 10);
  sendTogether(c, sent);
  const acks = await collect(c, (m) => m.type === 'ack', 10, 'ten acks');
  assert.deepEqual(acks.map((a) => a.id).sort(), sent.map((m) => m.id).sort(), 'every ack exactly once');
  for (const a of acks) {
    assert.equal(a.accepted, 1);
    assert.equal(a.mine, 1);
    assert.equal(a.article, sent.find((m) => m.id === a.id).article);
  }
  // Ten claps over at most a few 200 ms ticks: some tick held several, and
  // its acks shared a frame, in the order the claps were sent.
  const batches = c.frames.filter((f) => f.type === 'batch');
  assert.ok(batches.some((b) => b.messages.length >= 2), `expected a batch, got ${c.frames.map((f) => f.type)}`);
  for (const b of batches) {
    const order = b.messages.map((m) => sent.findIndex((s) => s.id === m.id));
    assert.deepEqual(order, [...order].sort((x, y) => x - y));
  }
  await c.close();
});

test('with ?batch=1 the errors of one read share a frame', async () => {
  const c = await client.open(`${server.ws}?user=bad-batcher&batch=1`);
  sendTogether(c, [
    { type: 'clap', article: 'bad article', id: 'e1' },
    { type: 'clap', article: 'ok', count: 0, id: 'e2' },
    { type: 'nonsense', id: 'e3' },
  ]);
  const errors = await collect(c, (m) => m.type === 'error', 3, 'three errors');
  assert.deepEqual(errors.map((e) => e.id), ['e1', 'e2', 'e3'], 'in the order of the messages');
  assert.deepEqual(errors.map((e) => e.code), ['invalid_article', 'bad_request', 'bad_request']);
  // A batch frame is cut where lws would cut a send(), so three errors may
  // take two frames; at least two of them share one.
  const batch = c.frames.find((f) => f.type === 'batch');
  assert.ok(batch, 'one read of three bad messages makes a batch');
  assert.ok(batch.messages.length >= 2);
  assert.equal(c.frames.filter((f) => f.type !== 'hello').length, 3 - batch.messages.length + 1, 'at most two frames');
  await c.close();
});

test('without ?batch=1 every reply is its own frame, as before', async () => {
  const c = await client.open(`${server.ws}?user=plain`);
  const sent = claps('plain', 10);
  sendTogether(c, sent);
  for (const m of sent) {
    const ack = await c.ack(m.id, 10000);
    assert.equal(ack.type, 'ack');
    assert.equal(ack.accepted, 1);
  }
  assert.equal(c.frames.filter((f) => f.type === 'batch').length, 0);
  await c.close();
});

test('batched acks go before the tick update they caused', async () => {
  const c = await client.open(`${server.ws}?user=ordered&batch=1`);
  const articles = ['ord-0', 'ord-1', 'ord-2'];
  await c.subscribe(articles);
  const sent = articles.map((article, i) => ({ type: 'clap', article, id: `ord-op-${i}` }));
  sendTogether(c, sent);
  await collect(c, (m) => m.type === 'counts' && !m.snapshot && m.counts.length > 0, 1, 'a tick update');
  await collect(c, (m) => m.type === 'ack', 3, 'three acks');
  // Every article's ack comes before the first update showing its clap.
  const flat = c.frames.flatMap((f) => (f.type === 'batch' ? f.messages : [f]));
  for (const [i, article] of articles.entries()) {
    const ackAt = flat.findIndex((m) => m.type === 'ack' && m.id === `ord-op-${i}`);
    const updateAt = flat.findIndex((m) => m.type === 'counts' && !m.snapshot &&
      m.counts.some((x) => x.article === article && x.total >= 1));
    assert.ok(ackAt >= 0);
    if (updateAt >= 0) assert.ok(ackAt < updateAt, `${article}: ack at ${ackAt}, update at ${updateAt}`);
  }
  await c.close();
});
