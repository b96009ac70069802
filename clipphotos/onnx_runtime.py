"""Run a model's exported towers (clipphotos.onnx_export) with ONNX Runtime: no torch at all.

A folder per model holds image and text towers in fp32 and int8 and a manifest saying what
they were made from (weights fingerprint, runtime version, this CPU) and how they measured
against torch fp32. Each tower's session opens on first use: a search never opens the image
tower, and pays only for the text one.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from clipphotos.models import HALF_PRECISION_AGREEMENT, ModelSpec, cpu_identity, file_fingerprint

EXPORT_FORMAT = 3   # 2: a causal text tower continues texts from kept starts (torch_towers.ContinuedTextTower);
                    # 3: torch bf16 is checked on texts too
KEPT_STARTS = 64    # text starts kept per model (a few templates' worth)
RECENT_ROWS = 6     # rows of the last texts read kept to continue from (two queries' phrasings)
MANIFEST = "manifest.json"


@functools.cache
def runtime_version() -> str:
    """ONNX Runtime's version ('' if absent), read from its package without importing it (or
    importlib.metadata, which reads every installed package's metadata: a tenth of a second)."""
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or spec.origin is None:
        return ""
    try:
        found = re.search(r'^__version__ = "([^"]+)"', Path(spec.origin).read_text(encoding="utf-8"), re.MULTILINE)
    except OSError:
        found = None
    if found is None:   # a build that writes its version some other way
        import onnxruntime
        return f"onnxruntime {onnxruntime.__version__}"
    return f"onnxruntime {found.group(1)}"


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


