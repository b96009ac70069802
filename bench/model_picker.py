#!/usr/bin/env python3
"""The models the picker could offer: published quality against image-encoding speed on this CPU.

For each candidate the image tower is built with random weights (none can be downloaded here;
speed does not depend on the values), MobileCLIP towers reparameterised as the app loads them
(clipphotos.models.reparameterise), exported to ONNX and quantised to int8 exactly as the app
does at a first load on a CPU (clipphotos.onnx_export), and timed through ONNX Runtime as the
indexer runs it (its batch, its encodes side by side, one session each with the threads its plan
gives: clipphotos.indexer.plan_encoders): the path the app takes on a CPU. int8 counts only
where its cosine to torch fp32 is at least 0.999, as the app's own choice requires. Every model
is timed in turn, round by round (the machine may be shared: a busy moment slows all of them, not one), best of the rounds, with
ratios against today's default (ViT-B-32-256) from the same run. Whether the model can take
that path at all (onnx_export.supported) is printed too: one that cannot runs on torch.

The quality figures are the published ones, not measured here (sources in PUBLISHED).

  python bench/model_picker.py
  python bench/model_picker.py --models ViT-B-32-256 MobileCLIP2-S2 --rounds 2
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clipphotos.models import cpu_identity  # noqa: E402

from clipphotos.indexer import BATCH_SIZE as BATCH, MAX_LANES, usable_cores  # noqa: E402
from clipphotos.models import HALF_PRECISION_AGREEMENT as AGREEMENT  # noqa: E402
OPENCLIP = "open_clip docs/openclip_results.csv and openclip_retrieval_results.csv"
APPLE = "apple/ml-mobileclip README (MobileCLIP and MobileCLIP2 tables) and results/mobileclip*_s2.jsonl"
# The weights' terms matter for an app: MobileCLIP's (LICENSE_weights_data) allow use and
# redistribution; MobileCLIP2's (LICENSE_MODELS, "Apple Machine Learning Research Model") allow
# non-commercial research only, "not ... use in any commercial product".
LICENCE = {"MobileCLIP-S2": "Apple sample-code terms (use allowed)",
           "MobileCLIP2-S2": "research only", "MobileCLIP2-B": "research only"}
# (pretrained tag, ImageNet-1k zero-shot, average of the 38 DataComp datasets, Flickr30k image
# retrieval R@1, MSCOCO 5k image retrieval R@1, source)
PUBLISHED = {
    "ViT-B-32-256": ("datacomp_s34b_b86k", 72.8, 60.9, 64.9, 39.9, OPENCLIP),
    "MobileCLIP-S2": ("datacompdr", 74.4, 63.7, 73.4, 45.4, APPLE),
    "MobileCLIP2-S2": ("dfndr2b", 77.2, 64.1, 74.8, 48.8, APPLE),
    "MobileCLIP2-B": ("dfndr2b", 79.4, 65.8, None, None, APPLE),
    "ViT-L-14": ("datacomp_xl_s13b_b90k", 79.2, 66.3, 73.4, 45.7, OPENCLIP),
}
DEFAULT_MODELS = ("ViT-B-32-256", "MobileCLIP-S2", "MobileCLIP2-S2", "MobileCLIP2-B", "ViT-L-14", "ViT-B-16-SigLIP2-256")


def export_image_tower(loaded, folder: Path) -> tuple[Path, Path]:
    """The image tower's fp32 export and its int8 weights, made as onnx_export.export makes them."""
    from clipphotos.onnx_export import export_image, quantise
    from clipphotos.onnx_runtime import tower_file
    fp32, int8 = tower_file(folder, "image", "fp32"), tower_file(folder, "image", "int8")
    folder.mkdir(parents=True, exist_ok=True)
    export_image(loaded.model, loaded.image_size, fp32)
    quantise(fp32, int8)
    return fp32, int8


