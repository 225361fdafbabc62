#!/usr/bin/env bash
# cuda_parity.sh BIN CONFIG: whole-model parity of the CUDA backend with the CPU
# backend: 10 training steps of the dense model (with a chunked classifier and with
# fused attention too) and of every router (capped expert choice too), losses within
# 1e-4 relative at every step in fp32; and in precision: bf16 on both backends
# (dense, dense with fused attention, a router), within 2e-3: both round the same
# operands, but a last-bit difference in an fp32 sum can move a rounded value to
# its bf16 neighbour (2⁻⁸ relative), and ten steps of training carry that on.
# Exits 77 (ctest: skipped) without a GPU.
set -eu
source "$(dirname "$0")/lib.sh" "$@"
S=(--set train.steps=10 --set run.log_every=1 --set train.eval_every=0 --set checkpoint.every=0
   --set model.n_layers=2 --set moe.num_experts=4)
probe=$("$bin" train -c "$cfg" "${S[@]}" --set backend=cuda --set train.steps=1 \
        --set run.dir="$dir/probe" 2>&1) || {
  if grep -q "no CUDA device\|built without CUDA" <<<"$probe"; then
    echo "skipped: no GPU"; exit 77
  fi
  echo "FAIL: one CUDA step failed:"; echo "$probe"; exit 1
}
for router in dense dense_logits_chunk dense_fused switch_top1 gshard_top2 expert_choice expert_choice_capped \
              noisy_topk dense_bf16 dense_fused_bf16 gshard_top2_bf16 \
              switch_top1_device gshard_top2_device noisy_topk_device expert_choice_device; do
  R=(--set moe.router="$router")
  tol=1e-4
  [ "$router" = dense ] && R=(--set moe.num_experts=0)
  # The classifier 5 rows at a time (train.logits_chunk_rows): views into the logits.
  [ "$router" = dense_logits_chunk ] && R=(--set moe.num_experts=0 --set train.logits_chunk_rows=5)
  # Fused attention (tiles, online softmax) on both backends.
  [ "$router" = dense_fused ] && R=(--set moe.num_experts=0 --set attention_kernel=fused)
  [ "$router" = dense_bf16 ] && R=(--set moe.num_experts=0 --set precision=bf16) && tol=2e-3
  [ "$router" = dense_fused_bf16 ] &&
    R=(--set moe.num_experts=0 --set precision=bf16 --set attention_kernel=fused) && tol=2e-3
  [ "$router" = gshard_top2_bf16 ] && R=(--set moe.router=gshard_top2 --set precision=bf16) && tol=2e-3
  [ "$router" = expert_choice_capped ] &&
    R=(--set moe.router=expert_choice --set moe.expert_choice.max_experts_per_token=2)
  # Routing on the backend (moe.device_routing): Thrust on the GPU, its OpenMP build on the CPU.
  case "$router" in *_device) R=(--set moe.router="${router%_device}" --set moe.device_routing=true) ;; esac
  for backend in cpu cuda; do
    "$bin" train -c "$cfg" "${S[@]}" "${R[@]}" --set backend=$backend \
      --set run.dir="$dir/$router-$backend" >"$dir/$router-$backend.out" 2>&1 || {
      echo "FAIL: $router on $backend:"; tail -20 "$dir/$router-$backend.out"; exit 1; }
  done
  $py - "$dir/$router-cpu/metrics.jsonl" "$dir/$router-cuda/metrics.jsonl" "$router" "$tol" <<'PY'
import json, sys
cpu = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
gpu = [json.loads(l) for l in open(sys.argv[2]) if '"loss"' in l]
assert len(cpu) == len(gpu) == 10, f"{sys.argv[3]}: {len(cpu)} cpu vs {len(gpu)} cuda steps"
for a, b in zip(cpu, gpu):
    rel = abs(a["loss"] - b["loss"]) / abs(a["loss"])
    assert rel <= float(sys.argv[4]), f"{sys.argv[3]} step {a['step']}: cpu {a['loss']} cuda {b['loss']} (rel {rel:.2e})"
print(f"ok: {sys.argv[3]}: 10 steps, tolerance {sys.argv[4]}, worst relative loss gap "
      f"{max(abs(a['loss'] - b['loss']) / abs(a['loss']) for a, b in zip(cpu, gpu)):.2e}")
PY
done
