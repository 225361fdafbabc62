#!/usr/bin/env bash
# mpi_bad_config.sh BIN CONFIG: a bad config under mpirun -np 2 ends the job with
# exit code 2 and the problem, on every rank, before any work starts.
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=$(timeout 60 bash "$here/mpirun.sh" 2 "$1" train -c "$2" 2>&1); code=$?
[ "$code" = 2 ] || { echo "$out"; echo "FAIL: exit $code, want 2"; exit 1; }
for r in 0 1; do
  grep -q "fatal (rank $r of 2, exit code 2)" <<<"$out" || { echo "$out"; echo "FAIL: rank $r silent"; exit 1; }
done
grep -q "optim.lr = -0.001: must be positive" <<<"$out" || { echo "$out"; echo "FAIL: no reason given"; exit 1; }
echo "ok: bad config on 2 ranks → exit 2 on both, reason given"
