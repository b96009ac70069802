"""Export a loaded model's towers to ONNX once, check them against torch, and measure them.

The first time a model loads on a CPU its image and text towers are exported (the text tower
with an open length, so texts are still read without their padding), each export's vectors
are compared with torch fp32 on a probe of pictures and texts, int8 weights are made from the
fp32 export (ONNX Runtime's dynamic quantisation) and checked the same way, and every way of
running the model is timed on this CPU. All of it lands in one folder with a manifest
(onnx_runtime.py reads it): later runs open the export without importing torch.

Only the legacy (TorchScript) exporter is used: the dynamo exporter took most of a minute for
the tiny shapes model here, against seconds. nn.MultiheadAttention's traced graph fixes the
batch and length it was traced with, so for the export it is swapped for the same arithmetic
written with shapes read at run time.
"""
from __future__ import annotations

import json
import logging
import os
import random
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from clipphotos import models
from clipphotos.models import PROBE_TEXTS, LoadedModel, cpu_identity
from clipphotos.onnx_runtime import (
    EXPORT_FORMAT, MANIFEST, OnnxModel, runtime_version, tower_file, tokenizer_supported, weights_identity,
)
from clipphotos.torch_towers import (
    ContinuedTextTower, FullTextTower, ImageTower, TextTower, can_continue, can_trim, unit,
)

OPSET = 17
# models.PROBE_TEXTS each begin with a PROBE_STARTS or not at all, so a continued tower is checked
# both ways; and PROBE_TYPED_ON continue the first texts, as a query typed on continues the one before.
PROBE_STARTS = ("a photo of ", "a picture of ")
PROBE_TYPED_ON = ("a photo of a cat on a sofa", "a red circle on a grey background with a blue line")
TIMED_BATCH = 8


class ExportAttention(torch.nn.Module):
    """nn.MultiheadAttention's self-attention (batch first), traceable at any batch and length."""

    def __init__(self, mha: torch.nn.MultiheadAttention) -> None:
        super().__init__()
        self.mha = mha

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, need_weights: bool = False,
                attn_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        mha, heads = self.mha, self.mha.num_heads
        batch, length, width = q.shape
        qkv = F.linear(q, mha.in_proj_weight, mha.in_proj_bias)
        qkv = qkv.reshape(batch, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=attn_mask)
        out = out.transpose(1, 2).reshape(batch, length, width)
        return F.linear(out, mha.out_proj.weight, mha.out_proj.bias), None


@contextmanager
def _traceable_attention(model: torch.nn.Module) -> Iterator[None]:
    swapped = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.MultiheadAttention) and child.batch_first and child._qkv_same_embed_dim:
                setattr(parent, name, ExportAttention(child))
                swapped.append((parent, name, child))
    try:
        yield
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


def probe_pictures(loaded: LoadedModel) -> np.ndarray:
    """A fixed batch of model inputs: drawn scenes, as the app prepares photos, and noise."""
    from clipphotos.preprocess import to_array
    from clipphotos.shapes import CLASSES, draw_shape
    rng = random.Random(7)
    scenes = [draw_shape(rng, *CLASSES[i * 5 % len(CLASSES)], size=(320, 240)) for i in range(TIMED_BATCH - 2)]
    arrays = [to_array(img, loaded.image_size, loaded.mean, loaded.std) for img in scenes]
    noise = np.random.default_rng(0).normal(0, 1, (2, 3, loaded.image_size, loaded.image_size)).astype(np.float32)
    return np.concatenate([np.stack(arrays), noise])


