"""Model loading: local configs and weights, device choice, and a clear word when offline."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from clipphotos.models import ModelSpec, ModelUnavailable, load_model, pick_device
from conftest import AGREEMENT, MODEL_ARGS, PRECISIONS, shapes_spec


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


def _unit_texts(loaded, texts):
    """The model's own full-width text vectors, as float32 numpy (whatever its precision)."""
    import torch
    with torch.inference_mode():
        out = loaded.model.encode_text(loaded.tokenizer(texts))
    return torch.nn.functional.normalize(out.float(), dim=-1).numpy()


def _agree(a, b, precision: str) -> bool:
    import numpy as np
    return float(np.sum(a * b, axis=-1).min()) >= AGREEMENT[precision]


def test_texts_encoded_without_padding_give_the_full_vectors(shapes_model_each):
    from clipphotos.embedder import Embedder
    loaded = shapes_model_each
    texts = ["red", "a photo of a purple star on a grey background.", "a square that is green",
             "a small yellow triangle in the corner of a large noisy picture with a gradient"]
    full = _unit_texts(loaded, texts)
    embedder = Embedder(loaded)
    checked = embedder.encode_texts(texts)          # the first texts decide, and come back in full
    assert embedder._trim is True                   # the shapes model's tower is causal
    trimmed = embedder.encode_texts(texts[::-1])
    assert _agree(checked, full, loaded.precision)
    assert _agree(trimmed[::-1], full, loaded.precision)
    warmed = Embedder(loaded)
    warmed.warm_up()                                # what the app does when the model loads
    assert warmed._trim is True


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_text_tower_read_at_its_last_slot_is_never_trimmed(precision):
    from clipphotos.embedder import Embedder
    loaded = load_model(shapes_spec(precision))
    loaded.model.text_pool_type = "last"  # reads the final pad slot: cutting the padding would change it
    full = _unit_texts(loaded, ["a red circle"])
    embedder = Embedder(loaded)
    embedder.encode_texts(["warm up"])
    assert embedder._trim is False
    assert _agree(embedder.encode_texts(["a red circle"]), full, precision)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("variant", ["as shipped", "saved in fp16", "saved in bf16", "keys prefixed module."])
def test_weights_load_exactly_as_open_clip_loads_them(tmp_path, variant, precision):
    """Streamed into the model (OpenCLIP's own format) or through OpenCLIP's converting loader,
    then cast to the precision asked for: the same numbers as OpenCLIP's load, cast alike."""
    import open_clip
    import torch
    from safetensors.torch import load_file, save_file

    from clipphotos.models import DTYPES
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
    loaded = load_model(ModelSpec(config, None, str(weights), "cpu", precision))
    assert loaded.precision == precision and "asked for" in loaded.precision_reason
    from clipphotos.weights import _matches, _safetensors_header
    header = _safetensors_header(Path(weights))
    ours = loaded.model.state_dict()
    assert header is not None and _matches(ours, header) == (variant != "keys prefixed module.")
    name = loaded.key.split("|")[0]  # the name the config is registered under
    theirs = open_clip.create_model(name, pretrained=str(weights)).to(DTYPES[precision]).state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert ours[key].dtype == theirs[key].dtype and torch.equal(ours[key], theirs[key]), key


def test_a_truncated_weights_file_is_one_clear_message(tmp_path):
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(open(MODEL_ARGS[3], "rb").read()[:5_000_000])
    with pytest.raises(ModelUnavailable, match="could not be loaded"):
        load_model(ModelSpec(MODEL_ARGS[1], None, str(cut), "cpu"))


