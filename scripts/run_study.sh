#!/usr/bin/env bash
# The routing study of docs/STUDY.md, end to end on CPU: Brown and GCIDE → 4096-piece
# tokenizers → the decoder sweep on Brown, its core arms on GCIDE, the encoder sweep
# (two single-thread runs at a time) → reports. Resumable: stop it any time
# (Ctrl-C) and run it again; finished runs are skipped.
#   bash scripts/run_study.sh            # about 2.5 hours on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
bash scripts/fetch_brown.sh
bash scripts/fetch_gcide.sh
[ -f data/prepared/brown_4k/manifest.json ] ||
  build/switchyard prepare --config configs/study/decoder_base.yaml
[ -f data/prepared/gcide_4k/manifest.json ] ||
  build/switchyard prepare --config configs/study/decoder_base.yaml \
    --set prepare.input=data/gcide/text --set prepare.tags= --set data.path=data/prepared/gcide_4k
jobs=${JOBS:-2}
for sweep in mode_check decoder decoder_gcide encoder; do
  build/switchyard sweep "configs/study/$sweep.yaml" --jobs "$jobs"
done
build/switchyard report runs/study/mode_check --target dense_lr3e-3_wu100
for study in decoder decoder_gcide encoder; do build/switchyard report "runs/study/$study"; done
echo "run_study: reports in runs/study/{decoder,decoder_gcide,encoder,mode_check}/report.md"
