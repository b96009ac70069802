"""The folder walk on its own: what is listed, what is left out, and that it never hangs or loops."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from clipphotos.scanner import is_ignored_name, scan_folder


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def listed(root: Path, **kwargs) -> list[str]:
    return [os.fsdecode(os.path.relpath(f.path, os.fsencode(root))) for f in scan_folder(os.fsencode(root), **kwargs)]


def test_lists_supported_regular_files_depth_first_in_a_stable_order(tmp_path):
    touch(tmp_path / "b.JPG", b"12345")
    touch(tmp_path / "a.png")
    touch(tmp_path / "sub" / "c.heic")
    touch(tmp_path / "sub" / "deeper" / "d.NEF")
    touch(tmp_path / "notes.txt")
    touch(tmp_path / "movie.mp4")
    assert listed(tmp_path) == ["a.png", "b.JPG", "sub/c.heic", "sub/deeper/d.NEF"]
    first = next(f for f in scan_folder(os.fsencode(tmp_path)) if f.path.endswith(b"b.JPG"))
    st = os.stat(tmp_path / "b.JPG")
    assert (first.size, first.mtime_ns) == (5, st.st_mtime_ns)


def test_hidden_files_and_cache_folders_are_left_out(tmp_path):
    for rel in (".hidden.jpg", "._apple.jpg", ".thumbnails/t.png", "@eaDir/x.jpg", "#recycle/y.jpg",
                "$RECYCLE.BIN/z.jpg", ".Trash-1000/files/w.jpg"):
        touch(tmp_path / rel)
    touch(tmp_path / "kept.jpg")
    assert listed(tmp_path) == ["kept.jpg"]
    assert is_ignored_name(b".DS_Store") and is_ignored_name(b"@eaDir") and not is_ignored_name(b"Holidays")


def test_excluded_folders_are_not_entered(tmp_path):
    touch(tmp_path / "keep" / "a.jpg")
    touch(tmp_path / "exports" / "b.jpg")
    assert listed(tmp_path, excluded=frozenset({os.fsencode(tmp_path / "exports")})) == ["keep/a.jpg"]


def test_links_are_followed_only_when_allowed_and_loops_end(tmp_path):
    root, outside = tmp_path / "photos", tmp_path / "outside"
    touch(root / "a.jpg")
    touch(outside / "b.jpg")
    (root / "elsewhere").symlink_to(outside, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "link.jpg").symlink_to(outside / "b.jpg")
    assert listed(root) == ["a.jpg"]
    followed = listed(root, follow_links=True)
    assert sorted(followed) == ["a.jpg", "elsewhere/b.jpg", "link.jpg"]   # the loop is entered once


def test_fifos_and_devices_named_like_pictures_are_never_opened(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this system")
    os.mkfifo(tmp_path / "pipe.jpg")
    touch(tmp_path / "real.jpg")
    assert listed(tmp_path) == ["real.jpg"]


def test_names_that_are_not_utf8_are_kept_as_bytes(tmp_path):
    odd = os.fsencode(tmp_path) + b"/caf\xe9.jpg"
    try:
        with open(odd, "wb") as f:
            f.write(b"x")
    except OSError:
        pytest.skip("this file system does not take non-UTF-8 names")
    assert [f.path for f in scan_folder(os.fsencode(tmp_path))] == [odd]


def test_a_folder_that_cannot_be_read_is_reported_not_fatal(tmp_path):
    touch(tmp_path / "a.jpg")
    errors: list[tuple[bytes, str]] = []
    gone = os.fsencode(tmp_path / "unplugged")
    assert list(scan_folder(gone, on_error=lambda p, why: errors.append((p, why)))) == []
    assert errors and errors[0][0] == gone and errors[0][1]
    assert listed(tmp_path) == ["a.jpg"]
