"""switchyard_torch: an independent PyTorch implementation of switchyard's model.

A whole-model reference that tests hold switchyard to, and a bridge that loads a
switchyard run (or one of its checkpoints) as a torch.nn.Module whose state_dict
keys are switchyard's logical parameter names.

    import torch, switchyard_torch as sy
    model = sy.load_run("runs/default")             # float64, evaluation mode
    logits, sums = model(ids, targets)              # ids, targets: int [B, T]
    print(float(sums.nll) / sums.count)             # mean NLL of the batch

Files: load.py (config + safetensors), config.py (typed config), layers.py (dense
layers, loss), routing.py (routing rules of one group), moe.py (router, experts,
MoE layer), model.py (the Transformer), check.py (the comparison CLI).
"""
from .load import load_run, read_run, read_safetensors
from .model import LossSums, SwitchyardModel

__all__ = ["load_run", "read_run", "read_safetensors", "SwitchyardModel", "LossSums"]
