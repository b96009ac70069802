"""`clipphotos doctor`: what support needs to know, each finding with a fix in plain words.

Every check is cheap and read-only: nothing is downloaded, nothing in the library changes.
"""
from __future__ import annotations

import platform
import shutil
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from clipphotos import __version__
from clipphotos.library import Library

LOW_DISK_BYTES = 2 * 2**30


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    detail: str
    fix: str = ""


def check_device() -> Finding:
    import torch

    from clipphotos.models import cpu_has_native_bf16
    torch_build = f"PyTorch {torch.__version__}"
    if torch.version.cuda and not torch.cuda.is_available():
        torch_build += f" (built for CUDA {torch.version.cuda}, but no usable NVIDIA GPU or driver was found)"
    if torch.cuda.is_available():
        return Finding("device", True, f"CUDA GPU: {torch.cuda.get_device_name(0)} (fp16); {torch_build}")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return Finding("device", True, f"Apple GPU through Metal (MPS, fp16); {torch_build}")
    from clipphotos.models import cpu_identity
    from clipphotos.onnx_runtime import runtime_version
    bf16 = cpu_has_native_bf16()
    return Finding("device", True, f"CPU: {cpu_identity()}, "
                                   f"{'native bf16' if bf16 else 'no native bf16'}; {torch_build}; "
                                   f"{runtime_version() or 'no ONNX Runtime (the CPU path stays on torch)'}",
                   "" if bf16 else "Indexing runs on the CPU; a CUDA or Apple GPU would be several times faster.")


def check_precision(lib: Library) -> Finding:
    from clipphotos.models import HALF_PRECISION_AGREEMENT, ModelUnavailable
    try:
        backend, name, reason, measured = lib.inference()
    except ModelUnavailable as exc:
        return Finding("precision", False, str(exc), "Use --precision auto, fp32, bf16, fp16 or int8.")
    slow = name in ("bf16", "fp16") and reason.startswith("asked for") and not _fast_half_precision(name)
    detail = f"{name}: {reason}"
    if measured.get("images_per_second"):
        detail += f"; {backend}, {measured['images_per_second']:.1f} images/s measured here"
    if "continued_text_cosine" in measured:
        cosine = measured["continued_text_cosine"]
        detail += (f"; queries continue from their phrasings' kept starts (cosine {cosine:.4f} to fp32)"
                   if cosine >= HALF_PRECISION_AGREEMENT else
                   f"; queries read whole (continued from kept starts: cosine {cosine:.4f} to fp32, "
                   f"under {HALF_PRECISION_AGREEMENT})")
    return Finding("precision", True, detail,
                   f"{name} has no native support on this device and runs slower than fp32; "
                   f"--precision auto picks the fastest that keeps the vectors right." if slow else "")


def _fast_half_precision(name: str) -> bool:
    """Whether the device the model would run on computes `name` natively."""
    import torch

    from clipphotos.models import cpu_has_native_bf16
    if torch.cuda.is_available():
        return True
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return name == "fp16"
    return name == "bf16" and cpu_has_native_bf16()


def check_model(lib: Library) -> Finding:
    from clipphotos.model_choices import DEFAULT_MODEL, DEFAULT_PRETRAINED, hub_cache_dir
    from clipphotos.models import ModelUnavailable, resolve_pretrained
    spec = lib.model_spec
    if spec.weights:
        present = Path(spec.weights).is_file()
        return Finding("model", present, f"{spec.describe()}",
                       "" if present else f"The weights file {spec.weights} is gone: copy it back or index "
                                          f"with --weights pointing at its new place.")
    if not spec.pretrained:
        return Finding("model", True, f"{spec.describe()}")
    import open_clip
    if not open_clip.get_pretrained_cfg(spec.name, spec.pretrained):
        return Finding("model", False, f"{spec.describe()}: OpenCLIP has no such pretrained weights",
                       f"Index with a model OpenCLIP knows (--model {DEFAULT_MODEL} --pretrained "
                       f"{DEFAULT_PRETRAINED}) or with a local checkpoint: --weights FILE.")
    try:
        path = resolve_pretrained(spec.name, spec.pretrained, download=False)
        return Finding("model", True, f"{spec.describe()}: weights at {path}")
    except ModelUnavailable:
        return Finding("model", False, f"{spec.describe()}: weights not downloaded yet",
                       f"They download once into {hub_cache_dir()} on the next index (about 600 MB for the "
                       f"default model); offline, pass a local checkpoint with --weights FILE.")


