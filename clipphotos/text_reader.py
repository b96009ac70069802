"""Reading the words in a photo: receipts, signs, notes, documents, screenshots.

CLIP sees that a photo holds text but cannot read it; this module reads it with `rapidocr`,
whose wheel ships the PP-OCR detection, orientation and recognition models (ONNX), run by
`onnxruntime` on the CPU, fully offline (the models are loaded from the package's own folder by
path, so nothing is ever downloaded).

Speed is the design problem: most photos hold no text, and reading one at the recogniser's
default settings costs over a second. So a photo is read in two steps:
- the gate: on a small picture (`GATE_SIDE`, the thumbnail the library keeps anyway), first a
  sub-millisecond look for thin contrasted strokes (flat pictures have none), then the detector
  alone, with lenient thresholds, keeping only boxes shaped like lines. No line, no text: the
  photo is done for a few tens of milliseconds.
- the reading, only when the gate found something: the detector again on a sharper picture
  (`READ_SIDE`), then orientation and recognition on the boxes it found. Lines turned by 90° are
  cut out upright by the cropper, lines turned by 180° are turned back by the orientation model;
  if what is read is read with little confidence, the picture is tried turned by 90° both ways.
Pictures come in upright (the loader applies EXIF orientation).
"""
from __future__ import annotations

import json
import logging
import os
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:   # Pillow is imported where pictures are read: a search by words needs only `fold`
    from PIL import Image

GATE_SIDE = 256          # the gate's long side: the thumbnail's size (thumbnails.THUMB_SIZE)
READ_SIDE = 1280         # long side the text is read at (a 12 MP JPEG decodes at 1/4 scale for it)
MIN_SCORE = 0.5          # lines recognised with less confidence are dropped
SURE_SCORE = 0.8         # below this best line, the picture is also tried turned by 90°
# The gate errs on the side of reading: a false alarm costs one reading, a miss loses the text.
GATE_THRESH = 0.25
GATE_BOX_THRESH = 0.4
STROKE_KERNEL = 9        # px at GATE_SIDE: strokes thinner than this count as fine detail
STROKE_CONTRAST = 40     # grey levels a stroke stands out of its surroundings by
MIN_STROKE_SHARE = 0.0005  # share of the picture's pixels in strokes below which it holds no text
MAX_LINE_SHARE = 0.3     # a gate box thicker than this share of the picture's short side is no line

_MODELS = {"Det": "PP-OCRv6_det_small.onnx", "Rec": "PP-OCRv6_rec_small.onnx",
           "Cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx"}


class TextReaderUnavailable(RuntimeError):
    """rapidocr, onnxruntime or the models are missing: the text pass cannot run here."""


@dataclass(frozen=True)
class TextLine:
    """One line read in a picture."""

    text: str
    score: float
    box: tuple[tuple[float, float], ...]
    """The line's 4 corners as fractions (x, y) of the upright picture's width and height."""

    def box_json(self) -> str:
        return json.dumps([[round(x, 4), round(y, 4)] for x, y in self.box])


def fold(text: str) -> str:
    """The form text is searched in: no accents, no case, single spaces ("Café  DÉJÀ" → "cafe deja")."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(plain.casefold().split())


def reader_key() -> str:
    """What read the text (stored with it, so a better reader can tell what to read again)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        installed = version("rapidocr")
    except PackageNotFoundError:  # pragma: no cover - depends on the installation
        installed = "?"
    return f"rapidocr-{installed}/PP-OCRv6-small/gate{GATE_SIDE}/read{READ_SIDE}"


