// A WebSocket client on raw TCP, for conformance tests that must send what
// a well-behaved library never would: arbitrary opcodes, reserved bits,
// unmasked or fragmented control frames, broken UTF-8. It builds frames
// byte by byte and parses the server's frames as they arrive, so a test
// waits on a frame or on the connection's end, with a deadline.
import crypto from 'node:crypto';
import { deadline, rawConnect } from './helpers.mjs';

export const op = { cont: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa };

/**
 * One client frame. `payload` is a Buffer or string; `mask` false sends it
 * unmasked; `maskKey` (4 bytes) replaces the random key; `rsv` is the 3
 * reserved bits as one number, as Autobahn counts them (4 = RSV1, 1 = RSV3).
 */
export function frame(opcode, payload = Buffer.alloc(0), { fin = true, rsv = 0, mask = true, maskKey } = {}) {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const len = body.length;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + ext + (mask ? 4 : 0));
  head[0] = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  head[1] = (mask ? 0x80 : 0) | (ext === 0 ? len : ext === 2 ? 126 : 127);
  if (ext === 2) head.writeUInt16BE(len, 2);
  if (ext === 8) head.writeBigUInt64BE(BigInt(len), 2);
  if (!mask) return Buffer.concat([head, body]);
  const key = maskKey ? Buffer.from(maskKey) : crypto.randomBytes(4);
  key.copy(head, 2 + ext);
  const masked = Buffer.alloc(len);
  for (let i = 0; i < len; ++i) masked[i] = body[i] ^ key[i & 3];
  return Buffer.concat([head, masked]);
}

