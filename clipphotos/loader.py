"""The one place where the app turns a file from someone's photo folder into pixels.

Indexing, thumbnails, duplicate hashes and the preview all decode through `load_image`, so
every quirk is handled once: EXIF orientation, odd colour modes, transparency, animations,
HEIC/AVIF, camera RAW files (through `clipphotos.raw`), truncated downloads, decompression
bombs and plain junk with a photo's name.
Whatever goes wrong with a file ends as `UnreadableImage` with a reason a person can read;
the rest of the library keeps indexing.

Design choices (the reasons are next to the code):
- Transparency is flattened onto white (dark grey if the visible content is itself white).
- Truncated JPEGs are salvaged without touching Pillow's global LOAD_TRUNCATED_IMAGES.
- At most 250 megapixels; `Image.MAX_IMAGE_PIXELS` is set to that once, at import.
- Only the photo formats we list are ever parsed (no Ghostscript for a stray .eps, say).
"""
from __future__ import annotations

import io
import os
import re
import stat
import struct
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, UnidentifiedImageError, features

from clipphotos import raw as _raw

try:  # HEIC/HEIF from phones; the app still runs (without HEIC) if pillow-heif is missing.
    import pillow_heif

    pillow_heif.register_heif_opener()
    # Pillow >= 11.2 reads AVIF itself; older pillow-heif releases shipped an AVIF opener.
    if not features.check("avif") and hasattr(pillow_heif, "register_avif_opener"):
        pillow_heif.register_avif_opener()
except ImportError:  # pragma: no cover - depends on the installation
    pass

__all__ = [
    "MAX_PIXELS",
    "SUPPORTED_EXTENSIONS",
    "LoadedImage",
    "UnreadableImage",
    "is_supported",
    "load_image",
]

Source = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]

MAX_PIXELS = 250_000_000
"""A 20000×12500 stitched panorama still loads; a 'tiny file, 100000×100000 px' bomb does not."""

# Set once at import, never toggled per call (other threads are decoding at the same time).
# Pillow warns above this and refuses above twice this; we refuse above it ourselves, before
# any pixel memory is allocated, and turn Pillow's warning/error into UnreadableImage.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

# Alpha is flattened onto white: transparent PNGs are mostly logos, stickers, cut-out
# objects and screenshots meant for a page, which is white in documents, on the web and in
# print, so that is what their owners expect to see (and what the web images CLIP learned
# from looked like). Dropping alpha instead would show whatever colour transparent pixels
# happen to store, typically black. One exception: if what is visible is itself nearly
# white (white text or a white logo on transparency), white would erase it, so such
# pictures go onto a dark background instead.
BACKGROUND = (255, 255, 255)
DARK_BACKGROUND = (32, 32, 32)
_LIGHT_CONTENT = 200  # alpha-weighted mean grey above which content counts as "white"

# Formats we let Pillow parse at all, in the order it tries them. Anything else (EPS, which
# would start Ghostscript; PSD; ICO; Pillow's many legacy formats) is "unsupported format".
# AVIF goes before HEIF: both claim the generic 'mif1' brand and only the AVIF plugin can
# tell at open time that the file is not AV1, whereas libheif would fail only when decoding.
# MPO (a JPEG carrying extra pictures: 3D cameras, some phones) is opened by the JPEG
# plugin, which hands back an MPO image whose first frame is the main picture.
_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "AVIF", "HEIF", "JPEG2000")
_CODEC_FEATURE = {"JPEG": "jpg", "WEBP": "webp", "AVIF": "avif", "JPEG2000": "jpg_2000"}


def _available_formats() -> tuple[str, ...]:
    Image.init()
    ok = []
    for fmt in _FORMATS:
        if fmt not in Image.OPEN:
            continue
        feature = _CODEC_FEATURE.get(fmt)
        try:
            if feature is None or features.check(feature):
                ok.append(fmt)
        except Exception:  # noqa: BLE001 - a broken optional codec just means "not offered"
            pass
    return tuple(ok)


_OPEN_FORMATS = _available_formats()

_WANTED_EXTENSIONS = (
    ".jpg .jpeg .jpe .jfif .png .apng .webp .gif .bmp .tif .tiff "
    ".heic .heif .hif .avif .jp2 .j2k .jpf .jpx .mpo"
).split()