def export(loaded: LoadedModel, folder: Path) -> dict:
    """Export, check, quantise and time the model's towers into `folder`; return the manifest.

    `loaded` must be in fp32 on the CPU (the reference every export is checked against).
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    for old in folder.glob("*.onnx"):   # an earlier export's towers and their optimised graphs
        old.unlink()
    model = loaded.model
    trim = can_trim(model)
    continues = trim and can_continue(model)
    pictures = probe_pictures(loaded)
    tokens = loaded.tokenizer(list(PROBE_TEXTS))
    with torch.inference_mode():
        ref_images = unit(model.encode_image(torch.from_numpy(pictures)))
        ref_texts = unit(model.encode_text(tokens))
        ref_typed_on = unit(model.encode_text(loaded.tokenizer(list(PROBE_TYPED_ON))))
    manifest: dict = {
        "format": EXPORT_FORMAT, "key": loaded.key, **weights_identity(loaded.weights), "runtime": runtime_version(),
        "cpu": cpu_identity(), "torch": torch.__version__, "spec": json.loads(loaded.spec.to_json()), "image_size": loaded.image_size,
        "mean": list(loaded.mean), "std": list(loaded.std), "dim": loaded.dim, "text_trim": trim,
        "text_continues": continues, "text_layers": len(model.transformer.resblocks) if continues else None,
        "text_width": model.transformer.width if continues else None,
        "text_pool": getattr(model, "text_pool_type", "argmax"), "text_eos_id": getattr(model, "text_eos_id", None),
        "context_length": int(tokens.shape[1]), "exports": {}, "torch_speed": {},
    }
    started = time.perf_counter()
    fp32_image, fp32_text = tower_file(folder, "image", "fp32"), tower_file(folder, "text", "fp32")
    _export_towers(model, loaded.image_size, tokens, trim, continues, fp32_image, fp32_text)
    manifest["export_seconds"] = round(time.perf_counter() - started, 1)
    quantise(fp32_image, tower_file(folder, "image", "int8"))
    quantise(fp32_text, tower_file(folder, "text", "int8"))
    for precision in ("fp32", "int8"):
        onnx = OnnxModel.from_manifest(folder, manifest, precision, "probe", loaded.spec)
        images = onnx.image_vectors(pictures)
        texts = onnx.text_vectors(PROBE_TEXTS, trimmed=trim)
        manifest["exports"][precision] = {
            "image_cosine": _worst(images, ref_images), "text_cosine": _worst(texts, ref_texts),
            "images_per_second": _images_per_second(onnx.image_vectors, pictures),
        }
        if continues:
            continued = onnx.text_vectors(PROBE_TEXTS, trimmed=True, starts=PROBE_STARTS, checked=False)
            typed_on = onnx.text_vectors(PROBE_TYPED_ON, trimmed=True, starts=PROBE_STARTS, checked=False)
            manifest["exports"][precision]["continued_text_cosine"] = min(_worst(continued, ref_texts),
                                                                          _worst(typed_on, ref_typed_on))
    manifest["torch_speed"]["fp32"] = {"images_per_second": _torch_speed(loaded, pictures, torch.float32)}
    if models.cpu_has_native_bf16():   # elsewhere bf16 runs several times slower: not worth timing
        agreement = models.half_precision_agreement(loaded, torch.bfloat16, pictures)
        with torch.inference_mode():
            model.to(torch.bfloat16)
            manifest["torch_speed"]["bf16"] = {**agreement,
                                               "images_per_second": _torch_speed(loaded, pictures, torch.bfloat16)}
            model.to(torch.float32)
    manifest["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, folder / MANIFEST)
    return manifest


def _export_towers(model: torch.nn.Module, size: int, tokens: torch.Tensor, trim: bool, continues: bool,
                   image_path: Path, text_path: Path) -> None:
    export_image(model, size, image_path)
    with _tracing():
        if continues:   # written with its own attention; traced with a start of two slots, runs with any (or none)
            layers, width = len(model.transformer.resblocks), model.transformer.width
            past = torch.zeros(layers, 2, 2, width)
            _export_one(ContinuedTextTower(model), (_read_part(model, tokens[:2]), torch.full((2,), 2), past, past),
                        text_path, {"tokens": {0: "batch", 1: "length"}, "start": {0: "batch"},
                                    "keys": {1: "batch", 2: "past"}, "values": {1: "batch", 2: "past"}},
                        {"vectors": {0: "batch"}, "new_keys": {1: "batch", 2: "length"},
                         "new_values": {1: "batch", 2: "length"}}, {"com.microsoft": 1})   # its fused attention
    if not continues:
        export_plain_text(model, tokens, trim, text_path)


def export_image(model: torch.nn.Module, size: int, path: Path) -> None:
    """The image tower, for pictures of `size`×`size` in batches of any size."""
    with _tracing(), _traceable_attention(model):
        _export_one(ImageTower(model), (torch.zeros(2, 3, size, size),), path, {"pixels": {0: "batch"}})


def export_plain_text(model: torch.nn.Module, tokens: torch.Tensor, trim: bool, path: Path) -> None:
    """The text tower in standard ONNX steps, traced on `tokens`: with an open length where it
    can be trimmed, else over the whole context. The app's tower where it cannot continue texts;
    for any model, what bench/cpu_backends.py gives OpenVINO (which cannot read the fused attention
    of the continued tower)."""
    with _tracing(), _traceable_attention(model):
        if trim:
            _export_one(TextTower(model), (_read_part(model, tokens[:2]),), path, {"tokens": {0: "batch", 1: "length"}})
        else:
            _export_one(FullTextTower(model), (tokens[:2],), path, {"tokens": {0: "batch"}})


def _read_part(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """The token slots a causal tower reads of these texts (up to the last end-of-text token)."""
    from clipphotos.tokenizer import read_length
    return tokens[:, :read_length(tokens.numpy(), model.text_pool_type, getattr(model, "text_eos_id", None))]


@contextmanager
def _tracing() -> Iterator[None]:
    """Tracing for export: gradients off, outside inference mode, the tracer's chatter silenced."""
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python ints; the exporter's deprecation
        yield