/** A close frame's payload: the code (2 bytes) and a reason (string or bytes). */
export function closePayload(code, reason = Buffer.alloc(0)) {
  const r = Buffer.isBuffer(reason) ? reason : Buffer.from(reason);
  const b = Buffer.alloc(2 + r.length);
  b.writeUInt16BE(code, 0);
  r.copy(b, 2);
  return b;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
function isUtf8(bytes) {
  try { strictUtf8.decode(bytes); return true; } catch { return false; }
}

/** Parses server frames from a byte stream, one push at a time. */
class frame_parser {
  constructor() { this.buf = Buffer.alloc(0); }
  push(data) {
    this.buf = Buffer.concat([this.buf, data]);
    const out = [];
    for (;;) {
      if (this.buf.length < 2) break;
      const b0 = this.buf[0], b1 = this.buf[1];
      let len = b1 & 0x7f, at = 2;
      if (len === 126) { if (this.buf.length < 4) break; len = this.buf.readUInt16BE(2); at = 4; }
      else if (len === 127) { if (this.buf.length < 10) break; len = Number(this.buf.readBigUInt64BE(2)); at = 10; }
      const masked = !!(b1 & 0x80);
      if (masked) at += 4;  // a server must not mask: kept parseable so problems() can say so
      if (this.buf.length < at + len) break;
      out.push({ fin: !!(b0 & 0x80), rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked,
                 payload: Buffer.from(this.buf.subarray(at, at + len)) });
      this.buf = this.buf.subarray(at + len);
    }
    return out;
  }
}

/**
 * A raw connection after its opening handshake. `status` is the HTTP status
 * of the answer (0 when the server closed without one). `frames` holds the
 * server frames no `next` took yet; `log` every frame in arrival order. Text
 * frames carry `json` when they parse; close frames `code` and `reason`.
 */
export class raw_ws {
  constructor(socket) {
    this.socket = socket;
    this.frames = [];
    this.log = [];
    this.waiters = new Set();
    this.parser = new frame_parser();
    this.ended = new Promise((resolve) => socket.once('close', resolve));
    socket.on('error', () => {});
  }

  feed(data) {
    for (const f of this.parser.push(data)) {
      if (f.opcode === op.text) {
        try { f.json = JSON.parse(f.payload.toString()); } catch { /* problems() reports it */ }
      }
      if (f.opcode === op.close && f.payload.length >= 2) {
        f.code = f.payload.readUInt16BE(0);
        f.reason = f.payload.subarray(2).toString();
      }
      this.frames.push(f);
      this.log.push(f);
    }
    for (const w of [...this.waiters]) w();
  }

  /**
   * Opens `path` on `port` with a raw HTTP upgrade request. `headers`
   * override the standard ones, or remove one with the value null.
   */
  static async connect(port, { path = '/ws', headers = {} } = {}) {
    const socket = await rawConnect(port);
    socket.setNoDelay(true);
    const all = {
      Host: `127.0.0.1:${port}`, Upgrade: 'websocket', Connection: 'Upgrade',
      'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'), 'Sec-WebSocket-Version': '13',
      ...headers,
    };
    const lines = Object.entries(all).filter(([, v]) => v !== null).map(([k, v]) => `${k}: ${v}`);
    const conn = new raw_ws(socket);
    conn.key = all['Sec-WebSocket-Key'];
    socket.write(`GET ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`);
    const response = await deadline(new Promise((resolve) => {
      let head = Buffer.alloc(0);
      const onData = (d) => {
        head = Buffer.concat([head, d]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        resolve({ head: head.subarray(0, end).toString(), rest: head.subarray(end + 4) });
      };
      socket.on('data', onData);
      conn.ended.then(() => resolve({ head: '', rest: head }));
    }), 5000, `the HTTP answer to GET ${path}`);
    const [statusLine, ...headerLines] = response.head.split('\r\n');
    conn.status = Number(statusLine.split(' ')[1] ?? 0);
    conn.headers = Object.fromEntries(headerLines.map((l) => {
      const i = l.indexOf(':');
      return [l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim()];
    }));
    if (conn.status === 101) {
      socket.on('data', (d) => conn.feed(d));
      conn.feed(response.rest);
    } else {
      // The body may come in a later segment than the head.
      let body = response.rest;
      const length = Number(conn.headers['content-length'] ?? 0);
      await deadline(new Promise((resolve) => {
        const check = () => { if (body.length >= length) resolve(); };
        socket.on('data', (d) => { body = Buffer.concat([body, d]); check(); });
        conn.ended.then(resolve);
        check();
      }), 5000, `the ${length}-byte body of HTTP ${conn.status}`);
      conn.body = body.toString();
    }
    return conn;
  }

  /** Connects and takes the hello frame, which always comes first. */
  static async open(port, options) {
    const conn = await raw_ws.connect(port, options);
    if (conn.status !== 101) throw new Error(`upgrade refused: HTTP ${conn.status}`);
    conn.hello = await conn.next(() => true, { what: 'hello' });
    if (conn.hello.json?.type !== 'hello') throw new Error(`first frame is not hello: ${conn.hello.payload}`);
    return conn;
  }

  write(...buffers) { this.socket.write(Buffer.concat(buffers)); }
  send(opcode, payload, options) { this.write(frame(opcode, payload, options)); }

  /** The first server frame matching `pred`, taken out of `frames`. */
  next(pred = () => true, { ms = 5000, what = 'a server frame' } = {}) {
    let check;
    return deadline(new Promise((resolve, reject) => {
      check = () => {
        const i = this.frames.findIndex(pred);
        if (i >= 0) {
          this.waiters.delete(check);
          resolve(this.frames.splice(i, 1)[0]);
        }
      };
      this.waiters.add(check);
      check();
      this.ended.then(() => {
        if (this.waiters.delete(check)) reject(new Error(`connection ended while waiting for ${what}`));
      });
    }), ms, what).finally(() => this.waiters.delete(check));
  }

  /** The next text frame whose JSON satisfies `pred`. */
  async json(pred = () => true, options) {
    const f = await this.next((x) => x.opcode === op.text && x.json !== undefined && pred(x.json), options);
    return f.json;
  }

  /** Sends `text` as one text frame and returns the reply with that `id`, or the next error. */
  async ask(text, id) {
    this.send(op.text, text);
    return this.json((j) => (id ? j.id === id : j.type === 'error'), { what: `the reply to ${id ?? 'a bad message'}` });
  }

  /** The server's close frame, without answering it. */
  closeFrame(options) { return this.next((f) => f.opcode === op.close, { what: 'a close frame', ...options }); }

  /**
   * How the server ended the connection: {code, reason} of its close frame
   * (code null for an empty one), after answering it as a client should and
   * seeing TCP close; or {code: 'dropped'} when TCP closed without one.
   */
  async closed({ ms = 5000 } = {}) {
    const isClose = (f) => f.opcode === op.close;
    await deadline(new Promise((resolve) => {
      const check = () => { if (this.frames.some(isClose)) { this.waiters.delete(check); resolve(); } };
      this.waiters.add(check);
      check();
      this.ended.then(() => { this.waiters.delete(check); resolve(); });
    }), ms, 'the server to close');
    const i = this.frames.findIndex(isClose);
    if (i < 0) return { code: 'dropped' };
    const f = this.frames.splice(i, 1)[0];
    if (!this.socket.destroyed) this.socket.write(frame(op.close, f.payload.subarray(0, 2)));
    await deadline(this.ended, ms, 'TCP to close after the close handshake');
    return { code: f.code ?? null, reason: f.reason ?? '' };
  }

  /** Resolves when TCP has closed, or rejects after `ms`. */
  tcpClosed({ ms = 5000 } = {}) { return deadline(this.ended, ms, 'TCP to close'); }

  /** Resolves true if TCP closes within `ms`, false otherwise (only to assert it stays open). */
  endsWithin(ms) {
    let timer;
    return Promise.race([
      this.ended.then(() => true),
      new Promise((resolve) => { timer = setTimeout(() => resolve(false), ms); }),
    ]).finally(() => clearTimeout(timer));
  }

  /** What the server sent that RFC 6455 forbids, as readable lines (empty when all is well). */
  problems() {
    const out = [];
    let closedAt = -1;
    this.log.forEach((f, i) => {
      const at = `frame ${i} (opcode ${f.opcode})`;
      if (closedAt >= 0 && (f.opcode === op.text || f.opcode === op.binary)) {
        out.push(`${at} is data after the close frame ${closedAt}`);
      }
      if (f.opcode === op.close && closedAt < 0) closedAt = i;
      if (f.masked) out.push(`${at} is masked`);
      if (f.rsv) out.push(`${at} sets reserved bits ${f.rsv}`);
      if (f.opcode === op.text && !isUtf8(f.payload)) out.push(`${at} is text but not UTF-8`);
      if (f.opcode === op.close && f.payload.length > 2 && !isUtf8(f.payload.subarray(2))) {
        out.push(`${at} has a close reason that is not UTF-8`);
      }
    });
    return out;
  }

  destroy() { this.socket.destroy(); }
}
