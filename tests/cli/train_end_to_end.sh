#!/usr/bin/env bash
# train_end_to_end.sh BIN CONFIG: a short real run writes the resolved config, a
# log and metrics; the same config and seed gives bit-identical metrics again.
set -eu
bin=$1 cfg=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
run() {
  "$bin" train -c "$cfg" --set run.dir="$dir/$1" --set train.steps=40 --set train.eval_every=20 \
    --set train.eval_batches=2 --set run.log_every=5 --set optim.lr=3e-2 --set optim.warmup_steps=2 --set model.n_layers=1 >"$dir/$1.out" 2>&1
}
run a
run b
for f in config.yaml log.txt metrics.jsonl; do
  [ -s "$dir/a/$f" ] || { echo "FAIL: $f missing or empty"; exit 1; }
done
lines=$(wc -l <"$dir/a/metrics.jsonl")
[ "$lines" = 10 ] || { echo "FAIL: expected 10 metrics lines (every 5th step, plus evaluations at 19 and 39), got $lines"; exit 1; }
grep -q '"val_ppl"' "$dir/a/metrics.jsonl" || { echo "FAIL: no validation perplexity"; exit 1; }
# Timing fields differ run to run; everything else must be identical.
strip() { python3 -c 'import json,sys
for l in open(sys.argv[1]):
    d=json.loads(l); d.pop("tokens_per_s"); d.pop("gflops"); print(json.dumps(d, sort_keys=True))' "$1"; }
if ! diff <(strip "$dir/a/metrics.jsonl") <(strip "$dir/b/metrics.jsonl"); then
  echo "FAIL: two runs of the same config differ"; exit 1
fi
# Loss must have gone down.
python3 - "$dir/a/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert rows[-1]["loss"] < rows[0]["loss"] - 0.3, (rows[0]["loss"], rows[-1]["loss"])
PY
# The resolved config is a valid config that reproduces itself.
"$bin" check-config -c "$dir/a/config.yaml" >"$dir/again.yaml"
diff "$dir/a/config.yaml" "$dir/again.yaml"
echo "ok: end-to-end run, deterministic metrics, resolved config round-trips"
