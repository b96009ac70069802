#!/usr/bin/env python3
"""Break a library the ways a careful user's machine breaks them, and show that nothing is lost.

Each fault gets a fresh small library (pictures drawn by `clipphotos.shapes.write_library`,
indexed with the bundled shapes model), is injected for real (bind mounts, a tmpfs that fills
up, chmod, bytes overwritten in the catalog, a file replaced with its old time put back), and
the real `clipphotos` commands run on it. The table says, per fault, what the commands did
and what data was lost: photos dropped from the catalog, and photo files gone or changed on
disk (their bytes are hashed before and after). "none" is the only acceptable answer there.

Some faults need root (mount) or setpriv (permissions without root's read override); without
them a row says "skipped" and why.

  python bench/faults.py            # every fault, a table on stdout (about 5 minutes here)
  python bench/faults.py --only disk,perm
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
WORK = Path(tempfile.mkdtemp(prefix="clipphotos-faults-"))
os.environ["XDG_DATA_HOME"] = str(WORK / "xdg")     # the system trash of this run (read by Send2Trash on import)
os.environ["HF_HUB_OFFLINE"] = "1"

from clipphotos.cli import main  # noqa: E402
from clipphotos.shapes import write_library  # noqa: E402

SHAPES = REPO / "tests" / "fixtures" / "shapes-clip"
MODEL = ["--model", str(SHAPES / "config.json"), "--weights", str(SHAPES / "shapes-clip.safetensors")]


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def json(self) -> dict:
        return json.loads(self.out)

    def said(self) -> str:
        text = " ".join(self.err.split())
        return text[:110] + ("…" if len(text) > 110 else "")


class Traceback_(Exception):
    """A command ended in a traceback: the one outcome no fault may have."""


def cli(*args: object) -> Run:
    """`clipphotos ARGS` in this process; a traceback is turned into Traceback_."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:
            code = int(exc.code or 0)
        except Exception as exc:  # noqa: BLE001 - reported in the table
            raise Traceback_("".join(traceback.format_exception(exc))[-300:]) from None
    return Run(code, out.getvalue(), err.getvalue())


def unprivileged(*args: object) -> Run:
    """`clipphotos ARGS` in a subprocess without root's read override (as any user meets permissions)."""
    command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", sys.executable, "-m", "clipphotos",
               *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    if "Traceback" in done.stderr:
        raise Traceback_(done.stderr[-300:])
    return Run(done.returncode, done.stdout, done.stderr)


def pictures(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


class Skip(Exception):
    pass


def sh(*command: object) -> None:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True)
    if done.returncode != 0:
        raise Skip(f"`{' '.join(map(str, command))}` failed: {done.stderr.strip()} (needs root)")


class Library:
    """A fresh library of drawn photos, indexed; knows what it held, to count what was lost."""

    def __init__(self, name: str, count: int = 8, index: bool = True) -> None:
        self.dir = WORK / name
        self.photos = self.dir / "photos"
        self.lib = self.dir / "lib"
        write_library(self.photos, count, seed=len(name))
        self.hashes = self.file_hashes()
        if index:
            r = cli("index", self.photos, "--library", self.lib, *MODEL, "--json")
            assert r.code == 0, r.err
        self.count = count

    def file_hashes(self) -> dict[str, str]:
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in pictures(self.photos)}

    def run(self, *args: object) -> Run:
        return cli(*args, "--library", self.lib, *MODEL)

    def lost(self, expect_photos: int | None = None) -> str:
        """Photos the catalog dropped and photo files gone or changed: 'none' or what."""
        problems = []
        now = self.file_hashes()
        gone = [p for p in self.hashes if p not in now]
        changed = [p for p in self.hashes if p in now and now[p] != self.hashes[p]]
        if gone:
            problems.append(f"{len(gone)} files gone")
        if changed:
            problems.append(f"{len(changed)} files changed")
        status = cli("status", "--library", self.lib, "--json")
        photos = status.json["photos"] if status.code == 0 else None
        expected = self.count if expect_photos is None else expect_photos
        if photos is None:
            problems.append(f"catalog unreadable ({status.said()})")
        elif photos < expected:
            problems.append(f"{expected - photos} photos dropped from the catalog")
        return "; ".join(problems) or "none"


# -- the faults ---------------------------------------------------------------------------------


