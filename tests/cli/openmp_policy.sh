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
# OpenBLAS's kernel: the user's OPENBLAS_CORETYPE is kept; without one, a processor
# with AVX2 never runs the pre-AVX2 kernels OpenBLAS falls back to for processors
# it does not know (docs/design.md).
kernel_of() { env -u OMP_WAIT_POLICY "$@" "$bin" train -c "$cfg" --set train.steps=1 --set run.dir="$dir/k$RANDOM" 2>&1 |
  sed -n 's/.*kernel \([A-Za-z0-9]*\)).*/\1/p' | head -1; }
k=$(kernel_of OPENBLAS_CORETYPE=PRESCOTT)
[ "$k" = Prescott ] || fail "the user's OPENBLAS_CORETYPE=PRESCOTT ran kernel '$k'"
k=$(kernel_of -u OPENBLAS_CORETYPE)
[ -n "$k" ] || fail "the log does not name the BLAS kernel"
if grep -qw avx2 /proc/cpuinfo; then
  case "$k" in Prescott|Core2|Penryn|Dunnington|Nehalem|Sandybridge|Atom|Katmai|Northwood|Banias|Opteron|Barcelona)
    fail "an AVX2 processor runs OpenBLAS kernel $k";; esac
fi
echo "ok: PASSIVE by default, the user's policy kept, SIGTERM → exit 3 across the re-exec; BLAS kernel $k"
