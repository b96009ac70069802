"""Bring the catalog in line with the folders: the indexing pipeline.

A scan lists the files; anything whose size and modification time are unchanged is left alone.
Every other file is read once: its bytes are hashed (so a moved file or a byte-identical copy
reuses the vector it already has) and, only when the content is new, decoded once into the
model's input, its perceptual hash and its thumbnail. Decoding runs in worker threads (Pillow
releases the GIL) while the model embeds earlier batches, so the model does not wait for pictures.

Decoding and encoding never fight over the cores (`CoreTurns`): a decode holds one core, an
encode as many as it runs threads, and nothing starts without its cores. On a CPU with ONNX
Runtime, one encode per core runs side by side, each on one thread (`plan_encoders`): no
barrier inside a run waits for a thread the decoders took, and a core an encode leaves goes to
the next decode at once. Torch on a CPU encodes on all cores while the decoders wait; a GPU
leaves every core to decoding.

Each batch is committed in one transaction: a kill at any moment loses at most the batch in
flight, and the next run picks up exactly where this one stopped.
"""
from __future__ import annotations

import os
import stat
import threading
import time
from collections import deque
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clipphotos.catalog import Catalog, ContentInfo, content_hash, decode_path, folder_prefix
from clipphotos.embedder import Embedder
from clipphotos.fingerprint import fingerprints
from clipphotos.loader import UnreadableImage, is_supported, load_image
from clipphotos.preprocess import fit
from clipphotos.raw import is_raw_path
from clipphotos.scanner import ScannedFile, is_ignored_name, mounts_away, offline_reason, scan_folder
from clipphotos.vector_index import VectorIndex

BATCH_SIZE = 8            # pictures per encode (each of the encodes side by side has its own)
MAX_LANES = 4             # encodes side by side at most: each holds a batch's activations in memory


@dataclass
class Progress:
    """What the CLI's progress bar and the GUI's status bar show."""

    phase: str                      # "scanning", "indexing", "finishing", "done"
    done: int = 0
    total: int = 0
    images_per_second: float = 0.0
    eta_seconds: float | None = None
    current: str = ""


@dataclass
class IndexReport:
    indexed: int = 0                # files added or updated in the catalog (new vectors or reused)
    embedded: int = 0               # pictures that went through the model
    unchanged: int = 0
    moved: int = 0
    removed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    offline_folders: list[str] = field(default_factory=list)
    seconds: float = 0.0
    stopped: bool = False
    deferred: list[bytes] = field(default_factory=list)  # still being written: left for a later run
    text: Any = None                # the text pass's TextReport, when it ran (clipphotos.text_pass)
    thumbnails_failed: int = 0      # thumbnails that could not be written (made again when shown)
    thumbnail_error: str | None = None

    def to_json(self) -> dict:
        return {"indexed": self.indexed, "embedded": self.embedded, "unchanged": self.unchanged,
                "moved": self.moved, "removed": self.removed,
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
                "offline_folders": self.offline_folders, "seconds": round(self.seconds, 3),
                "stopped": self.stopped, "text": self.text.to_json() if self.text is not None else None,
                "thumbnails_failed": self.thumbnails_failed, "thumbnail_error": self.thumbnail_error}


@dataclass
class _Item:
    """One candidate file after its worker is done with it."""

    file: ScannedFile
    folder_id: int
    hash: str | None = None
    reuse: int | None = None                 # content id whose vector this file can reuse
    info: ContentInfo | None = None
    tensor: np.ndarray | None = None         # the model's input, prepared by a decoding thread
    error: str | None = None


# The reason a file or folder that could not be read is skipped with. Such a skip is retried on
# every run: permissions and I/O errors heal without changing the file's size or time.
READ_ERROR = "cannot read: "


def is_read_error(reason: str) -> bool:
    """Whether a stored skip reason is a read error (retried every run), not a broken file."""
    return reason.startswith(READ_ERROR)


