"""Camera RAW files (CR2, CR3, NEF, ARW, RAF, ORF, RW2, DNG, ...): decoded by LibRaw, contained.

LibRaw is C++ that parses hostile, vendor-specific formats; a bug in it must cost one file,
not the app. So it never runs in the app's own process: a few long-lived worker processes
(started with 'spawn', as macOS and Windows require anyway) do the decoding, each file with a
deadline. A worker that dies or hangs is replaced, and only the file it was decoding is
skipped ("the RAW decoder crashed on this file").

What a worker sends back is kept small and cheap to make:
- the embedded JPEG preview, as stored, when its long side reaches what the caller needs
  (the loader then decodes it like any JPEG, with libjpeg's DCT scaling); cameras embed one
  of 1.6k px to full size, so this is the usual path and costs no demosaicing at all;
- else a half-size demosaic (LibRaw's fastest: one RGB pixel per 2×2 Bayer cell), already
  shrunk to the size asked for.
Previews are stored as the sensor saw them; LibRaw's `flip` says how to turn them upright
(the demosaic is turned by LibRaw itself).

The parent process never imports rawpy; it only recognises RAW files by their first bytes.
"""
from __future__ import annotations

import functools
import io
import os
import signal
import struct
import sys
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import multiprocessing.connection

__all__ = [
    "DECODE_TIMEOUT",
    "RAW_EXTENSIONS",
    "ContainedPool",
    "RawError",
    "RawPicture",
    "WorkerCrashed",
    "WorkerTimedOut",
    "WorkerUnavailable",
    "available",
    "decode",
    "identify",
    "is_raw_path",
    "might_be_raw",
    "read_header",
]

T = TypeVar("T")

RAW_EXTENSIONS: frozenset[str] = frozenset(
    ".3fr .arw .cr2 .cr3 .dcr .dng .erf .iiq .mef .mrw .nef .nrw .orf .pef .raf .rw2 .rwl "
    ".sr2 .srf .srw .x3f".split()
)
"""Lower-case extensions (with the dot) of the camera RAW formats handed to LibRaw."""

HEADER_BYTES = 1 << 20
"""How much of a file `identify` needs: the first TIFF directory usually lies near the start."""
_IFD_BYTES = 1 << 16  # a TIFF directory and the values it points to, generously

DECODE_TIMEOUT = 60.0
"""Seconds one file may take in a worker (a half-size demosaic of 100 MP takes a few)."""

CRASHED = "the RAW decoder crashed on this file"
TIMED_OUT = f"the RAW decoder took too long on this file (over {DECODE_TIMEOUT:.0f} s)"
NO_DECODER = "the RAW decoder could not be started"

# LibRaw's `flip` (bit 0: mirror left-right, bit 1: upside down, bit 2: swap axes) as the
# EXIF orientation that means the same turn.
_FLIP_TO_ORIENTATION = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
# Formats told apart by their first bytes: (bytes, offset, format).
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"FUJIFILMCCD-RAW", 0, "RAF"),
    (b"IIRO", 0, "ORF"), (b"IIRS", 0, "ORF"), (b"MMOR", 0, "ORF"),
    (b"IIU\x00", 0, "RW2"),
    (b"\x00MRM", 0, "MRW"),
    (b"FOVb", 0, "X3F"),
    (b"IIII", 0, "IIQ"),
    (b"ftypcrx ", 4, "CR3"),
)
# Makers of TIFF-based RAWs -> the name their RAW files go by.
_TIFF_RAW_NAMES = {"NIKON": "NEF", "SONY": "ARW", "PENTAX": "PEF", "RICOH": "PEF", "SAMSUNG": "SRW",
                   "HASSELBLAD": "3FR", "EPSON": "ERF", "KODAK": "DCR", "MAMIYA": "MEF",
                   "PHASE ONE": "IIQ", "CANON": "CR2", "LEICA": "RWL"}
_CFA_PHOTOMETRICS = {32803, 34892}  # CFA (Bayer mosaic), LinearRaw
_TAG_NEW_SUBFILE_TYPE, _TAG_PHOTOMETRIC = 254, 262
_TAG_MAKE, _TAG_SUB_IFDS, _TAG_DNG_VERSION = 271, 330, 50706