def _supported_extensions() -> frozenset[str]:
    registered = Image.registered_extensions()
    alias = {"MPO": "JPEG"}
    pillow = frozenset(
        e for e in _WANTED_EXTENSIONS
        if alias.get(registered.get(e, ""), registered.get(e)) in _OPEN_FORMATS
    )
    return pillow | _raw.RAW_EXTENSIONS if _raw.available() else pillow


SUPPORTED_EXTENSIONS: frozenset[str] = _supported_extensions()
"""Lower-case extensions (with the dot) of the files worth indexing, limited to what this
installation can really decode (e.g. no .heic without pillow-heif)."""


def is_supported(path: str | os.PathLike[str] | os.PathLike[bytes] | bytes) -> bool:
    """Whether a file is worth handing to `load_image`, judged by its extension alone.

    Cheap enough for directory walks. Accepts bytes paths (non-UTF-8 names on Linux).
    macOS '._name.jpg' AppleDouble companions carry Finder metadata, not pixels, and are
    rejected so they do not clutter the skipped list on shared or USB drives.
    """
    name = os.path.basename(os.fsdecode(path))
    if name.startswith("._"):
        return False
    return os.path.splitext(name)[1].lower() in SUPPORTED_EXTENSIONS


class UnreadableImage(Exception):
    """A file that cannot be shown as a picture; `str(exc)` is a short reason for the user.

    The original low-level exception, if any, is kept as `__cause__` for logs.
    """


@dataclass(frozen=True)
class LoadedImage:
    """A decoded photo, ready for the model, thumbnails, hashing or the preview."""

    image: Image.Image
    """Upright RGB pixels; long side in [target, 2×target) when a target was asked for."""
    width: int
    """Full upright width of the original, as a viewer shows it (not of `image`)."""
    height: int
    format: str
    """Pillow's format name ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "HEIF", "AVIF",
    "JPEG2000"), except that multi-picture JPEGs (Pillow's "MPO") are "JPEG"; for camera
    RAW files the RAW format ("DNG", "CR2", "CR3", "NEF", "ARW", "RAF", "ORF", "RW2", ...)."""
    taken_at: str | None
    """"YYYY-MM-DDTHH:MM:SS" camera local time from EXIF, None if absent or nonsense."""
    camera: str | None
    """e.g. "Canon EOS 80D" or "Apple iPhone 12"; None if unknown."""
    orientation: int
    """EXIF orientation (1-8) that was undone to make `image` upright; 1 if none. For HEIF,
    libheif applies the container's rotation itself and this is the tag the file carried."""
    truncated: bool = False
    """The file ends early; `image` is what could be salvaged (the rest is grey)."""


# EXIF orientation -> the transpose that undoes it (as ImageOps.exif_transpose does).
_UNDO_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_TAG_ORIENTATION = 0x0112
_TAG_MAKE = 0x010F
_TAG_MODEL = 0x0110
_TAG_DATETIME = 0x0132
_TAG_EXIF_IFD = 0x8769
_TAG_DATETIME_ORIGINAL = 0x9003
_TAG_DATETIME_DIGITIZED = 0x9004


def load_image(source: Source, target: int | None = None) -> LoadedImage:
    """Decode a photo upright, in RGB, with no more pixels than the caller needs.

    `source` is a path (str or os.PathLike; build a `Path` with `os.fsdecode` for bytes
    names), the file's content as `bytes` (the indexer reads each file once to hash it), or
    a seekable binary file object (read from its start, as Pillow does; left open).

    `target` is the smallest long side the caller needs: JPEGs are decoded at 1/2, 1/4 or
    1/8 scale by libjpeg (HEIC from an embedded thumbnail when one is big enough), other
    formats shrunk by an integer box filter, so the long side ends in [target, 2×target);
    smaller pictures are never enlarged. None means full size.

    Raises UnreadableImage (only) for anything wrong with the file.
    """
    if target is not None and (not isinstance(target, int) or target < 1):
        raise ValueError(f"target must be a positive int or None, not {target!r}")
    if isinstance(source, (bytes, bytearray, memoryview)):
        load, arg = _load_from_bytes, bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        load, arg = _load_from_path, source
    elif hasattr(source, "read") and hasattr(source, "seek"):
        load, arg = _load_from_stream, source
    else:
        raise TypeError(f"cannot load an image from {type(source).__name__}")
    try:
        return load(arg, target)
    except UnreadableImage:
        raise
    except Exception as exc:  # noqa: BLE001 - every decoder failure is the file's fault
        raise UnreadableImage(_reason(exc)) from exc


