"""Walk the library's folders and list the picture files in them, safely.

Only regular files are listed (a FIFO or device named .jpg would block or worse). Symbolic
links are not followed unless the user allowed it for that folder, and then each directory is
entered once (no loops). Hidden files, AppleDouble `._*` files and the caches that NAS boxes
and desktops leave beside photos are skipped. Names are handled as bytes, so file names that
are not valid UTF-8 work.

A drive can also be mounted on a folder inside a library folder (or reached through a followed
link): the scan reports each such folder, the catalog remembers it, and while that drive is away
(`mount_away`) its photos are kept as they are, as for a library folder that is offline.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass


# Folders that hold caches or trash, never a person's photos.
IGNORED_DIRS = frozenset({b"@eaDir", b"#recycle", b"#snapshot", b"$RECYCLE.BIN", b"System Volume Information",
                          b"lost+found", b"__pycache__"})


@dataclass(frozen=True)
class ScannedFile:
    path: bytes          # absolute, as the file system's bytes
    size: int
    mtime_ns: int


def offline_reason(root: str | bytes, holds_photos: bool) -> str | None:
    """Why a library folder cannot be trusted to show what it holds now, or None when it can.

    The one rule deciding that a folder is offline, so that nothing forgets its photos on
    evidence that may be stale or partial (indexing, `repair`, `status` all ask it): a folder
    that is gone (an unplugged drive, an unmounted share), that cannot be listed (permissions,
    an I/O error), or that is empty while the catalog holds photos in it (the empty mount point
    a drive leaves behind). Its photos are kept as they are until it is back.
    """
    try:
        with os.scandir(root) as it:
            empty = next(it, None) is None
    except (FileNotFoundError, NotADirectoryError):
        return "not found (an unplugged drive or unmounted share?)"
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if empty and holds_photos:
        return "empty while the library holds photos in it (a drive's mount point while the drive is away?)"
    return None


def mount_away(path: bytes) -> str | None:
    """Why a folder that held another drive's files (see `scan_folder`'s `on_mount`) shows them
    no more, or None while it still does, or now holds files of its own (then it is trusted)."""
    try:
        here, parent = os.stat(path), os.stat(os.path.dirname(path))
    except (FileNotFoundError, NotADirectoryError):
        return "not found (the drive it was on is away?)"
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if here.st_dev != parent.st_dev:
        return None
    try:
        with os.scandir(path) as it:
            empty = next(it, None) is None
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    return "empty, where another drive was mounted (is it away?)" if empty else None


def mounts_away(paths: Iterable[bytes]) -> set[bytes]:
    """The remembered mount points (Catalog.mount_points) whose drive is away now."""
    return {p for p in paths if mount_away(p) is not None}


def is_ignored_name(name: bytes) -> bool:
    """Hidden entries (incl. AppleDouble `._*`, `.thumbnails`, `.Trash-1000`) and cache folders."""
    return name.startswith(b".") or name in IGNORED_DIRS


def scan_folder(root: bytes, follow_links: bool = False, excluded: frozenset[bytes] = frozenset(),
                on_error: Callable[[bytes, str], None] | None = None,
                on_mount: Callable[[bytes], None] | None = None) -> Iterator[ScannedFile]:
    """Every supported picture file below `root`, depth first, in a stable order.

    `on_mount` hears of each folder below `root` that is on another device than the folder
    holding it: a drive mounted there, or a followed link to one.
    """
    from clipphotos.loader import is_supported   # here: the loader is heavy, and offline_reason needs none of it
    seen_dirs: set[tuple[int, int]] = set()
    stack: list[tuple[bytes, int | None]] = [(root, None)]   # (folder, the device of the folder holding it)
    while stack:
        folder, outer = stack.pop()
        try:
            here = os.stat(folder)
            if (here.st_dev, here.st_ino) in seen_dirs:
                continue
            seen_dirs.add((here.st_dev, here.st_ino))
            if outer is not None and here.st_dev != outer and on_mount is not None:
                on_mount(folder)
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if on_error is not None:
                on_error(folder, exc.strerror or str(exc))
            continue
        subdirs = []
        for entry in entries:
            name = entry.name
            if is_ignored_name(name):
                continue
            try:
                if entry.is_symlink() and not follow_links:
                    continue
                if entry.is_dir(follow_symlinks=follow_links):
                    if entry.path not in excluded:
                        subdirs.append(entry.path)
                    continue
                if not is_supported(name):
                    continue
                st = entry.stat(follow_symlinks=follow_links)
            except OSError as exc:
                if on_error is not None:
                    on_error(entry.path, exc.strerror or str(exc))
                continue
            if stat.S_ISREG(st.st_mode):
                yield ScannedFile(entry.path, st.st_size, st.st_mtime_ns)
        stack.extend((sub, here.st_dev) for sub in reversed(subdirs))
