"""The committed shapes model, checked on freshly drawn held-out pictures read back from disk."""
from __future__ import annotations

import numpy as np
import pytest

from clipphotos.embedder import Embedder
from clipphotos.loader import load_image
from clipphotos.shapes import CLASSES, COLOURS, SHAPES
from conftest import SHAPES_CONFIG, SHAPES_WEIGHTS


def zero_shot(embedder: Embedder, images, prompts: list[str]) -> np.ndarray:
    text = np.stack([embedder.encode_query(p) for p in prompts])
    return np.argmax(embedder.encode_images(images) @ text.T, axis=1)


@pytest.fixture(scope="module")
def held_out(shapes_folder, shapes_model):
    root, truth = shapes_folder
    embedder = Embedder(shapes_model)
    images = [load_image(root / t["path"], target=embedder.decode_size).image for t in truth]
    return embedder, images, truth


def test_files_are_an_openclip_config_and_safetensors_weights():
    import json
    cfg = json.loads(SHAPES_CONFIG.read_text())
    assert {"embed_dim", "vision_cfg", "text_cfg"} <= set(cfg)
    assert SHAPES_WEIGHTS.suffix == ".safetensors" and SHAPES_WEIGHTS.stat().st_size <= 20 * 2**20


def test_knows_the_colours(held_out):
    embedder, images, truth = held_out
    names = list(COLOURS)
    predicted = zero_shot(embedder, images, [f"a {c} shape" for c in names])
    accuracy = np.mean([names[p] == t["colour"] for p, t in zip(predicted, truth)])
    assert accuracy >= 0.9


@pytest.mark.model_quality
def test_zero_shot_accuracy_on_32_classes(held_out):
    embedder, images, truth = held_out
    predicted = zero_shot(embedder, images, [f"a {c} {s}" for c, s in CLASSES])
    accuracy = np.mean([CLASSES[p] == (t["colour"], t["shape"]) for p, t in zip(predicted, truth)])
    assert accuracy >= 0.9


@pytest.mark.model_quality
def test_knows_the_shapes(held_out):
    embedder, images, truth = held_out
    predicted = zero_shot(embedder, images, [f"a photo of a {s}" for s in SHAPES])
    accuracy = np.mean([SHAPES[p] == t["shape"] for p, t in zip(predicted, truth)])
    assert accuracy >= 0.9
