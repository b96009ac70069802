"""Faults a careful user's machine meets: unplugged drives, stale duplicates, damaged catalogs,
full disks, read-only libraries, permissions. Nothing may be lost, no fault may end in a traceback.

Permission tests run the command in a subprocess without root's read override
(`setpriv --bounding-set -dac_override,-dac_read_search`), so they mean the same as root or not.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MODEL_ARGS, REPO


def draw(folder: Path, count: int, seed: int) -> list[Path]:
    from clipphotos.shapes import write_library
    return [folder / t["path"] for t in write_library(folder, count, seed=seed)]


def bind_mount(source: Path, target: Path) -> bool:
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True).returncode == 0


# -- 1. repair never forgets an offline folder's photos ------------------------------------


def test_repair_keeps_photos_of_an_unmounted_drive(tmp_path, cli):
    photos, mnt, lib = tmp_path / "photos", tmp_path / "mnt", tmp_path / "lib"
    draw(photos, 6, seed=31)
    if not bind_mount(photos, mnt):
        pytest.skip("mount --bind needs root and a kernel that allows it (the renamed-drive test covers the rule)")
    try:
        assert cli("index", mnt, "--library", lib, *MODEL_ARGS, "--json").json["indexed"] == 6
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    r = cli("repair", "--yes", "--library", lib, *MODEL_ARGS, "--json")
    assert r.code == 0, r.err
    assert r.json["vanished"] == [] and r.json["forgotten"] == 0
    status = cli("status", "--library", lib, "--json").json
    assert status["photos"] == 6 and status["folder_details"][0]["online"] is False


def test_repair_keeps_photos_of_an_unplugged_or_unreadable_folder(tmp_path, cli):
    drive, lib = tmp_path / "drive", tmp_path / "lib"
    files = draw(drive, 5, seed=32)
    cli("index", drive, "--library", lib, *MODEL_ARGS)
    drive.rename(tmp_path / "away")                       # unplugged: the folder is gone
    r = cli("repair", "--yes", "--library", lib, *MODEL_ARGS, "--json").json
    assert r["forgotten"] == 0 and cli("status", "--library", lib, "--json").json["photos"] == 5
    (tmp_path / "away").rename(drive)
    files[0].unlink()                                     # back, and one photo really deleted
    r = cli("repair", "--yes", "--library", lib, *MODEL_ARGS, "--json").json
    assert r["vanished"] == [str(files[0])] and r["forgotten"] == 1


# -- 2. destructive duplicate actions re-verify the files at the moment they act -----------


def exact_pair(tmp_path: Path, cli) -> tuple[Path, Path, Path]:
    """Two byte-identical photos indexed in a library; returns (library, keep, copy)."""
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    (original,) = draw(photos / "camera", 1, seed=33)
    copy = photos / "Downloads" / original.name
    copy.parent.mkdir(parents=True)
    shutil.copy2(original, copy)
    assert cli("index", photos, "--library", lib, *MODEL_ARGS, "--json").json["indexed"] == 2
    from clipphotos.library import Library
    with Library(lib) as library:
        (group,) = [g for g in library.duplicates(("exact",))]
    assert group.keep == str(original)
    return lib, original, copy


def replace_keeping_size_and_time(path: Path) -> None:
    """What some sync and restore tools do: other bytes, same size, the old time put back."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_trash_others_rehashes_and_spares_the_last_copy(tmp_path, cli, tmp_trash):
    lib, keep, copy = exact_pair(tmp_path, cli)
    original_bytes = copy.read_bytes()
    replace_keeping_size_and_time(keep)       # the keep is no longer a copy of anything
    r = cli("dupes", "--trash-others", "--yes", "--library", lib, "--json")
    assert r.code == 1, r.err
    assert r.json["moved"] == [] and copy.read_bytes() == original_bytes
    (skip,) = r.json["skipped_groups"]
    assert skip["keep"] == str(keep) and "no longer holds the bytes" in skip["reason"]
    human = cli("dupes", "--move-others", tmp_path / "aside", "--yes", "--library", lib)
    assert human.code == 1 and "nothing moved" in human.out and copy.exists()


def test_verify_group_checks_time_size_bytes_and_the_keep(tmp_path, cli):
    from clipphotos.duplicates import verify_group
    from clipphotos.library import Library
    lib, keep, copy = exact_pair(tmp_path, cli)
    with Library(lib) as library:
        (group,) = library.duplicates(("exact",))
    assert verify_group(group) is None
    os.utime(copy, ns=(0, 10**18))
    assert "changed since it was indexed" in verify_group(group)
    copy.unlink()                                        # a copy already gone is nothing to move
    assert verify_group(group) is None
    keep.rename(keep.with_suffix(".bak"))
    assert "file to keep" in verify_group(group) and "no longer exists" in verify_group(group)
    keep.mkdir()
    assert "no longer a regular file" in verify_group(group)
