"""The 729 odd and broken files of Pillow's own test suite: the library must survive all of them."""
from __future__ import annotations

import os

from clipphotos.library import Library
from clipphotos.loader import is_supported
from clipphotos.scanner import is_ignored_name
from conftest import MODEL_ARGS, PILLOW_IMAGES, needs_shared


def picture_files(root) -> set[str]:
    """Every file the app should consider: supported extension, not hidden, below no hidden folder."""
    found = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not is_ignored_name(os.fsencode(d))]
        found.update(os.path.join(folder, f) for f in files
                     if is_supported(f) and not is_ignored_name(os.fsencode(f)))
    return found


def test_every_odd_file_is_indexed_or_skipped_with_a_reason(tmp_path, cli):
    needs_shared(PILLOW_IMAGES)
    lib = tmp_path / "lib"
    r = cli("index", PILLOW_IMAGES, "--library", lib, *MODEL_ARGS, "--json")
    assert r.code == 0, r.err
    report = r.json
    expected = picture_files(PILLOW_IMAGES.resolve())
    skipped = {s["path"]: s["reason"] for s in report["skipped"]}
    assert all(reason.strip() for reason in skipped.values())
    with Library(lib) as library:
        indexed = {p.path for p in library.catalog.iter_photos()}
    assert indexed.isdisjoint(skipped)
    assert indexed | set(skipped) == expected
    assert report["indexed"] + len(skipped) == len(expected)
    assert len(indexed) > len(expected) / 2          # most of them are fine pictures
    # a second run reads nothing again and reports the same skips
    again = cli("index", "--library", lib, *MODEL_ARGS, "--json").json
    assert again["indexed"] == 0 and again["embedded"] == 0
    assert {s["path"] for s in again["skipped"]} == set(skipped)
    status = cli("status", "--library", lib, "--json").json
    assert status["skipped"] == len(skipped) and status["photos"] == len(indexed)
