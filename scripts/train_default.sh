#!/usr/bin/env bash
# The main job: builds switchyard and trains the default model on CPU.
# Extra arguments go to `switchyard train`, e.g. --set train.steps=100.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
"${BUILD_DIR:-build}/switchyard" train --config configs/default.yaml "$@"