@pytest.mark.parametrize("native", [True, False])
def test_automatic_precision_on_either_kind_of_cpu(monkeypatch, native):
    """Both CPU kinds' choice runs on any CPU: bf16 where it is native (after the probe), else fp32."""
    import clipphotos.models as models
    monkeypatch.setattr(models, "cpu_has_native_bf16", lambda: native)
    loaded = load_model(shapes_spec("auto"))
    assert loaded.precision == ("bf16" if native else "fp32")
    assert loaded.precision_reason.startswith("automatic")
    assert (("cosine to fp32: pictures 0.99" in loaded.precision_reason and ", texts 0.99" in loaded.precision_reason)
            if native else ("no native bf16" in loaded.precision_reason))
    assert (min(loaded.measured.values()) >= 0.999 and set(loaded.measured) == {"image_cosine", "text_cosine"}) \
        if native else not loaded.measured
    assert loaded.notes[0].startswith(f"cpu, {loaded.precision}")


def test_automatic_bf16_that_drifts_stays_fp32(monkeypatch):
    import clipphotos.models as models
    monkeypatch.setattr(models, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(models, "HALF_PRECISION_AGREEMENT", 1.01)   # no cosine can pass
    loaded = load_model(shapes_spec("auto"))
    assert loaded.precision == "fp32" and "drifted" in loaded.precision_reason
    assert next(loaded.model.parameters()).dtype.is_floating_point
    assert next(loaded.model.parameters()).dtype == __import__("torch").float32


def test_precision_plan_and_request():
    from clipphotos.models import plan_precision, requested_precision
    assert plan_precision("cuda")[0] == "fp16" and plan_precision("mps")[0] == "fp16"
    assert plan_precision("cpu", native_bf16=True)[0] == "bf16"
    assert plan_precision("cpu", native_bf16=False)[0] == "fp32"
    assert plan_precision("cpu", "fp16") == ("fp16", "asked for (--precision or CLIPPHOTOS_PRECISION)")
    assert requested_precision("BF16") == "bf16"
    with pytest.raises(ModelUnavailable, match="unknown precision 'int4'"):
        requested_precision("int4")


def test_precision_option_environment_and_status(tmp_path, cli, monkeypatch):
    """--precision beats $CLIPPHOTOS_PRECISION; status and doctor name the precision and why."""
    from clipphotos.shapes import write_library
    write_library(tmp_path / "photos", 8, seed=5)
    lib = tmp_path / "lib"
    assert cli("--precision", "bf16", "index", tmp_path / "photos", "--library", lib, *MODEL_ARGS).code == 0
    status = cli("--precision", "fp32", "status", "--library", lib, "--json").json
    assert status["precision"] == "fp32" and "asked for" in status["precision_reason"]
    monkeypatch.setenv("CLIPPHOTOS_PRECISION", "bf16")
    asked = cli("status", "--library", lib, "--json").json
    assert asked["precision"] == "bf16" and asked["backend"] == "torch"     # only torch runs bf16
    assert cli("status", "--precision", "fp32", "--library", lib, "--json").json["precision"] == "fp32"
    monkeypatch.setenv("CLIPPHOTOS_PRECISION", "int4")
    bad = cli("status", "--library", lib, "--json")
    assert bad.code != 0 and "unknown precision 'int4'" in bad.err and "Traceback" not in bad.err
    monkeypatch.delenv("CLIPPHOTOS_PRECISION")
    # a library indexed in bf16 is searched in fp32 with the same answers
    scores = {p: {r["path"]: r["score"] for r in cli("--precision", p, "search", "a red star", "--library", lib,
                                                      "--json").json["results"]} for p in PRECISIONS}
    assert scores["fp32"].keys() == scores["bf16"].keys() and len(scores["fp32"]) == 8
    assert max(abs(scores["fp32"][k] - scores["bf16"][k]) for k in scores["fp32"]) < 0.02
    doctor = cli("--precision", "fp32", "doctor", "--library", lib, "--json").json
    check = next(c for c in doctor["checks"] if c["check"] == "precision")
    assert check["detail"].startswith("fp32: asked for")


def test_the_bf16_probe_runs_once_per_model_and_cpu(tmp_path, monkeypatch):
    """Its answer is kept (in the library's folder): the next load of the same weights on the
    same CPU does not probe again."""
    import clipphotos.models as models
    monkeypatch.setattr(models, "cpu_has_native_bf16", lambda: True)
    store = models.VerdictStore(tmp_path / "verdicts.json")
    first = load_model(shapes_spec("auto"), store)
    assert first.precision == "bf16" and first.measured["image_cosine"] >= 0.999

    def no_probe(*args):
        raise AssertionError("probed again")
    monkeypatch.setattr(models, "half_precision_agreement", no_probe)
    again = load_model(shapes_spec("auto"), store)
    assert again.precision == "bf16" and again.measured == first.measured
    with pytest.raises(AssertionError, match="probed again"):
        load_model(shapes_spec("auto"), models.VerdictStore(tmp_path / "elsewhere.json"))


def test_weights_load_without_random_initialisation(monkeypatch):
    """Nothing is filled with random numbers before the weights arrive (that took seconds)."""
    import torch
    calls = []
    normal = torch.nn.init.normal_
    monkeypatch.setattr(torch.nn.init, "normal_", lambda t, *a, **k: (calls.append(1), normal(t, *a, **k))[1])
    loaded = load_model(shapes_spec())
    assert calls == [] and torch.nn.init.normal_ is not normal   # ours again after loading
    load_model(ModelSpec(MODEL_ARGS[1], None, None, "cpu"))       # random weights: initialised as ever
    assert calls
    assert loaded.key == load_model(shapes_spec()).key


@pytest.mark.slow
def test_a_mobileclip_is_reparameterised_at_load_and_takes_the_onnx_path(tmp_path):
    """MobileCLIP's checkpoints keep the training-time branches (several convolutions and batch
    norms per block): the loaded model folds them into one convolution each, after the weights
    are in, and its image vectors stay those of the model as trained. Its pixels are scaled as
    its weights were trained (mean 0, std 1, not CLIP's), and its export (a text tower without a
    causal mask: read in full) agrees with torch fp32."""
    import open_clip
    import torch
    from safetensors.torch import save_file
    torch.manual_seed(3)
    trained = open_clip.create_model("MobileCLIP2-S0", pretrained=None, device="cpu").eval()
    for module in trained.visual.modules():   # statistics a real checkpoint would have, not 0 and 1
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    weights = tmp_path / "mobileclip2-s0.safetensors"
    save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(weights))
    branches = sum(1 for m in trained.visual.modules() if hasattr(m, "reparameterize"))
    assert branches > 10

    loaded = load_model(ModelSpec("MobileCLIP2-S0", None, str(weights), "cpu", "fp32"))
    pictures = torch.randn(3, 3, loaded.image_size, loaded.image_size)
    with torch.inference_mode():
        want = torch.nn.functional.normalize(trained.encode_image(pictures), dim=-1)
        got = torch.nn.functional.normalize(loaded.model.encode_image(pictures), dim=-1)
    assert float((want * got).sum(1).min()) > 0.99999
    foldable = [m for m in loaded.model.visual.modules() if hasattr(m, "reparameterize")]
    assert foldable and all(getattr(m, "reparam_conv", None) is not None for m in foldable)   # each runs folded

    def norms(model):
        return sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.visual.modules())
    assert norms(loaded.model) < norms(trained) / 3     # the branches' batch norms are folded away
    assert loaded.mean == (0.0, 0.0, 0.0) and loaded.std == (1.0, 1.0, 1.0) and loaded.dim == 512

    from clipphotos import onnx_export
    assert onnx_export.supported(loaded) is None
    manifest = onnx_export.export(loaded, tmp_path / "export")
    assert manifest["text_trim"] is False and manifest["mean"] == [0.0, 0.0, 0.0]
    fp32 = manifest["exports"]["fp32"]
    assert fp32["image_cosine"] >= 0.999 and fp32["text_cosine"] >= 0.999
