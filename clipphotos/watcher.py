"""Keep a library indexed by itself: the engine behind `clipphotos watch` and the app's background indexing.

File system events are hints, never the truth. The engine starts with a full scan, then indexes
what events point at, and rescans every folder now and then anyway, because events get lost
(inotify queue overflows, network shares, a laptop's sleep). A file is read only once its size
and modification time have held still for a moment, so a slow copy is indexed once, complete.
Both sides of a move are handed to the same indexing run, so moved photos keep their vectors;
a deletion waits for the files still arriving, so a move seen as delete + create keeps them too.

A folder the OS gives no events for (network file systems) or will not watch (inotify limits,
an unplugged drive) is rescanned at a shorter interval instead: "polling".

The engine holds the library's writer lock only while a run is active, and publishes its state
(queued files, folders and their modes, a heartbeat, its pid) in the catalog's settings, so that
`clipphotos status` in another process can show it. Qt-free; every callback is called from the
engine's thread (a GUI marshals them to its UI thread itself).
"""
from __future__ import annotations

import errno
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

from filelock import Timeout
from watchdog.events import (
    EVENT_TYPE_ATTRIB, EVENT_TYPE_CLOSED, EVENT_TYPE_CREATED, EVENT_TYPE_DELETED, EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED, FileSystemEvent, FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from clipphotos.catalog import encode_path, folder_prefix, is_damage
from clipphotos.indexer import Indexer, IndexReport, Progress, scan_reaches
from clipphotos.library import Library, LibraryBusy
from clipphotos.watch_state import EVENTS, HEARTBEAT_SECONDS, POLLING, WatchedFolder, WatchState, clear_state, publish_state
from clipphotos.loader import is_supported
from clipphotos.text_pass import TextPass, TextReport

log = logging.getLogger(__name__)

# File systems whose changes made elsewhere (another machine, the host of a VM) raise no events.
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "smb", "fuse.sshfs", "sshfs", "9p", "afs", "ncpfs",
    "davfs", "fuse.davfs2", "fuse.rclone", "fuse.s3fs", "fuse.gvfsd-fuse", "glusterfs",
    "fuse.glusterfs", "ceph", "fuse.ceph", "lustre", "gpfs", "drvfs", "afpfs", "vboxsf",
})
# Events that may mean a file's content changed, appeared or went away.
_FILE_EVENTS = frozenset({EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_CLOSED, EVENT_TYPE_ATTRIB,
                          EVENT_TYPE_DELETED, EVENT_TYPE_MOVED})


@dataclass(frozen=True)
class WatchSettings:
    """How eagerly the engine follows the folders; the defaults suit people, tests shorten them."""

    stability_seconds: float = 1.5      # a file is read once its size and mtime held still this long
    debounce_seconds: float = 0.5       # a burst of events is gathered until it pauses this long...
    max_delay_seconds: float = 10.0     # ...but a steady stream never holds a stable file back longer
    reconcile_seconds: float = 600.0    # full rescan of watched folders (events get lost)
    poll_seconds: float = 60.0          # rescan of a folder that gives no events
    save_seconds: float = 60.0          # the index file is written at most this often (the catalog always)
    publish_seconds: float = 1.0        # a changed state is published this soon for `status` elsewhere
    retry_seconds: float = 5.0          # wait after a failed run, or while another process indexes
    tick_seconds: float = 0.2           # how often the engine looks at its queue
    events: bool = True                 # False: no file system events at all, every folder polled


# -- where events can be trusted ------------------------------------------------------------------


def filesystem_type(path: str | os.PathLike[str], mounts: str | None = None) -> str | None:
    """The type of the file system holding `path`, from /proc/mounts (None where unknown)."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return None
    real = os.path.realpath(path)
    best, found = "", None
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[1])
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):  # the deepest mount wins; a later one shadows
            best, found = point, parts[2]
    return found


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _refusal(exc: OSError) -> str:
    """Why the OS would not watch a folder, in words a user can act on."""
    if exc.errno == errno.ENOSPC:
        return "the system's limit of watched folders is reached (fs.inotify.max_user_watches)"
    if exc.errno == errno.EMFILE:
        return "the system's limit of file watchers is reached (fs.inotify.max_user_instances)"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "the folder is offline"
    return f"file system events are unavailable ({exc.strerror or exc})"


# -- paths waiting to hold still ------------------------------------------------------------------


def _signature(path: bytes) -> tuple[int, int] | None:
    """(size, mtime_ns) of a path, None when it is gone: what must hold still before a read."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


