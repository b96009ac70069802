"""Background work for the GUI: every slow call runs on a thread pool and answers with a signal.

The UI thread never decodes a picture, runs the model, or waits on the catalog for long: it
hands a plain function to a `Runner`, which runs it on one of its pool threads and delivers the
result (or the exception) back on the UI thread through a queued signal. Pixels cross threads
as QImage (safe off the UI thread); QPixmaps are made on the UI thread only.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage
from shiboken6 import isValid


class JobSignals(QObject):
    done = Signal(object)
    failed = Signal(object)      # the exception
    progress = Signal(object)


class Job(QRunnable):
    """One call of `fn` on a pool thread; its result or exception comes back as a signal."""

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        super().__init__()
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.signals = JobSignals()
        self.cancel = threading.Event()
        # The Runner keeps the job (and with it the signals object) alive until the answer has
        # been delivered: a queued signal whose sender is gone is silently dropped.
        self.setAutoDelete(False)

    def run(self) -> None:
        try:
            try:
                result = self.fn(*self.args, **self.kwargs)
            except BaseException as exc:  # noqa: BLE001 - every failure goes back to the UI
                self.signals.failed.emit(exc)
            else:
                self.signals.done.emit(result)
        except RuntimeError:
            pass  # the app quit while this job ran: nobody is left to tell


class Runner(QObject):
    """A small thread pool whose jobs answer on the UI thread.

    `submit(fn, ...)` runs fn(*args, **kwargs) on a pool thread. With `progress=True` the
    function also receives `progress=` (a thread-safe callable whose values arrive at
    `on_progress`), and with `cancellable=True` a `cancel=` threading.Event.
    """

    def __init__(self, threads: int, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(threads)
        self._live: set[Job] = set()
        self._closed = False
        # Sees every failure first; True means it was dealt with (the window's catalog-damage page).
        self.intercept: Callable[[BaseException], bool] | None = None

    def submit(self, fn: Callable[..., Any], *args: Any,
               on_done: Callable[[Any], None] | None = None,
               on_failed: Callable[[BaseException], None] | None = None,
               on_progress: Callable[[Any], None] | None = None,
               progress: bool = False, cancellable: bool = False, **kwargs: Any) -> Job:
        job = Job(fn, args, kwargs)
        if progress:
            kwargs["progress"] = job.signals.progress.emit
        if cancellable:
            kwargs["cancel"] = job.cancel
        if on_progress is not None:
            job.signals.progress.connect(lambda value: self._deliver(on_progress, value))
        job.signals.done.connect(lambda result: self._finish(job, on_done, result))
        job.signals.failed.connect(lambda exc: self._finish(job, on_failed, exc, failed=True))
        self._live.add(job)
        self.pool.start(job)
        return job

    def _answering(self) -> bool:
        """Whether answers still go to their callbacks: not after shutdown, nor once Qt has
        destroyed this runner with its owner (a view deleted while its jobs ran, whose answers
        would reach widgets that are gone)."""
        return not self._closed and isValid(self)

    def _deliver(self, callback: Callable[[Any], None], value: Any) -> None:
        if self._answering():
            callback(value)

    def _finish(self, job: Job, callback: Callable[[Any], None] | None, value: Any,
                failed: bool = False) -> None:
        self._live.discard(job)
        if not self._answering():
            return
        if failed and self.intercept is not None and self.intercept(value):
            return
        if callback is not None:
            callback(value)
        elif failed:
            raise value  # nobody asked for this failure: let Qt's excepthook report it

    @property
    def busy(self) -> bool:
        return bool(self._live)

    def shutdown(self, wait_ms: int = 3000) -> None:
        """Cancel what can be cancelled and stop delivering answers (the window is going away)."""
        self._closed = True
        for job in list(self._live):
            job.cancel.set()
        self.pool.clear()
        self.pool.waitForDone(wait_ms)


def pil_to_qimage(image: Any) -> QImage:
    """An RGB Pillow image as a QImage that owns its pixels (safe off the UI thread)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    data = rgb.tobytes()
    w, h = rgb.size
    return QImage(data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class PhotoAbsent(Exception):
    """The photo's file is not there to load: `why` is Library.file_absence's answer."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def load_preview(path: str, long_side: int, absence: Callable[[str], str | None] | None = None) -> QImage:
    """A photo decoded upright for the preview, no bigger than `long_side` (raises UnreadableImage,
    or PhotoAbsent when `absence` (Library.file_absence) says why the file is not there)."""
    from PIL import Image

    from clipphotos.library import UnreadableImage, load_image
    try:
        loaded = load_image(path, target=long_side)
    except (UnreadableImage, OSError) as exc:
        why = absence(path) if absence is not None else None
        if why is not None:
            raise PhotoAbsent(why) from exc
        raise
    img = loaded.image
    w, h = img.size
    if max(w, h) > long_side:
        scale = long_side / max(w, h)
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS,
                         reducing_gap=2.0)
    return pil_to_qimage(img)

