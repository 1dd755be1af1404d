// Runs every runner of tests/bindings/SEQUENCE.md given on the command line,
// each on a fresh LMDB directory, and fails unless their outputs are
// byte-identical and the first runner's output (the C++ one) follows the
// rules: the cap, replays, the undo, the refusals, the deliveries, and the
// totals read back after reopening the store. The expected lines are derived
// here from those rules and the script of ops, not copied from SEQUENCE.md.
// Then it checks that the checks can fail: each corruption of the output in
// `corruptions` below must be caught.
//
// Usage: node compare.mjs RUNNER [RUNNER...]
//   RUNNER: an executable, or a .py file (run with python3), or a .mjs/.js
//   file (run with node). Each gets one argument: a fresh directory.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CAP = 50;
const ID = /^[A-Za-z0-9._:-]{1,128}$/;

// The script of SEQUENCE.md: steps 3-9, then step 13 after the reopen.
const OPS_BEFORE = [
  { step: 'clap', user: 'alice', article: 'a1', count: 30, op: 'op-1' },
  { step: 'clap', user: 'alice', article: 'a1', count: 30, op: 'op-2' },
  { step: 'clap', user: 'bob', article: 'a1', count: 5, op: 'op-3' },
  { step: 'clap', user: 'alice', article: 'a1', count: 30, op: 'op-1' },
  { step: 'clap', user: 'alice', article: 'a1', count: 0, op: 'op-5' },
  { step: 'clap', user: 'alice', article: 'bad article!', count: 1, op: 'op-6' },
  { step: 'undo', user: 'alice', article: 'a1', count: 0, op: 'op-4' },
];
const OPS_AFTER = [{ step: 'clap', user: 'bob', article: 'a1', count: 5, op: 'op-3' }];

// The engine's rules as a model: per (user, article) tallies bounded by the
// cap, op ids scoped to (user, article) that replay their first answer with
// the current total, an undo that removes all of a user's claps, refusals at
// once for a bad article id or a count outside 1..cap.
function model() {
  const tallies = new Map(); // "user/article" -> claps
  const totals = new Map(); // article -> total
  const ops = new Map(); // "user/article/op" -> {accepted, mine}
  return {
    tally: (user, article) => tallies.get(`${user}/${article}`) ?? 0,
    total: (article) => totals.get(article) ?? 0,
    apply({ step, user, article, count, op }) {
      const line = { step, user, article, count, op, error: '', accepted: 0, total: 0, mine: 0, replayed: false };
      if (!ID.test(article)) return { ...line, error: 'invalid_article' };
      if (step === 'clap' && (count < 1 || count > CAP)) return { ...line, error: 'invalid_count' };
      const key = `${user}/${article}/${op}`;
      const seen = ops.get(key);
      if (seen) return { ...line, ...seen, total: this.total(article), replayed: true };
      const had = this.tally(user, article);
      const accepted = step === 'undo' ? -had : Math.min(count, Math.max(0, CAP - had));
      tallies.set(`${user}/${article}`, had + accepted);
      totals.set(article, this.total(article) + accepted);
      ops.set(key, { accepted, mine: had + accepted });
      return { ...line, accepted, total: this.total(article), mine: had + accepted };
    },
  };
}

// The lines the rules give, in order.
function expectedLines() {
  const m = model();
  const lines = [{ step: 'open' }];
  lines.push({ step: 'subscribe', subscriber: 1, article: 'a1', total: 0, viewers: 1, mine: 0 });
  // Subscriber 1 first gets its subscription's update (the viewer count),
  // then one update per op that changed a1's total.
  const delivered = [m.total('a1')];
  for (const op of OPS_BEFORE) {
    const line = m.apply(op);
    lines.push(line);
    if (!line.error && !line.replayed && line.accepted !== 0 && op.article === 'a1') delivered.push(line.total);
  }
  lines.push({ step: 'deliveries', subscriber: 1, totals: delivered });
  lines.push({ step: 'close' });
  // Durability: the reopened store holds what was acknowledged.
  for (const user of ['alice', 'bob'])
    lines.push({ step: 'read', user, article: 'a1', total: m.total('a1'), mine: m.tally(user, 'a1') });
  for (const op of OPS_AFTER) lines.push(m.apply(op));
  lines.push({ step: 'close' });
  return lines;
}