class RawError(Exception):
    """A RAW file that cannot be decoded; `str(exc)` is a short reason for the user."""


@functools.cache
def available() -> bool:
    """Whether this installation can decode RAW files (rawpy is installed)."""
    return find_spec("rawpy") is not None


def is_raw_path(path: str | bytes | os.PathLike) -> bool:
    """Whether a file name has a camera RAW extension (case aside)."""
    name = os.fsdecode(path)
    return os.path.splitext(name)[1].lower() in RAW_EXTENSIONS


# ---------------------------------------------------------------------------------------
# Recognising RAW files by content (the loader is often handed bytes, not a name)


def might_be_raw(head: bytes) -> bool:
    """Cheap first look at a file's first bytes: False means surely not a RAW file."""
    return head[:4] in _TIFF_MAGIC or any(head[o:o + len(m)] == m for m, o, _ in _MAGIC)


def read_header(fp: BinaryIO) -> bytes:
    """The first bytes of a file, as many as `identify` and the metadata need: the first
    HEADER_BYTES, or up to the first TIFF directory if a writer put it after the pixels."""
    start = fp.read(HEADER_BYTES)
    if start[:4] in _TIFF_MAGIC and len(start) == HEADER_BYTES:
        ifd0 = struct.unpack("<I" if start[:2] == b"II" else ">I", start[4:8])[0]
        if ifd0 + _IFD_BYTES > len(start):
            start += fp.read(ifd0 + _IFD_BYTES - len(start))
    return start


def identify(data: bytes, name: str | None = None) -> str | None:
    """The RAW format of a file's content ("DNG", "CR2", "NEF", ...), or None if not a RAW.

    `data` may be just the file's header (`read_header`).

    TIFF-based RAWs share their first bytes with plain TIFFs, so for those the first
    directory decides: a DNG version, a Bayer mosaic, or a thumbnail standing in for a main
    picture kept in sub-directories (Nikon, Sony) mark a RAW; a scan or an export does not.
    Failing those, a file `name` with a RAW extension does (rarer makers' TIFF layouts).
    """
    for magic, offset, fmt in _MAGIC:
        if data[offset:offset + len(magic)] == magic:
            return fmt
    if data[:4] not in _TIFF_MAGIC:
        return None
    if data[8:10] == b"CR":
        return "CR2"
    try:
        ifd0 = _first_directory(data)
    except struct.error:  # a damaged directory: a name may still tell
        ifd0 = {}
    if _TAG_DNG_VERSION in ifd0:
        return "DNG"
    mosaic = ifd0.get(_TAG_PHOTOMETRIC) in _CFA_PHOTOMETRICS
    stand_in = ifd0.get(_TAG_NEW_SUBFILE_TYPE) == 1 and _TAG_SUB_IFDS in ifd0
    if not (mosaic or stand_in):
        return os.path.splitext(name)[1][1:].upper() if name and is_raw_path(name) else None
    make = bytes(ifd0.get(_TAG_MAKE) or b"").decode("latin-1").upper()
    return next((raw_name for maker, raw_name in _TIFF_RAW_NAMES.items() if maker in make), "RAW")


def _first_directory(data: bytes) -> dict[int, int | bytes | None]:
    """The tags of a TIFF's first directory: SHORT and LONG values as numbers, ASCII as bytes.

    Just what `identify` asks, read quietly (Pillow warns about every odd tag of a damaged
    file, and most TIFFs that come here are ordinary ones).
    """
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack_from(order + "I", data, 4)
    (count,) = struct.unpack_from(order + "H", data, offset)
    tags: dict[int, int | bytes | None] = {}
    for entry in range(offset + 2, offset + 2 + 12 * min(count, 4096), 12):
        tag, kind, n, value = struct.unpack_from(order + "HHI4s", data, entry)
        if kind in (3, 4):  # SHORT, LONG: the first value
            tags[tag] = struct.unpack_from(order + ("H" if kind == 3 else "I"), value)[0]
        elif kind == 2:  # ASCII, inline when it fits
            at = 0 if n <= 4 else struct.unpack(order + "I", value)[0]
            tags[tag] = value[:n] if n <= 4 else data[at:at + n]
        else:
            tags[tag] = None
    return tags