@dataclass
class _Pending:
    changed_at: float                   # monotonic time of its last event or observed change
    signature: tuple[int, int] | None
    partner: bytes | None = None        # the other side of a move: both go in the same run


class PendingPaths:
    """Paths events pointed at, each held back until it has not changed for the stability window."""

    def __init__(self, stability: float) -> None:
        self.stability = stability
        self.last_event = 0.0
        self._items: dict[bytes, _Pending] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def touch(self, path: bytes, partner: bytes | None = None) -> None:
        signature, now = _signature(path), time.monotonic()
        with self._lock:
            item = self._items.get(path)
            if item is None:
                self._items[path] = _Pending(now, signature, partner)
            else:
                item.changed_at, item.signature = now, signature
                item.partner = partner or item.partner
            self.last_event = now

    def move(self, src: bytes, dest: bytes) -> None:
        self.touch(src, partner=dest)
        self.touch(dest, partner=src)

    def restore(self, items: dict[bytes, _Pending]) -> None:
        """Put back what a failed run took, to try again after the window."""
        now = time.monotonic()
        with self._lock:
            for path, item in items.items():
                item.changed_at = now
                self._items.setdefault(path, item)

    def drop_under(self, folder: bytes) -> None:
        prefix = folder_prefix(folder)
        with self._lock:
            for path in [p for p in self._items if p == folder or p.startswith(prefix)]:
                del self._items[path]

    def take_ready(self, debounce: float, max_delay: float) -> dict[bytes, _Pending]:
        """The paths that held still, once a burst of events has paused; removed from the queue."""
        now = time.monotonic()
        with self._lock:
            items = dict(self._items)
        burst_goes_on = now - self.last_event < debounce
        if not items or burst_goes_on and all(now - i.changed_at < max_delay for i in items.values()):
            return {}
        still = self._held_still(items, now)
        ready = {p: i for p, i in still.items() if i.partner is None or i.partner in still or i.partner not in items}
        if len(ready) < len(items):
            # A gone path waits for the files still arriving: its content may be among them.
            ready = {p: i for p, i in ready.items()
                     if i.signature is not None or i.partner is not None or now - i.changed_at >= max_delay}
        with self._lock:
            for path in ready:
                self._items.pop(path, None)
        return ready

    def _held_still(self, items: dict[bytes, _Pending], now: float) -> dict[bytes, _Pending]:
        """The items unchanged for the window, by their events and by a fresh look at each."""
        still = {p: i for p, i in items.items() if now - i.changed_at >= self.stability}
        current = {p: _signature(p) for p in still}
        with self._lock:
            for path, signature in current.items():
                item = still[path]
                if item.signature != signature:  # it changed without telling: wait again
                    item.changed_at, item.signature = now, signature
                    del still[path]
        return still


# -- the engine -----------------------------------------------------------------------------------


@dataclass
class _Folder:
    path: str
    follow_links: bool
    mode: str
    reason: str = ""
    watch: ObservedWatch | None = None
    identity: tuple[int, int] | None = None  # (device, inode) it had when the watch began
    next_scan: float = 0.0              # monotonic deadline of its next rescan


@dataclass
class _Job:
    only: set[bytes] | None             # None: every folder
    taken: dict[bytes, _Pending] = field(default_factory=dict)
    folders: list[_Folder] = field(default_factory=list)


class _Events(FileSystemEventHandler):
    def __init__(self, engine: WatchEngine) -> None:
        self.engine = engine

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.engine._on_event(event)


class _OverflowAlarm(logging.Handler):
    """watchdog only logs that the kernel dropped events; hearing it triggers a rescan."""

    def __init__(self, engine: WatchEngine) -> None:
        super().__init__(logging.WARNING)
        self.engine = engine

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.engine.rescan()


