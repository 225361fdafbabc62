"""The whole model: embedding → pre-norm blocks → final norm → output head → loss.

Mirrors src/model/transformer.cpp (layout, tied head), src/model/block.cpp
(x += Attn(Norm1(x)); x += FFN(Norm2(x))), src/moe/moe_model.cpp (every
moe.every-th block's FFN is a MoE layer) and, for the training objective,
src/train/trainer.cpp (mean label-smoothed cross-entropy over target tokens plus
the MoE layers' weighted auxiliary losses).

Parameter names (state_dict keys) are switchyard's logical names, so
`model.state_dict()` and a run's safetensors name the same tensors.
"""
from typing import NamedTuple

import torch
from torch import nn

from .config import parse_config
from .layers import Attention, Embedding, GluFfn, Norm, cross_entropy_sums
from .moe import MoeLayer


class LossSums(NamedTuple):
    """loss.h LossSums for one batch, plus the auxiliary losses of its MoE layers."""
    loss: torch.Tensor   # Σ label-smoothed cross-entropy over targets >= 0
    nll: torch.Tensor    # Σ negative log-likelihood over targets >= 0
    count: int           # targets >= 0
    aux: torch.Tensor    # Σ over MoE layers of their weighted auxiliary losses (training only)

    def objective(self):
        """switchyard's training objective on this batch: mean loss + aux."""
        return self.loss / max(self.count, 1) + self.aux


class Block(nn.Module):
    """`blocks.L`: norm1, attn, norm2 and `ffn` (dense GLU) or `moe` (MoE layer)."""

    def __init__(self, cfg, moe_cfg, layer, dtype):
        super().__init__()
        self.norm1 = Norm(cfg.norm, cfg.d_model, cfg.norm_eps, dtype)
        self.attn = Attention(cfg, dtype)
        self.norm2 = Norm(cfg.norm, cfg.d_model, cfg.norm_eps, dtype)
        if moe_cfg.is_moe_block(layer):
            self.moe = MoeLayer(cfg, moe_cfg, dtype)
        else:
            self.ffn = GluFfn(cfg, dtype)

    def forward(self, x, training=False):
        mid = x + self.attn(self.norm1(x))
        h = self.norm2(mid)
        if hasattr(self, "moe"):
            y, aux = self.moe(h, training=training)
            return mid + y, aux
        return mid + self.ffn(h), None


class SwitchyardModel(nn.Module):
    """A switchyard model built from its resolved config (the dict of config.yaml).

    forward(ids [B, T], targets=None, training=False):
      → logits [B, T, V]; with targets → (logits, LossSums).
    One call is one routing micro-batch (switchyard routes each evaluation batch of
    B×T tokens as one micro-batch). training=True uses training-mode routing
    (capacity_factor, auxiliary losses); supported for the deterministic routers:
    switch_top1 and gshard_top2 (second_policy: all) without jitter, and expert
    choice (group rule, capped or not).
    """

    def __init__(self, config, dtype=torch.float64):
        super().__init__()
        self.config = config
        self.cfg, self.moe_cfg = parse_config(config)
        cfg = self.cfg
        self.embed = Embedding(cfg, dtype)
        self.blocks = nn.ModuleList(Block(cfg, self.moe_cfg, l, dtype) for l in range(cfg.n_layers))
        self.norm_f = Norm(cfg.norm, cfg.d_model, cfg.norm_eps, dtype)
        if not cfg.tie_embeddings:
            self.head = nn.Module()
            self.head.weight = nn.Parameter(torch.zeros(cfg.vocab_size, cfg.d_model, dtype=dtype))

    # -- loading -----------------------------------------------------------------
    def load_switchyard_weights(self, arrays):
        """{logical name: numpy array} (a run's safetensors) → parameters and the
        expert-choice thresholds. Every parameter must be present; unknown tensors
        are refused (another config?), as model_io.cpp does."""
        own = dict(self.named_parameters())
        buffers = dict(self.named_buffers())
        missing = [n for n in own if n not in arrays]
        if missing:
            raise KeyError(f"weights lack {missing[:5]}")
        with torch.no_grad():
            for name, a in arrays.items():
                if name in own:
                    p = own[name]
                    if tuple(a.shape) != tuple(p.shape):
                        raise ValueError(f"{name}: shape {list(a.shape)}, model wants {list(p.shape)}")
                    p.copy_(torch.from_numpy(a).to(p.dtype))
                elif name.endswith(".moe.router.thresholds") and name in buffers:
                    buffers[name].copy_(torch.from_numpy(a).to(torch.float64))
                elif name.endswith(".moe.router.thresholds"):
                    continue  # (a router without thresholds)
                else:
                    raise KeyError(f"tensor '{name}' is not a parameter of this model (another config?)")
        return self

    def moe_layers(self):
        return [b.moe for b in self.blocks if hasattr(b, "moe")]

    def set_eval_routing(self, rule):
        """Expert choice evaluation rule: 'groups' or 'threshold' (Trainer::evaluate)."""
        for m in self.moe_layers():
            m.eval_routing = rule

    def has_thresholds(self):
        layers = self.moe_layers()
        return bool(layers) and all(m.router.has_thresholds() for m in layers)

    # -- forward -----------------------------------------------------------------
    def forward(self, ids, targets=None, training=False):
        ids = torch.as_tensor(ids).long()
        B, T = ids.shape
        if T > self.cfg.max_seq:
            raise ValueError(f"seq {T} exceeds model.max_seq {self.cfg.max_seq}")
        x = self.embed(ids)
        aux = x.new_zeros(())
        for block in self.blocks:
            x, a = block(x, training=training)
            if a is not None:
                aux = aux + a
        h = self.norm_f(x)
        head = self.head.weight if hasattr(self, "head") else self.embed.tokens
        logits = h @ head.t()
        if targets is None:
            return logits
        targets = torch.as_tensor(targets).reshape(-1)
        loss, nll, count = cross_entropy_sums(logits.reshape(B * T, -1), targets,
                                              self.cfg.label_smoothing)
        return logits, LossSums(loss, nll, count, aux)
