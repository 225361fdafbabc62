"""Reading a switchyard run: its resolved config and its weights.

Mirrors src/checkpoint/safetensors.cpp (the file format), src/checkpoint/model_io.cpp
(model.safetensors, or model.safetensors.index.json + model-rank-R.safetensors, with
the expert-choice thresholds stored beside the weights as F64 tensors
`blocks.L.moe.router.thresholds`) and src/checkpoint/checkpoint.cpp (a checkpoint
folder: state.json holds the config and, under "router_state", the thresholds).
Safetensors are read with struct + json + numpy only (the `safetensors` package is
not needed), as scripts/load_safetensors.py does.
"""
import json
import os
import struct

import numpy as np
import yaml

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
          "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path):
    """One .safetensors file → ({name: numpy array}, metadata)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", {}) or {}
    base = 8 + n
    arrays = {}
    for name, t in header.items():
        begin, end = t["data_offsets"]
        arrays[name] = np.frombuffer(data[base + begin:base + end],
                                     dtype=DTYPES[t["dtype"]]).reshape(t["shape"]).copy()
    return arrays, metadata


def read_sharded(folder, index="model.safetensors.index.json"):
    """model.safetensors.index.json (weight_map: tensor → file) → {name: array}."""
    with open(os.path.join(folder, index)) as f:
        weight_map = json.load(f)["weight_map"]
    files = {}
    arrays = {}
    for name, file in weight_map.items():
        if file not in files:
            files[file] = read_safetensors(os.path.join(folder, file))[0]
        if name not in files[file]:
            raise ValueError(f"{folder}/{file}: no tensor '{name}' (named by {index})")
        arrays[name] = files[file][name]
    return arrays


def read_config(path_or_text, is_text=False):
    """switchyard's fully resolved config.yaml → nested dict."""
    text = path_or_text if is_text else open(path_or_text).read()
    return yaml.safe_load(text)


def _is_checkpoint(folder):
    state = os.path.join(folder, "state.json")
    if not os.path.exists(state):
        return False
    with open(state) as f:
        return json.load(f).get("format") == "switchyard-checkpoint"


def resolve(path, checkpoint=None):
    """The folder to load: the run itself, or one of its checkpoints
    (checkpoint = 'latest', a step number, or a folder name under checkpoints/)."""
    if checkpoint is None:
        return path
    ckdir = os.path.join(path, "checkpoints")
    if checkpoint == "latest":
        with open(os.path.join(ckdir, "latest")) as f:
            checkpoint = f.read().strip()
    elif isinstance(checkpoint, int) or str(checkpoint).isdigit():
        checkpoint = f"step_{int(checkpoint):07d}"
    return os.path.join(ckdir, str(checkpoint))


def read_run(path, checkpoint=None):
    """A run folder (config.yaml + model.safetensors or model.safetensors.index.json)
    or a checkpoint folder (checkpoints/step_NNNNNNN: state.json + sharded weights;
    optimizer files are ignored) → (config dict, {name: numpy array}). The arrays
    include `blocks.L.moe.router.thresholds` (F64) where the run has them."""
    folder = resolve(path, checkpoint)
    if _is_checkpoint(folder):
        with open(os.path.join(folder, "state.json")) as f:
            state = json.load(f)
        if "config" in state:
            config = read_config(state["config"], is_text=True)
        else:
            config = read_config(os.path.join(folder, "..", "..", "config.yaml"))
        arrays = read_sharded(folder)
        for name, values in state.get("router_state", {}).items():
            arrays[name] = np.asarray(values, dtype=np.float64)
        return config, arrays
    config = read_config(os.path.join(folder, "config.yaml"))
    if os.path.exists(os.path.join(folder, "model.safetensors")):
        arrays, _ = read_safetensors(os.path.join(folder, "model.safetensors"))
    elif os.path.exists(os.path.join(folder, "model.safetensors.index.json")):
        arrays = read_sharded(folder)
    else:
        raise FileNotFoundError(f"'{folder}' holds neither model.safetensors nor "
                                "model.safetensors.index.json (did the run finish?)")
    return config, arrays


def load_run(path, checkpoint=None, dtype=None):
    """A switchyard run as a SwitchyardModel (float64 by default: the reference)."""
    import torch

    from .model import SwitchyardModel

    config, arrays = read_run(path, checkpoint)
    model = SwitchyardModel(config, dtype=dtype or torch.float64)
    model.load_switchyard_weights(arrays)
    model.eval()
    return model
