#!/bin/sh
# Runs one fuzz target: libFuzzer first replays every input of the scratch
# corpus and of the checked-in seeds (any failure stops it), then fuzzes for
# SECONDS. New inputs go to WORK/corpus/<name>/, never to fuzz/corpus/;
# crashes and failed properties leave their input in WORK/artifacts/.
# Usage: fuzz/run.sh FUZZER SECONDS WORK [libFuzzer flags...]
set -eu
fuzzer=$1 seconds=$2 work=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
name=$(basename "$fuzzer")
name=${name#fuzz_}
mkdir -p "$work/corpus/$name" "$work/artifacts"
set -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/$name-" "$@"
if [ -f "$here/$name.dict" ]; then set -- -dict="$here/$name.dict" "$@"; fi
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
exec "$fuzzer" "$@" "$work/corpus/$name" "$here/corpus/$name"
