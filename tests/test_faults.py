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
