// A real Redis Cluster for clapsd node tests: masters and replicas started
// with Debian's redis-server (cluster-enabled, each with its own
// cluster-config-file in a temp dir) on free loopback ports, joined by
// `redis-cli --cluster create`. Every process is ours, killed by pid (at the
// latest at process exit, through redis_setup).
import { execFile } from 'node:child_process';
import path from 'node:path';
import { deadline, eventually } from '../integration/helpers.mjs';
import { cli, freePorts, redis_setup } from './redis_harness.mjs';

export const SLOTS = 16384;

// CRC16/XMODEM, the hash of Redis Cluster's key slots.
const crcTable = Array.from({ length: 256 }, (_, i) => {
  let c = i << 8;
  for (let k = 0; k < 8; ++k) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
  return c;
});

/**
 * The slot of `key` as Redis computes it (the hash tag {..} when it has a
 * non-empty one). The tests check it against CLUSTER KEYSLOT; it is computed
 * here so that choosing article names by slot needs no round trips.
 */
export function hashSlot(key) {
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  let crc = 0;
  for (const byte of Buffer.from(key)) crc = ((crc << 8) & 0xffff) ^ crcTable[((crc >> 8) ^ byte) & 0xff];
  return crc % SLOTS;
}

/** Runs `redis-cli --cluster ARGS...`; resolves its stdout, rejects with its output on failure. */
function clusterCli(args, ms) {
  return deadline(new Promise((resolve, reject) => {
    execFile('redis-cli', ['--cluster', ...args], { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli --cluster ${args.join(' ')}: ${err.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  }), ms, `redis-cli --cluster ${args[0]}`);
}

/**
 * One line of CLUSTER NODES: {id, port, flags, masterId, slots: [[from, to]...]}.
 * Slots being migrated ("[slot->-id]", "[slot-<-id]") are left out.
 */
function parseNodeLine(line) {
  const [id, addr, flags, masterId, , , , link, ...slots] = line.split(' ');
  return {
    id, port: Number(addr.split('@')[0].split(':')[1]), flags: flags.split(','), masterId, link,
    slots: slots.filter((s) => !s.startsWith('[')).map((s) => {
      const [from, to = from] = s.split('-').map(Number);
      return [from, to];
    }),
  };
}

export class redis_cluster extends redis_setup {
  /**
   * Starts `masters` masters with `replicasPerMaster` replicas each, joins
   * them into one cluster and waits until every node says cluster_state:ok,
   * all 16384 slots are covered and every replica is in sync.
   */
  static async start({ masters = 3, replicasPerMaster = 1, nodeTimeoutMs = 1500, serverConf = [] } = {}) {
    const r = new redis_cluster({ serverConf });
    const n = masters * (1 + replicasPerMaster);
    // Client ports and cluster bus ports, all free now (the bus is not port + 10000:
    // ephemeral ports plus 10000 can pass 65535).
    const ports = await freePorts(2 * n);
    r.nodeTimeoutMs = nodeTimeoutMs;
    for (let i = 0; i < n; ++i) r.spawnClusterServer(ports[i], ports[n + i]);
    for (const p of r.procs)
      await eventually(async () => {
        try { return (await cli(p.port, 'PING')) === 'PONG'; } catch { return false; }
      }, { ms: 10000, every: 50, what: `redis :${p.port} to answer` });
    // The first `masters` addresses become the masters.
    await clusterCli(['create', ...r.procs.map((p) => `127.0.0.1:${p.port}`),
      '--cluster-replicas', String(replicasPerMaster), '--cluster-yes'], 60000);
    await r.waitHealthy({ ms: 30000 });
    await r.rememberReplicas();
    return r;
  }

  spawnClusterServer(port, busPort) {
    const lines = [`port ${port}`, `cluster-port ${busPort}`, 'bind 127.0.0.1', `dir ${this.dir}`,
      'cluster-enabled yes', `cluster-config-file nodes-${port}.conf`, `cluster-node-timeout ${this.nodeTimeoutMs}`,
      'save ""', 'appendonly no', `dbfilename dump-${port}.rdb`,
      `logfile ${path.join(this.dir, `node-${port}.log`)}`, ...this.serverConf];
    return this.launch('cluster-node', port, [this.conf('node', port, lines)]);
  }

  /** The processes still running. */
  get live() { return this.procs.filter((p) => p.child.exitCode === null && p.child.signalCode === null); }

  /** "127.0.0.1:P,127.0.0.1:Q,..." of every live node: the seeds for --redis-cluster. */
  get seeds() { return this.live.map((p) => `127.0.0.1:${p.port}`).join(','); }

  /** CLUSTER NODES as one live node (`via`, default: the first that answers) sees it. */
  async nodes(via) {
    for (const p of via ? [{ port: via }] : this.live) {
      try {
        const out = await cli(p.port, 'CLUSTER', 'NODES');
        return out.split('\n').filter(Boolean).map(parseNodeLine);
      } catch (e) {
        if (via) throw e;
      }
    }
    throw new Error('no cluster node answers');
  }

  /** The masters that serve slots, as {id, port, slots}, seen from a live node, ordered by their first slot. */
  async masters(via) {
    const all = await this.nodes(via);
    return all.filter((n) => n.flags.includes('master') && !n.flags.includes('fail') && n.slots.length)
      .sort((a, b) => a.slots[0][0] - b.slots[0][0]);
  }

  /** The port of the master owning `slotOrKey` (a slot number, or a key: its slot by CLUSTER KEYSLOT). */
  async masterOf(slotOrKey, via) {
    const slot = typeof slotOrKey === 'number' ? slotOrKey
      : Number(await cli(via ?? this.live[0].port, 'CLUSTER', 'KEYSLOT', slotOrKey));
    const owner = (await this.masters(via)).find((m) => m.slots.some(([a, b]) => slot >= a && slot <= b));
    if (!owner) throw new Error(`no master owns slot ${slot}`);
    return owner.port;
  }

  /**
   * Waits until every live node says cluster_state:ok with all 16384 slots
   * ok, every live node agrees on who owns which slot, and every live replica
   * is in sync with its master.
   */
  async waitHealthy({ ms = 30000 } = {}) {
    let why = '';
    try {
      await eventually(async () => {
        const maps = [];
        for (const p of this.live) {
          const info = await cli(p.port, 'CLUSTER', 'INFO');
          if (!/cluster_state:ok/.test(info) || !new RegExp(`cluster_slots_ok:${SLOTS}\\b`).test(info)) {
            why = `:${p.port} says ${info.split('\n').slice(0, 3).join(' ')}`;
            return false;
          }
          const masters = await this.masters(p.port);
          const covered = masters.reduce((s, m) => s + m.slots.reduce((t, [a, b]) => t + b - a + 1, 0), 0);
          if (covered !== SLOTS) { why = `:${p.port} sees ${covered} slots covered`; return false; }
          maps.push(JSON.stringify(masters.map((m) => [m.port, m.slots])));
          const me = (await this.nodes(p.port)).find((n) => n.flags.includes('myself'));
          if (me.flags.includes('slave') &&
            !(await cli(p.port, 'INFO', 'replication')).includes('master_link_status:up')) {
            why = `replica :${p.port} not in sync`;
            return false;
          }
        }
        if (new Set(maps).size !== 1) { why = 'the nodes disagree on the slot map'; return false; }
        return true;
      }, { ms, every: 100, what: 'the Redis Cluster to be healthy' });
    } catch (e) {
      e.message += ` (${why})`;
      throw e;
    }
  }

  /** SIGKILLs the node on `port` (kill -9) and waits for it to be gone. */
  kill9(port) { return this.kill(port, 'SIGKILL'); }

  /**
   * After kill9(oldPort) of a master: waits until one of its replicas serves
   * its slots and the cluster is healthy again; resolves the new master's port.
   */
  async waitForFailover(oldPort, { ms = 30000 } = {}) {
    let promoted;
    await eventually(async () => {
      const all = await this.nodes();
      const old = all.find((n) => n.port === oldPort);
      if (!old || !old.flags.includes('fail')) return false;
      const heir = all.find((n) => n.flags.includes('master') && !n.flags.includes('fail') && n.port !== oldPort &&
        this.replicaOf[n.port] === oldPort);
      if (!heir?.slots.length) return false;
      promoted = heir.port;
      return true;
    }, { ms, every: 50, what: `a replica of :${oldPort} to be promoted` });
    await this.waitHealthy({ ms });
    return promoted;
  }

  /**
   * Notes which master each replica follows now ({replicaPort: masterPort}),
   * for waitForFailover(); start() calls it, and so should a test that changed
   * the topology on purpose.
   */
  async rememberReplicas() {
    const all = await this.nodes();
    const byId = Object.fromEntries(all.map((n) => [n.id, n]));
    this.replicaOf = Object.fromEntries(all.filter((n) => n.flags.includes('slave'))
      .map((n) => [n.port, byId[n.masterId]?.port]));
    return this.replicaOf;
  }

  /**
   * Moves `slots` slots from the master on `fromPort` to the one on `toPort`
   * with `redis-cli --cluster reshard` (it takes the source's lowest slots),
   * and waits for the cluster to be healthy again.
   */
  async reshard(fromPort, toPort, slots, { ms = 60000 } = {}) {
    const all = await this.nodes();
    const id = (port) => all.find((n) => n.port === port).id;
    await clusterCli(['reshard', `127.0.0.1:${fromPort}`, '--cluster-from', id(fromPort), '--cluster-to', id(toPort),
      '--cluster-slots', String(slots), '--cluster-yes'], ms);
    await this.waitHealthy({ ms });
  }

  /** DBSIZE of every master: {port: keys}. */
  async keysPerMaster() {
    const out = {};
    for (const m of await this.masters()) out[m.port] = Number(await cli(m.port, 'DBSIZE'));
    return out;
  }

  /** Every key on the node on `port` (SCAN over its own keyspace). */
  async keysOn(port, match = '*') {
    const keys = [];
    let cursor = '0';
    do {
      const out = (await cli(port, 'SCAN', cursor, 'MATCH', match, 'COUNT', '1000')).split('\n');
      cursor = out[0];
      keys.push(...out.slice(1).filter(Boolean));
    } while (cursor !== '0');
    return keys;
  }
}

