"""How a model runs on this machine, decided by measurement once and then kept.

GPUs (CUDA, MPS) run torch in fp16, as models.load_model does. On a CPU the first load exports
the model to ONNX and measures every way of running it (clipphotos.onnx_export); the fastest
export that keeps its vectors within 0.999 cosine of torch fp32, for pictures and for texts, is
chosen and remembered in the library's folder, and torch only where no export agrees (or where
asked for). Later runs never import torch: a search pays for the text tower's session and
nothing else, and indexing keeps to a third of the memory torch's path takes.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

from clipphotos import models
from clipphotos.models import (
    HALF_PRECISION_AGREEMENT, PRECISION_ENV, LoadedModel, ModelSpec, ModelUnavailable, VerdictStore, gpu_possible,
    load_model,
)
from clipphotos.onnx_runtime import OnnxModel, read_manifest

MODEL_CACHE_ENV = "CLIPPHOTOS_MODEL_CACHE"
ASKED = f"asked for (--precision or {PRECISION_ENV})"

Model = LoadedModel | OnnxModel


def cache_root(library_root: Path) -> Path:
    """Where exports and measured verdicts live: the library's models/ folder, unless
    $CLIPPHOTOS_MODEL_CACHE names another (the test suite shares one across libraries)."""
    env = os.environ.get(MODEL_CACHE_ENV)
    return Path(env).expanduser() if env else library_root / "models"


def verdict_store(library_root: Path) -> VerdictStore:
    """Where answers measured once for this library's models are kept (see models.VerdictStore)."""
    return VerdictStore(cache_root(library_root) / "verdicts.json")


def export_folder(root: Path, spec: ModelSpec) -> Path:
    """One folder per model as named (its manifest then says which weights it was made from)."""
    ident = f"{spec.name}|{spec.pretrained}|{spec.weights}"
    return root / hashlib.blake2b(ident.encode(), digest_size=8).hexdigest()


def runs_on_cpu(spec: ModelSpec) -> bool:
    """Whether the model will run on the CPU, importing torch only where a GPU may be present."""
    if spec.precision in ("bf16", "fp16"):
        return False            # torch formats: the caller loads through torch anyway
    if not gpu_possible(spec.device):
        return True
    from clipphotos.models import pick_device
    return pick_device(spec.device).type == "cpu"


def open_model(spec: ModelSpec, library_root: Path, brief: bool = False) -> Model:
    """The model ready to run: through ONNX Runtime or torch, as measured here (see module doc).

    `brief`: the process runs the model once or twice (onnx_runtime._session's `prepack`)."""
    root = cache_root(library_root)
    verdicts = verdict_store(library_root)
    if not runs_on_cpu(spec) or not (spec.weights or spec.pretrained):
        return load_model(spec, verdicts)   # a GPU; or random weights, new each run: nothing to keep
    folder = export_folder(root, spec)
    manifest = read_manifest(folder)
    loaded: LoadedModel | None = None
    if manifest is None:
        from filelock import FileLock

        from clipphotos import onnx_export
        loaded = load_model(replace(spec, precision="fp32"), verdicts)
        why_not = onnx_export.supported(loaded)
        if why_not is not None:
            if spec.precision == "int8":
                raise ModelUnavailable(f"int8 needs the model's ONNX export, and {spec.describe()} has none: {why_not}")
            return _on_torch(loaded, spec, verdicts)
        folder.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder) + ".lock"):   # another process may be exporting the same model
            manifest = read_manifest(folder) or onnx_export.export(loaded, folder)
    backend, precision, reason = choose(manifest, spec.precision)
    if backend == "onnxruntime":
        model = OnnxModel.from_manifest(folder, manifest, precision, reason, spec)
        model.prepack = not brief
        return model
    loaded = loaded or load_model(replace(spec, precision="fp32"), verdicts)
    loaded.spec = spec
    loaded.measured = _torch_measured(manifest, precision)
    from clipphotos.models import cast
    cast(loaded, precision, reason)
    return loaded


