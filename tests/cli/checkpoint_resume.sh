#!/usr/bin/env bash
# checkpoint_resume.sh BIN CONFIG: stop (SIGTERM) and resume is bit-identical to an
# uninterrupted run, on 1 rank and on 2 ranks with ep = 2; a checkpoint resumes on
# another layout; kill -9 at several points of a save resumes from the last
# committed step; corrupt checkpoints are refused with exit 5 naming the file; a
# changed sequence length is refused with exit 2 listing the field; NaN on one
# rank makes every rank skip (or abort) alike.
set -u
source "$(dirname "$0")/lib.sh" "$1" "$2"
S=(--set train.steps=10 --set run.log_every=1 --set train.eval_every=5 --set train.eval_batches=0
   --set moe.num_experts=4 --set moe.router=gshard_top2 --set checkpoint.every=4)
fail() { echo "FAIL: $*"; exit 1; }
train1() { "$bin" train -c "$cfg" "${S[@]}" "$@"; }
train2() { bash "$here/mpirun.sh" 2 -x SWITCHYARD_INJECT_FAULT "$bin" train -c "$cfg" "${S[@]}" --set parallel.expert_parallel=2 "$@"; }
same() {  # same RUN_A RUN_B: metrics (without timings) and final weights identical
  "$py" - "$1" "$2" <<'PY' || fail "$1 and $2 differ"
import json, sys
def rows(d):
    return [{k: v for k, v in json.loads(l).items()
             if k not in ("tokens_per_s", "gflops") and "a2a" not in k and "rank_load" not in k
             and "seconds" not in k and "share" not in k}
            for l in open(d + "/metrics.jsonl")]
a, b = rows(sys.argv[1]), rows(sys.argv[2])
assert len(a) == 10 and a == b, (len(a), len(b))
PY
  for f in "$1"/model*.safetensors; do cmp -s "$f" "$2/$(basename "$f")" || fail "$(basename "$f") differs"; done
}
expect() {  # expect CODE PATTERN CMD...
  local want=$1 pattern=$2; shift 2
  local out code
  out=$("$@" 2>&1); code=$?
  [ "$code" = "$want" ] || { echo "$out" | tail -5; fail "exit $code, want $want: $*"; }
  grep -qF -- "$pattern" <<<"$out" || { echo "$out" | tail -5; fail "message lacks: $pattern"; }
}

# 1 rank: uninterrupted, and stopped by SIGTERM after step 3 then resumed.
train1 --set run.dir="$dir/a" >"$dir/a.log" 2>&1 || fail "run a"
export SWITCHYARD_INJECT_FAULT="rank=0,step=2,term"
expect 3 "stopped by a signal after step 3" train1 --set run.dir="$dir/b"
unset SWITCHYARD_INJECT_FAULT
train1 --set run.dir="$dir/b" --resume auto >"$dir/b2.log" 2>&1 || fail "resume b"
same "$dir/a" "$dir/b"
echo "ok: SIGTERM + resume on 1 rank is bit-identical"
[ "$(ls "$dir/a/checkpoints" | grep -c step_)" = 3 ] || fail "keep_last 3 should keep steps 4, 8, 10"
train1 --set run.dir="$dir/keep" --set checkpoint.keep_last=1 >/dev/null 2>&1 || fail "keep_last run"
[ "$(ls "$dir/keep/checkpoints" | grep step_)" = step_0000010 ] || fail "keep_last 1 kept $(ls "$dir/keep/checkpoints")"

# 2 ranks, ep = 2: the same, with the signal on rank 1 only.
SWITCHYARD_INJECT_FAULT= train2 --set run.dir="$dir/c" >"$dir/c.log" 2>&1 || fail "run c"
export SWITCHYARD_INJECT_FAULT="rank=1,step=5,term"
expect 3 "stopped by a signal after step 6" train2 --set run.dir="$dir/d"
export SWITCHYARD_INJECT_FAULT=
train2 --set run.dir="$dir/d" --resume auto >"$dir/d2.log" 2>&1 || fail "resume d"
same "$dir/c" "$dir/d"
# Expert choice carries training state (its evaluation thresholds): the same holds.
export SWITCHYARD_INJECT_FAULT=
train2 --set run.dir="$dir/ec" --set moe.router=expert_choice >/dev/null 2>&1 || fail "run ec"
export SWITCHYARD_INJECT_FAULT="rank=0,step=2,term"
expect 3 "stopped by a signal after step 3" train2 --set run.dir="$dir/ec2" --set moe.router=expert_choice
export SWITCHYARD_INJECT_FAULT=
train2 --set run.dir="$dir/ec2" --set moe.router=expert_choice --resume auto >/dev/null 2>&1 || fail "resume ec"
same "$dir/ec" "$dir/ec2"
echo "ok: SIGTERM on one rank + resume on 2 ranks (ep = 2) is bit-identical (gshard_top2, expert_choice)"
"$py" "$here/../../scripts/load_safetensors.py" "$dir/c/checkpoints/step_0000010" >"$dir/np.txt" ||
  fail "numpy could not load a sharded checkpoint"
