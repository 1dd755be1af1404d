// rate_step.mjs - the pass rule of scenario 7's rate steps, shared by run.sh
// (which stops stepping at the first failed step) and report.mjs (which
// reports the last good one).
//
//   node benchmarks/rate_step.mjs RESULT.json   exit 0: sustained, 1: not, 2: no result
//
// A step is sustained when, over its measured window:
//   - the ack p99 (clap written to its socket -> its ack, in the load
//     generator) is at most 100 ms;
//   - the accepted claps/s reach at least 90% of the offered rate;
//   - at most 1% of the claps sent are still unacknowledged after the drain,
//     and at most 1% of them drew an error;
//   - at most 1% of the acks were only locally durable ("durability":"local":
//     the node gave up waiting for Redis), when the acks say.
import fs from "node:fs";
import { fileURLToPath } from "node:url";

export const ackP99LimitMs = 100;
export const minAchievedFraction = 0.9;
export const maxLossFraction = 0.01;

export function judgeStep(d) {
  const reasons = [];
  const sent = Math.max(1, d.claps_sent ?? 0);
  if (!(d.ack_latency_ms?.samples > 0)) reasons.push("no acks");
  else if (d.ack_latency_ms.p99 > ackP99LimitMs) reasons.push(`ack p99 ${d.ack_latency_ms.p99.toFixed(1)} ms > ${ackP99LimitMs} ms`);
  if (d.accepted_per_s < minAchievedFraction * d.clap_rate)
    reasons.push(`accepted ${Math.round(d.accepted_per_s)}/s < ${minAchievedFraction * 100}% of ${Math.round(d.clap_rate)}/s offered`);
  if ((d.claps_unacked ?? 0) > maxLossFraction * sent) reasons.push(`${d.claps_unacked} of ${d.claps_sent} claps unacked`);
  if ((d.errors ?? 0) > maxLossFraction * sent) reasons.push(`${d.errors} errors`);
  const durability = d.acks_by_durability ?? {};
  const acks = Object.values(durability).reduce((a, b) => a + b, 0);
  const notCluster = acks - (durability.cluster ?? 0) - (durability.none ?? 0);
  if (acks && durability.cluster !== undefined && notCluster > maxLossFraction * acks)
    reasons.push(`${notCluster} of ${acks} acks not cluster-durable`);
  else if (acks && durability.cluster === undefined && (durability.local ?? 0) > 0)
    reasons.push(`no cluster-durable ack (${durability.local} local)`);
  return { ok: reasons.length === 0, reasons };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file || !fs.existsSync(file)) {
    console.log("no result");
    process.exit(2);
  }
  const { ok, reasons } = judgeStep(JSON.parse(fs.readFileSync(file, "utf8")));
  console.log(ok ? "sustained" : `not sustained: ${reasons.join("; ")}`);
  process.exit(ok ? 0 : 1);
}
