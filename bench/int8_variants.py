#!/usr/bin/env python3
"""int8 weight variants of an exported image tower: cosine to its fp32 export and speed-up, one run.

ONNX Runtime's dynamic quantisation has choices that matter on CPUs without VNNI (AVX2, plain
AVX-512), where u8×s8 products can saturate: signed or unsigned weights, per channel or per
tensor, 7-bit weights. clipphotos.onnx_export picks one per CPU kind; this shows why.

  python bench/int8_variants.py LIBRARY/models/<folder>     (a folder holding image-fp32.onnx)
"""
from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clipphotos.preprocess import to_array  # noqa: E402
from clipphotos.shapes import CLASSES, draw_shape  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--size", type=int, default=256, help="the model's input size")
    args = ap.parse_args()
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    rng = random.Random(7)
    pictures = np.stack([to_array(draw_shape(rng, *CLASSES[i * 5 % len(CLASSES)], size=(320, 240)), args.size)
                         for i in range(8)])

    def run(path: Path) -> tuple[np.ndarray, float]:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        session.run(None, {"pixels": pictures})
        started = time.perf_counter()
        out = session.run(None, {"pixels": pictures})[0]
        return out / np.linalg.norm(out, axis=1, keepdims=True), time.perf_counter() - started

    source = args.folder / "image-fp32.onnx"
    ref, fp32 = run(source)
    print(f"fp32 export: {len(pictures) / fp32:.2f} img/s")
    work = Path(tempfile.mkdtemp(prefix="int8-variants-"))
    variants = {"signed, per channel": dict(weight_type=QuantType.QInt8, per_channel=True),
                "signed, per tensor": dict(weight_type=QuantType.QInt8, per_channel=False),
                "signed, 7-bit, per channel": dict(weight_type=QuantType.QInt8, per_channel=True, reduce_range=True),
                "unsigned, per channel": dict(weight_type=QuantType.QUInt8, per_channel=True)}
    for name, options in variants.items():
        out = work / f"{name.replace(', ', '-').replace(' ', '_')}.onnx"
        quantize_dynamic(str(source), str(out), op_types_to_quantize=["MatMul", "Gemm"], **options)
        vecs, seconds = run(out)
        print(f"{name:<28} cosine to fp32 (worst of {len(pictures)}) {float((vecs * ref).sum(1).min()):.5f}   "
              f"speed-up over fp32 {fp32 / seconds:.2f}x")


if __name__ == "__main__":
    main()