grep -q "blocks.1.moe.experts.3.w_out" "$dir/np.txt" || fail "sharded checkpoint lacks expert 3"

# Another layout: the 2-rank checkpoint of step 4 on 1 rank accumulating 2 micro-batches.
train1 --set run.dir="$dir/e" --set train.grad_accum=2 --resume "$dir/c/checkpoints/step_0000008" \
  >"$dir/e.log" 2>&1 || { tail "$dir/e.log"; fail "resume on another layout"; }
"$py" - "$dir/c" "$dir/e" <<'PY' || fail "layout change diverged"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")]
b = [json.loads(l) for l in open(sys.argv[2] + "/metrics.jsonl")]
assert [r["step"] for r in b] == [8, 9], [r["step"] for r in b]
for x, y in zip(a[8:], b):
    assert abs(x["loss"] - y["loss"]) / x["loss"] < 1e-5, (x["loss"], y["loss"])
PY
echo "ok: a 2-rank checkpoint resumes on 1 rank"

# kill -9 inside the save of step 8: the run resumes from step 4 and ends as if never stopped.
for point in after_shards before_rename before_latest; do
  SWITCHYARD_CRASH_IN_SAVE="$point@8" train1 --set run.dir="$dir/k-$point" >/dev/null 2>&1
  [ $? = 137 ] || fail "crash at $point did not kill the run"
  latest=$(cat "$dir/k-$point/checkpoints/latest")
  [ "$latest" = step_0000004 ] || [ "$point" = before_latest ] || fail "latest is $latest after a crash at $point"
  train1 --set run.dir="$dir/k-$point" --resume auto >"$dir/k-$point.log" 2>&1 || fail "resume after crash at $point"
  same "$dir/a" "$dir/k-$point"
done
echo "ok: kill -9 during a save (3 points) → resume from the last committed checkpoint, bit-identical"

# Corruption: refused with exit 5, naming the file, by verify and by train --resume.
ck="$dir/a/checkpoints/step_0000008"
cp -r "$ck" "$dir/flip"
printf '\x55' | dd of="$dir/flip/model-rank-0.safetensors" bs=1 seek=200 conv=notrunc status=none
expect 5 "model-rank-0.safetensors' is corrupt" "$bin" verify "$dir/flip"
expect 5 "model-rank-0.safetensors' is corrupt" train1 --set run.dir="$dir/x" --resume "$dir/flip"
cp -r "$ck" "$dir/trunc"
truncate -s 100 "$dir/trunc/optimizer-rank-0.safetensors"
expect 5 "optimizer-rank-0.safetensors' is corrupt" "$bin" verify "$dir/trunc"
cp -r "$ck" "$dir/missing"
rm "$dir/missing/model-rank-0.safetensors"
expect 5 "model-rank-0.safetensors' is missing" "$bin" verify "$dir/missing"
cp -r "$ck" "$dir/version"
sed -i 's/"version": 2/"version": 99/' "$dir/version/state.json"
expect 5 "checkpoint format version 99" "$bin" verify "$dir/version"
expect 2 "train.seq_len: 16 → 8" train1 --set run.dir="$dir/a" --resume auto --set train.seq_len=8
echo "ok: corruption matrix refused with exit 5; a changed field refused with exit 2"

# NaN on one rank: every rank skips the step (skip mode) or aborts (default).
export SWITCHYARD_INJECT_FAULT="rank=1,step=3,nan"
train2 --set run.dir="$dir/n" --set train.skip_non_finite=true >"$dir/n.log" 2>&1 || fail "skip mode"
grep -q '"skipped_steps":1' "$dir/n/metrics.jsonl" || fail "skipped step not counted"
out=$(train2 --set run.dir="$dir/n2" 2>&1); code=$?
[ "$code" = 4 ] || { echo "$out" | tail -3; fail "abort mode exit $code, want 4"; }
echo "ok: NaN on one rank → same decision on every rank (skip, or abort with exit 4)"