def _on_torch(loaded: LoadedModel, spec: ModelSpec, verdicts: VerdictStore) -> LoadedModel:
    from clipphotos.models import set_precision
    loaded.spec = spec
    set_precision(loaded, verdicts)
    return loaded


def planned(spec: ModelSpec, library_root: Path) -> tuple[str, str, str, dict] | None:
    """(backend, precision, reason, measured) a CPU load would choose, from the kept verdict
    alone; None where nothing was measured yet or the model runs on a GPU."""
    if not runs_on_cpu(spec) or not (spec.weights or spec.pretrained):
        return None
    manifest = read_manifest(export_folder(cache_root(library_root), spec))
    if manifest is None:
        return None
    backend, precision, reason = choose(manifest, spec.precision)
    measured = manifest["exports"][precision] if backend == "onnxruntime" else _torch_measured(manifest, precision)
    return backend, precision, reason, measured


def _torch_measured(manifest: dict, precision: str) -> dict:
    return dict(manifest.get("torch_speed", {}).get(precision, {}))


def _passes(entry: dict) -> bool:
    return (entry.get("image_cosine", 1.0) >= HALF_PRECISION_AGREEMENT
            and entry.get("text_cosine", 1.0) >= HALF_PRECISION_AGREEMENT)


def _cosines(entry: dict) -> str:
    parts = [f"{what} {entry[f'{what}_cosine']:.5f}" for what in ("image", "text") if f"{what}_cosine" in entry]
    return f"cosine to fp32: {', '.join(parts)}" if parts else "the fp32 reference"


def choose(manifest: dict, requested: str) -> tuple[str, str, str]:
    """(backend, precision, reason): asked for, or the fastest export measured that stays within
    0.999 cosine of torch fp32 for images and texts; torch only where no export does.

    Torch stays out even where it computes pictures faster (bf16 on a CPU with AMX measured
    26.7-68.1 img/s against ONNX Runtime int8's 27.8-50.1, one first load to the next): its
    import and model build cost ~5 s every run, and its peak memory while indexing was 1.3 GB
    against 0.3 GB. `--precision bf16` still takes it."""
    exports, on_torch = manifest["exports"], manifest.get("torch_speed", {})
    if requested == "int8":
        return "onnxruntime", "int8", f"{ASKED}; {_cosines(exports['int8'])}"
    if requested == "fp32":
        if _passes(exports["fp32"]):
            return "onnxruntime", "fp32", f"{ASKED}; ONNX Runtime, {_cosines(exports['fp32'])}"
        return "torch", "fp32", f"{ASKED}; torch (the ONNX export drifted: {_cosines(exports['fp32'])})"
    options = [(e["images_per_second"], "onnxruntime", p, e) for p, e in exports.items() if _passes(e)]
    torch_options = [(e["images_per_second"], "torch", p, e) for p, e in on_torch.items()
                     if _passes(e) and (p != "bf16" or models.cpu_has_native_bf16())]
    _, backend, precision, entry = max(options or torch_options, key=lambda o: o[0])
    speeds = ", ".join(f"{p} {'ONNX' if b == 'onnxruntime' else 'torch'} {e['images_per_second']:.1f}"
                       for _, b, p, e in sorted(options + torch_options, key=lambda o: -o[0]))
    refused = [f"{p} ONNX ({_cosines(e)})" for p, e in exports.items() if not _passes(e)]
    refused += [f"{p} torch ({_cosines(e)})" for p, e in on_torch.items() if not _passes(e)]
    where = "ONNX Runtime" if backend == "onnxruntime" else "torch"
    reason = (f"automatic: {precision} through {where}, the fastest {'export ' if options else ''}measured here "
              f"within {HALF_PRECISION_AGREEMENT} cosine of fp32 ({_cosines(entry)}; images/s: {speeds}"
              f"{'; torch is not used where an export agrees' if options and torch_options else ''})")
    if refused:
        reason += f"; too far from fp32: {', '.join(refused)}"
    return backend, precision, reason