def _load_from_path(path: str | os.PathLike, target: int | None) -> LoadedImage:
    # O_NONBLOCK: opening a FIFO that happens to be called photo.jpg must not wait forever
    # for a writer (it has no effect on regular files). Anything but a regular file (FIFO,
    # device, socket) is refused after the open, on the descriptor itself, so no race.
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as exc:
        raise UnreadableImage("file not found") from exc
    except IsADirectoryError as exc:
        raise UnreadableImage("a folder, not a file") from exc
    except PermissionError as exc:
        if os.path.isdir(path):  # Windows says "permission denied" for folders
            raise UnreadableImage("a folder, not a file") from exc
        raise UnreadableImage("permission denied") from exc
    except OSError as exc:
        raise UnreadableImage(f"cannot read the file ({exc.strerror or exc})") from exc
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise UnreadableImage("a folder, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableImage("not a regular file")
        if st.st_size == 0:
            raise UnreadableImage("empty file")
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    # We hand Pillow our own file object so that we, not Pillow, close it: a plain path
    # would let some plugins keep the file open (or memory-mapped) after an error.
    with f:
        return _load_from_stream(f, target, os.path.abspath(os.fsdecode(os.fspath(path))))


def _load_from_bytes(data: bytes, target: int | None) -> LoadedImage:
    if not data:
        raise UnreadableImage("empty file")
    return _load_from_stream(io.BytesIO(data), target)


def _load_from_stream(fp: BinaryIO, target: int | None, path: str | None = None) -> LoadedImage:
    fp.seek(0)
    head = fp.read(64)
    if not head:
        raise UnreadableImage("empty file")
    fp.seek(0)
    if _raw.might_be_raw(head) and _raw.available():
        start = _raw.read_header(fp)
        raw_format = _raw.identify(start, path)
        if raw_format is not None:
            # A file on disk is read by the decoder process itself (LibRaw reads just the
            # headers and the preview); only content without a path travels to it.
            return _load_raw(path or start + fp.read(), start, raw_format, target)
        fp.seek(0)
    try:
        return _decode(fp, target, head)
    except _Truncated as trunc:
        if trunc.format != "JPEG":
            raise UnreadableImage("truncated file") from trunc.__cause__
        # Salvage. libjpeg can finish a picture whose data stops early if it then meets an
        # end-of-image marker: it warns and fills the missing blocks with grey. That is
        # exactly what Pillow does under the process-wide ImageFile.LOAD_TRUNCATED_IMAGES;
        # but that flag is global and the indexer decodes in several threads, so toggling it
        # per call would silently change how other threads' files decode. We append the
        # marker ourselves instead: no global state, no lock, and only on this rare path.
        fp.seek(0)
        data = fp.read() + b"\xff\xd9"
        try:
            loaded = _decode(io.BytesIO(data), target, head)
        except _Truncated:
            raise UnreadableImage("truncated file") from trunc.__cause__
        return _replace_truncated(loaded)


def _load_raw(source: bytes | str, start: bytes, raw_format: str, target: int | None) -> LoadedImage:
    """A camera RAW file through its embedded preview or a half-size demosaic (see `raw`).

    The preview is decoded like any JPEG (DCT scaling, its own EXIF). It is stored as the
    sensor saw it, so the RAW's orientation turns it upright, unless the preview carries an
    orientation of its own (then that one was applied already). Date and camera come from
    the preview's EXIF, else the RAW's own TIFF/EXIF tags, else LibRaw's timestamp.
    """
    try:
        picture = _raw.decode(source, target)
        preview = _load_from_bytes(picture.jpeg, target) if picture.jpeg is not None else None
    except _raw.RawError as exc:
        raise UnreadableImage(str(exc)) from exc
    except UnreadableImage:  # a damaged preview: the sensor data may still be fine
        try:
            picture, preview = _raw.decode(source, target, use_preview=False), None
        except _raw.RawError as exc:
            raise UnreadableImage(str(exc)) from exc
    _, taken_at, camera = _tiff_metadata(start)
    if preview is not None:
        img = preview.image
        undo = picture.orientation if preview.orientation == 1 else 1
        taken_at, camera = preview.taken_at or taken_at, preview.camera or camera
    else:
        assert picture.pixels is not None
        img = Image.fromarray(picture.pixels)
        undo = 1 if picture.upright else picture.orientation
    if undo in _UNDO_ORIENTATION:
        img = img.transpose(_UNDO_ORIENTATION[undo])
    return LoadedImage(img, picture.width, picture.height, raw_format, taken_at or picture.taken_at,
                       camera, picture.orientation)


def _tiff_metadata(data: bytes) -> tuple[int, str | None, str | None]:
    """(orientation, taken_at, camera) from a TIFF-based file's own tags (CR2, NEF, ARW, DNG)."""
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        return 1, None, None
    exif = Image.Exif()
    try:
        exif.load(data)
    except Exception:  # noqa: BLE001 - broken tags never cost the picture
        return 1, None, None
    return _exif_metadata(exif)


def _replace_truncated(loaded: LoadedImage) -> LoadedImage:
    return LoadedImage(
        loaded.image, loaded.width, loaded.height, loaded.format,
        loaded.taken_at, loaded.camera, loaded.orientation, truncated=True,
    )


class _Truncated(Exception):
    """Internal: the data ran out while decoding; carries the format for salvage."""

    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        self.format = fmt


def _decode(fp: BinaryIO, target: int | None, head: bytes) -> LoadedImage:
    try:
        im = Image.open(fp, formats=_OPEN_FORMATS)
    except UnidentifiedImageError as exc:
        raise UnreadableImage(_identify_failure(head)) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Over 2× the limit Pillow refuses before telling us the size; find it for the message.
        raise UnreadableImage(_too_large_reason(fp, head, exc)) from exc

    # Pillow calls a JPEG with extra pictures "MPO": iPhone HDR gain maps, Samsung depth
    # data, 3D cameras. To people and to every viewer it is a JPEG, so that is what we say.
    fmt = "JPEG" if im.format == "MPO" else (im.format or "unknown")
    w, h = im.size
    if w <= 0 or h <= 0:
        raise UnreadableImage(f"invalid image size ({w}×{h})")
    if w * h > MAX_PIXELS:
        raise UnreadableImage(_too_large(w, h))

    # PNG may keep its EXIF after the pixel data, and reading it first would force a full
    # load outside our truncation handling; every other format must be asked before loading
    # (TIFF reads its EXIF directory from the file, which Pillow lets go after loading).
    exif_late = fmt == "PNG"
    meta = None if exif_late else _metadata(im)

    long_side = max(w, h)
    if target is not None and long_side > target:
        # Pick the request so that the decoded long side stays >= target. Orientation only
        # swaps axes, so the stored size gives the same long side as the upright one.
        request = (max(1, -(-w * target // long_side)), max(1, -(-h * target // long_side)))
        im.draft(None, request)  # JPEG: DCT scaling; HEIF: embedded thumbnail; others: no-op

    try:
        im.load()
    except OSError as exc:
        if _looks_truncated(exc):
            raise _Truncated(fmt) from exc
        raise
    except (EOFError, struct.error) as exc:
        raise _Truncated(fmt) from exc

    if meta is None:
        meta = _metadata(im)
        applied = meta[0]
    else:
        # Some plugins transpose while loading (Pillow's TIFF plugin does, then deletes the
        # tag, and already reports the upright size at open); undoing the orientation again
        # would turn the picture back.
        applied = meta[0] if _orientation_now(im) == meta[0] else 1
    orientation, taken_at, camera = meta
    if fmt == "HEIF":
        # libheif already applied the container's rotation/mirroring and pillow-heif reset
        # the EXIF tag to 1 (so nothing is applied twice); report what the file said.
        orientation = _valid_orientation(im.info.get("original_orientation"))

    img = _normalise_mode(im)
    if target is not None:
        factor = max(img.size) // target
        if factor >= 2:
            img = img.reduce(factor)
    img = _flatten(img)
    if applied in _UNDO_ORIENTATION:
        img = img.transpose(_UNDO_ORIENTATION[applied])
    if img is im:
        # Hand out a plain Image sharing the decoded pixels rather than the plugin object,
        # which may still hold the input bytes, a whole animated-WebP decoder, frame
        # offsets, ... A copy() would do too, but costs ~45 ms on a fresh 12 MP picture.
        img = im._new(im.im)

    if applied in (5, 6, 7, 8):  # the size read at open time was the stored, sideways one
        w, h = h, w
    return LoadedImage(img, w, h, fmt, taken_at, camera, orientation)


# ---------------------------------------------------------------------------------------
# Colour modes


def _normalise_mode(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> one of RGB, RGBA, L, LA (all of which `reduce` can shrink)."""
    mode = im.mode
    if mode in ("RGB", "RGBA", "L", "LA"):
        if "transparency" in im.info and mode in ("RGB", "L"):
            # A single colour marked transparent (PNG tRNS for grey/RGB images).
            return im.convert(mode + "A") if mode == "L" else im.convert("RGBA")
        return im
    if mode in ("P", "PA"):
        transparent = mode == "PA" or "transparency" in im.info or (
            im.palette is not None and im.palette.mode == "RGBA"
        )
        return im.convert("RGBA" if transparent else "RGB")
    if mode == "1":
        if "transparency" in im.info:
            return im.convert("LA")
        return im.convert("L")
    if mode in ("RGBa", "La"):  # premultiplied alpha
        return im.convert("RGBA")
    if mode == "F" or mode == "I" or mode.startswith("I;16"):
        return _high_depth_to_l(im)
    if mode == "LAB":
        return _lab_to_rgb(im)
    # CMYK (Adobe's inverted CMYK JPEGs are un-inverted by Pillow's decoder), YCbCr, HSV,
    # RGBX, ... Pillow's conversion is fine for these.
    try:
        return im.convert("RGB")
    except ValueError as exc:
        raise UnreadableImage(f"unsupported colour mode ({mode})") from exc


def _high_depth_to_l(im: Image.Image) -> Image.Image:
    """16/32-bit integer and float greys -> 8-bit, scaled, where Pillow would just clip.

    Integers are scaled by the bit depth their values actually use, not blindly by 16 bits:
    scanners and cameras often store 10-, 12- or 14-bit samples in 16-bit containers, and
    those would otherwise come out nearly black. Floats in [0, 1] are treated as unit
    intensities; anything else (negative, or beyond 16 bits) is stretched min..max.
    """
    try:
        arr = np.asarray(im)
    except Exception:  # noqa: BLE001 - exotic I;16 variants numpy cannot view directly
        arr = np.asarray(im.convert("I"))
    if arr.ndim != 2:
        raise UnreadableImage(f"unsupported colour mode ({im.mode})")
    if arr.dtype.kind == "f":
        a = np.nan_to_num(arr.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if lo >= 0.0 and hi <= 1.0:
            out = a * 255.0
        elif lo >= 0.0 and hi <= 255.0:
            out = a
        else:
            out = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
        out8 = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    else:
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo >= 0 and hi <= 0xFFFF:
            shift = max(8, hi.bit_length()) - 8
            out8 = (arr.astype(np.uint16, copy=False) >> shift).astype(np.uint8)
        else:
            a = arr.astype(np.float64)
            out8 = np.clip((a - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(out8))


def _lab_to_rgb(im: Image.Image) -> Image.Image:
    try:
        return im.convert("RGB")  # Pillow >= 11 converts LAB itself
    except ValueError:
        from PIL import ImageCms

        lab_to_srgb = ImageCms.buildTransform(
            ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
        )
        return ImageCms.applyTransform(im, lab_to_srgb)


def _flatten(im: Image.Image) -> Image.Image:
    """RGB/RGBA/L/LA -> RGB, alpha composited over BACKGROUND (see there)."""
    if im.mode == "RGB":
        return im
    if im.mode == "L":
        return im.convert("RGB")
    alpha = im.getchannel("A")
    lo, _ = alpha.getextrema()
    if lo == 255:  # fully opaque after all
        return im.convert("RGB") if im.mode == "RGBA" else im.convert("L").convert("RGB")
    grey = im.getchannel("L") if im.mode == "LA" else im.convert("L")
    a = np.asarray(alpha, dtype=np.uint32)
    weight = int(a.sum())
    light = weight > 0 and int((np.asarray(grey, dtype=np.uint32) * a).sum()) > _LIGHT_CONTENT * weight
    background = DARK_BACKGROUND if light else BACKGROUND
    if im.mode == "LA":
        out = Image.new("L", im.size, background[0])
        out.paste(grey, mask=alpha)
        return out.convert("RGB")
    out = Image.new("RGB", im.size, background)
    out.paste(im, mask=alpha)
    return out


# ---------------------------------------------------------------------------------------
# Metadata: never a reason to refuse a picture


def _metadata(im: Image.Image) -> tuple[int, str | None, str | None]:
    """(orientation, taken_at, camera), each falling back to a neutral value on any error."""
    try:
        exif = im.getexif()
    except Exception:  # noqa: BLE001 - broken EXIF is common; the pixels are still fine
        return 1, None, None
    return _exif_metadata(exif)


def _exif_metadata(exif: Image.Exif) -> tuple[int, str | None, str | None]:
    orientation = taken_at = camera = None
    try:
        orientation = _valid_orientation(exif.get(_TAG_ORIENTATION))
    except Exception:  # noqa: BLE001
        pass
    try:
        sub: dict = {}
        try:
            sub = dict(exif.get_ifd(_TAG_EXIF_IFD))
        except Exception:  # noqa: BLE001 - a bad Exif sub-IFD still leaves IFD0's DateTime
            pass
        for value in (sub.get(_TAG_DATETIME_ORIGINAL), sub.get(_TAG_DATETIME_DIGITIZED),
                      exif.get(_TAG_DATETIME)):
            taken_at = _parse_exif_datetime(value)
            if taken_at:
                break
    except Exception:  # noqa: BLE001
        taken_at = None
    try:
        camera = _camera_name(exif.get(_TAG_MAKE), exif.get(_TAG_MODEL))
    except Exception:  # noqa: BLE001
        camera = None
    return orientation or 1, taken_at, camera


def _orientation_now(im: Image.Image) -> int:
    try:
        return _valid_orientation(im.getexif().get(_TAG_ORIENTATION))
    except Exception:  # noqa: BLE001
        return 1


def _valid_orientation(value: object) -> int:
    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    if isinstance(value, bytes):
        value = value.strip(b"\x00 ") or b"0"
    try:
        o = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return 1
    return o if 1 <= o <= 8 else 1


_DATETIME_RE = re.compile(
    r"(\d{4})[:\-/.](\d{1,2})[:\-/.](\d{1,2})(?:[ T_]+(\d{1,2})[:.\-](\d{1,2})(?:[:.\-](\d{1,2}))?)?"
)


def _parse_exif_datetime(value: object) -> str | None:
    """EXIF "YYYY:MM:DD HH:MM:SS" (and common sloppy variants) -> ISO 8601, else None.

    Unset dates ("0000:00:00 00:00:00", blanks, NULs) and impossible ones give None.
    """
    if value is None:
        return None
    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    m = _DATETIME_RE.search(value.replace("\x00", " ").strip())
    if not m:
        return None
    year, month, day = int(m[1]), int(m[2]), int(m[3])
    hour, minute, second = int(m[4] or 0), int(m[5] or 0), int(m[6] or 0)
    if second == 60:  # leap second written by some firmwares
        second = 59
    if not 1800 <= year <= 2200:
        return None
    try:
        return datetime(year, month, day, hour, minute, second).isoformat()
    except ValueError:
        return None


def _clean_text(value: object) -> str:
    if isinstance(value, (tuple, list)):
        value = value[0] if value else ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return ""
    value = value.replace("\x00", " ").replace("\ufffd", " ")
    value = "".join(ch for ch in value if ch.isprintable())
    return " ".join(value.split())


def _camera_name(make: object, model: object) -> str | None:
    """"Make Model", without repeating the make: "Canon" + "Canon EOS 80D" -> "Canon EOS 80D",
    "NIKON CORPORATION" + "NIKON D750" -> "NIKON D750"."""
    make_s, model_s = _clean_text(make), _clean_text(model)
    if not model_s:
        return make_s or None
    if not make_s:
        return model_s
    low_model = model_s.lower()
    first_word = make_s.split()[0].lower()
    if low_model.startswith(make_s.lower()) or low_model.split()[0] == first_word:
        return model_s
    return f"{make_s} {model_s}"


# ---------------------------------------------------------------------------------------
# Reasons a person can read


def _too_large(w: int, h: int) -> str:
    return f"image too large: {w}×{h} px exceeds the {MAX_PIXELS // 1_000_000} MP limit"


def _too_large_reason(fp: BinaryIO, head: bytes, exc: Exception) -> str:
    """Best effort at the dimensions of a picture Pillow refused before returning it."""
    for fmt in _OPEN_FORMATS:
        try:
            factory, accept = Image.OPEN[fmt]
            accepted = accept(head) if accept is not None else True
            if not accepted or isinstance(accepted, str):
                continue
            fp.seek(0)
            w, h = factory(fp, "").size  # parses the header only; no size check, no pixels
            if w * h > MAX_PIXELS:
                return _too_large(w, h)
        except Exception:  # noqa: BLE001
            continue
    m = re.search(r"\((\d+) pixels\)", str(exc))
    if m:
        mp = int(m[1]) / 1e6
        return f"image too large: {mp:,.0f} MP exceeds the {MAX_PIXELS // 1_000_000} MP limit"
    return f"image too large (over the {MAX_PIXELS // 1_000_000} MP limit)"


def _looks_truncated(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return "truncated" in msg or "end of file" in msg or "premature end" in msg


_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"%PDF", 0, "not an image (looks like a PDF document)"),
    (b"%!PS", 0, "unsupported format (PostScript/EPS)"),
    (b"\xc5\xd0\xd3\xc6", 0, "unsupported format (EPS)"),
    (b"8BPS", 0, "unsupported format (Photoshop PSD)"),
    (b"\x00\x00\x01\x00", 0, "unsupported format (Windows icon)"),
    (b"PK\x03\x04", 0, "not an image (looks like a ZIP archive or Office document)"),
    (b"Rar!", 0, "not an image (looks like a RAR archive)"),
    (b"7z\xbc\xaf", 0, "not an image (looks like a 7-Zip archive)"),
    (b"\x1f\x8b", 0, "not an image (looks like a compressed archive)"),
    (b"ID3", 0, "not an image (looks like an audio file)"),
    (b"OggS", 0, "not an image (looks like an audio or video file)"),
    (b"\x1a\x45\xdf\xa3", 0, "not an image (looks like a video)"),
    (b"FUJIFILMCCD-RAW", 0, "unsupported format (camera RAW)"),
    (b"gimp xcf", 0, "unsupported format (GIMP XCF)"),
    (b"\xd0\xcf\x11\xe0", 0, "not an image (looks like an Office document)"),
)
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")


def _identify_failure(head: bytes) -> str:
    """Why Pillow could not even identify the file, guessed from its first bytes."""
    for magic, offset, reason in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return reason
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx",
                     b"mif1", b"msf1"):
            return "damaged or unsupported HEIF/AVIF image"
        if brand.startswith(b"crx"):
            return "unsupported format (camera RAW)"
        return "not an image (looks like a video)"
    if head[:4] == b"RIFF":
        if head[8:12] == b"WEBP":
            return "damaged WebP image"
        return "not an image (looks like a video or audio file)"
    if any(head.startswith(m) for m in _IMAGE_MAGIC):
        return "damaged or truncated image file"
    if _looks_like_text(head):
        text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
        if text.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")) or b"<html" in text:
            if b"<svg" in text:
                return "unsupported format (SVG drawing)"
            return "not an image (looks like a web page)"
        if text.startswith(b"<svg"):
            return "unsupported format (SVG drawing)"
        return "not an image (looks like a text file)"
    return "unsupported format or not an image"


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # a multi-byte character cut at the end is fine
            return False
        text = head[: exc.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\t\r\n\f" for ch in text)
    return bool(text) and printable >= 0.95 * len(text)


def _reason(exc: BaseException) -> str:
    """A short plain-language reason for an exception raised while decoding."""
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        m = re.search(r"\((\d+) pixels\)", str(exc))
        if m:
            mp = int(m[1]) / 1e6
            return f"image too large: {mp:,.0f} MP exceeds the {MAX_PIXELS // 1_000_000} MP limit"
        return "image too large"
    if isinstance(exc, MemoryError):
        return "not enough memory to decode this image"
    if isinstance(exc, RecursionError):
        return "damaged image file (too deeply nested)"
    msg = str(exc).strip()
    low = msg.lower()
    if isinstance(exc, (EOFError, struct.error)) or _looks_truncated(exc):
        return "truncated file"
    if "decoder" in low and "not available" in low:
        return "unsupported compression method"
    if re.search(r"decoder error|data stream|decoding error", low):
        return "damaged image data"
    if "unsupported" in low or "not supported" in low or "unknown" in low:
        return _with_detail("unsupported image variant", msg)
    return _with_detail("damaged image file", msg or type(exc).__name__)


def _with_detail(reason: str, detail: str) -> str:
    detail = " ".join(detail.split())
    if len(detail) > 80:
        detail = detail[:77] + "..."
    return f"{reason} ({detail})" if detail else reason
