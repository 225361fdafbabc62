#!/usr/bin/env bash
# Installs dependencies (scripts/setup.sh) and builds switchyard into build/.
# The CUDA backend is built when nvcc is found (here or in /usr/local/cuda).
# Env: BUILD_DIR (default build), SWITCHYARD_WERROR (ON in CI), CMAKE_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x /usr/local/cuda/bin/nvcc ] && export PATH="/usr/local/cuda/bin:$PATH"
build=${BUILD_DIR:-build}
werror=${SWITCHYARD_WERROR:-$([ "${CI:-}" = true ] && echo ON || echo OFF)}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSWITCHYARD_WERROR="$werror" ${CMAKE_ARGS:-}
cmake --build "$build" -j "$(nproc)"
