#!/usr/bin/env bash
# fault_aborts_all_ranks.sh BIN CONFIG NP [stall]: rank NP-1 fails at step 1
# (injected), or stops answering there; mpirun must end non-zero within a bounded
# time, with the failing rank named (a stall: named by the ranks' watchdogs).
set -u
bin=$1 cfg=$2 np=$3 kind=${4:-fail}
here=$(dirname "$0")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
start=$(date +%s)
SWITCHYARD_INJECT_FAULT="rank=$((np - 1)),step=1,$kind" timeout 120 bash "$here/mpirun.sh" "$np" \
  -x SWITCHYARD_INJECT_FAULT "$bin" train -c "$cfg" --set run.dir="$dir/run" --set train.steps=100000 \
  --set parallel.step_timeout_s=5 >"$dir/out" 2>&1
code=$?
elapsed=$(( $(date +%s) - start ))
if [ "$code" = 0 ] || [ "$code" = 124 ]; then
  echo "FAIL: exit code $code (0: nobody failed; 124: the job hung)"; cat "$dir/out"; exit 1
fi
want="fatal (rank $((np - 1)) of $np"
[ "$kind" = stall ] && want="has run for more than 5 s"
if ! grep -q "$want" "$dir/out"; then
  echo "FAIL: the failing rank is not named"; cat "$dir/out"; exit 1
fi
[ "$elapsed" -le 60 ] || { echo "FAIL: took ${elapsed}s"; exit 1; }
echo "ok: rank $((np - 1)) of $np: $kind; mpirun exited $code after ${elapsed}s"
