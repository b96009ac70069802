#!/usr/bin/env python3
"""ONNX Runtime against OpenVINO on the same exported towers, on this CPU, in one run.

The app exports a model's towers to ONNX at its first load on a CPU (clipphotos.onnx_export:
fp32, and int8 weights from ONNX Runtime's dynamic quantisation) and runs them with ONNX
Runtime. This bench runs the very same files with OpenVINO too (for texts, the plain trimmed
text tower exported beside them: the app's own text graph continues texts from kept starts with
ONNX Runtime's fused attention, which OpenVINO cannot read), and, where NNCF can be
imported, OpenVINO's own int8 (NNCF weight compression of the fp32 export, INT8_ASYM), and
prints for each:
  - images/s of the image tower at the indexer's batch (best of 3 after a warm-up),
  - the latency of one text call (3 short queries, trimmed as the app trims them; best of 5),
  - the time to open the towers: first open (ONNX Runtime optimises and saves the graph;
    OpenVINO compiles into an empty model cache) and a later open (the saved graph; the
    cache),
  - the worst cosine to torch fp32 over a probe of pictures and texts,
and each figure's ratio to ONNX Runtime at the same precision, measured in the same run.

No real weights can be downloaded here: without --weights the model gets random weights
(speed does not depend on the values; the cosines compare runtimes on the same weights), made
from a fixed seed so that the export is kept between runs.

  python bench/cpu_backends.py                          # ViT-B-32-256, random weights
  python bench/cpu_backends.py --model MobileCLIP-S2 --weights FILE
  PYTHONPATH=/tmp/nncf-pkgs python bench/cpu_backends.py   # with OpenVINO's own int8 (NNCF)
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clipphotos.models import cpu_identity  # noqa: E402

TEXTS = ("a cat", "red car at night", "birthday cake")
BATCH = 16   # clipphotos.indexer.BATCH_SIZE


def unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32, copy=False)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def worst(a: np.ndarray, b: np.ndarray) -> float:
    return float((unit(a) * unit(b)).sum(axis=1).min())


def load_reference(args: argparse.Namespace, folder: Path):
    """The fp32 torch model, and its export in `folder` (made here unless already there)."""
    from clipphotos import onnx_export
    from clipphotos.models import ModelSpec, load_model
    from clipphotos.onnx_runtime import read_manifest
    import torch
    torch.manual_seed(0)   # random weights: the same ones each run, so the export can be kept
    loaded = load_model(ModelSpec(args.model, None, args.weights, "cpu", "fp32"))
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("key") != loaded.key:
        started = time.perf_counter()
        manifest = onnx_export.export(loaded, folder)
        print(f"exported {args.model} to {folder} in {time.perf_counter() - started:.0f} s "
              f"(export, int8, the app's own timings)")
    plain = plain_text_file(folder, "fp32")
    if not plain.exists() or plain.stat().st_mtime < (folder / "manifest.json").stat().st_mtime:
        # The standard-ONNX text tower both runtimes can read, in fp32 and int8 as the app makes its own.
        onnx_export.export_plain_text(loaded.model, loaded.tokenizer(list(TEXTS)), manifest["text_trim"], plain)
        onnx_export.quantise(plain, plain_text_file(folder, "int8"))
    return loaded, manifest


def plain_text_file(folder: Path, precision: str) -> Path:
    return folder / f"text-plain-{precision}.onnx"


class OrtRunner:
    name = "onnxruntime"

    def __init__(self, path: Path, threads: int) -> None:
        from clipphotos.onnx_runtime import _session
        self.session = _session(path, threads)

    @staticmethod
    def forget(path: Path) -> None:
        """Remove what clipphotos.onnx_runtime._session saved of this tower, so that it opens as
        at a first run (the saved graph and its weights; the whole-file form of older versions)."""
        for suffix in (".mapped.onnx", ".mapped.data", ".optimised.onnx"):
            path.with_suffix(suffix).unlink(missing_ok=True)

    def __call__(self, name: str, data: np.ndarray) -> np.ndarray:
        return self.session.run(None, {name: data})[0]


class OvRunner:
    name = "openvino"
    cache = Path(tempfile.gettempdir()) / "clipphotos-bench-ov-cache"

    def __init__(self, path: Path, threads: int) -> None:
        import openvino as ov
        core = ov.Core()
        core.set_property({"CACHE_DIR": str(self.cache / path.parent.name / path.stem)})
        self.compiled = core.compile_model(str(path), "CPU", {
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads})
        self.request = self.compiled.create_infer_request()

    @classmethod
    def forget(cls, path: Path) -> None:
        shutil.rmtree(cls.cache / path.parent.name / path.stem, ignore_errors=True)

    def __call__(self, name: str, data: np.ndarray) -> np.ndarray:
        return self.request.infer({name: data})[0].copy()


def nncf_int8(source: Path, target: Path) -> Path | None:
    """OpenVINO's own int8: NNCF weight compression of the fp32 export (None without NNCF)."""
    try:
        import nncf
    except ImportError:
        return None
    import openvino as ov
    if not target.exists():
        model = ov.Core().read_model(str(source))
        compressed = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
        ov.save_model(compressed, str(target))
    return target


