#!/usr/bin/env bash
# trace_report.sh BIN: part-of-speech tags through prepare, `eval --trace` agreeing
# with the statistics eval reports, `report --trace` over it, samples during
# training (without changing a bit of training), hardware.json and report's
# warning on mixed hardware; bad input exits 2 naming what is wrong.
set -u
source "$(dirname "$0")/lib.sh" "$1"
cd "$dir"
fail() { echo "FAIL: $*"; exit 1; }
# A corpus and its tags, word for word: capitalised words 'np', others 'nn', '.' '.'.
"$py" - <<'PY'
import random
random.seed(2)
syl = ["ka", "lo", "mi", "ne", "ru", "ta", "so", "vi", "de", "pa", "gu", "be"]
with open("corpus.txt", "w") as f, open("tags.txt", "w") as g:
    for d in range(60):
        for s in range(8):
            words = ["".join(random.choice(syl) for _ in range(random.randint(1, 3))) for _ in range(9)]
            words = [w.capitalize() if random.random() < 0.2 else w for w in words] + ["."]
            f.write(" ".join(words) + "\n")
            g.write(" ".join("." if w == "." else "np" if w[0].isupper() else "nn" for w in words) + "\n")
        f.write("\n")
        g.write("\n")
PY
cfg="$here/small_corpus.yaml"
common=(-c "$cfg" --set data.path=prepared --set train.steps=20 --set train.eval_every=0 --set train.eval_batches=1)
"$bin" prepare "${common[@]}" --set prepare.input=corpus.txt --set prepare.tags=tags.txt >prepare.log 2>&1 ||
  { cat prepare.log; fail "prepare with tags"; }
