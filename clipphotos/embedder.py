"""Turn pictures and words into unit vectors with a loaded model (torch or ONNX Runtime).

Text queries are prompt-ensembled (the mean of a few phrasings, as CLIP's authors do for
zero-shot classification), and the vectors of recent queries are cached: search-as-you-type
asks for the same words again and again.

Texts are encoded with the padding after the end-of-text token cut off where the model's text
tower allows it (see clipphotos.torch_towers); the first texts check that it gives the same
vectors, and a verdict store (the library's) keeps the answer, so later runs skip the check.
This module imports no torch: on the CPU path a search never loads it.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from clipphotos.private import write_privately

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

SEARCH_TEMPLATES = ("{}", "a photo of {}.", "a picture of {}.")
TEXT_CACHE_SIZE = 512
KEPT_QUERIES = 256   # query vectors kept between processes (KeptQueries)
# How close (cosine) a trimmed text vector must come to the full one: only rounding may differ,
# and lower precisions round more (0.999 is also the bar they must pass as a whole).
TRIM_AGREEMENT = {"fp32": 0.99999, "fp16": 0.999, "bf16": 0.999, "int8": 0.999}


def template_starts(templates: Sequence[str]) -> tuple[str, ...]:
    """The words templates put before the query ("a photo of " of "a photo of {}."): what all
    texts made from a template begin with."""
    return tuple(dict.fromkeys(t.split("{}", 1)[0] for t in templates if "{}" in t))


class Runnable(Protocol):
    """What Embedder needs of a loaded model (models.LoadedModel, onnx_runtime.OnnxModel)."""

    key: str
    backend: str
    dim: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    precision: str

    def image_vectors(self, batch: np.ndarray) -> np.ndarray: ...
    def text_vectors(self, texts: Sequence[str], trimmed: bool, starts: Sequence[str] = ()) -> np.ndarray: ...
    def can_trim(self) -> bool: ...


class Verdicts(Protocol):
    """Where answers measured once are kept (models.VerdictStore)."""

    def get(self, key: str) -> Any: ...
    def put(self, key: str, value: Any) -> None: ...


class KeptQueries:
    """Query vectors kept between processes in one small file: a CLI search asked again (another
    --limit, another filter) then skips the text tower, its runtime and the tokenizer.

    Named for the model, weights, runtime and precision that made the vectors; the newest
    KEPT_QUERIES are kept. Losing an update to a concurrent writer only costs an encoding.
    """

    def __init__(self, folder: Path, model: Runnable) -> None:
        ident = f"{model.key}|{model.backend}|{model.precision}"
        self.path = folder / f"queries-{hashlib.blake2b(ident.encode(), digest_size=8).hexdigest()}.npz"
        self._kept: dict[str, np.ndarray] | None = None

    @staticmethod
    def _key(text: str, templates: Sequence[str]) -> str:
        return "\x1f".join([text, *templates])

    def _read(self) -> dict[str, np.ndarray]:
        if self._kept is None:
            try:
                with np.load(self.path) as saved:
                    self._kept = dict(zip(saved["keys"].tolist(), saved["vectors"]))
            except (OSError, KeyError, ValueError):
                self._kept = {}
        return self._kept

    def get(self, text: str, templates: Sequence[str]) -> np.ndarray | None:
        return self._read().get(self._key(text, templates))

    def put(self, text: str, templates: Sequence[str], vector: np.ndarray) -> None:
        kept = self._read()
        kept.pop(self._key(text, templates), None)
        kept[self._key(text, templates)] = vector
        for old in list(kept)[:-KEPT_QUERIES]:
            del kept[old]
        try:
            write_privately(self.path, lambda tmp: np.savez(tmp, keys=np.array(list(kept)),
                                                            vectors=np.stack(list(kept.values()))))
        except OSError:
            pass   # a read-only library: encoded again next time


class Embedder:
    """The one place that runs the model."""

    def __init__(self, loaded: Runnable, verdicts: Verdicts | None = None, kept: KeptQueries | None = None) -> None:
        """`kept`: query vectors kept between processes (for a brief one, see KeptQueries)."""
        self.loaded = loaded
        self._kept = kept
        self.dim = loaded.dim
        self._text_cache: OrderedDict[tuple[str, tuple[str, ...]], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._verdicts = verdicts
        self._trim_key = f"text trimming|{loaded.backend}|{loaded.precision}|{loaded.key}"
        # known after the first texts, or from an earlier run's check
        self._trim: bool | None = verdicts.get(self._trim_key) if verdicts is not None else None

    @property
    def decode_size(self) -> int:
        """The long side to decode pictures at: twice the model's input, so the final resize
        smooths away what JPEG draft scaling leaves (embeddings stay within 0.9999 cosine of a
        full decode), while a 12 MP JPEG still decodes at 1/4 or 1/8 scale."""
        return 2 * self.loaded.image_size

    def prepare(self, img: Image.Image) -> np.ndarray:
        """The model's input for an upright RGB picture (letterboxed: the whole photo counts)."""
        from clipphotos.preprocess import to_array   # Pillow: a search by words never needs it
        return to_array(img, self.loaded.image_size, self.loaded.mean, self.loaded.std)

    def encode_batch(self, batch: np.ndarray) -> np.ndarray:
        """Unit image vectors for a stacked batch of prepared pictures."""
        with self._lock:
            return self.loaded.image_vectors(batch)

    def encode_side_by_side(self, batch: np.ndarray) -> np.ndarray:
        """encode_batch for one of several encodes running at once (the indexer's, one per core):
        not serialised, so only for a model whose runs may overlap (ONNX Runtime's)."""
        return self.loaded.image_vectors(batch)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encode_batch(np.stack([self.prepare(i) for i in images]))

    def encode_texts(self, texts: Sequence[str], starts: Sequence[str] = ()) -> np.ndarray:
        """Unit vectors of the texts exactly as written; `starts`: beginnings they share, which a
        model that can reads once and continues from (see onnx_runtime.OnnxModel.text_vectors)."""
        with self._lock:
            if self._trim is None:  # first texts: trim only if this model gives the same vectors trimmed
                full = self.loaded.text_vectors(texts, trimmed=False)
                self._trim = self.loaded.can_trim()
                if self._trim:
                    trimmed = self.loaded.text_vectors(texts, trimmed=True, starts=starts)
                    agreement = float((full * trimmed).sum(axis=1).min())
                    self._trim = agreement >= TRIM_AGREEMENT.get(self.loaded.precision, 0.99999)
                    if not self._trim:
                        log.info("this model's text tower differs when trimmed; texts are encoded in full")
                if self._verdicts is not None:
                    try:
                        self._verdicts.put(self._trim_key, self._trim)
                    except OSError:
                        pass   # a read-only library: checked again next time
                return full
            return self.loaded.text_vectors(texts, trimmed=self._trim, starts=starts)

    def warm_up(self) -> None:
        """Encode a word once, so the first real query neither waits for first-call set-up nor
        pays for the check that decides whether texts may be trimmed, nor for reading the
        search phrasings' starts."""
        self.encode_texts(["a photo"], template_starts(SEARCH_TEMPLATES))

    def encode_query(self, text: str, templates: Sequence[str] = SEARCH_TEMPLATES) -> np.ndarray:
        """One unit vector for a query: the normalised mean of its phrasings, cached."""
        key = (text.strip(), tuple(templates))
        cached = self._text_cache.get(key)
        if cached is not None:
            self._text_cache.move_to_end(key)
            return cached
        vec = self._kept.get(*key) if self._kept is not None else None
        if vec is None:
            vecs = self.encode_texts([t.format(key[0]) for t in templates], template_starts(templates))
            mean = vecs.mean(axis=0)
            vec = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
            if self._kept is not None:
                self._kept.put(*key, vec)
        self._text_cache[key] = vec
        if len(self._text_cache) > TEXT_CACHE_SIZE:
            self._text_cache.popitem(last=False)
        return vec