// Problems with `output` (a runner's stdout) against the rules; empty when none.
export function check(output) {
  const problems = [];
  const got = output.split('\n');
  if (got.at(-1) === '') got.pop();
  else problems.push('output does not end with a newline');
  const want = expectedLines();
  if (got.length !== want.length) problems.push(`${got.length} lines, the rules give ${want.length}`);
  for (let i = 0; i < Math.min(got.length, want.length); ++i) {
    let parsed;
    try {
      parsed = JSON.parse(got[i]);
    } catch {
      problems.push(`line ${i + 1} is not JSON: ${got[i]}`);
      continue;
    }
    // Exact bytes: the keys in order, no spaces, integers as integers.
    if (got[i] !== JSON.stringify(parsed)) problems.push(`line ${i + 1} is not in the canonical form: ${got[i]}`);
    const expected = JSON.stringify(want[i]);
    if (got[i] !== expected) problems.push(`line ${i + 1}: got ${got[i]}\n  the rules give ${expected}`);
  }
  return problems;
}

// Each turns a correct output into one that breaks one rule.
const corruptions = {
  'the cap is not respected': (s) => s.replace('"op":"op-2","error":"","accepted":20', '"op":"op-2","error":"","accepted":30'),
  'a replay is applied again': (s) => s.replace('"accepted":30,"total":55,"mine":30,"replayed":true', '"accepted":30,"total":85,"mine":60,"replayed":false'),
  'the undo leaves alice claps': (s) => s.replace('"op":"op-4","error":"","accepted":-50,"total":5,"mine":0', '"op":"op-4","error":"","accepted":-30,"total":25,"mine":20'),
  'a total does not survive the reopen': (s) => s.replace('{"step":"read","user":"alice","article":"a1","total":5', '{"step":"read","user":"alice","article":"a1","total":0'),
  'bob is not replayed across the reopen': (s) => s.replace(/"replayed":true}\n\{"step":"close"\}\n$/, '"replayed":false}\n{"step":"close"}\n'),
  'a refusal carries another error': (s) => s.replace('"error":"invalid_count"', '"error":"bad_request"'),
  'the bad article is accepted': (s) => s.replace('"error":"invalid_article"', '"error":""'),
  'a delivery is missing': (s) => s.replace(/"totals":\[([0-9,-]*),([0-9-]+)\]/, '"totals":[$1]'),
  'a key is out of order': (s) => s.replace('{"step":"open"}', '{"step":"open"}').replace('"subscriber":1,"article":"a1","total"', '"article":"a1","subscriber":1,"total"'),
  'a space crept in': (s) => s.replace('{"step":"close"}', '{"step": "close"}'),
  'a step is missing': (s) => s.replace(/\{"step":"read","user":"bob"[^\n]*\n/, ''),
};

function run(runner) {
  const dir = mkdtempSync(join(tmpdir(), 'claps-sequence-'));
  try {
    const [cmd, args] = runner.endsWith('.py') ? [process.env.PYTHON ?? 'python3', [runner]]
      : /\.(mjs|js)$/.test(runner) ? [process.execPath, [runner]] : [runner, []];
    const r = spawnSync(cmd, [...args, join(dir, 'store')], { encoding: 'utf8', timeout: 60_000 });
    if (r.error) throw new Error(`${runner}: ${r.error.message}`);
    if (r.status !== 0) throw new Error(`${runner} exited with ${r.status ?? r.signal}:\n${r.stderr}`);
    return r.stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function main(runners) {
  if (runners.length === 0) {
    console.error('usage: node compare.mjs RUNNER [RUNNER...]');
    return 2;
  }
  let failed = false;
  const outputs = runners.map((r) => [r, run(r)]);
  const [first, reference] = outputs[0];
  for (const [runner, out] of outputs.slice(1)) {
    if (out !== reference) {
      failed = true;
      console.error(`${runner} differs from ${first}:\n--- ${first}\n${reference}--- ${runner}\n${out}`);
    }
  }
  const problems = check(reference);
  if (problems.length) {
    failed = true;
    console.error(`${first} breaks the rules:\n  ${problems.join('\n  ')}`);
  }
  // The checks can fail: every corruption must be caught, by the rules and
  // by the comparison of runners.
  for (const [what, corrupt] of Object.entries(corruptions)) {
    const bad = corrupt(reference);
    if (bad === reference) {
      failed = true;
      console.error(`corruption "${what}" changed nothing: the output no longer has what it targets`);
    } else if (check(bad).length === 0) {
      failed = true;
      console.error(`corruption "${what}" passed the checks`);
    }
  }
  if (!failed)
    console.log(`${runners.length} runner(s) agree; ${first} follows the rules; ` +
      `${Object.keys(corruptions).length} corruptions caught`);
  return failed ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
