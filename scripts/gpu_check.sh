#!/usr/bin/env bash
# On a GPU machine, from the repository root, with .device/bundle.tar.xz from
# scripts/gpu_bundle.sh: the CUDA op tests (and under compute-sanitizer), the
# whole-model CPU-vs-CUDA parity over 10 steps for every router, and the GPU
# benchmark for expert choice and GShard. Results go to $OUT (default .device/out).
set -u
cd "$(dirname "$0")/.."
out=${OUT:-.device/out}
mkdir -p "$out" /tmp/sy
tar -C /tmp/sy -xJf .device/bundle.tar.xz
b=/tmp/sy/bundle
cuda_lib=$(dirname "$(find / -name 'libcublasLt.so.*' -not -path '/proc/*' 2>/dev/null | head -1)")
export LD_LIBRARY_PATH="$b/lib:$cuda_lib:${LD_LIBRARY_PATH:-}"
{ nvidia-smi; echo; "$b/bin/switchyard" --version; } >"$out/machine.txt" 2>&1
"$b/bin/test_backend_cuda" >"$out/ops.txt" 2>&1; echo "ops rc=$?" >>"$out/summary.txt"
sanitizer=$(command -v compute-sanitizer || find / -name compute-sanitizer -type f 2>/dev/null | head -1)
if [ -n "$sanitizer" ]; then
  "$sanitizer" --tool memcheck --error-exitcode 9 "$b/bin/test_backend_cuda" >"$out/memcheck.txt" 2>&1
  echo "memcheck rc=$?" >>"$out/summary.txt"
fi
bash tests/cli/cuda_parity.sh "$b/bin/switchyard" tests/cli/tiny.yaml >"$out/parity.txt" 2>&1
echo "parity rc=$?" >>"$out/summary.txt"
for router in expert_choice gshard_top2; do
  timeout 240 "$b/bin/switchyard" bench --config configs/bench_gpu.yaml --set moe.router=$router \
    >"$out/bench_$router.txt" 2>&1
  echo "bench $router rc=$?" >>"$out/summary.txt"
done
cat "$out/summary.txt"
