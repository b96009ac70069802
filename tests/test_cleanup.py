"""Clean-ups that can be undone: real files into holding and back, the catalog following exactly."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from conftest import shapes_spec, sql
from duplicate_library import make_duplicate_library

from clipphotos.cleanup import HOLDING, move_file
from clipphotos.library import Library


def digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def library(tmp_path):
    """The generated folder with its duplicates, indexed with the shapes model."""
    made = make_duplicate_library(tmp_path / "photos")
    lib = Library(tmp_path / "lib", model=shapes_spec())
    lib.index_folders([tmp_path / "photos"])
    yield lib, made, tmp_path / "photos"
    lib.close()


def snapshot(lib: Library, paths: list[str]) -> dict:
    """What must come back: bytes, mtime, photo row, vector (catalog and index) and tags of each file."""
    model = lib.model_id
    out = {}
    for path in paths:
        photo = lib.catalog.photo_by_path(path)
        assert photo is not None, path
        _, vec = lib.catalog.vectors(model, [photo.content_id])
        out[path] = {"bytes": digest(path), "mtime": os.stat(path).st_mtime_ns, "photo": photo,
                     "vector": vec[0].tobytes(), "in_index": photo.content_id in lib.index.ids(),
                     "tags": sql(lib, "SELECT label_id, confidence FROM tags WHERE content_id=? "
                                               "ORDER BY label_id", (photo.content_id,)),
                     "reviews": sql(lib, "SELECT label_id, accepted FROM tag_reviews WHERE content_id=?",
                                                  (photo.content_id,))}
    return out


def test_trash_then_undo_puts_every_file_back_with_its_vector_and_tags(library):
    lib, made, photos = library
    lib.labels.add("star")
    lib.labels.add("circle")
    near_copy = made["near"][0][1]
    lib.labels.review("star", [near_copy], True)          # a tag the user gave this very file
    groups = [g for g in lib.duplicates(("exact", "near"))]
    others = sorted({p for g in groups for p in g.others()})
    expected = {p for paths in made["exact"] for p in paths[1:]} | {c for _, c in made["near"]}
    assert set(others) == expected
    assert sum(g.reclaimable for g in groups) == sum(os.path.getsize(p) for p in others)
    before = snapshot(lib, others)
    assert before[near_copy]["tags"] and before[near_copy]["reviews"]
    photo_count = lib.catalog.photo_count()

    report = lib.trash_duplicates(groups)
    assert report.failed == [] and report.files == len(others)
    assert report.bytes == sum(os.path.getsize(h) for _, h in report.moved)
    for path, holding in report.moved:
        assert not os.path.exists(path) and os.path.isfile(holding)
        assert f"{os.sep}{HOLDING}{os.sep}" in holding and holding.startswith(str(photos))
        assert lib.catalog.photo_by_path(path) is None
    assert lib.catalog.photo_count() == photo_count - len(others)
    # Held files are no photos: search and browsing never show them, and a re-index adds nothing.
    hits = {r.path for r in lib.search(image=made["near"][0][0], limit=50)}
    assert not hits & set(others)
    assert not {p.path for p in lib.catalog.iter_photos()} & set(others)
    assert [c[3] for c in lib.cleanups()] == [len(others)]

    undone = lib.undo_cleanup()
    assert undone.failed == [] and sorted(undone.restored) == others and undone.bytes == report.bytes
    after = snapshot(lib, others)
    assert after == before                     # same bytes, mtime, photo row (id too), vector, tags
    assert lib.catalog.photo_count() == photo_count
    assert not (photos / HOLDING).exists()     # the holding folder is tidied away
    assert lib.cleanups() == []
    assert near_copy in {r.path for r in lib.search(image=made["near"][0][0], limit=50)}

    again = lib.trash_duplicates(lib.duplicates(("exact", "near")))
    lib.index_folders()                        # held files are not new photos to the indexer
    assert lib.catalog.photo_count() == photo_count - len(others)
    assert len(lib.undo_cleanup(again.cleanup).restored) == len(others)
    indexed = lib.index_folders()              # nor is a restored file: each is known as it was
    assert (indexed.indexed, indexed.embedded, indexed.removed) == (0, 0, 0), indexed


def test_a_taken_path_stays_held_and_the_rest_comes_back(library):
    lib, made, _ = library
    groups = lib.duplicates(("exact",))
    report = lib.trash_duplicates(groups)
    taken = report.moved[0][0]
    Path(taken).write_bytes(b"someone else's file")
    undone = lib.undo_cleanup()
    assert [p for p, _ in undone.failed] == [taken]
    assert Path(taken).read_bytes() == b"someone else's file"      # never overwritten
    assert len(undone.restored) == report.files - 1
    assert [c[3] for c in lib.cleanups()] == [1]                   # still held, still undoable


def test_a_group_whose_keep_is_gone_moves_nothing(library):
    lib, made, _ = library
    groups = lib.duplicates(("exact",))
    group = next(g for g in groups if len(g.files) == 3)
    os.rename(group.keep, group.keep + ".away")
    report = lib.trash_duplicates([group])
    assert report.moved == [] and {p for p, _ in report.failed} == set(group.others())
    assert all(os.path.exists(p) for p in group.others())


def test_emptying_sends_held_files_to_the_system_trash_from_their_own_place(library, tmp_trash):
    lib, made, photos = library
    groups = lib.duplicates(("near",))
    report = lib.trash_duplicates(groups)
    emptied = lib.empty_holding(older_than_days=1)
    assert emptied.trashed == [] and len(lib.cleanups()) == 1        # too recent
    emptied = lib.empty_holding()
    assert sorted(emptied.trashed) == sorted(p for p, _ in report.moved) and lib.cleanups() == []
    info = {f.read_text().split("Path=")[1].split("\n")[0] for f in (tmp_trash / "info").iterdir()}
    from urllib.parse import unquote
    assert {unquote(p) for p in info} == {p for p, _ in report.moved}   # the trash knows where they lived
    assert not any(os.path.exists(p) for p, _ in report.moved) and not (photos / HOLDING).exists()
    assert lib.undo_cleanup().restored == []
    held_contents = sql(lib, "SELECT count(*) FROM held_files")[0][0]
    assert held_contents == 0


def test_a_move_across_volumes_is_a_checked_copy(tmp_path, monkeypatch):
    src, dst = tmp_path / "a.jpg", tmp_path / "held" / "a.jpg"
    src.write_bytes(os.urandom(5000))
    os.utime(src, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    want = digest(str(src))
    import errno

    def cross_device(a, b):
        raise OSError(errno.EXDEV, "Invalid cross-device link")
    monkeypatch.setattr(os, "rename", cross_device)
    move_file(str(src), str(dst))
    assert not src.exists() and digest(str(dst)) == want
    assert dst.stat().st_mtime_ns == 1_600_000_000_000_000_000
    with pytest.raises(FileExistsError):
        src.write_bytes(b"x")
        move_file(str(src), str(dst))


def test_cli_trash_others_reports_files_and_bytes_and_undo_puts_them_back(library, cli):
    lib, made, photos = library
    listed = cli("dupes", "--library", lib.root, "--tier", "exact", "--json").json["groups"]
    assert all(g["reclaimable"] == sum(os.path.getsize(p) for p in g["files"][1:]) for g in listed)
    assert {"tier", "key", "keep", "files", "reasons", "differences", "details"} <= set(listed[0])
    before = {p: digest(p) for g in listed for p in g["files"]}
    lib.close()
    r = cli("dupes", "--library", lib.root, "--tier", "exact", "--trash-others", "--yes", "--json")
    assert r.code == 0, r.err
    moved = r.json
    assert moved["files"] == sum(len(g["files"]) - 1 for g in listed)
    assert moved["bytes"] == sum(g["reclaimable"] for g in listed)
    assert not any(os.path.exists(m["from"]) for m in moved["moved"])
    back = cli("dupes", "--library", lib.root, "--undo", "--json")
    assert back.code == 0, back.err
    assert back.json["files"] == moved["files"] and back.json["bytes"] == moved["bytes"]
    assert {p: digest(p) for p in before} == before
    assert cli("dupes", "--library", lib.root, "--tier", "exact", "--json").json["groups"] == listed
    again = cli("dupes", "--library", lib.root, "--undo")
    assert again.code == 0 and "Nothing to undo" in again.out
