"""Duplicates: exact copies, near-duplicates and similar shots kept apart; a safe tidy-up."""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import MODEL_ARGS, REPO, make_photo_library, shapes_spec, sql

from clipphotos.catalog import Catalog, ContentInfo
from clipphotos.duplicates import TIERS, find_duplicates
from clipphotos.library import Library

NEAR_KINDS = ("reencode", "resized", "cropped", "exposure", "rotated", "burst", "png")


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, dict, list]:
    """A small camera-like library (every duplicate kind), indexed, and its duplicate groups."""
    root = tmp_path_factory.mktemp("dupes")
    photos = root / "photos"
    manifest = make_photo_library(photos, count=32, max_side=512, seed=3)   # 8 copies: one of each kind
    with Library(root / "lib", model=shapes_spec()) as lib:
        lib.index_folders([photos])
        stages: list[str] = []
        groups = lib.duplicates(on_stage=stages.append)
    pictures = len({hashlib.sha256(f.read_bytes()).digest() for f in photos.rglob("*") if f.is_file()})
    assert stages[0] == "reading the library" and stages[-1] == "stacking shots taken moments apart", stages
    assert f"comparing {pictures:,} pictures" in stages, (pictures, stages)   # each distinct picture once
    return photos, manifest, groups


def by_kind(manifest: dict, kind: str) -> list[dict]:
    return [f for f in manifest["files"] if f["kind"] == kind]


def original_of(manifest: dict, copy: dict) -> dict:
    return next(f for f in manifest["files"] if f["group"] == copy["group"] and f["kind"] == "original")


def group_holding(groups: list, tier: str, *paths: Path):
    wanted = {str(p) for p in paths}
    return next((g for g in groups if g.tier == tier and wanted <= set(g.paths)), None)


def test_every_exact_copy_is_in_the_exact_tier(generated):
    photos, manifest, groups = generated
    copies = by_kind(manifest, "exact")
    assert copies
    for copy in copies:
        group = group_holding(groups, "exact", photos / copy["path"], photos / original_of(manifest, copy)["path"])
        assert group is not None, copy["path"]
        assert group.differences == ("folder",)


@pytest.mark.parametrize("kind", NEAR_KINDS)
def test_each_near_duplicate_kind_is_in_the_near_tier(generated, kind):
    photos, manifest, groups = generated
    for copy in by_kind(manifest, kind):
        original = photos / original_of(manifest, copy)["path"]
        assert group_holding(groups, "near", photos / copy["path"], original) is not None, copy["path"]


def test_bursts_and_edits_are_never_exact(generated):
    photos, manifest, groups = generated
    edited = {str(photos / f["path"]) for kind in NEAR_KINDS for f in by_kind(manifest, kind)}
    for group in groups:
        if group.tier == "exact":
            assert not edited & set(group.paths)
            assert len({f.content for f in group.files}) == 1


def test_different_photos_of_one_subject_are_not_near_duplicates(generated):
    photos, manifest, groups = generated
    ambiguous = {frozenset(p) for p in manifest["ambiguous_group_pairs"]}
    originals = by_kind(manifest, "original")
    pairs = [(a, b) for a, b in itertools.combinations(originals, 2)
             if a["subject"] == b["subject"] and frozenset((a["group"], b["group"])) not in ambiguous]
    assert pairs, "the generated library should hold several photos of one subject"
    for a, b in pairs:
        assert group_holding(groups, "near", photos / a["path"], photos / b["path"]) is None, (a["path"], b["path"])


def test_keep_best_is_the_original_and_says_why(generated):
    photos, manifest, groups = generated
    checked = 0
    for group in groups:
        if group.tier not in ("exact", "near"):
            continue
        truth = [f for f in manifest["files"] if str(photos / f["path"]) in group.paths]
        originals = [f for f in truth if f["kind"] == "original"]
        if not originals:
            continue
        assert group.keep in {str(photos / f["path"]) for f in originals}   # (overlapping crops may join)
        copy_folders = {f["path"].split("/")[0] for f in truth if f["kind"] in ("exact", "png", "exposure", "burst")}
        if copy_folders:
            assert any("original folder" in r for r in group.reasons), group.reasons
        checked += 1
    assert checked >= 5