def unmounted_drive() -> tuple[str, str]:
    lib = Library("unmounted", index=False)
    mnt = lib.dir / "mnt"
    mnt.mkdir()
    sh("mount", "--bind", lib.photos, mnt)
    try:
        assert cli("index", mnt, "--library", lib.lib, *MODEL).code == 0
    finally:
        sh("umount", mnt)
    r = lib.run("repair", "--yes", "--json")
    return f"repair --yes: exit {r.code}, forgot {r.json['forgotten']}", lib.lost()


def unplugged_drive() -> tuple[str, str]:
    lib = Library("unplugged")
    lib.photos.rename(lib.dir / "away")
    i, r = lib.run("index", "--json"), lib.run("repair", "--yes", "--json")
    (lib.dir / "away").rename(lib.photos)
    return (f"index: offline {len(i.json['offline_folders'])} folder, removed {i.json['removed']}; "
            f"repair --yes: forgot {r.json['forgotten']}"), lib.lost()


def unreadable_subfolder() -> tuple[str, str]:
    lib = Library("subfolder", index=False)
    write_library(lib.photos / "private", 4, seed=99)
    lib.hashes = lib.file_hashes()
    lib.count = 12
    assert lib.run("index", lib.photos).code == 0
    (lib.photos / "private").chmod(0)
    try:
        i = unprivileged("index", "--library", lib.lib, *MODEL, "--json")
        r = unprivileged("repair", "--yes", "--library", lib.lib, *MODEL, "--json")
    finally:
        (lib.photos / "private").chmod(0o755)
    skipped = [s["reason"] for s in i.json["skipped"]]
    return (f"index: removed {i.json['removed']}, skipped {skipped}; repair --yes: forgot "
            f"{r.json['forgotten']}"), lib.lost()


def permission_denied_file() -> tuple[str, str]:
    lib = Library("denied", index=False)
    first = pictures(lib.photos)[0]
    first.chmod(0)
    a = unprivileged("index", lib.photos, "--library", lib.lib, *MODEL, "--json")
    first.chmod(0o644)
    b = unprivileged("index", "--library", lib.lib, *MODEL, "--json")
    return (f"skipped {len(a.json['skipped'])} ({a.json['skipped'][0]['reason']}); readable again: "
            f"indexed {b.json['indexed']}"), lib.lost()


