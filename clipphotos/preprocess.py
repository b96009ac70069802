"""Turn an upright photo into the model's input tensor without throwing any of it away.

CLIP's stock preprocessing resizes the short side and crops the centre square, so a subject
near the edge of a panorama or a tall phone shot is simply cut off and never found. We
letterbox instead: the whole photo is scaled to fit the model's square input and the rest is
filled with the model's mean colour, which normalises to exactly zero. One view per photo keeps
the cost equal to the centre crop.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def fit(img: Image.Image, size: int) -> Image.Image:
    """`img` in RGB, scaled so that its long side is `size`: the picture `letterbox` pads (the
    indexer also makes the photo's thumbnail from it, rather than shrink the decode twice)."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    w, h = img.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) != (w, h):
        # reducing_gap lets Pillow shrink big images in two fast steps with no visible loss.
        img = img.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return img


def letterbox(img: Image.Image, size: int, mean: Sequence[float] = OPENAI_MEAN) -> Image.Image:
    """The whole of `img` scaled into a `size`×`size` square, padded with the mean colour."""
    img = fit(img, size)
    nw, nh = img.size
    if nw == nh == size:
        return img
    fill = tuple(round(255 * m) for m in mean)
    canvas = Image.new("RGB", (size, size), fill)  # type: ignore[arg-type]
    canvas.paste(img, ((size - nw) // 2, (size - nh) // 2))
    return canvas


def to_array(img: Image.Image, size: int, mean: Sequence[float] = OPENAI_MEAN,
             std: Sequence[float] = OPENAI_STD) -> np.ndarray:
    """A normalised CHW float32 array of the letterboxed photo, ready to batch (numpy, so that
    neither ONNX Runtime nor the decoding threads need torch)."""
    arr = np.asarray(letterbox(img, size, mean), dtype=np.float32)
    scale = np.float32(1 / 255) / np.asarray(std, dtype=np.float32)
    arr = arr * scale - np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))
