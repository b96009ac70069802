"""Model loading: local configs and weights, device choice, and a clear word when offline."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from clipphotos.models import ModelSpec, ModelUnavailable, load_model, pick_device
from conftest import MODEL_ARGS, shapes_spec


def test_loads_config_and_local_weights(shapes_model):
    assert shapes_model.device.type == "cpu"
    assert shapes_model.dim > 0 and shapes_model.image_size > 0
    assert "|file:" in shapes_model.key
    # the same weights always give the same identity; the notes say how it runs
    assert load_model(shapes_spec()).key == shapes_model.key
    assert shapes_model.notes and shapes_model.notes[0].startswith("cpu")


def test_missing_weights_offline_is_one_clear_message(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    from clipphotos.shapes import write_library
    write_library(tmp_path / "photos", 2, seed=1)
    started = time.monotonic()
    r = cli("index", tmp_path / "photos", "--library", tmp_path / "lib", "--json")
    assert time.monotonic() - started < 60  # torch's import included; the hub probe takes a moment
    assert r.code == 2 and r.out == ""
    assert "ViT-B-32-256" in r.err and "datacomp_s34b_b86k" in r.err
    assert str(tmp_path / "hub-cache") in r.err and "--weights" in r.err
    assert "Traceback" not in r.err


def test_unreachable_hub_fails_fast_without_offline_flag(tmp_path, monkeypatch):
    """No HF_HUB_OFFLINE: our own probe must still answer in seconds, not after a minute of retries."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    started = time.monotonic()
    with pytest.raises(ModelUnavailable, match="cannot be reached"):
        load_model(ModelSpec("ViT-B-32", "laion2b_s34b_b79k", None, "cpu"))
    assert time.monotonic() - started < 15


@pytest.mark.parametrize("spec, words", [
    (ModelSpec("no-such-model", None, None, "cpu"), "unknown OpenCLIP model"),
    (ModelSpec("ViT-B-32", "no-such-tag", None, "cpu"), "no pretrained weights"),
    (ModelSpec(MODEL_ARGS[1], None, "/nonexistent/weights.safetensors", "cpu"), "does not exist"),
    (ModelSpec("/nonexistent/config.json", None, None, "cpu"), "does not exist"),
])
def test_bad_model_options_say_what_is_wrong(spec, words):
    with pytest.raises(ModelUnavailable, match=words):
        load_model(spec)


def test_wrong_weights_for_config_is_reported(tmp_path):
    bad = tmp_path / "bad.safetensors"
    from safetensors.torch import save_file
    import torch
    save_file({"nothing": torch.zeros(2)}, str(bad))
    with pytest.raises(ModelUnavailable, match="could not be loaded"):
        load_model(ModelSpec(MODEL_ARGS[1], None, str(bad), "cpu"))


def test_device_choice():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    import torch
    if not torch.cuda.is_available():
        with pytest.raises(ModelUnavailable, match="CUDA"):
            pick_device("cuda")


def test_texts_encoded_without_padding_give_the_full_vectors(shapes_model):
    import numpy as np
    import torch

    from clipphotos.embedder import Embedder
    texts = ["red", "a photo of a purple star on a grey background.", "a square that is green",
             "a small yellow triangle in the corner of a large noisy picture with a gradient"]
    with torch.inference_mode():
        full = torch.nn.functional.normalize(shapes_model.model.encode_text(shapes_model.tokenizer(texts)), dim=-1)
    embedder = Embedder(shapes_model)
    checked = embedder.encode_texts(texts)          # the first texts decide, and come back in full
    assert embedder._trim is True                   # the shapes model's tower is causal
    trimmed = embedder.encode_texts(texts[::-1])
    assert np.abs(checked - full.numpy()).max() < 1e-5
    assert np.abs(trimmed[::-1] - full.numpy()).max() < 1e-5
    warmed = Embedder(shapes_model)
    warmed.warm_up()                                # what the app does when the model loads
    assert warmed._trim is True


def test_a_text_tower_read_at_its_last_slot_is_never_trimmed():
    import numpy as np
    import torch

    from clipphotos.embedder import Embedder
    loaded = load_model(shapes_spec())
    loaded.model.text_pool_type = "last"  # reads the final pad slot: cutting the padding would change it
    with torch.inference_mode():
        full = torch.nn.functional.normalize(loaded.model.encode_text(loaded.tokenizer(["a red circle"])), dim=-1)
    embedder = Embedder(loaded)
    embedder.encode_texts(["warm up"])
    assert embedder._trim is False
    assert np.abs(embedder.encode_texts(["a red circle"]) - full.numpy()).max() < 1e-5


@pytest.mark.parametrize("variant", ["as shipped", "saved in fp16", "saved in bf16", "keys prefixed module."])
def test_weights_load_exactly_as_open_clip_loads_them(tmp_path, variant):
    """Streamed into the model (OpenCLIP's own format) or through OpenCLIP's converting loader."""
    import open_clip
    import torch
    from safetensors.torch import load_file, save_file
    config, weights = MODEL_ARGS[1], MODEL_ARGS[3]
    state = load_file(weights)
    if variant != "as shipped":
        if variant == "saved in fp16":
            state = {k: v.half() for k, v in state.items()}
        elif variant == "saved in bf16":
            state = {k: v.bfloat16() for k, v in state.items()}
        else:
            state = {f"module.{k}": v for k, v in state.items()}
        weights = tmp_path / "variant.safetensors"
        save_file(state, str(weights))
    ours_model = load_model(ModelSpec(config, None, str(weights), "cpu")).model
    from clipphotos.weights import _matches, _safetensors_header
    header = _safetensors_header(Path(weights))
    assert header is not None and _matches(ours_model.state_dict(), header) == (variant != "keys prefixed module.")
    ours = ours_model.state_dict()
    name = load_model(shapes_spec()).key.split("|")[0]  # the name the config is registered under
    theirs = open_clip.create_model(name, pretrained=str(weights)).state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert ours[key].dtype == theirs[key].dtype and torch.equal(ours[key], theirs[key]), key


def test_a_truncated_weights_file_is_one_clear_message(tmp_path):
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(open(MODEL_ARGS[3], "rb").read()[:5_000_000])
    with pytest.raises(ModelUnavailable, match="could not be loaded"):
        load_model(ModelSpec(MODEL_ARGS[1], None, str(cut), "cpu"))
