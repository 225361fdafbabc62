#!/usr/bin/env bash
# Builds switchyard and runs every test (ctest: unit, CLI and end-to-end).
# Extra arguments go to ctest, e.g. `bash scripts/test.sh -L unit`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)" "$@"