# ---------------------------------------------------------------------------------------
# Decoding


@dataclass(frozen=True)
class RawPicture:
    """What a worker made of one RAW file: a preview JPEG or RGB pixels, and what LibRaw knows."""

    jpeg: bytes | None
    """The embedded preview as stored (sideways if the camera was), or None."""
    pixels: np.ndarray | None
    """Else RGB pixels (height × width × 3, uint8), long side in [target, 2×target)."""
    upright: bool
    """`pixels` were already turned upright (LibRaw turns what it demosaics)."""
    orientation: int
    """EXIF-style orientation of the shot (1-8), from LibRaw's `flip`."""
    width: int
    """Full upright size of the shot, as a RAW developer shows it."""
    height: int
    taken_at: str | None
    """"YYYY-MM-DDTHH:MM:SS" camera local time as LibRaw read it (demosaic only), or None."""
    source: str
    """"preview" or "demosaic": which path made the picture."""


def decode(source: bytes | str, target: int | None, *, use_preview: bool = True,
           timeout: float = DECODE_TIMEOUT) -> RawPicture:
    """Decode a RAW file (its absolute path, or its content) in a contained worker process.

    Give the path when there is one: the worker then reads only what it needs, where content
    has to be copied to it whole (tens of MB; a pipe moves ~100 MB/s between busy cores).

    `target` is the smallest long side the caller needs; None asks for as much as a half-size
    demosaic gives (a preview at least that big is used instead). `use_preview=False` forces
    the demosaic, for a preview that turns out to be damaged. Raises RawError only.
    """
    try:
        return _shared_pool().call(_decode_in_worker, source, target, use_preview, timeout=timeout)
    except WorkerCrashed as exc:
        raise RawError(CRASHED) from exc
    except WorkerTimedOut as exc:
        raise RawError(TIMED_OUT) from exc
    except WorkerUnavailable as exc:
        raise RawError(NO_DECODER) from exc


def _decode_in_worker(source: bytes | str, target: int | None, use_preview: bool) -> RawPicture:
    """Worker side: open with LibRaw, and make the picture; LibRaw's errors become reasons."""
    import rawpy

    try:
        with rawpy.RawPy() as raw:
            _open(raw, source)
            return _picture(raw, target, use_preview)
    except rawpy.LibRawError as exc:
        raise RawError(_libraw_reason(exc)) from None
    except MemoryError:
        raise RawError("not enough memory to decode this RAW file") from None
    except OSError as exc:
        raise RawError(f"cannot read the file ({exc.strerror or exc})") from None


