"""`Library`: the one door to a photo library, used alike by the CLI and the GUI.

A library is a folder (the platform's user data folder unless told otherwise) holding the
catalog, the derived vector index and caches. It remembers the model it was indexed with, so
later commands use it without being told; indexing with another model re-embeds the library
and then frees the old vectors.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from clipphotos.catalog import Catalog, PhotoRecord, encode_path, folder_prefix
from clipphotos.cleanup import CleanupReport, EmptyReport, RestoreReport, empty_holding, hold_others, move_others, \
    undo_cleanup
from clipphotos.duplicates import DuplicateGroup, MoveReport, fill_missing_signals, find_duplicates, mark_not_duplicates
from clipphotos.embedder import Embedder
from clipphotos.indexer import Indexer, IndexReport, Progress
from clipphotos.loader import load_image
from clipphotos.tags import Labels
from clipphotos.inference import Model, open_model, planned
from clipphotos.models import ModelSpec, ModelUnavailable, gpu_possible, pick_device, plan_precision, requested_precision
from clipphotos.thumbnails import ThumbnailCache
from clipphotos.vector_index import VectorIndex
from clipphotos.watch_state import live_watcher, watch_status

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

    def to_json(self) -> dict:
        return {"path": self.path, "score": round(self.score, 4), "taken_at": self.photo.taken_at,
                "width": self.photo.width, "height": self.photo.height, "companions": list(self.companions)}


class Library:
    """A photo library: its folders, catalog, model, index, and what can be asked of it."""

    def __init__(self, root: str | os.PathLike[str] | None = None, model: ModelSpec | None = None,
                 device: str | None = None, workers: int | None = None, precision: str | None = None) -> None:
        self.root = Path(root).expanduser().resolve() if root else default_library_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(self.root / "catalog.sqlite3")
        self.requested_model = model
        self.requested_device = device
        self.requested_precision = precision
        """auto, fp32, bf16, fp16 or int8; None: $CLIPPHOTOS_PRECISION, else auto (see models.plan_precision)."""
        self.workers = workers
        self._loaded: Model | None = None
        self._embedder: Embedder | None = None
        self._index: VectorIndex | None = None
        self._model_id: int | None = None
        self._data_version: int | None = None
        self.thumbnails = ThumbnailCache(self.root / "thumbnails")

    def close(self) -> None:
        self.catalog.close()

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
            stored = self.catalog.get_setting("model")
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
        if device == "cpu" and spec.precision not in ("bf16", "fp16"):
            reason += "; measured against ONNX Runtime (fp32, int8) at the first load"
        return "torch" if device != "cpu" else "not measured yet", name, reason, {}

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._loaded = open_model(self.model_spec, self.root)
            self._embedder = Embedder(self._loaded)
            self._model_id = self.catalog.model_id(self._loaded.key, self._loaded.dim)
        return self._embedder

    @property
    def model_id(self) -> int:
        _ = self.embedder
        assert self._model_id is not None
        return self._model_id

    # -- vector index --------------------------------------------------------------------

    def _index_path(self) -> Path:
        return self.root / "index" / f"model-{self.model_id}.hnsw"

    @property
    def index(self) -> VectorIndex:
        """The model's vector index: loaded if intact, rebuilt from the catalog if not, then synced."""
        if self._index is None:
            dim = self.embedder.dim
            checksum = self.catalog.get_setting(f"index.{self.model_id}.checksum")
            index = VectorIndex.load(self._index_path(), dim, checksum)
            if index is None:
                ids, vecs = self.catalog.vectors(self.model_id)
                index = VectorIndex.build(dim, ids, vecs)
            else:
                self._sync_index(index)
            self._index = index
        return self._index

    def _sync_index(self, index: VectorIndex) -> None:
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
        checksum = self.index.save(self._index_path())
        self.catalog.set_setting(f"index.{self.model_id}.checksum", checksum)

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
        self.save_index()
        return len(self._index)

    def vanished_files(self) -> list[str]:
        """Catalogued photos whose file is gone, in folders that are online (an unplugged drive is not 'gone')."""
        online = [(fid, path) for fid, path, _ in self.folders() if os.path.isdir(path)]
        return [p.path for fid, _ in online for p in self.catalog.photos_in_folder(fid)
                if not os.path.lexists(p.path)]

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
        removed = self.catalog.remove_folder(Path(path).expanduser().resolve())
        if removed and self._index is not None:
            self._sync_index(self._index)
            self.save_index()
        return removed

    def folders(self) -> list[tuple[int, str, bool]]:
        return self.catalog.folders()

    # -- indexing ------------------------------------------------------------------------

    def writer_lock(self) -> FileLock:
        return FileLock(str(self.root / "writer.lock"))

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the library's single-writer lock, or raise LibraryBusy at once if another process has it."""
        lock = self.writer_lock()
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
                      settle_seconds: float | None = None, save: bool = True) -> IndexReport:
        """Add the folders (if any) and bring the whole library up to date.

        `only` limits the run to some paths (the watcher's events), folders meaning everything
        below them; `indexer_hook` receives the indexer before it starts, so a GUI can pause or
        stop it. Files modified in the last `settle_seconds` may still be being copied: they are
        left for later (`report.deferred`). `save=False` leaves the index file for a later
        `save_index()` (the catalog has everything; a watcher saves now and then, not each run).
        """
        with self.writing():
            for folder in folders:
                self.add_folder(folder)
            embedder, model_id, index = self.embedder, self.model_id, self.index
            assert self._loaded is not None
            indexer = Indexer(self.catalog, embedder, index, model_id, workers=self.workers,
                              on_decoded=self.thumbnails.from_decoded)
            if indexer_hook is not None:
                indexer_hook(indexer)
            settled_before = None if settle_seconds is None else time.time_ns() - int(settle_seconds * 1e9)
            report = indexer.run(self.folders(), only=only, on_progress=on_progress,
                                 excluded=self.excluded_folders(), settled_before_ns=settled_before)
            if save:
                self.save_index()
            if not report.stopped and self.catalog.contents_without_vector(model_id) == 0:
                # Everything is embedded with this model now: make it the library's model.
                self.catalog.set_setting("model", replace(self._loaded.spec, device="auto", precision="auto").to_json())
                self.catalog.set_setting("model.key", self._loaded.key)
                self.catalog.drop_other_models(model_id)
            if not report.stopped:
                self.labels.tag_new_contents()   # new photos get the user's labels right away
            return report

    def _busy_message(self) -> str:
        watcher = live_watcher(self.catalog)
        if watcher is not None and watcher.get("indexing"):
            return (f"`clipphotos watch` (pid {watcher['pid']}) is indexing {self.root} right now and keeps "
                    f"it up to date by itself; try again when it is done, or stop the watcher first")
        return f"another ClipPhotos process is indexing {self.root}; try again when it is done"

    def excluded_folders(self) -> frozenset[bytes]:
        """Folders indexing never enters: the user's exclusions and the library's own folder
        (its thumbnails are not photos, even when the library sits inside a photo folder)."""
        raw = self.catalog.get_setting("excluded_folders")
        user = {encode_path(p) for p in raw.split("\n") if p} if raw else set()
        return frozenset(user | {encode_path(self.root)})

    def set_excluded_folders(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        """Folders (inside library folders) that indexing skips; their photos leave on the next run."""
        self.catalog.set_setting("excluded_folders", "\n".join(os.fspath(p) for p in paths) or None)

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
        fill_missing_signals(self.catalog, on_progress)
        return find_duplicates(self.catalog, tiers, on_stage)

    def trash_duplicates(self, groups: Iterable[DuplicateGroup], source: str = "app") -> CleanupReport:
        """Move all but each exact/near group's keep to the trash, undoably (similar shots are left alone).

        The files wait in a holding folder (clipphotos.cleanup) until `empty_holding` sends them
        on to the system trash; `undo_cleanup` puts them back with their vectors and tags.
        """
        return hold_others(self, groups, source)

    def undo_cleanup(self, cleanup: int | None = None, source: str | None = None) -> RestoreReport:
        """Put a clean-up's files back where they were and in the library (the latest, unless told)."""
        return undo_cleanup(self, cleanup, source)

    def cleanups(self, source: str | None = None) -> list[tuple[int, float, str, int, int]]:
        """(id, made_at, source, files, bytes) of the clean-ups that can still be undone, newest first."""
        return self.catalog.cleanups(source)

    def empty_holding(self, older_than_days: float | None = None) -> EmptyReport:
        """Send held clean-ups (all, or the older ones) on to the system trash: no undo after that."""
        return empty_holding(self, older_than_days)

    def move_duplicates(self, groups: Iterable[DuplicateGroup], dest: str | os.PathLike[str]) -> MoveReport:
        """Move all but each exact/near group's keep into a folder; the catalog follows them."""
        return move_others(self, groups, dest)

    def mark_not_duplicates(self, paths: Sequence[str | os.PathLike[str]]) -> int:
        """Never group these files together again (stored in the catalog); returns the pairs stored."""
        return mark_not_duplicates(self.catalog, paths)

    # -- tags ----------------------------------------------------------------------------

    @property
    def labels(self) -> Labels:
        """The user's labels: define, decide, review and export tags (see clipphotos.tags)."""
        return Labels(self)

    # -- search --------------------------------------------------------------------------

    def search(self, text: str | None = None, *, image: str | os.PathLike[str] | None = None,
               negative: Sequence[str] = (), folder: str | os.PathLike[str] | None = None,
               since: str | date | None = None, until: str | date | None = None,
               tag: str | None = None, limit: int = 20) -> list[SearchResult]:
        """Photos ranked by similarity to a description and/or a picture, best first.

        Scores are cosine similarities to the (prompt-ensembled) query, so they compare across
        queries. `negative` terms push their matches down; folder and date filters narrow the
        candidates before ranking; `until` is inclusive. `tag` keeps the photos a label applies to.
        """
        if self.catalog.photo_count() == 0 or (not text and image is None):
            return []
        query, exclude = self._query_vector(text, image)
        for term in negative:
            query = query - NEGATIVE_WEIGHT * self.embedder.encode_query(term)
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        allowed = None
        folder_raw = folder_prefix(encode_path(Path(folder).expanduser().resolve())) if folder else None
        if folder is not None or since is not None or until is not None:
            allowed = self.catalog.filtered_content_ids(
                str(Path(folder).expanduser().resolve()) if folder else None,
                _date_bound(since), _date_bound(until, end=True))
            if not allowed:
                return []
        if tag is not None:
            tagged = self.catalog.content_ids_with_tag(tag)
            allowed = tagged if allowed is None else allowed & tagged
            if not allowed:
                return []
        want = limit + len(exclude)
        hits = self.index.search(query, max(want * 2, want + 10), allowed)
        hits = [(cid, s) for cid, s in hits if cid not in exclude]
        photos = self.catalog.photos_by_content(cid for cid, _ in hits)
        results: list[SearchResult] = []
        for cid, score in hits:
            for photo in photos.get(cid, []):
                if folder_raw is not None and not encode_path(photo.path).startswith(folder_raw):
                    continue
                results.append(SearchResult(photo.path, score, photo))
        return self._one_per_shot(results)[:limit]

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
                out.append(SearchResult(files[0].path, result.score, files[0], tuple(f.path for f in files[1:])))
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
                loaded = load_image(Path(image), target=self.embedder.decode_size)
                parts.append(self.embedder.encode_images([loaded.image])[0])
        vec = np.mean(parts, axis=0)
        return vec / max(float(np.linalg.norm(vec)), 1e-12), exclude

    # -- reporting -----------------------------------------------------------------------

    def status(self) -> dict:
        counts = self.catalog.folder_counts()
        skipped = self.catalog.skipped()
        stored = self.catalog.get_setting("model")
        folders = self.folders()
        backend, precision, precision_reason, measured = self.inference()
        return {
            "library": str(self.root),
            "photos": self.catalog.photo_count(),
            "skipped": len(skipped),
            "folders": [path for _, path, _ in folders],
            "folder_details": [{"path": path, "photos": counts.get(fid, 0), "follow_links": follow,
                                "online": os.path.isdir(path)} for fid, path, follow in folders],
            "model": ModelSpec.from_json(stored).describe() if stored else None,
            "model_key": self.catalog.get_setting("model.key"),
            "precision": precision, "precision_reason": precision_reason,
            "backend": backend, "precision_measured": measured,
            "skipped_files": [{"path": p, "reason": r} for p, r in skipped],
            **watch_status(self.catalog),
        }


def _date_bound(value: str | date | None, end: bool = False) -> str | None:
    """An ISO bound for taken_at; an end date includes its whole day."""
    if value is None:
        return None
    day = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    if end:
        day = day + timedelta(days=1)
    return day.isoformat()
