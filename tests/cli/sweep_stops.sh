#!/usr/bin/env bash
# sweep_stops.sh BIN CONFIG: a sweep and its children under hostile stops.
#  - two sweeps on one directory: the second is refused (exit 2), the first's
#    runs and metrics are untouched;
#  - SIGTERM while a child is starting: the child exits 3 (not 143), the run is
#    "stopped", the sweep exits 3;
#  - SIGKILL to the sweep: its trainer is stopped too (it saves and exits 3); run
#    again, the sweep waits for nothing and resumes that run from its checkpoint;
#  - a 2-rank sweep (mpirun) stopped by SIGTERM: mpirun reports its own exit code,
#    yet the run counts as stopped (it saved), not failed.
set -u
source "$(dirname "$0")/lib.sh" "$1" "$2"
fail() { echo "FAIL: $*"; exit 1; }
sweep_file() {  # sweep_file NAME STEPS [RANKS]
  cat >"$dir/$1.yaml" <<YAML
base: $cfg
dir: $dir/$1
seeds: [1]
ranks: ${3:-1}
mpirun: [mpirun, --oversubscribe]
set: {train.steps: $2, checkpoint.every: 50, run.log_every: 50}
arms:
  - name: dense
    set: {}
YAML
}
wait_for() {  # wait_for FILE PATTERN: up to 30 s
  for _ in $(seq 300); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  fail "timed out waiting for '$2' in $1"
}

# 1. Two sweeps on one directory.
sweep_file two 1000000
"$bin" sweep "$dir/two.yaml" >"$dir/two1.out" 2>&1 &
first=$!
wait_for "$dir/two/dense/seed_1/console.txt" "step "
out=$("$bin" sweep "$dir/two.yaml" 2>&1); code=$?
[ $code = 2 ] && grep -q "is in use by another switchyard (PID $first" <<<"$out" ||
  { echo "$out"; fail "a second sweep on the same directory was not refused (exit $code)"; }
kill -TERM $first; wait $first; code=$?
[ $code = 3 ] || { cat "$dir/two1.out"; fail "a stopped sweep exited $code, want 3"; }
grep -q '"status": "stopped"' "$dir/two/sweep.json" || fail "the stopped run is not recorded as stopped"
echo "ok: a second sweep on a directory in use is refused; SIGTERM stops the sweep and its run (exit 3)"

# 2. SIGTERM while the child starts (it holds the stop until its handler is in).
sweep_file early 1000000
"$bin" sweep "$dir/early.yaml" >"$dir/early.out" 2>&1 &
sw=$!
wait_for "$dir/early.out" "sweep: start dense seed 1"
kill -TERM $sw; wait $sw; code=$?
[ $code = 3 ] || { cat "$dir/early.out"; fail "sweep stopped while its child started: exit $code, want 3"; }
grep -q '"exit_code": 3' "$dir/early/sweep.json" && grep -q '"status": "stopped"' "$dir/early/sweep.json" ||
  { cat "$dir/early/sweep.json"; fail "the child did not exit 3 / was not recorded as stopped"; }
echo "ok: a stop while the child starts: exit 3 everywhere, the run stopped (not failed)"

# 3. SIGKILL to the sweep: the child stops with it; the next sweep resumes.
sweep_file kill 300
"$bin" sweep "$dir/kill.yaml" >"$dir/kill1.out" 2>&1 &
sw=$!
run=$dir/kill/dense/seed_1
wait_for "$run/console.txt" "step "
child=$(pgrep -P $sw)
kill -KILL $sw; wait $sw 2>/dev/null
for _ in $(seq 300); do kill -0 "$child" 2>/dev/null || break; sleep 0.1; done
kill -0 "$child" 2>/dev/null && fail "the trainer outlived its killed sweep"
grep -q "stopped by a signal" "$run/console.txt" || { tail "$run/console.txt"; fail "the orphaned trainer did not stop cleanly"; }
"$bin" sweep "$dir/kill.yaml" >"$dir/kill2.out" 2>&1 || { cat "$dir/kill2.out"; fail "the sweep run again failed"; }
grep -q "resum.*step_" "$run/console.txt" || fail "the run did not resume from its checkpoint"
grep -q '1 of 1 runs finished, 0 failed' "$dir/kill2.out" || { cat "$dir/kill2.out"; fail "not finished"; }
echo "ok: SIGKILL to the sweep stops its trainer (checkpoint, exit 3); run again, it resumes"

# 4. 2 ranks through mpirun, stopped by SIGTERM.
sweep_file mpi 1000000 2
"$bin" sweep "$dir/mpi.yaml" >"$dir/mpi.out" 2>&1 &
sw=$!
wait_for "$dir/mpi/dense/seed_1/console.txt" "step "
kill -TERM $sw; wait $sw; code=$?
[ $code = 3 ] || { cat "$dir/mpi.out"; fail "a stopped 2-rank sweep exited $code, want 3"; }
grep -q '"status": "stopped"' "$dir/mpi/sweep.json" || { cat "$dir/mpi/sweep.json"; fail "the mpirun run is not recorded as stopped"; }
echo "ok: a 2-rank run stopped through mpirun counts as stopped (mpirun exit $(grep -o '"exit_code": [0-9]*' "$dir/mpi/sweep.json" | head -1))"