def _session(path: Path, threads: int | None, prepack: bool = True, spin: bool = False) -> Any:
    """An ONNX Runtime session for `path`, from its graph as optimised for this CPU when a run
    before saved it, with the weights in a file of their own that ONNX Runtime maps into memory
    instead of reading: ViT-B-32's int8 text tower then opens in 0.1 s instead of 0.7 s (and
    0.05 s in full before that was saved once), and only the weights a run touches (a few rows
    of the token table) become resident. The first session saves it.

    `prepack` False skips repacking the weights for this CPU's kernels: a process that runs a
    tower once or twice (a CLI search) gains more from opening sooner than from faster runs.
    """
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3   # not the warning that the saved graph suits this CPU only: it is kept per CPU
    # Idle threads sleep instead of spinning (unless `spin`): while a batch of pictures is
    # encoded, the decoding threads need those cores (indexing keeps both busy), and a spinning
    # pool would take them. The text tower spins: a query waits for it, and no decode runs beside
    # it for long (waking sleeping threads between its 200-odd small steps cost 17 % of a query).
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if not prepack:
        options.add_session_config_entry("session.disable_prepacking", "1")
    optimised = path.with_suffix(".mapped.onnx")
    if optimised.exists():
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return ort.InferenceSession(str(optimised), options, providers=["CPUExecutionProvider"])
    path.with_suffix(".optimised.onnx").unlink(missing_ok=True)   # the whole-file form of older versions
    for left in path.parent.glob(".optimising-*"):   # by a process killed while optimising, an hour ago or more
        try:
            if time.time() - left.stat().st_mtime > 3600:
                shutil.rmtree(left, ignore_errors=True)
        except OSError:
            pass
    work = Path(tempfile.mkdtemp(prefix=".optimising-", dir=path.parent))
    try:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(work / optimised.name)
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                         optimised.with_suffix(".data").name)
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        try:   # the weights first: the graph that names them is what says the pair is complete
            os.replace(work / optimised.with_suffix(".data").name, optimised.with_suffix(".data"))
            os.replace(work / optimised.name, optimised)
        except OSError:
            pass   # a read-only library: it is optimised at each start instead
        return session
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _common_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many first tokens `a` and `b` share (a few dozen at most: plain Python is quickest)."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32, copy=False)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class Start(NamedTuple):
    """A text's start read once: its tokens (from start-of-text on, without end-of-text) and the
    keys and values each layer of the text tower made of them (layers × tokens × width)."""

    tokens: np.ndarray
    keys: np.ndarray
    values: np.ndarray


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
    prepack: bool = True                 # repack weights for this CPU's kernels (see _session)
    backend: str = "onnxruntime"
    device_type: str = "cpu"
    _sessions: dict[str, Any] = field(default_factory=dict, repr=False)
    _tokenizer: Callable[[Sequence[str]], np.ndarray] | None = field(default=None, repr=False)
    _opening: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _starts: dict[str, Start] = field(default_factory=dict, repr=False)
    _recent: deque[Start] = field(default_factory=lambda: deque(maxlen=RECENT_ROWS), repr=False)

    @classmethod
    def from_manifest(cls, folder: Path, manifest: dict, precision: str, reason: str, spec: ModelSpec) -> OnnxModel:
        model = cls(spec, manifest["key"], manifest["dim"], manifest["image_size"], tuple(manifest["mean"]),
                    tuple(manifest["std"]), precision, reason, folder, manifest)  # type: ignore[arg-type]
        model.notes.append(f"cpu, {precision} through {manifest['runtime']} ({reason})")
        model.measured = dict(manifest.get("exports", {}).get(precision, {}))
        return model

    def _run(self, tower: str, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
        session = self._sessions.get(tower)
        if session is None:
            with self._opening:   # the indexer's encoders may ask at once: one session, not one each
                session = self._sessions.get(tower)
                if session is None:
                    session = self._sessions[tower] = _session(tower_file(self.folder, tower, self.precision),
                                                               self._threads_of(tower), self.prepack,
                                                               spin=tower == "text")
        return session.run(outputs, feeds)

    def image_vectors(self, batch: np.ndarray) -> np.ndarray:
        return _unit(self._run("image", {"pixels": np.ascontiguousarray(batch, dtype=np.float32)})[0])

    def tokens(self, texts: Sequence[str]) -> np.ndarray:
        if self._tokenizer is None:
            from clipphotos.tokenizer import ClipTokenizer
            self._tokenizer = ClipTokenizer(self.manifest["context_length"], cache=self.folder.parent)
        return self._tokenizer(list(texts))

    def text_vectors(self, texts: Sequence[str], trimmed: bool, starts: Sequence[str] = (),
                     checked: bool = True) -> np.ndarray:
        """Unit vectors of the texts; `trimmed`: with the padding after the last token read cut off.

        `starts`: beginnings the texts may share (a template's words before the query). Where the
        export continues texts (see torch_towers.ContinuedTextTower) and was measured to do so
        within 0.999 cosine of torch fp32 (unless not `checked`: while it is being measured), each
        start is read once and kept, and a text is read from the end of the longest beginning it
        shares with a kept start or with one of the last texts read this way: a query typed on
        ("a photo of kids on a beach." after "a photo of kids on.") reads only its new words.
        """
        tokens = self.tokens(texts)
        if trimmed and self.manifest["text_trim"]:
            tokens = tokens[:, :self._read_length(tokens)]
        if not self.manifest.get("text_continues"):
            return _unit(self._run("text", {"tokens": tokens}, ["vectors"])[0])
        if not (trimmed and starts and (not checked or self.continues_faithfully())):
            return _unit(self._from_scratch(tokens)[0])
        return _unit(self._continue(tokens, [*self._kept_starts(starts), *self._recent]))

    def continues_faithfully(self) -> bool:
        """Whether texts may continue from kept starts at this precision (measured at export)."""
        return self.measured.get("continued_text_cosine", 0.0) >= HALF_PRECISION_AGREEMENT

    def _read_length(self, tokens: np.ndarray) -> int:
        from clipphotos.tokenizer import read_length
        return read_length(tokens, self.manifest["text_pool"], self.manifest["text_eos_id"])

    def _continued(self, tokens: np.ndarray, start: np.ndarray, keys: np.ndarray,
                   values: np.ndarray) -> list[np.ndarray]:
        return self._run("text", {"tokens": tokens, "start": start, "keys": keys, "values": values})

    def _from_scratch(self, tokens: np.ndarray) -> list[np.ndarray]:
        """The continued tower on texts read whole: vectors, and each token's keys and values."""
        rows = len(tokens)
        none = np.zeros((self.manifest["text_layers"], rows, 0, self.manifest["text_width"]), np.float32)
        return self._continued(tokens, np.zeros(rows, np.int64), none, none)

    def _kept_starts(self, texts: Sequence[str]) -> list[Start]:
        """The starts of `texts`, those not kept yet read through the text tower together (what
        follows a start in its row, another's end or padding, cannot change it: causal), then kept."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._starts]
        if missing:
            rows = self.tokens(missing)
            lengths = [self._read_length(row[None]) - 1 for row in rows]   # without the end-of-text token
            _, keys, values = self._from_scratch(rows[:, :max(lengths)])
            if len(self._starts) + len(missing) > KEPT_STARTS:
                self._starts.clear()
            for i, (text, length) in enumerate(zip(missing, lengths)):
                self._starts[text] = Start(rows[i, :length], keys[:, i, :length], values[:, i, :length])
        return [self._starts[t] for t in texts if t in self._starts]

    def _continue(self, tokens: np.ndarray, kept: list[Start]) -> np.ndarray:
        """The texts' vectors, each read from the end of the longest beginning it shares with one
        of `kept`; the rows read are kept among the recent ones, for texts typed on from them."""
        rows = len(tokens)
        ends = [self._read_length(row[None]) for row in tokens]
        # A row may take a kept state's first slots up to where their tokens part, leaving at
        # least its own end-of-text token to read.
        shared = [[min(_common_length(row, s.tokens.tolist()), end - 1) for s in kept]
                  for row, end in zip(tokens.tolist(), ends)]
        chosen = [int(np.argmax(lengths)) if lengths and max(lengths) > 0 else None for lengths in shared]
        begin = np.array([shared[i][k] if k is not None else 0 for i, k in enumerate(chosen)], dtype=np.int64)
        rest = np.zeros((rows, max(end - b for end, b in zip(ends, begin))), dtype=tokens.dtype)
        keys = np.zeros((self.manifest["text_layers"], rows, int(begin.max()), self.manifest["text_width"]), np.float32)
        values = np.zeros_like(keys)
        for i, (row, k, b, end) in enumerate(zip(tokens, chosen, begin, ends)):
            rest[i, :end - b] = row[b:end]
            if b:
                keys[:, i, :b], values[:, i, :b] = kept[k].keys[:, :b], kept[k].values[:, :b]
        vectors, new_keys, new_values = self._continued(rest, begin, keys, values)
        for i, (row, b, end) in enumerate(zip(tokens, begin, ends)):   # up to its end-of-text token
            self._recent.append(Start(row[:end - 1].copy(),
                                      np.concatenate([keys[:, i, :b], new_keys[:, i, :end - 1 - b]], axis=1),
                                      np.concatenate([values[:, i, :b], new_values[:, i, :end - 1 - b]], axis=1)))
        return vectors

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
