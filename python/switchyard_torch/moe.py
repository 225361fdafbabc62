"""A Mixture-of-Experts FFN: router → groups → selection → experts → combine.

Mirrors src/moe/router.cpp (router logits z = x·W_gᵀ, fp32 softmax, groups,
auxiliary losses), src/moe/switch_top1.cpp, gshard_top2.cpp, noisy_topk.cpp,
expert_choice.cpp (each router's selection, gates and capacity),
src/moe/experts.cpp (the experts' FFNs) and src/moe/moe_layer.cpp (dispatch and
combine: y_t = Σ gate · FFN_e(x_t) over t's kept choices; 0 for a token no expert
took).

Precision: selections are made, as in switchyard, on fp32 router values (logits
rounded to float32, a float32 softmax) converted to double; the combine weights and
auxiliary losses are computed from the module's own (float64 for the reference)
logits, so that autograd gives the gradient switchyard computes (selections are
piecewise constant: no gradient flows through which expert or token was picked).
"""
import math

import torch
from torch import nn

from . import routing
from .layers import ACTIVATIONS, gelu


class Expert(nn.Module):
    """One expert (experts.cpp): GLU `w_out·(act(w_in·x) ⊙ (w_gate·x))` with the model's
    activation, or the plain two-layer `w_out·gelu(w_in·x)` of the EC paper
    (expert_kind: ffn)."""

    def __init__(self, d_model, d_ff, kind, dtype, activation="gelu"):
        super().__init__()
        self.kind = kind
        self.act = ACTIVATIONS[activation] if kind == "glu" else gelu
        self.w_in = nn.Parameter(torch.zeros(d_ff, d_model, dtype=dtype))
        if kind == "glu":
            self.w_gate = nn.Parameter(torch.zeros(d_ff, d_model, dtype=dtype))
        self.w_out = nn.Parameter(torch.zeros(d_model, d_ff, dtype=dtype))

    def forward(self, x):
        a = self.act(x @ self.w_in.t())
        if self.kind == "glu":
            a = a * (x @ self.w_gate.t())
        return a @ self.w_out.t()


class Router(nn.Module):
    """Router weights (`router.w_gate` [E, C]; noisy_topk also `router.w_noise`) and the
    expert-choice thresholds θ (`router.thresholds`, F64 [E]; NaN: not trained)."""

    def __init__(self, cfg, d_model, dtype):
        super().__init__()
        E = cfg.num_experts
        self.w_gate = nn.Parameter(torch.zeros(E, d_model, dtype=dtype))
        if cfg.router == "noisy_topk":
            self.w_noise = nn.Parameter(torch.zeros(E, d_model, dtype=dtype))
        if cfg.router == "expert_choice":
            self.register_buffer("thresholds", torch.full((E,), float("nan"), dtype=torch.float64))

    def has_thresholds(self):
        return hasattr(self, "thresholds") and not bool(torch.isnan(self.thresholds).any())