def open_towers(runner_cls, image: Path, text: Path, threads: int) -> tuple[dict, object, object]:
    """Open both towers twice: first with nothing saved (ONNX Runtime's optimised graph, OpenVINO's
    cache removed), then again as a later run would."""
    runner_cls.forget(image)
    runner_cls.forget(text)
    started = time.perf_counter()
    runner_cls(image, threads), runner_cls(text, threads)
    first_open = time.perf_counter() - started
    started = time.perf_counter()
    image_run, text_run = runner_cls(image, threads), runner_cls(text, threads)
    return {"first_open": first_open, "later_open": time.perf_counter() - started}, image_run, text_run


def timed(run, *args) -> float:
    started = time.perf_counter()
    run(*args)
    return time.perf_counter() - started


def measure(opened: list[tuple[dict, object, object]], pictures: np.ndarray, tokens: np.ndarray,
            rounds: int) -> None:
    """Images/s and text latency of every runner, taking turns round by round (the machine is
    shared: a busy moment then slows all of them, not one), best of the rounds."""
    for r, image_run, text_run in opened:
        r["images"], r["texts"] = image_run("pixels", pictures), text_run("tokens", tokens)   # warm-up
        r["image_s"], r["text_s"] = [], []
    for _ in range(rounds):
        for r, image_run, text_run in opened:
            r["image_s"].append(timed(image_run, "pixels", pictures))
            r["text_s"].append(min(timed(text_run, "tokens", tokens) for _ in range(3)))
    for r, _, _ in opened:
        r["ips"], r["text_ms"] = len(pictures) / min(r["image_s"]), min(r["text_s"]) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ViT-B-32-256")
    ap.add_argument("--weights", help="a checkpoint file (default: random weights)")
    ap.add_argument("--folder", type=Path, help="where the export is kept between runs "
                    "(default: a folder per model in the temp dir)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=3, help="timing rounds, every runtime in turn")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    import openvino
    import onnxruntime
    import torch

    from clipphotos.onnx_export import probe_pictures
    from clipphotos.onnx_runtime import tower_file
    from clipphotos.tokenizer import read_length
    folder = args.folder or Path(tempfile.gettempdir()) / f"clipphotos-bench-export-{args.model}"
    loaded, manifest = load_reference(args, folder)
    probe = probe_pictures(loaded)
    pictures = np.concatenate([probe] * (BATCH // len(probe) + 1))[:BATCH]
    tokens = loaded.tokenizer(list(TEXTS)).numpy()
    if manifest["text_trim"]:
        tokens = tokens[:, :read_length(tokens, manifest["text_pool"], manifest["text_eos_id"])]
    with torch.inference_mode():
        ref_images = loaded.model.encode_image(torch.from_numpy(pictures)).numpy()
        ref_texts = loaded.model.encode_text(loaded.tokenizer(list(TEXTS))).numpy()
    del loaded
    print(f"CPU: {cpu_identity()}; load {os.getloadavg()[0]:.2f} (1 min) at the start")
    print(f"{args.model} ({args.weights or 'random weights'}), batch {BATCH}, {args.threads} threads, "
          f"onnxruntime {onnxruntime.__version__}, openvino {openvino.__version__.split('-')[0]}")
    rows: list[tuple[str, str, dict]] = []
    opened = []
    for precision in ("fp32", "int8"):
        image, text = tower_file(folder, "image", precision), plain_text_file(folder, precision)
        for runner in (OrtRunner, OvRunner):
            try:
                opened.append(open_towers(runner, image, text, args.threads))
            except Exception as exc:  # noqa: BLE001 - a runtime that cannot run this file: say so
                print(f"{runner.name} {precision}: cannot run it: {str(exc).splitlines()[0][:200]}")
                continue
            rows.append((runner.name, precision, opened[-1][0]))
    started = time.perf_counter()
    own = nncf_int8(tower_file(folder, "image", "fp32"), folder / "image-nncf-int8.xml")
    if own is not None:
        own_text = nncf_int8(plain_text_file(folder, "fp32"), folder / "text-nncf-int8.xml")
        print(f"NNCF weight compression of both towers: {time.perf_counter() - started:.1f} s")
        opened.append(open_towers(OvRunner, own, own_text, args.threads))
        rows.append(("openvino", "int8 (NNCF)", opened[-1][0]))
    else:
        print("OpenVINO's own int8 (NNCF weight compression): not measured, nncf is not installed")
    measure(opened, pictures, tokens, args.rounds)
    base = {p: r for b, p, r in rows if b == "onnxruntime"}
    base["int8 (NNCF)"] = base.get("int8", {})
    print(f"\n{'runtime':<12}{'weights':<13}{'images/s':>9}{'x ORT':>7}{'text ms':>9}{'x ORT':>7}"
          f"{'1st open s':>11}{'later s':>8}{'x ORT':>7}{'img cos':>9}{'text cos':>9}")
    for backend, precision, r in rows:
        b = base.get(precision) or {}
        def ratio(key: str, inverse: bool = False) -> str:
            if not b:
                return "-"
            return f"{(b[key] / r[key] if inverse else r[key] / b[key]):.2f}"
        print(f"{backend:<12}{precision:<13}{r['ips']:>9.2f}{ratio('ips'):>7}{r['text_ms']:>9.1f}"
              f"{ratio('text_ms', True):>7}{r['first_open']:>11.2f}{r['later_open']:>8.2f}"
              f"{ratio('later_open', True):>7}{worst(r['images'], ref_images):>9.5f}"
              f"{worst(r['texts'], ref_texts):>9.5f}")
    def passes(r: dict) -> bool:
        return worst(r["images"], ref_images) >= 0.999 and worst(r["texts"], ref_texts) >= 0.999
    fastest = {b: max((r for bb, _, r in rows if bb == b and passes(r)), key=lambda r: r["ips"], default=None)
               for b in ("onnxruntime", "openvino")}
    if all(fastest.values()):
        ort_best, ov_best = fastest["onnxruntime"], fastest["openvino"]
        print(f"fastest within 0.999 cosine of fp32: OpenVINO {ov_best['ips']:.2f} images/s against ONNX Runtime "
              f"{ort_best['ips']:.2f}: x{ov_best['ips'] / ort_best['ips']:.2f}; text "
              f"x{ort_best['text_ms'] / ov_best['text_ms']:.2f} (each runtime at its own best precision)")
    print("(x ORT: speed relative to ONNX Runtime on the same weights in this run, above 1 is faster;"
          " cos: worst cosine to torch fp32)")
    print(f"load {os.getloadavg()[0]:.2f} (1 min) at the end")


if __name__ == "__main__":
    main()
