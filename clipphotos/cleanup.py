"""Clean-ups of duplicates that can be undone: files go to a holding folder, then to the system trash.

Why a holding folder of our own rather than the system trash at once: undo must put every file
back at its exact path, on Linux, macOS and Windows. The system trash cannot promise that from
an app: on Linux only the freedesktop `.trashinfo` files say where a file came from (and a
desktop may rename or purge them), on macOS the Finder's "Put Back" data is private to the
Finder, and on Windows the Recycle Bin's `$I` records are an undocumented format. So, as
digiKam does, a clean-up first moves the files into `.clipphotos-trash/<clean-up>/` at the top
of the photo's own library folder, keeping their relative paths:

- same folder tree, so (nearly always) the same volume: a rename, instant and atomic, that
  keeps the bytes and the modification time. Where a rename cannot (a mount point inside the
  folder, EXDEV) the file is copied, the copy checked byte for byte, and only then the original
  removed. A read-only library folder holds in the library's own data folder the same way.
- the scanner skips hidden folders, so held files are never indexed as new photos.
- the catalog journals each clean-up (`cleanups`, `held_files` in catalog.py): the photo rows
  of the held files move there unchanged, so their contents, vectors and tags stay and undo
  restores the very rows. Held files are no photos: browsing and search never show them.

Held clean-ups older than HOLD_DAYS go on to the system trash (Send2Trash) when the next
clean-up starts, or all at once with `clipphotos dupes --empty-holding`. Each file is first put
back at its own path when that path is free and then sent from there, so the system trash's
own "restore" also knows where it came from. Nothing is ever deleted for good.

Every move of a duplicate goes through `hold_others` (into holding) or `move_others` (into a
folder of the user's), both of which take their files from `files_to_move`: the one place a
group's files are checked before anything is done to them.
"""
from __future__ import annotations

import errno
import filecmp
import os
import secrets
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from clipphotos.catalog import Catalog, encode_path, folder_prefix
from clipphotos.duplicates import ACTION_TIERS, DuplicateGroup, MoveReport


class Library(Protocol):
    """What a clean-up needs of the library (the facade passes itself; this module never imports it)."""

    root: Path
    catalog: Catalog

    def folders(self) -> list[tuple[int, str, bool]]: ...

    def forget(self, paths: Iterable[str]) -> int: ...

    def drop_orphans(self, hashes: dict[int, str] | None = None) -> list[int]: ...

HOLDING = ".clipphotos-trash"       # hidden: the scanner never indexes what it holds
HOLD_DAYS = 7                       # then the next clean-up sends a clean-up on to the system trash


@dataclass
class CleanupReport(MoveReport):
    """A clean-up into holding: the moves, what they weigh, and the id that undoes them."""

    cleanup: int | None = None
    bytes: int = 0

    @property
    def files(self) -> int:
        return len(self.moved)

    def to_json(self) -> dict:
        return {"cleanup": self.cleanup, "files": self.files, "bytes": self.bytes, **super().to_json()}


@dataclass
class RestoreReport:
    """What an undo put back (path), and what it could not (path, reason)."""

    cleanup: int | None = None
    restored: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    bytes: int = 0

    def to_json(self) -> dict:
        return {"cleanup": self.cleanup, "files": len(self.restored), "bytes": self.bytes, "restored": self.restored,
                "failed": [{"path": p, "reason": r} for p, r in self.failed]}


@dataclass
class EmptyReport:
    """Held files sent on to the system trash, and the ones that could not go (they stay held)."""

    trashed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    bytes: int = 0

    def to_json(self) -> dict:
        return {"files": len(self.trashed), "bytes": self.bytes, "trashed": self.trashed,
                "failed": [{"path": p, "reason": r} for p, r in self.failed]}


# -- choosing what moves --------------------------------------------------------------------


