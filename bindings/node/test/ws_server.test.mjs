// examples/ws_server.mjs, the engine embedded in a `ws` server, with the
// real JS client of the protocol (bindings/js/claps-client.js): two clients,
// one claps, gets its ack, the other sees the new total; the server keeps
// its data in LMDB across a restart and ends by itself on SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClapsClient } from '../../js/claps-client.js';
import { WebSocket, deadline, tempDir } from '../../../tests/integration/helpers.mjs';

const SERVER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'ws_server.mjs');

// Starts the example on a free port; resolves once it listens.
function startServer(dataDir) {
  const child = spawn(process.execPath, [SERVER, '--port', '0', '--data', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stderr })));
  const url = new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (ws:\/\/127\.0\.0\.1:\d+\/ws)/);
      if (m) resolve(m[1]);
    });
    exited.then((e) => reject(new Error(`server exited early: ${e.code} ${e.stderr}`)));
  });
  return { child, exited, url: deadline(url, 10000, 'the example to listen') };
}

function nextEvent(client, type, match = () => true) {
  return deadline(new Promise((resolve) => {
    const off = client.on(type, (detail) => {
      if (!match(detail)) return;
      off();
      resolve(detail);
    });
  }), 10000, `a '${type}' event`);
}

const live = (client) => (client.status === 'live' ? null : nextEvent(client, 'status', (s) => s.status === 'live'));

test('two ClapsClients against the example: clap, ack, the other sees the update; data survives a restart', async () => {
  const dataDir = tempDir('claps-node-ws-');
  let server = startServer(dataDir);
  const url = await server.url;
  const alice = new ClapsClient({ url, user: 'alice', WebSocket, tickMs: 5 });
  const bob = new ClapsClient({ url, user: 'bob', WebSocket, tickMs: 5 });
  try {
    alice.subscribe(['post-1']);
    bob.subscribe(['post-1']);
    await Promise.all([live(alice), live(bob)]);
    assert.equal(alice.user, 'alice');
    assert.equal(alice.cap, 50);

    const bobSees = nextEvent(bob, 'counts', () => bob.view('post-1').total === 3);
    const ack = nextEvent(alice, 'ack');
    alice.clap('post-1', 3);
    const a = await ack;
    assert.equal(a.article, 'post-1');
    assert.equal(a.accepted, 3);
    await bobSees;
    assert.equal(bob.view('post-1').total, 3);
    assert.equal(bob.view('post-1').viewers, 2);
    assert.equal(alice.view('post-1').mine, 3);

    // Undo: bob sees the total go back.
    const bobSeesUndo = nextEvent(bob, 'counts', () => bob.view('post-1').total === 0);
    const undoAck = nextEvent(alice, 'ack');
    alice.undo('post-1');
    assert.equal((await undoAck).accepted, -3);
    await bobSeesUndo;

    // Bob claps; then the server restarts on the same LMDB directory.
    const bobAck = nextEvent(bob, 'ack');
    bob.clap('post-1', 7);
    assert.equal((await bobAck).accepted, 7);
  } finally {
    alice.close();
    bob.close();
  }
  server.child.kill('SIGTERM');
  const ended = await deadline(server.exited, 10000, 'the example to end after SIGTERM');
  assert.equal(ended.code, 0, ended.stderr);

  server = startServer(dataDir);
  const carol = new ClapsClient({ url: await server.url, user: 'carol', WebSocket });
  try {
    const snapshot = nextEvent(carol, 'counts', () => carol.view('post-1').total === 7);
    carol.subscribe(['post-1']);
    await snapshot;
  } finally {
    carol.close();
    server.child.kill('SIGTERM');
    assert.equal((await deadline(server.exited, 10000, 'the example to end')).code, 0);
  }
});
