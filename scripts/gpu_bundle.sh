#!/usr/bin/env bash
# Builds switchyard and its GPU tests on this machine (CUDA compiles and links
# without a GPU) for Hopper (sm_90) and a portable x86-64-v3 CPU, and packs them
# with the shared libraries they need into .device/bundle.tar.xz (git-ignored):
# a GPU machine with the CUDA toolkit but no Debian packages can run them from
# there (scripts/gpu_check.sh). Left out: glibc (the machine's own) and the CUDA
# toolkit's libraries (cudart, cuBLAS, NCCL), which the GPU machine has.
#   bash scripts/gpu_bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DSWITCHYARD_CUDA=ON \
  -DSWITCHYARD_NATIVE=OFF -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CXX_FLAGS=-march=x86-64-v3 >/dev/null
cmake --build build-gpu --target switchyard test_backend_cuda test_nccl
stage=.device/bundle
rm -rf "$stage" && mkdir -p "$stage/bin" "$stage/lib"
bins=(build-gpu/switchyard build-gpu/tests/test_backend_cuda build-gpu/tests/test_nccl)
cp "${bins[@]}" "$stage/bin/"
skip='^(libc|libm|libpthread|libdl|librt|ld-linux-x86-64|libcuda|libcudart|libcublas|libcublasLt|libnccl)\.so'
for b in "${bins[@]}"; do
  ldd "$b" | awk '/=> \// {print $3}'
done | sort -u | while read -r lib; do
  name=$(basename "$lib")
  [[ $name =~ $skip ]] || cp -L "$lib" "$stage/lib/$name"
done
tar -C .device -cJf .device/bundle.tar.xz bundle
rm -rf "$stage"
echo "gpu_bundle: .device/bundle.tar.xz ($(du -h .device/bundle.tar.xz | cut -f1)); run it with" \
     "the device tool: carry .device, command 'bash scripts/gpu_check.sh'"