def stale_duplicate() -> tuple[str, str]:
    lib = Library("stale-dupe", count=2, index=False)
    keep = pictures(lib.photos)[0]
    copy = lib.photos / "Downloads" / keep.name
    copy.parent.mkdir()
    shutil.copy2(keep, copy)
    assert lib.run("index", lib.photos).code == 0
    lib.count = 3
    st = keep.stat()
    data = bytearray(keep.read_bytes())
    data[len(data) // 2] ^= 0xFF
    keep.write_bytes(bytes(data))                      # replaced: same size, its old time put back
    os.utime(keep, ns=(st.st_atime_ns, st.st_mtime_ns))
    lib.hashes = lib.file_hashes()
    r = lib.run("dupes", "--trash-others", "--yes", "--json")
    trash, holding = WORK / "xdg" / "Trash" / "files", lib.photos / ".clipphotos-trash"
    trashed = sum(1 for folder in (trash, holding) if folder.is_dir() for p in folder.rglob("*") if p.is_file())
    reason = r.json["failed"][0]["reason"]
    return (f"dupes --trash-others: exit {r.code}, moved {len(r.json['moved'])}, group left alone: "
            f"\"…{reason[reason.index(' no longer'):][:60]}…\"; trash and holding hold {trashed}"), lib.lost()


def damage(catalog: Path, offset: int) -> None:
    with open(catalog, "r+b") as f:
        f.seek(offset)
        f.write(os.urandom(4096))


def damaged_header() -> tuple[str, str]:
    lib = Library("damaged-header")
    damage(lib.lib / "catalog.sqlite3", 0)
    codes = {c[0]: lib.run(*c).code for c in [("status",), ("search", "a circle"), ("index",), ("repair", "--yes"),
                                              ("backup", lib.dir / "b.sqlite3"), ("dupes",)]}
    said = lib.run("status").said()
    rebuilt = lib.run("repair", "--rebuild-catalog", "--json")
    again = lib.run("index", lib.photos, "--json")    # the header held the folder list: as the rebuild says
    return (f"exit codes {codes}: \"…{said[said.index(' is damaged'):][:40]}…\"; repair --rebuild-catalog: exit "
            f"{rebuilt.code}, {rebuilt.json['salvaged']['folders']} folders readable; index FOLDER: "
            f"{again.json['indexed']} indexed"), lib.lost()


def damaged_page() -> tuple[str, str]:
    lib = Library("damaged-page", count=40)
    catalog = lib.lib / "catalog.sqlite3"
    damage(catalog, (catalog.stat().st_size // 4096 // 2) * 4096)
    doctor = lib.run("doctor", "--json")
    ok = next(c for c in doctor.json["checks"] if c["check"] == "catalog")["ok"]
    backup = lib.run("backup", lib.dir / "copy.sqlite3")
    rebuilt = lib.run("repair", "--rebuild-catalog", "--json")
    salvaged = rebuilt.json["salvaged"]["folders"]
    again = "" if salvaged else f"; index FOLDER (as it says): {lib.run('index', lib.photos, '--json').json['indexed']}"
    return (f"doctor: catalog ok={ok}, exit {doctor.code}; backup: exit {backup.code}, copied "
            f"{(lib.dir / 'copy.sqlite3').exists()}; rebuild: exit {rebuilt.code}, {salvaged} folders readable, "
            f"{rebuilt.json['index']['indexed']} re-indexed{again}"), lib.lost()


def emptied_catalog() -> tuple[str, str]:
    lib = Library("emptied")
    (lib.lib / "catalog.sqlite3").write_bytes(b"")
    r = lib.run("status")
    size = (lib.lib / "catalog.sqlite3").stat().st_size
    return f"status: exit {r.code} \"{r.said()[:70]}…\"; catalog left as it was ({size} bytes)", \
        ("none by ClipPhotos (the fault emptied the catalog; the photos are intact: restore a backup or index "
         "again)" if lib.file_hashes() == lib.hashes else "photo files changed")


def full_disk() -> tuple[str, str]:
    lib = Library("full-disk", count=60, index=False)
    disk = lib.dir / "disk"
    disk.mkdir()
    sh("mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", disk)
    lib.lib = disk / "lib"
    try:
        a = lib.run("index", lib.photos)
        sh("mount", "-o", "remount,size=64m", disk)
        b = lib.run("index", lib.photos, "--json")
        result = (f"index: exit {a.code} \"{a.said()[:60]}…\"; with room again: exit {b.code}, "
                  f"{b.json['indexed']} more indexed"), lib.lost()
    finally:
        sh("umount", disk)
    return result


def full_thumbnail_disk() -> tuple[str, str]:
    lib = Library("thumbs-full", index=False)
    thumbs = lib.lib / "thumbnails"
    thumbs.mkdir(parents=True)
    sh("mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", thumbs)
    try:
        r = lib.run("index", lib.photos, "--json")
        result = (f"index: exit {r.code}, thumbnails not written: {r.json['thumbnails_failed']} "
                  f"({r.json['thumbnail_error']})"), lib.lost()
    finally:
        sh("umount", thumbs)
    return result


def read_only_library() -> tuple[str, str]:
    lib = Library("read-only")
    ro = lib.dir / "ro"
    ro.mkdir()
    sh("mount", "--bind", lib.lib, ro)
    try:
        sh("mount", "-o", "remount,ro,bind", ro)
        reads = {c[0]: cli(*c, "--library", ro).code for c in
                 [("status",), ("search", "a circle"), ("doctor",), ("backup", lib.dir / "b.sqlite3")]}
        w = cli("index", "--library", ro, *MODEL)
    finally:
        sh("umount", ro)
    return f"exit codes {reads}; index: exit {w.code} \"{w.said()[:50]}…\"", lib.lost()


def library_is_a_file() -> tuple[str, str]:
    lib = Library("file-for-library", index=False)
    a_file = lib.dir / "notes.txt"
    a_file.write_text("hello")
    r = cli("index", lib.photos, "--library", a_file, *MODEL)
    typo = cli("search", "a circle", "--library", lib.dir / "Librray")
    return (f"a file: exit {r.code} \"{r.said()[:50]}…\"; mistyped: exit {typo.code}, folder made: "
            f"{(lib.dir / 'Librray').exists()}"), "none" if a_file.read_text() == "hello" else "the file changed"


def killed_first_index() -> tuple[str, str]:
    from clipphotos.library import Library as Lib
    from clipphotos.models import ModelSpec
    lib = Library("first-run", count=40, index=False)
    spec = ModelSpec(MODEL[1], None, MODEL[3], "cpu")
    with Lib(lib.lib, model=spec) as opened:
        report = opened.index_folders([lib.photos], indexer_hook=lambda indexer: indexer.stop.set())
    s = cli("search", "a circle", "--library", lib.lib, "--json")      # no model options: the remembered one
    i = cli("index", "--library", lib.lib, "--json")
    return f"stopped after {report.indexed}; search: exit {s.code}; index: exit {i.code}", lib.lost()


def privacy() -> tuple[str, str]:
    old = os.umask(0o022)
    try:
        lib = Library("privacy")
    finally:
        os.umask(old)
    loose = [p for p in [lib.lib, *lib.lib.rglob("*")] if stat.S_IMODE(p.lstat().st_mode) & 0o077]
    return f"{len(loose)} library files or folders readable by others (umask 022)", lib.lost()


def undecodable_name() -> tuple[str, str]:
    lib = Library("latin1", count=1, index=False)
    (drawn,) = pictures(lib.photos)
    odd = os.path.join(os.fsencode(lib.photos), b"caf\xe9.jpg")
    os.rename(drawn, odd)
    lib.hashes = {os.fsdecode(odd): lib.hashes[str(drawn)]}
    lib.run("index", lib.photos)
    doc = json.loads(lib.run("search", "a shape", "--json").out)
    hit = doc["results"][0]
    hit["path"].encode("utf-8")
    same = base64.b64decode(hit["path_bytes"]) == odd
    return f"path {hit['path']!r} is valid UTF-8; path_bytes gives the real name: {same}", lib.lost()


def negative_limit() -> tuple[str, str]:
    lib = Library("limit", count=2)
    r = lib.run("search", "a circle", "--limit", "-3")
    return f"exit {r.code} \"{r.err.strip().splitlines()[-1][-60:]}\"", lib.lost()


FAULTS: dict[str, tuple[str, Callable[[], tuple[str, str]]]] = {
    "unmount": ("drive unmounted (bind mount), then repair --yes", unmounted_drive),
    "unplug": ("drive unplugged (folder gone), index + repair", unplugged_drive),
    "perm": ("unreadable subfolder (no root override)", unreadable_subfolder),
    "perm-file": ("file unreadable, then readable again", permission_denied_file),
    "dupe": ("exact copy replaced, old time restored; trash-others", stale_duplicate),
    "damage": ("4 KB of noise over the catalog header", damaged_header),
    "damage-page": ("4 KB of noise inside the catalog", damaged_page),
    "empty": ("catalog truncated to 0 bytes", emptied_catalog),
    "disk": ("disk full while indexing (400 KB tmpfs)", full_disk),
    "thumbs": ("disk full for thumbnails only", full_thumbnail_disk),
    "ro": ("library on a read-only mount", read_only_library),
    "file": ("--library names a file / is mistyped", library_is_a_file),
    "kill": ("first index stopped before the end", killed_first_index),
    "privacy": ("other accounts reading the library", privacy),
    "name": ("file name not valid UTF-8, --json", undecodable_name),
    "limit": ("search --limit -3", negative_limit),
}


def main_() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated fault keys: " + ",".join(FAULTS))
    args = parser.parse_args()
    keys = args.only.split(",") if args.only else list(FAULTS)
    rows, bad = [], 0
    for key in keys:
        title, fault = FAULTS[key]
        try:
            outcome, lost = fault()
        except Skip as exc:
            outcome, lost = f"skipped: {exc}", "-"
        except Traceback_ as exc:
            outcome, lost = f"TRACEBACK: {exc}", "?"
        if lost not in ("none", "-") and not lost.startswith("none"):
            bad += 1
        rows.append((title, outcome, lost))
        print(f"  {key}: {lost}", file=sys.stderr, flush=True)
    print("| fault | outcome | data lost |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(cell.replace("|", "/") for cell in row) + " |")
    shutil.rmtree(WORK, ignore_errors=True)
    print(f"\n{len(rows)} faults, data lost in {bad}.")
    return 1 if bad or any(r[1].startswith("TRACEBACK") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main_())
