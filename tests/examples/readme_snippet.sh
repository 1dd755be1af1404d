#!/usr/bin/env bash
# The README's embedding example is examples/readme_embed.cpp from its first
# #include on, between the markers "<!-- examples/readme_embed.cpp: begin -->"
# and "...: end -->" (inside a ```cpp fence). Fails with a diff when they differ.
# Usage: readme_snippet.sh SOURCE_DIR
set -euo pipefail
source=$1
readme=$source/README.md file=$source/examples/readme_embed.cpp
grep -q '<!-- examples/readme_embed.cpp: begin -->' "$readme" || { echo "README has no begin marker" >&2; exit 1; }
shown=$(awk '/<!-- examples\/readme_embed.cpp: begin -->/{on=1; next} /<!-- examples\/readme_embed.cpp: end -->/{on=0} on' "$readme" |
  sed '1{/^```cpp$/d}; ${/^```$/d}')
code=$(sed -n '/^#include/,$p' "$file")
if [ "$shown" != "$code" ]; then
  echo "README.md's embedding example differs from examples/readme_embed.cpp (README first):" >&2
  diff <(printf '%s\n' "$shown") <(printf '%s\n' "$code") >&2 || true
  exit 1
fi
echo "README.md shows examples/readme_embed.cpp ($(printf '%s\n' "$code" | wc -l) lines)"
