"""Put a weights file into a built model without holding a second copy of it in memory.

OpenCLIP's loader reads the whole checkpoint, then copies it into the model: for ViT-B-32 that
is 600 MB on top of the model's own 600 MB for a moment, which is most of the app's peak memory.
A safetensors file whose tensors are exactly the model's (OpenCLIP's own format, what the hub
serves) is instead read tensor by tensor straight into the model's storage. Any other file —
another format, renamed or reshaped keys — goes through OpenCLIP's `load_checkpoint`, which
knows every conversion.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import torch

# safetensors dtype names -> numpy dtypes that can hold their bytes (bf16 is read as raw 16 bits)
_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64,
           "I64": np.int64, "I32": np.int32}


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load `path` into `model` (strictly: every tensor of the model, and nothing else)."""
    header = _safetensors_header(path) if path.suffix == ".safetensors" else None
    state = model.state_dict()  # tensors sharing the parameters' storage
    if header is not None and _matches(state, header):
        _stream_into(state, path, header)
        return
    from open_clip.factory import load_checkpoint
    load_checkpoint(model, str(path), strict=True)


def _safetensors_header(path: Path) -> tuple[int, dict] | None:
    """(where the data starts, the tensor table) of a safetensors file, or None if it is not one."""
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > 100 << 20:
                return None
            table = json.loads(f.read(length))
    except (OSError, ValueError, struct.error):
        return None
    table.pop("__metadata__", None)
    return 8 + length, table


def _matches(state: dict[str, torch.Tensor], header: tuple[int, dict]) -> bool:
    """Whether the file holds exactly the model's tensors, by name and shape, in dtypes we read."""
    _, table = header
    return (set(table) == set(state)
            and all(table[k].get("dtype") in _DTYPES and list(table[k].get("shape", ())) == list(v.shape)
                    for k, v in state.items()))


def _stream_into(state: dict[str, torch.Tensor], path: Path, header: tuple[int, dict]) -> None:
    """Read each tensor's bytes from the file into the model's tensor (converting dtype if needed)."""
    start, table = header
    with open(path, "rb") as f, torch.no_grad():
        for name, target in state.items():
            entry = table[name]
            begin, end = entry["data_offsets"]
            dtype = _DTYPES[entry["dtype"]]
            view = target.numpy()
            direct = entry["dtype"] != "BF16" and target.is_contiguous() and view.dtype == dtype
            raw = view.reshape(-1) if direct else np.empty(target.numel(), dtype=dtype)
            if raw.nbytes != end - begin:
                raise ValueError(f"{path.name}: tensor {name} has {end - begin} bytes for shape {entry['shape']}")
            f.seek(start + begin)
            if f.readinto(memoryview(raw).cast("B")) != raw.nbytes:
                raise ValueError(f"{path.name} ends inside tensor {name}")
            if not direct:
                tensor = torch.from_numpy(raw)
                target.copy_((tensor.view(torch.bfloat16) if entry["dtype"] == "BF16" else tensor).reshape(target.shape))
