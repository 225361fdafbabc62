"""Holds a switchyard run to this PyTorch reference.

    PYTHONPATH=python /usr/bin/python3 -m switchyard_torch.check --run RUN \\
        --batches FILE [--gradients] [--rtol-nll 1e-5] [--rtol-grad 1e-4]

FILE comes from `switchyard eval --run RUN --save-batches FILE [--gradients]`
(src/train/trainer.cpp save_eval_batches): `ids`, `targets` (I32 [n, B, T], the
evaluation batches in order) and, with --gradients, `grad.<param>` (F32): the
gradient of the training objective on batch 0 (training-mode routing at step 0).
The evaluation also wrote RUN/eval_<split>.json (src/train/evaluate.cpp).

Checks, one line each (exit 1 on any mismatch):
  nll            mean NLL over every target of every batch (each batch one routing
                 micro-batch) against eval_<split>.json's `nll` (relative error);
  nll[groups], nll[threshold]
                 expert-choice decoders with trained thresholds: both evaluation
                 rules against log(ppl_groups) / log(ppl_threshold);
  grad <name>    with --gradients: max|torch − switchyard| / max|switchyard| per tensor.
"""
import argparse
import json
import math
import os
import sys

import torch

from .load import load_run, read_safetensors


def mean_nll(model, ids, targets, routing=None):
    """Σ NLL over targets >= 0 / their count, batch by batch (Trainer::evaluate_once).
    routing (a dict), if given, receives the closest routing decision's margin and
    the number of exact ties over all batches and MoE layers."""
    total, count = 0.0, 0
    with torch.no_grad():
        for b in range(ids.shape[0]):
            _, s = model(ids[b], targets[b])
            total += float(s.nll)
            count += s.count
            for layer in model.moe_layers():
                st = layer.last_stats
                if routing is not None and "margin" in st:
                    routing["margin"] = min(routing.get("margin", st["margin"]), st["margin"])
                if routing is not None:
                    routing["exact_ties"] = routing.get("exact_ties", 0) + st.get("exact_ties", 0)
    return total / count if count else 0.0


def routing_note(name, info):
    if "margin" in info:
        print(f"info {name:34s} closest selection margin {info['margin']:.2e} "
              f"(fp32 router values: one within a few ulps, ~1e-7, may legitimately flip), "
              f"{info.get('exact_ties', 0)} exact ties")


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, help="the switchyard run folder")
    ap.add_argument("--batches", required=True, help="file of `switchyard eval --save-batches`")
    ap.add_argument("--gradients", action="store_true", help="also compare the gradients of batch 0")
    ap.add_argument("--rtol-nll", type=float, default=1e-5)
    ap.add_argument("--rtol-grad", type=float, default=1e-4)
    args = ap.parse_args(argv)

    arrays, meta = read_safetensors(args.batches)
    ids = torch.from_numpy(arrays["ids"].astype("int64"))
    targets = torch.from_numpy(arrays["targets"].astype("int64"))
    split = meta.get("split", "val")
    with open(os.path.join(args.run, f"eval_{split}.json")) as f:
        ref = json.load(f)
    model = load_run(args.run)
    moe = model.moe_cfg
    failures = 0

    def report(name, ok, text):
        nonlocal failures
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name:34s} {text}")

    n, B, T = ids.shape
    print(f"run {args.run}: {model.cfg.arch}, {moe.router if moe.enabled() else 'dense'}"
          f"{f' ({moe.num_experts} experts)' if moe.enabled() else ''}, {n} batches of {B}x{T}")
    both_rules = (moe.enabled() and moe.router == "expert_choice" and model.cfg.arch == "decoder"
                  and model.has_thresholds() and "ppl_groups" in ref)
    if both_rules:
        got = {}
        for rule in ("groups", "threshold"):
            model.set_eval_routing(rule)
            info = {}
            got[rule] = mean_nll(model, ids, targets, info)
            want = math.log(ref[f"ppl_{rule}"])
            r = rel(got[rule], want)
            report(f"nll[{rule}]", r <= args.rtol_nll,
                   f"torch {got[rule]:.9f} switchyard {want:.9f} rel {r:.2e}")
            routing_note(f"routing[{rule}]", info)
        model.set_eval_routing(moe.eval_routing)
        mine = got[moe.eval_routing]
    else:
        info = {}
        mine = mean_nll(model, ids, targets, info)
    r = rel(mine, ref["nll"])
    report("nll", r <= args.rtol_nll, f"torch {mine:.9f} switchyard {ref['nll']:.9f} rel {r:.2e}")
    if not both_rules:
        routing_note("routing", info)

    if args.gradients:
        names = sorted(k[len("grad."):] for k in arrays if k.startswith("grad."))
        if not names:
            report("gradients", False, f"{args.batches} holds no grad.* tensors (eval without --gradients?)")
        params = dict(model.named_parameters())
        unknown = sorted(set(names) ^ set(params))
        if unknown:
            report("gradient names", False, f"not in both: {unknown[:5]}")
        model.zero_grad()
        _, sums = model(ids[0], targets[0], training=True)
        sums.objective().backward()
        worst = 0.0
        for name in names:
            if name not in params:
                continue
            want = torch.from_numpy(arrays["grad." + name].astype("float64"))
            have = params[name].grad
            have = torch.zeros_like(want) if have is None else have.detach().double()
            scale = float(want.abs().max())
            diff = float((have - want).abs().max())
            r = diff / scale if scale > 0 else (0.0 if diff <= 1e-12 else math.inf)
            worst = max(worst, r)
            report(f"grad {name}", r <= args.rtol_grad, f"max|diff| {diff:.3e} max|ref| {scale:.3e} rel {r:.2e}")
        print(f"worst gradient rel {worst:.2e}")
    if failures:
        print(f"{failures} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