class TextReader:
    """The gate and the reader, loaded once per process (`shared_reader`)."""

    def __init__(self, threads: int | None = None) -> None:
        try:
            import rapidocr
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise TextReaderUnavailable(f"reading text needs rapidocr and onnxruntime ({exc})") from exc
        models = Path(rapidocr.__file__).resolve().parent / "models"
        missing = [name for name in _MODELS.values() if not (models / name).is_file()]
        if missing:
            raise TextReaderUnavailable(f"rapidocr's models are missing from {models}: {', '.join(missing)}")
        threads = threads or max(1, min(4, (os.cpu_count() or 2) // 2))
        common = {"Global.log_level": "error",   # "no text found" is no warning here
                  "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                  "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                  **{f"{part}.model_path": str(models / name) for part, name in _MODELS.items()}}
        self._gate = RapidOCR(params={**common, "Global.use_cls": False, "Global.use_rec": False,
                                      "Det.limit_type": "max", "Det.limit_side_len": GATE_SIDE,
                                      "Det.thresh": GATE_THRESH, "Det.box_thresh": GATE_BOX_THRESH})
        self._reader = RapidOCR(params={**common, "Global.text_score": MIN_SCORE,
                                        "Det.limit_type": "max", "Det.limit_side_len": READ_SIDE})
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        self._lock = threading.Lock()

    def has_text(self, picture: Image.Image) -> bool:
        """The gate: whether the detector finds anything like a line of text in a small picture."""
        small = _fit(picture, GATE_SIDE)
        if not _has_fine_detail(small):
            return False
        # No lock: onnxruntime runs sessions from many threads, and the gate's settings never change.
        found = self._gate(_bgr(small), use_det=True, use_cls=False, use_rec=False)
        boxes = getattr(found, "boxes", None)
        return boxes is not None and any(_line_like(box, min(small.size)) for box in boxes)

    def read(self, picture: Image.Image) -> list[TextLine]:
        """Every line of text in an upright picture, in reading order (top to bottom, left to right)."""
        picture = _fit(picture, READ_SIDE)
        lines = self._read(picture, 0)
        if lines and max(line.score for line in lines) < SURE_SCORE:
            for turn in (90, 270):
                turned = self._read(picture, turn)
                if _weight(turned) > _weight(lines):
                    lines = turned
        return lines

    def _read(self, picture: Image.Image, turn: int) -> list[TextLine]:
        """Read the picture turned `turn` degrees counter-clockwise; boxes come back unturned."""
        image = picture.rotate(turn, expand=True) if turn else picture
        with self._lock:
            result = self._reader(_bgr(image))
        if getattr(result, "txts", None) is None or result.boxes is None:
            return []
        w, h = picture.size
        lines = []
        for box, text, score in zip(result.boxes, result.txts, result.scores):
            text = " ".join(str(text).split())
            if score < MIN_SCORE or not any(ch.isalnum() for ch in text):
                continue
            corners = tuple(_unturn(float(x), float(y), turn, w, h) for x, y in np.asarray(box)[:4])
            lines.append(TextLine(text, float(score), tuple((x / w, y / h) for x, y in corners)))
        return lines


def _has_fine_detail(picture: Image.Image) -> bool:
    """Whether the picture has enough thin, contrasted strokes to hold any text the detector could
    find at this size: a tenth of its cost, and it spares it flat pictures (graphics, plain
    backgrounds, skies). Strokes thinner than the kernel stand out of morphological top-hat and
    black-hat; a 4-letter word as small as the detector still finds here shows about twice the
    share asked for, photos of anything textured show a hundred times more."""
    import cv2  # rapidocr's own dependency
    grey = np.asarray(picture.convert("L"))
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (STROKE_KERNEL, STROKE_KERNEL))
    strokes = np.maximum(cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, kernel),
                         cv2.morphologyEx(grey, cv2.MORPH_TOPHAT, kernel))
    return float(np.mean(strokes > STROKE_CONTRAST)) >= MIN_STROKE_SHARE


def _line_like(box: np.ndarray, short_side: int) -> bool:
    """Whether a detected box is shaped like a line of text: longer than thick, and not a blob
    filling much of the picture (the detector, made lenient for the gate, sees text in shapes)."""
    corners = np.asarray(box, dtype=np.float64)[:4]
    sides = np.linalg.norm(corners - np.roll(corners, -1, axis=0), axis=1)
    thickness, length = min(sides[0], sides[1]), max(sides[0], sides[1])
    return thickness <= MAX_LINE_SHARE * short_side and length >= 1.5 * thickness


def _weight(lines: list[TextLine]) -> float:
    return sum(len(line.text) * line.score for line in lines)


def _unturn(x: float, y: float, turn: int, w: int, h: int) -> tuple[float, float]:
    """A point of the picture turned by `turn` (PIL's counter-clockwise rotate) back on the picture (w×h)."""
    if turn == 90:
        return w - y, x
    if turn == 270:
        return y, h - x
    return x, y


def _fit(picture: Image.Image, side: int) -> Image.Image:
    """The picture with its long side at most `side` (what the detector would shrink it to anyway)."""
    if max(picture.size) <= side:
        return picture.convert("RGB") if picture.mode != "RGB" else picture
    scale = side / max(picture.size)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    from PIL import Image
    return picture.convert("RGB").resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _bgr(picture: Image.Image) -> np.ndarray:
    """OpenCV's channel order, which rapidocr expects of arrays."""
    return np.ascontiguousarray(np.asarray(picture.convert("RGB"))[:, :, ::-1])


_shared: TextReader | None = None
_shared_lock = threading.Lock()


def shared_reader() -> TextReader:
    """The process's one reader (its models take a second or two to load)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = TextReader()
        return _shared
