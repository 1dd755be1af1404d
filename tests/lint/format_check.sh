#!/usr/bin/env bash
# Fails when a tracked C or C++ file differs from what clang-format-14 makes of
# it with the tree's .clang-format (fix: clang-format-14 -i FILE..., or
# `git ls-files '*.cpp' '*.hpp' '*.h' '*.c' | xargs clang-format-14 -i`).
# Usage: format_check.sh SOURCE_DIR      Exit 77 (skipped) without clang-format-14 or git metadata.
set -euo pipefail
cd "$1"
command -v clang-format-14 >/dev/null || { echo "format_check: clang-format-14 missing (scripts/deps.sh test)"; exit 77; }
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || { echo "format_check: not a git checkout"; exit 77; }
mapfile -t files < <(git ls-files '*.cpp' '*.hpp' '*.h' '*.c')
[ ${#files[@]} -gt 0 ] || { echo "format_check: no C/C++ files found"; exit 1; }
if ! clang-format-14 --dry-run --Werror "${files[@]}"; then
  echo "format_check: the files above are not formatted (clang-format-14 -i them)"
  exit 1
fi
echo "format_check: ${#files[@]} files formatted"
