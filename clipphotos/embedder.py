"""Turn pictures and words into unit vectors with a loaded model.

Text queries are prompt-ensembled (the mean of a few phrasings, as CLIP's authors do for
zero-shot classification), and the vectors of recent queries are cached: search-as-you-type
asks for the same words again and again.

A CLIP text tower reads 77 token slots, but a query fills a dozen. Its attention is causal and
its output is read at the end-of-text token, so the slots after that token cannot change the
result: texts are encoded with the padding cut off, several times faster for the same vector.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from clipphotos.models import LoadedModel
from clipphotos.preprocess import to_tensor

log = logging.getLogger(__name__)

SEARCH_TEMPLATES = ("{}", "a photo of {}.", "a picture of {}.")
TEXT_CACHE_SIZE = 512
# How close (cosine) a trimmed text vector must come to the full one: only rounding may differ,
# and half precision rounds more (0.999 is also the bar bf16 weights must pass as a whole).
TRIM_AGREEMENT = {torch.float32: 0.99999, torch.float16: 0.999, torch.bfloat16: 0.999}


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
        self._trim: bool | None = None   # known after the first text: see _can_trim

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
            model = self.loaded.model
            if self._trim is None:  # first text: trim only if this model gives the same vectors trimmed
                self._trim = _can_trim(model)
                if self._trim:
                    full = _unit(model.encode_text(tokens))
                    trimmed = _unit(_encode_text_trimmed(model, tokens))
                    agreement = float((full * trimmed).sum(axis=1).min())
                    self._trim = agreement >= TRIM_AGREEMENT.get(self.loaded.dtype, 0.99999)
                    if not self._trim:
                        log.info("this model's text tower differs when trimmed; texts are encoded in full")
                    return full
            if self._trim:
                return _unit(_encode_text_trimmed(model, tokens))
            return _unit(model.encode_text(tokens))

    def warm_up(self) -> None:
        """Encode a word once, so the first real query neither waits for first-call set-up nor
        pays for the check that decides whether texts may be trimmed."""
        self.encode_texts(["a photo"])

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


def _can_trim(model: torch.nn.Module) -> bool:
    """Whether the model has OpenCLIP's own text tower with a causal mask, read at one token."""
    import open_clip
    try:
        from open_clip.transformer import text_global_pool  # noqa: F401 - older releases lack it
    except ImportError:
        return False
    mask = getattr(model, "attn_mask", None)
    return (isinstance(model, open_clip.CLIP) and isinstance(mask, torch.Tensor) and mask.dim() == 2
            and getattr(model, "text_pool_type", None) in ("argmax", "eos")
            and bool((mask.triu(1) == mask).all()) and bool(torch.isneginf(mask.triu(1)).sum() > 0))


def _encode_text_trimmed(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """OpenCLIP's `encode_text` over only the token slots up to the last one read.

    Under a causal mask a slot sees only those before it, so the pooled (end-of-text) slot's
    output is the same with everything after it cut away.
    """
    from open_clip.transformer import text_global_pool
    eos_id = getattr(model, "text_eos_id", None)
    if model.text_pool_type == "eos":
        read_at = (tokens == eos_id).int().argmax(dim=-1)
    else:
        read_at = tokens.argmax(dim=-1)
    length = int(read_at.max()) + 1
    tokens = tokens[:, :length]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=eos_id)
    if model.text_projection is not None:
        x = model.text_projection(x) if isinstance(model.text_projection, torch.nn.Linear) else x @ model.text_projection
    return x
