#!/usr/bin/env bash
# Weak-scaling table on this machine: the same per-rank micro-batch on 1, 2, 4 and 8
# ranks, data-parallel alone (ep 1, zero 0) and with expert parallelism 2 and ZeRO-1
# (dp = ranks / 2). Ranks beyond the cores oversubscribe them: this measures traffic
# and overheads, not speed-up. Per rank and step it prints the gradient-sync bytes
# (they must not grow with the number of ranks), the share of the step spent
# waiting for gradient reductions after the backward pass, the all-to-all bytes and
# share, and Adam's state.
#   bash scripts/scaling_cpu.sh [BIN] [RANKS...]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/switchyard}
shift || true
ranks=("$@")
[ ${#ranks[@]} -gt 0 ] || ranks=(1 2 4 8)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
flags=(--oversubscribe)
[ "$(id -u)" = 0 ] && flags+=(--allow-run-as-root)
common=(--config configs/bench_moe_cpu.yaml --set train.steps=12 --set run.log_every=1
        --set train.eval_every=0 --set train.eval_batches=1 --set train.batch_size=4)
cores=$(nproc)
printf "| ranks | ep × dp | zero | tokens/s (all ranks) | grad-sync MB per rank per step | grad-sync share of step (not hidden) | all-to-all MB per rank | all-to-all share | Adam state MB per rank |\n"
printf "|---|---|---|---|---|---|---|---|---|\n"
for layout in "1 0" "2 1"; do
  read -r ep zero <<<"$layout"
  for np in "${ranks[@]}"; do
    [ "$np" -ge "$ep" ] || continue
    threads=$(( cores / np > 0 ? cores / np : 1 ))
    name="np$np-ep$ep-z$zero"
    args=("${common[@]}" --set run.dir="$out/$name" --set threads=$threads --set parallel.expert_parallel=$ep
          --set parallel.zero=$zero)
    if [ "$np" = 1 ]; then "$bin" train "${args[@]}" >"$out/$name.log" 2>&1
    else mpirun -np "$np" "${flags[@]}" "$bin" train "${args[@]}" >"$out/$name.log" 2>&1; fi ||
      { tail "$out/$name.log"; exit 1; }
    "$py" - "$out/$name/metrics.jsonl" "$np" "$ep" "$zero" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])][2:]  # skip warm-up steps
mean = lambda k: sum(r.get(k, 0) for r in rows) / len(rows)
np_, ep, zero = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
print(f"| {np_} | {ep} × {np_ // ep} | {zero} | {mean('tokens_per_s'):,.0f} | {mean('grad_sync_bytes_per_rank') / 1e6:.2f} "
      f"| {100 * mean('grad_sync_share_of_step'):.1f}% | {mean('a2a_bytes_per_rank') / 1e6:.2f} "
      f"| {100 * mean('a2a_share_of_step'):.1f}% | {mean('optimizer_bytes_per_rank') / 1e6:.2f} |")
PY
  done
done
