#!/usr/bin/env bash
# benchmarks/run.sh - runs the issue-5 benchmark suite and regenerates
# docs/benchmarks.md and docs/bench-*.png. Builds nothing: `make bench` builds
# first, then calls this.
#
#   benchmarks/run.sh [--quick] [--only LIST] [--no-report] BUILD_DIR
#
#   --quick      small steps and 3 s runs: a smoke test of the whole pipeline;
#                its report goes to the result folder, not to docs/
#   --only LIST  comma list of parts: engine,1,2,3,4,5,6,7,8 (default: all)
#                scenario 1 (issue 12) is, per step (2k, 10k, 19.9k viewers):
#                three interleaved pairs (clapsd, sendfloor) at --tick-ms 25,
#                the Socket.IO peers once, then three pairs at --tick-ms 10;
#                then the hot-article throttle: 19.9k viewers with and without
#                clapsd --viewer-updates-per-s 1 (skipped when clapsd lacks it)
#   --no-report  keep the results, do not touch docs/
#   --nice N     run servers, sendfloor and the load generator at this nice
#                level (e.g. -10 on a machine other jobs share; needs root)
#   --redis-appendonly everysec|no
#                persistence of scenarios 6 and 7's Redis: an append-only file
#                fsync'd every second (default, as a production Redis would
#                run; it cost no measurable CPU here) or none
#
# A run with --only writes its scenarios into docs/bench-results.json next to
# the older scenarios kept there (each with its own commit and date) and
# regenerates docs/benchmarks.md from that merged file.
#
# Every server runs pinned to core 0 and the load generator to core 1
# (taskset). Each step starts a fresh server and is bounded in time.
# Results (JSON per run, logs, the commands) go to BUILD_DIR/bench-results/<utc>/.
# CLAPS_COMMIT names the commit in the report when the sources are not a git
# checkout (for example a `git archive` snapshot).
set -euo pipefail

args="$*"
quick=0
only="engine,1,2,3,4,5,6,7,8"
redis_appendonly=everysec
report=1
nice_level=0
build=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --only) only="$2"; shift ;;
    --no-report) report=0 ;;
    --nice) nice_level="$2"; shift ;;
    --redis-appendonly) redis_appendonly="$2"; shift ;;
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
case ",$only," in
  *,6,*|*,7,*) for tool in redis-server redis-cli curl; do
      command -v $tool >/dev/null || { echo "run.sh: scenarios 6 and 7 need $tool" >&2; exit 1; }
    done ;;
esac
case $redis_appendonly in no|everysec) ;; *) echo "run.sh: --redis-appendonly is no or everysec" >&2; exit 2 ;; esac
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

# Scenario 1: s1_pairs interleaved (clapsd, sendfloor) pairs per step and
# tick; s1_hot_viewers join and leave over s1_hot_ramp seconds in the throttle pair.
if [ $quick = 1 ]; then
  s1_viewers="500 2000"; s1_naive_max=2000; duration=3; drain=3
  s1_pairs=3; s1_ticks="25 10"; s1_hot_viewers=2000; s1_hot_ramp=2
  s2_viewers=1000; s2_clappers=50; s2_rate=800
  s3_clappers=200; s4_viewers=2000; settle=1; floor_s=2
  s6_viewers="500"
  s7_idle=1; s7_rounds=1; s7_rates="1000 4000"; s7_step_s=2
else
  s1_viewers="2000 10000 19900"; s1_naive_max=2000; duration=8; drain=4
  s1_pairs=3; s1_ticks="25 10"; s1_hot_viewers=19900; s1_hot_ramp=8
  s2_viewers=5000; s2_clappers=250; s2_rate=4000
  s3_clappers=1000; s4_viewers=19900; settle=2; floor_s=5
  s6_viewers="2000 10000"
  s7_idle=5; s7_rounds=2; s7_rates="1000 2000 4000 8000 16000 32000 64000"; s7_step_s=4
fi

want() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
log() { printf '[run.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

server_pid=""
server_port=""

# Waits (bounded) for the server's "listening on http://HOST:PORT" line.
wait_listening() {
  local logfile=$1 pid=${2:-$server_pid} deadline=$((SECONDS + 30)) line
  while [ $SECONDS -lt $deadline ]; do
    line=$(grep -m1 -o 'listening on http://[0-9.]*:[0-9]*' "$logfile" 2>/dev/null || true)
    if [ -n "$line" ]; then
      server_port=${line##*:}
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { echo "run.sh: server exited; see $logfile" >&2; return 1; }
    sleep 0.05
  done
  echo "run.sh: server did not report its port within 30 s; see $logfile" >&2
  return 1
}

# start_server NAME TARGET [flags]: TARGET is clapsd, clapsd-memory, clapsd-noping
# (a diagnostic: lws's per-connection ping timers pushed past the run), sio-naive
# or sio-coalesced; any other clapsd-* (clapsd-tick10, clapsd-vu1, ...) is
# clapsd with LMDB, its flags given by the caller.
server_cmd=""
start_server() {
  local name=$1 target=$2
  shift 2
  local logfile="$out/$name.server.log"
  case $target in
    clapsd|clapsd-*)
      local data="$out/data-$name"
      mkdir -p "$data"
      local store=lmdb extra=""
      [ $target = clapsd-memory ] && store=memory
      [ $target = clapsd-noping ] && extra="--ping-interval-s 600 --idle-timeout-s 700"
      server_cmd="$(pin $server_cpu) $clapsd --listen 127.0.0.1:0 --data-dir $data --store $store --max-connections 19950 --log-level warn --drain-grace-s 0 --drain-spread-s 0 $extra $*"
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

# stop_pid PID: SIGTERM, then SIGKILL after 15 s.
stop_pid() {
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null || true
  local deadline=$((SECONDS + 15))
  while kill -0 "$1" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
stop_server() {
  stop_pid "$server_pid"
  server_pid=""
}
# Scenario 6 runs several processes at once (two nodes and Redis); each is
# listed here while it runs, so an interrupted run still stops them by pid.
cluster_pids=()
stop_cluster() {
  local i
  # Newest first: the nodes drain while their Redis is still there.
  for ((i = ${#cluster_pids[@]} - 1; i >= 0; i--)); do stop_pid "${cluster_pids[i]}"; done
  cluster_pids=()
}
trap 'stop_server; stop_cluster' EXIT

# record SCENARIO TARGET STEP FILE SERVER_CMD CLIENT_CMD; $pair (when set)
# numbers the repeats of one step (scenario 1's interleaved pairs).
pair=""
record() {
  printf '{"scenario":"%s","target":"%s","step":%s,"pair":%s,"file":"%s","server_cmd":"%s","client_cmd":"%s"}\n' \
    "$1" "$2" "$3" "${pair:-1}" "$4" "${5//\"/\\\"}" "${6//\"/\\\"}" >> "$manifest"
}

# $out/cpu-stamp.sh PID prints the CPU time of all of PID's threads (ns,
# summed from schedstat as the load generator reads it) and the wall clock;
# run.sh and the phase probes' window hook both run it.
cpu_stamp="$out/cpu-stamp.sh"
cat > "$cpu_stamp" <<'EOF'
#!/bin/sh
echo "$(awk '{ns += $1} END {printf "%.0f", ns}' /proc/"$1"/task/*/schedstat 2>/dev/null) $(date +%s.%N)"
EOF
chmod +x "$cpu_stamp"
# Waits (bounded) until clapsd's /metrics shows no open connections: the load
# generator has exited, and the server has processed every close.
wait_all_closed() {
  local port=$1 deadline=$((SECONDS + 30)) open
  while [ $SECONDS -lt $deadline ]; do
    open=$(curl -s "http://127.0.0.1:$port/metrics" | awk '$1 == "claps_connections" {print $2}')
    [ "$open" = 0 ] && return 0
    sleep 0.1
  done
  log "connections still open 30 s after the load generator left"
}

# run_load SCENARIO TARGET STEP [server flags] -- [loadgen flags]
# With phase_probes=1 (clapsd only) it also saves the server's /metrics and CPU
# time when the load generator's measure window opens and closes (its window
# hook), and after every connection has closed: the join wave (connect and
# settle), the measure window and the leave wave, each on its own.
phase_probes=0
run_load() {
  local scenario=$1 target=$2 step=$3
  shift 3
  local server_flags=() client_flags=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do server_flags+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  client_flags=("$@")
  local name="s$scenario-$target-$step${pair:+-p$pair}"
  local protocol=claps path=/ws
  case $target in sio-*) protocol=socketio; path=/socket.io/ ;; esac
  log "scenario $scenario, $target, step $step${pair:+, pair $pair}"
  if ! start_server "$name" "$target" "${server_flags[@]}"; then
    stop_server
    return 0
  fi
  local probes=0 hook_flag=""
  case $target in clapsd*) probes=$phase_probes ;; esac
  if [ $probes = 1 ]; then
    local hook="$out/$name.hook.sh"
    {
      echo '#!/bin/sh'
      echo '# Run by claps-loadgen as "hook start" and "hook end" when its measure window opens and closes.'
      echo "curl -s http://127.0.0.1:$server_port/metrics > $out/$name.metrics-\$1.txt &"
      echo "$cpu_stamp $server_pid > $out/$name.cpu-\$1.txt"
      echo wait
    } > "$hook"
    chmod +x "$hook"
    hook_flag="--window-hook $hook"
  fi
  local client_cmd="$(pin $loadgen_cpu) $loadgen --url ws://127.0.0.1:$server_port$path --protocol $protocol --server-pid $server_pid --source-ips $source_ips --settle $settle --drain $drain --connect-timeout 45 $hook_flag --json $out/$name.json --label $name ${client_flags[*]}"
  case $target in clapsd*) curl -s "http://127.0.0.1:$server_port/metrics" > "$out/$name.metrics-before.txt" || true ;; esac
  [ $probes = 1 ] && "$cpu_stamp" "$server_pid" > "$out/$name.cpu-before.txt"
  $client_cmd > "$out/$name.loadgen.log" 2>&1 || log "loadgen failed; see $out/$name.loadgen.log"
  [ $probes = 1 ] && wait_all_closed "$server_port"
  [ $probes = 1 ] && "$cpu_stamp" "$server_pid" > "$out/$name.cpu-after.txt"
  case $target in clapsd*) curl -s "http://127.0.0.1:$server_port/metrics" > "$out/$name.metrics-after.txt" || true ;; esac
  stop_server
  sed -n '/^connections/,$p' "$out/$name.loadgen.log" | sed 's/^/    /' >&2
  [ -f "$out/$name.json" ] && record "$scenario" "$target" "$step" "$name.json" "${server_cmd//$out/\$OUT}" "${client_cmd//$out/\$OUT}"
  return 0
}

# run_floor SCENARIO CONNECTIONS [TICK_MS]: target floor (25 ms) or floor-tick<T>.
run_floor() {
  local scenario=$1 connections=$2 tick=${3:-25}
  local target=floor
  [ "$tick" != 25 ] && target=floor-tick$tick
  local name="s$scenario-$target-$connections${pair:+-p$pair}"
  # One round per tick (back to back once a round takes longer), as clapsd writes.
  local cmd="$([ "$nice_level" != 0 ] && echo "nice -n $nice_level ")$sendfloor --connections $connections --duration $floor_s --tick-ms $tick --sender-cpu $server_cpu --receiver-cpu $loadgen_cpu --source-ips $source_ips --json $out/$name.json"
  log "scenario $scenario, send floor, $connections connections, tick $tick ms${pair:+, pair $pair}"
  $cmd > "$out/$name.log" 2>&1 || log "sendfloor failed; see $out/$name.log"
  sed 's/^/    /' "$out/$name.log" >&2
  [ -f "$out/$name.json" ] && record "$scenario" "$target" "$connections" "$name.json" "" "${cmd//$out/\$OUT}"
  return 0
}

# ---- scenario 6: two clapsd nodes on one Redis ----

# A free loopback port for Redis (the kernel picks it, then releases it).
free_port() {
  node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

# start_redis NAME [redis-server flags]: a fresh Redis for one step, pinned
# with the servers; sets redis_pid, redis_port and redis_cmd. Persistence
# follows --redis-appendonly (no RDB snapshots in either case: nothing here
# outlives the step).
redis_pid=""
redis_port=""
redis_cmd=""
start_redis() {
  local name=$1 logfile="$out/$1.redis.log" dir="$out/redis-$1" attempt
  shift
  mkdir -p "$dir"
  for attempt in 1 2 3; do
    redis_port=$(free_port)
    local aof=(--appendonly no)
    [ "$redis_appendonly" = everysec ] && aof=(--appendonly yes --appendfsync everysec)
    local cmd=(redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$dir" --save "" "${aof[@]}" "$@")
    $(pin $server_cpu) "${cmd[@]}" > "$logfile" 2>&1 &
    redis_pid=$!
    cluster_pids+=("$redis_pid")
    redis_cmd="$(pin $server_cpu) $(printf '%q ' "${cmd[@]}")"
    local deadline=$((SECONDS + 10))
    while [ $SECONDS -lt $deadline ] && kill -0 "$redis_pid" 2>/dev/null; do
      [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && return 0
      sleep 0.05
    done
    # The port was taken in between, or Redis was too slow: another port.
    stop_pid "$redis_pid"
  done
  echo "run.sh: redis-server did not start; see $logfile" >&2
  return 1
}

# start_node NAME [flags]: one clapsd with LMDB and fsync, as in scenario 1;
# sets node_pid, node_port and node_cmd.
node_pid=""
node_port=""
node_cmd=""
start_node() {
  local name=$1
  shift
  local logfile="$out/$name.server.log" data="$out/data-$name"
  mkdir -p "$data"
  node_cmd="$(pin $server_cpu) $clapsd --listen 127.0.0.1:0 --data-dir $data --store lmdb --max-connections 19950 --log-level warn --drain-grace-s 0 --drain-spread-s 0 $*"
  $node_cmd > "$logfile" 2>&1 &
  node_pid=$!
  cluster_pids+=("$node_pid")
  wait_listening "$logfile" "$node_pid" || return 1
  node_port=$server_port
}

# run_cluster TARGET STEP [loadgen flags]. TARGET is the layout:
#   single  one clusterless clapsd takes viewers and clappers (the baseline);
#   cross   viewers on node A, clappers on node B: every update A delivers
#           came through Redis;
#   split   viewers and clappers alternate between A and B;
#   bus     as cross, but few viewers watching many articles, so the nodes'
#           work is mostly bus messages rather than frames;
#   bus-single  the bus load on one clusterless clapsd (its baseline);
#   rate    (scenario 7) the split layout at one offered clap rate;
#   rate-again  the same step once more, after it was not sustained.
# The load generator samples A, B and Redis over its measure window and runs a
# hook at both ends that saves the nodes' /metrics and Redis's INFO.
# Scenario 7 calls it with cluster_scenario=7 (the result names and the
# manifest) and cluster_node_flags (extra clapsd flags for every node).
cluster_scenario=6
cluster_node_flags=""
run_cluster() {
  local target=$1 step=$2
  shift 2
  local scenario=$cluster_scenario layout=$target
  case $target in bus-single) layout=single ;; bus) layout=cross ;; rate|rate-again) layout=split ;; esac
  local name="s$scenario-$target-$step"
  log "scenario $scenario, $target, step $step"
  local port_a="" port_b="" pid_a="" pid_b="" cmds=""
  if [ "$layout" = single ]; then
    redis_port=""
    start_node "$name-A" $cluster_node_flags || { stop_cluster; return 0; }
    port_a=$node_port; pid_a=$node_pid; cmds=$node_cmd
  else
    start_redis "$name" || { stop_cluster; return 0; }
    local bus="--redis redis://127.0.0.1:$redis_port"
    start_node "$name-A" $bus --node-id A $cluster_node_flags || { stop_cluster; return 0; }
    port_a=$node_port; pid_a=$node_pid; cmds="$redis_cmd & $node_cmd"
    start_node "$name-B" $bus --node-id B $cluster_node_flags || { stop_cluster; return 0; }
    port_b=$node_port; pid_b=$node_pid; cmds="$cmds & $node_cmd"
  fi
  local hook="$out/$name.hook.sh"
  {
    echo '#!/bin/sh'
    echo '# Run by claps-loadgen as "hook start" and "hook end" when its measure window opens and closes'
    echo '# (and "hook idle-start", "hook idle-end" around its idle phase, with --idle-window).'
    echo "curl -s http://127.0.0.1:$port_a/metrics > $out/$name.A.metrics-\$1.txt &"
    [ -n "$port_b" ] && echo "curl -s http://127.0.0.1:$port_b/metrics > $out/$name.B.metrics-\$1.txt &"
    [ -n "$redis_port" ] && echo "redis-cli -p $redis_port info all > $out/$name.redis-\$1.txt &"
    echo wait
  } > "$hook"
  chmod +x "$hook"
  local url_a="ws://127.0.0.1:$port_a/ws" url_b="ws://127.0.0.1:$port_b/ws" topology probes
  case $layout in
    single) topology="--url $url_a"; probes="--server-pid A=$pid_a" ;;
    cross) topology="--url $url_a --clap-url $url_b" ;;
    split) topology="--url $url_a --url $url_b" ;;
  esac
  [ -n "$redis_port" ] && probes="--server-pid A=$pid_a --server-pid B=$pid_b --server-pid redis=$redis_pid"
  local client_cmd="$(pin $loadgen_cpu) $loadgen $topology --protocol claps $probes --window-hook $hook --source-ips $source_ips --settle $settle --drain $drain --connect-timeout 45 --json $out/$name.json --label $name $*"
  $client_cmd > "$out/$name.loadgen.log" 2>&1 || log "loadgen failed; see $out/$name.loadgen.log"
  stop_cluster
  sed -n '/^connections/,$p' "$out/$name.loadgen.log" | sed 's/^/    /' >&2
  [ -f "$out/$name.json" ] && record "$scenario" "$target" "$step" "$name.json" "${cmds//$out/\$OUT}" "${client_cmd//$out/\$OUT}"
  return 0
}

