#!/usr/bin/env bash
# benchmarks/run.sh - runs the issue-5 benchmark suite and regenerates
# docs/benchmarks.md and docs/bench-*.png. Builds nothing: `make bench` builds
# first, then calls this.
#
#   benchmarks/run.sh [--quick] [--only LIST] [--no-report] BUILD_DIR
#
#   --quick      small steps and 3 s runs: a smoke test of the whole pipeline;
#                its report goes to the result folder, not to docs/
#   --only LIST  comma list of parts: engine,1,2,3,4,5 (default: all)
#   --no-report  keep the results, do not touch docs/
#   --nice N     run servers, sendfloor and the load generator at this nice
#                level (e.g. -10 on a machine other jobs share; needs root)
#
# Every server runs pinned to core 0 and the load generator to core 1
# (taskset). Each step starts a fresh server and is bounded in time.
# Results (JSON per run, logs, the commands) go to BUILD_DIR/bench-results/<utc>/.
# CLAPS_COMMIT names the commit in the report when the sources are not a git
# checkout (for example a `git archive` snapshot).
set -euo pipefail

quick=0
only="engine,1,2,3,4,5"
report=1
nice_level=0
build=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --only) only="$2"; shift ;;
    --no-report) report=0 ;;
    --nice) nice_level="$2"; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/p}' "$0"; exit 0 ;;
    *) build="$1" ;;
  esac
  shift
done
if [ -z "$build" ]; then
  echo "usage: benchmarks/run.sh [--quick] [--only LIST] [--no-report] BUILD_DIR" >&2
  exit 2
fi

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$build" && pwd)
clapsd="$build/server/clapsd"
loadgen="$build/benchmarks/claps-loadgen"
sendfloor="$build/benchmarks/sendfloor"
engine_bench="$build/benchmarks/engine_bench"
peer="$root/benchmarks/peers/socketio/server.mjs"
for bin in "$clapsd" "$loadgen" "$sendfloor" "$engine_bench"; do
  [ -x "$bin" ] || { echo "run.sh: $bin is missing; build it first (make bench does)" >&2; exit 1; }
done
command -v node >/dev/null || { echo "run.sh: node is needed for the Socket.IO peer" >&2; exit 1; }
[ -d "$root/node_modules/socket.io" ] || { echo "run.sh: run npm install in $root first" >&2; exit 1; }

server_cpu=0
loadgen_cpu=1
# Pinned, and optionally favoured over other jobs on the same cores.
pin() { if [ "$nice_level" != 0 ]; then echo "nice -n $nice_level taskset -c $1"; else echo "taskset -c $1"; fi; }
source_ips=127.0.0.2-127.0.0.20
out="$build/bench-results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
manifest="$out/runs.jsonl"
: > "$manifest"

if [ $quick = 1 ]; then
  s1_viewers="500 2000"; s1_naive_max=2000; duration=3; drain=3
  s2_viewers=1000; s2_clappers=50; s2_rate=800
  s3_clappers=200; s4_viewers=2000; settle=1; floor_s=2
else
  s1_viewers="2000 5000 10000 19900"; s1_naive_max=5000; duration=8; drain=4
  s2_viewers=5000; s2_clappers=250; s2_rate=4000
  s3_clappers=1000; s4_viewers=19900; settle=2; floor_s=5
fi

want() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
log() { printf '[run.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

server_pid=""
server_port=""

# Waits (bounded) for the server's "listening on http://HOST:PORT" line.
wait_listening() {
  local logfile=$1 deadline=$((SECONDS + 30)) line
  while [ $SECONDS -lt $deadline ]; do
    line=$(grep -m1 -o 'listening on http://[0-9.]*:[0-9]*' "$logfile" 2>/dev/null || true)
    if [ -n "$line" ]; then
      server_port=${line##*:}
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || { echo "run.sh: server exited; see $logfile" >&2; return 1; }
    sleep 0.05
  done
  echo "run.sh: server did not report its port within 30 s; see $logfile" >&2
  return 1
}

# start_server NAME TARGET [flags]: TARGET is clapsd, clapsd-memory, clapsd-noping
# (a diagnostic: lws's per-connection ping timers pushed past the run), sio-naive
# or sio-coalesced.
server_cmd=""
start_server() {
  local name=$1 target=$2
  shift 2
  local logfile="$out/$name.server.log"
  case $target in
    clapsd|clapsd-memory|clapsd-noping)
      local data="$out/data-$name"
      mkdir -p "$data"
      local store=lmdb extra=""
      [ $target = clapsd-memory ] && store=memory
      [ $target = clapsd-noping ] && extra="--ping-interval-s 600 --idle-timeout-s 700"
      server_cmd="$(pin $server_cpu) $clapsd --listen 127.0.0.1:0 --data-dir $data --store $store --max-connections 19950 --log-level warn $extra $*"
      ;;
    sio-naive|sio-coalesced)
      server_cmd="$(pin $server_cpu) node $peer --mode ${target#sio-} --port 0"
      ;;
  esac
  # nice and taskset exec the server, so $! is the server's own pid.
  $server_cmd > "$logfile" 2>&1 &
  server_pid=$!
  wait_listening "$logfile"
}

stop_server() {
  [ -n "$server_pid" ] || return 0
  kill -TERM "$server_pid" 2>/dev/null || true
  local deadline=$((SECONDS + 15))
  while kill -0 "$server_pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  kill -KILL "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
trap stop_server EXIT

# record SCENARIO TARGET STEP FILE SERVER_CMD CLIENT_CMD
record() {
  printf '{"scenario":"%s","target":"%s","step":%s,"file":"%s","server_cmd":"%s","client_cmd":"%s"}\n' \
    "$1" "$2" "$3" "$4" "$5" "$6" >> "$manifest"
}

# run_load SCENARIO TARGET STEP [server flags] -- [loadgen flags]
run_load() {
  local scenario=$1 target=$2 step=$3
  shift 3
  local server_flags=() client_flags=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do server_flags+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  client_flags=("$@")
  local name="s$scenario-$target-$step"
  local protocol=claps path=/ws
  case $target in sio-*) protocol=socketio; path=/socket.io/ ;; esac
  log "scenario $scenario, $target, step $step"
  if ! start_server "$name" "$target" "${server_flags[@]}"; then
    stop_server
    return 0
  fi
  local client_cmd="$(pin $loadgen_cpu) $loadgen --url ws://127.0.0.1:$server_port$path --protocol $protocol --server-pid $server_pid --source-ips $source_ips --settle $settle --drain $drain --connect-timeout 45 --json $out/$name.json --label $name ${client_flags[*]}"
  case $target in clapsd*) curl -s "http://127.0.0.1:$server_port/metrics" > "$out/$name.metrics-before.txt" || true ;; esac
  $client_cmd > "$out/$name.loadgen.log" 2>&1 || log "loadgen failed; see $out/$name.loadgen.log"
  case $target in clapsd*) curl -s "http://127.0.0.1:$server_port/metrics" > "$out/$name.metrics-after.txt" || true ;; esac
  stop_server
  sed -n '/^connections/,$p' "$out/$name.loadgen.log" | sed 's/^/    /' >&2
  [ -f "$out/$name.json" ] && record "$scenario" "$target" "$step" "$name.json" "${server_cmd//$out/\$OUT}" "${client_cmd//$out/\$OUT}"
  return 0
}

run_floor() {
  local scenario=$1 connections=$2
  local name="s$scenario-floor-$connections"
  # One round per 25 ms tick (back to back once a round takes longer), as clapsd writes.
  local cmd="$([ "$nice_level" != 0 ] && echo "nice -n $nice_level ")$sendfloor --connections $connections --duration $floor_s --tick-ms 25 --sender-cpu $server_cpu --receiver-cpu $loadgen_cpu --source-ips $source_ips --json $out/$name.json"
  log "scenario $scenario, send floor, $connections connections"
  $cmd > "$out/$name.log" 2>&1 || log "sendfloor failed; see $out/$name.log"
  sed 's/^/    /' "$out/$name.log" >&2
  [ -f "$out/$name.json" ] && record "$scenario" floor "$connections" "$name.json" "" "${cmd//$out/\$OUT}"
  return 0
}

