#!/usr/bin/env bash
# prepare_train_eval.sh BIN: a generated corpus goes through prepare → train →
# eval; the weights load with numpy alone; damaged inputs exit 2 naming the file.
set -eu
source "$(dirname "$0")/lib.sh" "$1"
root=$(cd "$here/../.." && pwd)
cd "$dir"
"$py" - <<'PY'
import random
random.seed(1)
syl = ["ka", "lo", "mi", "ne", "ru", "ta", "so", "vi", "de", "pa", "gu", "be", "fo", "zi"]
with open("corpus.txt", "w") as f:
    for d in range(60):
        for s in range(8):
            words = ["".join(random.choice(syl) for _ in range(random.randint(1, 3))) for _ in range(10)]
            f.write(" ".join(words) + " .\n")
        f.write("\n")
PY
cfg="$here/small_corpus.yaml"
sets=(--set prepare.input=corpus.txt --set data.path=prepared --set run.dir=run)
fail() { echo "FAIL: $*"; exit 1; }

"$bin" prepare -c "$cfg" "${sets[@]}" >prepare.log 2>&1 || { cat prepare.log; fail "prepare"; }
[ -f prepared/manifest.json ] && [ -f prepared/train-00000.bin ] || fail "prepare wrote no shards"
ls -d prepared.tmp-* 2>/dev/null && fail "prepare left its temporary folder"
# A prepared dataset is never rewritten in place (runs memory-map its shards).
sum_before=$(sha256sum prepared/* | sha256sum)
code=0; out=$("$bin" prepare -c "$cfg" "${sets[@]}" 2>&1) || code=$?
[ $code = 2 ] && grep -q "already holds a prepared dataset" <<<"$out" || { echo "$out"; fail "prepare over a dataset"; }
[ "$(sha256sum prepared/* | sha256sum)" = "$sum_before" ] || fail "a refused prepare changed the dataset"
"$bin" train -c "$cfg" "${sets[@]}" >train.log 2>&1 || { cat train.log; fail "train"; }
grep -q '"val_word_ppl"' run/metrics.jsonl || fail "no per-word perplexity in metrics"
"$bin" eval --run run --split test >eval.log 2>&1 || { cat eval.log; fail "eval"; }
grep -q "test: nll" eval.log || fail "eval printed no result"
"$py" -c 'import json; j=json.load(open("run/eval_test.json")); assert j["word_ppl"] > 1 and j["targets"] > 0, j'
"$py" "$root/scripts/load_safetensors.py" run/model.safetensors >load.log || fail "numpy could not load the weights"
grep -q "blocks.1.ffn.w_gate" load.log || fail "weights lack blocks.1.ffn.w_gate"

expect2() {  # expect2 WHAT PATTERN CMD...: exit code 2 and PATTERN in the output
  local what=$1 pattern=$2; shift 2
  local out code
  out=$("$@" 2>&1); code=$?
  [ "$code" = 2 ] || { echo "$out"; fail "$what: exit $code, want 2"; }
  grep -qF -- "$pattern" <<<"$out" || { echo "$out"; fail "$what: message lacks: $pattern"; }
  echo "ok: $what → exit 2"
}
set +e
expect2 "missing corpus" "prepare.input: 'absent.txt' does not exist" \
  "$bin" prepare -c "$cfg" "${sets[@]}" --set prepare.input=absent.txt
printf 'ok text\n\xff broken\n' >bad.txt
expect2 "invalid UTF-8" "'bad.txt' is not valid UTF-8 at byte offset 8" \
  "$bin" prepare -c "$cfg" "${sets[@]}" --set prepare.input=bad.txt
expect2 "vocabulary mismatch" "prepared with a 200-piece tokenizer, but model.vocab_size is 256" \
  "$bin" train -c "$cfg" "${sets[@]}" --set model.vocab_size=256
expect2 "window larger than the data" "fewer than one window" \
  "$bin" train -c "$cfg" "${sets[@]}" --set model.max_seq=1000 --set train.seq_len=1000
head -c 100 prepared/val-00000.bin >prepared/val-short && mv prepared/val-short prepared/val-00000.bin
expect2 "truncated shard" "prepared/val-00000.bin': size 100 bytes disagrees with its header" \
  "$bin" train -c "$cfg" "${sets[@]}"
printf 'NOTSHARD' | dd of=prepared/val-00000.bin conv=notrunc status=none
expect2 "wrong magic" "val-00000.bin': wrong magic at byte 0" "$bin" train -c "$cfg" "${sets[@]}"
echo "ok: prepare → train → eval, numpy load, bad inputs"