# run_spread TARGET STEP [loadgen flags] (scenario 7): two clapsd nodes taking
# viewers and clappers alternately (the split layout) on
#   spread-one      one Redis master (--redis), or
#   spread-cluster  a Redis Cluster of three masters and no replicas
#                   (--redis-cluster; redis-cli --cluster create).
# Every master runs pinned with the nodes. The window hook saves, per master,
# /proc/PID/stat (utime and stime), INFO all and DBSIZE when the measure window
# opens and closes; benchmarks/redis_spread.mjs turns them and the load
# generator's count of accepted claps into $name.spread.json: CPU per clap,
# keys and commands on every master, and their share of the whole.
run_spread() {
  local target=$1 step=$2
  shift 2
  local name="s7-$target-$step" masters=() pids=() cmds="" bus i
  log "scenario 7, $target, step $step"
  if [ "$target" = spread-one ]; then
    start_redis "$name" || { stop_cluster; return 0; }
    masters=("$redis_port"); pids=("$redis_pid"); cmds=$redis_cmd
    bus="--redis redis://127.0.0.1:$redis_port"
  else
    for i in 1 2 3; do
      # The cluster bus gets its own free port: the default, port + 10000, may pass 65535.
      start_redis "$name-m$i" --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
        --cluster-port "$(free_port)" || { stop_cluster; return 0; }
      masters+=("$redis_port"); pids+=("$redis_pid"); cmds="$cmds${cmds:+ & }$redis_cmd"
    done
    local seeds
    seeds=$(printf '127.0.0.1:%s ' "${masters[@]}")
    if ! redis-cli --cluster create $seeds --cluster-replicas 0 --cluster-yes > "$out/$name.create.log" 2>&1; then
      log "redis-cli --cluster create failed; see $out/$name.create.log"
      stop_cluster
      return 0
    fi
    cmds="$cmds & redis-cli --cluster create $seeds--cluster-replicas 0 --cluster-yes"
    local deadline=$((SECONDS + 30)) ok=0
    while [ $ok = 0 ] && [ $SECONDS -lt $deadline ]; do
      ok=1
      for i in "${masters[@]}"; do
        redis-cli -p "$i" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || ok=0
      done
      [ $ok = 1 ] || sleep 0.1
    done
    [ $ok = 1 ] || { log "the Redis Cluster did not reach cluster_state:ok within 30 s"; stop_cluster; return 0; }
    bus="--redis-cluster $(echo "${seeds% }" | tr ' ' ',')"
  fi
  start_node "$name-A" $bus --node-id A || { stop_cluster; return 0; }
  local port_a=$node_port pid_a=$node_pid
  cmds="$cmds & $node_cmd"
  start_node "$name-B" $bus --node-id B || { stop_cluster; return 0; }
  local port_b=$node_port pid_b=$node_pid
  cmds="$cmds & $node_cmd"
  local hook="$out/$name.hook.sh" probes="--server-pid A=$pid_a --server-pid B=$pid_b"
  : > "$out/$name.masters.txt"
  {
    echo '#!/bin/sh'
    echo '# Run by claps-loadgen as "hook start" and "hook end" when its measure window opens and closes.'
    echo "curl -s http://127.0.0.1:$port_a/metrics > $out/$name.A.metrics-\$1.txt &"
    echo "curl -s http://127.0.0.1:$port_b/metrics > $out/$name.B.metrics-\$1.txt &"
    for i in "${!masters[@]}"; do
      echo "cat /proc/${pids[i]}/stat > $out/$name.m$((i + 1)).stat-\$1.txt"
      echo "redis-cli -p ${masters[i]} info all > $out/$name.m$((i + 1)).info-\$1.txt"
      echo "redis-cli -p ${masters[i]} dbsize > $out/$name.m$((i + 1)).dbsize-\$1.txt"
      echo "m$((i + 1)) ${masters[i]} ${pids[i]}" >> "$out/$name.masters.txt"
      probes="$probes --server-pid m$((i + 1))=${pids[i]}"
    done
    echo wait
  } > "$hook"
  chmod +x "$hook"
  local client_cmd="$(pin $loadgen_cpu) $loadgen --url ws://127.0.0.1:$port_a/ws --url ws://127.0.0.1:$port_b/ws --protocol claps $probes --window-hook $hook --source-ips $source_ips --settle $settle --drain $drain --connect-timeout 45 --no-syscalls --json $out/$name.json --label $name $*"
  $client_cmd > "$out/$name.loadgen.log" 2>&1 || log "loadgen failed; see $out/$name.loadgen.log"
  stop_cluster
  sed -n '/^connections/,$p' "$out/$name.loadgen.log" | sed 's/^/    /' >&2
  if [ -f "$out/$name.json" ]; then
    node "$root/benchmarks/redis_spread.mjs" "$out" "$name" "$(getconf CLK_TCK)" 2>&1 | sed 's/^/    /' >&2 || log "redis_spread.mjs failed"
    record 7 "$target" "$step" "$name.json" "${cmds//$out/\$OUT}" "${client_cmd//$out/\$OUT}"
  fi
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
  echo "only=$only"
  # The command line, for the report; make exports MAKELEVEL to what it runs.
  echo "args=$args"
  echo "via_make=$([ -n "${MAKELEVEL:-}" ] && echo 1 || echo 0)"
  echo "redis=$(redis-server --version 2>/dev/null | sed -n 's/.*v=\([0-9.]*\).*/\1/p')"
  echo "redis_appendonly=$redis_appendonly"
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
  # Issue 12's setup: one hot article, 100 claps/s from 40 publishers (2.5/s
  # each), at --tick-ms 25 (40 frames/s per viewer demanded) and again at 10.
  # Each step runs s1_pairs (clapsd, sendfloor) pairs back to back, clapsd
  # first: other jobs on the shared cores drift over minutes, so the report
  # takes the median over pairs measured seconds apart. The Socket.IO peers,
  # a comparison only, run once per step (at the 25 ms tick).
  s1_started=$SECONDS
  for tick in $s1_ticks; do
    target=clapsd
    [ "$tick" != 25 ] && target=clapsd-tick$tick
    for v in $s1_viewers; do
      common="--viewers $v --articles 1 --distribution hot --clappers 40 --clap-rate 100 --duration $duration --tick-ms $tick"
      for pair in $(seq 1 $s1_pairs); do
        run_load 1 $target "$v" --tick-ms "$tick" -- $common
        run_floor 1 "$v" "$tick"
      done
      pair=""
      if [ "$tick" = 25 ]; then
        run_load 1 sio-coalesced "$v" -- $common
        [ "$v" -le $s1_naive_max ] && run_load 1 sio-naive "$v" -- $common
      fi
    done
    log "scenario 1 at --tick-ms $tick: $((SECONDS - s1_started)) s so far"
  done
  # Hot-article throttle: the same load at s1_hot_viewers, clapsd with
  # --viewer-updates-per-s 0 (off) then 1, side by side. Viewers join over
  # s1_hot_ramp seconds and, after the drain, leave over as long (the same
  # waves in both runs), moving the viewer count every tick; phase probes
  # split the server's CPU and frames into join, measure window and leave.
  if "$clapsd" --help 2>&1 | grep -q -- '--viewer-updates-per-s'; then
    common="--viewers $s1_hot_viewers --articles 1 --distribution hot --clappers 40 --clap-rate 100 --duration $duration --tick-ms 25 --ramp $s1_hot_ramp --leave $s1_hot_ramp"
    phase_probes=1
    for n in 0 1; do
      run_load 1 clapsd-vu$n "$s1_hot_viewers" --viewer-updates-per-s $n -- $common
    done
    phase_probes=0
  else
    log "scenario 1, hot-article throttle skipped: clapsd --help does not list --viewer-updates-per-s"
    echo '{"skipped": "flag missing: clapsd --help does not list --viewer-updates-per-s"}' > "$out/s1-throttle-skipped-$s1_hot_viewers.json"
    record 1 throttle-skipped "$s1_hot_viewers" "s1-throttle-skipped-$s1_hot_viewers.json" "" "${clapsd//$out/\$OUT} --help"
  fi
  log "scenario 1 took $((SECONDS - s1_started)) s"
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

if want 6; then
  # Two nodes: the hot article of scenario 1 (100 claps/s from 10 clappers),
  # with the one node of "single" side by side in the same run.
  for v in $s6_viewers; do
    common="--viewers $v --articles 1 --distribution hot --clappers 10 --clap-rate 100 --duration $duration"
    run_cluster single "$v" $common
    run_cluster cross "$v" $common
    run_cluster split "$v" $common
  done
  # Bus messages rather than frames: 4 viewers on A watch 250 of 1k articles
  # each; 60 clappers on B clap 1000/s spread over all 1k.
  bus_load="--viewers 4 --articles 1000 --distribution uniform --subscriptions-per-conn 250 --clappers 60 --clap-rate 1000 --duration $duration"
  run_cluster bus-single 4 $bus_load
  run_cluster bus 4 $bus_load
fi

if want 7; then
  # The cluster write path (issue 10): 1k claps/s over 100 articles, a new op id
  # on every clap (claps-loadgen always sends one), users rotating before the cap.
  # 10 viewers watch all 100 articles, so every clap has 10 (clap, viewer) pairs.
  cluster_scenario=7
  s7_started=$SECONDS
  s7_load="--viewers 10 --articles 100 --distribution uniform --subscriptions-per-conn 100 --clappers 60 --clap-rate 1000 --duration $duration"
  # single: that load on one clusterless node (the CPU-per-clap baseline);
  # cross: viewers on A, clappers on B, after an idle phase (everyone connected,
  # nobody clapping) that measures the background Redis traffic. Both run
  # s7_rounds times, alternately (the step is the round): other jobs on the
  # cores only add CPU time, so the report takes the lowest CPU per clap.
  cluster_node_flags=""
  for round in $(seq 1 $s7_rounds); do
    run_cluster single "$round" $s7_load
    run_cluster cross "$round" $s7_load --idle-window $s7_idle
  done
  # Rate steps: viewers and clappers alternate between A and B (one viewer on
  # each, watching all 100 articles), 100 clappers with the per-connection rate
  # limit raised (as in scenario 3), so that the write path rather than the
  # number of connections is what runs out. Stop at the first step not sustained
  # (benchmarks/rate_step.mjs: ack p99 > 100 ms, or < 90% of the offered rate
  # accepted, or claps lost). A step not sustained runs once more (rate-again):
  # on cores shared with other jobs one stall can push a short step's p99 past
  # the limit, so a step counts as not sustained only when both tries fail.
  cluster_node_flags="--rate-limit 1000000 --rate-burst 1000000"
  settle_saved=$settle drain_saved=$drain
  settle=1 drain=2
  for rate in $s7_rates; do
    per_conn=$(( rate * 3 / 2 / 100 )); [ $per_conn -lt 19 ] && per_conn=19
    ok=0
    for try in rate rate-again; do
      run_cluster $try "$rate" --viewers 2 --articles 100 --distribution uniform --subscriptions-per-conn 100 \
        --clappers 100 --clap-rate "$rate" --per-conn-rate "$per_conn" --duration "$s7_step_s" --no-syscalls
      verdict=$(node "$root/benchmarks/rate_step.mjs" "$out/s7-$try-$rate.json") && ok=1 || ok=0
      log "scenario 7, $rate claps/s ($try): $verdict"
      [ $ok = 1 ] && break
    done
    [ $ok = 1 ] || break
  done
  settle=$settle_saved drain=$drain_saved
  cluster_scenario=6
  cluster_node_flags=""
  # One Redis master against a Redis Cluster of three (issue 13): the same
  # load, 1k claps/s over 1k articles with an op id on every clap, on two nodes
  # (viewers and clappers alternating between them). On 2 cores the masters
  # share core 0 with the nodes, so what scales is shown by each master's CPU
  # per clap and its share of the keys and commands, not by throughput.
  if "$clapsd" --help 2>&1 | grep -q -- '--redis-cluster'; then
    s7_spread_load="--viewers 10 --articles 1000 --distribution uniform --subscriptions-per-conn 100 --clappers 60 --clap-rate 1000 --duration $duration"
    run_spread spread-one 1 $s7_spread_load
    run_spread spread-cluster 3 $s7_spread_load
  else
    log "scenario 7, one master against three skipped: clapsd --help does not list --redis-cluster"
  fi
  log "scenario 7 took $((SECONDS - s7_started)) s"
fi

if want 8; then
  # Churn (issue 12): distinct users each connect, subscribe to 2 of 1k articles
  # and leave, at most 1,000 connected at once (benchmarks/churn.mjs). clapsd's
  # RSS is sampled with nobody connected: after the first users (the warmed-up
  # baseline), at the end, and after a settle. Step 0: nobody claps (the
  # target); step 10: every 10th user claps once with an op id before leaving,
  # whose records the engine keeps for the op-id window (15 min) by design.
  if [ $quick = 1 ]; then s8_users=20000; s8_baseline=5000; else s8_users=200000; s8_baseline=20000; fi
  for clap_every in 0 10; do
    name="s8-clapsd-$clap_every"
    log "scenario 8, churn of $s8_users users, every ${clap_every}th clapping (0: none)"
    if start_server "$name" clapsd; then
      client_cmd="$(pin $loadgen_cpu) node $root/benchmarks/churn.mjs --url ws://127.0.0.1:$server_port/ws --server-pid $server_pid --metrics http://127.0.0.1:$server_port/metrics --users $s8_users --baseline-users $s8_baseline --concurrency 1000 --subscriptions 2 --articles 1000 --clap-every $clap_every --source-ips $source_ips --settle-s 3 --max-s 900 --json $out/$name.json --label $name"
      $client_cmd > "$out/$name.churn.log" 2>&1 || log "churn failed; see $out/$name.churn.log"
      sed 's/^/    /' "$out/$name.churn.log" >&2
      [ -f "$out/$name.json" ] && record 8 clapsd "$clap_every" "$name.json" "${server_cmd//$out/\$OUT}" "${client_cmd//$out/\$OUT}"
    fi
    stop_server
  done
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
