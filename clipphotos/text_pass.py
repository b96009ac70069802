"""The text pass: once photos have their vectors, read the words in them (clipphotos.text_reader).

It comes second and yields first: `clipphotos index` runs it after the model's pass, the watcher
and the app run it only while no file waits to be indexed (`should_yield`). It is incremental
and resumable: each content's lines are committed with its "read" mark in one transaction, so a
kill loses at most the photo in flight, and the next run starts with the contents still unread.
Text belongs to a content (the bytes of a file), so moved and copied files keep it.

The gate looks at the library's thumbnail of the photo (made from the model's decode during
indexing, or by one small draft decode here, which the app's grid then reuses): no second full
decode of a camera JPEG. Only photos the gate passes are decoded again, at the reading size.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image

from clipphotos.catalog import Catalog
from clipphotos.indexer import Progress, default_workers
from clipphotos.loader import load_image
from clipphotos.text_reader import READ_SIDE, TextLine, TextReader, fold, reader_key, shared_reader
from clipphotos.thumbnails import ThumbnailCache

log = logging.getLogger(__name__)

PHASE = "reading text"
BATCH = 32


@dataclass
class TextReport:
    read: int = 0               # contents read this run
    with_text: int = 0          # of which some text was found in
    left: int = 0               # contents still unread when the run ended
    seconds: float = 0.0
    stopped: bool = False

    def to_json(self) -> dict:
        return {"read": self.read, "with_text": self.with_text, "left": self.left,
                "seconds": round(self.seconds, 3), "stopped": self.stopped}


class TextPass:
    """One run of the text pass over the contents not read yet."""

    def __init__(self, catalog: Catalog, thumbnails: ThumbnailCache,
                 reader: Callable[[], TextReader] = shared_reader, workers: int | None = None) -> None:
        self.catalog = catalog
        self.workers = workers or default_workers()
        self.thumbnails = thumbnails
        self._reader = reader
        self.stop = threading.Event()       # set = return after the photo in flight
        self.pause = threading.Event()      # set = wait
        self.should_yield: Callable[[], bool] = lambda: False   # e.g. new files wait to be indexed

    def run(self, on_progress: Callable[[Progress], None] = lambda p: None) -> TextReport:
        started = time.monotonic()
        report = TextReport()
        total = self.catalog.text_counts()[2]
        if total == 0:
            return report
        reader = self._reader()
        key = reader_key()
        on_progress(Progress(PHASE, 0, total))
        done = 0
        # Photos are read by `workers` threads (decoding and onnxruntime let go of the GIL) and
        # committed one by one in order; what is in flight when the pass stops is read next time.
        with ThreadPoolExecutor(self.workers, thread_name_prefix="text") as pool:
            pending: deque[tuple[int, str, Future[list[TextLine] | None]]] = deque()
            unread = self._unread()
            while True:
                while len(pending) < 2 * self.workers and not report.stopped:
                    nxt = next(unread, None)
                    if nxt is None:
                        break
                    content_id, digest, path = nxt
                    pending.append((content_id, path, pool.submit(self.read_content, reader, digest, path)))
                if not pending:
                    break
                content_id, path, future = pending.popleft()
                if report.stopped:
                    future.cancel()
                    continue
                lines = future.result()
                if lines is not None:
                    self.catalog.put_text(content_id, [(ln.text, fold(ln.text), ln.score, ln.box_json())
                                                       for ln in lines], key)
                    report.read += 1
                    report.with_text += bool(lines)
                done += 1
                on_progress(Progress(PHASE, done, total, current=path))
                while self.pause.is_set() and not self.stop.is_set():
                    time.sleep(0.1)
                report.stopped = self.stop.is_set() or self.should_yield()
        report.left = self.catalog.text_counts()[2]
        report.seconds = time.monotonic() - started
        on_progress(Progress("done", done, total))
        return report

    def _unread(self) -> Iterator[tuple[int, str, str]]:
        """The contents not read yet, by id, fetched a batch at a time."""
        after = 0
        while True:
            batch = self.catalog.contents_without_text(BATCH, after)
            if not batch:
                return
            yield from batch
            after = batch[-1][0]

    def read_content(self, reader: TextReader, digest: str, path: str) -> list[TextLine] | None:
        """The lines in one content's picture; None if its file cannot be read now (offline, gone),
        to be tried again by a later run."""
        try:
            with Image.open(self.thumbnails.ensure(digest, path)) as thumb:
                small = thumb.convert("RGB")
            if not reader.has_text(small):
                return []
            return reader.read(load_image(path, target=READ_SIDE).image)
        except Exception as exc:  # noqa: BLE001 - one photo's failure must never end the pass
            log.info("could not read the text in %s: %s", path, exc)
            return None
