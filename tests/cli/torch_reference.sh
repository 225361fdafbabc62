#!/usr/bin/env bash
# torch_reference.sh BIN CONFIG: tiny models of every kind, trained a few steps by
# switchyard, evaluated by switchyard and by the independent PyTorch reference
# (python/switchyard_torch): the validation NLL agrees to 1e-5 (both expert-choice
# evaluation rules in decoders), and for a dense, a switch_top1 and an expert-choice
# decoder the gradients of the training objective agree to 1e-4. The high learning
# rate makes routing matter: a wrong capacity, grouping or expert activation moves
# the NLL by 8e-5 to 2e-2 (measured). Skipped (77) without torch.
set -eu
source "$(dirname "$0")/lib.sh" "$1" "$2"
"$py" -c 'import torch' 2>/dev/null || { echo "skipped: no torch"; exit 77; }
export PYTHONPATH="$here/../../python${PYTHONPATH:+:$PYTHONPATH}"

check() {  # check NAME [--gradients] -- [SETS...]
  local name=$1; shift
  local grads=""
  if [ "${1:-}" = --gradients ]; then grads=--gradients; shift; fi
  [ "${1:-}" = -- ] && shift
  local run="$dir/$name"
  "$bin" train -c "$cfg" --set run.dir="$run" --set train.steps=5 --set train.eval_every=0 \
    --set train.eval_batches=0 --set run.progress=false --set optim.lr=1e-1 \
    --set optim.warmup_steps=1 "$@" >"$run.train.out" 2>&1 ||
    { cat "$run.train.out"; echo "FAIL: $name: switchyard train"; exit 1; }
  "$bin" eval --run "$run" --save-batches "$run/batches.safetensors" $grads >"$run.eval.out" 2>&1 ||
    { cat "$run.eval.out"; echo "FAIL: $name: switchyard eval"; exit 1; }
  "$py" -m switchyard_torch.check --run "$run" --batches "$run/batches.safetensors" $grads \
    --rtol-nll 1e-5 --rtol-grad 1e-4 >"$run.check.out" 2>&1 ||
    { cat "$run.check.out"; echo "FAIL: $name: the PyTorch reference disagrees"; exit 1; }
  local nll grad
  nll=$(awk '$2 == "nll" {print $NF}' "$run.check.out")
  grad=$(awk '/^worst gradient/ {print ", worst gradient rel " $NF}' "$run.check.out")
  echo "ok: $name (nll rel ${nll}${grad})"
}

moe() { echo --set moe.num_experts=4 --set moe.router="$1"; }

check dense_decoder --gradients -- --set train.label_smoothing=0.1
check encoder -- --set model.arch=encoder
check decoder_sinusoidal_rmsnorm_silu_untied -- --set model.positions=sinusoidal \
  --set model.norm=rmsnorm --set model.norm_eps=1e-6 --set model.activation=silu \
  --set model.tie_embeddings=false
check switch_top1 --gradients -- $(moe switch_top1) --set moe.jitter=0 --set moe.z_loss=1e-3 \
  --set train.label_smoothing=0.1
check switch_top1_silu_experts --gradients -- $(moe switch_top1) --set moe.jitter=0 \
  --set model.activation=silu  # GLU experts take the model's activation
check gshard_top2 -- $(moe gshard_top2) --set moe.expert_kind=ffn --set moe.group_size=16
check noisy_topk -- $(moe noisy_topk) --set moe.every=1
check expert_choice --gradients -- $(moe expert_choice)
check expert_choice_contiguous -- $(moe expert_choice) --set moe.expert_choice.grouping=contiguous
check expert_choice_capped -- $(moe expert_choice) --set moe.expert_choice.max_experts_per_token=2
check encoder_expert_choice -- $(moe expert_choice) --set model.arch=encoder