grep -q "3 tags from 'tags.txt'" prepare.log || { cat prepare.log; fail "prepare does not report the tags"; }
grep -q "untagged" prepare.log && fail "documents left untagged"
"$py" - <<'PY' || fail "the tags do not follow the words"
import json, struct
m = json.load(open("prepared/manifest.json"))
names = m["tags"]["names"]
assert sorted(names) == [".", "nn", "np"], names
f = m["tags"]["files"]["val"]
raw = open("prepared/" + f["file"], "rb").read()
tags = struct.unpack("<%dh" % (len(raw) // 2), raw)
assert len(tags) == f["tokens"] == m["splits"]["val"]["tokens"]
assert tags.count(-1) == m["splits"]["val"]["documents"], "only </s> is untagged"
PY
# Tags that do not match the input: exit 2, naming the document.
head -c -40 tags.txt >short_tags.txt
"$bin" prepare "${common[@]}" --set prepare.input=corpus.txt --set prepare.tags=short_tags.txt \
  --set data.path=prepared2 >bad.log 2>&1
[ $? -eq 2 ] && grep -q "prepare.tags: 'short_tags.txt" bad.log || { cat bad.log; fail "mismatched tags: exit 2 naming them"; }

train() { "$bin" train "${common[@]}" --set run.dir="$1" "${@:2}" >"$1.log" 2>&1 || { tail "$1.log"; fail "train $1"; }; }
train tc --set moe.num_experts=4 --set moe.router=gshard_top2 --set moe.eval_capacity_factor=0.5
train ec --set moe.num_experts=4 --set moe.router=expert_choice
[ -f tc/hardware.json ] || fail "no hardware.json"
"$py" -c "
import json; s = json.load(open('tc/hardware.json'))['sessions']
assert len(s) == 1 and s[0]['cpu'] and s[0]['backend'].startswith('cpu') and s[0]['ranks'] == 1, s" || fail "hardware.json"

# The trace agrees with eval's own statistics (one sequence per batch: no padding rows).
for r in tc ec; do
  "$bin" eval --run $r --set train.batch_size=1 --trace $r.trace.jsonl >$r.eval.log 2>&1 || { cat $r.eval.log; fail "eval --trace $r"; }
  "$py" - $r <<'PY' || fail "trace of $r disagrees with eval_val.json"
import json, sys
run = sys.argv[1]
ev = json.load(open(f"{run}/eval_val.json"))
lines = [json.loads(l) for l in open(f"{run}.trace.jsonl")]
head, toks = lines[0], lines[1:]
assert head["format"] == "switchyard-trace" and head["version"] == 1 and head["tags"], head
assert head["tokens"] == len(toks) == ev["targets"] or head["tokens"] == len(toks), (head, ev["targets"])
assert len({t["pos"] for t in toks}) == len(toks), "a position twice"
assert all("piece" in t for t in toks) and sum("tag" in t for t in toks) > 0.9 * len(toks)
rules = head["rules"]
assert rules == (["groups", "threshold"] if run == "ec" else ["eval"]), rules
for s in ev["moe"]:
    layer = str(s["layer"])
    per_expert = [0] * head["experts"]
    hist = [0] * 5
    dropped = 0
    for t in toks:
        cs = t["r"][s["rule"]][layer]
        hist[min(len(cs), 4)] += 1
        for e, g in cs:
            per_expert[e] += 1
            assert 0 < g <= 1, g
        dropped += len(t.get("dropped", {}).get(layer, []))
    assert s["tokens"] == len(toks), (s["tokens"], len(toks))
    assert per_expert == s["tokens_per_expert"], (s["rule"], per_expert, s["tokens_per_expert"])
    assert hist == s["experts_per_token"], (hist, s["experts_per_token"])
    if run == "tc":
        assert dropped == s["dropped"] and dropped > 0, (dropped, s["dropped"])
PY
done
"$bin" report --trace tc.trace.jsonl ec.trace.jsonl -o spec --no-plots >report.log 2>&1 || { cat report.log; fail "report --trace"; }
grep -q "## gshard_top2" spec/specialisation.md && grep -q "### layer 1, rule \`threshold\`" spec/specialisation.md &&
  grep -q "part-of-speech class" spec/specialisation.md && grep -q "| expert | noun | proper noun | punctuation |" spec/specialisation.md ||
  { cat spec/specialisation.md | head -40; fail "specialisation.md"; }
"$bin" report --trace tc/config.yaml -o spec2 >bad.log 2>&1
[ $? -eq 2 ] && grep -q "not JSON" bad.log || { cat bad.log; fail "report --trace on a non-trace: exit 2"; }
train dense
"$bin" eval --run dense --trace x.jsonl >bad.log 2>&1
[ $? -eq 2 ] && grep -q "dense model" bad.log || { cat bad.log; fail "eval --trace on a dense model: exit 2"; }

# Samples during training: printed, logged, and training unchanged to the bit.
train plain --set moe.num_experts=4
train samp --set moe.num_experts=4 --set train.sample_every=10 --set 'train.sample_prompts=["Kalo mi", "ru ta"]' --set train.sample_tokens=6
cmp plain/model.safetensors samp/model.safetensors || fail "sampling changed the trained weights"
"$py" - <<'PY' || fail "samples.jsonl"
import json
rows = [json.loads(l) for l in open("samp/samples.jsonl")]
assert [(r["steps_done"], r["prompt"]) for r in rows] == [(10, "Kalo mi"), (10, "ru ta"), (20, "Kalo mi"), (20, "ru ta")], rows
assert all(r["tokens"] == 6 and r["completion"] for r in rows), rows
PY
grep -q "sample after step 10: Kalo mi →" samp.log || fail "samples are not printed"
"$bin" train "${common[@]}" --set run.dir=x --set train.sample_every=5 >bad.log 2>&1
[ $? -eq 2 ] && grep -q "train.sample_prompts" bad.log || { cat bad.log; fail "sample_every without prompts: exit 2"; }
"$bin" train "${common[@]}" --set run.dir=x --set train.sample_every=5 --set train.sample_prompts=ka --set model.arch=encoder >bad.log 2>&1
[ $? -eq 2 ] && grep -q "needs a decoder" bad.log || { cat bad.log; fail "samples of an encoder: exit 2"; }
"$bin" train "${common[@]}" --set run.dir=x --set train.sample_every=5 --set train.sample_prompts="$(printf 'ka %.0s' {1..40})" >bad.log 2>&1
[ $? -eq 2 ] && grep -q "exceeds the context" bad.log || { cat bad.log; fail "a prompt longer than the context: exit 2"; }

# report: hardware listed; runs on different hardware draw a warning.
"$bin" report tc plain -o rep --no-plots >rep.log 2>&1 || { cat rep.log; fail "report"; }
grep -q "^Hardware:" rep/report.md && ! grep -q "different hardware" rep/report.md || { cat rep/report.md; fail "hardware lines"; }
"$py" -c "
import json; p = 'plain/hardware.json'; j = json.load(open(p)); j['sessions'][0]['cpu'] = 'Another CPU'; json.dump(j, open(p, 'w'))"
"$bin" report tc plain -o rep --no-plots >rep.log 2>&1 || { cat rep.log; fail "report"; }
grep -q "these runs ran on different hardware" rep/report.md && grep -q "Another CPU" rep/report.md || { cat rep/report.md; fail "no warning on mixed hardware"; }
echo "trace_report: all checks passed"