def _export_one(module: torch.nn.Module, example: tuple[torch.Tensor, ...], path: Path,
                inputs: dict[str, dict[int, str]], outputs: dict[str, dict[int, str]] | None = None,
                custom_opsets: dict[str, int] | None = None) -> None:
    """Export `module` traced on `example`, its inputs and outputs named with their open axes."""
    outputs = outputs or {"vectors": {0: "batch"}}
    tmp = path.with_suffix(".tmp")
    torch.onnx.export(module.eval(), example, str(tmp), dynamo=False, opset_version=OPSET,
                      input_names=list(inputs), output_names=list(outputs), dynamic_axes={**inputs, **outputs},
                      custom_opsets=custom_opsets)
    os.replace(tmp, path)


def quantise(source: Path, target: Path) -> None:
    """int8 weights for the matrix products (activations quantised on the fly), fp32 elsewhere.

    Without VNNI (AVX2, plain AVX-512) ONNX Runtime's u8×s8 products saturate their 16-bit sums,
    so weights are unsigned there (u8×u8). Measured on ViT-B-32 image tower here (AVX2, cosine
    to fp32 on the probe): s8 0.989, s8 in 7 bits 0.99974, u8 0.99988 and the fastest of the three.
    """
    identity = cpu_identity()
    vnni = "vnni" in identity or "amx_int8" in identity
    from onnxruntime.quantization import QuantType, quantize_dynamic
    tmp = target.with_suffix(".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)   # it advises pre-processing on the root logger, every time
        try:
            quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8 if vnni else QuantType.QUInt8,
                             op_types_to_quantize=["MatMul", "Gemm"], per_channel=True)
        finally:
            logging.disable(logging.NOTSET)
    os.replace(tmp, target)


def _worst(a: np.ndarray, b: np.ndarray) -> float:
    return round(float((a * b).sum(axis=1).min()), 6)


def _images_per_second(run, pictures: np.ndarray) -> float:
    """Best of three timed runs after a warm-up (best: the machine may be shared)."""
    run(pictures)
    best = min(_timed(run, pictures) for _ in range(3))
    return round(len(pictures) / best, 2)


def _timed(run, pictures: np.ndarray) -> float:
    started = time.perf_counter()
    run(pictures)
    return time.perf_counter() - started


def _torch_speed(loaded: LoadedModel, pictures: np.ndarray, dtype: torch.dtype) -> float:
    def run(batch: np.ndarray) -> None:
        with torch.inference_mode():
            loaded.model.encode_image(torch.from_numpy(batch).to(dtype))
    return _images_per_second(run, pictures)


def supported(loaded: LoadedModel) -> str | None:
    """Why this model cannot take the ONNX path, or None if it can."""
    if loaded.device.type != "cpu":
        return "the model runs on a GPU"
    if not runtime_version():
        return "ONNX Runtime is not installed"
    if not tokenizer_supported(loaded.tokenizer):
        return "its tokenizer needs torch"
    return None
