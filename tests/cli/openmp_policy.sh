#!/usr/bin/env bash
# openmp_policy.sh BIN CONFIG: without OMP_WAIT_POLICY in its environment the binary
# runs with PASSIVE OpenMP waits (it re-executes itself once; docs/design.md), a
# policy the user set is kept, and a training run stopped by SIGTERM still exits 3.
set -u
source "$(dirname "$0")/lib.sh" "$1" "$2"
fail() { echo "FAIL: $*"; exit 1; }
policy_of() {  # policy_of PID: OMP_WAIT_POLICY in the process's environment
  tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | sed -n 's/^OMP_WAIT_POLICY=//p'
}
run_and_look() {  # run_and_look ENV...: start a long run, print its policy, stop it, print its exit code
  env -u OMP_WAIT_POLICY "$@" "$bin" train -c "$cfg" --set train.steps=100000 --set run.dir="$dir/r$RANDOM" \
    >"$dir/out.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do grep -q "step " "$dir/out.log" 2>/dev/null && break; sleep 0.1; done
  local p
  p=$(policy_of "$pid")
  kill -TERM "$pid"
  wait "$pid"
  echo "$p $?"
}
read -r policy code <<<"$(run_and_look)"
[ "$policy" = PASSIVE ] || fail "policy '$policy' without OMP_WAIT_POLICY, want PASSIVE"
[ "$code" = 3 ] || { tail -3 "$dir/out.log"; fail "SIGTERM gave exit $code, want 3"; }
read -r policy code <<<"$(run_and_look OMP_WAIT_POLICY=ACTIVE)"
[ "$policy" = ACTIVE ] || fail "the user's OMP_WAIT_POLICY=ACTIVE became '$policy'"
[ "$code" = 3 ] || fail "SIGTERM gave exit $code with OMP_WAIT_POLICY=ACTIVE, want 3"
"$bin" --version >/dev/null 2>&1 || fail "--version after the re-exec"
echo "ok: PASSIVE by default, the user's policy kept, SIGTERM → exit 3 across the re-exec"
