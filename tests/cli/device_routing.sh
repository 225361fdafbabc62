#!/usr/bin/env bash
# device_routing.sh BIN CONFIG: moe.device_routing through the whole program on the
# CPU backend (its Thrust build of the device algorithms): for switch_top1,
# gshard_top2, noisy_topk and expert_choice, 12 training steps with evaluation every 6 give the
# losses, evaluation losses and per-layer routing statistics of host routing (1e-6
# relative), the step breakdown counts no host synchronisation inside the MoE
# layers, and capped expert choice (host only) is refused (exit 2, the key named).
# Exits 77 (ctest: skipped) in a build without Thrust.
set -eu
source "$(dirname "$0")/lib.sh" "$@"
S=(--set train.steps=12 --set run.log_every=1 --set train.eval_every=6 --set checkpoint.every=0
   --set model.n_layers=2 --set moe.num_experts=4)
for router in switch_top1 gshard_top2 noisy_topk expert_choice; do
  for on in false true; do
    out="$dir/$router-$on.out"
    "$bin" train -c "$cfg" "${S[@]}" --set moe.router=$router --set moe.device_routing=$on \
      --set run.dir="$dir/$router-$on" >"$out" 2>&1 || {
      if grep -q "cannot route" "$out"; then echo "skipped: this build cannot route on the CPU backend"; exit 77; fi
      echo "FAIL: $router device_routing=$on:"; tail -20 "$out"; exit 1; }
  done
  $py - "$dir/$router-false/metrics.jsonl" "$dir/$router-true/metrics.jsonl" "$router" <<'PY'
import json, sys
host = [json.loads(l) for l in open(sys.argv[1])]
dev = [json.loads(l) for l in open(sys.argv[2])]
name = sys.argv[3]
def pick(rows, key): return [r for r in rows if key in r]
for key in ("loss", "val_nll"):
    a, b = pick(host, key), pick(dev, key)
    assert len(a) == len(b) > 0, f"{name}: {len(a)} vs {len(b)} records with {key}"
    for x, y in zip(a, b):
        rel = abs(x[key] - y[key]) / abs(x[key])
        assert rel <= 1e-6, f"{name} {key} step {x.get('step')}: host {x[key]} device {y[key]} (rel {rel:.1e})"
# Per-layer routing statistics of the last step that logged them.
a, b = pick(host, "moe")[-1]["moe"], pick(dev, "moe")[-1]["moe"]
def layers(m): return m  # one record per MoE layer
la, lb = layers(a), layers(b)
assert len(la) == len(lb) > 0, f"{name}: moe layers {len(la)} vs {len(lb)}"
for x, y in zip(la, lb):
    for k, v in x.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            assert abs(v - y[k]) <= 1e-6 * (1 + abs(v)), f"{name} moe {k}: host {v} device {y[k]}"
print(f"ok: {name}: device routing gives the host's losses, evaluation and statistics")
PY
done
# The step breakdown: no device → host read inside the MoE layers.
"$bin" bench -c "$cfg" --set model.n_layers=2 --set moe.num_experts=4 --set moe.router=expert_choice \
  --set moe.device_routing=true --benchmark=--benchmark_filter=none >"$dir/bench.out" 2>&1 || {
  echo "FAIL: bench:"; tail -20 "$dir/bench.out"; exit 1; }
grep -q "host synchronisations inside the MoE layers: 0 per step" "$dir/bench.out" || {
  echo "FAIL: the MoE layers read from the device:"; grep -i "synchronisations" "$dir/bench.out"; exit 1; }
set +e
"$bin" train -c "$cfg" "${S[@]}" --set moe.router=expert_choice --set moe.expert_choice.max_experts_per_token=2 \
  --set moe.device_routing=true --set run.dir="$dir/refused" >"$dir/refused.out" 2>&1
rc=$?
set -e
[ $rc -eq 2 ] && grep -q "capped expert choice routes on the host only" "$dir/refused.out" || {
  echo "FAIL: capped expert choice with device routing: exit $rc"; tail -5 "$dir/refused.out"; exit 1; }
echo "ok: host synchronisations counted (0 per step), capped expert choice refused"
