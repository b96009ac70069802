"""Auto-tagging with the shapes model on freshly drawn pictures: quality, reviews, new photos, CLI, XMP, GUI."""
from __future__ import annotations

import hashlib
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from clipphotos.library import Library
from clipphotos.shapes import COLOURS, SHAPES, write_library
from clipphotos.xmp import sidecar_path
from conftest import MODEL_ARGS, REPO, shapes_spec, sql

sys.path.insert(0, str(REPO / "bench"))
from tag_quality import LABELS, indexed_library, quality, review_effect, tag_all, truth_of  # noqa: E402


@pytest.fixture(scope="module")
def tagged(tmp_path_factory) -> tuple[Library, dict[str, set[str]], Path]:
    """256 freshly drawn pictures (a seed unseen in training), indexed and tagged with 12 labels."""
    folder = tmp_path_factory.mktemp("tag-photos") / "drawn"
    truth = truth_of(folder, write_library(folder, 256, seed=20261206))
    lib = Library(tmp_path_factory.mktemp("tag-lib"), model=shapes_spec())
    lib.index_folders([folder])
    tag_all(lib)
    yield lib, truth, folder
    lib.close()


@pytest.fixture
def copy_of(tagged, tmp_path):
    """A separate library with the same photos, labels and tags, for tests that change things."""
    lib, truth, folder = tagged
    root = tmp_path / "copy"
    lib.catalog.backup(root / "catalog.sqlite3")
    copy = Library(root, model=shapes_spec())
    yield copy, truth, folder
    copy.close()


# -- quality ---------------------------------------------------------------------------------


@pytest.mark.parametrize("names", [
    pytest.param(tuple(COLOURS), id="colours"),
    pytest.param(SHAPES, id="shapes", marks=pytest.mark.model_quality),
])
def test_every_label_reaches_f1_0_9(tagged, names):
    lib, truth, _ = tagged
    tags = lib.labels.tags_of()
    f1 = {name: round(quality(tags, truth, name).f1, 3) for name in names}
    assert min(f1.values()) >= 0.9, f1


@pytest.mark.model_quality
def test_labels_are_not_mutually_exclusive(tagged):
    lib, truth, _ = tagged
    tags = lib.labels.tags_of()
    both = sum(truth[p] <= set(tags[p]) for p in truth)
    assert both >= 0.85 * len(truth)


@pytest.mark.model_quality
def test_calibration_differs_per_label_and_uses_rivals_only_where_exclusive(tagged):
    lib, _, _ = tagged
    infos = {i.name: i for i in lib.labels.info()}
    thresholds = {round(i.threshold, 3) for i in infos.values()}
    assert len(thresholds) > 6                          # one cut per label, not one global cutoff
    for colour in COLOURS:
        assert set(infos[colour].rivals) & set(COLOURS)      # colours compete with colours
    for name in LABELS:                                      # … and a colour never takes a photo from a shape
        kind = COLOURS if name in COLOURS else SHAPES
        assert all(d.rival in kind for d in lib.labels.decisions(name)
                   if d.rival_score is not None and d.rival_score > d.score and d.margin >= d.threshold)


@pytest.mark.parametrize("names", [
    pytest.param(tuple(COLOURS), id="colours"),
    pytest.param(SHAPES, id="shapes", marks=pytest.mark.model_quality),
])
@pytest.mark.parametrize("uncertain", [True, False], ids=["least-sure", "most-confident"])
def test_reviewing_five_photos_never_makes_a_label_worse(tagged, names, uncertain):
    lib, truth, _ = tagged
    changes = {}
    for name in names:
        before, after, picked = review_effect(lib, truth, name, k=5, uncertain=uncertain)
        assert len(picked) == 5
        changes[name] = (round(before.f1, 3), round(after.f1, 3))
    assert all(after >= before for before, after in changes.values()), changes
    assert not any(sql(lib, "SELECT 1 FROM tag_reviews"))   # review_effect forgot its answers


def test_a_label_that_fits_no_photo_tags_nothing(tmp_path):
    lib, truth = indexed_library(tmp_path / "no-red", tmp_path / "lib", 128, 20261207, shapes_spec(),
                                 drop_colour="red")
    with lib:
        tags = tag_all(lib)
        assert sum("red" in t for t in tags.values()) <= 1
        assert quality(tags, truth, "orange").f1 >= 0.9    # the close colour is not disturbed