def _picture(raw: Any, target: int | None, use_preview: bool) -> RawPicture:
    """The embedded preview if it is big enough, else a half-size demosaic."""
    sizes = raw.sizes
    orientation = _FLIP_TO_ORIENTATION.get(sizes.flip, 1)
    width, height = (sizes.height, sizes.width) if orientation >= 5 else (sizes.width, sizes.height)
    preview = _preview(raw, need=target or -(-max(width, height) // 2)) if use_preview else None
    if preview is not None:
        jpeg, pixels = preview
        # No LibRaw timestamp here: rawpy reads it only after unpacking the sensor data, the
        # very cost the preview saves (the preview's EXIF or the file's own tags have it).
        return RawPicture(jpeg, None if pixels is None else _shrink(pixels, target), False, orientation,
                          width, height, None, "preview")
    rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
    return RawPicture(None, _shrink(rgb, target), True, orientation, width, height, _timestamp(raw), "demosaic")


def _open(raw: Any, source: bytes | str) -> None:
    if isinstance(source, bytes):
        raw.open_buffer(io.BytesIO(source))
        return
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:  # a name that is not UTF-8, which rawpy cannot pass to LibRaw
        with open(source, "rb") as f:
            raw.open_buffer(f)
        return
    raw.open_file(source)


def _preview(raw: Any, need: int) -> tuple[bytes | None, np.ndarray | None] | None:
    """(JPEG bytes, None) or (None, RGB pixels) of the embedded preview if its long side ≥ need."""
    import rawpy

    try:
        thumb = raw.extract_thumb()
    except rawpy.LibRawError:
        return None  # none, or one LibRaw cannot hand out: the demosaic will do
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            size = Image.open(io.BytesIO(thumb.data), formats=["JPEG"]).size
        except Exception:  # noqa: BLE001 - a broken preview is no reason to give up the file
            return None
        return (bytes(thumb.data), None) if max(size) >= need else None
    pixels = np.asarray(thumb.data)
    if pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8 and max(pixels.shape[:2]) >= need:
        return None, pixels
    return None


def _shrink(pixels: np.ndarray, target: int | None) -> np.ndarray:
    """Integer box reduction to a long side in [target, 2×target), as the loader does."""
    factor = max(pixels.shape[:2]) // target if target else 1
    if factor < 2:
        return np.ascontiguousarray(pixels)
    return np.asarray(Image.fromarray(np.ascontiguousarray(pixels)).reduce(factor))


def _timestamp(raw: Any) -> str | None:
    try:
        when = raw.other.timestamp  # local wall time, as the camera wrote it
        return when.isoformat(timespec="seconds") if when.timestamp() > 0 else None
    except Exception:  # noqa: BLE001 - metadata is never a reason to refuse a picture
        return None


def _libraw_reason(exc: Exception) -> str:
    import rawpy

    reasons = (
        (rawpy.LibRawFileUnsupportedError, "unsupported or damaged camera RAW file"),
        (rawpy.LibRawTooBigError, "camera RAW file too large"),
        (rawpy.LibRawUnsufficientMemoryError, "not enough memory to decode this RAW file"),
        ((rawpy.LibRawIOError, rawpy.LibRawDataError), "damaged or truncated camera RAW file"),
    )
    for kind, reason in reasons:
        if isinstance(exc, kind):
            return reason
    detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
    return f"damaged camera RAW file ({detail})" if detail else "damaged camera RAW file"


# ---------------------------------------------------------------------------------------
# Containment: worker processes that may crash or hang


class WorkerCrashed(Exception):
    """The worker process died (a native crash, or killed) while running the call."""


class WorkerTimedOut(Exception):
    """The call ran past its deadline; its worker was killed."""


class WorkerUnavailable(Exception):
    """No worker process could be started (e.g. the program's main script fails when a
    'spawn' worker imports it again), so the call was never run."""


START_TIMEOUT = 60.0
"""Seconds a new worker process may take to start (imports included) before it is given up."""
_READY = "ready"


class ContainedPool:
    """Runs functions in a few long-lived worker processes, so a crash or hang costs one call.

    Unlike a ProcessPoolExecutor, whose every pending call fails when one worker dies, each
    call here has a worker of its own for its duration: a crash or a deadline blames exactly
    that call, the worker is replaced, and the next call works. Threads may call at once; at
    most `size` calls run together, the others wait for a free worker. `fn`, its arguments
    and its result must pickle (so `fn` lives in a module, not in the main script); an
    exception raised by `fn` is raised by `call`.
    """

    def __init__(self, size: int, initializer: Callable[[], None] | None = None,
                 start_method: str = "spawn") -> None:
        if size < 1:
            raise ValueError("a pool needs at least one worker")
        self.size = size
        self.initializer = initializer
        import multiprocessing   # only once a RAW file is met: an index of JPEGs never starts a worker
        self._context = multiprocessing.get_context(start_method)
        self._idle: list[_Worker] = []
        self._started = 0
        self._closed = False
        self._changed = threading.Condition()

    def call(self, fn: Callable[..., T], *args: object, timeout: float | None = None) -> T:
        """`fn(*args)` in a worker; raises WorkerCrashed, WorkerTimedOut or WorkerUnavailable if that fails."""
        worker = self._acquire()
        try:
            ok, value = worker.run(fn, args, timeout)
        except BaseException:
            # Crashed, hung, or interrupted mid-call with an answer still to come: either
            # way this worker is not to be trusted with the next call.
            self._release(worker, healthy=False)
            raise
        self._release(worker, healthy=True)
        if ok:
            return value
        raise value

    def close(self) -> None:
        """Stop the idle workers; busy ones stop when their call returns."""
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            self._started -= len(idle)
            self._changed.notify_all()
        for worker in idle:
            worker.stop()

    def _acquire(self) -> _Worker:
        with self._changed:
            while True:
                if self._closed:
                    raise RuntimeError("the pool is closed")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        return worker
                    worker.stop()  # died while idle (killed from outside): not this call's fault
                    self._started -= 1
                if self._started < self.size:
                    self._started += 1
                    break
                self._changed.wait()
        try:
            return _Worker(self._context, self.initializer)  # outside the lock: spawning takes a moment
        except BaseException:
            with self._changed:
                self._started -= 1
                self._changed.notify()
            raise

    def _release(self, worker: _Worker, healthy: bool) -> None:
        with self._changed:
            keep = healthy and not self._closed
            if keep:
                self._idle.append(worker)
            else:
                self._started -= 1
            self._changed.notify()
        if not keep:
            worker.stop()


class _Worker:
    """One worker process and the pipe to it."""

    def __init__(self, context: Any, initializer: Callable[[], None] | None) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, initializer), name="clipphotos-worker",
                                       daemon=True)
        with _main_script_left_out():
            self.process.start()
        child.close()  # so that the worker's death reads as end-of-file here
        try:
            ready = self.conn.poll(START_TIMEOUT) and self.conn.recv() == _READY
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.stop()
            raise WorkerUnavailable(f"a worker process did not start (exit code {self.process.exitcode})")

    def alive(self) -> bool:
        return self.process.is_alive()

    def run(self, fn: Callable[..., Any], args: tuple, timeout: float | None) -> tuple[bool, Any]:
        """(True, result) or (False, the exception fn raised)."""
        try:
            self.conn.send((fn, args))
            if not self.conn.poll(timeout):
                raise WorkerTimedOut(f"no answer within {timeout} s")
            return self.conn.recv()
        except (EOFError, OSError) as exc:
            raise WorkerCrashed(f"the worker process died (exit code {self._exit_code()})") from exc

    def _exit_code(self) -> int | None:
        self.process.join(timeout=1.0)
        return self.process.exitcode

    def stop(self) -> None:
        """Ask the worker to finish, and kill it if it does not (or cannot) at once."""
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout=0.5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5.0)
        self.conn.close()


