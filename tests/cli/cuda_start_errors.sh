#!/usr/bin/env bash
# cuda_start_errors.sh BIN CONFIG TEST_BACKEND_CUDA: a CUDA that cannot start is an
# error named in the runtime's words, never "no GPU". The toolkit's stub driver
# (libcuda.so.1 that refuses to work, as a broken driver install would) stands in
# for a GPU machine whose CUDA cannot start: training exits 2 naming the error, and
# the GPU tests fail instead of skipping. Without the stub, a machine with no
# driver says "no CUDA device is visible", with the runtime's error name.
set -u
source "$(dirname "$0")/lib.sh" "$1" "$2"
tests=$(realpath "$3")
stub=$(ls /usr/local/cuda*/lib64/stubs/libcuda.so /usr/local/cuda*/targets/*/lib/stubs/libcuda.so 2>/dev/null | head -1)
[ -n "$stub" ] || { echo "skipped: no CUDA stub driver in this toolkit"; exit 77; }
mkdir -p "$dir/stub" && ln -s "$stub" "$dir/stub/libcuda.so.1"
fail() { echo "FAIL: $*"; exit 1; }

LD_LIBRARY_PATH="$dir/stub" "$bin" train -c "$cfg" --set backend=cuda --set run.dir="$dir/r1" \
  >"$dir/out1" 2>&1
rc=$?
[ $rc = 2 ] || fail "exit $rc with a broken driver, expected 2: $(cat "$dir/out1")"
grep -q "CUDA could not start: CUDA driver is a stub library (cudaErrorStubLibrary" "$dir/out1" ||
  fail "the runtime's error is not named: $(cat "$dir/out1")"
[ ! -e "$dir/r1/metrics.jsonl" ] || fail "a run was started"

LD_LIBRARY_PATH="$dir/stub" "$tests" --gtest_filter='Ops/OpDevice.adam:CudaDevice.*' >"$dir/out2" 2>&1 &&
  fail "GPU tests passed with a broken driver: $(cat "$dir/out2")"
grep -q 'CUDA could not start: CUDA driver is a stub library' "$dir/out2" || fail "no start error in: $(cat "$dir/out2")"
grep -qi 'skipped' "$dir/out2" && fail "a GPU test skipped with a broken driver: $(cat "$dir/out2")"

if ! ls /dev/nvidiactl >/dev/null 2>&1 && ! ldconfig -p | grep -q 'libcuda\.so\.1'; then
  "$bin" train -c "$cfg" --set backend=cuda --set run.dir="$dir/r3" >"$dir/out3" 2>&1
  rc=$?
  [ $rc = 2 ] || fail "exit $rc without a driver, expected 2"
  grep -q "no CUDA device is visible: .*(cudaError" "$dir/out3" || fail "no runtime error name: $(cat "$dir/out3")"
fi
echo "ok: a broken driver is an error (exit 2, named), GPU tests fail rather than skip"
