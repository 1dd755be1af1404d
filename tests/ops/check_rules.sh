#!/usr/bin/env bash
# ctest ops.promtool: the alert rules (docs/ops/alerts.yml) pass
# `promtool check rules` with no warning, and their unit tests
# (docs/ops/alerts.test.yml) pass `promtool test rules`.
# Usage: tests/ops/check_rules.sh PROMTOOL_DIR
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
promtool=$("$root/scripts/promtool.sh" "$1")
out=$("$promtool" check rules "$root/docs/ops/alerts.yml" 2>&1) || { echo "$out"; exit 1; }
echo "$out"
if grep -qi warn <<<"$out"; then echo "ops.promtool: promtool warned about the rules" >&2; exit 1; fi
# test rules resolves rule_files relative to the test file.
"$promtool" test rules "$root/docs/ops/alerts.test.yml"
