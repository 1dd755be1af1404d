// A real Redis for clapsd node tests: a master, replicas and three sentinels
// (Debian's redis-server, sentinels run as `redis-server --sentinel`) on free
// loopback ports in a temp dir. Every process is ours, killed by pid.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { deadline, eventually, tempDir } from '../integration/helpers.mjs';

export const MASTER_NAME = 'claps';

/** Ports nobody listens on right now (held open together, so distinct). */
export async function freePorts(n) {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolve(s));
  })));
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** Runs redis-cli against a port; resolves its stdout (trimmed). */
export function cli(port, ...args) {
  return deadline(new Promise((resolve, reject) => {
    execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], (err, stdout) => {
      if (err) reject(err); else resolve(stdout.trim());
    });
  }), 5000, `redis-cli -p ${port} ${args.join(' ')}`);
}

async function answers(port) {
  try { return (await cli(port, 'PING')) === 'PONG'; } catch { return false; }
}

export class redis_setup {
  constructor({ appendonly = false, password = '', serverConf = [] } = {}) {
    this.dir = tempDir('claps-nodes-redis-');
    this.appendonly = appendonly;  // servers keep their data across a restart (fsync'd AOF)
    // Servers and sentinels require this password (redis-cli then needs REDISCLI_AUTH).
    this.password = password;
    this.serverConf = serverConf;  // more redis.conf lines for every server
    this.procs = [];  // {role, port, child}
    process.on('exit', () => this.killAll());
  }

  /**
   * Starts master + `replicas` replicas + `sentinels` sentinels and waits until failover-ready.
   * With `appendonly`, every server fsyncs an AOF on each write, so restart() brings its data back.
   */
  static async start({ replicas = 2, sentinels = 3, appendonly = false, password = '', serverConf = [] } = {}) {
    const r = new redis_setup({ appendonly, password, serverConf });
    const ports = await freePorts(1 + replicas + sentinels);
    r.masterPort = ports[0];
    r.spawnServer('master', ports[0]);
    for (let i = 0; i < replicas; ++i) r.spawnServer('replica', ports[1 + i], ports[0]);
    for (let i = 0; i < sentinels; ++i) r.spawnSentinel(ports[1 + replicas + i]);
    await r.waitReady();
    return r;
  }

  conf(role, port, lines) {
    const file = path.join(this.dir, `${role}-${port}.conf`);
    fs.writeFileSync(file, lines.join('\n') + '\n');
    return file;
  }

  spawnServer(role, port, masterPort) {
    const lines = [`port ${port}`, 'bind 127.0.0.1', `dir ${this.dir}`, `dbfilename dump-${port}.rdb`,
      'save ""', `logfile ${path.join(this.dir, `${role}-${port}.log`)}`,
      ...(this.appendonly ? ['appendonly yes', 'appendfsync always', `appenddirname aof-${port}`] : ['appendonly no'])];
    if (masterPort) lines.push(`replicaof 127.0.0.1 ${masterPort}`);
    lines.push(...this.serverConf);
    if (this.password) lines.push(`requirepass ${this.password}`, `masterauth ${this.password}`);
    this.launch(role, port, [this.conf(role, port, lines)]);
  }

  spawnSentinel(port) {
    const lines = [`port ${port}`, 'bind 127.0.0.1', `dir ${this.dir}`,
      `logfile ${path.join(this.dir, `sentinel-${port}.log`)}`,
      `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${this.masterPort} 2`,
      `sentinel down-after-milliseconds ${MASTER_NAME} 1000`,
      `sentinel failover-timeout ${MASTER_NAME} 3000`,
      `sentinel parallel-syncs ${MASTER_NAME} 1`,
      ...(this.password ? [`requirepass ${this.password}`, `sentinel auth-pass ${MASTER_NAME} ${this.password}`,
        `sentinel sentinel-pass ${this.password}`] : [])];
    this.launch('sentinel', port, [this.conf('sentinel', port, lines), '--sentinel']);
  }

  launch(role, port, args) {
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    const proc = { role, port, child, args,
      exited: new Promise((resolve) => child.on('exit', resolve)) };
    this.procs.push(proc);
    return proc;
  }

  get servers() { return this.procs.filter((p) => p.role !== 'sentinel'); }
  get sentinels() { return this.procs.filter((p) => p.role === 'sentinel'); }
  /** "127.0.0.1:P,127.0.0.1:Q,..." for --sentinel. */
  get sentinelList() { return this.sentinels.map((s) => `127.0.0.1:${s.port}`).join(','); }
  get url() { return `redis://127.0.0.1:${this.masterPort}`; }

  async waitReady() {
    for (const p of this.procs)
      await eventually(() => answers(p.port), { ms: 10000, every: 50, what: `${p.role} :${p.port} to answer` });
    const replicas = this.servers.length - 1;
    for (const p of this.servers.filter((s) => s.role === 'replica'))
      await eventually(async () => (await cli(p.port, 'INFO', 'replication')).includes('master_link_status:up'),
        { ms: 20000, every: 100, what: `replica :${p.port} to sync` });
    // Failover needs a quorum of sentinels that know the replicas and each other.
    for (const s of this.sentinels)
      await eventually(async () => {
        const reps = await cli(s.port, 'SENTINEL', 'replicas', MASTER_NAME);
        const peers = await cli(s.port, 'SENTINEL', 'sentinels', MASTER_NAME);
        return (reps.match(/master-link-status\nok/g) ?? []).length >= replicas &&
          (peers.match(/^runid$/gm) ?? []).length + 1 >= this.sentinels.length;
      }, { ms: 30000, every: 200, what: `sentinel :${s.port} to discover replicas and peers` });
  }

  /** The master's port as the sentinels agree on it. */
  async sentinelMasterPort() {
    const out = await cli(this.sentinels[0].port, 'SENTINEL', 'get-master-addr-by-name', MASTER_NAME);
    return Number(out.split('\n')[1]);
  }

  /** SIGKILLs the process on `port` and waits for it to be gone. */
  async kill(port, signal = 'SIGKILL') {
    const p = this.procs.find((q) => q.port === port && q.child.exitCode === null && q.child.signalCode === null);
    if (!p) throw new Error(`no live redis process on :${port}`);
    p.child.kill(signal);
    await deadline(p.exited, 10000, `redis :${port} to exit`);
  }

  /** CLIENT PAUSE `ms` ALL on `port`: every client's commands wait that long. */
  pause(port, ms) { return cli(port, 'CLIENT', 'PAUSE', String(ms), 'ALL'); }

  /**
   * Starts again a server that was killed (same conf, same port). With `empty`,
   * its data files are removed first, so it comes back with nothing.
   */
  async restart(port, { empty = false } = {}) {
    const old = this.procs.find((q) => q.port === port);
    if (empty) {
      fs.rmSync(path.join(this.dir, `dump-${port}.rdb`), { force: true });
      fs.rmSync(path.join(this.dir, `aof-${port}`), { recursive: true, force: true });
    }
    this.procs.splice(this.procs.indexOf(old), 1);
    this.launch(old.role, port, old.args);
    await eventually(() => answers(port), { ms: 10000, every: 50, what: `redis :${port} to answer again` });
  }

  killAll() {
    for (const p of this.procs)
      if (p.child.exitCode === null && p.child.signalCode === null) {
        try { p.child.kill('SIGKILL'); } catch { /* already gone */ }
      }
  }

  async stop() {
    this.killAll();
    await Promise.all(this.procs.map((p) => deadline(p.exited, 10000, `redis :${p.port} to exit`).catch(() => {})));
  }
}
