"""The preview pane beside the grid, and the large viewer that Enter/Space opens.

Both show the grid's thumbnail at once and swap in a sharper decode when a worker has made
it: a click never waits for a 24-megapixel JPEG.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QKeyEvent, QPainter, QPen, QPixmap, QPolygonF
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

from clipphotos.gui.photo_grid import ABSENCE, Unavailable, fit_rect
from clipphotos.gui.photo_text import PhotoTextSection, Polygon
from clipphotos.gui.tag_chips import TagChips
from clipphotos.gui.widgets import vbox
from clipphotos.gui.workers import PhotoAbsent, Runner, load_preview

if TYPE_CHECKING:
    from clipphotos.library import PhotoRecord


ZWSP = "\u200b"      # a zero-width space: where a long path may wrap
OPEN_TIP = "Open in the default viewer"
FOLDER_TIP = "Show the photo in its folder"


def format_date(taken_at: str | None) -> str:
    if not taken_at:
        return "Date unknown"
    try:
        when = datetime.fromisoformat(taken_at)
    except ValueError:
        return taken_at
    return f"{when:%a} {when.day} {when:%b %Y} · {when:%H:%M}"


def format_bytes(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit in ("bytes", "KB") else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} bytes"


class ImageView(QWidget):
    """A picture fitted and centred in the widget; a quiet message when there is none."""

    def __init__(self, background: str = "#f1f2f4", radius: int = 8, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pixmap: QPixmap | None = None
        self._message = ""
        self._background = QColor(background)
        self._radius = radius
        self.marks: list[Polygon] = []      # places on the photo to highlight (fractions of it)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_pixmap(self, pixmap: QPixmap | None, message: str = "") -> None:
        self._pixmap, self._message = pixmap, message
        self.update()

    def set_marks(self, marks: list[Polygon]) -> None:
        self.marks = marks
        self.update()

    @property
    def message(self) -> str:
        """What the view says instead of a picture ("" while it shows one)."""
        return self._message

    def has_pixmap(self) -> bool:
        return self._pixmap is not None

    def sizeHint(self) -> QSize:
        return QSize(320, 240)

    def paintEvent(self, event: object) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self._background)
        painter.drawRoundedRect(self.rect(), self._radius, self._radius)
        if self._pixmap is not None and not self._pixmap.isNull():
            size = self._pixmap.deviceIndependentSize()
            shown = fit_rect(self.rect().adjusted(8, 8, -8, -8), round(size.width()), round(size.height()))
            painter.drawPixmap(shown, self._pixmap)
            if self.marks:
                painter.setPen(QPen(QColor(255, 196, 0), 2))
                painter.setBrush(QColor(255, 214, 10, 70))
                for mark in self.marks:
                    painter.drawPolygon(QPolygonF([QPointF(shown.x() + x * shown.width(), shown.y() + y * shown.height())
                                                   for x, y in mark]))
        elif self._message:
            painter.setPen(QColor("#8a8f98") if self._background.lightness() > 128 else QColor("#b8bcc4"))
            painter.drawText(self.rect().adjusted(16, 16, -16, -16),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._message)
        painter.end()


class _SharpLoader:
    """Loads a sharp version of the photo on show; answers for another photo are dropped.

    A photo whose file is not there (its drive away, or gone) may still show its kept thumbnail:
    the failed load asks `absence` (Library.file_absence) why, and tells `on_absent`."""

    def __init__(self, runner: Runner, view: ImageView,
                 on_absent: Callable[[Unavailable], None] | None = None) -> None:
        self.runner, self.view = runner, view
        self.path: str | None = None
        self.absence: Callable[[str], str | None] | None = None   # set when a library opens
        self.on_absent = on_absent

    def show(self, photo: PhotoRecord | None, thumb: QPixmap | None, long_side: int) -> None:
        """Show `photo`, its thumbnail first."""
        self.path = photo.path if photo is not None else None
        if photo is None:
            self.view.set_pixmap(None, "Select a photo to see it here\n\n"
                                       "Space  view it large\nM  more like this\nDelete  move to trash")
            return
        self.view.set_pixmap(thumb, "" if thumb is not None else "Loading…")
        path = photo.path
        self.runner.submit(load_preview, path, long_side, self.absence,
                           on_done=lambda image: self._loaded(path, image),
                           on_failed=lambda exc: self._failed(path, exc))

    def _loaded(self, path: str, image: QImage) -> None:
        if path == self.path:
            pm = QPixmap.fromImage(image)
            pm.setDevicePixelRatio(self.view.devicePixelRatioF())
            self.view.set_pixmap(pm)

    def _failed(self, path: str, exc: BaseException) -> None:
        if path != self.path:
            return
        absent = ABSENCE.get(exc.why) if isinstance(exc, PhotoAbsent) else None
        if absent is not None and self.on_absent is not None:
            self.on_absent(absent)
        if not self.view.has_pixmap():
            self.view.set_pixmap(None, absent.tip if absent is not None else f"This photo can’t be shown: {exc}")


class PreviewPane(QFrame):
    """The selected photo: larger, with its date, camera, size, place on disk, tags, and actions."""

    openRequested = Signal(str)
    showInFolderRequested = Signal(str)
    moreLikeThisRequested = Signal(str)

    def __init__(self, runner: Runner, icons: dict[str, QIcon], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("previewPane")
        self.photo: PhotoRecord | None = None
        layout = vbox(self, (16, 16, 16, 16), 12)
        self.image = ImageView()
        self.image.setMinimumHeight(200)
        layout.addWidget(self.image, 1)
        self.loader = _SharpLoader(runner, self.image, self._file_absent)

        self.title = QLabel()
        self.title.setObjectName("previewTitle")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.when = QLabel()
        self.when.setObjectName("previewSubtitle")
        layout.addWidget(self.title)
        layout.addWidget(self.when)

        self.details = QWidget()
        grid = QGridLayout(self.details)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(6)
        self.fields: dict[str, QLabel] = {}
        for row, name in enumerate(("Camera", "Size", "Folder")):
            key = QLabel(name)
            key.setObjectName("fieldName")
            value = QLabel()
            value.setObjectName("fieldValue")
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            grid.addWidget(key, row, 0, Qt.AlignmentFlag.AlignTop)
            grid.addWidget(value, row, 1)
            self.fields[name] = value
        tags_key = QLabel("Tags")
        tags_key.setObjectName("fieldName")
        self.tag_chips = TagChips()      # the photo's tags, each removable, and "Add tag"
        grid.addWidget(tags_key, 3, 0, Qt.AlignmentFlag.AlignTop)
        grid.addWidget(self.tag_chips, 3, 1)
        grid.setColumnStretch(1, 1)
        layout.addWidget(self.details)
        self.text = PhotoTextSection(runner)
        self.text.on_marks = self.image.set_marks
        layout.addWidget(self.text)

        actions = QHBoxLayout()
        actions.setSpacing(8)
        self.open_button = QPushButton(icons.get("open", QIcon()), "Open")
        self.open_button.setToolTip(OPEN_TIP)
        self.folder_button = QPushButton(icons.get("folder", QIcon()), "Show in folder")
        actions.addWidget(self.open_button)
        actions.addWidget(self.folder_button)
        layout.addLayout(actions)
        self.like_button = QPushButton(icons.get("similar", QIcon()), "More like this")
        self.like_button.setObjectName("primaryButton")
        self.like_button.setToolTip("Find photos that look like this one (M)")
        layout.addWidget(self.like_button)
        self.open_button.clicked.connect(lambda: self.photo and self.openRequested.emit(self.photo.path))
        self.folder_button.clicked.connect(lambda: self.photo and self.showInFolderRequested.emit(self.photo.path))
        self.like_button.clicked.connect(lambda: self.photo and self.moreLikeThisRequested.emit(self.photo.path))
        self.show_photo(None, None)

    def show_photo(self, photo: PhotoRecord | None, thumb: QPixmap | None) -> None:
        self.photo = photo
        self.open_button.setToolTip(OPEN_TIP)   # until the sharp load finds no file (_file_absent)
        self.folder_button.setToolTip(FOLDER_TIP)
        for button in (self.open_button, self.folder_button, self.like_button):
            button.setEnabled(photo is not None)
        side = max(self.image.width(), self.image.height(), 480)
        self.loader.show(photo, thumb, min(2048, round(side * self.devicePixelRatioF())))
        self.details.setVisible(photo is not None)
        self.when.setVisible(photo is not None)
        self.tag_chips.set_photo(photo.path if photo is not None else None)
        if photo is None:
            self.title.setText("No photo selected")
            self.text.show_for(None, None)
            return
        self.title.setText(os.path.basename(photo.path))
        self.when.setText(format_date(photo.taken_at))
        self.fields["Camera"].setText(photo.camera or "—")
        dims = f"{photo.width} × {photo.height} px · " if photo.width and photo.height else ""
        self.fields["Size"].setText(f"{dims}{format_bytes(photo.size)}{' · ' + photo.format if photo.format else ''}")
        folder = os.path.dirname(photo.path)
        home = os.path.expanduser("~")
        shown = folder.replace(home, "~", 1) if folder.startswith(home + os.sep) else folder
        self.fields["Folder"].setText(shown.replace(os.sep, os.sep + ZWSP))   # a long path wraps, never clips
        self.fields["Folder"].setToolTip(photo.path)

    def _file_absent(self, why: Unavailable) -> None:
        """The shown photo's file turned out not to be there: no Open, and no Show in folder
        while its drive is away (the folder of a file gone since the last scan is still there)."""
        if self.photo is None:
            return
        self.open_button.setEnabled(False)
        self.open_button.setToolTip(f"{why.text}: there is no file to open now")
        if not why.folder_there:
            self.folder_button.setEnabled(False)
            self.folder_button.setToolTip(f"{why.text}: its folder is not there now")
        self.when.setText(f"{format_date(self.photo.taken_at)} · {why.text}")


class PhotoViewer(QWidget):
    """The photo large, on a dark stage: ←/→ step through the grid, Esc/Space/Enter go back."""

    stepRequested = Signal(int)
    closeRequested = Signal()

    def __init__(self, runner: Runner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("photoViewer")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        layout = vbox(self, spacing=0)
        self.image = ImageView("#17191c", radius=0)
        layout.addWidget(self.image, 1)
        self.caption = QLabel()
        self.caption.setObjectName("viewerCaption")
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.caption)
        self.loader = _SharpLoader(runner, self.image, self._file_absent)
        self.photo: PhotoRecord | None = None

    def show_photo(self, photo: PhotoRecord, thumb: QPixmap | None) -> None:
        self.photo = photo
        side = max(self.width(), self.height(), 800)
        self.loader.show(photo, thumb, min(4096, round(side * self.devicePixelRatioF())))
        self._caption()

    def _caption(self, reason: str = "") -> None:
        assert self.photo is not None
        self.caption.setText(f"{os.path.basename(self.photo.path)}   ·   {format_date(self.photo.taken_at)}"
                             f"{'   ·   ' + reason + ' (its thumbnail shown)' if reason else ''}"
                             f"      ←  →  to browse,  Esc to go back")

    def _file_absent(self, why: Unavailable) -> None:
        """The shown photo's file turned out not to be there, though its thumbnail was kept."""
        if self.photo is not None:
            self._caption(why.text)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Left, Qt.Key.Key_Up):
            self.stepRequested.emit(-1)
        elif key in (Qt.Key.Key_Right, Qt.Key.Key_Down):
            self.stepRequested.emit(1)
        elif key in (Qt.Key.Key_Escape, Qt.Key.Key_Space, Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.closeRequested.emit()
        else:
            super().keyPressEvent(event)

    def mouseDoubleClickEvent(self, event: object) -> None:
        self.closeRequested.emit()

