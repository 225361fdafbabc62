#!/usr/bin/env bash
# run_dir_guards.sh BIN CONFIG: what protects a run directory and its files.
#  - training into a directory that holds a run needs --resume or --fresh (exit 2,
#    nothing touched); --fresh moves the old run aside;
#  - a refused resume (a changed model, data or expert-structure key) changes
#    nothing: config.yaml, metrics, log and checkpoints stay byte for byte;
#  - --resume auto without a usable `latest` resumes from the newest checkpoint
#    that verifies (and says so), bit-identical to a run never stopped; when none
#    verifies it refuses (exit 5) instead of starting over;
#  - a directory locked by another switchyard is refused (exit 2, naming the
#    holder); a stale lock is taken over; a read-only directory is exit 2.
set -u
source "$(dirname "$0")/lib.sh" "$1" "$2"
S=(--set train.steps=8 --set run.log_every=1 --set checkpoint.every=2 --set checkpoint.keep_last=10
   --set train.eval_batches=0)
fail() { echo "FAIL: $*"; exit 1; }
train() { "$bin" train -c "$cfg" "${S[@]}" "$@"; }
expect() {  # expect CODE PATTERN CMD...
  local want=$1 pattern=$2; shift 2
  local out code
  out=$("$@" 2>&1); code=$?
  [ "$code" = "$want" ] || { echo "$out" | tail -5; fail "exit $code, want $want: $*"; }
  grep -qF -- "$pattern" <<<"$out" || { echo "$out" | tail -5; fail "message lacks: $pattern"; }
}
snapshot() { (cd "$1" && find . -type f ! -name .switchyard.lock -print0 | sort -z | xargs -0 sha256sum); }
strip_metrics() {
  "$py" -c 'import json,sys
for l in open(sys.argv[1]):
    d=json.loads(l); [d.pop(k, None) for k in ("tokens_per_s", "gflops")]; print(json.dumps(d, sort_keys=True))' "$1"
}

train --set run.dir="$dir/a" >"$dir/a.log" 2>&1 || fail "reference run"

# --- 5. A directory that holds a run: refused without --resume / --fresh. ------------------
snapshot "$dir/a" >"$dir/a.before"
expect 2 "already holds a run" train --set run.dir="$dir/a"
expect 2 "--resume auto" train --set run.dir="$dir/a" --set optim.lr=1e-2
snapshot "$dir/a" >"$dir/a.after"
diff -q "$dir/a.before" "$dir/a.after" >/dev/null || fail "a refused start changed the run directory"
expect 2 "exclude each other" train --set run.dir="$dir/a" --fresh --resume auto
cp -r "$dir/a" "$dir/f"
train --set run.dir="$dir/f" --fresh >"$dir/f.log" 2>&1 || fail "--fresh"
moved=$(ls -d "$dir"/f/replaced-* | head -1)
[ -n "$moved" ] && [ -f "$moved/metrics.jsonl" ] && [ -d "$moved/checkpoints" ] ||
  fail "--fresh did not keep the previous run aside"
cmp -s "$moved/metrics.jsonl" "$dir/a/metrics.jsonl" || fail "the run moved aside was altered"
diff <(strip_metrics "$dir/f/metrics.jsonl") <(strip_metrics "$dir/a/metrics.jsonl") >/dev/null ||
  fail "--fresh did not start over"
echo "ok: a run directory that holds a run needs --resume or --fresh; --fresh moves it aside"

