#!/usr/bin/env python3
"""Indexing throughput: the app's real indexing path against a naive reference, in one run.

Generates a camera-size library with ../shared/bench/make_library.py, then measures
  (a) naive reference pipelines, one picture after another: full decode, fp32 torch, batch 8 —
      once with OpenCLIP's own preprocess (resize + centre crop), once with the app's letterbox
      view (the app deliberately keeps the whole photo, so the accuracy check compares like
      with like: what changes is decoding, threading and precision, not the view);
  (b) the app's real indexing path (`clipphotos index` in a child process, so its peak memory is
      its own), same model and weights.
Prints images/s of each, the ratios, the minimum cosine between the reference's and the app's
embeddings, and the app's peak RSS; then each stage's own cost on the same files (read + hash,
draft decode + letterbox, the image encoder the app chose here, on ready inputs) and the ceiling
they allow on this machine's cores: 1 / ((read + decode) / cores + encoder), next to the app's
figure. Decoding runs on every core in parallel; the encoder already uses them all.

No real weights can be downloaded here: without --weights the model gets random weights made in
this run (speed does not depend on the values; the cosine compares two pipelines on the same
weights).

  python bench/index_throughput.py --count 150
  python bench/index_throughput.py --model ViT-B-32-256 --weights open_clip_model.safetensors
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import os
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[1]
MAKE_LIBRARY = REPO.parent / "shared" / "bench" / "make_library.py"
sys.path.insert(0, str(REPO))

from clipphotos.loader import is_supported  # noqa: E402
from clipphotos.preprocess import to_array  # noqa: E402


def make_weights(model_name: str, out: Path) -> Path:
    import open_clip
    from safetensors.torch import save_file
    torch.manual_seed(0)
    model = open_clip.create_model(model_name, pretrained=None)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out))
    return out


def naive(paths: list[Path], model_name: str, weights: Path, view: str) -> tuple[float, dict[str, np.ndarray]]:
    """Full decode, fp32, batch 8, sequential: what a straightforward script does."""
    import open_clip
    model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=str(weights))
    model.eval()
    size = open_clip.get_model_preprocess_cfg(model)["size"]
    size = size[0] if isinstance(size, (tuple, list)) else size
    out: dict[str, np.ndarray] = {}
    started = time.perf_counter()
    for start in range(0, len(paths), 8):
        batch = []
        for p in paths[start:start + 8]:
            with Image.open(p) as im:
                img = ImageOps.exif_transpose(im).convert("RGB")
            batch.append(preprocess(img) if view == "openclip" else torch.from_numpy(to_array(img, size)))
        with torch.inference_mode():
            vecs = torch.nn.functional.normalize(model.encode_image(torch.stack(batch)), dim=-1).numpy()
        for p, v in zip(paths[start:start + 8], vecs):
            out[str(p)] = v
    return len(paths) / (time.perf_counter() - started), out


def app(photos: Path, model_name: str, weights: Path, lib: Path) -> tuple[float, dict[str, np.ndarray], int]:
    """The real `clipphotos index`, in a child process; returns img/s of the run, vectors, peak RSS."""
    cmd = [sys.executable, "-m", "clipphotos", "index", str(photos), "--library", str(lib),
           "--model", model_name, "--weights", str(weights), "--json"]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)   # this child's own peak (not the library generator's)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, cmd, out.read(), err.read())
        report = json.loads(out.read())
    peak_kb = usage.ru_maxrss
    with closing(sqlite3.connect(lib / "catalog.sqlite3")) as db:   # the bench reads the rows themselves
        rows = db.execute("SELECT p.path, v.vec FROM photos p JOIN vectors v ON v.content_id=p.content_id").fetchall()
    vecs = {bytes(p).decode(): np.frombuffer(v, dtype=np.float16).astype(np.float32) for p, v in rows}
    files = report["indexed"] + report["unchanged"] + report["moved"]
    return files / report["seconds"], vecs, peak_kb * 1024


def stage_costs(paths: list[Path], model_name: str, weights: Path, lib: Path, sample: int = 40) -> dict[str, float]:
    """Seconds per photo of each indexing stage alone, one after another on one thread (read +
    hash, decode + prepare), and of the encoder the app chose here (all cores, batch 16)."""
    from clipphotos.embedder import Embedder
    from clipphotos.indexer import content_hash
    from clipphotos.inference import open_model
    from clipphotos.loader import load_image
    from clipphotos.models import ModelSpec
    embedder = Embedder(open_model(ModelSpec(model_name, None, str(weights), "cpu"), lib))
    picked = paths[:sample]
    started = time.perf_counter()
    blobs = [p.read_bytes() for p in picked]
    for blob in blobs:
        content_hash(blob)
    read = (time.perf_counter() - started) / len(picked)
    started = time.perf_counter()
    inputs = [embedder.prepare(load_image(blob, target=embedder.decode_size).image) for blob in blobs]
    decode = (time.perf_counter() - started) / len(picked)
    batch = np.stack((inputs * 16)[:16])
    embedder.encode_batch(batch)  # warm-up
    runs = [time.perf_counter()]
    for _ in range(3):
        embedder.encode_batch(batch)
        runs.append(time.perf_counter())
    encode = min(b - a for a, b in zip(runs, runs[1:])) / len(batch)
    loaded = embedder.loaded
    return {"read": read, "decode": decode, "encode": encode, "backend": loaded.backend,  # type: ignore[dict-item]
            "precision": loaded.precision}  # type: ignore[dict-item]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=150)
    ap.add_argument("--max-side", type=int, default=6016, help="long side of the generated photos")
    ap.add_argument("--model", default="ViT-B-32-256")
    ap.add_argument("--weights", type=Path, help="a real checkpoint; default: random weights made here")
    ap.add_argument("--photos", type=Path, help="an existing folder instead of a generated library")
    ap.add_argument("--skip-openclip-view", action="store_true", help="skip the centre-crop reference run")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="clipphotos-bench-"))
    photos = args.photos
    if photos is None:
        if not MAKE_LIBRARY.exists():
            sys.exit(f"{MAKE_LIBRARY} is missing; pass --photos FOLDER")
        photos = work / "photos"
        subprocess.run([sys.executable, str(MAKE_LIBRARY), "--out", str(photos), "--count", str(args.count),
                        "--max-side", str(args.max_side), "--dup-rate", "0"], check=True, capture_output=True)
    paths = sorted(p for p in photos.rglob("*") if p.is_file() and is_supported(p.name))
    weights = args.weights or make_weights(args.model, work / "weights.safetensors")
    print(f"{len(paths)} photos, model {args.model}, {'given' if args.weights else 'random'} weights, "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")

    # First: the one-time export and measurement on this CPU (kept in the library folder), and
    # each stage alone; the app's run below then starts as any later run does.
    cost = stage_costs(paths, args.model, weights, work / "lib")
    app_rate, app_vecs, peak = app(photos, args.model, weights, work / "lib")
    print(f"app indexing path            {app_rate:6.2f} img/s   peak RSS {peak / 2**30:.2f} GiB")
    ref_rate, ref_vecs = naive(paths, args.model, weights, "letterbox")
    print(f"naive, letterbox view        {ref_rate:6.2f} img/s   ratio app/naive {app_rate / ref_rate:5.2f}")
    if not args.skip_openclip_view:
        oc_rate, _ = naive(paths, args.model, weights, "openclip")
        print(f"naive, OpenCLIP centre crop  {oc_rate:6.2f} img/s   ratio app/naive {app_rate / oc_rate:5.2f}")
    cores = os.cpu_count() or 1
    ceiling = 1 / ((cost["read"] + cost["decode"]) / cores + cost["encode"])
    print(f"stage costs per photo: read + hash {cost['read'] * 1e3:.1f} ms, draft decode + letterbox "
          f"{cost['decode'] * 1e3:.1f} ms (one core each), image encoder {cost['encode'] * 1e3:.1f} ms of all "
          f"{cores} cores ({cost['precision']} through {cost['backend']}, {1 / cost['encode']:.1f} img/s alone)")
    print(f"ceiling they allow           {ceiling:6.2f} img/s   app reaches {app_rate / ceiling:.0%} of it "
          f"(goal >= 90%)")
    cos = [float(ref_vecs[k] @ app_vecs[k] / np.linalg.norm(app_vecs[k])) for k in ref_vecs if k in app_vecs]
    print(f"embeddings compared: {len(cos)}; min cosine app vs naive (same view) {min(cos):.5f}")
    print(f"goal: ratio >= 6.0 with min cosine >= 0.999; work folder {work}")


if __name__ == "__main__":
    main()
