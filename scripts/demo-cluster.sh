#!/usr/bin/env bash
# Two clapsd nodes sharing Redis behind one load balancer, for a browser.
# Readers open ONE URL, HAProxy's (the deployment example
# deploy/haproxy/haproxy.cfg, rendered by scripts/haproxy-config.sh and run in
# the foreground), which spreads them over the nodes and health-checks their
# /readyz; each node's own URL stays open too, to watch claps cross between
# nodes. Kill a node and its readers reconnect through the balancer to the
# other one, their counts going on.
#
# Redis, in a temp dir (Debian's redis-server/redis-sentinel and haproxy:
# `scripts/deps.sh test`):
#   REDIS=sentinel (default): a master, a replica and three sentinels; the
#                             nodes find the master through the sentinels.
#   REDIS=cluster:            Redis Cluster, 3 masters + 3 replicas; the nodes
#                             get --redis-cluster.
# Ctrl-C stops everything it started.
#
# Usage: scripts/demo-cluster.sh [BUILD_DIR]   (default: build)
# Env:   REDIS (sentinel|cluster), LB_PORT (balancer, default 8080), STATS_PORT
#        (HAProxy's stats page, 8404), PORT_A, PORT_B (clapsd, 8081/8082),
#        REDIS_BASE (26380: Redis takes REDIS_BASE..REDIS_BASE+5, and Redis
#        Cluster also their cluster bus ports, 10000 higher)
set -euo pipefail
cd "$(dirname "$0")/.."

build=${1:-build}
clapsd="$build/server/clapsd"
redis_mode=${REDIS:-sentinel}
lb_port=${LB_PORT:-8080}
stats_port=${STATS_PORT:-8404}
port_a=${PORT_A:-8081}
port_b=${PORT_B:-8082}
base=${REDIS_BASE:-26380}
haproxy=${HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}

case "$redis_mode" in
  sentinel|cluster) ;;
  *) echo "demo-cluster: REDIS=$redis_mode: use REDIS=sentinel or REDIS=cluster" >&2; exit 2 ;;
esac
for tool in redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "demo-cluster: $tool missing (run scripts/deps.sh test)" >&2; exit 1; }
done
[ -x "$haproxy" ] || { echo "demo-cluster: haproxy missing (run scripts/deps.sh test)" >&2; exit 1; }
[ -x "$clapsd" ] || { echo "demo-cluster: $clapsd missing (build first: make build)" >&2; exit 1; }
clapsd_help=$("$clapsd" --help)  # (not piped into grep -q: with pipefail, an early exit fails the pipe)
if [ "$redis_mode" = cluster ] && ! grep -q -- '--redis-cluster' <<<"$clapsd_help"; then
  echo "demo-cluster: $clapsd has no --redis-cluster (REDIS=cluster needs a clapsd with Redis Cluster support)" >&2
  exit 1
fi

dir=$(mktemp -d /tmp/claps-demo-cluster-XXXXXX)
pids=()       # Redis processes
node_pids=()  # clapsd nodes
lb_pid=""