def test_decisions_explain_themselves(tagged):
    lib, truth, _ = tagged
    top = lib.labels.suggestions("purple", limit=40)
    assert [d.confidence for d in top] == sorted((d.confidence for d in top), reverse=True)
    best = top[0]
    assert best.applies and best.confidence > 0.9 and "purple" in truth[best.path]
    assert best.margin == pytest.approx(best.score - best.background_score)
    text = best.explain()
    for part in (f"{best.score:.3f}", f"{best.threshold:+.3f}", f"{best.margin:+.3f}", best.background):
        assert part in text
    assert best.rival is not None and f"beats {best.rival!r}" in text      # purple competes with the other colours
    data = best.to_json()
    assert {"path", "confidence", "score", "background", "margin", "threshold", "z", "rival",
            "explanation"} <= set(data)
    taken = next(d for d in lib.labels.decisions("purple") if d.rival_score is not None and d.rival_score > d.score)
    assert not taken.applies and taken.confidence < 0.5 and f"{taken.rival!r} fits it better" in taken.explain()


# -- reviews, new photos, search --------------------------------------------------------------


def test_the_users_answers_stick(copy_of):
    lib, truth, _ = copy_of
    red = next(p for p, t in truth.items() if "red" in t)
    blue = next(p for p, t in truth.items() if "blue" in t)
    lib.labels.review("red", [red], False)
    lib.labels.review("red", [blue], True)
    tags = lib.labels.run().tags
    assert "red" not in tags[red] and "red" in tags[blue]
    shown = {d.path: d for d in lib.labels.decisions("red", paths=[red, blue])}
    assert shown[red].review == "rejected" and not shown[red].applies
    assert shown[blue].review == "accepted" and shown[blue].applies
    assert dict(lib.labels.photos("red"))[blue] == 1.0


def test_new_photos_are_tagged_as_they_are_indexed(copy_of, tmp_path):
    lib, truth, _ = copy_of
    before = lib.labels.tags_of()
    more = tmp_path / "new-card"
    new_truth = truth_of(more, write_library(more, 32, seed=20261208))
    lib.index_folders([more])
    after = lib.labels.tags_of()
    assert {p: after[p] for p in before} == before              # the library's tags stay put
    new_tags = {p: after[p] for p in new_truth}
    assert all(quality(new_tags, new_truth, name).f1 >= 0.85 for name in COLOURS)





def test_search_filters_by_tag(tagged, cli):
    lib, truth, _ = tagged
    tags = lib.labels.tags_of()
    purple = {p for p, t in tags.items() if "purple" in t}
    assert len(purple) >= 25
    assert {r.path for r in lib.search("a shape", tag="Purple", limit=100)} == purple
    assert lib.search("a shape", tag="no such label") == []
    r = cli("search", "a photo of something", "--tag", "green", "--limit", "10", "--library", lib.root,
            *MODEL_ARGS, "--json")
    assert r.code == 0, r.err
    assert len(r.json["results"]) == 10 and all("green" in tags[x["path"]] for x in r.json["results"])


# -- the command line and XMP -----------------------------------------------------------------


def _digest(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}





def test_tag_commands_end_to_end(tmp_path, cli):
    folder = tmp_path / "photos"
    truth = truth_of(folder, write_library(folder, 96, seed=20261209))
    originals = _digest(folder)
    lib = ["--library", tmp_path / "lib", *MODEL_ARGS]
    assert cli("index", folder, *lib, "--json").code == 0
    r = cli("tag", "add", "red", *lib, "--json")
    assert r.code == 0 and r.json["label"] == "red"
    r = cli("tag", "add", "greens", "--prompt", "a green shape", "--prompt", "something green", *lib, "--json")
    assert r.json["prompts"] == ["a green shape", "something green"]
    r = cli("tag", "run", *lib, "--json")
    assert r.code == 0, r.err
    tags = r.json["tags"]
    assert set(tags) == set(truth)
    assert quality(tags, truth, "red").f1 >= 0.9
    assert quality({p: ["green" if t == "greens" else t for t in ts] for p, ts in tags.items()}, truth,
                   "green").f1 >= 0.9
    r = cli("tag", "list", *lib, "--json")
    assert [(x["name"], x["tagged"]) for x in r.json["labels"]] == [
        ("greens", sum("greens" in t for t in tags.values())), ("red", sum("red" in t for t in tags.values()))]

    not_red = next(p for p, t in truth.items() if "red" not in t)
    red = next(p for p, t in truth.items() if "red" in t)
    r = cli("tag", "reject", "red", red, *lib, "--json")
    assert r.code == 0 and r.json["answer"] == "rejected"
    r = cli("tag", "accept", "red", not_red, *lib, "--json")
    assert r.code == 0 and r.json["calibration"]["accepted"] == 1
    r = cli("tag", "show", "red", "--limit", "5", *lib, "--json")
    assert len(r.json["suggestions"]) == 5 and "threshold" in r.json["suggestions"][0]["explanation"]
    assert cli("tag", "show", "nonexistent", *lib).code == 2
    assert cli("tag", "accept", "red", tmp_path / "not-a-photo.jpg", *lib).code == 2

    r = cli("tag", "export-xmp", *lib, "--json")
    assert r.code == 0 and len(r.json["written"]) > 0
    written = {p: Path(p).read_bytes() for p in r.json["written"]}
    root = ET.fromstring(written[str(sidecar_path(not_red))])
    subject = [li.text for li in root.iter("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}li")]
    assert "red" in subject
    r = cli("tag", "export-xmp", *lib, "--json")
    assert r.json["written"] == [] and r.json["unchanged"] == len(written)
    assert all(Path(p).read_bytes() == data for p, data in written.items())
    assert {p: d for p, d in _digest(folder).items() if not p.endswith(".xmp")} == originals

    r = cli("tag", "remove", "greens", *lib, "--json")
    assert r.json["removed"] is True
    r = cli("tag", "export-xmp", "--folder", folder, *lib, "--json")
    assert r.json["written"] and all("greens" not in Path(p).read_text() for p in r.json["written"])


