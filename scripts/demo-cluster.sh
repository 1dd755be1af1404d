#!/usr/bin/env bash
# Two clapsd nodes sharing Redis, for a browser: open both URLs side by side,
# clap on one, watch the other. Starts redis-server (master + 1 replica) and
# three sentinels (Debian's redis-server/redis-sentinel: `scripts/deps.sh test`)
# in a temp dir, and two clapsd nodes on 127.0.0.1:8081 and :8082 that find the
# master through the sentinels. Ctrl-C stops everything it started.
#
# Usage: scripts/demo-cluster.sh [BUILD_DIR]   (default: build)
# Env:   PORT_A, PORT_B (clapsd ports, default 8081/8082), REDIS_BASE (default 26380:
#        master, replica and sentinels take REDIS_BASE..REDIS_BASE+4)
set -euo pipefail
cd "$(dirname "$0")/.."

build=${1:-build}
clapsd="$build/server/clapsd"
port_a=${PORT_A:-8081}
port_b=${PORT_B:-8082}
base=${REDIS_BASE:-26380}
master_port=$base
replica_port=$((base + 1))
sentinel_ports=($((base + 2)) $((base + 3)) $((base + 4)))

for tool in redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "demo-cluster: $tool missing (run scripts/deps.sh test)" >&2; exit 1; }
done
[ -x "$clapsd" ] || { echo "demo-cluster: $clapsd missing (build first: make build)" >&2; exit 1; }

dir=$(mktemp -d /tmp/claps-demo-cluster-XXXXXX)
pids=()
node_pids=()

stop() {
  trap - INT TERM EXIT
  echo
  echo "demo-cluster: stopping"
  # Nodes first (SIGTERM: they flush and close clients with 1001; no balancer
  # here, so no drain grace and no spread), then Redis.
  for pid in "${node_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${node_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap stop INT TERM EXIT

# wait_for WHAT SECONDS COMMAND...: polls COMMAND until it succeeds or time runs out.
wait_for() {
  local what=$1 seconds=$2
  shift 2
  local end=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $end ]; then echo "demo-cluster: timed out waiting for $what" >&2; exit 1; fi
    sleep 0.1
  done
}

redis_conf() {  # redis_conf PORT [MASTER_PORT]
  local conf="$dir/redis-$1.conf"
  {
    echo "port $1"; echo "bind 127.0.0.1"; echo "dir $dir"; echo "dbfilename dump-$1.rdb"
    echo "save \"\""; echo "appendonly no"; echo "logfile $dir/redis-$1.log"
    if [ -n "${2:-}" ]; then echo "replicaof 127.0.0.1 $2"; fi
  } >"$conf"
  echo "$conf"
}

redis-server "$(redis_conf "$master_port")" & pids+=($!)
wait_for "the Redis master on :$master_port" 10 redis-cli -p "$master_port" ping
redis-server "$(redis_conf "$replica_port" "$master_port")" & pids+=($!)
for p in "${sentinel_ports[@]}"; do
  conf="$dir/sentinel-$p.conf"
  cat >"$conf" <<EOF
port $p
bind 127.0.0.1
dir $dir
logfile $dir/sentinel-$p.log
sentinel monitor claps 127.0.0.1 $master_port 2
sentinel down-after-milliseconds claps 2000
sentinel failover-timeout claps 6000
EOF
  redis-server "$conf" --sentinel & pids+=($!)
done
for p in "${sentinel_ports[@]}"; do wait_for "the sentinel on :$p" 10 redis-cli -p "$p" ping; done
sentinels=$(printf '127.0.0.1:%s,' "${sentinel_ports[@]}")
sentinels=${sentinels%,}

start_node() {  # start_node ID PORT
  local out="$dir/clapsd-$1.out"
  "$clapsd" --listen "127.0.0.1:$2" --data-dir "$dir/data-$1" --sentinel "$sentinels" \
    --sentinel-master claps --node-id "$1" --drain-grace-s 0 --drain-spread-s 0 >"$out" 2> >(sed "s/^/[node $1] /" >&2) &
  node_pids+=($!)
  wait_for "clapsd node $1 on :$2" 10 grep -q "clapsd listening on" "$out"
}
start_node A "$port_a"
start_node B "$port_b"

cat <<EOF

claps cluster demo: two clapsd nodes sharing Redis (master :$master_port, replica :$replica_port,
sentinels :${sentinel_ports[*]}), files in $dir

  node A: http://127.0.0.1:$port_a/
  node B: http://127.0.0.1:$port_b/

Open the same article on both, clap on one and watch the other. Try a failover:
  kill -9 \$(redis-cli -p $master_port info server | sed -n 's/^process_id://p' | tr -d '\\r')
Metrics: http://127.0.0.1:$port_a/metrics (claps_cluster_*, claps_redis_*). Ctrl-C stops everything.
EOF
wait "${node_pids[@]}"
