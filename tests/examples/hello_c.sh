#!/usr/bin/env bash
# Runs the C example twice on one fresh LMDB directory: the first run counts
# alice's 3 and bob's 2 claps, refuses a clap of 0 with its code, delivers
# the total and shuts down; the second starts from the 5 claps read back from
# LMDB and sees alice's op id again (a replay, nothing added).
# Usage: hello_c.sh HELLO_C_BINARY
set -euo pipefail
binary=$1
dir=$(mktemp -d /tmp/claps-hello-c-XXXXXX)
trap 'rm -rf "$dir"' EXIT
expect() {  # expect OUTPUT LINE
  grep -qxF -- "$2" <<<"$1" || { printf 'missing line: %s\nin output:\n%s\n' "$2" "$1" >&2; exit 1; }
}
first=$(timeout 30 "$binary" "$dir/data")
expect "$first" "hello-c starts at 0 claps, alice has 0"
expect "$first" "ack hello-op-1: alice accepted 3 on hello-c, total 5, mine 3"
expect "$first" "a clap of 0: invalid_count (invalid clap count: use a whole number from 1 to the cap)"
expect "$first" "subscriber 1 sees hello-c: 5 claps, 1 reading"
second=$(timeout 30 "$binary" "$dir/data")
expect "$second" "hello-c starts at 5 claps, alice has 3"
expect "$second" "ack hello-op-1: alice accepted 3 on hello-c, total 7, mine 3 (replayed)"
echo "hello_c: counted, refused, delivered, and replayed after a restart"