class WatchEngine:
    """Keeps a library's folders indexed until stopped: `clipphotos watch` and the app's background worker.

    `start()` runs it in a thread of its own, `stop()` finishes the batch in flight, saves and
    ends. Runs report `Progress` to `on_progress` and their `IndexReport` to `on_report`; errors
    that the engine survives go to `on_error`. `totals` adds up every run's report.
    """

    def __init__(self, library: Library, settings: WatchSettings | None = None, *,
                 on_progress: Callable[[Progress], None] | None = None,
                 on_report: Callable[[IndexReport], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None,
                 read_text: bool | None = None) -> None:
        self.library = library
        # The words in photos are read when nothing else waits (None: as the library's setting says).
        self.read_text = library.text_enabled if read_text is None else read_text
        self._text_wanted = self.read_text
        self.settings = settings or WatchSettings()
        self.on_progress = on_progress or (lambda p: None)
        self.on_report = on_report or (lambda r: None)
        self.on_error = on_error or (lambda e: None)
        self.totals = IndexReport()
        self.runs = 0
        self.error: BaseException | None = None      # what ended the engine early, if anything
        self._pending = PendingPaths(self.settings.stability_seconds)
        self._folders: dict[bytes, _Folder] = {}
        self._roots: tuple[bytes, ...] = ()
        self._excluded: frozenset[bytes] = frozenset()
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._paused = threading.Event()
        self._idle = threading.Event()
        self._done = threading.Event()
        self._indexer: Indexer | TextPass | None = None   # the run in flight (stop/pause go to it)
        self._left_in_run = 0
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None
        self._not_before = 0.0
        self._last_save = time.monotonic()
        self._unsaved = False
        self._synced_at = 0.0
        self._alarm = _OverflowAlarm(self)
        self._own_files = folder_prefix(encode_path(library.root))

    # -- control (any thread) --------------------------------------------------------------------

    def start(self) -> None:
        """Start watching in a background thread: a full scan first, then events and rescans."""
        if self._thread is not None:
            raise RuntimeError("a WatchEngine starts once")
        self._thread = threading.Thread(target=self.run, name="clipphotos-watch", daemon=True)
        self._thread.start()

    def stop(self, wait: bool = True, timeout: float | None = None) -> None:
        """Finish the batch in flight, save and end (wait=False: only ask, e.g. from a signal handler)."""
        self._stopping.set()
        indexer = self._indexer
        if indexer is not None:
            indexer.stop.set()
        self._wake.set()
        if wait and self._thread is not None and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the engine to end; True once it has."""
        return self._done.wait(timeout)

    def pause(self) -> None:
        """Stop indexing until `resume()`: the run in flight ends after its batch, and the writer
        lock is free meanwhile. Events keep being queued; what the run left is done on resume."""
        self._paused.set()
        indexer = self._indexer
        if indexer is not None:
            indexer.stop.set()

    def resume(self) -> None:
        self._paused.clear()
        self._wake.set()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def set_read_text(self, on: bool) -> None:
        """Read the words in photos from now on (what is left is read when nothing else waits), or stop."""
        self.read_text = self._text_wanted = on
        indexer = self._indexer
        if not on and isinstance(indexer, TextPass):
            indexer.stop.set()
        self._wake.set()

    def add_folder(self, path: str | os.PathLike[str], follow_links: bool = False) -> None:
        """Add a folder to the library and watch it; it is scanned as soon as the engine is free."""
        self.library.add_folder(path, follow_links)
        self._command(lambda: self._sync_folders(force=True))

    def remove_folder(self, path: str | os.PathLike[str]) -> None:
        """Stop watching a folder and forget its photos, or forget an away drive's (between runs,
        never under one). The path goes to `Library.remove_folder` as given: a drive reached by a
        link is known by the link's path, which resolving would lose."""
        folder = Path(path).expanduser()
        self._command(lambda: self._remove_folder(folder))

    def rescan(self) -> None:
        """Rescan every folder as soon as the engine is free (events were lost, or the user asks)."""
        self._command(self._make_all_due)

    def state(self) -> WatchState:
        with self._lock:
            watching = [WatchedFolder(f.path, f.mode, f.reason) for f in self._folders.values()]
        return WatchState(len(self._pending) + self._left_in_run, watching, self._indexer is not None,
                          self.paused)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until the first scan is done and nothing is queued or running; False on timeout."""
        return self._idle.wait(timeout)

    # -- the engine's thread ---------------------------------------------------------------------

    def run(self) -> None:
        """The engine's loop; `start()` runs it in a thread, a caller may run it in its own."""
        publisher = threading.Thread(target=self._publish_loop, name="clipphotos-watch-state", daemon=True)
        logging.getLogger("watchdog.observers.inotify_c").addHandler(self._alarm)
        try:
            publisher.start()
            _ = self.library.embedder  # a model that cannot load ends the engine here, clearly
            self._observer = self._start_observer()
            while not self._stopping.is_set():
                self._step()
        except BaseException as exc:  # noqa: BLE001 - kept for the caller, who decides
            self.error = exc
            self.on_error(exc)
        finally:
            self._shutdown(publisher)

    def _step(self) -> None:
        """One turn: commands, folders, then a run, or a short wait when there is nothing to do."""
        try:
            self._run_commands()
            self._sync_folders()
            job = self._next_job()
            if job is not None:
                self._idle.clear()
                self._index(job)
                return
            if self._text_wanted and self._quiet() and not self.paused and time.monotonic() >= self._not_before:
                self._idle.clear()
                self._read_text()
                return
            if self._quiet() and not self._text_wanted:
                self._idle.set()
        except Exception as exc:  # noqa: BLE001 - a busy or failing catalog: try again shortly
            self._failed(exc)
        self._wake.wait(self.settings.tick_seconds)
        self._wake.clear()

    def _failed(self, exc: Exception) -> None:
        """A run that failed is tried again shortly; a damaged catalog ends the engine instead
        (waiting does not mend it: whoever runs the engine offers the way out)."""
        if is_damage(exc):
            raise exc
        log.error("watching failed (%s); trying again in %.0f s", exc, self.settings.retry_seconds, exc_info=exc)
        self.on_error(exc)
        self._not_before = time.monotonic() + self.settings.retry_seconds

    def _quiet(self) -> bool:
        """Nothing queued, no command waiting, no folder due for a scan (the first one included)."""
        now = time.monotonic()
        return (not len(self._pending) and self._commands.empty()
                and all(now < f.next_scan for f in self._folders.values()))

    def _start_observer(self) -> BaseObserver | None:
        if not self.settings.events:
            return None
        try:
            observer = Observer()
            observer.start()
        except OSError as exc:
            log.warning("no file system events (%s): every folder is polled", _refusal(exc))
            return None
        return observer

    def _shutdown(self, publisher: threading.Thread) -> None:
        logging.getLogger("watchdog.observers.inotify_c").removeHandler(self._alarm)
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        if self._unsaved:
            self._save_index()
        self._done.set()
        if publisher.is_alive():
            publisher.join(timeout=5)
        try:
            clear_state(self.library.catalog)
        except Exception as exc:  # noqa: BLE001 - a stale state reads as "not watching" anyway
            log.warning("could not clear the watcher's state: %s", exc)
        self._idle.set()

    def _command(self, command: Callable[[], None]) -> None:
        self._idle.clear()
        self._commands.put(command)
        self._wake.set()

    def _run_commands(self) -> None:
        for _ in range(self._commands.qsize()):
            self._commands.get_nowait()()

    # -- folders ---------------------------------------------------------------------------------

    def _sync_folders(self, force: bool = False) -> None:
        """Watch the library's folders as the catalog lists them (another process may add some)."""
        now = time.monotonic()
        if not force and now - self._synced_at < 2.0:
            return
        self._synced_at = now
        wanted = {encode_path(path): (path, follow) for _, path, follow in self.library.folders()}
        self._excluded = self.library.excluded_folders()
        for raw in set(self._folders) - set(wanted):
            self._unwatch(raw)
        for raw, (path, follow) in wanted.items():
            if raw not in self._folders:
                self._watch(raw, path, follow)
            elif self._folders[raw].mode == EVENTS and not self._still_watched(self._folders[raw]):
                self._unwatch(raw)  # deleted, renamed or unmounted under us: poll until it is back
                self._watch(raw, path, follow)

    def _watch(self, raw: bytes, path: str, follow: bool) -> None:
        folder = _Folder(path, follow, POLLING)
        self._try_events(folder)
        with self._lock:
            self._folders[raw] = folder
            self._roots = tuple(self._folders)
        log.info("watching %s (%s%s)", path, folder.mode, f": {folder.reason}" if folder.reason else "")

    def _try_events(self, folder: _Folder) -> None:
        """Watch a folder with one recursive watch if its file system and the OS allow; else poll it."""
        fs_type = filesystem_type(folder.path)
        if not self.settings.events:
            folder.reason = "file system events are turned off"
        elif self._observer is None:
            folder.reason = "the system gives no more file watchers"
        elif fs_type in NETWORK_FILESYSTEMS:
            folder.reason = f"network file system ({fs_type}): changes made elsewhere raise no events"
        else:
            try:
                folder.watch = self._observer.schedule(_Events(self), folder.path, recursive=True,
                                                       follow_symlink=folder.follow_links)
                folder.mode, folder.reason, folder.identity = EVENTS, "", _identity(folder.path)
            except OSError as exc:
                folder.reason = _refusal(exc)

    def _unwatch(self, raw: bytes) -> None:
        with self._lock:
            folder = self._folders.pop(raw)
            self._roots = tuple(self._folders)
        if folder.watch is not None and self._observer is not None:
            try:
                self._observer.unschedule(folder.watch)
            except KeyError:
                pass
        self._pending.drop_under(raw)

    def _still_watched(self, folder: _Folder) -> bool:
        """Whether its watch still sees the folder at its path (not deleted, renamed, unmounted)."""
        assert self._observer is not None
        alive = any(e.watch == folder.watch and e.is_alive() for e in self._observer.emitters)
        return alive and _identity(folder.path) == folder.identity

    def _remove_folder(self, folder: Path) -> None:
        lock = self.library.writer_lock()
        try:
            lock.acquire(timeout=self.settings.retry_seconds)
        except Timeout:
            self._commands.put(lambda: self._remove_folder(folder))  # another process indexes: later
            return
        try:
            self.library.remove_folder(folder)
        finally:
            lock.release()
        self._sync_folders(force=True)

    def _make_all_due(self) -> None:
        for folder in self._folders.values():
            folder.next_scan = 0.0

    # -- events (the observer's thread) ----------------------------------------------------------

    def _on_event(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        if kind not in _FILE_EVENTS or (event.is_directory and kind not in (EVENT_TYPE_MOVED, EVENT_TYPE_DELETED)):
            return  # a new folder's files raise their own events; a folder's times say nothing
        if event.is_synthetic and kind == EVENT_TYPE_MOVED:
            return  # a file inside a moved folder: the folder's own event covers it
        src = self._relevant(event.src_path, event.is_directory)
        dest = self._relevant(event.dest_path, event.is_directory) if kind == EVENT_TYPE_MOVED else None
        if src is not None and dest is not None:
            self._pending.move(src, dest)
        elif src is not None or dest is not None:
            self._pending.touch(src or dest)  # type: ignore[arg-type]
        else:
            return
        self._idle.clear()

    def _relevant(self, path: bytes | str, is_directory: bool) -> bytes | None:
        """The path as the catalog keys it, if a scan of its library folder would index it."""
        if not path:
            return None
        raw = os.fsencode(path)
        root = next((r for r in self._roots if raw == r or raw.startswith(folder_prefix(r))), None)
        if root is None or not scan_reaches(root, raw, self._excluded):
            return None
        if raw.startswith(self._own_files):
            return None  # the library's own files (thumbnails!) are not photos
        return raw if is_directory or is_supported(raw) else None

    # -- runs ------------------------------------------------------------------------------------

    def _next_job(self) -> _Job | None:
        now = time.monotonic()
        if self.paused or now < self._not_before:
            return None
        due = [f for f in self._folders.values() if now >= f.next_scan]
        if due:
            for folder in due:
                if folder.mode == POLLING and not folder.reason.startswith("network"):
                    self._retry_events(folder)
            every = len(due) == len(self._folders)
            return _Job(None if every else {encode_path(f.path) for f in due}, folders=due)
        taken = self._pending.take_ready(self.settings.debounce_seconds, self.settings.max_delay_seconds)
        return _Job(set(taken), taken=taken) if taken else None

    def _retry_events(self, folder: _Folder) -> None:
        """A polled folder that was offline or refused may be watchable now."""
        if self._observer is not None and self.settings.events:
            self._try_events(folder)

    def _index(self, job: _Job) -> None:
        rescan = bool(job.folders)
        save = rescan or time.monotonic() - self._last_save >= self.settings.save_seconds
        self._left_in_run = len(job.taken)
        try:
            self.library.refresh_index()
            report = self.library.index_folders(
                only=job.only, on_progress=self._progress, indexer_hook=self._hook,
                settle_seconds=self.settings.stability_seconds if rescan else None, save=save, read_text=False)
        except LibraryBusy:  # a `clipphotos index` elsewhere: it does the work; look again later
            self._retry_later(job)
            return
        except Exception as exc:  # noqa: BLE001 - a run that fails is tried again; the engine lives on
            self._failed(exc)
            self._retry_later(job)
            return
        finally:
            self._indexer = None
            self._left_in_run = 0
        self._account(report, job, save)

    def _read_text(self) -> None:
        """The low-priority work: read the words in photos until something else waits."""
        try:
            text = self.library.read_text(on_progress=self._progress, hook=self._hook,
                                          should_yield=lambda: self.paused or not self._quiet())
        except LibraryBusy:
            self._not_before = time.monotonic() + self.settings.retry_seconds
            return
        except Exception as exc:  # noqa: BLE001 - tried again later; the engine lives on
            self._failed(exc)
            return
        finally:
            self._indexer = None
        if text is None or not text.stopped:
            self._text_wanted = False   # all read (or no reader here): until new photos come
        if text is not None and text.read:
            total = self.totals.text or TextReport()
            total.read, total.with_text, total.left = (total.read + text.read, total.with_text + text.with_text,
                                                       text.left)
            self.totals.text = total
            self.on_report(IndexReport(seconds=text.seconds, stopped=text.stopped, text=text))

    def _hook(self, indexer: Indexer | TextPass) -> None:
        self._indexer = indexer
        if self._paused.is_set() or self._stopping.is_set():
            indexer.stop.set()

    def _progress(self, progress: Progress) -> None:
        if progress.phase == "indexing":
            self._left_in_run = progress.total - progress.done
        self.on_progress(progress)

    def _retry_later(self, job: _Job) -> None:
        self._pending.restore(job.taken)
        self._not_before = max(self._not_before, time.monotonic() + self.settings.retry_seconds)

    def _account(self, report: IndexReport, job: _Job, saved: bool) -> None:
        now = time.monotonic()
        if saved:
            self._last_save, self._unsaved = now, False
        else:
            self._unsaved = self._unsaved or bool(report.indexed or report.moved or report.removed)
        for path in report.deferred:
            self._pending.touch(path)
        if report.stopped:  # paused or stopping: its folders stay due, its paths queued
            self._pending.restore(job.taken)
        else:
            for folder in job.folders:
                interval = self.settings.reconcile_seconds if folder.mode == EVENTS else self.settings.poll_seconds
                folder.next_scan = now + interval
        self.runs += 1
        if self.read_text and (report.indexed or report.moved):
            self._text_wanted = True
        for name in ("indexed", "embedded", "unchanged", "moved", "removed"):
            setattr(self.totals, name, getattr(self.totals, name) + getattr(report, name))
        self.totals.seconds += report.seconds
        self.totals.skipped = report.skipped
        self.totals.offline_folders = report.offline_folders
        self.on_report(report)

    def _save_index(self) -> None:
        lock = self.library.writer_lock()
        try:
            lock.acquire(timeout=self.settings.retry_seconds)
        except Timeout:
            return  # the other writer saves its own; a stale file is caught up from the catalog
        try:
            self.library.save_index()
            self._unsaved = False
        except Exception as exc:  # noqa: BLE001 - the catalog has every vector; the index is a cache
            log.warning("could not save the index: %s", exc)
        finally:
            lock.release()

    # -- published state -------------------------------------------------------------------------

    def _publish_loop(self) -> None:
        """Publish the state when it changes and as a heartbeat, until the engine ends."""
        last, written = None, 0.0
        while True:
            state = self.state().to_json()
            if state != last or time.monotonic() - written >= HEARTBEAT_SECONDS:
                try:
                    publish_state(self.library.catalog, state)
                    last, written = state, time.monotonic()
                except Exception as exc:  # noqa: BLE001 - a busy catalog must not end the watcher
                    log.debug("could not publish the watcher's state: %s", exc)
            if self._done.wait(self.settings.publish_seconds):
                return


def settings_from(**overrides: float | bool | None) -> WatchSettings:
    """WatchSettings with the given fields set, ignoring those left as None (CLI options)."""
    known = {f.name for f in fields(WatchSettings)}
    return WatchSettings(**{k: v for k, v in overrides.items() if v is not None and k in known})

