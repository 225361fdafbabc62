#!/usr/bin/env bash
# Weak-scaling table on this machine: the same per-rank micro-batch on 1, 2 and 4
# ranks (expert parallelism = ranks; 4 ranks oversubscribe 2 cores), printing
# tokens/s, the all-to-all share of the step and bytes moved per step.
#   bash scripts/scaling_cpu.sh [BIN]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/switchyard}
out=$(mktemp -d)
flags=(--oversubscribe)
[ "$(id -u)" = 0 ] && flags+=(--allow-run-as-root)
common=(--config configs/bench_moe_cpu.yaml --set train.steps=12 --set run.log_every=1
        --set train.eval_every=0 --set train.eval_batches=1 --set train.batch_size=4)
printf "| ranks | ep | threads/rank | tokens/s (all ranks) | all-to-all share of step | all-to-all bytes per rank per step |\n"
printf "|-------|----|--------------|----------------------|--------------------------|------------------------------------|\n"
for np in 1 2 4; do
  threads=$((np == 1 ? 2 : 1))
  args=("${common[@]}" --set run.dir="$out/np$np" --set threads=$threads --set parallel.expert_parallel=$np)
  if [ "$np" = 1 ]; then "$bin" train "${args[@]}" >"$out/np$np.log" 2>&1
  else mpirun -np "$np" "${flags[@]}" "$bin" train "${args[@]}" >"$out/np$np.log" 2>&1; fi
  python3 - "$out/np$np/metrics.jsonl" "$np" "$threads" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])][2:]  # skip warm-up steps
tps = sum(r["tokens_per_s"] for r in rows) / len(rows)
share = sum(r.get("a2a_share_of_step", 0) for r in rows) / len(rows)
by = sum(r.get("a2a_bytes_per_rank", 0) for r in rows) / len(rows)
print(f"| {sys.argv[2]} | {sys.argv[2]} | {sys.argv[3]} | {tps:,.0f} | {100*share:.1f}% | {by/1e6:.2f} MB |")
PY
done
rm -rf "$out"
