#!/usr/bin/env bash
# moe_end_to_end.sh BIN CONFIG: a short MoE run per router writes per-layer routing
# statistics; expert choice in a decoder reports both evaluation rules; a run with
# random routing decisions repeats bit for bit.
set -eu
source "$(dirname "$0")/lib.sh" "$1" "$2"
run() {  # run NAME ROUTER [SETS...]
  local name=$1 router=$2; shift 2
  "$bin" train -c "$cfg" --set run.dir="$dir/$name" --set moe.num_experts=4 --set moe.router="$router" \
    --set train.steps=12 --set train.eval_every=6 --set run.log_every=3 "$@" >"$dir/$name.out" 2>&1 ||
    { cat "$dir/$name.out"; echo "FAIL: $name"; exit 1; }
}
for r in switch_top1 gshard_top2 noisy_topk expert_choice; do run "$r" "$r"; done
run capped expert_choice --set moe.expert_choice.max_experts_per_token=2
run gshard_again gshard_top2 --set moe.jitter=0.1
run gshard_again2 gshard_top2 --set moe.jitter=0.1
"$py" - "$dir" <<'PY'
import json, os, sys
d = sys.argv[1]
def rows(name):
    return [json.loads(l) for l in open(os.path.join(d, name, "metrics.jsonl"))]
for name in ["switch_top1", "gshard_top2", "noisy_topk", "expert_choice", "capped"]:
    r = rows(name)
    m = r[-1]["moe"]
    assert len(m) == 1 and m[0]["layer"] == 1, (name, m)
    for key in ["tokens_per_expert", "experts_per_token", "router_entropy", "mean_gate", "dropped_fraction"]:
        assert key in m[0], (name, key)
    assert sum(m[0]["experts_per_token"]) == 32, (name, m[0]["experts_per_token"])  # 2 × 16 tokens
ec = rows("expert_choice")[-1]
assert "val_ppl_groups" in ec and "val_ppl_threshold" in ec, ec.keys()
assert ec["moe"][0]["mean_experts_per_token"] == 2.0
assert max(rows("capped")[-1]["moe"][0]["experts_per_token"][3:]) == 0  # never more than b = 2
assert "balance_loss" in rows("switch_top1")[-1]["moe"][0]
assert "importance_cv2" in rows("noisy_topk")[-1]["moe"][0]
strip = lambda rs: [{k: v for k, v in r.items() if k not in ("tokens_per_s", "gflops")} for r in rs]
assert strip(rows("gshard_again")) == strip(rows("gshard_again2")), "random routing is not reproducible"
print("ok: MoE runs for every router, statistics, both EC evaluation rules, reproducible")
PY
