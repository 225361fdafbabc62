"""The parts of switchyard's config the model needs, typed.

Mirrors src/config/schema.h (key names), src/model/model_config.h and
src/moe/moe_config.h (meaning and defaults). config.yaml of a run is fully resolved
(every key present); the defaults below only serve hand-written dicts. YAML 1.1
reads `1e-05` as a string, hence the float() coercions.
"""
from dataclasses import dataclass


@dataclass
class ModelConfig:
    arch: str = "decoder"            # decoder (causal) | encoder (bidirectional)
    vocab_size: int = 8192
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 1024                 # GLU hidden size H
    max_seq: int = 256
    activation: str = "gelu"         # gelu (tanh form) | silu | relu
    norm: str = "layernorm"          # layernorm | rmsnorm
    norm_eps: float = 1e-5
    positions: str = "learned"       # learned | sinusoidal
    tie_embeddings: bool = True
    label_smoothing: float = 0.0     # train.label_smoothing


@dataclass
class MoeConfig:
    num_experts: int = 0             # 0: dense
    router: str = "switch_top1"      # switch_top1 | gshard_top2 | noisy_topk | expert_choice
    every: int = 2                   # blocks every-1, 2·every-1, ... are MoE
    group_size: int = 0              # 0: the whole micro-batch
    capacity_factor: float = 1.0     # token choice, training (<= 0: no limit)
    eval_capacity_factor: float = 2.0
    top_k: int = 2                   # noisy_topk
    second_policy: str = "random"    # gshard_top2: random | all
    aux_loss: float = -1.0           # < 0: 0.01
    w_importance: float = 0.01
    w_load: float = 0.01
    z_loss: float = 0.0
    jitter: float = 0.0
    ec_capacity: float = 2.0         # expert_choice.capacity
    ec_grouping: str = "auto"        # auto | contiguous | by_position
    max_experts_per_token: int = 0   # capped expert choice's b; 0: uncapped
    eval_routing: str = "groups"     # groups | threshold
    threshold_decay: float = 0.99
    expert_d_ff: int = 0             # 0: model.d_ff
    expert_kind: str = "glu"         # glu | ffn

    def enabled(self):
        return self.num_experts > 0

    def is_moe_block(self, layer):
        return self.enabled() and (layer + 1) % self.every == 0

    def aux_coefficient(self):
        return self.aux_loss if self.aux_loss >= 0 else 0.01


def _typed(cls, section, rename=None):
    out = cls()
    rename = rename or {}
    for key, value in (section or {}).items():
        name = rename.get(key, key)
        if not hasattr(out, name) or isinstance(value, dict):
            continue
        kind = type(getattr(out, name))
        if kind is bool:
            value = value if isinstance(value, bool) else str(value).lower() == "true"
        else:
            value = kind(value)
        setattr(out, name, value)
    return out


def parse_config(config):
    """Resolved config dict (config.yaml) → (ModelConfig, MoeConfig)."""
    model = _typed(ModelConfig, config.get("model"))
    model.label_smoothing = float((config.get("train") or {}).get("label_smoothing", 0.0))
    moe_section = dict(config.get("moe") or {})
    moe = _typed(MoeConfig, moe_section)
    ec = moe_section.get("expert_choice") or {}
    ec_names = {"capacity": "ec_capacity", "grouping": "ec_grouping"}
    moe_ec = _typed(MoeConfig, ec, rename=ec_names)
    for key in ec:
        name = ec_names.get(key, key)
        if hasattr(moe, name):
            setattr(moe, name, getattr(moe_ec, name))
    return model, moe
