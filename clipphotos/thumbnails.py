"""The thumbnail cache: small JPEGs of every photo, keyed by content hash, under the library folder.

A thumbnail is named after the hash of the file's bytes (the catalog's `contents.hash`), so a
moved or copied photo keeps its thumbnail, and an edited one gets a new one. Files live at
`<library>/thumbnails/<hash[:2]>/<hash>.jpg`, written atomically (temporary file, then rename)
so a crash or two threads making the same thumbnail never leave half a JPEG behind.

Thumbnails come from the one decoder (`load_image`), either during indexing from the very
decode the model gets (`from_decoded`, when that decode is big enough) or on demand (`ensure`).
Qt-free: the GUI turns the JPEGs into pixmaps itself.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from clipphotos.loader import LoadedImage, load_image
from clipphotos.private import private_dir, private_file

THUMB_SIZE = 256          # long side in pixels: sharp in grid cells up to ~256 px
JPEG_QUALITY = 85
# A decode whose long side reaches this share of THUMB_SIZE is sharp enough to reuse
# (224-px models give 224..447 px decodes; 0.85 × 256 = 217).
_REUSE_SHARE = 0.85


class ThumbnailCache:
    """Thumbnails of one library, generated from the one loader and looked up by content hash."""

    def __init__(self, folder: str | os.PathLike[str], size: int = THUMB_SIZE) -> None:
        self.folder = Path(folder)
        self.size = size
        self.failed = 0                  # thumbnails the indexer could not write (a full disk, say)
        self.failure: str | None = None  # the last reason
        self._count_lock = threading.Lock()

    def path_for(self, digest: str) -> Path:
        return self.folder / digest[:2] / f"{digest}.jpg"

    def lookup(self, digest: str) -> Path | None:
        """The thumbnail's file if it has been made, else None."""
        path = self.path_for(digest)
        return path if path.is_file() else None

    def ensure(self, digest: str, source: str | os.PathLike[str]) -> Path:
        """The thumbnail's file, made from `source` first if need be (raises UnreadableImage)."""
        return self.lookup(digest) or self.make(digest, source)

    def make(self, digest: str, source: str | os.PathLike[str] | bytes) -> Path:
        """Decode `source` at thumbnail size (cheap: JPEG DCT scaling) and store its thumbnail."""
        loaded = load_image(source, target=self.size)
        return self._save(digest, loaded.image)

    def from_decoded(self, digest: str, loaded: object, reduced: Image.Image | None = None) -> None:
        """Indexer hook: store the thumbnail from the model's decode when that decode is sharp enough.

        `reduced`, the decode already shrunk for the model, is used instead when it is still at
        least thumbnail-sized: one resize less per photo. Too small a decode (a small model's
        input) is left alone; `ensure` makes it later from the file. Errors never reach the
        indexer (a missing thumbnail is just made again), they are only counted.
        """
        if not isinstance(loaded, LoadedImage):
            return
        long_side = max(loaded.image.size)
        full_size = long_side >= max(loaded.width, loaded.height)
        if long_side < self.size * _REUSE_SHARE and not full_size:
            return
        picture = reduced if reduced is not None and self.size <= max(reduced.size) < long_side else loaded.image
        try:
            if self.lookup(digest) is None:
                self._save(digest, picture)
        except OSError as exc:   # counted and reported with the run (`IndexReport.thumbnails_failed`)
            with self._count_lock:
                self.failed += 1
                self.failure = exc.strerror or str(exc)

    def discard(self, digests: Iterable[str]) -> None:
        """Drop the thumbnails of contents the library no longer holds."""
        for digest in digests:
            try:
                self.path_for(digest).unlink()
            except OSError:
                pass

    def _save(self, digest: str, image: Image.Image) -> Path:
        path = self.path_for(digest)
        if not path.parent.is_dir():   # thumbnails show private photos: their folders are the owner's alone
            private_dir(self.folder)
            private_dir(path.parent)
        thumb = image
        w, h = image.size
        if max(w, h) > self.size:
            scale = self.size / max(w, h)
            # resize, not thumbnail(): the picture may be the indexer's, which must stay as it is.
            thumb = image.resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                 Image.Resampling.LANCZOS, reducing_gap=2.0)
        if thumb.mode != "RGB":
            thumb = thumb.convert("RGB")
        # A name per thread: two workers making the same thumbnail must not share a temp file.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            thumb.save(tmp, "JPEG", quality=JPEG_QUALITY, optimize=False)
            private_file(tmp)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path
