"""`Library`: the one door to a photo library, used alike by the CLI and the GUI.

A library is a folder (the platform's user data folder unless told otherwise) holding the
catalog, the derived vector index and caches. It remembers the model it was indexed with, so
later commands use it without being told; indexing with another model re-embeds the library
and then frees the old vectors.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clipphotos.catalog import (
    Catalog, CatalogDamaged, PhotoRecord, encode_path, folder_prefix, is_damage, salvage_catalog,
)
from clipphotos.embedder import Embedder, KeptQueries
from clipphotos.search_cut import CONCEPTS, TAIL, Bank, Cut, LibrarySample, PhotoStats, QueryCut, cut_for
from clipphotos.tags import BACKGROUND_PROMPTS, Labels, useful_order
from clipphotos.text_search import TextMatch, match_text
from clipphotos.inference import Model, cache_root, open_model, planned, verdict_store
from clipphotos.models import ModelSpec, ModelUnavailable, gpu_possible, pick_device, plan_precision, requested_precision
from clipphotos.private import private_dir, tighten
from clipphotos.settings import Settings
from clipphotos.vector_index import ExactIndex, VectorIndex, saved_stamp

if TYPE_CHECKING:
    from filelock import FileLock

    from clipphotos.calibration import Decision, Label
    from clipphotos.cleanup import CleanupReport, EmptyReport, RestoreReport
    from clipphotos.duplicates import DuplicateGroup, MoveReport, SetApart
    from clipphotos.indexer import Indexer, IndexReport, Progress
    from clipphotos.loader import UnreadableImage, load_image  # noqa: F401
    from clipphotos.tags import Applied, ExportPlan, ExportReport, LabelInfo, PhotoTag
    from clipphotos.text_pass import TextPass, TextReport
    from clipphotos.text_reader import TextLine
    from clipphotos.thumbnails import ThumbnailCache

# Imported when first used, not with this module: a CLI search needs none of them, and the
# loader alone (every image plugin Pillow has) costs a fifth of a second.
_LATER = {"IndexReport": "clipphotos.indexer", "Progress": "clipphotos.indexer", "TextReport": "clipphotos.text_pass",
          "UnreadableImage": "clipphotos.loader", "load_image": "clipphotos.loader", "TextLine": "clipphotos.text_reader"}


def __getattr__(name: str) -> object:
    """The value types re-exported from modules imported later (see _LATER)."""
    if name in _LATER:
        import importlib
        return getattr(importlib.import_module(_LATER[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The value types the CLI and the app use come from here too, so that they import this module only.
__all__ = ["Library", "LibraryBusy", "LibraryReadOnly", "LibraryUnusable", "NoLibrary", "CatalogDamaged", "is_damage",
           "rebuild_catalog", "SearchResult", "SearchAnswer", "TrashReport", "PhotoRecord", "IndexReport", "Progress",
           "UnreadableImage", "load_image", "default_library_dir", "TextLine", "TextReport"]

log = logging.getLogger(__name__)

APP_NAME = "ClipPhotos"
# How strongly a negative term pushes its matches down (the query is pos − weight·neg).
NEGATIVE_WEIGHT = 0.6


def default_library_dir() -> Path:
    """$CLIPPHOTOS_LIBRARY, else the platform's user data folder (~/.local/share/ClipPhotos, ...)."""
    env = os.environ.get("CLIPPHOTOS_LIBRARY")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir
    return Path(user_data_dir(APP_NAME, appauthor=False))


class LibraryBusy(Exception):
    """Another process is writing to this library (indexing or watching it)."""


class NoLibrary(Exception):
    """There is no library where one was looked for (a mistyped --library, say)."""


class LibraryUnusable(Exception):
    """The library's place cannot hold a library (a regular file where its folder should be)."""


class LibraryReadOnly(Exception):
    """A command that changes the library met one this process may only read."""


CATALOG_NAME = "catalog.sqlite3"
# What the app keeps in a library folder besides the catalog (and its -wal, -shm, backups).
LIBRARY_ENTRIES = frozenset({"index", "thumbnails", "writer.lock", "holding"})
log = logging.getLogger("clipphotos")


def _is_writable(root: Path, catalog: Path) -> bool:
    """Whether this process may write the library (not a read-only folder, file or mount)."""
    return os.access(root, os.W_OK) and (not catalog.exists() or os.access(catalog, os.W_OK))


def _check_not_truncated(root: Path, catalog: Path) -> None:
    """An empty catalog beside the index and thumbnails of photos was truncated, not made new:
    opening it as a new library would hide the damage (and soon overwrite the index)."""
    if not catalog.is_file() or catalog.stat().st_size > 0:
        return
    left = [name for name in ("index", "thumbnails") if (root / name).is_dir() and any((root / name).iterdir())]
    if left:
        raise CatalogDamaged(catalog, f"it is empty (0 bytes) while the library's {' and '.join(left)} "
                                      f"are still there: it was emptied, not made new")


@dataclass
class TrashReport:
    trashed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)   # (path, reason)


@dataclass(frozen=True)
class SearchResult:
    path: str
    score: float
    photo: PhotoRecord
    companions: tuple[str, ...] = ()
    """Other files of the same shot (the RAW beside this JPEG), shown as this one photo."""
    match: bool = False
    """Whether the photo clearly matches the query (see clipphotos.search_cut), not merely ranks."""
    text: tuple[str, ...] = ()
    """The lines of the photo's text that hold the query's words (see clipphotos.text_search)."""

    def to_json(self) -> dict:
        return {"path": self.path, "score": round(self.score, 4), "match": self.match,
                "taken_at": self.photo.taken_at, "width": self.photo.width, "height": self.photo.height,
                "companions": list(self.companions), "text": list(self.text)}


@dataclass(frozen=True)
class SearchAnswer:
    """A search's results, matches first (best first), then the rest; how many match in all, and why."""

    results: list[SearchResult]
    matches: int
    reason: str = ""