def timed(sessions: list, pictures: np.ndarray) -> float:
    """Seconds for every lane's session to encode the batch, all at once (as the indexer's encodes)."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(len(sessions)) as pool:
        started = time.perf_counter()
        list(pool.map(lambda session: session.run(None, {"pixels": pictures}), sessions))
        return time.perf_counter() - started


def speeds(entry: dict, lanes: int) -> dict[str, float]:
    """Images/s of each precision at its best round, every lane encoding a batch."""
    return {p: BATCH * lanes / min(t) for p, t in entry["times"].items()}


def usable_speed(entry: dict, lanes: int) -> float:
    """Images/s the app would reach: int8 only where it agrees with fp32 as the app requires."""
    ips = speeds(entry, lanes)
    return max(ips["fp32"], ips["int8"] if entry["int8_cos"] >= AGREEMENT else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cores", type=int, default=usable_cores())
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    import torch

    from clipphotos import onnx_export
    from clipphotos.models import ModelSpec, load_model
    from clipphotos.onnx_runtime import _session
    work = Path(tempfile.mkdtemp(prefix="clipphotos-model-picker-"))
    lanes = min(args.cores, MAX_LANES)          # as plan_encoders: one encode per core, one thread each
    threads = max(1, args.cores // lanes)
    print(f"CPU: {cpu_identity()}; load {os.getloadavg()[0]:.2f} (1 min) at the start")
    runs: dict[str, dict] = {}
    for name in args.models:
        torch.manual_seed(0)
        try:
            loaded = load_model(ModelSpec(name, None, None, "cpu", "fp32"))
        except Exception as exc:  # noqa: BLE001 - e.g. a tokenizer that must come from the hub
            print(f"{name}: cannot be built here: {str(exc).splitlines()[0][:200]}")
            continue
        why_not = onnx_export.supported(loaded)
        params = sum(p.numel() for p in loaded.model.visual.parameters()) / 1e6
        if why_not is not None:
            print(f"{name}: no ONNX path ({why_not}); it would run on torch")
            continue
        rng = np.random.default_rng(0)
        pictures = rng.normal(0, 1, (BATCH, 3, loaded.image_size, loaded.image_size)).astype(np.float32)
        started = time.perf_counter()
        fp32, int8 = export_image_tower(loaded, work / name)
        with torch.inference_mode():
            ref = torch.nn.functional.normalize(loaded.model.encode_image(torch.from_numpy(pictures[:4])), dim=-1)
        del loaded
        entry = {"params": params, "export_s": time.perf_counter() - started, "sessions": {}, "times": {},
                 "pictures": pictures}
        for precision, path in (("fp32", fp32), ("int8", int8)):
            sessions = [_session(path, threads) for _ in range(lanes)]
            out = sessions[0].run(None, {"pixels": pictures})[0][:4]       # also the warm-up
            timed(sessions, pictures)
            out = out / np.linalg.norm(out, axis=1, keepdims=True)
            entry["sessions"][precision] = sessions
            entry[f"{precision}_cos"] = float((out * ref.numpy()).sum(1).min())
            entry["times"][precision] = []
        runs[name] = entry
        print(f"{name}: exported and quantised in {entry['export_s']:.0f} s")
    for _ in range(args.rounds):
        for entry in runs.values():
            for precision, session in entry["sessions"].items():
                entry["times"][precision].append(timed(session, entry["pictures"]))
    base = runs.get("ViT-B-32-256")
    print(f"\nImage tower through ONNX Runtime, batch {BATCH}, {lanes} encodes at once of {threads} thread"
          f"{'s' if threads > 1 else ''} each; best of {args.rounds} rounds")
    print(f"{'model':<22}{'img M':>6}{'fp32/s':>8}{'int8/s':>8}{'x B-32':>7}{'int8 cos':>9}"
          f"{'IN-1k':>7}{'avg38':>7}{'Flickr':>7}{'COCO':>6}  published weights")
    for name, entry in runs.items():
        ips = speeds(entry, lanes)
        ratio = f"{usable_speed(entry, lanes) / usable_speed(base, lanes):.2f}" if base else "-"
        pub = PUBLISHED.get(name)
        figures = "".join(f"{v:>7.1f}" if v is not None else f"{'-':>7}" for v in pub[1:5]) if pub else " " * 28
        print(f"{name:<22}{entry['params']:>6.0f}{ips['fp32']:>8.2f}{ips['int8']:>8.2f}{ratio:>7}"
              f"{entry['int8_cos']:>9.5f}{figures}  {pub[0] if pub else '?'}"
              + (f" ({LICENCE[name]})" if name in LICENCE else ""))
    print(f"(x B-32: the faster precision's images/s (int8 only within {AGREEMENT} cosine) against ViT-B-32-256's; "
          "int8 cos: worst cosine of the int8 export to torch fp32; published: IN-1k zero-shot top-1 %, average of 38 datasets %, "
          "Flickr30k and MSCOCO image retrieval R@1 %)")
    for source in sorted({p[5] for p in PUBLISHED.values()}):
        print(f"  source: {source}")
    print(f"load {os.getloadavg()[0]:.2f} (1 min) at the end")


if __name__ == "__main__":
    main()