def test_files_carry_what_a_person_compares(generated):
    photos, manifest, groups = generated
    near = [g for g in groups if g.tier == "near"]
    details = near[0].to_json()["details"]
    for d in details:
        assert {"path", "size", "width", "height", "format", "taken_at", "folder", "similarity"} <= d.keys()
    assert details[0]["similarity"] == 1.0
    cropped = [f for f in by_kind(manifest, "cropped")]
    group = group_holding(groups, "near", *(photos / f["path"] for f in cropped[:1]))
    assert any(f.cropped for f in group.files) and "crop" in group.differences


def copy_of_group(generated, tmp_path: Path, kinds: tuple[str, ...]) -> tuple[Path, list[Path]]:
    """A fresh folder holding one original and its copies of these kinds (paths kept relative)."""
    photos, manifest, _ = generated
    copies = [f for f in manifest["files"] if f["kind"] in kinds]
    original = original_of(manifest, copies[0])
    family = [original] + [f for f in copies if f["group"] == original["group"]]
    dest = tmp_path / "photos"
    for f in family:
        (dest / f["path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(photos / f["path"], dest / f["path"])
    return dest, [dest / f["path"] for f in family]


def index(cli, photos: Path, lib: Path) -> None:
    assert cli("index", photos, "--library", lib, *MODEL_ARGS).code == 0


def test_json_lists_groups_with_keep_files_and_reasons(generated, cli, tmp_path):
    photos, files = copy_of_group(generated, tmp_path, ("exposure",))
    index(cli, photos, tmp_path / "lib")
    data = cli("dupes", "--library", tmp_path / "lib", "--json").json
    assert set(data) == {"groups"} and data["groups"]
    for g in data["groups"]:
        assert g["tier"] in TIERS and g["keep"] in g["files"] and all(isinstance(p, str) for p in g["files"])
        assert g["reasons"] and all(isinstance(r, str) for r in g["reasons"])
    near = cli("dupes", "--library", tmp_path / "lib", "--tier", "near", "--json").json["groups"]
    assert [g["tier"] for g in near] == ["near"] and set(near[0]["files"]) == {str(p) for p in files}


def test_a_terminal_sees_each_step_and_a_clean_line_after(generated, cli, tmp_path):
    import pty
    photos, _ = copy_of_group(generated, tmp_path, ("exposure",))
    index(cli, photos, tmp_path / "lib")
    controller, terminal = pty.openpty()
    proc = subprocess.run([sys.executable, "-m", "clipphotos", "dupes", "--library", str(tmp_path / "lib")],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=terminal, timeout=120)
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal's other end is closed: everything was read
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    assert proc.returncode == 0 and b"near" in proc.stdout.lower()
    steps = seen.decode().split("\r\033[K")
    assert any(s.startswith("Looking for duplicates: comparing ") for s in steps), steps
    assert steps[-1] == "", steps  # the line is cleared before the answer


def test_trash_others_needs_a_yes_then_trashes_and_the_catalog_follows(generated, cli, tmp_path):
    photos, files = copy_of_group(generated, tmp_path, ("exact", "resized"))
    lib = tmp_path / "lib"
    index(cli, photos, lib)
    refused = cli("dupes", "--library", lib, "--trash-others")
    assert refused.code != 0 and "--yes" in refused.err
    assert all(p.exists() for p in files)

    trash_home = tmp_path / "xdg"
    env = dict(os.environ, XDG_DATA_HOME=str(trash_home), PYTHONPATH=str(REPO))
    run = subprocess.run([sys.executable, "-m", "clipphotos", "dupes", "--library", str(lib), "--trash-others",
                          "--yes", "--json"], capture_output=True, text=True, env=env, cwd=REPO)
    assert run.returncode == 0, run.stderr
    moved = [m["from"] for m in json.loads(run.stdout)["moved"]]
    keep = files[0]
    assert keep.exists() and str(keep) not in moved
    assert sorted(moved) == sorted(str(p) for p in files[1:])
    assert not any(Path(p).exists() for p in moved)
    held = [m["to"] for m in json.loads(run.stdout)["moved"]]     # held for undo, the system trash later
    assert all(Path(h).is_file() and ".clipphotos-trash" in Path(h).parts for h in held)
    assert not (trash_home / "Trash" / "files").exists()
    with Library(lib) as library:
        assert library.catalog.photo_count() == 1
        assert [g for g in library.duplicates() if g.tier != "similar"] == []


def test_move_others_moves_into_a_folder_and_the_catalog_follows(generated, cli, tmp_path):
    photos, files = copy_of_group(generated, tmp_path, ("png",))
    lib = tmp_path / "lib"
    index(cli, photos, lib)
    inside = photos / "Set aside"
    r = cli("dupes", "--library", lib, "--move-others", inside, "--yes", "--json")
    assert r.code == 0, r.err
    assert files[0].exists() and not files[1].exists()
    assert (inside / files[1].name).exists()
    with Library(lib) as library:
        assert library.catalog.photo_by_path(inside / files[1].name) is not None
        assert library.catalog.photo_by_path(files[1]) is None


def test_not_duplicates_never_come_back(generated, cli, tmp_path):
    photos, files = copy_of_group(generated, tmp_path, ("cropped",))
    lib = tmp_path / "lib"
    index(cli, photos, lib)
    before = cli("dupes", "--library", lib, "--json").json["groups"]
    assert [g["tier"] for g in before] == ["near"]
    assert cli("dupes", "--library", lib, "--not-duplicates", *files).code == 0
    assert cli("dupes", "--library", lib, "--json").json["groups"] == []
    (photos / "again").mkdir()
    shutil.copy2(files[1], photos / "again" / files[1].name)       # a new copy joins
    index(cli, photos, lib)
    after = cli("dupes", "--library", lib, "--json").json["groups"]
    for g in after:
        assert not {str(p) for p in files} <= set(g["files"])
        assert len(set(g["files"]) & {str(p) for p in files}) <= 1 or g["tier"] == "exact"
    assert cli("dupes", "--library", lib, "--not-duplicates", files[0]).code != 0


def test_set_apart_by_mistake_is_taken_back(generated, cli, tmp_path):
    """Undo forgets only the pairs its "not duplicates" stored; --group-again forgets every one
    between the files named, and says when there was none."""
    photos, files = copy_of_group(generated, tmp_path, ("cropped",))
    with Image.open(files[0]) as original:                          # a third: the original made smaller
        original.resize((original.width * 3 // 4, original.height * 3 // 4)).save(photos / "smaller.jpg", quality=92)
    files.append(photos / "smaller.jpg")
    lib = tmp_path / "lib"
    index(cli, photos, lib)
    with Library(lib) as library:
        assert [len(g.files) for g in library.duplicates() if g.tier != "similar"] == [3]
        earlier = library.mark_not_duplicates(files[:2])             # set apart before
        assert earlier.pairs == 1 and len(earlier.contents) + len(earlier.copies) == 1
        later = library.mark_not_duplicates(files)
        assert later.pairs == 3 and len(later.contents) + len(later.copies) == 2   # one pair was stored already
        assert [g for g in library.duplicates() if g.tier != "similar"] == []
        library.undo_not_duplicates(later)
        regrouped = [g for g in library.duplicates() if g.tier != "similar"]
        assert regrouped and all(not {str(files[0]), str(files[1])} <= set(g.paths) for g in regrouped)
        assert {str(files[2])} <= {p for g in regrouped for p in g.paths}
    r = cli("dupes", "--library", lib, "--group-again", *files[:2], "--json")
    assert r.code == 0 and r.json == {"group_again": [str(f) for f in files[:2]], "pairs": 1}
    assert [len(g["files"]) for g in cli("dupes", "--library", lib, "--json").json["groups"]
            if g["tier"] != "similar"] == [3]
    again = cli("dupes", "--library", lib, "--group-again", *files[:2])
    assert again.code == 0 and "None of these 2 files were set apart" in again.out
    assert cli("dupes", "--library", lib, "--group-again", files[0]).code != 0


def test_similar_shots_are_stacked_and_never_moved(tmp_path):
    """Two different shots of one scene seconds apart (close CLIP vectors) form a stack; actions skip it."""
    rng = np.random.default_rng(5)
    catalog = Catalog(tmp_path / "lib" / "catalog.sqlite3")
    folder = catalog.add_folder(tmp_path)
    model = catalog.model_id("test-clip", 8)
    catalog.set_setting("model.key", "test-clip")
    base = rng.normal(size=8)
    with catalog.transaction() as db:
        for n, (second, nudge) in enumerate(((0, 0.0), (4, 0.2), (7, 0.25), (3600, 5.0))):
            thumb = rng.integers(0, 255, (32, 32), dtype=np.uint8)
            taken = (datetime(2024, 5, 1, 10) + timedelta(seconds=second)).isoformat()
            info = ContentInfo(f"{n:032x}", 1000, 400, 300, "JPEG", taken, None, 1, int(rng.integers(1 << 62)),
                               thumb.tobytes())
            cid = catalog.upsert_content(db, info)
            vec = base + nudge * rng.normal(size=8)
            catalog.put_vector(db, cid, model, vec / np.linalg.norm(vec))
            catalog.put_photo(db, str(tmp_path / f"IMG_{n}.JPG").encode(), folder, cid, 1000, n)
    groups = find_duplicates(catalog)
    catalog.close()
    assert [g.tier for g in groups] == ["similar"]
    assert sorted(Path(p).name for p in groups[0].paths) == ["IMG_0.JPG", "IMG_1.JPG", "IMG_2.JPG"]
    with Library(tmp_path / "lib") as lib:
        assert lib.trash_duplicates(groups).moved == []


def test_signals_of_photos_indexed_before_are_filled_once(generated, cli, tmp_path):
    photos, files = copy_of_group(generated, tmp_path, ("reencode",))
    lib = tmp_path / "lib"
    index(cli, photos, lib)
    with Library(lib) as library:
        sql(library, "UPDATE contents SET thumb=NULL")   # as a library from before migration 4
        assert len(library.catalog.contents_without_thumb()) == len(files)
        groups = library.duplicates(("near",))
        assert library.catalog.contents_without_thumb() == []
    assert len(groups) == 1 and set(groups[0].paths) == {str(p) for p in files}


def test_a_picture_compares_with_its_crop_not_with_its_mirror():
    """The aligned-thumbnail score: high for a crop, low for the mirrored picture."""
    from clipphotos.fingerprint import grey_thumbnail, match_thumbnails, thumbnails
    rng = np.random.default_rng(1)
    fy, fx = np.meshgrid(np.fft.fftfreq(48), np.fft.fftfreq(64), indexing="ij")
    spectrum = (rng.normal(size=(48, 64)) + 1j * rng.normal(size=(48, 64))) / np.maximum(np.hypot(fx, fy), 1 / 64)
    field = np.real(np.fft.ifft2(spectrum))      # a natural-looking random scene (1/f spectrum)
    img = Image.fromarray(np.uint8(np.clip(128 + 50 * field / field.std(), 0, 255))).resize((640, 480))
    crop = img.crop((32, 24, 608, 456))
    mirror = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    a, b, c = thumbnails([grey_thumbnail(im) for im in (img, crop, mirror)])
    scores, zooms = match_thumbnails(np.stack([a, a]), np.stack([b, c]))
    assert scores[0] > 0.8 and scores[1] < 0.5
    assert zooms[0] == pytest.approx([1.11, 1.11], abs=0.03)
