"""The dense layers of switchyard's Transformer, each named like its parameters.

Mirrors src/model/embedding.cpp (+ backend/cpu/cpu_embedding.cpp), norm.cpp
(+ cpu_norm.cpp), attention.cpp (+ cpu_attention.cpp), glu_ffn.cpp
(+ cpu_activation.cpp, cpu_math.h for the activation formulas) and loss.cpp
(+ cpu_softmax_loss.cpp).
"""
import math

import torch
from torch import nn


def gelu(x):
    """GELU, tanh form (cpu_math.h act_value_grad)."""
    k, c = 0.7978845608028654, 0.044715
    return 0.5 * x * (1.0 + torch.tanh(k * (x + c * x * x * x)))


def silu(x):
    return x * torch.sigmoid(x)


def relu(x):
    return torch.where(x > 0, x, torch.zeros_like(x))


ACTIVATIONS = {"gelu": gelu, "silu": silu, "relu": relu}


def sinusoids(max_seq, C):
    """PE[t, 2i] = sin(t / 10000^(2i/C)), PE[t, 2i+1] = cos(t / 10000^(2i/C)),
    computed in double as embedding.cpp does."""
    pe = torch.zeros(max_seq, C, dtype=torch.float64)
    for c in range(C):
        freq = math.pow(10000.0, -float(c - c % 2) / C)
        t = torch.arange(max_seq, dtype=torch.float64) * freq
        pe[:, c] = torch.sin(t) if c % 2 == 0 else torch.cos(t)
    return pe


class Embedding(nn.Module):
    """`embed.tokens` [V, C] (+ `embed.positions` [max_seq, C] when learned):
    out[b, t] = tokens[ids[b, t]] + positions[t]."""

    def __init__(self, cfg, dtype):
        super().__init__()
        self.tokens = nn.Parameter(torch.zeros(cfg.vocab_size, cfg.d_model, dtype=dtype))
        if cfg.positions == "learned":
            self.positions = nn.Parameter(torch.zeros(cfg.max_seq, cfg.d_model, dtype=dtype))
        else:
            self.register_buffer("sinusoids", sinusoids(cfg.max_seq, cfg.d_model).to(dtype),
                                 persistent=False)

    def forward(self, ids):
        T = ids.shape[1]
        pos = self.positions if hasattr(self, "positions") else self.sinusoids
        return self.tokens[ids] + pos[:T]


class Norm(nn.Module):
    """LayerNorm ((x−μ)·rstd·w + b) or RMSNorm (x·rstd·w), rstd = 1/√(mean(..²) + eps)."""

    def __init__(self, kind, C, eps, dtype):
        super().__init__()
        self.kind, self.eps = kind, eps
        self.weight = nn.Parameter(torch.ones(C, dtype=dtype))
        if kind == "layernorm":
            self.bias = nn.Parameter(torch.zeros(C, dtype=dtype))

    def forward(self, x):
        if self.kind == "layernorm":
            mu = x.mean(-1, keepdim=True)
            xc = x - mu
            rs = 1.0 / torch.sqrt((xc * xc).mean(-1, keepdim=True) + self.eps)
            return xc * rs * self.weight + self.bias
        rs = 1.0 / torch.sqrt((x * x).mean(-1, keepdim=True) + self.eps)
        return x * rs * self.weight


class Attention(nn.Module):
    """`attn.w_qkv` [3C, C] (rows: q | k | v, heads contiguous within each) and
    `attn.w_o` [C, C]; softmax(q·kᵀ/√D) with a causal mask in decoders."""

    def __init__(self, cfg, dtype):
        super().__init__()
        C = cfg.d_model
        self.n_heads = cfg.n_heads
        self.causal = cfg.arch == "decoder"
        self.w_qkv = nn.Parameter(torch.zeros(3 * C, C, dtype=dtype))
        self.w_o = nn.Parameter(torch.zeros(C, C, dtype=dtype))

    def forward(self, x):
        B, T, C = x.shape
        NH, D = self.n_heads, C // self.n_heads
        qkv = x @ self.w_qkv.t()
        q, k, v = (qkv[..., i * C:(i + 1) * C].reshape(B, T, NH, D).transpose(1, 2)
                   for i in range(3))
        scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(D))
        if self.causal:
            mask = torch.ones(T, T, dtype=torch.bool).triu(1)
            scores = scores.masked_fill(mask, float("-inf"))
        att = torch.softmax(scores, dim=-1) @ v
        return att.transpose(1, 2).reshape(B, T, C) @ self.w_o.t()


class GluFfn(nn.Module):
    """`ffn.w_in`, `ffn.w_gate` [H, C], `ffn.w_out` [C, H]:
    w_out · (act(w_in·x) ⊙ (w_gate·x)); the activation is on w_in's output."""

    def __init__(self, cfg, dtype):
        super().__init__()
        C, H = cfg.d_model, cfg.d_ff
        self.act = ACTIVATIONS[cfg.activation]
        self.w_in = nn.Parameter(torch.zeros(H, C, dtype=dtype))
        self.w_gate = nn.Parameter(torch.zeros(H, C, dtype=dtype))
        self.w_out = nn.Parameter(torch.zeros(C, H, dtype=dtype))

    def forward(self, x):
        return (self.act(x @ self.w_in.t()) * (x @ self.w_gate.t())) @ self.w_out.t()


def cross_entropy_sums(logits, targets, smoothing):
    """cpu_softmax_loss.cpp cross_entropy_forward, summed over rows with target >= 0:
    loss = (1−ε)·(lse − z_y) + ε·(lse − mean_v z_v), nll = lse − z_y.
    logits [N, V], targets [N] → (Σ loss, Σ nll, count)."""
    keep = targets >= 0
    z = logits[keep]
    y = targets[keep].long()
    lse = torch.logsumexp(z, dim=-1)
    nll = lse - z.gather(1, y.unsqueeze(1)).squeeze(1)
    loss = (1.0 - smoothing) * nll + smoothing * (lse - z.mean(-1))
    return loss.sum(), nll.sum(), int(keep.sum())