# Machine facts for the report.
{
  echo "date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
  echo "cores=$(nproc)"
  echo "memory=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel=$(uname -r)"
  echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "lws=$(pkg-config --modversion libwebsockets 2>/dev/null || echo unknown)"
  echo "node=$(node --version)"
  echo "socketio=$(node -p 'require("'"$root"'/node_modules/socket.io/package.json").version')"
  echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "quick=$quick"
  echo "nice=$nice_level"
  echo "commit=${CLAPS_COMMIT:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)}"
  echo "build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null)"
} > "$out/machine.txt"

started=$SECONDS

if want engine; then
  log "engine_bench (pinned to core $server_cpu)"
  cmd="$(pin $server_cpu) $engine_bench --data-dir $out --json $out/engine.json"
  [ $quick = 1 ] && cmd="$cmd --quick"
  $cmd > "$out/engine.log" 2>&1 || log "engine_bench failed; see $out/engine.log"
  sed 's/^/    /' "$out/engine.log" >&2
  [ -f "$out/engine.json" ] && record engine engine 0 engine.json "" "${cmd//$out/\$OUT}"
fi

if want 1; then
  # Hot article: 100 claps/s from 10 clappers (10/s each, users rotate before the cap).
  for v in $s1_viewers; do
    common="--viewers $v --articles 1 --distribution hot --clappers 10 --clap-rate 100 --duration $duration"
    run_load 1 clapsd "$v" -- $common
    run_load 1 sio-coalesced "$v" -- $common
    [ "$v" -le $s1_naive_max ] && run_load 1 sio-naive "$v" -- $common
    run_floor 1 "$v"
  done
fi

if want 2; then
  # Timeline: every viewer watches 50 of 1k articles; claps spread uniformly.
  common="--viewers $s2_viewers --articles 1000 --distribution uniform --subscriptions-per-conn 50 --clappers $s2_clappers --clap-rate $s2_rate --duration $duration"
  run_load 2 clapsd "$s2_viewers" -- $common
  run_load 2 sio-coalesced "$s2_viewers" -- $common
  run_floor 2 "$s2_viewers"
fi

if want 3 || want 5; then
  # Ingest: clappers keep 32 claps in flight each, over 1k articles; the rate
  # limit is raised (scenario 3 is the one place that does).
  common="--viewers 0 --articles 1000 --distribution uniform --clappers $s3_clappers --clap-rate 0 --inflight 32 --duration $duration"
  raised="--rate-limit 1000000 --rate-burst 1000000"
  run_load 3 clapsd "$s3_clappers" $raised -- $common
  if want 3; then
    run_load 3 sio-coalesced "$s3_clappers" -- $common
    run_load 3 sio-naive "$s3_clappers" -- $common
  fi
  want 5 && run_load 5 clapsd-memory "$s3_clappers" $raised -- $common
fi

if want 4; then
  # Idle: subscribed viewers spread over 1k articles, nobody claps.
  common="--viewers $s4_viewers --articles 1000 --distribution uniform --clappers 0 --duration 3"
  run_load 4 clapsd "$s4_viewers" -- $common
  run_load 4 sio-coalesced "$s4_viewers" -- $common
fi

log "all runs took $((SECONDS - started)) s; results in $out"
echo "elapsed_s=$((SECONDS - started))" >> "$out/machine.txt"
echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/machine.txt"

if [ $report = 1 ]; then
  # A quick run is a smoke test: its report stays with its results, so it
  # never replaces the full report in docs/.
  docs="$root/docs"
  [ $quick = 1 ] && docs="$out/report"
  node "$root/benchmarks/report.mjs" "$out" "$docs"
fi
