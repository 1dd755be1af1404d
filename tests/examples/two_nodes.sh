#!/usr/bin/env bash
# Runs examples/two_nodes against a redis-server of its own on a free
# loopback port, in a temporary directory; the example's exit code is the
# verdict (it checks the cap, an op id sent to both nodes, and a global first
# snapshot), and its output must say so.
set -euo pipefail
example=$1
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" >"$dir/redis.log" 2>&1 &
redis=$!
trap 'kill "$redis" 2>/dev/null; wait "$redis" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.05  # polling the server's readiness, bounded to 5 s
done
cd "$dir"
out=$("$example" "redis://127.0.0.1:$port")
echo "$out"
grep -q "the cap and op ids held across nodes" <<<"$out"
