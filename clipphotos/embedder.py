"""Turn pictures and words into unit vectors with a loaded model.

Text queries are prompt-ensembled (the mean of a few phrasings, as CLIP's authors do for
zero-shot classification), and the vectors of recent queries are cached: search-as-you-type
asks for the same words again and again.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from clipphotos.models import LoadedModel
from clipphotos.preprocess import to_tensor

SEARCH_TEMPLATES = ("{}", "a photo of {}.", "a picture of {}.")
TEXT_CACHE_SIZE = 512


def _unit(x: torch.Tensor) -> np.ndarray:
    x = x.float()
    return torch.nn.functional.normalize(x, dim=-1).cpu().numpy()


class Embedder:
    """The one place that runs the model."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.dim = loaded.dim
        self._text_cache: OrderedDict[tuple[str, tuple[str, ...]], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def decode_size(self) -> int:
        """The long side to decode pictures at: twice the model's input, so the final resize
        smooths away what JPEG draft scaling leaves (embeddings stay within 0.9999 cosine of a
        full decode), while a 12 MP JPEG still decodes at 1/4 or 1/8 scale."""
        return 2 * self.loaded.image_size

    def prepare(self, img: Image.Image) -> torch.Tensor:
        """The model's input for an upright RGB picture (letterboxed: the whole photo counts)."""
        return to_tensor(img, self.loaded.image_size, self.loaded.mean, self.loaded.std)

    def encode_batch(self, batch: torch.Tensor) -> np.ndarray:
        """Unit image vectors for a stacked batch of prepared pictures."""
        with self._lock, torch.inference_mode():
            x = batch.to(self.loaded.device, dtype=self.loaded.dtype)
            return _unit(self.loaded.model.encode_image(x))

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encode_batch(torch.stack([self.prepare(i) for i in images]))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of the texts exactly as written."""
        with self._lock, torch.inference_mode():
            tokens = self.loaded.tokenizer(list(texts)).to(self.loaded.device)
            return _unit(self.loaded.model.encode_text(tokens))

    def encode_query(self, text: str, templates: Sequence[str] = SEARCH_TEMPLATES) -> np.ndarray:
        """One unit vector for a query: the normalised mean of its phrasings, cached."""
        key = (text.strip(), tuple(templates))
        cached = self._text_cache.get(key)
        if cached is not None:
            self._text_cache.move_to_end(key)
            return cached
        vecs = self.encode_texts([t.format(key[0]) for t in templates])
        mean = vecs.mean(axis=0)
        vec = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
        self._text_cache[key] = vec
        if len(self._text_cache) > TEXT_CACHE_SIZE:
            self._text_cache.popitem(last=False)
        return vec
