"""Decoding at the model's size (JPEG draft mode) must not change what the model sees."""
from __future__ import annotations

import numpy as np
import pytest

from clipphotos.embedder import Embedder
from clipphotos.loader import load_image
from clipphotos.models import ModelSpec, load_model
from conftest import PRECISIONS, make_photo_library, shapes_spec


@pytest.fixture(scope="module")
def camera_photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("camera") / "library"
    make_photo_library(root, count=8, max_side=3000, seed=4)
    return sorted(root.rglob("*.[jJ][pP]*[gG]"))


@pytest.fixture(scope="module")
def big_shape_photos(tmp_path_factory):
    """Camera-sized JPEGs of the shapes world, where the small model's answers mean something."""
    import random

    from clipphotos.shapes import CLASSES, draw_shape
    root = tmp_path_factory.mktemp("big-shapes")
    rng = random.Random(31)
    paths = []
    for i, (colour, shape) in enumerate(rng.sample(CLASSES, 6)):
        path = root / f"IMG_{i:04d}.JPG"
        draw_shape(rng, colour, shape, (2400, 1600) if i % 2 else (1600, 2400)).save(path, quality=90)
        paths.append(path)
    return paths


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("which", ["shapes", "vit-b-32-random"])
def test_draft_embeddings_match_full_decode(which, precision, request):
    # the shapes model on its own world, and a full-size ViT-B-32 with weights made here on camera
    # photos (the real weights cannot be downloaded); in each precision, whatever this CPU prefers
    if which == "shapes":
        loaded, photos = load_model(shapes_spec(precision)), request.getfixturevalue("big_shape_photos")
    else:
        loaded = load_model(ModelSpec("ViT-B-32", None, None, "cpu", precision))
        photos = request.getfixturevalue("camera_photos")
    embedder = Embedder(loaded)
    drafts, fulls = [], []
    for path in photos:
        draft = load_image(path, target=embedder.decode_size)
        full = load_image(path)
        assert max(draft.image.size) < max(full.image.size)      # draft mode really decoded less
        drafts.append(draft.image)
        fulls.append(full.image)
    cosines = np.sum(embedder.encode_images(drafts) * embedder.encode_images(fulls), axis=1)
    assert cosines.min() >= 0.999, cosines
