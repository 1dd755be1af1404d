#!/usr/bin/env bash
# Runs the README's embedding example twice on one fresh LMDB directory: the
# first run acknowledges bob's 3 claps and delivers the new total before it
# shuts down; the second sees the op id again (a replay) and the same total,
# read back from LMDB.
# Usage: readme_embed.sh README_EMBED_BINARY
set -euo pipefail
binary=$1
dir=$(mktemp -d /tmp/claps-readme-embed-XXXXXX)
trap 'rm -rf "$dir"' EXIT
expect() {  # expect OUTPUT LINE
  grep -qxF -- "$2" <<<"$1" || { printf 'missing line: %s\nin output:\n%s\n' "$2" "$1" >&2; exit 1; }
}
first=$(timeout 30 "$binary" "$dir/data")
expect "$first" "bob's op op-1: 3 accepted, 3 mine"
expect "$first" "viewer 1: my-article has 3 claps"
second=$(timeout 30 "$binary" "$dir/data")
expect "$second" "bob's op op-1: 3 accepted, 3 mine (a replay)"
expect "$second" "viewer 1: my-article has 3 claps"
echo "readme_embed: acknowledged, delivered, and replayed after a restart"