_MAIN_SWAP = threading.Lock()


@contextmanager
def _main_script_left_out() -> Iterator[None]:
    """While starting a worker, hide the program's main script from multiprocessing.

    'spawn' would run it again in the worker (as `__mp_main__`), which costs seconds and
    hundreds of MB for a script that imports torch, fails for one read from stdin, and starts
    over an unguarded one; the worker needs nothing from it. Functions run in a pool must
    therefore live in an importable module, not in the main script.
    """
    with _MAIN_SWAP:
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            sys.modules["__main__"] = main


def _serve(conn: multiprocessing.connection.Connection, initializer: Callable[[], None] | None) -> None:
    """Worker main loop: run each call sent, send back (True, result) or (False, exception)."""
    # Ctrl+C in a terminal reaches the whole process group; the app decides when to stop us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer()
    conn.send(_READY)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return  # the app went away
        if job is None:
            return
        fn, args = job
        try:
            answer = (True, fn(*args))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
            answer = (False, exc)
        try:
            conn.send(answer)
        except Exception as exc:  # noqa: BLE001 - e.g. an exception or result that does not pickle
            conn.send((False, RuntimeError(f"{type(exc).__name__}: {exc}")))


_POOL: ContainedPool | None = None
_POOL_LOCK = threading.Lock()


def _shared_pool() -> ContainedPool:
    """The app's RAW decoding pool, started on the first RAW file (most libraries have none)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ContainedPool(size=min(4, max(2, (os.cpu_count() or 2) // 2)), initializer=_quiet)
        return _POOL


def _quiet() -> None:
    """Worker start: LibRaw prints its complaints ("Unexpected end of file") to stderr, where
    they would only clutter the app's terminal; the file's skip reason says it already."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    except OSError:  # no stderr to quieten (a windowed app on Windows): fine as it is
        pass
