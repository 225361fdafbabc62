#!/usr/bin/env bash
# hostile_inputs.sh BIN: bad input is exit 2 (or 5 for checkpoint files) with a
# message naming what and where, never exit 1 or a crash:
#  - paths with spaces, a comma and non-ASCII characters work through prepare →
#    train → eval;
#  - --config naming a directory; sizes that cannot fit (vocabulary 1e9, width 1e6,
#    batch 1e12): refused before anything is allocated or written;
#  - a read-only run directory;
#  - a token shard rewritten after prepare (its checksum no longer matches);
#  - `report` on metrics that hold null (what a run with train.skip_non_finite writes).
set -u
source "$(dirname "$0")/lib.sh" "$1"
cfg="$here/small_corpus.yaml"
fail() { echo "FAIL: $*"; exit 1; }
expect() {  # expect CODE PATTERN CMD...
  local want=$1 pattern=$2; shift 2
  local out code
  out=$("$@" 2>&1); code=$?
  [ "$code" = "$want" ] || { echo "$out" | tail -5; fail "exit $code, want $want: $*"; }
  grep -qF -- "$pattern" <<<"$out" || { echo "$out" | tail -5; fail "message lacks: $pattern"; }
}

# Paths with spaces, a comma and non-ASCII characters.
odd="$dir/a folder, with ünïcödé"
mkdir -p "$odd"
"$py" - "$odd/corpus text.txt" <<'PY'
import random, sys
random.seed(1)
syl = ["ka", "lo", "mi", "ne", "ru", "ta", "so", "vi", "de", "pa", "gu", "be", "fo", "zi"]
with open(sys.argv[1], "w") as f:
    for d in range(60):
        for s in range(8):
            words = ["".join(random.choice(syl) for _ in range(random.randint(1, 3))) for _ in range(10)]
            f.write(" ".join(words) + " .\n")
        f.write("\n")
PY
sets=(--set prepare.input="$odd/corpus text.txt" --set data.path="$odd/prepared data" --set run.dir="$odd/run ü"
      --set train.steps=4)
"$bin" prepare -c "$cfg" "${sets[@]}" >"$dir/p.log" 2>&1 || { cat "$dir/p.log"; fail "prepare with an odd path"; }
"$bin" train -c "$cfg" "${sets[@]}" >"$dir/t.log" 2>&1 || { cat "$dir/t.log"; fail "train with an odd path"; }
"$bin" eval --run "$odd/run ü" >"$dir/e.log" 2>&1 || { cat "$dir/e.log"; fail "eval with an odd path"; }
echo "ok: paths with spaces, a comma and non-ASCII characters work through prepare, train and eval"

# A config that is a directory; sizes that cannot fit.
expect 2 "is a directory" "$bin" train -c "$dir" --set run.dir="$dir/x"
for size in model.vocab_size=1000000000 "model.d_model=1000000" train.batch_size=1000000000000; do
  expect 2 "this config needs about" "$bin" train -c "$cfg" "${sets[@]}" --set run.dir="$dir/huge" --set "$size"
  [ ! -e "$dir/huge" ] || fail "$size: the run directory was created"
done
expect 2 "model.n_heads = 4: must divide model.d_model (1000001)" \
  "$bin" check-config -c "$cfg" --set model.d_model=1000001 --set model.n_heads=4
echo "ok: a config directory and sizes that cannot fit are exit 2, named, before anything is written"

# A read-only run directory.
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$dir/ro/run"
  expect 2 "Read-only file system" unshare --mount sh -c \
    "mount --bind -o ro '$dir/ro' '$dir/ro' && exec \"\$0\" \"\$@\"" "$bin" train -c "$cfg" "${sets[@]}" \
    --set run.dir="$dir/ro/run"
else
  mkdir -p "$dir/ro/run" && chmod a-w "$dir/ro/run"
  expect 2 "Permission denied" "$bin" train -c "$cfg" "${sets[@]}" --set run.dir="$dir/ro/run"
fi
echo "ok: a read-only run directory is exit 2"

# A token shard rewritten after prepare.
cp -r "$odd/prepared data" "$dir/changed"
printf '\x07' | dd of="$dir/changed/train-00000.bin" bs=1 seek=70 conv=notrunc status=none
expect 2 "train-00000.bin' does not match manifest.json" \
  "$bin" train -c "$cfg" "${sets[@]}" --set data.path="$dir/changed" --set run.dir="$dir/r2"
"$bin" train -c "$cfg" "${sets[@]}" --set data.path="$dir/changed" --set run.dir="$dir/r3" \
  --set data.verify_checksums=false >/dev/null 2>&1 || fail "the checksum opt-out did not run"
echo "ok: a rewritten token shard is refused by its checksum (exit 2, named); the opt-out skips it"

# report on metrics holding null (non-finite values of skipped steps).
SWITCHYARD_INJECT_FAULT="rank=0,step=1,nan" "$bin" train -c "$cfg" "${sets[@]}" --set run.dir="$dir/nan" \
  --set train.skip_non_finite=true --set run.log_every=1 --set train.eval_every=2 >/dev/null 2>&1 ||
  fail "a skip_non_finite run failed"
grep -q '"grad_norm":null' "$dir/nan/metrics.jsonl" || fail "the metrics hold no null to test with"
# A step whose loss itself was non-finite logs its loss, nll and evaluation as null too.
sed -i '2s/"nll":[^,]*/"nll":null/; 2s/"loss":[^,]*/"loss":null/; 2s/"val_ppl":[^,}]*/"val_ppl":null/' \
  "$dir/nan/metrics.jsonl"
grep -q '"nll":null' "$dir/nan/metrics.jsonl" || fail "could not write a null nll"
expect 0 "report" "$bin" report "$dir/nan" --no-plots
[ -s "$dir/nan/report.md" ] || fail "no report written"
echo "ok: report reads metrics that hold null"
