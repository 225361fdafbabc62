#!/usr/bin/env bash
# zero_resume.sh BIN CONFIG: checkpoints of a ZeRO-1 run (Adam's state sharded
# over the ranks) hold logical tensors and reshard on resume. A 12-step MoE run on
# 4 ranks (dp 4, zero 1) is the reference:
#   - stopped by SIGTERM and resumed on the same layout: bit for bit;
#   - its step-4 checkpoint resumed on 2 ranks (zero 1), whose step-8 checkpoint is
#     resumed on 1 rank (zero 0): dp 4 → 2 → 1, to 1e-5 (another layout sums in
#     another order);
#   - its step-4 checkpoint resumed on 4 ranks with zero 0, and an expert-parallel
#     run (ep 2, dp 2, zero 1) resumed on 2 ranks with ep 2 (dp 1): to 1e-5;
#   - a zero 0 checkpoint (2 ranks) resumed with zero 1 on 4 ranks: to 1e-5.
# The global batch stays 4 micro-batches throughout (ranks × grad_accum).
set -u
source "$(dirname "$0")/lib.sh" "$1" "$2"
S=(--set train.steps=12 --set run.log_every=1 --set train.eval_every=0 --set train.eval_batches=1
   --set moe.num_experts=4 --set moe.router=gshard_top2 --set checkpoint.every=4 --set checkpoint.keep_last=5
   --set parallel.check_replicas_every=1)
fail() { echo "FAIL: $*"; exit 1; }
train() {  # train NP ACCUM ZERO EP RUN_DIR ARGS...
  local np=$1 accum=$2 zero=$3 ep=$4 run=$5; shift 5
  local cmd=("$bin" train -c "$cfg" "${S[@]}" --set train.grad_accum="$accum" --set parallel.zero="$zero"
             --set parallel.expert_parallel="$ep" --set run.dir="$dir/$run" "$@")
  if [ "$np" = 1 ]; then "${cmd[@]}"
  else bash "$here/mpirun.sh" "$np" -x SWITCHYARD_INJECT_FAULT "${cmd[@]}"; fi >>"$dir/$run.log" 2>&1
}
export SWITCHYARD_INJECT_FAULT=
compare() {  # compare REF RUN TOLERANCE: losses of the steps RUN logged and final weights
  "$py" - "$dir/$1" "$dir/$2" "$3" <<'PY' || fail "$2 differs from $1"
import json, os, struct, sys
import numpy as np
ref, run, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
def rows(d):
    return {r["step"]: r for r in map(json.loads, open(d + "/metrics.jsonl"))}
def load(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    h = json.loads(data[8:8 + n]); h.pop("__metadata__", None)
    return {k: np.frombuffer(data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], dtype=np.float32)
            for k, v in h.items() if v["dtype"] == "F32"}
def weights(d):
    if os.path.exists(d + "/model.safetensors"):
        return load(d + "/model.safetensors")
    w = {}
    for f in sorted(os.listdir(d)):
        if f.startswith("model-rank-"):
            w.update(load(os.path.join(d, f)))
    return w
a, b = rows(ref), rows(run)
assert b and max(b) == 11, sorted(b)
for s, r in b.items():
    for k in ("loss", "nll", "grad_norm"):
        e = abs(r[k] - a[s][k]) / abs(a[s][k])
        assert (e == 0) if tol == 0 else (e < tol), (s, k, r[k], a[s][k], e)
wa, wb = weights(ref), weights(run)
assert sorted(wa) == sorted(wb)
for k in wa:
    if tol == 0:
        assert np.array_equal(wa[k], wb[k]), k
    else:
        e = np.linalg.norm((wa[k] - wb[k]).astype(np.float64)) / max(np.linalg.norm(wa[k].astype(np.float64)), 1e-30)
        assert e < tol, (k, e)
PY
}
ck() { echo "$dir/$1/checkpoints/step_$(printf %07d "$2")"; }

train 4 1 1 1 ref || fail "reference run (np 4, zero 1)"
# Same layout, stopped by SIGTERM on rank 2 after step 6 and resumed: bit for bit.
SWITCHYARD_INJECT_FAULT="rank=2,step=5,term" train 4 1 1 1 stop
[ $? = 3 ] || fail "the SIGTERM run did not stop with exit 3"
train 4 1 1 1 stop --resume auto || fail "resume on the same layout"
compare ref stop 0
echo "ok: zero 1 on 4 ranks: SIGTERM + resume is bit-identical"
# dp 4 → 2 → 1.
train 2 2 1 1 dp2 --resume "$(ck ref 4)" || fail "resume on 2 ranks"
compare ref dp2 1e-5
train 1 4 0 1 dp1 --resume "$(ck dp2 8)" || fail "resume on 1 rank"
compare ref dp1 1e-5
echo "ok: a zero 1 checkpoint of 4 ranks resumes on 2 ranks, whose checkpoint resumes on 1 (1e-5)"
# zero 1 → zero 0 on 4 ranks, and zero 0 → zero 1.
train 4 1 0 1 z0 --resume "$(ck ref 4)" || fail "resume with zero 0"
compare ref z0 1e-5
train 2 2 0 1 twozero0 --set train.steps=4 || fail "zero 0 run on 2 ranks"
train 4 1 1 1 z1 --resume "$(ck twozero0 4)" || fail "zero 0 checkpoint resumed with zero 1"
compare ref z1 1e-5
echo "ok: zero 1 ↔ zero 0 across resume (1e-5)"
# Expert parallelism: ep 2 × dp 2 with zero 1, resumed on ep 2 × dp 1.
train 4 1 1 2 ep2 || fail "ep 2 × dp 2 run"
train 2 2 1 2 ep2dp1 --resume "$(ck ep2 4)" || fail "resume on ep 2 × dp 1"
compare ep2 ep2dp1 1e-5
compare ref ep2 1e-5
echo "ok: ep 2 × dp 2 with zero 1 resumes on ep 2 × dp 1 (1e-5), and equals dp 4 (1e-5)"
