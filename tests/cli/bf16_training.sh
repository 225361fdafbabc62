#!/usr/bin/env bash
# bf16_training.sh BIN CONFIG: precision: bf16 on the CPU (bf16 operands, fp32
# accumulation, fp32 master weights) trains as well as fp32: the dense model and a
# MoE model (router in fp32) reach the same validation loss within 2% after 150
# steps, on losses that are not the same bits (the rounding is there), and so does
# the dense model with fused attention (its own rounding points); unknown
# precisions and head dims above the fused kernel's are refused (exit 2).
set -u
source "$(dirname "$0")/lib.sh" "$1" "$2"
fail() { echo "FAIL: $*"; exit 1; }
S=(--set train.steps=150 --set train.eval_every=0 --set train.eval_batches=4 --set train.batch_size=4
   --set optim.lr=3e-3 --set run.log_every=10)
for model in dense moe fused; do
  M=()
  [ $model = moe ] && M=(--set moe.num_experts=4 --set moe.router=gshard_top2)
  [ $model = fused ] && M=(--set attention_kernel=fused)
  for p in fp32 bf16; do
    "$bin" train -c "$cfg" "${S[@]}" "${M[@]}" --set precision=$p --set run.dir="$dir/$model-$p" \
      >"$dir/$model-$p.log" 2>&1 || { tail "$dir/$model-$p.log"; fail "$model $p"; }
  done
  "$py" - "$dir/$model-fp32/metrics.jsonl" "$dir/$model-bf16/metrics.jsonl" $model <<'PY' || fail "$model: bf16 against fp32"
import json, sys
fp = [json.loads(l) for l in open(sys.argv[1])]
bf = [json.loads(l) for l in open(sys.argv[2])]
a, b = fp[-1]["val_nll"], bf[-1]["val_nll"]
first = fp[0]["loss"]
assert first - a > 0.5, f"fp32 did not learn: {first} -> {a}"
assert abs(b - a) / a < 0.02, f"bf16 val nll {b} vs fp32 {a}"
assert any(x["loss"] != y["loss"] for x, y in zip(fp, bf)), "bf16 gave fp32's bits: no rounding happened"
print(f"ok: {sys.argv[3]}: val nll fp32 {a:.4f}, bf16 {b:.4f} ({100 * (b - a) / a:+.2f}%)")
PY
done
"$bin" train -c "$cfg" --set attention_kernel=fused --set model.d_model=264 --set model.n_heads=2 \
  --set run.dir="$dir/x" >"$dir/bad.log" 2>&1
[ $? -eq 2 ] && grep -q "attention_kernel = fused: takes head dims up to 128; model.d_model / model.n_heads is 132" "$dir/bad.log" ||
  { cat "$dir/bad.log"; fail "fused attention at head dim 132: exit 2"; }
"$bin" train -c "$cfg" --set precision=fp16 --set run.dir="$dir/x" >"$dir/bad.log" 2>&1
[ $? -eq 2 ] && grep -q "must be one of: fp32, bf16" "$dir/bad.log" || { cat "$dir/bad.log"; fail "precision fp16: exit 2"; }
grep -q "precision bf16 (bf16 operands, fp32 accumulation)" "$dir/dense-bf16/log.txt" || fail "the log does not say bf16"
grep -q "fused attention" "$dir/fused-bf16/log.txt" || fail "the log does not say fused attention"
echo "ok: bf16 trains like fp32, with fused attention too; unknown precisions and wide heads refused"