# --- 7. A refused resume changes nothing. ------------------------------------------------------
train --set run.dir="$dir/m" --set moe.num_experts=4 >/dev/null 2>&1 || fail "moe reference run"
for change in model.activation=silu model.positions=sinusoidal model.norm=rmsnorm \
              model.tie_embeddings=false data.eval_fraction=0.2 data.synthetic_branching=3 \
              data.synthetic_tokens=4096 moe.expert_kind=ffn moe.every=1 moe.expert_d_ff=32; do
  key=${change%%=*}
  run=(--set run.dir="$dir/a")
  case $key in moe.*) run=(--set run.dir="$dir/m" --set moe.num_experts=4) ;; esac
  run_dir=${run[1]#run.dir=}
  snapshot "$run_dir" >"$dir/before"
  expect 2 "$key:" train "${run[@]}" --resume auto --set "$change"
  snapshot "$run_dir" >"$dir/after"
  diff -q "$dir/before" "$dir/after" >/dev/null || fail "a refused resume ($change) changed the run directory"
done
echo "ok: resume refuses a changed activation, positions, norm, tied embeddings, data split and synthetic data, expert kind, MoE placement and expert width (exit 2, named); nothing changed"

# --- 6. `latest` missing or empty: the newest checkpoint that verifies. ---------------------
export SWITCHYARD_INJECT_FAULT="rank=0,step=4,term"
expect 3 "stopped by a signal after step 5" train --set run.dir="$dir/b"
unset SWITCHYARD_INJECT_FAULT
ls "$dir/b/checkpoints" | grep -q step_0000005 || fail "no checkpoint of step 5"
rm "$dir/b/checkpoints/latest"
expect 0 "checkpoints/latest is missing; resuming from the newest checkpoint that verifies, step_0000005" \
  train --set run.dir="$dir/b" --resume auto
diff <(strip_metrics "$dir/b/metrics.jsonl") <(strip_metrics "$dir/a/metrics.jsonl") >/dev/null ||
  fail "resuming without latest is not bit-identical"
cmp -s "$dir/b/model.safetensors" "$dir/a/model.safetensors" || fail "final weights differ"
# Empty latest, newest checkpoint corrupt: the one before it, saying why.
cp -r "$dir/a" "$dir/c" && rm -f "$dir/c/.switchyard.lock"
: >"$dir/c/checkpoints/latest"
printf 'x' | dd of="$dir/c/checkpoints/step_0000008/model-rank-0.safetensors" bs=1 seek=300 conv=notrunc status=none
expect 0 "resuming from the newest checkpoint that verifies, step_0000006 (refused: step_0000008" \
  train --set run.dir="$dir/c" --resume auto --set train.steps=8
# Nothing verifies: refused, nothing overwritten.
cp -r "$dir/a" "$dir/d" && rm "$dir/d/checkpoints/latest"
for c in "$dir"/d/checkpoints/step_*; do echo garbage >>"$c/state.json"; done
snapshot "$dir/d" >"$dir/d.before"
expect 5 "no checkpoint in" train --set run.dir="$dir/d" --resume auto
snapshot "$dir/d" >"$dir/d.after"
diff -q "$dir/d.before" "$dir/d.after" >/dev/null || fail "a refused resume changed the run directory"
echo "ok: --resume auto without latest takes the newest checkpoint that verifies (bit-identical), refuses when none does"

# --- 8. Locks. --------------------------------------------------------------------------------
mkdir -p "$dir/l"
flock -o "$dir/l/.switchyard.lock" sleep 30 &  # -o: flock alone holds it
holder=$!
sleep 0.5
expect 2 "is in use by another switchyard" train --set run.dir="$dir/l"
kill $holder; wait $holder 2>/dev/null
echo "PID 999999 on host gone since 2026-01-01T00:00:00Z: switchyard train" >"$dir/l/.switchyard.lock"
expect 0 "a lock left by a process that is gone (PID 999999" train --set run.dir="$dir/l"
[ ! -s "$dir/l/.switchyard.lock" ] || fail "a cleanly ended run left its lock file filled: $(cat "$dir/l/.switchyard.lock")"
# Two trainers at once on one directory: the second is refused by name, not by a disk error.
"$bin" train -c "$cfg" "${S[@]}" --set run.dir="$dir/two" --set train.steps=1000000 \
  --set checkpoint.every=0 >"$dir/two1.log" 2>&1 &
first=$!
for _ in $(seq 100); do [ -s "$dir/two/.switchyard.lock" ] && break; sleep 0.1; done
grep -q "^PID $first on host" "$dir/two/.switchyard.lock" || fail "the lock does not name its holder"
expect 2 "is in use by another switchyard (PID $first" train --set run.dir="$dir/two" --resume auto
kill -TERM $first; wait $first; code=$?
[ $code = 3 ] || fail "the first trainer ended with $code after SIGTERM, want 3"
if [ "$(id -u)" != 0 ]; then
  mkdir -p "$dir/ro" && chmod a-w "$dir/ro"
  expect 2 "cannot use '$dir/ro' for training" train --set run.dir="$dir/ro"
fi
mkdir -p "$dir/ro2" && touch "$dir/ro2/file"
expect 2 "run.dir: cannot create '$dir/ro2/file/run'" train --set run.dir="$dir/ro2/file/run"
echo "ok: a held lock is refused naming its holder, a stale one taken over; an unusable run.dir is exit 2"
