#!/usr/bin/env bash
# Runs examples/two_nodes against a redis-server of its own on a free
# loopback port, in a temporary directory; the example's exit code is the
# verdict (it checks the cap, an op id sent to both nodes, and a global first
# snapshot), and its output must say so.
set -euo pipefail
example=$1
dir=$(mktemp -d)
# A free loopback port (Node.js is already required by the suite).
port=$(node -e "const s = require('net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); })")
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" >"$dir/redis.log" 2>&1 &
redis=$!
trap 'kill "$redis" 2>/dev/null; wait "$redis" 2>/dev/null; rm -rf "$dir"' EXIT
# No wait here: the example's client connects with backoff and the example
# waits (5 s at most) until both stores are usable.
cd "$dir"
out=$("$example" "redis://127.0.0.1:$port")
echo "$out"
grep -q "the cap and op ids held across nodes" <<<"$out"