class MoeLayer(nn.Module):
    """`blocks.L.moe`: router + experts. forward(x [B, T, C]) → (y [B, T, C], aux) where
    aux is what this layer adds to the training objective (0 in evaluation)."""

    def __init__(self, model_cfg, cfg, dtype):
        super().__init__()
        self.cfg = cfg
        self.arch = model_cfg.arch
        self.router = Router(cfg, model_cfg.d_model, dtype)
        d_ff = cfg.expert_d_ff if cfg.expert_d_ff > 0 else model_cfg.d_ff
        self.experts = nn.ModuleList(
            Expert(model_cfg.d_model, d_ff, cfg.expert_kind, dtype, model_cfg.activation)
            for _ in range(cfg.num_experts))
        # `auto` resolves per arch (router.cpp Router::Router).
        grouping = cfg.ec_grouping
        if grouping == "auto":
            grouping = "by_position" if model_cfg.arch == "decoder" else "contiguous"
        self.grouping = grouping
        self.eval_routing = cfg.eval_routing
        self.last_stats = {}

    # -- groups (router.cpp make_groups) ------------------------------------------
    def groups(self, B, T):
        N = B * T
        if self.cfg.router == "expert_choice" and self.grouping == "by_position":
            return [[b * T + j for b in range(B)] for j in range(T)]
        G = min(self.cfg.group_size, N) if self.cfg.group_size > 0 else N
        return [list(range(s, min(N, s + G))) for s in range(0, N, G)]

    def capacity(self, S, training):
        cfg, E = self.cfg, self.cfg.num_experts
        if cfg.router == "expert_choice":
            return routing.expert_choice_capacity(cfg.ec_capacity, S, E)
        factor = cfg.capacity_factor if training else cfg.eval_capacity_factor
        k = {"switch_top1": 1, "gshard_top2": 2}.get(cfg.router, cfg.top_k)
        return routing.token_choice_capacity(factor, k, S, E)

    # -- selection of one group (the routers' select()) ----------------------------
    def select(self, p, z, training):
        """p, z: the group's fp32 probabilities / logits as lists of doubles. Returns
        (choices [(token, expert)], info) in dispatch order."""
        cfg = self.cfg
        S = len(p)
        C = self.capacity(S, training)
        info = {"capacity": C, "dropped": 0, "empty_slots": 0}
        if cfg.router == "switch_top1":
            choices, info["dropped"] = routing.route_switch_top1(p, C)
        elif cfg.router == "gshard_top2":
            if training and cfg.second_policy == "random":
                raise NotImplementedError("gshard_top2 training with second_policy: random draws "
                                          "switchyard's counter-based random numbers; use "
                                          "second_policy: all")
            choices, info["dropped"], info["pairs"] = routing.route_gshard_top2(p, C)
        elif cfg.router == "noisy_topk":
            if training:
                raise NotImplementedError("noisy_topk training draws switchyard's Gaussian noise")
            choices, info["dropped"], info["topk"] = routing.route_noisy_topk(z, cfg.top_k, C)
        elif cfg.router == "expert_choice":
            if (not training and self.eval_routing == "threshold"
                    and self.router.has_thresholds()):
                choices = routing.route_threshold(p, self.router.thresholds.tolist())
            elif cfg.max_experts_per_token > 0:
                choices, info["empty_slots"] = routing.route_expert_choice_capped(
                    p, C, cfg.max_experts_per_token)
            else:
                choices = routing.route_expert_choice(p, C)
        else:
            raise ValueError(f"unknown router '{cfg.router}'")
        return choices, info

    def gates(self, rows, choices, info, p64, z64):
        """Combine weights of a group's choices (differentiable), as each router's
        gate: p (switch, expert choice), p/(p1+p2) (gshard), softmax over the kept k
        of the logits (noisy_topk, evaluation: h = z)."""
        router = self.cfg.router
        t = torch.tensor([rows[c[0]] for c in choices], dtype=torch.long)
        e = torch.tensor([c[1] for c in choices], dtype=torch.long)
        if router in ("switch_top1", "expert_choice"):
            return p64[t, e]
        if router == "gshard_top2":
            pairs = info["pairs"]
            e1 = torch.tensor([pairs[c[0]][0] for c in choices], dtype=torch.long)
            e2 = torch.tensor([pairs[c[0]][1] for c in choices], dtype=torch.long)
            return p64[t, e] / (p64[t, e1] + p64[t, e2])
        # noisy_topk
        topk = info["topk"]
        kept = torch.tensor([topk[c[0]] for c in choices], dtype=torch.long)  # [n, k]
        h = z64[t.unsqueeze(1), kept]
        h = h - h[:, :1]
        w = torch.exp(h)
        own = torch.tensor([topk[c[0]].index(c[1]) for c in choices], dtype=torch.long)
        return w[torch.arange(len(choices)), own] / w.sum(1)

    def forward(self, x, training=False):
        cfg = self.cfg
        B, T, Cm = x.shape
        xf = x.reshape(B * T, Cm)
        E = cfg.num_experts
        if training and cfg.jitter > 0:
            raise NotImplementedError("router jitter draws switchyard's random numbers; set moe.jitter: 0")
        # Router values: differentiable ones in the module's dtype, and the fp32 ones
        # switchyard selects on (router.cpp forward: gemm, softmax_forward, to host).
        z64 = xf @ self.router.w_gate.t()
        p64 = torch.softmax(z64, dim=-1)
        with torch.no_grad():
            z32 = (xf.detach().double() @ self.router.w_gate.detach().double().t()).float()
            p32 = torch.softmax(z32, dim=-1)
            z_host = z32.double().tolist()
            p_host = p32.double().tolist()

        y = torch.zeros_like(xf)
        per_expert_rows = [[] for _ in range(E)]
        per_expert_gates = [[] for _ in range(E)]
        balance = []
        stats = {"groups": 0, "dropped": 0, "empty_slots": 0, "choices": 0, "exact_ties": 0}
        for rows in self.groups(B, T):
            p = [p_host[r] for r in rows]
            z = [z_host[r] for r in rows]
            choices, info = self.select(p, z, training)
            use_theta = (cfg.router == "expert_choice" and not training
                         and self.eval_routing == "threshold" and self.router.has_thresholds())
            margin, ties = routing.decision_margins(
                cfg.router, p, z, info["capacity"], cfg.top_k,
                self.router.thresholds.tolist() if use_theta else None)
            if margin is not None:
                stats["margin"] = min(stats.get("margin", margin), margin)
            stats["exact_ties"] += ties
            stats["groups"] += 1
            stats["dropped"] += info["dropped"]
            stats["empty_slots"] += info["empty_slots"]
            stats["choices"] += len(choices)
            stats["capacity"] = info["capacity"]
            if choices:
                g = self.gates(rows, choices, info, p64, z64)
                for i, (t, e) in enumerate(choices):
                    per_expert_rows[e].append(rows[t])
                    per_expert_gates[e].append(g[i])
            if training and cfg.router in ("switch_top1", "gshard_top2"):
                # E · Σ_e f_e · P_e, f from argmax (no gradient), P = mean p (router.cpp balance_aux)
                f = torch.tensor(routing.first_fraction(p), dtype=p64.dtype)
                P = p64[torch.tensor(rows)].sum(0) / len(rows)
                balance.append(float(E) * (f * P).sum())
        # Experts on their tokens, combined with the gates (moe_layer.cpp forward).
        for e in range(E):
            if not per_expert_rows[e]:
                continue
            idx = torch.tensor(per_expert_rows[e], dtype=torch.long)
            gates = torch.stack(per_expert_gates[e]).to(xf.dtype)
            y = y.index_add(0, idx, gates.unsqueeze(1) * self.experts[e](xf[idx]))
        self.last_stats = stats

        aux = xf.new_zeros(())
        if training:
            if balance:  # aux_loss · mean over groups (router.cpp fill_stats / backward)
                aux = aux + cfg.aux_coefficient() * torch.stack(balance).sum() / len(balance)
            if cfg.z_loss > 0:  # z_loss · mean_t (logsumexp z_t)²
                aux = aux + cfg.z_loss * (torch.logsumexp(z64, dim=-1) ** 2).mean()
        return y.reshape(B, T, Cm), aux
