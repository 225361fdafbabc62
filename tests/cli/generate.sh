#!/usr/bin/env bash
# generate.sh BIN: `switchyard generate` and `fill-mask` on runs of a small prepared
# corpus (SentencePiece): greedy output repeats, a seed repeats its sample, a
# prompt file is one batch, --json carries every new token's experts, expert
# choice routes new tokens by its thresholds, an encoder fills masks; bad input
# exits 2 naming what is wrong.
set -u
source "$(dirname "$0")/lib.sh" "$1"
cd "$dir"
fail() { echo "FAIL: $*"; exit 1; }
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
common=(-c "$cfg" --set prepare.input=corpus.txt --set data.path=prepared --set train.steps=20
        --set train.eval_every=0 --set train.eval_batches=1)
"$bin" prepare "${common[@]}" >prepare.log 2>&1 || { cat prepare.log; fail "prepare"; }
train() { "$bin" train "${common[@]}" --set run.dir="$1" "${@:2}" >"$1.log" 2>&1 || { tail "$1.log"; fail "train $1"; }; }
train moe --set moe.num_experts=4 --set moe.router=gshard_top2
train ec --set moe.num_experts=4 --set moe.router=expert_choice
train enc --set model.arch=encoder
train other --set model.d_model=16 --set model.n_heads=2 --set checkpoint.every=10

gen() { "$bin" generate --run "$@"; }
a=$(gen moe --prompt "kalo mi" --max-new-tokens 12 --temperature 0 2>/dev/null) || fail "greedy generate"
b=$(gen moe --prompt "kalo mi" --max-new-tokens 12 --temperature 0 2>/dev/null) || fail "greedy again"
[ "$a" = "$b" ] || fail "greedy output differs between two runs"
grep -q "^kalo mi" <<<"$a" || { echo "$a"; fail "the output does not start with the prompt"; }
grep -q "12 new tokens, stopped: max_new_tokens; 2.00 experts per generated token" <<<"$a" ||
  { echo "$a"; fail "summary line"; }
s1=$(gen moe --prompt "kalo mi" --max-new-tokens 12 --seed 3 2>/dev/null)
s2=$(gen moe --prompt "kalo mi" --max-new-tokens 12 --seed 3 2>/dev/null)
[ "$s1" = "$s2" ] || fail "the same seed gave another sample"
printf 'kalo mi\nru ta so vi\nde\n' >prompts.txt
gen moe --prompt-file prompts.txt --max-new-tokens 5 --temperature 0 --json >batch.jsonl 2>/dev/null || fail "prompt file"
"$py" - <<'PY' || fail "--json output"
import json
rows = [json.loads(l) for l in open("batch.jsonl")]
assert [r["prompt"] for r in rows] == ["kalo mi", "ru ta so vi", "de"], rows
for r in rows:
    assert r["new_tokens"] == 5 == len(r["tokens"]) and r["stopped"] == "max_new_tokens", r
    for t in r["tokens"]:
        assert set(t) >= {"id", "piece", "position", "experts"}, t
        assert list(t["experts"]) == ["1"], t  # the MoE block (moe.every 2 of 2 layers)
        assert len(t["experts"]["1"]) == 2 and all(0 <= e < 4 for e, g in t["experts"]["1"]), t
    assert r["mean_experts_per_token"] == 2.0, r
PY
# Greedy in a batch equals greedy alone.
alone=$(gen moe --prompt "ru ta so vi" --max-new-tokens 5 --temperature 0 --json 2>/dev/null)
"$py" -c "
import json, sys
a = json.loads(sys.argv[1]); b = [json.loads(l) for l in open('batch.jsonl')][1]
assert a['completion'] == b['completion'], (a['completion'], b['completion'])" "$alone" || fail "batch vs alone"
echo "ok: generate: greedy and seeded output repeat; a prompt file is one batch (same as alone); --json with experts"

ec=$(gen ec --prompt "kalo mi" --max-new-tokens 8 --temperature 0 --json 2>ec.err) || { cat ec.err; fail "ec"; }
grep -q "expert choice at inference: each new token goes to expert e iff p\[e\] ≥ θ_e" ec.err || fail "ec note"
"$py" -c "
import json, sys
j = json.loads(sys.argv[1]); assert j['routing'].startswith('expert_choice thresholds'), j
assert 0 <= j['mean_experts_per_token'] <= 4, j" "$ec" || fail "ec json"
echo "ok: expert choice routes new tokens by its thresholds and says so"

fm=$("$bin" fill-mask --run enc --text "kalo <mask> mi ne <mask>" --top 3 --json 2>/dev/null) || fail "fill-mask"
"$py" -c "
import json, sys
j = json.loads(sys.argv[1]); m = j['masks']
assert len(m) == 2 and all(len(x['candidates']) == 3 for x in m), j
for x in m:
    ps = [c['p'] for c in x['candidates']]; assert ps == sorted(ps, reverse=True) and 0 < sum(ps) <= 1 + 1e-9, ps" "$fm" ||
  fail "fill-mask output"
echo "ok: fill-mask gives ranked candidates for each <mask>"

expect2() {  # expect2 PATTERN CMD...: exit 2 and PATTERN in the output
  local pattern=$1; shift
  local out code
  out=$("$@" 2>&1); code=$?
  [ "$code" = 2 ] || { echo "$out" | tail -3; fail "exit $code, want 2: $*"; }
  grep -qF -- "$pattern" <<<"$out" || { echo "$out" | tail -3; fail "message lacks '$pattern': $*"; }
}
expect2 "prompt 1 is empty" gen moe --prompt ""
expect2 "none of its characters is in the tokenizer's vocabulary" gen moe --prompt "ЖЖЖ"
expect2 "--top-p 0: must be in (0, 1]" gen moe --prompt "ka" --top-p 0
expect2 "--temperature -1: must be ≥ 0" gen moe --prompt "ka" --temperature -1
printf 'ka\n\nlo\n' >bad_prompts.txt
expect2 "bad_prompts.txt:2: an empty prompt" gen moe --prompt-file bad_prompts.txt
mkdir unfinished && cp moe/config.yaml unfinished/
expect2 "has no final weights" gen unfinished --prompt "ka"
expect2 "belongs to another model" gen moe --checkpoint other/checkpoints/step_0000010 --prompt "ka"
expect2 "is an encoder" gen enc --prompt "ka"
expect2 "fill-mask is for encoders" "$bin" fill-mask --run moe --text "ka <mask>"
expect2 "holds no <mask>" "$bin" fill-mask --run enc --text "ka lo"
"$bin" train -c "$here/tiny.yaml" --set run.dir=synthetic --set train.steps=2 >/dev/null 2>&1 || fail "synthetic run"
expect2 "trained on synthetic data" gen synthetic --prompt "ka"
gen other --checkpoint other/checkpoints/step_0000010 --prompt "ka" --max-new-tokens 3 >/dev/null 2>&1 ||
  fail "generate from the run's own checkpoint"
echo "ok: bad input → exit 2 naming it (empty or unknown prompt, --top-p, --temperature, prompt file line, no weights, another model's checkpoint, encoder/decoder mix-ups, synthetic data)"
