"""The CPU path without torch: export, checking against torch fp32, the measured choice, the
kept verdict and its invalidation, int8, and a search that never imports torch."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import MODEL_ARGS, REPO, shapes_spec

TEXTS = ["a red circle", "a photo of a purple star on a grey background.", "Hello, World!!  naïve café 123",
         "it's   A \"Quoted\" (word) -- x_y #1 @2 100%", "tab\tand\nnew line",
         "ÆØÅ 東京 🎉 it's we'll", "a " * 40, "", "&amp; <start_of_text> html"]


def test_torch_free_tokenizer_gives_open_clips_ids():
    from open_clip.tokenizer import SimpleTokenizer

    from clipphotos.tokenizer import ClipTokenizer
    for length in (20, 77):
        assert np.array_equal(ClipTokenizer(length)(TEXTS), SimpleTokenizer(context_length=length)(TEXTS).numpy())


def test_the_tokenizers_tables_kept_between_runs_give_the_same_ids(tmp_path):
    from open_clip.tokenizer import SimpleTokenizer

    from clipphotos.tokenizer import ClipTokenizer
    built = ClipTokenizer(77, cache=tmp_path)
    (kept,) = tmp_path.glob("clip-bpe-*.npz")
    loaded = ClipTokenizer(77, cache=tmp_path)      # from the file this time
    reference = SimpleTokenizer(context_length=77)
    assert np.array_equal(built(TEXTS), reference(TEXTS).numpy())
    assert np.array_equal(loaded(TEXTS), reference(TEXTS).numpy())
    kept.write_bytes(b"not an npz")                  # a damaged file is built again, not trusted
    assert np.array_equal(ClipTokenizer(77, cache=tmp_path)(TEXTS), reference(TEXTS).numpy())


def test_sessions_open_from_mapped_weights_and_the_trim_check_runs_once(cache, tmp_path):
    """The first session saves the optimised graph with its weights beside it (mapped, not read,
    by later sessions); a session that skips repacking gives the same vectors; the check that
    trimmed texts agree runs once per model and precision, then its verdict is kept."""
    from clipphotos.embedder import Embedder
    from clipphotos.inference import open_model, verdict_store
    first = open_model(shapes_spec("fp32"), tmp_path)
    expected = first.text_vectors(TEXTS, trimmed=False)
    folder = first.folder
    assert (folder / "text-fp32.mapped.onnx").is_file() and (folder / "text-fp32.mapped.data").is_file()
    assert not list(folder.glob(".optimising-*"))
    brief = open_model(shapes_spec("fp32"), tmp_path, brief=True)
    assert brief.prepack is False
    assert float((brief.text_vectors(TEXTS, trimmed=False) * expected).sum(1).min()) > 0.99999

    class Counting:
        """The real model, counting how it is asked for texts."""
        def __init__(self, model):
            self.model, self.calls = model, []

        def __getattr__(self, name):
            return getattr(self.model, name)

        def text_vectors(self, texts, trimmed, starts=()):
            self.calls.append(trimmed)
            return self.model.text_vectors(texts, trimmed, starts)

    store = verdict_store(tmp_path)
    checked = Counting(open_model(shapes_spec("fp32"), tmp_path))
    Embedder(checked, store).encode_texts(["a red circle"])
    assert checked.calls == [False, True]             # in full, then trimmed to compare
    later = Counting(open_model(shapes_spec("fp32"), tmp_path, brief=True))
    vector = Embedder(later, store).encode_texts(["a red circle"])
    assert later.calls == [True]                      # the kept verdict: trimmed at once
    assert float(vector[0] @ expected[0]) > 0.99999


def test_texts_continue_from_kept_starts_with_the_vectors_of_whole_texts(cache, tmp_path):
    """A query's phrasings share their first words: each start is read once, and texts that
    begin with one are read from where it ends (fewer token slots), giving the vectors torch
    gives the whole texts; texts that begin otherwise, in the same batch, are read whole; and a
    text typed on from one read before is read from where they part."""
    from clipphotos.embedder import SEARCH_TEMPLATES, Embedder, template_starts
    from clipphotos.inference import open_model
    from clipphotos.models import load_model
    model = open_model(shapes_spec("fp32"), tmp_path)
    assert model.manifest["text_continues"] and model.continues_faithfully()
    assert model.measured["continued_text_cosine"] >= 0.99999
    read: list[tuple[int, int]] = []
    continued = model._continued

    def reading(tokens, start, keys, values):
        read.append((tokens.shape[1], keys.shape[2]))
        return continued(tokens, start, keys, values)
    model._continued = reading
    texts = ["a photo of a red circle on a grey background.", "a red circle", "a picture of a blue star.",
             "a photograph of a square", "a photo of"]
    starts = template_starts(SEARCH_TEMPLATES)
    assert starts == ("", "a photo of ", "a picture of ")
    whole = load_model(shapes_spec("fp32")).text_vectors(texts, trimmed=False)
    vectors = model.text_vectors(texts, trimmed=True, starts=starts)
    assert float((vectors * whole).sum(1).min()) > 0.99999
    assert set(model._starts) == set(starts)
    longest = model._read_length(model.tokens(texts))
    assert read[-1][0] < longest and read[-1][1] == 4      # read after "<start> a photo of", not whole

    typed_on = ["a photo of a red circle on a grey background with a star", "a red circle and a square"]
    whole_typed = load_model(shapes_spec("fp32")).text_vectors(typed_on, trimmed=False)
    vectors = model.text_vectors(typed_on, trimmed=True, starts=starts)
    assert float((vectors * whole_typed).sum(1).min()) > 0.99999
    # each read on from the text before it: the first after "... grey background", the second after "a red circle"
    assert read[-1][0] <= 4 and read[-1][1] >= 10

    fresh = open_model(shapes_spec("fp32"), tmp_path)
    query = Embedder(fresh).encode_query("a red circle")   # the search's phrasings share their starts
    assert set(fresh._starts) == set(starts)
    mean = load_model(shapes_spec("fp32")).text_vectors([t.format("a red circle") for t in SEARCH_TEMPLATES],
                                                        trimmed=False).mean(0)
    assert float(query @ (mean / np.linalg.norm(mean))) > 0.99999

    drifting = open_model(shapes_spec("fp32"), tmp_path)
    drifting.measured["continued_text_cosine"] = 0.99      # as if measured too far from torch
    assert float((drifting.text_vectors(texts, trimmed=True, starts=starts) * whole).sum(1).min()) > 0.99999
    assert not drifting._starts                            # read whole


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A model cache of this test's own: the export is made here, not taken from the session's."""
    folder = tmp_path / "models"
    monkeypatch.setenv("CLIPPHOTOS_MODEL_CACHE", str(folder))
    return folder


