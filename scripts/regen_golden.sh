#!/usr/bin/env bash
# Rewrites the golden loss curves (tests/golden/*.json) from the current build, on
# purpose: when a change moves the numbers, say why in the commit that carries the
# new curves, in one line.
#   bash scripts/regen_golden.sh "REASON"
set -euo pipefail
cd "$(dirname "$0")/.."
reason=${1:?usage: bash scripts/regen_golden.sh "why the curves move"}
bin=build/switchyard
[ -x "$bin" ] || bash scripts/build.sh
grep -v '^#' tests/golden/cases.txt | while read -r name _; do
  [ -n "$name" ] && bash tests/cli/golden.sh "$bin" "$name" --write
done
git diff --stat tests/golden || true
echo "golden curves rewritten; commit them with: git commit -m \"golden: $reason\" tests/golden"
