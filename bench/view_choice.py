#!/usr/bin/env python3
"""Which view of a photo should the model see? Letterbox (the app's choice) against the centre crop.

CLIP's stock preprocessing crops the centre square, which cuts the sides off wide and tall
photos. This bench measures both views with the bundled shapes model on
  - ordinary pictures (the shape anywhere; most of them near-square or 4:3), and
  - wide and tall pictures whose subject sits near an edge (panoramas, phone screenshots),
as top-1 zero-shot accuracy over the 32 colour × shape classes, plus the cost of each view.

  python bench/view_choice.py --pictures 320
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clipphotos.embedder import Embedder  # noqa: E402
from clipphotos.models import SHAPES_CONFIG, SHAPES_WEIGHTS, ModelSpec, load_model  # noqa: E402
from clipphotos.preprocess import to_array  # noqa: E402
from clipphotos.shapes import CLASSES, draw_shape  # noqa: E402


def to_tensor(*args) -> torch.Tensor:
    """The app's preprocessing (clipphotos.preprocess.to_array) as a torch tensor."""
    return torch.from_numpy(to_array(*args))


def centre_crop_tensor(img: Image.Image, size: int, mean, std) -> torch.Tensor:
    """OpenCLIP's stock view: shortest side to `size`, then the centre square."""
    w, h = img.size
    s = size / min(w, h)
    img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.Resampling.BICUBIC)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    return to_tensor(img.crop((left, top, left + size, top + size)), size, mean, std)


def edge_picture(rng: random.Random, colour: str, shape: str) -> Image.Image:
    """A wide or tall scene with the subject in its outer fifth."""
    wide = rng.random() < 0.5
    long_side, short_side = rng.randint(1200, 1800), rng.randint(300, 450)
    size = (long_side, short_side) if wide else (short_side, long_side)
    grey = rng.randint(90, 170)
    scene = Image.new("RGB", size, (grey, grey, grey))
    tile = draw_shape(rng, colour, shape, (short_side, short_side))
    offset = rng.randint(0, long_side // 5 - 1) if rng.random() < 0.5 else long_side - short_side - rng.randint(0, long_side // 5 - 1)
    scene.paste(tile, (offset, 0) if wide else (0, offset))
    return scene


def accuracy(embedder: Embedder, pictures, labels, texts, view) -> tuple[float, float]:
    loaded = embedder.loaded
    text = np.stack([embedder.encode_query(t) for t in texts])
    started = time.perf_counter()
    batch = torch.stack([view(p, loaded.image_size, loaded.mean, loaded.std) for p in pictures])
    prep_ms = (time.perf_counter() - started) * 1000 / len(pictures)
    vecs = embedder.encode_batch(batch.numpy())
    predicted = np.argmax(vecs @ text.T, axis=1)
    return float(np.mean(predicted == np.asarray(labels))), prep_ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pictures", type=int, default=320)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    embedder = Embedder(load_model(ModelSpec(str(SHAPES_CONFIG), None, str(SHAPES_WEIGHTS), "cpu")))
    texts = [f"a {c} {s}" for c, s in CLASSES]
    rng = random.Random(args.seed)
    labels = [i % len(CLASSES) for i in range(args.pictures)]
    ordinary = [draw_shape(rng, *CLASSES[i]) for i in labels]
    edges = [edge_picture(rng, *CLASSES[i]) for i in labels]
    views = {"letterbox (app)": to_tensor, "centre crop (stock)": centre_crop_tensor}
    print(f"{args.pictures} pictures per set, 32 classes, shapes model")
    print(f"{'view':<22}{'ordinary':>10}{'subject at edge':>18}{'ms/picture':>12}")
    for name, view in views.items():
        acc_o, ms_o = accuracy(embedder, ordinary, labels, texts, view)
        acc_e, ms_e = accuracy(embedder, edges, labels, texts, view)
        print(f"{name:<22}{acc_o:>10.3f}{acc_e:>18.3f}{(ms_o + ms_e) / 2:>12.2f}")


if __name__ == "__main__":
    main()