def _torch_vectors(spec, pictures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from clipphotos.models import load_model
    loaded = load_model(spec)
    return loaded.image_vectors(pictures), loaded.text_vectors(TEXTS, trimmed=False)


@pytest.mark.slow
@pytest.mark.parametrize("native", [False, True])
def test_export_matches_torch_and_the_choice_is_the_fastest_that_agrees(cache, tmp_path, monkeypatch, native):
    """Both kinds of CPU: torch bf16 is measured only where it is native; the automatic choice
    is the fastest export measured within 0.999 cosine (torch only where none is); ONNX vectors
    match torch fp32."""
    import clipphotos.models as models
    from clipphotos.inference import choose, open_model
    from clipphotos.onnx_export import probe_pictures
    monkeypatch.setattr(models, "cpu_has_native_bf16", lambda: native)
    model = open_model(shapes_spec("auto"), tmp_path)
    manifest = json.loads(next(cache.glob("*/manifest.json")).read_text())
    assert ("bf16" in manifest["torch_speed"]) == native
    assert not native or {"image_cosine", "text_cosine"} <= set(manifest["torch_speed"]["bf16"])
    speeds = {("onnxruntime", p): e["images_per_second"] for p, e in manifest["exports"].items()
              if e["image_cosine"] >= 0.999 and e["text_cosine"] >= 0.999}
    assert speeds                                       # the shapes model's fp32 export agrees
    assert (model.backend, model.precision) == max(speeds, key=speeds.get)
    assert model.precision_reason.startswith("automatic") and "images/s" in model.precision_reason
    assert choose(manifest, "fp32")[:2] == ("onnxruntime", "fp32")       # the export agrees: it is used
    assert manifest["exports"]["fp32"]["image_cosine"] >= 0.99999 and manifest["exports"]["fp32"]["text_cosine"] >= 0.99999

    onnx = open_model(shapes_spec("fp32"), tmp_path)
    assert onnx.backend == "onnxruntime" and onnx.precision == "fp32" and "asked for" in onnx.precision_reason
    loaded = models.load_model(shapes_spec("fp32"))
    pictures = probe_pictures(loaded)
    images, texts = _torch_vectors(shapes_spec("fp32"), pictures)
    assert float((onnx.image_vectors(pictures) * images).sum(1).min()) > 0.99999
    assert float((onnx.text_vectors(TEXTS, trimmed=False) * texts).sum(1).min()) > 0.99999
    assert float((onnx.text_vectors(TEXTS, trimmed=True) * texts).sum(1).min()) > 0.99999   # open length

    int8 = open_model(shapes_spec("int8"), tmp_path)
    assert int8.backend == "onnxruntime" and int8.precision == "int8"
    assert int8.measured["image_cosine"] == manifest["exports"]["int8"]["image_cosine"]
    assert float((int8.image_vectors(pictures) * images).sum(1).min()) == pytest.approx(
        manifest["exports"]["int8"]["image_cosine"], abs=1e-4)


@pytest.mark.parametrize("native", [False, True])
def test_torch_is_chosen_only_where_no_export_agrees(monkeypatch, native):
    """Where torch bf16 computes pictures faster than any export (a CPU with AMX, one first load),
    the automatic choice still keeps to ONNX Runtime (torch would cost seconds and a gigabyte
    every run) and names torch's speed; with no export that agrees, torch it is (`--precision
    bf16` takes torch too: test_models). Both kinds of CPU, forced: bf16 counts only where native."""
    import clipphotos.models as models
    from clipphotos.inference import choose
    monkeypatch.setattr(models, "cpu_has_native_bf16", lambda: native)
    manifest = {"exports": {"fp32": {"image_cosine": 1.0, "text_cosine": 1.0, "images_per_second": 15.0},
                            "int8": {"image_cosine": 0.9999, "text_cosine": 0.9995, "images_per_second": 45.0}},
                "torch_speed": {"bf16": {"image_cosine": 0.9996, "text_cosine": 0.9993, "images_per_second": 68.0},
                                "fp32": {"images_per_second": 17.0}}}
    backend, precision, reason = choose(manifest, "auto")
    assert (backend, precision) == ("onnxruntime", "int8")
    assert ("bf16 torch 68.0" in reason) == native and "torch is not used where an export agrees" in reason
    for entry in manifest["exports"].values():
        entry["text_cosine"] = 0.99
    assert choose(manifest, "auto")[:2] == ("torch", "bf16" if native else "fp32")


@pytest.mark.parametrize("native", [False, True])
def test_an_export_that_drifts_is_not_used(cache, tmp_path, monkeypatch, native):
    """An export that loses the text tower's causal mask gives other text vectors: the check
    against torch fp32 catches it, and the model stays on torch: in fp32, or in bf16 where the
    CPU computes it natively and it is the faster of the two (both kinds of CPU, forced)."""
    import torch

    from clipphotos import models, onnx_export, torch_towers
    from clipphotos.inference import open_model
    monkeypatch.setattr(models, "cpu_has_native_bf16", lambda: native)
    forward = onnx_export.ExportAttention.forward
    monkeypatch.setattr(onnx_export.ExportAttention, "forward",
                        lambda self, q, k, v, need_weights=False, attn_mask=None: forward(self, q, k, v))
    monkeypatch.setattr(torch_towers, "seen_mask",
                        lambda start, length, past: torch.zeros(start.shape[0], 1, length, past + length))
    model = open_model(shapes_spec("auto"), tmp_path)
    manifest = json.loads(next(cache.glob("*/manifest.json")).read_text())
    assert manifest["exports"]["fp32"]["text_cosine"] < 0.999
    on_torch = {p: e["images_per_second"] for p, e in manifest["torch_speed"].items()
                if e.get("image_cosine", 1) >= 0.999 and e.get("text_cosine", 1) >= 0.999}
    assert ("bf16" in manifest["torch_speed"]) == native
    assert model.backend == "torch" and model.precision == max(on_torch, key=on_torch.get)
    assert "too far from fp32" in model.precision_reason
    asked = open_model(shapes_spec("fp32"), tmp_path)
    assert asked.backend == "torch" and asked.precision == "fp32" and "drifted" in asked.precision_reason


@pytest.mark.slow
def test_new_weights_make_a_new_export(cache, tmp_path):
    from safetensors.numpy import load_file, save_file

    from clipphotos.inference import export_folder, open_model
    from clipphotos.models import ModelSpec
    weights = tmp_path / "w.safetensors"
    shutil.copy(MODEL_ARGS[3], weights)
    spec = ModelSpec(MODEL_ARGS[1], None, str(weights), "cpu", "fp32")
    first = open_model(spec, tmp_path)
    manifest = export_folder(cache, spec) / "manifest.json"
    made = manifest.stat().st_mtime_ns
    assert open_model(spec, tmp_path).key == first.key and manifest.stat().st_mtime_ns == made   # kept
    state = load_file(str(weights))
    name = next(k for k in state if k.startswith("text_projection"))
    state[name] = state[name][:, ::-1].copy()     # other weights, same shapes
    save_file(state, str(weights))
    second = open_model(spec, tmp_path)
    assert second.key != first.key and json.loads(manifest.read_text())["key"] == second.key
    pictures = np.zeros((1, 3, first.image_size, first.image_size), np.float32)
    _, texts = _torch_vectors(spec, pictures)
    assert float((second.text_vectors(TEXTS, trimmed=True) * texts).sum(1).min()) > 0.99999


@pytest.mark.slow
def test_cli_on_the_cpu_path_imports_no_torch(tmp_path):
    """After the first load, search, status and index run in processes that never import torch;
    status and doctor say how the model runs, with the measured cosine and speed."""
    from clipphotos.shapes import write_library
    write_library(tmp_path / "photos", 6, seed=3)
    lib = str(tmp_path / "lib")
    env = {**os.environ, "PYTHONPATH": str(REPO), "CLIPPHOTOS_MODEL_CACHE": str(tmp_path / "models")}

    def run(*args: str, codes: tuple[int, ...] = (0,)) -> dict:
        code = ("import sys, json; from clipphotos.cli import main; code = main(sys.argv[1:]); "
                "print(json.dumps({'code': code, 'torch': 'torch' in sys.modules}), file=sys.stderr)")
        done = subprocess.run([sys.executable, "-c", code, *args, "--library", lib, "--json"],
                              capture_output=True, text=True, env=env, timeout=600)
        report = json.loads(done.stderr.strip().splitlines()[-1])
        assert report["code"] in codes, (done.stderr, done.stdout)
        return {"torch": report["torch"], **json.loads(done.stdout)}

    first = run("--precision", "fp32", "index", str(tmp_path / "photos"), *MODEL_ARGS)
    assert first["torch"]                         # the first load exports, with torch
    status = run("--precision", "fp32", "status")
    assert not status["torch"] and status["backend"] == "onnxruntime" and status["precision"] == "fp32"
    assert status["precision_measured"]["image_cosine"] >= 0.999 and status["precision_measured"]["images_per_second"] > 0
    assert status["precision_measured"]["continued_text_cosine"] >= 0.999
    search = run("--precision", "fp32", "search", "a red star")
    assert not search["torch"] and len(search["results"]) == 6
    write_library(tmp_path / "photos" / "more", 2, seed=4)
    again = run("--precision", "fp32", "index")
    assert not again["torch"]
    doctor = run("--precision", "int8", "doctor", codes=(0, 1))   # 1: this machine's disk or watch limits may be low
    assert {c["check"] for c in doctor["checks"] if not c["ok"]} <= {"disk", "watch limits"}, doctor
    check = next(c for c in doctor["checks"] if c["check"] == "precision")
    assert check["ok"]
    assert check["detail"].startswith("int8: asked for") and "cosine" in check["detail"]
    assert "queries continue from their phrasings' kept starts" in check["detail"]
