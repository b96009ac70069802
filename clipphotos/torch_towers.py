"""The torch side of running a model: image and text towers, and the text tower without padding.

A CLIP text tower reads 77 token slots, but a query fills a dozen. Its attention is causal and
its output is read at the end-of-text token, so the slots after that token cannot change the
result: texts are encoded with the padding cut off, several times faster for the same vector.
The same trimmed tower, with the length left open, is what clipphotos.onnx_export exports.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from clipphotos.tokenizer import read_length


def unit(x: torch.Tensor) -> np.ndarray:
    """float32 numpy rows of length one."""
    return torch.nn.functional.normalize(x.float(), dim=-1).cpu().numpy()


def image_vectors(loaded: Any, batch: np.ndarray) -> np.ndarray:
    """Unit image vectors of a stacked batch of prepared pictures (N×3×S×S float32), for a
    models.LoadedModel (not imported: models imports this module when it runs)."""
    with torch.inference_mode():
        x = torch.from_numpy(batch).to(loaded.device, dtype=loaded.dtype)
        return unit(loaded.model.encode_image(x))


def text_vectors(loaded: Any, texts: Sequence[str], trimmed: bool) -> np.ndarray:
    """Unit vectors of the texts; `trimmed`: with the padding after the last token read cut off."""
    with torch.inference_mode():
        tokens = loaded.tokenizer(list(texts)).to(loaded.device)
        if trimmed:
            model = loaded.model
            length = read_length(tokens.cpu().numpy(), model.text_pool_type, getattr(model, "text_eos_id", None))
            return unit(TextTower(model)(tokens[:, :length]))
        return unit(loaded.model.encode_text(tokens))


def can_trim(model: torch.nn.Module) -> bool:
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


class TextTower(torch.nn.Module):
    """OpenCLIP's `encode_text` over as many token slots as it is given (fewer than the context).

    Under a causal mask a slot sees only those before it, so the pooled (end-of-text) slot's
    output is the same with everything after it cut away. Lengths come from the input's shape,
    so an export of this module keeps the length open.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        from open_clip.transformer import text_global_pool
        model = self.model
        length = tokens.shape[1]
        cast_dtype = model.transformer.get_cast_dtype()
        x = model.token_embedding(tokens).to(cast_dtype)
        x = x + model.positional_embedding[:length].to(cast_dtype)
        x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
        x = model.ln_final(x)
        x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
        if model.text_projection is not None:
            x = model.text_projection(x) if isinstance(model.text_projection, torch.nn.Linear) else x @ model.text_projection
        return x


class FullTextTower(torch.nn.Module):
    """`encode_text` over the whole context: for towers that cannot be trimmed."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(tokens)


class ImageTower(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)
