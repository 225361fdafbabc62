#!/usr/bin/env bash
# early_stop.sh BIN CONFIG: SIGTERM or SIGINT before the first step (during start-up
# or a restore) ends the run with exit 3, never 143/130, and writes nothing: a new
# run directory is not even created, an existing one is left byte for byte. On 2
# ranks under mpirun, a stop to one rank ends both with 3 (no rank exits alone).
set -u
source "$(dirname "$0")/lib.sh" "$1" "$2"
fail() { echo "FAIL: $*"; exit 1; }
S=(--set train.steps=6 --set checkpoint.every=3)
snapshot() { (cd "$1" && find . -type f ! -name .switchyard.lock -print0 | sort -z | xargs -0 sha256sum); }

for sig in TERM INT; do
  SWITCHYARD_STALL="0@start:3" "$bin" train -c "$cfg" "${S[@]}" --set run.dir="$dir/new$sig" >"$dir/o" 2>&1 &
  p=$!
  sleep 1
  kill -$sig $p; wait $p; code=$?
  [ $code = 3 ] || { cat "$dir/o"; fail "SIG$sig during start-up: exit $code, want 3"; }
  grep -q "stopped by a signal before the first step: nothing written" "$dir/o" || { cat "$dir/o"; fail "no message"; }
  [ ! -e "$dir/new$sig" ] || fail "SIG$sig during start-up created the run directory"
done
echo "ok: SIGTERM / SIGINT during start-up: exit 3, nothing created"

"$bin" train -c "$cfg" "${S[@]}" --set run.dir="$dir/r" >/dev/null 2>&1 || fail "base run"
snapshot "$dir/r" >"$dir/before"
SWITCHYARD_STALL="0@restore:3" "$bin" train -c "$cfg" "${S[@]}" --set train.steps=9 --set run.dir="$dir/r" \
  --resume auto >"$dir/o" 2>&1 &
p=$!
sleep 1
kill -TERM $p; wait $p; code=$?
[ $code = 3 ] || { cat "$dir/o"; fail "SIGTERM during a restore: exit $code, want 3"; }
snapshot "$dir/r" >"$dir/after"
diff "$dir/before" "$dir/after" >/dev/null || fail "a stop during the restore changed the run directory"
echo "ok: SIGTERM during a restore: exit 3, the run directory unchanged"

SWITCHYARD_STALL="1@start:4" bash "$here/mpirun.sh" 2 -x SWITCHYARD_STALL "$bin" train -c "$cfg" "${S[@]}" \
  --set run.dir="$dir/m" >"$dir/o" 2>&1 &
p=$!
for _ in $(seq 100); do pgrep -f "switchyard train .*$dir/m" >/dev/null && break; sleep 0.1; done
sleep 1
pkill -TERM -f "switchyard train .*$dir/m" -n   # the newest rank process only
wait $p; code=$?
[ $code = 3 ] || { cat "$dir/o"; fail "2 ranks, SIGTERM to one during start-up: exit $code, want 3"; }
[ "$(grep -c 'nothing written' "$dir/o")" = 2 ] || { cat "$dir/o"; fail "not every rank stopped alike"; }
echo "ok: 2 ranks, SIGTERM to one during start-up: both exit 3"
