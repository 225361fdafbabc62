#!/usr/bin/env bash
# The main job: build, fetch the Brown corpus, prepare it (once), and train the
# default model (configs/default.yaml) on CPU. Extra arguments go to
# `switchyard train`, e.g. --set train.steps=100.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
bin="${BUILD_DIR:-build}/switchyard"
bash scripts/fetch_brown.sh
if [ ! -f data/prepared/brown/manifest.json ]; then
  "$bin" prepare --config configs/default.yaml
fi
"$bin" train --config configs/default.yaml "$@"
"$bin" eval --run runs/default --split test