def files_to_move(groups: Iterable[DuplicateGroup]) -> tuple[list[str], list[tuple[str, str]]]:
    """The others of the exact and near groups that may move now, and the ones that may not (why).

    A file kept by any group never moves, nor does any file of a group whose kept file is gone
    (nothing would be left of the picture).
    """
    groups = [g for g in groups if g.tier in ACTION_TIERS]
    kept = {p for g in groups for p in g.kept()}
    moving: dict[str, None] = {}
    refused: list[tuple[str, str]] = []
    for g in groups:
        others = [p for p in g.others() if p not in kept]
        if not os.path.isfile(g.keep):
            refused += [(p, f"the file to keep is gone: {g.keep}") for p in others]
            continue
        moving.update(dict.fromkeys(p for p in others if os.path.lexists(p)))
    return list(moving), refused


# -- holding ---------------------------------------------------------------------------------


def hold_others(lib: Library, groups: Iterable[DuplicateGroup], source: str = "app") -> CleanupReport:
    """Move every group's other files into holding; the catalog journals them for undo."""
    empty_holding(lib, older_than_days=HOLD_DAYS)
    paths, refused = files_to_move(groups)
    report = CleanupReport(failed=list(refused))
    token = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
    folders = [(folder_prefix(encode_path(path)), path) for _, path, _ in lib.folders()]
    plan = [(path, _holding_path(lib, folders, token, path)) for path in paths]
    plan = [(p, h) for p, h in plan if lib.catalog.photo_by_path(p) is not None]
    if not plan:
        return report
    report.cleanup = lib.catalog.begin_cleanup(source, [(encode_path(p), encode_path(h)) for p, h in plan])
    moved, stayed = [], []
    for path, holding in plan:
        try:
            size = os.stat(path).st_size
            move_file(path, holding)
        except OSError as exc:
            report.failed.append((path, exc.strerror or str(exc)))
            stayed.append(encode_path(path))
            continue
        report.moved.append((path, holding))
        report.bytes += size
        moved.append(encode_path(path))
    lib.catalog.finish_cleanup(report.cleanup, moved, stayed)
    return report


def _holding_path(lib: Library, folders: list[tuple[bytes, str]], token: str, path: str) -> str:
    """Where a file is held: under its library folder's `.clipphotos-trash` (same volume), else the library's."""
    raw = encode_path(path)
    root = next((folder for prefix, folder in sorted(folders, key=lambda f: -len(f[0])) if raw.startswith(prefix)),
                None)
    if root is not None:
        holding = os.path.join(root, HOLDING)
        if os.access(root, os.W_OK) or os.path.isdir(holding) and os.access(holding, os.W_OK):
            return os.path.join(holding, token, os.path.relpath(path, root))
    drive, rest = os.path.splitdrive(os.path.abspath(path))
    return os.path.join(str(lib.root), "holding", token, drive.strip(":\\/") or "", rest.lstrip("\\/"))


