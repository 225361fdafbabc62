#!/usr/bin/env python3
"""Loads switchyard weights into numpy arrays, with the standard library and numpy
alone (no torch, no safetensors package): proof that the files are plain
safetensors that PyTorch users can open (torch.from_numpy on each array).

    python3 scripts/load_safetensors.py runs/default/model.safetensors
    python3 scripts/load_safetensors.py runs/default/checkpoints/step_0000700   # sharded
"""
import json
import os
import struct
import sys

import numpy as np

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
          "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", {})
    base = 8 + n
    arrays = {}
    for name, t in header.items():
        begin, end = t["data_offsets"]
        arrays[name] = np.frombuffer(data[base + begin:base + end],
                                     dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
    return arrays, metadata


def load_any(path):
    """A .safetensors file, or a folder with model.safetensors(.index.json)."""
    if os.path.isfile(path):
        return load(path)
    single = os.path.join(path, "model.safetensors")
    if os.path.exists(single):
        return load(single)
    with open(os.path.join(path, "model.safetensors.index.json")) as f:
        weight_map = json.load(f)["weight_map"]
    arrays, metadata = {}, {}
    for file in sorted(set(weight_map.values())):
        part, metadata = load(os.path.join(path, file))
        arrays.update({k: v for k, v in part.items() if weight_map.get(k) == file})
    missing = set(weight_map) - set(arrays)
    if missing:
        raise SystemExit(f"{path}: tensors missing from their files: {sorted(missing)[:5]}")
    return arrays, metadata


if __name__ == "__main__":
    arrays, metadata = load_any(sys.argv[1])
    total = 0
    for name in sorted(arrays):
        a = arrays[name]
        total += a.size
        print(f"{name:40s} {str(a.dtype):8s} {str(list(a.shape)):16s} mean {a.mean():+.4e} std {a.std():.4e}")
    print(f"{len(arrays)} tensors, {total} parameters, metadata {metadata}")