class Library:
    """A photo library: its folders, catalog, model, index, and what can be asked of it."""

    def __init__(self, root: str | os.PathLike[str] | None = None, model: ModelSpec | None = None,
                 device: str | None = None, workers: int | None = None, precision: str | None = None, *,
                 must_exist: bool = False, brief: bool = False) -> None:
        """Open (or, unless `must_exist`, create) the library at `root`.

        `brief`: this process asks a question or two and exits (a CLI search). The vector index
        is then read in place and scanned exactly instead of loaded (vector_index.ExactIndex),
        and the model's weights are not repacked for speed: both pay off only over many queries.

        A library this process may not write (a read-only folder or mount) is opened read-only:
        reading it works, writing raises sqlite3's read-only error. A library readable by other
        accounts is made its owner's alone, once, with a warning on the "clipphotos" logger.
        """
        self.root = Path(root).expanduser().resolve() if root else default_library_dir()
        catalog = self.root / CATALOG_NAME
        if self.root.exists() and not self.root.is_dir():
            raise LibraryUnusable(f"{self.root} is a file, not a library folder: give --library a folder "
                                  f"(a new one is created) or the folder of an existing library")
        if must_exist and not catalog.is_file():
            raise NoLibrary(f"there is no ClipPhotos library at {self.root}: check --library "
                            f"(or CLIPPHOTOS_LIBRARY), or make one with  clipphotos index FOLDER")
        _check_not_truncated(self.root, catalog)
        self.read_only = self.root.exists() and not _is_writable(self.root, catalog)
        if not self.read_only:
            self._make_private()
        self.catalog = Catalog(catalog, read_only=self.read_only)
        self.settings = Settings(self.catalog)
        self.requested_model = model
        self.requested_device = device
        self.requested_precision = precision
        """auto, fp32, bf16, fp16 or int8; None: $CLIPPHOTOS_PRECISION, else auto (see models.plan_precision)."""
        self.workers = workers
        self.brief = brief
        self._loaded: Model | None = None
        self._embedder: Embedder | None = None
        self._index: VectorIndex | ExactIndex | None = None
        self._model_id: int | None = None
        self._data_version: int | None = None
        self._thumbnails: ThumbnailCache | None = None
        self._bank: Bank | None = None
        self._sample: LibrarySample | None = None
        self._stats: PhotoStats | None = None

    @property
    def thumbnails(self) -> ThumbnailCache:
        """The library's thumbnail cache (made on first use: it needs the image loader)."""
        if self._thumbnails is None:
            from clipphotos.thumbnails import ThumbnailCache
            self._thumbnails = ThumbnailCache(self.root / "thumbnails")
        return self._thumbnails

    def _make_private(self) -> None:
        """Create the library folder for its owner alone, and tighten one made readable by others
        (by an older version or by hand): said once, since afterwards there is nothing to change."""
        existed = self.root.is_dir()
        loose = existed and stat.S_IMODE(self.root.stat().st_mode) & 0o077
        if loose:
            own = [e.name for e in self.root.iterdir() if e.name.startswith(CATALOG_NAME)
                   or e.name in LIBRARY_ENTRIES]
            changed = tighten(self.root, own)    # the folder itself too
            if own:   # a folder just made for a new library held nothing to say this about
                log.warning("clipphotos: the library at %s was readable by other accounts of this computer; "
                            "it and what it holds (%d files and folders) are now readable by you alone",
                            self.root, len(changed))
        private_dir(self.root)

    def close(self) -> None:
        self.catalog.close()

    def ensure_intact(self) -> None:
        """Raise CatalogDamaged when the catalog fails SQLite's quick check (before changing it)."""
        self.catalog.ensure_intact()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- model ---------------------------------------------------------------------------

    @property
    def model_spec(self) -> ModelSpec:
        """The model asked for now, else the one the library was indexed with, else the default."""
        spec = self.requested_model
        if spec is None:
            stored = self.settings.model_json
            spec = ModelSpec.from_json(stored) if stored else ModelSpec()
        # Asked for now, else what the spec names, else $CLIPPHOTOS_PRECISION, else automatic.
        asked = self.requested_precision or (spec.precision if spec.precision != "auto" else None)
        spec = replace(spec, precision=requested_precision(asked))
        return replace(spec, device=self.requested_device) if self.requested_device else spec

    def precision(self) -> tuple[str, str]:
        """The precision the model runs in (or will, before it loads) and why, in words."""
        return self.inference()[1:3]  # type: ignore[return-value]

    def inference(self) -> tuple[str, str, str, dict]:
        """(backend, precision, reason, measured cosines and speed): as the model runs, or as it
        will run from what was measured before (without loading it), else as planned."""
        if self._loaded is not None:
            return self._loaded.backend, self._loaded.precision, self._loaded.precision_reason, self._loaded.measured
        spec = self.model_spec
        kept = planned(spec, self.root)
        if kept is not None:
            return kept
        try:
            device = pick_device(spec.device).type if gpu_possible(spec.device) else "cpu"
        except ModelUnavailable:
            device = "cpu"
        name, reason = plan_precision(device, spec.precision)
        if device != "cpu" or spec.precision in ("bf16", "fp16"):
            return "torch", name, reason, {}        # GPUs, and the formats only torch runs
        return "not measured yet", name, reason + "; measured against ONNX Runtime (fp32, int8) at the first load", {}

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._loaded = open_model(self.model_spec, self.root, self.brief)
            spec = self._loaded.spec
            # Random weights are new each run: nothing measured or encoded with them is worth keeping.
            keep = bool(spec.weights or spec.pretrained)
            self._embedder = Embedder(self._loaded, verdict_store(self.root) if keep else None,
                                      KeptQueries(cache_root(self.root), self._loaded) if keep and self.brief else None)
            key = self._loaded.key
            # Reading never registers a model; a read-only library without it just has no vectors (id 0).
            self._model_id = (self.catalog.find_model_id(key) or 0) if self.read_only else \
                self.catalog.model_id(key, self._loaded.dim)
        return self._embedder

    def photo_count(self) -> int:
        return self.catalog.photo_count()

    def warm_up(self) -> Model:
        """Load the model and the vector index and run the text path once, so that the first
        search pays for none of it; returns the loaded model (what runs where, and why)."""
        _ = self.index
        self.embedder.warm_up()
        return self.embedder.loaded

    @property
    def model_id(self) -> int:
        _ = self.embedder
        assert self._model_id is not None
        return self._model_id

    # -- vector index --------------------------------------------------------------------

    def _index_path(self) -> Path:
        return self.root / "index" / f"model-{self.model_id}.hnsw"

    @property
    def index(self) -> VectorIndex | ExactIndex:
        """The model's vector index: loaded if intact, rebuilt from the catalog if not, then
        synced with the catalog unless nothing changed there since it was saved."""
        if self._index is None:
            dim, path = self.embedder.dim, self._index_path()
            checksum, saved = self.settings.index_checksum(self.model_id), self.settings.index_stamp(self.model_id)
            changes = self.catalog.vector_changes()
            kind = ExactIndex if self.brief else VectorIndex
            index = ExactIndex.read(path, dim, checksum, saved and saved[0]) if self.brief else \
                VectorIndex.load(path, dim, checksum)
            if index is None:
                ids, vecs = self.catalog.vectors(self.model_id)
                index = kind.build(dim, ids, vecs)
            elif saved is None or saved[1] != changes:
                self._sync_index(index)
            self._index = index
        return self._index

    def _sync_index(self, index: VectorIndex | ExactIndex) -> None:
        """Vectors committed after the index was last saved (a crash in between) join it now."""
        in_catalog = self.catalog.vector_ids(self.model_id)
        in_index = index.ids()
        index.remove(in_index - in_catalog)
        missing = in_catalog - in_index
        if missing:
            ids, vecs = self.catalog.vectors(self.model_id, missing)
            index.add(ids, vecs)

    def refresh_index(self) -> None:
        """Take in what other processes committed since we last looked (an `index` beside a watcher)."""
        version = self.catalog.data_version()
        if self._index is not None and version != self._data_version:
            self._sync_index(self._index)
        self._data_version = version

    def save_index(self) -> None:
        """Save the index with what identifies it: its checksum, and its files' stamp with the
        catalog's count of vector changes it holds (synced first, so that count is true)."""
        index = self.index
        assert isinstance(index, VectorIndex), "a brief library never saves its index"
        changes = self.catalog.vector_changes()
        self._sync_index(index)
        path = self._index_path()
        checksum = index.save(path)
        self.settings.set_index_checksum(self.model_id, checksum)
        self.settings.set_index_stamp(self.model_id, saved_stamp(path), changes)

    # -- upkeep --------------------------------------------------------------------------

    def backup(self, dest: str | os.PathLike[str]) -> Path:
        """Copy the catalog (the library's truth) to `dest`, a file or a folder, while in use."""
        target = Path(dest).expanduser()
        if target.is_dir():
            target = target / f"clipphotos-catalog-{date.today().isoformat()}.sqlite3"
        self.catalog.backup(target)
        return target

    def rebuild_index(self) -> int:
        """Rebuild the vector index from the catalog and save it; returns how many vectors it holds."""
        ids, vecs = self.catalog.vectors(self.model_id)
        self._index = VectorIndex.build(self.embedder.dim, ids, vecs)
        self._sample = None
        self.save_index()
        return len(self._index)

    def vanished_files(self) -> list[str]:
        """Catalogued photos whose file is certainly gone.

        Only folders that are online count (`scanner.offline_reason`, the rule indexing follows:
        an unplugged drive, an empty mount point or an unreadable folder is not "gone"; nor is a
        drive mounted inside a folder while it is away, `scanner.mount_away`), and only files the
        system says do not exist: one it cannot look at (permissions) is not gone either.
        """
        counts = self.catalog.folder_counts()
        from clipphotos.scanner import offline_reason
        gone = []
        for fid, path, _ in self.folders():
            if offline_reason(path, counts.get(fid, 0) > 0) is None:
                away = self._drives_away(fid)
                gone += [p.path for p in self.catalog.photos_in_folder(fid)
                         if not encode_path(p.path).startswith(away) and _certainly_gone(p.path)]
        return gone

    def file_absence(self, path: str) -> str | None:
        """Why a catalogued photo's file is not there, for a user to read the state of it:
        "away" when its library folder is offline or it lies on a drive mounted inside one that
        is away (the rule indexing follows: its photos are kept until it is back), "gone" when
        the system says it does not exist in a folder that is here (moved or deleted since the
        last scan). None when neither: the file is there, or it cannot be looked at now."""
        if not _certainly_gone(path):
            return None
        from clipphotos.scanner import offline_reason
        raw = encode_path(path)
        for fid, root, _ in self.folders():
            if raw.startswith(folder_prefix(encode_path(root))):
                away = offline_reason(root, True) is not None or raw.startswith(self._drives_away(fid))
                return "away" if away else "gone"
        return "gone"

    def _drives_away(self, folder_id: int) -> tuple[bytes, ...]:
        """The path prefixes of the drives mounted inside a library folder that are away now."""
        from clipphotos.scanner import mounts_away
        return tuple(folder_prefix(m) for m in mounts_away(self.catalog.mount_points(folder_id)))

    def forget(self, paths: Iterable[str]) -> int:
        """Drop catalog rows of files (never touching the files); returns how many photos left."""
        raw = [encode_path(p) for p in paths]
        hashes = {photo.content_id: photo.hash for photo in map(self.catalog.photo_by_path, raw) if photo}
        with self.catalog.transaction() as db:
            self.catalog.forget_paths(db, raw)
        self.drop_orphans(hashes)
        return len(raw)

    def drop_orphans(self, hashes: dict[int, str] | None = None) -> list[int]:
        """Contents no file holds any more leave the catalog, the index and the thumbnails."""
        if hashes is None:
            hashes = self.catalog.orphan_hashes()
        dropped = self.catalog.drop_orphan_contents()
        if self._index is not None and dropped:
            self._index.remove(dropped)
            self.save_index()
        self.thumbnails.discard(hashes[cid] for cid in dropped if cid in hashes)
        return dropped

    # -- folders -------------------------------------------------------------------------

    def add_folder(self, path: str | os.PathLike[str], follow_links: bool = False) -> int:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder} is not a folder")
        return self.catalog.add_folder(folder.resolve(), follow_links)

    def remove_folder(self, path: str | os.PathLike[str]) -> bool:
        """Forget a library folder and its photos; or a drive mounted inside one while it is away
        (its photos are kept until it is back: this is how to stop waiting for it). Files are
        never touched. False when the path is neither."""
        removed = self.catalog.remove_folder(Path(path).expanduser().resolve())
        if removed and self._index is not None:
            self._sync_index(self._index)
            self.save_index()
        return removed or self._forget_away_drive(encode_path(os.path.abspath(os.path.expanduser(path))))

    def _forget_away_drive(self, mount: bytes) -> bool:
        from clipphotos.scanner import mount_away
        for fid, _, _ in self.folders():
            if mount in self.catalog.mount_points(fid) and mount_away(mount) is not None:
                inside = folder_prefix(mount)
                self.forget([p.path for p in self.catalog.photos_in_folder(fid) if encode_path(p.path).startswith(inside)])
                self.catalog.remember_mount_points(fid, (), [mount])
                return True
        return False

    def folders(self) -> list[tuple[int, str, bool]]:
        return self.catalog.folders()

    # -- indexing ------------------------------------------------------------------------

    def writer_lock(self) -> FileLock:
        from filelock import FileLock
        return FileLock(str(self.root / "writer.lock"), mode=0o600)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the library's single-writer lock, or raise LibraryBusy at once if another process has it."""
        if self.read_only:
            raise LibraryReadOnly(f"the library at {self.root} is read-only here: search, status, doctor and "
                                  f"backup work on it; indexing and other changes need write access (check the "
                                  f"folder's owner and permissions, or whether its drive is mounted read-only)")
        lock = self.writer_lock()
        from filelock import Timeout
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise LibraryBusy(self._busy_message()) from None
        try:
            yield
        finally:
            lock.release()

    def index_folders(self, folders: Iterable[str | os.PathLike[str]] = (), *,
                      on_progress: Callable[[Progress], None] = lambda p: None,
                      only: Iterable[bytes] | None = None,
                      indexer_hook: Callable[[Indexer], None] | None = None,
                      settle_seconds: float | None = None, save: bool = True,
                      read_text: bool | None = None) -> IndexReport:
        """Add the folders (if any) and bring the whole library up to date.

        `only` limits the run to some paths (the watcher's events), folders meaning everything
        below them; `indexer_hook` receives the indexer before it starts, so a GUI can pause or
        stop it. Files modified in the last `settle_seconds` may still be being copied: they are
        left for later (`report.deferred`). `save=False` leaves the index file for a later
        `save_index()` (the catalog has everything; a watcher saves now and then, not each run).
        Then, unless `read_text` is False (None: the library's setting), the text pass reads the
        words in the photos not read yet (`report.text`); stopping the indexer stops it too.
        """
        with self.writing():
            for folder in folders:
                self.add_folder(folder)
            embedder, model_id, index = self.embedder, self.model_id, self.index
            assert self._loaded is not None
            if self.settings.model_json is None:
                # The first run names the library's model before its first photo: killed midway
                # (or out of disk), the next `index` or `search` carries on with the same model.
                self._remember_model()
            from clipphotos.indexer import Indexer
            indexer = Indexer(self.catalog, embedder, index, model_id, workers=self.workers,
                              on_decoded=self.thumbnails.from_decoded)
            if indexer_hook is not None:
                indexer_hook(indexer)
            settled_before = None if settle_seconds is None else time.time_ns() - int(settle_seconds * 1e9)
            thumbs_failed = self.thumbnails.failed
            report = indexer.run(self.folders(), only=only, on_progress=on_progress,
                                 excluded=self.excluded_folders(), settled_before_ns=settled_before)
            report.thumbnails_failed = self.thumbnails.failed - thumbs_failed
            report.thumbnail_error = self.thumbnails.failure if report.thumbnails_failed else None
            if save:
                self.save_index()
            if not report.stopped and self.catalog.contents_without_vector(model_id) == 0:
                # Everything is embedded with this model now: make it the library's model.
                self._remember_model()
                self.catalog.drop_other_models(model_id)
            if not report.stopped:
                self.labels.tag_new_contents()   # new photos get the user's labels right away
            if not report.stopped and (self.text_enabled if read_text is None else read_text):
                text = self._text_pass()
                text.stop, text.pause = indexer.stop, indexer.pause
                report.text = self._run_text_pass(text, on_progress)
            return report

    # -- words in photos -----------------------------------------------------------------

    @property
    def text_enabled(self) -> bool:
        """Whether indexing reads the words in photos (Settings; `--no-text` skips it for one run)."""
        return self.settings.read_text

    def set_text_enabled(self, on: bool) -> None:
        self.settings.read_text = on

    def text_left(self) -> int:
        """How many photos the text pass has still to read."""
        return self.catalog.text_counts()[2]

    def read_text(self, *, on_progress: Callable[[Progress], None] = lambda p: None,
                  hook: Callable[[TextPass], None] | None = None,
                  should_yield: Callable[[], bool] = lambda: False) -> TextReport | None:
        """Run the text pass alone (the watcher's low-priority work): it returns early as soon as
        `should_yield()` says other work waits. None if text cannot be read here."""
        with self.writing():
            text = self._text_pass()
            text.should_yield = should_yield
            if hook is not None:
                hook(text)
            return self._run_text_pass(text, on_progress)

    def _text_pass(self) -> TextPass:
        from clipphotos.text_pass import TextPass
        return TextPass(self.catalog, self.thumbnails)

    @staticmethod
    def _run_text_pass(text: TextPass, on_progress: Callable[[Progress], None]) -> TextReport | None:
        from clipphotos.text_reader import TextReaderUnavailable
        try:
            return text.run(on_progress)
        except TextReaderUnavailable as exc:
            log.warning("the words in photos are not read: %s", exc)
            return None

    def _text_status(self) -> dict:
        read, with_text, left = self.catalog.text_counts()
        return {"enabled": self.text_enabled, "read": read, "with_text": with_text, "left": left}

    def photo_text(self, path: str | os.PathLike[str]) -> list[TextLine]:
        """The lines read in a photo, with their boxes (empty if none, or not read yet)."""
        photo = self.catalog.photo_by_path(path)
        if photo is None:
            return []
        from clipphotos.text_reader import TextLine
        return [TextLine(text, score, tuple(map(tuple, json.loads(box))))
                for text, _folded, score, box in self.catalog.text_lines([photo.content_id]).get(photo.content_id, [])]

    def search_text(self, query: str, *, folder: str | os.PathLike[str] | None = None,
                    since: str | date | None = None, until: str | date | None = None,
                    tag: str | None = None, limit: int = 20) -> list[SearchResult]:
        """Photos by their text alone: those holding most of the query's words first (no model needed).

        The score is the share of the query's terms found in the photo's text."""
        allowed = self._allowed(folder, since, until, tag)
        matches = {cid: m for cid, m in match_text(self.catalog, query).items()
                   if allowed is None or cid in allowed}
        ranked = sorted(matches.items(), key=lambda item: (-item[1].weight, -len(item[1].lines), item[0]))
        return self._results([(cid, m.share) for cid, m in ranked], folder, matches, set(matches))[:limit]

    def _remember_model(self) -> None:
        assert self._loaded is not None
        self.settings.set_model(replace(self._loaded.spec, device="auto", precision="auto").to_json(), self._loaded.key)

    def _busy_message(self) -> str:
        from clipphotos.watch_state import live_watcher
        watcher = live_watcher(self.catalog)
        if watcher is not None and watcher.get("indexing"):
            return (f"`clipphotos watch` (pid {watcher['pid']}) is indexing {self.root} right now and keeps "
                    f"it up to date by itself; try again when it is done, or stop the watcher first")
        return f"another ClipPhotos process is indexing {self.root}; try again when it is done"

    def excluded_folders(self) -> frozenset[bytes]:
        """Folders indexing never enters: the user's exclusions and the library's own folder
        (its thumbnails are not photos, even when the library sits inside a photo folder)."""
        user = {encode_path(p) for p in self.settings.excluded_folders}
        return frozenset(user | {encode_path(self.root)})

    def set_excluded_folders(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        """Folders (inside library folders) that indexing skips; their photos leave on the next run."""
        self.settings.excluded_folders = paths

    # -- deleting ------------------------------------------------------------------------

    def trash(self, paths: Iterable[str | os.PathLike[str]]) -> TrashReport:
        """Move files to the system trash and forget them; a file that cannot be trashed stays.

        Nothing is ever deleted for good: a failure (no trash on that drive, no permission) is
        reported with its reason and the file keeps its place in the library.
        """
        from send2trash import send2trash
        report = TrashReport()
        gone: list[str] = []
        for path in map(os.fspath, paths):
            try:
                send2trash(path)
                report.trashed.append(path)
            except Exception as exc:  # noqa: BLE001 - every failure is reported, none is fatal
                reason = "the file no longer exists" if not os.path.lexists(path) else (
                    getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
                report.failed.append((path, reason))
            if not os.path.lexists(path):
                gone.append(path)
        self.forget(gone)
        return report

    # -- duplicates ----------------------------------------------------------------------

    def duplicates(self, tiers: Iterable[str] = ("exact", "near", "similar"), *,
                   on_progress: Callable[[int, int], None] = lambda done, total: None,
                   on_stage: Callable[[str], None] = lambda stage: None) -> list[DuplicateGroup]:
        """Exact copies, near-duplicates and similar shots, each group with the file to keep and why.

        Photos indexed before duplicate signals were kept are decoded once first (`on_progress`);
        `on_stage` then hears each step of the search.
        """
        from clipphotos.duplicates import fill_missing_signals, find_duplicates
        fill_missing_signals(self.catalog, on_progress)
        return find_duplicates(self.catalog, tiers, on_stage)

    def trash_duplicates(self, groups: Iterable[DuplicateGroup], source: str = "app") -> CleanupReport:
        """Move all but each exact/near group's keep to the trash, undoably (similar shots are left alone).

        The files wait in a holding folder (clipphotos.cleanup) until `empty_holding` sends them
        on to the system trash; `undo_cleanup` puts them back with their vectors and tags.
        """
        from clipphotos.cleanup import hold_others
        return hold_others(self, groups, source)

    def undo_cleanup(self, cleanup: int | None = None, source: str | None = None) -> RestoreReport:
        """Put a clean-up's files back where they were and in the library (the latest, unless told)."""
        from clipphotos.cleanup import undo_cleanup
        return undo_cleanup(self, cleanup, source)

    def cleanups(self, source: str | None = None) -> list[tuple[int, float, str, int, int]]:
        """(id, made_at, source, files, bytes) of the clean-ups that can still be undone, newest first."""
        return self.catalog.cleanups(source)

    def empty_holding(self, older_than_days: float | None = None) -> EmptyReport:
        """Send held clean-ups (all, or the older ones) on to the system trash: no undo after that."""
        from clipphotos.cleanup import empty_holding
        return empty_holding(self, older_than_days)

    def move_duplicates(self, groups: Iterable[DuplicateGroup], dest: str | os.PathLike[str]) -> MoveReport:
        """Move all but each exact/near group's keep into a folder; the catalog follows them."""
        from clipphotos.cleanup import move_others
        return move_others(self, groups, dest)

    def mark_not_duplicates(self, paths: Sequence[str | os.PathLike[str]]) -> SetApart:
        """Never group these files together again (stored in the catalog); `undo_not_duplicates` takes it back."""
        from clipphotos.duplicates import mark_not_duplicates
        return mark_not_duplicates(self.catalog, paths)

    def undo_not_duplicates(self, set_apart: SetApart) -> SetApart:
        """Take back one `mark_not_duplicates` (pairs set apart before it stay apart)."""
        from clipphotos.duplicates import undo_not_duplicates
        return undo_not_duplicates(self.catalog, set_apart)

    def group_again(self, paths: Sequence[str | os.PathLike[str]]) -> int:
        """Forget every "not duplicates" between these files; returns how many pairs were set apart."""
        from clipphotos.duplicates import group_again
        return group_again(self.catalog, paths)

    # -- tags ----------------------------------------------------------------------------

    @property
    def labels(self) -> Labels:
        """The user's labels: define, decide, review and export tags (see clipphotos.tags)."""
        return Labels(self)

    # The app's questions about tags, each one call (the CLI speaks to `labels` the same way).

    def label_infos(self) -> list[LabelInfo]:
        """Every label with the number of photos it applies to (what `tag list` and the sidebar show)."""
        return self.labels.info()

    def add_label(self, name: str, prompts: Sequence[str] = ()) -> Label:
        return self.labels.add(name, prompts)

    def remove_label(self, name: str) -> bool:
        return self.labels.remove(name)

    def tag_suggestions(self, name: str, limit: int = 60) -> list[tuple[PhotoRecord, Decision]]:
        """A label's photos to review, most useful first (see tags.useful_order), answered ones included."""
        found = useful_order(self.labels.suggestions(name, limit=None, include_reviewed=True))[:limit]
        photos = {p.path: p for p in map(self.catalog.photo_by_path, [d.path for d in found]) if p is not None}
        return [(photos[d.path], d) for d in found if d.path in photos]

    def review_tag(self, name: str, paths: Iterable[str | os.PathLike[str]], accepted: bool | None) -> None:
        """Store the user's answers (None forgets one); a label already applied is decided again."""
        self.labels.review(name, paths, accepted, refit=False)

    def refit_label(self, name: str) -> None:
        """Decide a label again after answers, if it is applied (a new label waits for `apply_label`)."""
        if self.labels.is_applied(name):
            self.labels.run([name])

    def apply_label(self, name: str) -> Applied:
        return self.labels.apply(name)

    def undo_apply(self, applied: Applied) -> None:
        self.labels.undo_apply(applied)

    def photos_tagged(self, name: str) -> list[PhotoRecord]:
        """The photos a label applies to, newest first: what its row in the sidebar shows."""
        return self.catalog.browse(tag=name)

    def browse(self, *, folder: str | os.PathLike[str] | None = None, since: str | date | None = None,
               until: str | date | None = None, tag: str | None = None) -> list[PhotoRecord]:
        """The photos to look through, newest first: inside a folder, taken within dates (whole
        days), with a tag, as far as each is given."""
        return self.catalog.browse(os.fspath(folder) if folder is not None else None, _date_bound(since),
                                   _date_bound(until, end=True), tag)

    def photo_tags(self, path: str | os.PathLike[str]) -> list[PhotoTag]:
        return self.labels.photo_tags(path)

    def set_photo_tag(self, path: str | os.PathLike[str], name: str, on: bool) -> None:
        """Give a photo a tag (a new label if need be) or take one off; both are answers the label learns from."""
        if on:
            self.labels.add(name)
        self.labels.set_tag(name, path, on)

    def xmp_plan(self) -> ExportPlan:
        return self.labels.export_plan()

    def export_xmp(self) -> ExportReport:
        return self.labels.export_xmp()

    # -- search --------------------------------------------------------------------------

    def search(self, text: str | None = None, *, image: str | os.PathLike[str] | None = None,
               negative: Sequence[str] = (), folder: str | os.PathLike[str] | None = None,
               since: str | date | None = None, until: str | date | None = None,
               tag: str | None = None, limit: int = 20) -> list[SearchResult]:
        """Photos ranked by similarity to a description and/or a picture: the matches, then the rest.

        `find` with the same arguments, without the count of matches.
        """
        return self.find(text, image=image, negative=negative, folder=folder, since=since, until=until,
                         tag=tag, limit=limit).results

    def find(self, text: str | None = None, *, image: str | os.PathLike[str] | None = None,
             negative: Sequence[str] = (), folder: str | os.PathLike[str] | None = None,
             since: str | date | None = None, until: str | date | None = None,
             tag: str | None = None, limit: int | None = 20, matches_only: bool = False) -> SearchAnswer:
        """A search split where its matches end: the photos that clearly match first, then the rest.

        Scores are cosine similarities to the (prompt-ensembled) query, so they compare across
        queries; each result says whether it matches (clipphotos.search_cut decides, from the
        library), and `matches` counts the matches among every photo the filters allow, not only
        the ones returned. `negative` terms push their matches down; folder and date filters
        narrow the candidates; `until` is inclusive. `tag` keeps the photos a label applies to.
        `matches_only` returns only the matches, up to `limit` (None: all of them).
        """
        if self.catalog.photo_count() == 0 or (not text and image is None):
            return SearchAnswer([], 0)
        query, exclude = self._query_vector(text, image)
        for term in negative:
            query = query - NEGATIVE_WEIGHT * self.embedder.encode_query(term)
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        allowed = self._allowed(folder, since, until, tag)
        if allowed is not None and not allowed:
            return SearchAnswer([], 0)
        by_text = image is None
        tail = self.index.search(query, TAIL, None)
        positive = self._query_vector(text, image)[0] if negative else query
        cut = QueryCut(self._cut(positive, text if by_text else None, exclude, by_text,
                                 None if negative else tail), positive, by_text,
                       tuple((self._cut(vec, term, set(), True), vec) for term in negative
                             for vec in [self.embedder.encode_query(term)]))
        want = (limit if limit is not None else 10 * TAIL) + len(exclude)
        k = max(want * 2, want + 10)
        while True:
            hits = tail[:k] if allowed is None and k <= len(tail) else self.index.search(query, k, allowed)
            hits = [(cid, s) for cid, s in hits if cid not in exclude]
            flags = self._matching(cut, hits)
            more = len(allowed) if allowed is not None else len(self.index)
            # Matches may go on past the last hit: look further until one fails or all are seen.
            if not hits or not flags[-1] or k >= more:
                break
            k *= 4
        matching = {cid for (cid, _), match in zip(hits, flags) if match}
        texts = {cid: m for cid, m in match_text(self.catalog, text).items()
                 if cid not in exclude and (allowed is None or cid in allowed)} if text else {}
        if texts:
            # A photo holding most of the query's words matches by them, whatever it looks like.
            hits = self._fuse(query, hits, texts)
            matching |= {cid for cid, m in texts.items() if m.strong}
        shots = self._results(hits, folder, texts, matching)
        matched = [r for r in shots if r.match]
        rest = [] if matches_only else [r for r in shots if not r.match]
        return SearchAnswer((matched + rest)[:limit], len(matched), cut.reason)

    def _fuse(self, query: np.ndarray, hits: list[tuple[int, float]],
              matches: dict[int, TextMatch]) -> list[tuple[int, float]]:
        """CLIP's ranking with the text's: a photo's score gains the share of the query's words its
        text holds (whole words count half as much again), and photos holding most of them come
        before those that only look right."""
        scores = dict(hits)
        unseen = [cid for cid in matches if cid not in scores]
        if unseen:
            present = self.index.ids()
            unseen = [cid for cid in unseen if cid in present]
            if unseen:
                scores.update(zip(unseen, (self.index.vectors(unseen) @ query).tolist()))
        fused = {cid: score + (matches[cid].weight if cid in matches else 0.0) for cid, score in scores.items()}
        return sorted(fused.items(), key=lambda item: (not (item[0] in matches and matches[item[0]].strong),
                                                       -item[1]))

    def _allowed(self, folder: str | os.PathLike[str] | None, since: str | date | None,
                 until: str | date | None, tag: str | None) -> set[int] | None:
        """The content ids the folder, date and tag filters leave (None: no filter)."""
        allowed = None
        if folder is not None or since is not None or until is not None:
            allowed = self.catalog.filtered_content_ids(
                str(Path(folder).expanduser().resolve()) if folder else None,
                _date_bound(since), _date_bound(until, end=True))
        if tag is not None:
            tagged = self.catalog.content_ids_with_tag(tag)
            allowed = tagged if allowed is None else allowed & tagged
        return allowed

    def _cut(self, vector: np.ndarray, text: str | None, exclude: set[int], by_text: bool,
             tail: list[tuple[int, float]] | None = None) -> Cut:
        """One vector's cut, fitted on its best photos in the whole library (`tail`, if already
        searched for) and on the library sample."""
        if tail is None:
            tail = self.index.search(vector, TAIL, None)
        tail = [(cid, s) for cid, s in tail if cid not in exclude]
        ids = np.array([cid for cid, _ in tail], dtype=np.int64)
        stats, sample = self._cut_stats(ids), self._cut_sample()
        scores = stats.scores(ids, np.array([s for _, s in tail], dtype=np.float32))
        return cut_for(sample, sample.scores(vector), ids, scores, self._cut_bank(), text, by_text=by_text)

    def _matching(self, cut: QueryCut, hits: list[tuple[int, float]]) -> np.ndarray:
        if not hits or cut.matches_nothing:
            return np.zeros(len(hits), dtype=bool)
        ids = np.array([cid for cid, _ in hits], dtype=np.int64)
        stats = self._cut_stats(ids)
        if cut.exclude:   # each --not term scores the photos with its own vector
            return cut.matches(ids, stats, vectors=self.index.vectors(ids.tolist()))
        return cut.matches(ids, stats, np.array([s for _, s in hits], dtype=np.float32))

    def _cut_file(self, kind: str, suffix: str) -> Path:
        """Where a cut's derived table is kept beside the index, named for the model and for the
        captions and concepts it was computed with (changing them names another file)."""
        texts = hashlib.blake2b("\n".join([*BACKGROUND_PROMPTS, *CONCEPTS]).encode(), digest_size=6).hexdigest()
        return self.root / "index" / f"model-{self.model_id}.{kind}-{texts}.{suffix}"

    def _cut_stats(self, ids: np.ndarray = np.zeros(0, np.int64)) -> PhotoStats:
        """Every photo's generic-caption and concept scores (search_cut.PhotoStats), with these ids in it.

        Loaded from beside the index, else computed for the whole library and saved there; photos
        indexed since are scored when first met.
        """
        if self._stats is None:
            path = self._cut_file("cut", "npy")
            self._stats = PhotoStats.load(path, len(CONCEPTS))
            if self._stats is None:
                every = self.index.id_array()
                self._stats = PhotoStats.of(every, self.index.vectors(every.tolist()) if len(every) else
                                            np.zeros((0, self.embedder.dim)), self._cut_bank())
                self._keep("cut", self._stats.save, path)
        new = self._stats.missing(ids)
        if len(new):
            self._stats = self._stats.merged(PhotoStats.of(new, self.index.vectors(new.tolist()), self._cut_bank()))
        return self._stats

    def _keep(self, kind: str, save: Callable[[Path], None], path: Path) -> None:
        """Save a cut's derived table (`_cut_file(kind, …)`) if the library can be written (else
        it is only computed again next time), in place of the ones of other captions or versions."""
        try:
            private_dir(path.parent)
            save(path)
            for old in path.parent.glob(f"model-{self.model_id}.{kind}[.-]*"):
                if old != path and ".tmp." not in old.name:
                    old.unlink(missing_ok=True)
        except OSError:
            pass

    def _cut_bank(self) -> Bank:
        """The generic captions and everyday concepts as this model's vectors: encoded once, kept beside the index."""
        if self._bank is None:
            path = self.root / "index" / f"model-{self.model_id}.bank.npz"
            texts = [*BACKGROUND_PROMPTS, *CONCEPTS]
            try:
                with np.load(path) as saved:
                    stored = saved["texts"].tolist() == texts and saved["vectors"].shape == (len(texts), self.embedder.dim)
                    vectors = saved["vectors"] if stored else None
            except (OSError, KeyError, ValueError):
                vectors = None
            if vectors is None:
                vectors = np.stack([self.embedder.encode_query(t, ("{}",)) for t in BACKGROUND_PROMPTS]
                                   + [self.embedder.encode_query(t) for t in CONCEPTS])
                path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    np.savez(path, texts=np.array(texts), vectors=vectors)
                except OSError:
                    pass   # a derived cache: without it the bank is only encoded again next time
            self._bank = Bank.of(vectors[:len(BACKGROUND_PROMPTS)], vectors[len(BACKGROUND_PROMPTS):])
        return self._bank

    def _cut_sample(self) -> LibrarySample:
        """The library sample the cut estimates distributions on; drawn again once the library
        changed a lot, and kept beside the index for the next process until then."""
        size = len(self.index)
        if self._sample is None or self._sample.stale(size):
            index = self.index
            ids = index.id_array()
            stats = self._cut_stats(ids)
            path = self._cut_file("sample", "npz")
            kept = None if self._sample is not None else \
                LibrarySample.load(path, index.vectors, lambda wanted: np.isin(wanted, ids), stats)
            if kept is not None and not kept.stale(size):
                self._sample = kept
            else:
                self._sample = LibrarySample.draw(ids, index.vectors, size, stats)
                self._keep("sample", self._sample.save, path)
        return self._sample

    def _results(self, hits: list[tuple[int, float]], folder: str | os.PathLike[str] | None,
                 texts: dict[int, TextMatch], matching: set[int] = frozenset()) -> list[SearchResult]:
        """Ranked (content id, score) as results: one per file within the folder, one per shot,
        each saying whether it matches and which lines of its text hold the query's words."""
        folder_raw = folder_prefix(encode_path(Path(folder).expanduser().resolve())) if folder else None
        photos = self.catalog.photos_by_content(cid for cid, _ in hits)
        results: list[SearchResult] = []
        for cid, score in hits:
            lines = texts[cid].lines if cid in texts else ()
            for photo in photos.get(cid, []):
                if folder_raw is not None and not encode_path(photo.path).startswith(folder_raw):
                    continue
                results.append(SearchResult(photo.path, score, photo, match=cid in matching, text=lines))
        return self._one_per_shot(results)

    def _one_per_shot(self, results: list[SearchResult]) -> list[SearchResult]:
        """A RAW and its JPEG are one photo: one result, the primary file listing the others.

        The shot ranks where its best-matching file ranks (results come best first).
        """
        shots = self.catalog.shot_files(r.photo.id for r in results)
        out: list[SearchResult] = []
        shown: set[int] = set()
        for result in results:
            files = shots.get(result.photo.id)
            if files is None:
                out.append(result)
            elif files[0].id not in shown:
                shown.add(files[0].id)
                out.append(SearchResult(files[0].path, result.score, files[0], tuple(f.path for f in files[1:]),
                                        result.match, result.text))
        return out

    def _query_vector(self, text: str | None, image: str | os.PathLike[str] | None) -> tuple[np.ndarray, set[int]]:
        """The unit query vector, and the content ids to leave out (the query picture itself)."""
        parts, exclude = [], set()
        if text:
            parts.append(self.embedder.encode_query(text))
        if image is not None:
            photo = self.catalog.photo_by_path(image)
            if photo is not None and photo.content_id in self.index.ids():
                parts.append(self.index.vectors([photo.content_id])[0])
                exclude.add(photo.content_id)
                # Its RAW (or JPEG) companion is the same picture, not a similar one.
                exclude.update(f.content_id for f in self.catalog.shot_files([photo.id]).get(photo.id, []))
            else:
                from clipphotos.loader import load_image
                loaded = load_image(Path(image), target=self.embedder.decode_size)
                parts.append(self.embedder.encode_images([loaded.image])[0])
        vec = np.mean(parts, axis=0)
        return vec / max(float(np.linalg.norm(vec)), 1e-12), exclude

    # -- reporting -----------------------------------------------------------------------

    def status(self) -> dict:
        from clipphotos.scanner import mounts_away, offline_reason
        from clipphotos.watch_state import watch_status
        counts = self.catalog.folder_counts()
        skipped = self.catalog.skipped()
        stored = self.settings.model_json
        folders = self.folders()
        backend, precision, precision_reason, measured = self.inference()
        return {
            "library": str(self.root),
            "photos": self.catalog.photo_count(),
            "skipped": len(skipped),
            "folders": [path for _, path, _ in folders],
            "folder_details": [{"path": path, "photos": counts.get(fid, 0), "follow_links": follow,
                                "online": offline_reason(path, counts.get(fid, 0) > 0) is None,
                                "away": sorted(os.fsdecode(m) for m in mounts_away(self.catalog.mount_points(fid)))}
                               for fid, path, follow in folders],
            "model": ModelSpec.from_json(stored).describe() if stored else None,
            "model_key": self.settings.model_key,
            "precision": precision, "precision_reason": precision_reason,
            "backend": backend, "precision_measured": measured,
            "skipped_files": [{"path": p, "reason": r} for p, r in skipped],
            "text": self._text_status(),
            **watch_status(self.catalog),
        }


@dataclass
class RebuiltCatalog:
    set_aside: list[str]                 # the damaged catalog's files, kept under new names
    salvaged: dict[str, int]             # what could still be read of it, by kind
    reviews_restored: int
    index: IndexReport

    def to_json(self) -> dict:
        return {"set_aside": self.set_aside, "salvaged": self.salvaged, "reviews_restored": self.reviews_restored,
                "index": self.index.to_json()}


def rebuild_catalog(root: str | os.PathLike[str] | None = None, model: ModelSpec | None = None,
                    device: str | None = None, on_progress: Callable[[Progress], None] = lambda p: None
                    ) -> RebuiltCatalog:
    """Start a fresh catalog in place of a damaged one, keeping what can still be read of it.

    The damaged files are set aside (renamed, never deleted); the folders, excluded folders,
    model, labels, tag answers and "not duplicates" marks that can still be read are carried
    over, and the folders are indexed again (photos, dates and vectors all come from the files).
    """
    where = Path(root).expanduser().resolve() if root else default_library_dir()
    catalog = where / CATALOG_NAME
    from filelock import FileLock, Timeout

    from clipphotos.indexer import IndexReport
    lock = FileLock(str(where / "writer.lock"), mode=0o600)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise LibraryBusy(f"another ClipPhotos process is using {where}; stop it first") from None
    try:
        found = salvage_catalog(catalog)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        set_aside = []
        for suffix in ("", "-wal", "-shm"):
            part = catalog.with_name(catalog.name + suffix)
            if part.exists():
                kept = part.with_name(f"{catalog.name}.damaged-{stamp}{suffix}")
                os.replace(part, kept)
                set_aside.append(str(kept))
        fresh = Catalog(catalog)
        try:
            fresh.restore_salvage(found)
        finally:
            fresh.close()
    finally:
        lock.release()
    with Library(where, model=model, device=device) as lib:
        report = lib.index_folders(on_progress=on_progress) if lib.folders() else IndexReport()
        restored = lib.catalog.restore_reviews(found["reviews"])
    salvaged = {"folders": len(found["folders"]), "labels": len(found["labels"]), "tag_answers": len(found["reviews"]),
                "not_duplicates": len(found["distinct_contents"]) + len(found["distinct_copies"]),
                "model": int(any(k == "model" for k, _ in found["settings"]))}
    return RebuiltCatalog(set_aside, salvaged, restored, report)


def _certainly_gone(path: str) -> bool:
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False   # cannot be looked at now: not evidence that it is gone
    return False


def _date_bound(value: str | date | None, end: bool = False) -> str | None:
    """An ISO bound for taken_at; an end date includes its whole day."""
    if value is None:
        return None
    day = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    if end:
        day = day + timedelta(days=1)
    return day.isoformat()
