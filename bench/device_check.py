#!/usr/bin/env python3
"""The GPU path, checked end to end: index, compare with the CPU, search, find duplicates.

On a machine with a CUDA (or Apple MPS) GPU this draws a camera library with the project's own
generator, indexes it with the bundled shapes model and with ViT-B-32-256 (random weights made
here and saved once, so both devices load the same numbers) on the GPU in fp16 and on the CPU in
fp32, and checks that every photo's vectors agree (cosine >= 0.999), that searches return the
same photos and that a duplicates pass finds the same groups. It prints images/s on each device.
Without a GPU it says so and runs the CPU half, so the script itself stays tested.

  python bench/device_check.py                 # about 2 minutes on an H200 machine's CPU and GPU
  python bench/device_check.py --count 60      # smaller
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fixtures.camera_library import make_library  # noqa: E402

from clipphotos.library import Library  # noqa: E402
from clipphotos.models import SHAPES_CONFIG, SHAPES_WEIGHTS, ModelSpec  # noqa: E402

QUERIES = ("a red star", "a blue circle", "a green square", "a photo of a yellow triangle", "a white thing")
BAR = 0.999


def gpu_device() -> str | None:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return None


def random_vit_weights(folder: Path) -> Path:
    """ViT-B-32-256 with weights drawn once here (the real ones cannot be downloaded everywhere)."""
    import open_clip
    from safetensors.torch import save_file
    torch.manual_seed(0)
    logging.getLogger().setLevel(logging.ERROR)   # "initialized randomly" is the point here
    model = open_clip.create_model("ViT-B-32-256", pretrained=None)
    path = folder / "vit-b-32-256-random.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def index_on(root: Path, photos: Path, spec: ModelSpec) -> tuple[Library, float, int]:
    lib = Library(root, model=spec)
    _ = lib.embedder                     # the model's load is not indexing speed
    started = time.perf_counter()
    report = lib.index_folders([photos])
    seconds = time.perf_counter() - started
    return lib, report.embedded / seconds if seconds else 0.0, report.embedded


def vectors_by_hash(lib: Library) -> dict[str, np.ndarray]:
    hashes = {p.content_id: p.hash for p in lib.catalog.iter_photos()}
    ids, vecs = lib.catalog.vectors(lib.model_id)
    return {hashes[int(c)]: v for c, v in zip(ids, vecs)}


def compare(cpu: Library, gpu: Library) -> dict:
    a, b = vectors_by_hash(cpu), vectors_by_hash(gpu)
    worst = min(float(np.dot(a[h], b[h])) for h in a) if a.keys() == b.keys() else float("nan")
    same_top = sum({r.path for r in cpu.search(q, limit=5)} == {r.path for r in gpu.search(q, limit=5)}
                   for q in QUERIES)
    groups = [sorted(tuple(sorted(g.paths)) for g in lib.duplicates(("exact", "near"))) for lib in (cpu, gpu)]
    return {"min_cosine": worst, "same_top5": f"{same_top}/{len(QUERIES)}", "same_dupes": groups[0] == groups[1],
            "dupe_groups": len(groups[0])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=120, help="photos to draw (default 120)")
    ap.add_argument("--max-side", type=int, default=2000, help="long side of the drawn photos")
    args = ap.parse_args()
    gpu = gpu_device()
    print(f"torch {torch.__version__}; GPU: {torch.cuda.get_device_name(0) if gpu == 'cuda' else gpu or 'none'}")
    if gpu is None:
        print("No CUDA or MPS GPU found: running the CPU half only (fp32).")
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        photos = work / "photos"
        make_library(photos, args.count, max_side=args.max_side, seed=11, workers=2)
        vit = random_vit_weights(work)
        models = {"shapes": (str(SHAPES_CONFIG), str(SHAPES_WEIGHTS)), "ViT-B-32-256": ("ViT-B-32-256", str(vit))}
        print(f"{'model':14} {'device':7} {'precision':9} {'img/s':>7}  check")
        for name, (config, weights) in models.items():
            cpu, cpu_rate, n = index_on(work / f"cpu-{name}", photos, ModelSpec(config, None, weights, "cpu", "fp32"))
            print(f"{name:14} {'cpu':7} {'fp32':9} {cpu_rate:7.1f}  {n} pictures embedded")
            if gpu is not None:
                dev, dev_rate, _ = index_on(work / f"gpu-{name}", photos, ModelSpec(config, None, weights, gpu, "fp16"))
                result = compare(cpu, dev)
                ok = result["min_cosine"] >= BAR and result["same_dupes"]
                failed |= not ok
                print(f"{name:14} {gpu:7} {dev.precision()[0]:9} {dev_rate:7.1f}  "
                      f"{'ok' if ok else 'FAILED'}: min cosine to CPU fp32 {result['min_cosine']:.5f} (bar {BAR}), "
                      f"same top 5 for {result['same_top5']} queries, duplicate groups "
                      f"{'the same' if result['same_dupes'] else 'DIFFER'} ({result['dupe_groups']}); "
                      f"{dev_rate / cpu_rate:.1f}x the CPU")
                dev.close()
            else:
                hits = cpu.search(QUERIES[0], limit=5)
                groups = cpu.duplicates(("exact", "near"))
                print(f"{'':14} {'':7} {'':9} {'':7}  search answered {len(hits)}, {len(groups)} duplicate groups")
            cpu.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