def default_workers() -> int:
    return max(2, min(8, os.cpu_count() or 2))


def usable_cores() -> int:
    """The cores this process may run on (a CPU affinity or container limit counts)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:   # not on Linux
        return max(1, os.cpu_count() or 1)


class CoreTurns:
    """The cores, handed out in turns so that decoding and encoding never fight over them.

    A decode holds one core, an encode as many as it runs threads (0 on a GPU). Two CPU-bound
    pools on the same cores would both lose: ONNX Runtime's and torch's threads meet at a
    barrier after every operator, so a thread that a decode took makes the others wait idle.
    A request for several cores goes before single ones, which could otherwise keep it waiting.
    """

    def __init__(self, cores: int) -> None:
        self.cores = max(1, cores)
        self._free = self.cores
        self._wide_waiting = 0
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, n: int = 1) -> Iterator[None]:
        n = min(n, self.cores)
        if n <= 0:
            yield
            return
        wide = int(n > 1)
        with self._changed:
            self._wide_waiting += wide
            try:
                self._changed.wait_for(lambda: self._free >= n and (wide or not self._wide_waiting))
            finally:
                self._wide_waiting -= wide
            self._free -= n
        try:
            yield
        finally:
            with self._changed:
                self._free += n
                self._changed.notify_all()


@dataclass(frozen=True)
class EncoderPlan:
    """How the model runs during indexing on this machine's cores."""

    lanes: int              # encodes running at once
    cores_each: int         # cores one encode keeps busy (its turns; 0: a GPU does the work)
    side_by_side: bool      # encodes overlap (ONNX Runtime), rather than take turns on the model

    def describe(self) -> str:
        if not self.cores_each:
            return "encodes on the GPU; every core decodes"
        return (f"{self.lanes} encode{'s' if self.lanes > 1 else ''} at once on "
                f"{self.cores_each} core{'s' if self.cores_each > 1 else ''} each, decodes in between")


