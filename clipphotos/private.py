"""A library is readable by its owner alone: its folder 0700, its files 0600.

The catalog holds paths, dates, cameras and tags of private photos, and the thumbnails are the
photos themselves, small: on a shared computer no other account may read them (the
freedesktop thumbnail spec asks the same of thumbnail folders). Everything the app writes
into a library goes through these helpers; `tighten` mends a library made before, or by hand.
Photos and the XMP sidecars beside them keep their own permissions: they are not ours.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_ENFORCED = os.name == "posix"   # Windows keeps a user's data folder private by its ACLs


def private_dir(path: Path) -> Path:
    """Make the folder (and missing parents) if need be; the folder itself is the owner's alone."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    if _ENFORCED and stat.S_IMODE(path.stat().st_mode) != PRIVATE_DIR:
        os.chmod(path, PRIVATE_DIR)
    return path


def private_file(path: str | os.PathLike[str]) -> None:
    """Make a file the app just wrote the owner's alone (it may have been created by a library
    that honours only the umask: SQLite, hnswlib, Pillow)."""
    if _ENFORCED:
        os.chmod(path, PRIVATE_FILE)


def write_privately(path: Path, write: Callable[[Path], object]) -> None:
    """Write a file whole or not at all, the owner's alone: `write` fills a temporary file beside
    `path` (named for this process, with the same suffix, which numpy's savers insist on), which
    then takes its place."""
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        private_file(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)   # only left if writing failed


def tighten(root: Path, entries: Iterable[str]) -> list[str]:
    """Take group and other permissions away from a library folder and its own `entries` (names
    in it, folders with all they hold); returns what changed. Nothing else in the folder is
    touched (a library made inside a photo folder must not change the photos' permissions).

    Owner permissions stay as they are; symbolic links are left alone (never followed).
    """
    if not _ENFORCED:
        return []
    changed = []
    paths = [os.fspath(root)]
    for name in entries:
        top = os.path.join(root, name)
        paths.append(top)
        if os.path.isdir(top) and not os.path.islink(top):
            for folder, dirs, files in os.walk(top):
                paths += [os.path.join(folder, n) for n in (*dirs, *files)]
    for path in paths:
        try:
            st = os.lstat(path)
            if not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) & 0o077:
                os.chmod(path, stat.S_IMODE(st.st_mode) & 0o700)
                changed.append(path)
        except OSError:
            continue
    return changed
