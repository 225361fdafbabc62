#!/usr/bin/env bash
# The routing study of docs/STUDY.md, end to end on CPU: Brown → 4096-piece
# tokenizer → the decoder and encoder sweeps (two single-thread runs at a time)
# → reports. Resumable: stop it any time (Ctrl-C) and run it again.
#   bash scripts/run_study.sh            # about 2 hours on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
bash scripts/fetch_brown.sh
[ -f data/prepared/brown_4k/manifest.json ] ||
  build/switchyard prepare --config configs/study/decoder_base.yaml
jobs=${JOBS:-2}
build/switchyard sweep configs/study/decoder.yaml --jobs "$jobs"
build/switchyard sweep configs/study/encoder.yaml --jobs "$jobs"
build/switchyard report runs/study/decoder
build/switchyard report runs/study/encoder
echo "run_study: reports in runs/study/decoder/report.md and runs/study/encoder/report.md"