def plan_encoders(embedder: Embedder, cores: int) -> EncoderPlan:
    """One encode per core side by side where the model allows it (ONNX Runtime on a CPU: one
    thread per run is also its most efficient use of a core; at most MAX_LANES, the rest as
    threads of each); else one encode on all cores."""
    loaded: Any = embedder.loaded
    if getattr(loaded, "device_type", "cpu") != "cpu":
        return EncoderPlan(1, 0, False)
    if getattr(loaded, "backend", "") == "onnxruntime" and hasattr(loaded, "use_image_threads"):
        lanes = min(cores, MAX_LANES)
        threads = loaded.use_image_threads(max(1, cores // lanes))
        lanes = max(1, min(lanes, cores // max(1, threads)))   # an image session opened earlier keeps its threads
        return EncoderPlan(lanes, min(threads, cores), lanes > 1)
    import torch   # torch on a CPU: loaded already
    return EncoderPlan(1, min(cores, torch.get_num_threads()), False)


def _scan_only(root: bytes, paths: set[bytes], follow_links: bool, excluded: frozenset[bytes],
               on_error: Callable[[bytes, str], None] | None = None,
               on_mount: Callable[[bytes], None] | None = None) -> Iterator[ScannedFile]:
    """The picture files among `paths` inside `root`, folders standing for what is below them.

    What a full scan would leave out (hidden names, caches, excluded folders, other file types,
    links not to be followed) is left out here too, so a watcher's events cannot sneak it in.
    """
    yielded: set[bytes] = set()
    for path in sorted(paths):
        if not scan_reaches(root, path, excluded):
            continue
        try:
            st = os.stat(path, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode) and follow_links:
                st = os.stat(path)
        except OSError:
            continue  # gone: its catalog rows are dropped as vanished
        if stat.S_ISDIR(st.st_mode):
            found: Iterable[ScannedFile] = scan_folder(path, follow_links, excluded, on_error, on_mount)
        elif stat.S_ISREG(st.st_mode) and is_supported(path):
            found = [ScannedFile(path, st.st_size, st.st_mtime_ns)]
        else:
            continue
        for f in found:
            if f.path not in yielded:
                yielded.add(f.path)
                yield f


def scan_reaches(root: bytes, path: bytes, excluded: frozenset[bytes]) -> bool:
    """Whether a full scan of `root` would go down to `path`."""
    if path == root:
        return True
    prefix = folder_prefix(root)
    if not path.startswith(prefix):
        return False
    ancestor = prefix[:-1]
    for part in path[len(prefix):].split(os.sep.encode()):
        ancestor = ancestor + os.sep.encode() + part
        if is_ignored_name(part) or ancestor in excluded:
            return False
    return True


def _within(paths: Iterable[bytes], roots: set[bytes]) -> set[bytes]:
    """The paths that are one of `roots` or lie below one of them."""
    ordered = sorted(paths)
    found = set(ordered) & roots
    for root in roots:
        prefix = folder_prefix(root)
        i = bisect_left(ordered, prefix)
        while i < len(ordered) and ordered[i].startswith(prefix):
            found.add(ordered[i])
            i += 1
    return found


class Indexer:
    """One indexing run over some of the library's folders."""

    def __init__(self, catalog: Catalog, embedder: Embedder, index: VectorIndex, model_id: int,
                 workers: int | None = None, batch_size: int = BATCH_SIZE,
                 on_decoded: Callable[[str, object, Any], None] | None = None, cores: int | None = None) -> None:
        self.catalog = catalog
        self.embedder = embedder
        self.index = index
        self.model_id = model_id
        self.workers = workers or default_workers()
        self.batch_size = batch_size
        self.turns = CoreTurns(cores or usable_cores())
        self.plan: EncoderPlan | None = None   # decided when the run starts
        self.on_decoded = on_decoded      # e.g. the thumbnail cache, fed from the same decode
        self.pause = threading.Event()    # set = paused
        self.stop = threading.Event()     # set = finish the batch in flight and return
        self._claimed: set[str] = set()
        self._claim_lock = threading.Lock()

    # -- the run -------------------------------------------------------------------------

    def run(self, folders: Iterable[tuple[int, str, bool]], only: Iterable[bytes] | None = None,
            on_progress: Callable[[Progress], None] = lambda p: None,
            excluded: frozenset[bytes] = frozenset(),
            settled_before_ns: int | None = None) -> IndexReport:
        """Index the folders (id, path, follow_links).

        `only` limits the run to some paths: files, and folders meaning everything below them
        (a folder that is gone means its photos are gone). Files modified after
        `settled_before_ns` may still be being written: they are listed in `report.deferred`
        instead of being read half-written.
        """
        started = time.monotonic()
        report = IndexReport()
        on_progress(Progress("scanning"))
        candidates: list[tuple[int, ScannedFile]] = []
        vanished: list[bytes] = []
        only_set = set(only) if only is not None else None
        unreadable: dict[tuple[int, bytes], str] = {}   # (folder id, path) → why it could not be listed
        readable_again: list[bytes] = []
        for folder_id, root, follow in folders:
            raw_root = os.fsencode(root)
            known = self.catalog.known_files(folder_id, self.model_id)
            if offline_reason(raw_root, bool(known)) is not None:
                # An unplugged drive must not empty the library: keep its photos until it is back.
                report.offline_folders.append(root)
                continue
            skips = self.catalog.known_skips(folder_id)
            seen: set[bytes] = set()
            blind: set[bytes] = set()   # subfolders (or entries) that could not be read this time
            # Another drive mounted inside the folder, away now: its photos stay until it is back.
            known_mounts = self.catalog.mount_points(folder_id)
            away = mounts_away(known_mounts)
            blind |= away
            report.offline_folders += sorted(os.fsdecode(m) for m in away)
            mounts: set[bytes] = set()

            def on_error(path: bytes, reason: str, folder_id: int = folder_id, blind: set[bytes] = blind) -> None:
                blind.add(path)
                unreadable[folder_id, path] = reason
            skipping = excluded | away
            files = scan_folder(raw_root, follow, skipping, on_error, mounts.add) if only_set is None else _scan_only(
                raw_root, only_set, follow, skipping, on_error, mounts.add)
            for f in files:
                seen.add(f.path)
                if settled_before_ns is not None and f.mtime_ns > settled_before_ns:
                    report.deferred.append(f.path)
                    continue
                old = known.get(f.path)
                if old is not None and old == (f.size, f.mtime_ns, True):
                    report.unchanged += 1
                    if f.path in skips:
                        readable_again.append(f.path)   # was behind an unreadable folder last time
                    continue
                skip = skips.get(f.path)
                if old is None and skip is not None and skip[:2] == (f.size, f.mtime_ns) \
                        and not is_read_error(skip[2]):
                    continue  # still the same broken file; listed below with its reason
                candidates.append((folder_id, f))
            # Mount points met for the first time are remembered; one a full scan passed as a plain
            # folder (not away, yet on the device of its parent) holds files of its own: trusted now.
            dropped = known_mounts - mounts - away if only_set is None else set()
            if mounts - known_mounts or dropped:
                self.catalog.remember_mount_points(folder_id, mounts - known_mounts, dropped)
            scope = known.keys() | skips.keys()
            if only_set is not None:
                scope = _within(scope, only_set)
            # What an unreadable subfolder held is unknown, not gone: its photos stay.
            hidden = _within(scope, blind)
            vanished += [p for p in scope if p not in seen and p not in hidden]
        vanished_contents = self._contents_of(vanished)
        total = len(candidates)
        on_progress(Progress("indexing", 0, total))

        done = 0
        rate_window: deque[tuple[float, int]] = deque(maxlen=32)
        rate_window.append((time.monotonic(), 0))
        plan = self.plan = plan_encoders(self.embedder, self.turns.cores)
        encode_fn = self.embedder.encode_side_by_side if plan.side_by_side else self.embedder.encode_batch
        batch: list[_Item] = []
        settled: list[_Item] = []          # reused or broken: written with the next commit
        waiting: list[_Item] = []          # copies of a content another worker is embedding
        encoding: deque[tuple[list[_Item], Future[np.ndarray]]] = deque()   # oldest first

        def encode(items: list[_Item]) -> np.ndarray:
            pixels = np.stack([i.tensor for i in items])
            with self.turns.hold(plan.cores_each):
                return encode_fn(pixels)

        def commit(items: list[_Item], vectors: np.ndarray | None) -> None:
            """Write an encoded batch and what settled meanwhile, in one transaction."""
            nonlocal settled, waiting
            new_ids, new_vecs = [], []
            with self.catalog.transaction() as db:
                for n, item in enumerate(items):
                    assert vectors is not None
                    cid = self.catalog.upsert_content(db, item.info)
                    self.catalog.put_vector(db, cid, self.model_id, vectors[n])
                    self.catalog.put_photo(db, item.file.path, item.folder_id, cid, item.file.size, item.file.mtime_ns)
                    new_ids.append(cid)
                    new_vecs.append(vectors[n])
                    report.indexed += 1
                    report.embedded += 1
                for item in settled:
                    if item.error is not None:
                        self.catalog.put_skip(db, item.file.path, item.folder_id, item.file.size,
                                              item.file.mtime_ns, item.error)
                    else:
                        self._count_move(item, vanished_contents, report)
                        self.catalog.put_photo(db, item.file.path, item.folder_id, item.reuse,
                                               item.file.size, item.file.mtime_ns)
                        report.indexed += 1
            if new_ids:
                self.index.add(np.asarray(new_ids, dtype=np.int64), np.stack(new_vecs))
            for item in items:
                self._release(item.hash)
            settled = []
            # Copies whose content has now been committed can be attached without decoding.
            still = []
            for item in waiting:
                found = self.catalog.content_by_hash([item.hash], self.model_id).get(item.hash)
                if found and found[1]:
                    item.reuse = found[0]
                    settled.append(item)
                else:
                    still.append(item)
            waiting = still

        def send(parts: int = 1) -> None:
            """Hand the batch to the encoders (in `parts`, to share a last batch among them)."""
            nonlocal batch
            size = -(-len(batch) // max(1, parts))
            for start in range(0, len(batch), size or 1):
                items = batch[start:start + size]
                encoding.append((items, encoders.submit(encode, items)))
            batch = []

        def finish_oldest() -> None:
            items, vectors = encoding.popleft()
            commit(items, vectors.result())

        def finish_all() -> None:
            send(plan.lanes)
            while encoding:
                finish_oldest()
            commit([], None)
            commit([], None)  # copies resolved by the first commit are written by the second

        with ThreadPoolExecutor(self.workers, thread_name_prefix="decode") as pool, \
                ThreadPoolExecutor(plan.lanes, thread_name_prefix="encode") as encoders:
            pending: deque[Future[_Item]] = deque()
            queue = iter(candidates)
            lookahead = self.batch_size * (plan.lanes + 2)
            exhausted = False
            while True:
                while not exhausted and len(pending) < lookahead and not self.stop.is_set():
                    nxt = next(queue, None)
                    if nxt is None:
                        exhausted = True
                        break
                    pending.append(pool.submit(self._prepare, *nxt))
                if not pending:
                    break
                item = pending.popleft().result()
                done += 1
                if item.error is not None or item.reuse is not None:
                    settled.append(item)
                elif item.tensor is None:
                    waiting.append(item)
                else:
                    batch.append(item)
                if len(batch) >= self.batch_size:
                    send()
                # One batch more than encoders waits its turn, so that no encoder idles meanwhile.
                while len(encoding) > plan.lanes:
                    finish_oldest()
                if len(settled) >= 256:
                    commit([], None)
                now = time.monotonic()
                rate_window.append((now, done))
                t0, n0 = rate_window[0]
                rate = (rate_window[-1][1] - n0) / (now - t0) if now > t0 else 0.0
                on_progress(Progress("indexing", done, total, rate,
                                     (total - done) / rate if rate > 0 else None, decode_path(item.file.path)))
                while self.pause.is_set() and not self.stop.is_set():
                    time.sleep(0.1)
            for fut in pending:
                fut.cancel()
            finish_all()
            if waiting:  # copies whose twin failed to decode: each decodes on its own
                for item in waiting:
                    self._release(item.hash)
                    retry = self._prepare(item.folder_id, item.file)
                    (batch if retry.tensor is not None else settled).append(retry)
                waiting = []
                finish_all()
        report.stopped = self.stop.is_set()
        on_progress(Progress("finishing", done, total))
        if not report.stopped:
            report.removed = self._forget(vanished) - report.moved
        self._drop_orphans()
        self._record_unreadable(unreadable, readable_again)
        report.skipped = self._skips_in([f for f, *_ in folders])
        report.seconds = time.monotonic() - started
        on_progress(Progress("done", done, total))
        return report

    # -- pieces --------------------------------------------------------------------------

    def _contents_of(self, paths: list[bytes]) -> dict[int, int]:
        """content id → how many of the vanished paths held it (to tell moves from removals)."""
        return self.catalog.content_counts_of_paths(paths)

    @staticmethod
    def _count_move(item: _Item, vanished_contents: dict[int, int], report: IndexReport) -> None:
        left = vanished_contents.get(item.reuse or -1, 0)
        if left > 0:
            vanished_contents[item.reuse] = left - 1  # type: ignore[index]
            report.moved += 1
            report.indexed -= 1  # counted as moved, not as indexed

    def _claim(self, digest: str) -> bool:
        """True if this worker is the one to decode the content; False if another already is."""
        with self._claim_lock:
            if digest in self._claimed:
                return False
            self._claimed.add(digest)
            return True

    def _release(self, digest: str | None) -> None:
        with self._claim_lock:
            if digest is not None:
                self._claimed.discard(digest)

    def _prepare(self, folder_id: int, f: ScannedFile) -> _Item:
        """Worker: read, hash and (for new content) decode one file into the model's input.

        Only the hashing and the decoding hold a core (`CoreTurns`). The read may wait on a disk,
        and the catalog lookup on the batch the main thread is committing: a worker waiting with a
        core held would leave that core idle, since no other work may take it meanwhile."""
        item = _Item(f, folder_id)
        try:
            with open(f.path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            item.error = f"{READ_ERROR}{exc.strerror or exc}"
            return item
        if not data:
            item.error = "empty file"
            return item
        with self.turns.hold(1):
            item.hash = content_hash(data)
        known = self.catalog.content_by_hash([item.hash], self.model_id).get(item.hash)
        if known and known[1]:
            item.reuse = known[0]
            return item
        if not self._claim(item.hash):
            return item  # a byte-identical copy is being decoded by another worker
        with self.turns.hold(1):
            return self._decode(item, data)

    def _decode(self, item: _Item, data: bytes) -> _Item:
        """Worker, holding a core: decode new content into the model's input, its fingerprints
        and its thumbnail."""
        f = item.file
        try:
            # A RAW file goes to its decoder process by path, which is cheaper than its bytes.
            source = decode_path(f.path) if is_raw_path(f.path) else data
            loaded = load_image(source, target=self.embedder.decode_size)
            # Shrunk once: the model's input pads this picture, and the thumbnail is made from it.
            reduced = fit(loaded.image, self.embedder.loaded.image_size)
            item.tensor = self.embedder.prepare(reduced)
            item.info = ContentInfo(item.hash, len(data), loaded.width, loaded.height, loaded.format,
                                    loaded.taken_at, loaded.camera, loaded.orientation,
                                    *fingerprints(loaded.image, reduced))
            if self.on_decoded is not None:
                self.on_decoded(item.hash, loaded, reduced)
        except UnreadableImage as exc:
            item.error = str(exc) or "unreadable image"
        except Exception as exc:  # a decoder bug must cost one file, never the run
            item.error = f"could not be decoded ({type(exc).__name__}: {exc})"
        if item.error is not None:
            self._release(item.hash)
        return item

    def _forget(self, vanished: list[bytes]) -> int:
        """Drop the catalog rows of files that are gone; returns how many photos were dropped."""
        if not vanished:
            return 0
        photos = self.catalog.photo_paths_among(vanished)
        with self.catalog.transaction() as db:
            self.catalog.forget_paths(db, vanished)
        return len(photos)

    def _drop_orphans(self) -> None:
        """Contents no file holds any more (deleted, or edited in place) leave catalog and index."""
        self.index.remove(self.catalog.drop_orphan_contents())

    def _record_unreadable(self, unreadable: dict[tuple[int, bytes], str], readable_again: list[bytes]) -> None:
        """Subfolders that could not be listed are skipped with their reason (`status` lists them)
        and looked at again on the next run; once readable, the entry goes like any vanished skip."""
        if not unreadable and not readable_again:
            return
        with self.catalog.transaction() as db:
            self.catalog.drop_skips(db, readable_again)
            for (folder_id, path), reason in unreadable.items():
                self.catalog.put_unreadable(db, path, folder_id, f"{READ_ERROR}{reason}")

    def _skips_in(self, folder_ids: list[int]) -> list[tuple[str, str]]:
        return self.catalog.skipped(folder_ids)
