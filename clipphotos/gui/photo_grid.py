"""The thumbnail grid: Qt's own model/view classes, so 100 000 photos scroll like 100.

- `PhotoGridModel` holds the photos as a plain list; `data()` never touches the disk, it asks
  the `ThumbnailProvider` for a pixmap it may already have.
- `ThumbnailProvider` keeps an LRU of pixmaps and loads missing thumbnails on a small pool:
  the newest request first (what is on screen now), stale requests dropped after a fast fling.
  Workers read the cached JPEG (or make it from the photo through the one loader) into a
  QImage; the pixmap is made on the UI thread when it arrives.
- `PhotoDelegate` paints a square cell: the picture fitted inside, a placeholder while loading.
- `PhotoGrid` is the QListView (IconMode, uniform sizes) that stretches its cells to the width.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (QAbstractListModel, QModelIndex, QObject, QPersistentModelIndex, QRect, QRunnable,
                            QSize, Qt, QThreadPool, QTimer, Signal)
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle, QStyledItemDelegate, QStyleOptionViewItem

if TYPE_CHECKING:
    from clipphotos.library import PhotoRecord
    from clipphotos.thumbnails import ThumbnailCache

PhotoRole = Qt.ItemDataRole.UserRole + 1
ScoreRole = Qt.ItemDataRole.UserRole + 2
MarkRole = Qt.ItemDataRole.UserRole + 3     # a review's CellMark (gui/review.py), painted over the picture
DividerRole = Qt.ItemDataRole.UserRole + 4   # True on the row that separates a search's matches from the rest
DIVIDER_TEXT = "Less likely"
DEFAULT_CELL = 176
PLACEHOLDER = QColor("#e8eaee")
SELECTION = QColor("#2f6fde")
SELECTION_FILL = QColor(47, 111, 222, 34)
HOVER_FILL = QColor(0, 0, 0, 14)
DIVIDER_LINE = QColor("#b8bdc6")
DIVIDER_TEXT_COLOUR = QColor("#5f6672")
ABSENT_VEIL = QColor(255, 255, 255, 120)     # over a kept thumbnail whose file is not there
ABSENT_BAND = QColor(40, 44, 52, 190)
ABSENT_TEXT = QColor("#ffffff")


class Unavailable:
    """DecorationRole value of a photo whose thumbnail cannot be made: what its cell says, and
    why; `folder_there`: whether its folder can still be shown (not while its drive is away)."""

    def __init__(self, text: str, tip: str, folder_there: bool = True) -> None:
        self.text, self.tip, self.folder_there = text, tip, folder_there


BROKEN = Unavailable("Can’t open", "This photo cannot be opened")
AWAY = Unavailable("Drive not connected", "Its drive is not connected: the photo is kept until it is back",
                   folder_there=False)
GONE = Unavailable("File missing", "The file is no longer there (moved or deleted since the last scan)")
ABSENCE = {"away": AWAY, "gone": GONE}    # Library.file_absence → what a cell (and the preview) says


class _ThumbSignals(QObject):
    # content hash, QImage or Unavailable (cannot be made) or None (not asked for), the path
    # looked at, and AWAY or GONE when that file is not there (None: it is, or cannot be told)
    loaded = Signal(str, object, str, object)


class _Drain(QRunnable):
    """A pool worker: takes the newest request, loads it, repeats until the queue is empty."""

    def __init__(self, provider: ThumbnailProvider) -> None:
        super().__init__()
        self.provider = provider

    def run(self) -> None:
        p = self.provider
        while True:
            with p._lock:
                if not p._queue or p._closed:
                    p._draining -= 1
                    return
                path, (digest, box, wanted) = p._queue.popitem(last=True)
                cache, absence = p._cache, p._absence
            image = _load_thumbnail(cache, digest, path, box) if wanted and cache is not None else None
            # A kept thumbnail shows whether or not its file is there: one lstat says which (and
            # why, in the cell's words: a drive away is not a broken photo).
            why = ABSENCE.get(absence(path) or "") if absence is not None else None
            if wanted and image is None:
                image = why or BROKEN
            p._signals.loaded.emit(digest, image, path, why)


def _load_thumbnail(cache: ThumbnailCache, digest: str, path: str, box: int) -> QImage | None:
    from clipphotos.library import UnreadableImage
    try:
        file = cache.ensure(digest, path)
    except (UnreadableImage, OSError):
        return None
    image = QImage(str(file))
    if image.isNull():
        return None
    if max(image.width(), image.height()) > box:
        image = image.scaled(box, box, Qt.AspectRatioMode.KeepAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)
    return image


class ThumbnailProvider(QObject):
    """Pixmaps of thumbnails by content hash: an LRU in memory, loaded on demand in the background."""

    ready = Signal(str)          # a thumbnail arrived (or is known to be broken), by hash; "": look again

    MAX_QUEUE = 300              # requests beyond this (old ones) are forgotten: scrolled past

    def __init__(self, parent: QObject | None = None, capacity: int = 1200, threads: int = 2) -> None:
        super().__init__(parent)
        self._cache: ThumbnailCache | None = None
        self._absence: Callable[[str], str | None] | None = None
        self._lru: OrderedDict[str, QPixmap] = OrderedDict()
        self._unavailable: dict[str, Unavailable] = {}
        self._absent: OrderedDict[str, Unavailable | None] = OrderedDict()   # path → looked at: AWAY, GONE, None
        self._capacity = capacity
        self._queue: OrderedDict[str, tuple[str, int, bool]] = OrderedDict()  # path → hash, box, load it
        self._lock = threading.Lock()
        self._draining = 0
        self._closed = False
        self._box = round(DEFAULT_CELL * 1.3)
        self._dpr = 1.0
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads)
        self._signals = _ThumbSignals()
        self._signals.loaded.connect(self._on_loaded)

    def set_cache(self, cache: ThumbnailCache | None, absence: Callable[[str], str | None] | None = None) -> None:
        """Thumbnails from `cache`; `absence` (Library.file_absence) says why one cannot be made."""
        self._cache, self._absence = cache, absence
        self.clear()

    def set_box(self, px: int, device_pixel_ratio: float = 1.0) -> None:
        """Largest side the grid draws a picture at; cached pixmaps of another size are dropped."""
        box = max(32, round(px * device_pixel_ratio))
        if box != self._box:
            self._box, self._dpr = box, device_pixel_ratio
            self.clear()

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
        self._lru.clear()
        self._unavailable.clear()
        self._absent.clear()

    def cached(self, digest: str) -> QPixmap | None:
        """The pixmap if it is in memory now; never schedules a load."""
        return self._lru.get(digest)

    def recheck_missing(self) -> None:
        """Forget which files were not there (a drive may be back): their cells ask again when
        painted. A photo that could not be opened stays so: its file has not changed."""
        self._absent.clear()
        for digest in [d for d, why in self._unavailable.items() if why is not BROKEN]:
            del self._unavailable[digest]
        self.ready.emit("")   # the grid repaints what it shows: those cells ask again

    def absent(self, path: str) -> Unavailable | None:
        """AWAY or GONE when this photo's file was found not there as its cell was painted, even
        if its kept thumbnail shows; None when it is there or not looked at yet."""
        return self._absent.get(path)

    def unavailable(self, digest: str) -> Unavailable | None:
        """Why the thumbnail could not be made, once a load has said so; never schedules a load."""
        return self._unavailable.get(digest)

    def pixmap(self, digest: str, path: str) -> QPixmap | Unavailable | None:
        """The pixmap, why it cannot be made, or None while it loads (the load is scheduled, newest
        first). A pixmap in memory for a path not looked at yet (another file of the same bytes,
        or after recheck_missing) has its file looked at in the background."""
        pm = self._lru.get(digest)
        if pm is not None:
            self._lru.move_to_end(digest)
            if path not in self._absent:
                self._schedule(path, digest, False)
            return pm
        if digest in self._unavailable:
            return self._unavailable[digest]
        self._schedule(path, digest, True)
        return None

    def _schedule(self, path: str, digest: str, wanted: bool) -> None:
        """Queue a look at `path` (and the load of its thumbnail when `wanted`), newest first."""
        with self._lock:
            if path in self._queue:
                self._queue.move_to_end(path)
                if wanted and not self._queue[path][2]:
                    self._queue[path] = (digest, self._box, True)
            else:
                self._queue[path] = (digest, self._box, wanted)
                while len(self._queue) > self.MAX_QUEUE:
                    self._queue.popitem(last=False)
            start = self._draining < self._pool.maxThreadCount()
            if start:
                self._draining += 1
        if start:
            self._pool.start(_Drain(self))

    def _on_loaded(self, digest: str, image: QImage | Unavailable | None, path: str, why: Unavailable | None) -> None:
        self._absent[path] = why
        self._absent.move_to_end(path)
        while len(self._absent) > 4 * self._capacity:
            self._absent.popitem(last=False)
        if isinstance(image, Unavailable):
            self._unavailable[digest] = image
        elif image is not None:
            pm = QPixmap.fromImage(image)
            pm.setDevicePixelRatio(self._dpr)
            self._lru[digest] = pm
            self._lru.move_to_end(digest)
            while len(self._lru) > self._capacity:
                self._lru.popitem(last=False)
        self.ready.emit(digest)

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            self._queue.clear()
        self._pool.waitForDone(2000)


class PhotoGridModel(QAbstractListModel):
    """The photos on show (browsing or search results), in order."""

    def __init__(self, provider: ThumbnailProvider, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.provider = provider
        self._photos: list[PhotoRecord] = []
        self._scores: Sequence[float] | None = None
        self._divider: int | None = None     # the "Less likely" row sits before this photo
        self._marks: dict[str, Any] = {}     # path → review.CellMark while a label is reviewed

    # -- contents ------------------------------------------------------------------------

    def set_photos(self, photos: Sequence[PhotoRecord], scores: Sequence[float] | None = None,
                   divider: int | None = None) -> None:
        """Show these photos; `divider` puts a "Less likely" row before that photo (a search's first non-match)."""
        self.beginResetModel()
        self._photos = list(photos)
        self._scores = list(scores) if scores is not None else None
        self._divider = divider if divider is not None and 0 < divider < len(self._photos) else None
        self.endResetModel()

    def divider_row(self) -> int | None:
        return self._divider

    def _photo_index(self, row: int) -> int | None:
        """The photo a row shows; None for the divider or past the end."""
        if self._divider is not None and row >= self._divider:
            row = row - 1 if row > self._divider else -1
        return row if 0 <= row < len(self._photos) else None

    def _row(self, i: int) -> int:
        return i + 1 if self._divider is not None and i >= self._divider else i

    def set_marks(self, marks: dict[str, Any]) -> None:
        """Review marks by path (empty: none); cells repaint."""
        self._marks = dict(marks)
        if self._photos:
            self.dataChanged.emit(self.index(0), self.index(self.rowCount() - 1), [MarkRole])

    def set_mark(self, path: str, mark: Any) -> None:
        self._marks[path] = mark
        row = self.row_of(path)
        if row is not None:
            self.dataChanged.emit(self.index(row), self.index(row), [MarkRole])

    def mark(self, row: int) -> Any:
        photo = self.photo(row)
        return self._marks.get(photo.path) if photo is not None else None

    def remove_paths(self, paths: Iterable[str]) -> None:
        """Drop rows (trashed files) without resetting the view: selection and scroll stay."""
        gone = set(paths)
        for i in sorted((i for i, p in enumerate(self._photos) if p.path in gone), reverse=True):
            row = self._row(i)
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._photos[i]
            if self._scores is not None:
                self._scores = [*self._scores[:i], *self._scores[i + 1:]]
            if self._divider is not None and i < self._divider:
                self._divider -= 1
            self.endRemoveRows()

    def photo(self, row: int) -> PhotoRecord | None:
        i = self._photo_index(row)
        return self._photos[i] if i is not None else None

    def is_divider(self, row: int) -> bool:
        return self._divider is not None and row == self._divider

    def photos(self) -> list[PhotoRecord]:
        return list(self._photos)

    def thumbnail(self, row: int) -> QPixmap | Unavailable | None:
        """The row's pixmap, why it cannot be made, or None while it loads (which this call schedules)."""
        photo = self.photo(row)
        return self.provider.pixmap(photo.hash, photo.path) if photo is not None else None

    def absent(self, row: int) -> Unavailable | None:
        """Why the row's file is not there (its drive away, or gone), as far as known; None if it is."""
        photo = self.photo(row)
        if photo is None:
            return None
        why = self.provider.unavailable(photo.hash)
        return why if why in (AWAY, GONE) else self.provider.absent(photo.path)

    def row_of(self, path: str) -> int | None:
        for i, photo in enumerate(self._photos):
            if photo.path == path:
                return self._row(i)
        return None

    # -- Qt model ------------------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._photos) + (self._divider is not None)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        if self.is_divider(index.row()):
            return {DividerRole: True, Qt.ItemDataRole.DisplayRole: DIVIDER_TEXT,
                    Qt.ItemDataRole.AccessibleTextRole: DIVIDER_TEXT,
                    Qt.ItemDataRole.ToolTipRole: "The photos after this match the search less clearly"}.get(role)
        i = self._photo_index(index.row())
        if i is None:
            return None
        photo = self._photos[i]
        if role == Qt.ItemDataRole.DecorationRole:
            return self.provider.pixmap(photo.hash, photo.path)
        if role == PhotoRole:
            return photo
        if role == MarkRole:
            return self._marks.get(photo.path)
        if role == Qt.ItemDataRole.ToolTipRole:
            if photo.path in self._marks:
                return f"{os.path.basename(photo.path)}\n{self._marks[photo.path].tooltip}"
            when = photo.taken_at.replace("T", " ")[:16] if photo.taken_at else "date unknown"
            missing = self.provider.unavailable(photo.hash) or self.provider.absent(photo.path)
            return f"{os.path.basename(photo.path)}\n{when}" + (f"\n{missing.tip}" if missing else "")
        if role == Qt.ItemDataRole.AccessibleTextRole:
            missing = self.provider.unavailable(photo.hash) or self.provider.absent(photo.path)
            return os.path.basename(photo.path) + (f", {missing.text.lower()}" if missing else "")
        if role == ScoreRole and self._scores is not None:
            return self._scores[i]
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid() or self.is_divider(index.row()):
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable


def fit_rect(outer: QRect, width: int, height: int) -> QRect:
    """The largest rectangle of the picture's aspect ratio centred in `outer`."""
    if width <= 0 or height <= 0:
        return QRect(outer)
    scale = min(outer.width() / width, outer.height() / height)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    return QRect(outer.x() + (outer.width() - w) // 2, outer.y() + (outer.height() - h) // 2, w, h)


class PhotoDelegate(QStyledItemDelegate):
    """Paints one cell: the photo fitted in a square, rounded; a soft placeholder while it loads."""

    PADDING = 5

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cell = QSize(DEFAULT_CELL, DEFAULT_CELL)

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        return self.cell

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        cell = option.rect.adjusted(2, 2, -2, -2)
        if index.model().is_divider(index.row()):
            self._paint_divider(painter, cell)
            painter.restore()
            return
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected or option.state & QStyle.StateFlag.State_MouseOver:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(SELECTION_FILL if selected else HOVER_FILL)
            painter.drawRoundedRect(cell, 8, 8)
        inner = cell.adjusted(self.PADDING, self.PADDING, -self.PADDING, -self.PADDING)
        # Ask the model directly, not through index.data(): PySide6 6.12 drops a reference to
        # None each time an empty QVariant comes back to Python, and a long scroll then aborts.
        model = index.model()
        pm = model.thumbnail(index.row())
        photo = model.photo(index.row())
        if isinstance(pm, QPixmap) and not pm.isNull():
            size = pm.deviceIndependentSize()
            target = fit_rect(inner, round(size.width()), round(size.height()))
            clip = QPainterPath()
            clip.addRoundedRect(target, 4, 4)
            painter.setClipPath(clip)
            painter.drawPixmap(target, pm)
            absent = model.absent(index.row())
            if absent is not None:    # the kept thumbnail of a file not there: faded, and saying why
                self._paint_absent(painter, target, absent)
            painter.setClipping(False)
        else:
            w, h = (photo.width or 4, photo.height or 3) if photo is not None else (4, 3)
            target = fit_rect(inner, w, h)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(PLACEHOLDER)
            painter.drawRoundedRect(target, 4, 4)
            if isinstance(pm, Unavailable):
                painter.setPen(QColor("#6b7079"))
                painter.drawText(target.adjusted(6, 4, -6, -4),
                                 Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, pm.text)
        if selected:
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(SELECTION, 3))
            painter.drawRoundedRect(target.adjusted(-1, -1, 1, 1), 5, 5)
        mark = model.mark(index.row()) if hasattr(model, "mark") else None
        if mark is not None:
            from clipphotos.gui.review import paint_mark
            paint_mark(painter, target, mark)     # last: on top of the picture and the selection
        painter.restore()


    def _paint_absent(self, painter: QPainter, target: QRect, why: Unavailable) -> None:
        """Veil a kept thumbnail whose file is not there and name why in a band along its foot."""
        painter.fillRect(target, ABSENT_VEIL)
        font = painter.font()
        font.setPointSizeF(font.pointSizeF() * 0.85)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        band = QRect(target.left(), target.bottom() - metrics.height() - 6, target.width(), metrics.height() + 7)
        painter.fillRect(band, ABSENT_BAND)
        painter.setPen(ABSENT_TEXT)
        text = metrics.elidedText(why.text, Qt.TextElideMode.ElideRight, band.width() - 10)
        painter.drawText(band, Qt.AlignmentFlag.AlignCenter, text)

    def _paint_divider(self, painter: QPainter, cell: QRect) -> None:
        """The "Less likely" cell: a rule down its left edge and the words, so the matches end visibly."""
        painter.setPen(QPen(DIVIDER_LINE, 2))
        painter.drawLine(cell.left() + 3, cell.top() + 10, cell.left() + 3, cell.bottom() - 10)
        font = painter.font()
        font.setPointSizeF(font.pointSizeF() * 1.1)
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(DIVIDER_TEXT_COLOUR)
        painter.drawText(cell.adjusted(12, 0, -6, 0), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                         f"{DIVIDER_TEXT} →")


class PhotoGrid(QListView):
    """The grid view: square cells that stretch to fill the width, pixel scrolling."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.base_cell = DEFAULT_CELL
        self.delegate = PhotoDelegate(self)
        self.setItemDelegate(self.delegate)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setUniformItemSizes(True)
        self.setWrapping(True)
        self.setSpacing(0)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setSelectionRectVisible(True)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setDragEnabled(False)
        self.setMouseTracking(True)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.setFrameShape(QListView.Shape.NoFrame)
        # 100 000 cells are laid out a batch at a time between events: the grid never freezes.
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(2000)
        self.setObjectName("photoGrid")
        # Arriving thumbnails repaint the visible cells, at most once a frame: cheaper than
        # finding their rows among 100 000 for dataChanged, and what is visible is all that counts.
        self._repaint = QTimer(self)
        self._repaint.setSingleShot(True)
        self._repaint.setInterval(16)
        self._repaint.timeout.connect(self.viewport().update)
        self._relayout()

    def setModel(self, model: Any) -> None:
        super().setModel(model)
        provider = getattr(model, "provider", None)
        if provider is not None:
            provider.ready.connect(self._thumbnail_arrived)
        self._relayout()

    def _thumbnail_arrived(self, digest: str) -> None:
        if not self._repaint.isActive():
            self._repaint.start()

    def set_cell_size(self, px: int) -> None:
        self.base_cell = px
        self._relayout()

    def cell_size(self) -> QSize:
        return self.gridSize()

    def keyboardSearch(self, search: str) -> None:
        """Letters are shortcuts here (M: more like this), not a jump to a file name."""

    def resizeEvent(self, event: Any) -> None:
        self._relayout()
        super().resizeEvent(event)

    def _relayout(self) -> None:
        # Set aside what QListView's own wrapping sets aside (the scroll bar, always, and twice
        # the style's default frame, 2 px in Fusion, even with no frame), so the last column
        # never wraps and the scroll bar's coming and going never reflows the grid.
        slack = self.verticalScrollBar().sizeHint().width() + 2 * max(2, self.style().pixelMetric(
            QStyle.PixelMetric.PM_DefaultFrameWidth)) + 2
        width = max(1, self.maximumViewportSize().width() - slack)
        columns = max(1, width // self.base_cell)
        side = max(self.base_cell, width // columns)
        size = QSize(side, side)
        if size != self.gridSize():
            self.delegate.cell = size
            self.setGridSize(size)
            self.verticalScrollBar().setSingleStep(max(20, side // 4))
        model = self.model()
        provider = getattr(model, "provider", None)
        if provider is not None:
            # Pixmaps are kept at the size of a slightly grown cell, so resizing keeps them.
            provider.set_box(round(self.base_cell * 1.3), self.devicePixelRatioF())
