#!/usr/bin/env bash
# Builds switchyard and its GPU tests on this machine (CUDA compiles and links
# without a GPU) for Hopper (sm_90) and a portable x86-64-v3 CPU, and packs into
# .device/bundle.tar.xz (git-ignored) everything a GPU machine with the CUDA
# libraries but no Debian packages needs to run scripts/gpu_check.sh:
#   bin/    switchyard, test_backend_cuda, test_route_ops_cuda, test_nccl
#   lib/    every shared library they load, the CUDA runtime they were built
#           against included, except glibc and the big CUDA libraries (cuBLAS,
#           cuBLASLt, NCCL) and the driver, which the GPU machine has and
#           gpu_check.sh finds there, each on its own
#   ompi/   Open MPI's launcher (mpirun, orted), its plugins and help texts, and
#           PMIx's plugins, relocatable through OPAL_PREFIX / PMIX_PREFIX: the NCCL
#           stage bootstraps NCCL through a real mpirun
#   BUILD.txt  the commit, compiler and flags it was built from
#   bash scripts/gpu_bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/local/cuda/bin/nvcc ] && export PATH="/usr/local/cuda/bin:$PATH"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DSWITCHYARD_CUDA=ON \
  -DSWITCHYARD_NATIVE=OFF -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CXX_FLAGS=-march=x86-64-v3 \
  -DCMAKE_SKIP_RPATH=ON >/dev/null  # libraries come from LD_LIBRARY_PATH alone, as gpu_check.sh sets it
cmake --build build-gpu --target switchyard test_backend_cuda test_route_ops_cuda test_nccl
stage=.device/bundle
rm -rf "$stage" && mkdir -p "$stage/bin" "$stage/lib"
bins=(build-gpu/switchyard build-gpu/tests/test_backend_cuda build-gpu/tests/test_route_ops_cuda build-gpu/tests/test_nccl)
cp "${bins[@]}" "$stage/bin/"

# The machine's own: glibc and friends, the driver and the CUDA toolkit libraries.
skip='^(libc|libm|libpthread|libdl|librt|libutil|ld-linux-x86-64|libcuda|libcublas|libcublasLt|libnccl|libnvidia-.*)\.so'
# Without RPATHs, ldd finds the libraries the build linked through these folders.
export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp:/usr/lib/x86_64-linux-gnu/openmpi/lib:${LD_LIBRARY_PATH:-}
copy_deps() {  # copy_deps FILE...: every library they load (transitively) into lib/
  for f in "$@"; do ldd "$f" 2>/dev/null | awk '/=> \// {print $3}'; done | sort -u |
    while read -r lib; do
      name=$(basename "$lib")
      [[ $name =~ $skip ]] || [ -e "$stage/lib/$name" ] || cp -L "$lib" "$stage/lib/$name"
    done
}
copy_deps "${bins[@]}"

# Open MPI, laid out under a prefix of its own (Debian's paths relative to /usr).
ompi_lib=/usr/lib/x86_64-linux-gnu/openmpi/lib
pmix_dir=/usr/lib/x86_64-linux-gnu/pmix2
o="$stage/ompi"
mkdir -p "$o/bin" "$o/lib/x86_64-linux-gnu/openmpi/lib" "$o/share" "$o/pmix/lib" "$o/etc"
cp -L /usr/bin/orterun "$o/bin/mpirun"
cp -L /usr/bin/orted "$o/bin/orted"
cp -a "$ompi_lib/openmpi3" "$o/lib/x86_64-linux-gnu/openmpi/lib/"  # the plugins (MCA components)
cp -a /usr/share/openmpi "$o/share/openmpi"                          # help texts
[ -d "$pmix_dir/lib/pmix" ] && cp -a "$pmix_dir/lib/pmix" "$o/pmix/lib/"
[ -d "$pmix_dir/share" ] && cp -a "$pmix_dir/share" "$o/pmix/"
copy_deps "$o/bin/mpirun" "$o/bin/orted" $(find "$o" -name '*.so*' -type f)

git_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet 2>/dev/null || git_rev="$git_rev+uncommitted"
{
  echo "commit: $git_rev"
  echo "built: $(date -u +%FT%TZ) on $(uname -m)"
  echo "nvcc: $(nvcc --version | tail -1)"
  echo "c++: $(c++ --version | head -1)"
  echo "flags: sm_90, -march=x86-64-v3, Release"
} >"$stage/BUILD.txt"
tar -C .device -cJf .device/bundle.tar.xz bundle
rm -rf "$stage"
echo "gpu_bundle: .device/bundle.tar.xz ($(du -h .device/bundle.tar.xz | cut -f1)); run it with" \
     "the device tool: carry .device, command 'bash scripts/gpu_check.sh'"
