"""Where a search's matches end, on the real shapes model: present things match, absent ones do not."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clipphotos.library import Library
from clipphotos.search_cut import content_words
from clipphotos.shapes import write_library
from clipphotos.tags import split_mixture
from conftest import MODEL_ARGS, shapes_spec

ABSENT = {("red", "square"), ("blue", "star"), ("white", "circle"), ("green", "triangle")}


@pytest.fixture(scope="module")
def cut_library(tmp_path_factory) -> tuple[Library, dict[str, tuple[str, str]]]:
    """256 drawn pictures (8 of each colour × shape) less four classes, indexed: (library, path → truth)."""
    folder = tmp_path_factory.mktemp("cut") / "drawn"
    truth = {}
    for r in write_library(folder, 256, seed=20261201, long_side=(200, 700)):
        path = folder / r["path"]
        if (r["colour"], r["shape"]) in ABSENT:
            path.unlink()
        else:
            truth[str(path.resolve())] = (r["colour"], r["shape"])
    lib = Library(folder.parent / "library", model=shapes_spec())
    lib.index_folders([folder])
    yield lib, truth
    lib.close()


@pytest.mark.model_quality
@pytest.mark.parametrize("colour, shape", [("red", "star"), ("blue", "circle"), ("yellow", "triangle")])
def test_a_present_class_matches_its_own_photos(cut_library, colour, shape):
    lib, truth = cut_library
    answer = lib.find(f"a {colour} {shape}", limit=None, matches_only=True)
    found = {r.path for r in answer.results}
    wanted = {p for p, t in truth.items() if t == (colour, shape)}
    assert answer.matches == len(found)
    assert len(found & wanted) >= 6 and len(found - wanted) <= 1, (len(found & wanted), len(found - wanted))


@pytest.mark.model_quality
@pytest.mark.parametrize("colour, shape", sorted(ABSENT))
def test_an_absent_class_matches_nothing(cut_library, colour, shape):
    lib, _ = cut_library
    answer = lib.find(f"a {colour} {shape}", limit=10)
    assert answer.matches == 0, [(r.path, r.score) for r in answer.results if r.match]
    assert len(answer.results) == 10 and not any(r.match for r in answer.results)   # the closest ones still come


@pytest.mark.model_quality
def test_one_word_matches_a_whole_colour_and_not_terms_take_theirs_out(cut_library):
    lib, truth = cut_library
    red = {r.path for r in lib.find("red", limit=None, matches_only=True).results}
    wanted = {p for p, t in truth.items() if t[0] == "red"}
    assert len(red & wanted) >= 0.9 * len(wanted) and len(red - wanted) <= 2
    stars = lib.find("a star", negative=["red"], limit=None, matches_only=True).results
    assert stars and all(truth[r.path][0] != "red" for r in stars)
    assert sum(truth[r.path][1] == "star" for r in stars) >= 0.9 * len(stars)


def test_matches_come_first_and_filters_narrow_them(cut_library):
    lib, truth = cut_library
    answer = lib.find("a blue circle", limit=40)
    flags = [r.match for r in answer.results]
    assert flags == sorted(flags, reverse=True)               # matches, then the rest
    assert sum(flags) == min(answer.matches, 40)
    some = sorted(truth)[: len(truth) // 2]
    folder = Path(some[0]).parent
    inside = lib.find("a blue circle", folder=folder, limit=None, matches_only=True)
    assert all(Path(r.path).parent == folder or folder in Path(r.path).parents for r in inside.results)
    assert inside.matches <= answer.matches


def test_more_like_this_splits_too(cut_library):
    lib, truth = cut_library
    query = next(p for p, t in truth.items() if t == ("green", "square"))
    answer = lib.find(image=query, limit=20)
    assert query not in [r.path for r in answer.results]
    matched = [truth[r.path] for r in answer.results if r.match]
    assert answer.matches == len(matched) > 0
    same = sum(t == ("green", "square") for t in matched)
    assert same >= 5 and same >= 0.6 * len(matched), matched      # 7 other green squares in the library
    assert all(c == "green" or s == "square" for c, s in matched), matched


def test_search_json_contract(cut_library, cli):
    lib, truth = cut_library
    r = cli("search", "a yellow triangle", "--library", lib.root, *MODEL_ARGS, "--limit", "12", "--json")
    assert r.code == 0, r.err
    doc = r.json
    assert isinstance(doc["matches"], int) and len(doc["results"]) == 12
    assert all(isinstance(x["match"], bool) for x in doc["results"])
    assert sum(x["match"] for x in doc["results"]) == min(doc["matches"], 12)
    everything = cli("search", "a yellow triangle", "--library", lib.root, *MODEL_ARGS, "--matches-only", "--json").json
    assert len(everything["results"]) == everything["matches"] == doc["matches"]
    assert all(x["match"] for x in everything["results"])
    capped = cli("search", "yellow", "--library", lib.root, *MODEL_ARGS, "--matches-only", "--limit", "3", "--json").json
    assert len(capped["results"]) == 3 and capped["matches"] > 3


def test_plain_output_draws_the_line_and_says_when_nothing_matches(cut_library, cli):
    lib, _ = cut_library
    r = cli("search", "a blue circle", "--library", lib.root, *MODEL_ARGS, "--limit", "30")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    rule = [i for i, line in enumerate(lines) if "less likely" in line]
    assert len(rule) == 1 and 0 < rule[0] < len(lines) - 1
    r = cli("search", "a red square", "--library", lib.root, *MODEL_ARGS, "--limit", "5")
    assert r.out.splitlines()[0] == "No photo clearly matches 'a red square'; the closest ones are below"
    assert len(r.out.splitlines()) == 6 and "less likely" not in r.out
    r = cli("search", "a red square", "--library", lib.root, *MODEL_ARGS, "--matches-only")
    assert r.code == 0 and r.out == "" and "No photo clearly matches 'a red square'" in r.err


def test_split_mixture_finds_a_separate_top_group_and_nothing_in_one_population():
    rng = np.random.default_rng(3)
    one = rng.normal(0.0, 1.0, 3000)
    assert split_mixture(one) is None
    two = np.concatenate([one, rng.normal(6.0, 0.5, 60)])
    mixture = split_mixture(two)
    assert mixture is not None and mixture.separation >= 2
    assert 2.0 < mixture.threshold() < 5.0


def test_content_words_leave_out_the_filler():
    assert content_words("a photo of a Star") == {"star"}
    assert content_words("a star") == content_words("star")
