#!/usr/bin/env bash
# integrity.sh BIN CONFIG: what is claimed to be checked is checked.
#  - state.json is covered by its own checksum: an edited step or loader position,
#    or a shortened file list, is refused by verify and by resume (exit 5);
#  - final weights carry checksums (weights.json): a flipped byte is exit 5 for
#    eval; a NaN weight is exit 5 even without weights.json;
#  - the expert-choice thresholds are saved with the final weights: eval's
#    threshold-rule NLL is the one logged at the end of training, and eval asked
#    for the threshold rule without thresholds is exit 2.
set -u
source "$(dirname "$0")/lib.sh" "$1" "$2"
S=(--set train.steps=6 --set run.log_every=1 --set checkpoint.every=3 --set train.eval_batches=0)
fail() { echo "FAIL: $*"; exit 1; }
expect() {  # expect CODE PATTERN CMD...
  local want=$1 pattern=$2; shift 2
  local out code
  out=$("$@" 2>&1); code=$?
  [ "$code" = "$want" ] || { echo "$out" | tail -5; fail "exit $code, want $want: $*"; }
  grep -qF -- "$pattern" <<<"$out" || { echo "$out" | tail -5; fail "message lacks: $pattern"; }
}
"$bin" train -c "$cfg" "${S[@]}" --set run.dir="$dir/a" >"$dir/a.log" 2>&1 || fail "reference run"
ck=$dir/a/checkpoints/step_0000003

# --- 9. state.json: its own checksum and a complete file list. ------------------------------
expect 0 "verified" "$bin" verify "$ck"
edit() {  # edit NAME PYTHON-EXPR-ON-st: a copy of the checkpoint with state.json changed
  rm -rf "$dir/$1" && cp -r "$ck" "$dir/$1"
  "$py" - "$dir/$1/state.json" "$2" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
exec(sys.argv[2])
json.dump(st, open(sys.argv[1], "w"), indent=2)
PY
}
edit step 'st["step"] = 1'
expect 5 "fails its own checksum" "$bin" verify "$dir/step"
expect 5 "fails its own checksum" "$bin" train -c "$cfg" "${S[@]}" --set run.dir="$dir/r1" --resume "$dir/step"
edit loader 'st["loader"]["consumed"] += 1'
expect 5 "fails its own checksum" "$bin" verify "$dir/loader"
edit files 'st["files"] = {}'
expect 5 "fails its own checksum" "$bin" verify "$dir/files"
expect 5 "fails its own checksum" "$bin" inspect "$dir/files"
rm -rf "$dir/extra" && cp -r "$ck" "$dir/extra" && echo x >"$dir/extra/notes.txt"
expect 5 "does not list the checkpoint's file 'notes.txt'" "$bin" verify "$dir/extra"
echo "ok: state.json edits (step, loader, file list) and unlisted files are refused by verify, inspect and resume"

# --- 10. Final weights: checksums and finite values. ------------------------------------------
[ -f "$dir/a/weights.json" ] || fail "no weights.json beside the final weights"
expect 0 "nll" "$bin" eval --run "$dir/a"
cp -r "$dir/a" "$dir/w" && rm -f "$dir/w/.switchyard.lock"
printf '\x55' | dd of="$dir/w/model.safetensors" bs=1 seek=500 conv=notrunc status=none
expect 5 "model.safetensors' is corrupt" "$bin" eval --run "$dir/w"
cp "$dir/a/model.safetensors" "$dir/w/model.safetensors"
"$py" - "$dir/w/model.safetensors" <<'PY'
import json, struct, sys
data = bytearray(open(sys.argv[1], "rb").read())
(n,) = struct.unpack("<Q", data[:8])
header = json.loads(data[8:8 + n])
name = sorted(k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32")[0]
begin = 8 + n + header[name]["data_offsets"][0]
data[begin + 4:begin + 8] = struct.pack("<f", float("nan"))
open(sys.argv[1], "wb").write(bytes(data))
PY
expect 5 "model.safetensors' is corrupt" "$bin" eval --run "$dir/w"
rm "$dir/w/weights.json"  # as a run of an older version: no checksums to catch it
expect 5 "holds a non-finite value (nan at element 1)" "$bin" eval --run "$dir/w"
echo "ok: eval refuses a flipped byte (checksum) and a NaN weight (exit 5)"

# --- 13. Expert-choice thresholds travel with the final weights. ---------------------------------
EC=(--set moe.num_experts=4 --set moe.router=expert_choice --set moe.expert_choice.eval_routing=threshold
    --set train.steps=12 --set train.eval_every=0)
"$bin" train -c "$cfg" "${S[@]}" "${EC[@]}" --set run.dir="$dir/ec" >"$dir/ec.log" 2>&1 || fail "EC run"
"$bin" eval --run "$dir/ec" >"$dir/ec_eval.log" 2>&1 || { cat "$dir/ec_eval.log"; fail "EC eval"; }
"$py" - "$dir/ec/metrics.jsonl" "$dir/ec/eval_val.json" <<'PY' || fail "eval's threshold-rule NLL differs from training's"
import json, math, sys
last = [json.loads(l) for l in open(sys.argv[1])][-1]
ev = json.load(open(sys.argv[2]))
assert "val_ppl_threshold" in last, last
trained = math.log(last["val_ppl_threshold"])
assert abs(ev["nll"] - trained) <= 1e-9 * abs(trained), (ev["nll"], trained)
assert abs(ev["nll"] - last["val_nll"]) <= 1e-9 * abs(trained), (ev["nll"], last["val_nll"])
print(f"ok: eval threshold-rule nll {ev['nll']:.12f} = training's {trained:.12f}")
PY
# Without thresholds (weights of an older version): the threshold rule is refused.
cp -r "$dir/ec" "$dir/ec_old" && rm -f "$dir/ec_old/weights.json" "$dir/ec_old/.switchyard.lock"
"$py" - "$dir/ec_old/model.safetensors" <<'PY'
import json, struct, sys
data = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", data[:8])
header = json.loads(data[8:8 + n])
keep = {k: v for k, v in header.items() if not k.endswith("thresholds")}
assert len(keep) < len(header), "no thresholds were saved"
blobs, off, out = [], 0, {}
for k in sorted(x for x in keep if x != "__metadata__"):
    b, e = keep[k]["data_offsets"]
    blobs.append(data[8 + n + b:8 + n + e])
    out[k] = dict(keep[k], data_offsets=[off, off + e - b]); off += e - b
if "__metadata__" in keep: out["__metadata__"] = keep["__metadata__"]
h = json.dumps(out).encode(); h += b" " * ((8 - len(h) % 8) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PY
expect 2 "needs the thresholds trained with the weights" "$bin" eval --run "$dir/ec_old"
expect 0 "holds no trained expert-choice thresholds" "$bin" eval --run "$dir/ec_old" \
  --set moe.expert_choice.eval_routing=groups
echo "ok: eval uses the trained thresholds (same NLL as training), refuses the threshold rule without them"
