"""Run a model's exported towers (clipphotos.onnx_export) with ONNX Runtime: no torch at all.

A folder per model holds image and text towers in fp32 and int8 and a manifest saying what
they were made from (weights fingerprint, runtime version, this CPU) and how they measured
against torch fp32. Each tower's session opens on first use: a search never opens the image
tower, and pays only for the text one.
"""
from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from clipphotos.models import ModelSpec, cpu_identity, file_fingerprint

EXPORT_FORMAT = 1
MANIFEST = "manifest.json"


def runtime_version() -> str:
    """ONNX Runtime's version, read without importing it (None-like '' if absent)."""
    try:
        return f"onnxruntime {version('onnxruntime')}"
    except PackageNotFoundError:
        return ""


def tower_file(folder: Path, tower: str, precision: str) -> Path:
    return folder / f"{tower}-{precision}.onnx"


def weights_identity(weights: Path | None) -> dict:
    """What the manifest records of the weights, to notice when the file changes."""
    if weights is None:
        return {"weights": None, "weights_fingerprint": "random"}
    return {"weights": str(weights), "weights_fingerprint": file_fingerprint(weights)}


def tokenizer_supported(tokenizer: object) -> bool:
    """Whether clipphotos.tokenizer gives this OpenCLIP tokenizer's ids (its default CLIP BPE)."""
    from open_clip.tokenizer import SimpleTokenizer, _clean_lower
    return (type(tokenizer) is SimpleTokenizer and tokenizer.clean_fn is _clean_lower  # type: ignore[attr-defined]
            and tokenizer.reduction_fn is None and len(tokenizer.all_special_ids) == 2)  # type: ignore[attr-defined]


def read_manifest(folder: Path) -> dict | None:
    """The folder's manifest if it still holds: same format, runtime, CPU, and weights file."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if (manifest.get("format") != EXPORT_FORMAT or manifest.get("runtime") != runtime_version()
            or manifest.get("cpu") != cpu_identity()):
        return None
    weights = manifest.get("weights")
    try:
        if weights_identity(Path(weights) if weights else None) != {
                "weights": weights, "weights_fingerprint": manifest.get("weights_fingerprint")}:
            return None
    except OSError:
        return None
    return manifest


def _session(path: Path, threads: int | None) -> Any:
    """An ONNX Runtime session for `path`, from its graph as optimised for this CPU when a
    run before saved it (opening then takes a fraction of the time: 0.65 s against 4.1 s for
    ViT-B-32's text tower here); the first session saves it."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3   # not the warning that the saved graph suits this CPU only: it is kept per CPU
    optimised = path.with_suffix(".optimised.onnx")
    if optimised.exists():
        path = optimised
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    else:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(path.with_suffix(f".{os.getpid()}.tmp"))
    # Idle threads sleep instead of spinning: while a batch is encoded, the decoding threads
    # need those cores (indexing keeps both busy), and a spinning pool would take them.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    if options.optimized_model_filepath:
        try:
            os.replace(options.optimized_model_filepath, optimised)
        except OSError:
            pass   # a read-only library: it is optimised at each start instead
    return session


def _unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32, copy=False)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@dataclass
class OnnxModel:
    """A model's exported towers, ready to run; quacks like models.LoadedModel for Embedder."""

    spec: ModelSpec
    key: str
    dim: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    precision: str
    precision_reason: str
    folder: Path
    manifest: dict
    notes: list[str] = field(default_factory=list)
    measured: dict = field(default_factory=dict)
    threads: int | None = None           # ONNX Runtime's threads per run (None: one per core)
    image_threads: int | None = None     # the image tower's, where they differ (see use_image_threads)
    backend: str = "onnxruntime"
    device_type: str = "cpu"
    _sessions: dict[str, Any] = field(default_factory=dict, repr=False)
    _tokenizer: Callable[[Sequence[str]], np.ndarray] | None = field(default=None, repr=False)
    _opening: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_manifest(cls, folder: Path, manifest: dict, precision: str, reason: str, spec: ModelSpec) -> OnnxModel:
        model = cls(spec, manifest["key"], manifest["dim"], manifest["image_size"], tuple(manifest["mean"]),
                    tuple(manifest["std"]), precision, reason, folder, manifest)  # type: ignore[arg-type]
        model.notes.append(f"cpu, {precision} through {manifest['runtime']} ({reason})")
        model.measured = dict(manifest.get("exports", {}).get(precision, {}))
        return model

    def _run(self, tower: str, name: str, data: np.ndarray) -> np.ndarray:
        session = self._sessions.get(tower)
        if session is None:
            with self._opening:   # the indexer's encoders may ask at once: one session, not one each
                session = self._sessions.get(tower)
                if session is None:
                    session = self._sessions[tower] = _session(tower_file(self.folder, tower, self.precision),
                                                               self._threads_of(tower))
        return _unit(session.run(None, {name: data})[0])

    def image_vectors(self, batch: np.ndarray) -> np.ndarray:
        return self._run("image", "pixels", np.ascontiguousarray(batch, dtype=np.float32))

    def tokens(self, texts: Sequence[str]) -> np.ndarray:
        if self._tokenizer is None:
            from clipphotos.tokenizer import ClipTokenizer
            self._tokenizer = ClipTokenizer(self.manifest["context_length"])
        return self._tokenizer(list(texts))

    def text_vectors(self, texts: Sequence[str], trimmed: bool) -> np.ndarray:
        tokens = self.tokens(texts)
        if trimmed and self.manifest["text_trim"]:
            from clipphotos.tokenizer import read_length
            tokens = tokens[:, :read_length(tokens, self.manifest["text_pool"], self.manifest["text_eos_id"])]
        return self._run("text", "tokens", tokens)

    def can_trim(self) -> bool:
        return bool(self.manifest["text_trim"])

    # -- the image tower's threads (clipphotos.indexer runs one encode per core side by side) ---

    def _threads_of(self, tower: str) -> int | None:
        return (self.image_threads if tower == "image" else None) or self.threads

    def use_image_threads(self, threads: int) -> int:
        """Ask for `threads` per image run; honoured until the image session opens (a session keeps
        its threads). Returns the threads image runs will use. Runs may overlap: ONNX Runtime
        sessions are safe to run from several threads at once."""
        with self._opening:
            if "image" not in self._sessions:
                self.image_threads = threads
            return self._threads_of("image") or os.cpu_count() or 1