stop() {
  trap - INT TERM EXIT
  # Clean up even when the terminal or a pipe reading our output is gone.
  set +e
  trap '' PIPE
  echo
  echo "demo-cluster: stopping"
  # The balancer first, then the nodes (SIGINT: they commit, close clients
  # with 1001 and skip the grace a balancer would need), then Redis.
  if [ -n "$lb_pid" ]; then kill -TERM "$lb_pid" 2>/dev/null || true; wait "$lb_pid" 2>/dev/null || true; fi
  for pid in "${node_pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
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

redis_conf() {  # redis_conf PORT [MASTER_PORT | cluster]
  local conf="$dir/redis-$1.conf"
  {
    echo "port $1"; echo "bind 127.0.0.1"; echo "dir $dir"; echo "dbfilename dump-$1.rdb"
    echo "save \"\""; echo "appendonly no"; echo "logfile $dir/redis-$1.log"
    if [ "${2:-}" = cluster ]; then
      echo "cluster-enabled yes"; echo "cluster-config-file nodes-$1.conf"; echo "cluster-node-timeout 2000"
    elif [ -n "${2:-}" ]; then
      echo "replicaof 127.0.0.1 $2"
    fi
  } >"$conf"
  echo "$conf"
}

if [ "$redis_mode" = sentinel ]; then
  master_port=$base
  replica_port=$((base + 1))
  sentinel_ports=($((base + 2)) $((base + 3)) $((base + 4)))
  redis-server "$(redis_conf "$master_port")" & pids+=($!)
  wait_for "the Redis master on :$master_port" 10 redis-cli -p "$master_port" ping
  redis-server "$(redis_conf "$replica_port" "$master_port")" & pids+=($!)
  for p in "${sentinel_ports[@]}"; do
    conf="$dir/sentinel-$p.conf"
    cat >"$conf" <<SENTINEL
port $p
bind 127.0.0.1
dir $dir
logfile $dir/sentinel-$p.log
sentinel monitor claps 127.0.0.1 $master_port 2
sentinel down-after-milliseconds claps 2000
sentinel failover-timeout claps 6000
SENTINEL
    redis-server "$conf" --sentinel & pids+=($!)
  done
  for p in "${sentinel_ports[@]}"; do wait_for "the sentinel on :$p" 10 redis-cli -p "$p" ping; done
  sentinels=$(printf '127.0.0.1:%s,' "${sentinel_ports[@]}")
  redis_args=(--sentinel "${sentinels%,}" --sentinel-master claps)
  redis_text="Redis master :$master_port, replica :$replica_port, sentinels :${sentinel_ports[*]}"
  failover_hint="  kill -9 \$(redis-cli -p $master_port info server | sed -n 's/^process_id://p' | tr -d '\\r')"
else
  cluster_ports=($base $((base + 1)) $((base + 2)) $((base + 3)) $((base + 4)) $((base + 5)))
  for p in "${cluster_ports[@]}"; do redis-server "$(redis_conf "$p" cluster)" & pids+=($!); done
  for p in "${cluster_ports[@]}"; do wait_for "the Redis Cluster node on :$p" 10 redis-cli -p "$p" ping; done
  # The first three become masters, each of the others a replica of one.
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${cluster_ports[@]}") \
    --cluster-replicas 1 --cluster-yes >"$dir/cluster-create.out" 2>&1 ||
    { cat "$dir/cluster-create.out" >&2; exit 1; }
  for p in "${cluster_ports[@]}"; do
    wait_for "Redis Cluster state ok on :$p" 20 sh -c "redis-cli -p $p cluster info | grep -q '^cluster_state:ok'"
  done
  seeds=$(printf '127.0.0.1:%s,' "${cluster_ports[@]:0:3}")
  redis_args=(--redis-cluster "${seeds%,}")
  redis_text="Redis Cluster :${cluster_ports[*]} (3 masters, 3 replicas)"
  failover_hint="  redis-cli -p $base cluster nodes | grep master   # then kill -9 one master's pid:
  kill -9 \$(redis-cli -p $base info server | sed -n 's/^process_id://p' | tr -d '\\r')"
fi

start_node() {  # start_node ID PORT
  local out="$dir/clapsd-$1.out"
  # --trusted-proxy: the balancer on loopback passes the reader's address in X-Forwarded-For.
  "$clapsd" --listen "127.0.0.1:$2" --data-dir "$dir/data-$1" "${redis_args[@]}" \
    --node-id "$1" --trusted-proxy 127.0.0.1/32 >"$out" 2> >(sed "s/^/[node $1] /" >&2) &
  node_pids+=($!)
  wait_for "clapsd node $1 on :$2" 10 grep -q "clapsd listening on" "$out"
}
start_node A "$port_a"
start_node B "$port_b"

scripts/haproxy-config.sh --listen "127.0.0.1:$lb_port" --stats "127.0.0.1:$stats_port" \
  --server "A=127.0.0.1:$port_a" --server "B=127.0.0.1:$port_b" --maxconn 1000 >"$dir/haproxy.cfg"
# Its log goes to a file; node state changes (UP/DOWN) and alerts to the terminal.
"$haproxy" -db -f "$dir/haproxy.cfg" > >(tee "$dir/haproxy.log" | grep --line-buffered -E '^Server clapsd/|ALERT' |
  sed -u 's/^/[haproxy] /' >&2) 2>&1 &
lb_pid=$!
both_up() {  # both nodes UP on the stats page's CSV (node is in `scripts/deps.sh test`)
  node -e "fetch('http://127.0.0.1:$stats_port/;csv').then((r) => r.text()).then((t) =>
    process.exit((t.match(/^clapsd,[AB],.*,UP,/gm) ?? []).length === 2 ? 0 : 1), () => process.exit(1))"
}
wait_for "HAProxy on :$lb_port to mark both nodes UP" 15 both_up

drain_hint=""
if grep -q -- '--drain-grace-s' <<<"$clapsd_help"; then
  drain_hint="Or instead drain node A as a deploy would (/readyz 503, HAProxy takes it out
while it still accepts, then its readers are closed in batches and move to B):
  kill ${node_pids[0]}
"
fi

cat <<INFO

claps cluster demo: two clapsd nodes behind HAProxy, sharing Redis
($redis_text), files in $dir

  readers:   http://127.0.0.1:$lb_port/      (the balancer: open several tabs or browsers here)
  node A:    http://127.0.0.1:$port_a/      pid ${node_pids[0]}
  node B:    http://127.0.0.1:$port_b/      pid ${node_pids[1]}
  balancer:  http://127.0.0.1:$stats_port/      (HAProxy stats: which node is UP, sessions per node)

Open an article through the balancer in a few tabs (leastconn spreads them
over A and B), and the same article on node A's and node B's own URL to watch
claps cross between nodes. Kill a node, and its readers reconnect through the
balancer to the other one, with their counts going on:
  kill -9 ${node_pids[0]}      # node A: its readers show "live · node B" within a second
                          # (HAProxy retries their reconnects on B) and A is DOWN within 4 s
${drain_hint}Try a Redis failover:
$failover_hint
Metrics: http://127.0.0.1:$port_a/metrics (claps_cluster_*, claps_redis_*). Ctrl-C stops everything.
INFO
# Runs until Ctrl-C (or until the balancer and both nodes are gone).
wait "$lb_pid" "${node_pids[@]}" || true