def move_file(src: str, dst: str) -> None:
    """Move one file without ever overwriting: a rename on one volume, else a checked copy."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, f"a file already stands at {dst}")
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.copy2(src, dst)          # another volume: copy (with its mtime), check, then remove
        if not filecmp.cmp(src, dst, shallow=False):
            os.unlink(dst)
            raise OSError(errno.EIO, f"the copy at {dst} did not match; {src} was left in place") from None
        os.unlink(src)


def _prune(holding: str) -> None:
    """Remove the folders a held file leaves empty, up to and including the holding folder."""
    folder = os.path.dirname(holding)
    while os.path.basename(folder):
        name = os.path.basename(folder)
        try:
            os.rmdir(folder)            # only ever an empty folder
        except OSError:
            return
        if name in (HOLDING, "holding"):
            return
        folder = os.path.dirname(folder)


# -- undo --------------------------------------------------------------------------------------


def undo_cleanup(lib: Library, cleanup: int | None = None, source: str | None = None) -> RestoreReport:
    """Put a clean-up's files back at their paths and in the library (the latest, unless told which).

    A file whose path is taken again meanwhile stays held and is reported.
    """
    if cleanup is None:
        held = lib.catalog.cleanups(source)
        if not held:
            return RestoreReport()
        cleanup = held[0][0]
    report = RestoreReport(cleanup)
    back: list[bytes] = []
    for path, holding, size in lib.catalog.held_files(cleanup):
        if os.path.lexists(holding):
            try:
                move_file(holding, path)
            except OSError as exc:
                report.failed.append((path, exc.strerror or str(exc)))
                continue
            _prune(holding)
        elif not os.path.lexists(path):
            report.failed.append((path, f"the held file is gone from {holding}"))
            continue
        report.restored.append(path)
        report.bytes += size
        back.append(encode_path(path))
    lib.catalog.restore_held(cleanup, back)
    return report


# -- emptying into the system trash --------------------------------------------------------------


def empty_holding(lib: Library, older_than_days: float | None = None) -> EmptyReport:
    """Send held clean-ups (all, or those older than some days) on to the system trash."""
    from send2trash import send2trash
    report = EmptyReport()
    cutoff = None if older_than_days is None else time.time() - older_than_days * 86400
    for cleanup, made_at, *_ in lib.catalog.cleanups():
        if cutoff is not None and made_at > cutoff:
            continue
        gone: list[bytes] = []
        for path, holding, size in lib.catalog.held_files(cleanup):
            try:
                if os.path.lexists(holding):
                    sent = holding
                    if not os.path.lexists(path) and os.path.isdir(os.path.dirname(path)):
                        move_file(holding, path)    # sent from its own place, the trash can restore it there
                        sent = path
                    send2trash(sent)
                    _prune(holding)
            except Exception as exc:  # noqa: BLE001 - the file stays held, and is reported
                report.failed.append((path, getattr(exc, "strerror", None) or str(exc) or type(exc).__name__))
                continue
            report.trashed.append(path)
            report.bytes += size
            gone.append(encode_path(path))
        lib.catalog.release_held(cleanup, gone)
    if report.trashed:
        lib.drop_orphans()
    return report


# -- moving into a folder of the user's ------------------------------------------------------------


def move_others(lib: Library, groups: Iterable[DuplicateGroup], dest: str | os.PathLike[str]) -> MoveReport:
    """Move every group's other files into a folder (never overwriting); the catalog follows them."""
    target = os.path.abspath(os.fspath(dest))
    os.makedirs(target, exist_ok=True)
    paths, refused = files_to_move(groups)
    report = MoveReport(failed=list(refused))
    for path in paths:
        new = _free_name(target, os.path.basename(path))
        try:
            shutil.move(path, new)
        except OSError as exc:
            report.failed.append((path, exc.strerror or str(exc)))
            continue
        report.moved.append((path, new))
    _follow_moves(lib, report.moved)
    return report


def _free_name(folder: str, name: str) -> str:
    stem, ext = os.path.splitext(name)
    candidate, n = os.path.join(folder, name), 1
    while os.path.lexists(candidate):
        n += 1
        candidate = os.path.join(folder, f"{stem} ({n}){ext}")
    return candidate


def _follow_moves(lib: Library, moved: list[tuple[str, str]]) -> None:
    """Files moved inside a library folder keep their catalog entry; the others are forgotten."""
    folders = [(fid, folder_prefix(encode_path(path))) for fid, path, _ in lib.folders()]
    inside = []
    for old, new in moved:
        raw = encode_path(new)
        folder = next((fid for fid, prefix in folders if raw.startswith(prefix)), None)
        photo = lib.catalog.photo_by_path(old)
        if folder is not None and photo is not None:
            inside.append((encode_path(old), raw, folder, photo))
    if inside:
        with lib.catalog.transaction() as db:
            for old, new, folder, photo in inside:
                st = os.stat(new)
                lib.catalog.put_photo(db, new, folder, photo.content_id, st.st_size, st.st_mtime_ns)
                lib.catalog.forget_paths(db, [old])
    moved_inside = {os.fsdecode(old) for old, *_ in inside}
    lib.forget(old for old, _ in moved if old not in moved_inside)
