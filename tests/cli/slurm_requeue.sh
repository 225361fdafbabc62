#!/usr/bin/env bash
# slurm_requeue.sh BIN CONFIG: scripts/slurm_train.sbatch with stub `srun` and
# `scontrol` on PATH. A run that stops (exit 3, or the batch script signalled and a
# new checkpoint committed although the launcher reports another code) is requeued
# and the script exits 3; a finished run or a real failure is not requeued and keeps
# its exit code.
set -u
source "$(dirname "$0")/lib.sh" "$1" "$2"
repo=$(cd "$here/../.." && pwd)
fail() { echo "FAIL: $*"; exit 1; }
mkdir -p "$dir/stubs" "$dir/run/checkpoints"
cat >"$dir/stubs/srun" <<'STUB'
#!/usr/bin/env bash
# STUB_MODE=exit:N → exit N; term:N:SAVE → wait for SIGTERM, then (SAVE=1) commit a
# new checkpoint name, and exit N.
echo "srun $*" >>"$STUB_LOG"
case $STUB_MODE in
  exit:*) exit "${STUB_MODE#exit:}" ;;
  term:*)
    IFS=: read -r _ code save <<<"$STUB_MODE"
    trap '[ "$save" = 1 ] && echo step_0000099 >"$STUB_RUN/checkpoints/latest"; exit "$code"' TERM
    touch "$STUB_RUN/started"
    while :; do sleep 0.1; done ;;
esac
STUB
cat >"$dir/stubs/scontrol" <<'STUB'
#!/usr/bin/env bash
echo "scontrol $*" >>"$STUB_LOG"
STUB
chmod +x "$dir/stubs/srun" "$dir/stubs/scontrol"
export PATH="$dir/stubs:$PATH" STUB_LOG=$dir/calls STUB_RUN=$dir/run SWITCHYARD_BIN=$bin
export SLURM_JOB_ID=4242 SLURM_NTASKS_PER_NODE=1 SLURM_CPUS_PER_TASK=1
sbatch() { bash "$repo/scripts/slurm_train.sbatch" "$cfg" --set run.dir="$dir/run"; }

check() {  # check MODE WANT_CODE WANT_REQUEUE(0|1) [term]
  : >"$dir/calls"; rm -f "$dir/run/started"
  echo step_0000001 >"$dir/run/checkpoints/latest"
  if [ "${4:-}" = term ]; then
    STUB_MODE=$1 bash "$repo/scripts/slurm_train.sbatch" "$cfg" --set run.dir="$dir/run" >"$dir/out" 2>&1 &
    local p=$!  # the batch script itself, as SLURM signals it
    for _ in $(seq 100); do [ -e "$dir/run/started" ] && break; sleep 0.1; done
    kill -TERM $p; wait $p; code=$?
  else
    STUB_MODE=$1 sbatch >"$dir/out" 2>&1; code=$?
  fi
  [ "$code" = "$2" ] || { cat "$dir/out" "$dir/calls"; fail "$1${4:+ ($4)}: exit $code, want $2"; }
  grep -q "srun --mpi=pmix $bin train --config $cfg --resume auto" "$dir/calls" || { cat "$dir/calls"; fail "srun not called as expected"; }
  if [ "$3" = 1 ]; then grep -q "scontrol requeue 4242" "$dir/calls" || fail "$1: not requeued"
  else grep -q scontrol "$dir/calls" && fail "$1: requeued, should not be"; fi
  echo "ok: $1${4:+ + SIGTERM to the batch script}: exit $code, requeued: $3"
}
check exit:3 3 1
check exit:0 0 0
check exit:2 2 0
check exit:6 6 0
check term:1:1 3 1 term   # mpirun-like: ranks saved, the launcher says 1
check term:3:1 3 1 term
check term:1:0 1 0 term   # signalled, but nothing was saved: a failure, not a stop
