"""The torch side of running a model: image and text towers, and the text tower without padding.

A CLIP text tower reads 77 token slots, but a query fills a dozen. Its attention is causal and
its output is read at the end-of-text token, so the slots after that token cannot change the
result: texts are encoded with the padding cut off, several times faster for the same vector.
The same trimmed tower, with the length left open, is what clipphotos.onnx_export exports.

The same causal mask lets a text continue from a start already read: a query's phrasings ("a
photo of {}.") begin alike, and the keys and values each layer made of those first words are the
same whatever follows. ContinuedTextTower reads only what comes after a kept start, a third of a
query's rows fewer (clipphotos.onnx_runtime keeps the starts).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

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


def can_continue(model: torch.nn.Module) -> bool:
    """Whether ContinuedTextTower reproduces this model's text tower: a trimmable tower (see
    can_trim) made of OpenCLIP's plain residual blocks (self-attention, batch first)."""
    if not can_trim(model):
        return False
    blocks = getattr(getattr(model, "transformer", None), "resblocks", None)
    if blocks is None or not getattr(model.transformer, "batch_first", True):
        return False
    needed = ("ln_1", "attn", "ls_1", "ln_2", "mlp", "ls_2")
    for block in blocks:
        attn = getattr(block, "attn", None)
        if (not all(hasattr(block, name) for name in needed) or hasattr(block, "ln_1_kv")
                or set(dict(block.named_children())) - set(needed)
                or not isinstance(attn, torch.nn.MultiheadAttention) or not attn.batch_first
                or not attn._qkv_same_embed_dim or attn.in_proj_bias is None or attn.bias_k is not None
                or attn.add_zero_attn):
            return False
    return True


def seen_mask(start: torch.Tensor, length: int, past: int) -> torch.Tensor:
    """The additive attention mask of continued texts (rows×1×length×(past+length)): a token
    sees its row's start (the first `start` of the `past` slots) and, causally, the tokens read
    before it and itself."""
    rows = start.shape[0]
    seen = torch.cat([(torch.arange(past)[None, :] < start[:, None])[:, None, :].expand(rows, length, past),
                      torch.ones(length, length, dtype=torch.bool).tril()[None].expand(rows, length, length)], dim=2)
    return torch.zeros(seen.shape).masked_fill(~seen, float("-inf"))[:, None]


class Attention(torch.autograd.Function):
    """Multi-head attention of projected queries, keys and values (rows × slots × width) under an
    additive mask. Exported as ONNX Runtime's fused MultiHeadAttention: one step per layer
    instead of a dozen reshapes, transposes and small products, which cost a query as much as
    a third of its matrix products."""

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                heads: int) -> torch.Tensor:
        rows, length, width = q.shape

        def by_head(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(rows, t.shape[1], heads, width // heads).transpose(1, 2)
        out = F.scaled_dot_product_attention(by_head(q), by_head(k), by_head(v), attn_mask=mask)
        return out.transpose(1, 2).reshape(rows, length, width)

    @staticmethod
    def symbolic(g: Any, q: Any, k: Any, v: Any, mask: Any, heads: int) -> Any:
        absent = g.op("prim::Constant")   # the fused input bias and key padding mask: not given
        absent.setType(torch._C.OptionalType.ofTensor())
        out = g.op("com.microsoft::MultiHeadAttention", q, k, v, absent, absent, mask, num_heads_i=heads)
        out.setType(q.type())   # shaped as the queries (the exporter cannot infer a contributed op's shape)
        return out


class ContinuedTextTower(torch.nn.Module):
    """The trimmed text tower reading each text from where its kept start ends.

    Inputs: `tokens` (n×L) each row's tokens after its start, padded with zeros after the
    end-of-text token; `start` (n) the start's length, so the position of the row's first token;
    `keys` and `values` (layers×n×P×width) each layer's keys and values of the start's tokens,
    slots from `start` on unused (starts of different lengths share a batch). With no start
    (P = 0, start 0) it is TextTower. Outputs the vectors (as `encode_text`, not normalised) and
    the keys and values of the tokens read, so a start is itself read once through this tower.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, start: torch.Tensor, keys: torch.Tensor,
                values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from open_clip.transformer import text_global_pool
        model = self.model
        length = tokens.shape[1]
        cast_dtype = model.transformer.get_cast_dtype()
        positions = (start[:, None] + torch.arange(length)[None, :]).clamp(max=model.positional_embedding.shape[0] - 1)
        x = model.token_embedding(tokens).to(cast_dtype) + model.positional_embedding[positions].to(cast_dtype)
        mask = seen_mask(start, length, keys.shape[2]).to(x.dtype)
        heads = model.transformer.resblocks[0].attn.num_heads
        by_head = mask.expand(-1, heads, -1, -1)   # one per head: ONNX Runtime before 1.20 broadcasts none
        new_keys, new_values = [], []
        for layer, block in enumerate(model.transformer.resblocks):
            attn = block.attn
            q, k, v = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).split(attn.embed_dim, dim=-1)
            new_keys.append(k)
            new_values.append(v)
            out = Attention.apply(q, torch.cat([keys[layer], k], dim=1), torch.cat([values[layer], v], dim=1),
                                  by_head, attn.num_heads)
            x = x + block.ls_1(F.linear(out, attn.out_proj.weight, attn.out_proj.bias))
            x = x + block.ls_2(block.mlp(block.ln_2(x)))
        x = model.ln_final(x)
        x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
        if model.text_projection is not None:
            x = model.text_projection(x) if isinstance(model.text_projection, torch.nn.Linear) else x @ model.text_projection
        return x, torch.stack(new_keys), torch.stack(new_values)


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
