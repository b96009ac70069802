"""Indexing a real folder: incremental runs, moves, deletes, copies, edits and odd files."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from clipphotos.library import Library
from conftest import MODEL_ARGS, shapes_spec, sql


def count_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file())


@pytest.fixture
def photos(tmp_path, photo_library) -> Path:
    """A private copy of the generated camera library, free to change."""
    src, _ = photo_library
    dst = tmp_path / "Pictures"
    shutil.copytree(src, dst)
    return dst


def test_first_and_second_run(tmp_path, photos, cli):
    lib = tmp_path / "lib"
    first = cli("index", photos, "--library", lib, *MODEL_ARGS, "--json")
    assert first.code == 0, first.err
    r = first.json
    n = count_files(photos)
    assert r["indexed"] + len(r["skipped"]) == n and r["unchanged"] == 0
    assert r["skipped"] == []
    # the library holds byte-identical copies: each content is embedded once
    assert r["embedded"] < r["indexed"]
    second = cli("index", "--library", lib, *MODEL_ARGS, "--json").json
    assert second["indexed"] == 0 and second["embedded"] == 0 and second["unchanged"] == n
    status = cli("status", "--library", lib, "--json").json
    assert status["photos"] == n and status["skipped"] == 0
    assert status["folders"] == [str(photos.resolve())]
    assert "config.json" in status["model"]


def test_move_rename_delete_copy_edit(tmp_path, photos, cli):
    lib = tmp_path / "lib"
    assert cli("index", photos, "--library", lib, *MODEL_ARGS).code == 0
    files = sorted(p for p in photos.rglob("*.JPG"))
    # rename one file, move another to a new folder
    renamed = files[0].with_name("renamed holiday.JPG")
    files[0].rename(renamed)
    (photos / "Sorted" / "2024").mkdir(parents=True)
    moved = photos / "Sorted" / "2024" / files[1].name
    files[1].rename(moved)
    # delete two
    files[2].unlink()
    files[3].unlink()
    # copy one (byte-identical) and edit one in place
    copy = photos / "copy of a photo.JPG"
    shutil.copy2(files[4], copy)
    with Image.open(files[5]) as im:
        im.rotate(90, expand=True).save(files[5], quality=80)
    r = cli("index", "--library", lib, *MODEL_ARGS, "--json").json
    assert r["moved"] == 2
    assert r["removed"] == 2
    assert r["embedded"] == 1          # only the edited photo goes through the model again
    assert r["indexed"] == 2           # the copy and the edited photo
    with Library(lib) as library:
        paths = {p.path for p in library.catalog.iter_photos()}
        assert str(renamed) in paths and str(moved) in paths and str(copy) in paths
        assert str(files[0]) not in paths and str(files[2]) not in paths
        # the index holds exactly the contents the catalog holds
        contents = sql(library, "SELECT count(*) FROM contents")[0][0]
        assert len(library.index) == contents
        hits = {h.path for h in library.search("a photo", limit=1000)}
        assert str(files[2]) not in hits and str(copy) in hits


def test_search_filters_by_folder_and_date(tmp_path, photos, photo_library, cli):
    _, manifest = photo_library
    lib = tmp_path / "lib"
    cli("index", photos, "--library", lib, *MODEL_ARGS)
    folder = photos / "DCIM"
    r = cli("search", "a photo", "--library", lib, "--folder", folder, "--limit", "500", "--json").json
    expected = sum(1 for f in manifest["files"] if f["path"].startswith("DCIM/"))
    assert len(r["results"]) == expected
    assert all(x["path"].startswith(str(folder) + os.sep) for x in r["results"])
    r = cli("search", "a photo", "--library", lib, "--since", "2020-01-01", "--until", "2021-12-31",
            "--limit", "500", "--json").json
    expected = sum(1 for f in manifest["files"] if "2020:" <= f["datetime"][:5] <= "2021:")
    assert len(r["results"]) == expected
    assert all("2020-01-01" <= x["taken_at"] < "2022" for x in r["results"])


def test_empty_library_answers_cleanly(tmp_path, cli):
    missing = cli("search", "anything", "--library", tmp_path / "lib", *MODEL_ARGS, "--json")
    assert missing.code == 2 and "no ClipPhotos library" in missing.err and not (tmp_path / "lib").exists()
    assert cli("folders", "--library", tmp_path / "lib").code == 0      # a library with nothing in it
    r = cli("search", "anything", "--library", tmp_path / "lib", *MODEL_ARGS, "--json")
    assert r.code == 0 and r.json == {"matches": 0, "results": []}
    assert "empty" in r.err
    status = cli("status", "--library", tmp_path / "lib", "--json")
    assert status.json["photos"] == 0 and status.json["folders"] == []


def test_odd_files_are_safe(tmp_path, cli):
    """FIFOs, symlink loops, links out of the library, hidden and NAS cache files, odd names."""
    from clipphotos.shapes import write_library
    root = tmp_path / "photos"
    write_library(root, 6, seed=3)
    outside = tmp_path / "outside"
    write_library(outside, 2, seed=4)
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "elsewhere").symlink_to(outside, target_is_directory=True)
    (root / "@eaDir").mkdir()
    any_jpg = next(root.rglob("*.jpg"))
    os.mkfifo(root / "pipe.jpg")                        # opening it would block forever
    shutil.copy(any_jpg, root / "@eaDir" / "thumb.jpg")
    shutil.copy(any_jpg, root / "._resource.jpg")
    shutil.copy(any_jpg, root / ".hidden.jpg")
    odd = os.fsencode(str(root)) + b"/caf\xe9 latin-1 name.jpg"  # not valid UTF-8
    shutil.copy(any_jpg, os.fsdecode(odd))
    (root / "notes.jpg").write_text("this is not a picture")
    r = cli("index", root, "--library", tmp_path / "lib", *MODEL_ARGS, "--json")
    assert r.code == 0, r.err
    data = r.json
    assert data["indexed"] == 7                          # 6 drawn + the odd name
    assert [s["path"] for s in data["skipped"]] == [str(root / "notes.jpg")]
    assert data["skipped"][0]["reason"]
    with Library(tmp_path / "lib") as library:
        paths = {os.fsencode(p.path) for p in library.catalog.iter_photos()}
    assert odd in paths
    assert not any(b"outside" in p or b"@eaDir" in p or b"/." in p or b"pipe" in p for p in paths)
    # the link out of the library is followed only when the user allows it
    r = cli("index", root, "--follow-links", "--library", tmp_path / "lib", *MODEL_ARGS, "--json").json
    assert r["indexed"] == 2


def test_changing_model_reembeds(tmp_path, cli):
    from clipphotos.shapes import write_library
    root = tmp_path / "photos"
    write_library(root, 8, seed=5)
    lib = tmp_path / "lib"
    cli("index", root, "--library", lib, *MODEL_ARGS)
    # the library remembers its model: later commands need no model options
    assert cli("search", "a red circle", "--library", lib, "--json").code == 0
    other = tmp_path / "other.safetensors"
    shutil.copy(MODEL_ARGS[3], other)
    with open(other, "r+b") as f:  # other weights bytes → another model identity
        f.seek(-8, os.SEEK_END)
        f.write(b"\0" * 8)
    r = cli("index", "--library", lib, "--model", MODEL_ARGS[1], "--weights", other, "--json").json
    assert r["embedded"] == 8
    with Library(lib) as library:
        assert library.model_spec.weights == str(other)
        assert sql(library, "SELECT count(DISTINCT model_id) FROM vectors")[0][0] == 1


def test_unplugged_folder_keeps_its_photos(tmp_path, cli):
    from clipphotos.shapes import write_library
    root = tmp_path / "usb-drive"
    write_library(root, 5, seed=6)
    lib = tmp_path / "lib"
    cli("index", root, "--library", lib, *MODEL_ARGS)
    root.rename(tmp_path / "unmounted")
    r = cli("index", "--library", lib, *MODEL_ARGS, "--json").json
    assert r["removed"] == 0 and r["offline_folders"] == [str(root.resolve())]
    assert cli("status", "--library", lib, "--json").json["photos"] == 5


def test_library_api_reuses_model_across_calls(tmp_path):
    from clipphotos.shapes import write_library
    root = tmp_path / "photos"
    truth = write_library(root, 32, seed=7)
    with Library(tmp_path / "lib", model=shapes_spec()) as library:
        report = library.index_folders([root])
        assert report.indexed == 32
        top = library.search("a green triangle", limit=1)[0]
        record = next(t for t in truth if str(root / t["path"]) == top.path)
        assert (record["colour"], record["shape"]) == ("green", "triangle")


def test_library_inside_a_photo_folder_is_not_indexed(tmp_path, cli):
    from clipphotos.shapes import write_library
    photos = tmp_path / "Pictures"
    write_library(photos, 4, seed=8)
    lib = photos / "ClipPhotos library"
    assert cli("index", photos, "--library", lib, *MODEL_ARGS, "--json").json["indexed"] == 4
    (lib / "thumbnails" / "ab").mkdir(parents=True, exist_ok=True)   # as the app's thumbnails are
    shutil.copy(next(photos.rglob("*.jpg")), lib / "thumbnails" / "ab" / "abcdef.jpg")
    again = cli("index", "--library", lib, *MODEL_ARGS, "--json").json
    assert again["indexed"] == 0 and again["unchanged"] == 4


def test_empty_mount_point_is_offline_not_deleted(tmp_path, cli):
    from clipphotos.shapes import write_library
    card = tmp_path / "media" / "card"
    write_library(card, 3, seed=9)
    lib = tmp_path / "lib"
    cli("index", card, "--library", lib, *MODEL_ARGS)
    shutil.rmtree(card)
    card.mkdir()                                        # the card is out: its mount point stays, empty
    r = cli("index", "--library", lib, *MODEL_ARGS, "--json").json
    assert r["removed"] == 0 and r["offline_folders"] == [str(card.resolve())]
    assert cli("status", "--library", lib, "--json").json["photos"] == 3