def recovery(catalog: Path) -> str:
    """How to recover from a damaged catalog, in plain words."""
    return (f"Your photos are untouched. Either copy your latest `clipphotos backup` over {catalog}, or run "
            f"`clipphotos repair --rebuild-catalog`: it sets the damaged catalog aside, starts a fresh one with "
            f"what can still be read of the old (folders, excluded folders, the model, labels and your tag "
            f"answers, files set apart as not duplicates) and indexes the folders again.")


def check_catalog(lib: Library) -> Finding:
    result = lib.catalog.integrity()
    ok = result == "ok"
    return Finding("catalog", ok, f"{lib.catalog.path}: integrity {result}", "" if ok else recovery(lib.catalog.path))


def damaged_catalog(catalog: Path, problem: str) -> Finding:
    """The finding for a catalog that cannot even be opened."""
    return Finding("catalog", False, f"{catalog}: damaged, cannot be opened ({problem})", recovery(catalog))


def check_index(lib: Library) -> Finding:
    from clipphotos.vector_index import deletions_path, file_checksum
    key = lib.settings.model_key
    if key is None:
        return Finding("index", True, "no index yet (nothing indexed)")
    model_id = lib.catalog.find_model_id(key)
    if model_id is None:
        return Finding("index", False, "the catalog names a model it holds no vectors for", "Run `clipphotos repair`.")
    path = lib.root / "index" / f"model-{model_id}.hnsw"
    recorded = lib.settings.index_checksum(model_id)
    deleted = deletions_path(path)
    if not path.is_file() or not deleted.is_file():
        return Finding("index", False, f"{path} is missing", "It is rebuilt from the catalog on the next search, "
                                                             "or now with `clipphotos repair`.")
    actual = file_checksum(path, deleted)
    ok = actual == recorded
    return Finding("index", ok, f"{path}: checksum {'matches' if ok else 'does not match'} the catalog",
                   "" if ok else "It is rebuilt from the catalog automatically; `clipphotos repair` does it now.")


def check_watch_limits() -> Finding:
    limit_file = Path("/proc/sys/fs/inotify/max_user_watches")
    if not limit_file.exists():
        return Finding("watch limits", True, f"{platform.system()}: no inotify limits to check")
    limit = int(limit_file.read_text().strip())
    ok = limit >= 65536
    return Finding("watch limits", ok, f"inotify max_user_watches = {limit}",
                   "" if ok else "Large libraries may exceed it (folders then fall back to polling). Raise it: "
                                 "echo fs.inotify.max_user_watches=524288 | sudo tee /etc/sysctl.d/90-clipphotos.conf "
                                 "&& sudo sysctl --system")


def check_disk(root: Path) -> Finding:
    free = shutil.disk_usage(root).free
    ok = free >= LOW_DISK_BYTES
    return Finding("disk", ok, f"{free / 2**30:.1f} GiB free where the library lives ({root})",
                   "" if ok else "Free some space: the catalog, index and thumbnails need room to grow "
                                 "(about 3 KB per photo plus thumbnails).")


def _safely(check: str, catalog: Path, run: Callable[[], Finding]) -> Finding:
    """A check that reads the catalog reports a damaged one instead of crashing."""
    try:
        return run()
    except sqlite3.DatabaseError as exc:
        return Finding(check, False, f"the catalog could not be read ({exc})", recovery(catalog))


def diagnose(lib: Library) -> list[Finding]:
    path = lib.catalog.path
    catalog = check_catalog(lib)
    # A damaged catalog is checked first and alone: what the others would read from it is suspect.
    if not catalog.ok:
        return [check_device(), catalog, check_watch_limits(), check_disk(lib.root)]
    return [check_device(), _safely("precision", path, lambda: check_precision(lib)),
            _safely("model", path, lambda: check_model(lib)), catalog,
            _safely("index", path, lambda: check_index(lib)), check_watch_limits(), check_disk(lib.root)]


def report(lib: Library) -> dict:
    return _document(lib.root, diagnose(lib))


def report_unopened(root: Path, catalog: Path, problem: str) -> dict:
    """The report for a library whose catalog cannot be opened at all."""
    return _document(root, [check_device(), damaged_catalog(catalog, problem), check_watch_limits(), check_disk(root)])


def _document(root: Path, findings: list[Finding]) -> dict:
    return {"version": __version__, "python": platform.python_version(), "platform": platform.platform(),
            "frozen": bool(getattr(sys, "frozen", False)),  # the self-contained bundle, not a pip install
            "library": str(root), "ok": all(f.ok for f in findings),
            "checks": [asdict(f) for f in findings]}
