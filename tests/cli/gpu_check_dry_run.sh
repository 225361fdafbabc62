#!/usr/bin/env bash
# gpu_check_dry_run.sh BUILD_DIR: scripts/gpu_check.sh on a machine without a GPU,
# over the binaries of BUILD_DIR laid out as a bundle. It must never call a GPU
# stage passed: the libs stage passes (everything links), the device stage fails
# (no GPU), every later stage is "not run"; forced to run them anyway, each one
# fails (a skipped test, a refused backend), and the exit code says so.
set -u
build=$(realpath "$1")
repo=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
if "$build/tests/test_backend_cuda" --gtest_filter=CudaDevice.* 2>&1 | grep -q '\[       OK \]'; then
  echo "skipped: this machine has a GPU (the dry run is for machines without one)"; exit 77
fi
mkdir -p "$dir/bundle/bin" "$dir/bundle/lib"
ln -s "$build/switchyard" "$build/tests/test_backend_cuda" "$build/tests/test_route_ops_cuda" \
  "$build/tests/test_nccl" "$dir/bundle/bin/"
echo "commit: dry run" >"$dir/bundle/BUILD.txt"
fail() { echo "FAIL: $*"; echo "--- summary:"; cat "$dir"/out*/summary.txt 2>/dev/null; exit 1; }
check() { bash "$repo/scripts/gpu_check.sh" "$@" >"$dir/log" 2>&1; }

# 1. Everything: exit 1, libs passed, device failed, the rest not run.
OUT=$dir/out1 SY_BUNDLE_DIR=$dir/bundle check && fail "gpu_check exited 0 without a GPU"
s=$dir/out1/summary.txt
grep -q '^libs: passed' "$s" || fail "libs did not pass"
grep -q '^device: failed (a test skipped' "$s" || fail "device stage not failed as skipped"
n_not_run=$(grep -c ': not run (device failed)' "$s")
[ "$n_not_run" = 10 ] || fail "expected 10 stages not run, got $n_not_run"
[ "$(grep -c ': passed' "$s")" = 1 ] || fail "a stage other than libs passed"
for f in libs device; do [ -s "$dir/out1/$f.txt" ] || fail "no $f.txt"; done

# 2. Forced: every GPU stage runs, and every one fails.
OUT=$dir/out2 SY_BUNDLE_DIR=$dir/bundle SY_GPU_CHECK_FORCE=1 check ops routing parity nccl bench_dense &&
  fail "forced gpu_check exited 0 without a GPU"
s=$dir/out2/summary.txt
for st in ops routing parity nccl bench_dense; do
  grep -q "^$st: failed" "$s" || fail "$st not failed"
  [ -s "$dir/out2/$st.txt" ] || fail "no $st.txt"
done
grep -q '^ops: failed (a test skipped' "$s" || fail "skipped op tests not called a failure"
grep -q '^routing: failed (a test skipped' "$s" || fail "skipped routing tests not called a failure"
grep -q ': passed' "$s" && fail "a forced GPU stage passed without a GPU"
[ "$(grep -c ':' "$s")" = 6 ] || fail "stages other than those asked for ran"

# 3. Stage names are checked; a group name selects its stages.
check nothing; [ $? = 2 ] || fail "an unknown stage was not refused with exit 2"
grep -q "unknown stage 'nothing'" "$dir/log" || fail "no message naming the unknown stage"
OUT=$dir/out3 SY_BUNDLE_DIR=$dir/bundle check libs || fail "libs alone failed: $(cat "$dir/log")"
[ "$(grep -c '^libs: passed' "$dir/out3/summary.txt")" = 1 ] || fail "libs alone not passed"
# 4. A spent time budget: the stages that no longer fit are "not run", never passed.
OUT=$dir/out4 SY_BUNDLE_DIR=$dir/bundle SY_CHECK_BUDGET=10 check libs ops && fail "exit 0 with nothing run"
[ "$(grep -c 'not run (the time budget of 10 s is spent)' "$dir/out4/summary.txt")" = 2 ] ||
  fail "stages beyond the budget not reported as not run"
echo "ok: dry run: libs passed, device failed, 10 stages not run; forced: 5 stages failed"
cat "$dir/out2/summary.txt"
