#!/usr/bin/env bash
# golden.sh BIN NAME: a fresh 20-step run of golden case NAME (tests/golden/cases.txt)
# gives the losses recorded in tests/golden/NAME.json, to 1e-5 relative at every
# step (machines differ in their BLAS kernels, Intel vs AMD: summation order only).
# A change that moves these numbers must say so: scripts/regen_golden.sh rewrites
# them, with the reason in the commit.
#   golden.sh BIN NAME --write   records them instead
set -u
source "$(dirname "$0")/lib.sh" "$1"
name=$2 mode=${3:-check}
golden=$here/../golden
line=$(grep -E "^$name( |$)" "$golden/cases.txt") || { echo "FAIL: no golden case '$name'"; exit 1; }
sets=()
for kv in ${line#"$name"}; do sets+=(--set "$kv"); done
"$bin" train -c "$here/tiny.yaml" "${sets[@]}" --set run.dir="$dir/run" --set train.steps=20 \
  --set run.log_every=1 --set train.eval_every=0 --set checkpoint.every=0 --set threads=1 \
  >"$dir/log" 2>&1 || { tail "$dir/log"; echo "FAIL: $name did not train"; exit 1; }
"$py" - "$dir/run/metrics.jsonl" "$golden/$name.json" "$mode" "$name" <<'PY'
import json, sys
metrics, path, mode, name = sys.argv[1:]
losses = [json.loads(l)["loss"] for l in open(metrics)]
assert len(losses) == 20, f"{len(losses)} steps logged"
if mode == "--write":
    json.dump({"case": name, "steps": 20, "loss": losses}, open(path, "w"), indent=1)
    print(f"wrote {path}")
    sys.exit(0)
want = json.load(open(path))["loss"]
worst = max(abs(a - b) / abs(b) for a, b in zip(losses, want))
bad = [(i, a, b) for i, (a, b) in enumerate(zip(losses, want)) if abs(a - b) > 1e-5 * abs(b)]
if bad:
    print(f"FAIL: {name}: step {bad[0][0]}: loss {bad[0][1]!r}, golden {bad[0][2]!r} (worst relative {worst:.2e})")
    sys.exit(1)
print(f"ok: {name}: 20 losses within 1e-5 of the golden curve (worst relative difference {worst:.1e})")
PY