def test_run_on_a_folder_only_tags_that_folder(copy_of):
    lib, truth, folder = copy_of
    sub = next(p for p in folder.iterdir() if p.is_dir())
    sql(lib, "DELETE FROM tags")
    result = lib.labels.run(folder=sub)
    inside = {p for p in truth if p.startswith(str(sub.resolve()) + "/")}
    assert set(result.tags) == inside
    assert {p for p, t in lib.labels.tags_of().items() if t} <= inside


def test_labels_in_an_empty_library(tmp_path):
    with Library(tmp_path / "lib", model=shapes_spec()) as lib:
        assert lib.labels.run().to_json() == {"tags": {}, "labels": {}, "photos": 0, "tagged": 0}
        assert lib.labels.add("  Red   car ").name == "Red car"
        assert lib.labels.add("red CAR", ["a red car"]).prompts == ("a red car",)   # the same label
        assert [label.name for label in lib.labels.all()] == ["Red car"]
        assert lib.labels.run().labels["Red car"]["method"] == "prior rule"
        assert lib.labels.suggestions("red car") == []
        with pytest.raises(ValueError):
            lib.labels.add(" ")
        assert lib.labels.remove("RED CAR") and lib.labels.all() == []


# -- what the app asks of a library -------------------------------------------------------------


def test_apply_is_undone_and_a_tag_by_hand_is_an_answer(copy_of, cli):
    lib, truth, folder = copy_of
    lib.add_label("round things", ["a circle"])
    assert not lib.labels.is_applied("round things") and lib.photo_tags(next(iter(truth))) is not None
    found = lib.tag_suggestions("round things", limit=30)
    assert len(found) == 30 and all(photo.path == d.path for photo, d in found)
    applies = [d.applies for _, d in found]
    assert applies == sorted(applies, reverse=True)          # what it would tag first
    before = {i.name: i.tagged for i in lib.label_infos() if i.name != "round things"}
    circles = sorted(p for p, names in truth.items() if "circle" in names)[:3]
    lib.review_tag("round things", circles, True)                             # answers, no tags yet
    assert lib.photos_tagged("round things") == [] and not lib.labels.is_applied("round things")

    applied = lib.apply_label("round things")
    infos = {i.name: i for i in lib.label_infos()}
    assert applied.photos == infos["round things"].tagged == len(lib.photos_tagged("round things")) >= 3
    assert set(circles) <= {p.path for p in lib.photos_tagged("round things")}
    listed = {label["name"]: label["tagged"] for label in
              cli("tag", "list", "--json", "--library", lib.root).json["labels"]}
    assert listed == {name: info.tagged for name, info in infos.items()}       # `tag list` counts the same
    assert {n: c for n, c in listed.items() if n != "round things"} == before  # other labels untouched
    lib.undo_apply(applied)
    assert lib.photos_tagged("round things") == [] and not lib.labels.is_applied("round things")
    assert lib.label_infos()[[i.name for i in lib.label_infos()].index("round things")].accepted == 3

    lib.apply_label("round things")
    wrong = lib.photos_tagged("round things")[0].path
    lib.set_photo_tag(wrong, "round things", False)
    assert "round things" not in [t.label for t in lib.photo_tags(wrong)]
    assert lib.labels.decisions("round things", paths=[wrong])[0].review == "rejected"
    lib.labels.run(["round things"])                                           # the answer sticks
    assert wrong not in {p.path for p in lib.photos_tagged("round things")}
    lib.set_photo_tag(wrong, "mine", True)                                     # a new label, by hand
    assert [(t.label, t.review) for t in lib.photo_tags(wrong) if t.label == "mine"] == [("mine", "accepted")]

    plan = lib.xmp_plan()
    tagged = {p for p, tags in lib.labels.tags_of().items() if tags}
    assert sorted(plan.sidecars) == sorted(str(sidecar_path(p)) for p in tagged) and plan.new == len(tagged)
    assert sum(plan.folders().values()) == len(tagged)
    try:
        report = lib.export_xmp()
        assert sorted(report.written) == sorted(plan.sidecars) and lib.xmp_plan().sidecars == []
    finally:
        for sidecar in folder.rglob("*.xmp"):
            sidecar.unlink()
