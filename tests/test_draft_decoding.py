"""Decoding at the model's size (JPEG draft mode) must not change what the model sees."""
from __future__ import annotations

import numpy as np
import pytest

from clipphotos.embedder import Embedder
from clipphotos.loader import load_image
from clipphotos.models import ModelSpec, load_model
from conftest import make_photo_library


@pytest.fixture(scope="module")
def camera_photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("camera") / "library"
    make_photo_library(root, count=8, max_side=3000, seed=4)
    return sorted(root.rglob("*.[jJ][pP]*[gG]"))


@pytest.mark.parametrize("which", ["shapes", "vit-b-32-random"])
def test_draft_embeddings_match_full_decode(which, camera_photos, shapes_model):
    # the shapes model, and a full-size ViT-B-32 with weights made here (the real one cannot be downloaded)
    loaded = shapes_model if which == "shapes" else load_model(ModelSpec("ViT-B-32", None, None, "cpu"))
    embedder = Embedder(loaded)
    drafts, fulls = [], []
    for path in camera_photos:
        draft = load_image(path, target=loaded.image_size)
        full = load_image(path)
        assert max(draft.image.size) < max(full.image.size)      # draft mode really decoded less
        drafts.append(draft.image)
        fulls.append(full.image)
    cosines = np.sum(embedder.encode_images(drafts) * embedder.encode_images(fulls), axis=1)
    assert cosines.min() >= 0.999, cosines
