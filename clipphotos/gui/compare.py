"""Compare a duplicate group's files side by side: one zoom for all, panning together, a table of differences.

"The same zoom" means the same part of the scene at the same size on screen: each picture is
scaled against the group's largest one, so a half-size copy shows at 200 % of its own pixels
beside the original at 100 %, and its lost detail shows. Panning one picture pans them all to
the same place (as a share of each picture). The keys act on the highlighted picture and the
group: K keep, T trash, ←/→ another picture, N not duplicates, Enter move the trashed ones,
Page Down / Page Up the next or previous group, Escape or Space closes.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QKeyEvent, QPainter, QPixmap, QWheelEvent
from PySide6.QtWidgets import (QDialog, QFrame, QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QHeaderView, QLabel,
                               QPushButton, QSplitter, QTableWidget, QTableWidgetItem, QWidget)

from clipphotos.gui.widgets import hbox, label, vbox
from clipphotos.gui.workers import load_preview

if TYPE_CHECKING:
    from clipphotos.gui.duplicates_view import DuplicatesView, FileCard

LOAD_SIDE = 4096            # pictures are decoded up to this long side for the comparison
ZOOM_STEP = 1.25


class PicturePane(QFrame):
    """One file: its choice badge and name above a zoomable, pannable picture."""

    def __init__(self, dialog: CompareDialog, card: FileCard) -> None:
        super().__init__()
        self.dialog, self.card = dialog, card
        self.setObjectName("comparePane")
        col = vbox(self, (4, 4, 4, 4), 2)
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.RichText)
        col.addWidget(self.title)
        self.scene = QGraphicsScene(self)
        self.item = QGraphicsPixmapItem()
        self.item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene.addItem(self.item)
        self.view = QGraphicsView(self.scene)
        self.view.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.view.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.view.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.view.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.view.wheelEvent = self._wheel          # type: ignore[method-assign]
        self.view.mousePressEvent = self._pressed(self.view.mousePressEvent)  # type: ignore[method-assign]
        col.addWidget(self.view, 1)
        self.loaded_width = 0
        for bar in (self.view.horizontalScrollBar(), self.view.verticalScrollBar()):
            bar.valueChanged.connect(lambda _v: self.dialog.panned(self))

    def _pressed(self, original):  # type: ignore[no-untyped-def]
        def press(event):  # type: ignore[no-untyped-def]
            self.dialog.set_active(self)
            original(event)
        return press

    def _wheel(self, event: QWheelEvent) -> None:
        self.dialog.zoom_by(ZOOM_STEP if event.angleDelta().y() > 0 else 1 / ZOOM_STEP)

    def set_image(self, image: QImage) -> None:
        if image.isNull():
            self.title.setText(self.title.text() + " · unreadable")
            return
        self.item.setPixmap(QPixmap.fromImage(image))
        self.scene.setSceneRect(self.item.boundingRect())
        self.loaded_width = image.width()
        self.dialog.apply_zoom()

    def scale_for(self, zoom: float) -> float:
        """Display scale of this picture for the dialog's zoom (1 = the largest picture's own pixels)."""
        return zoom * self.dialog.reference_width / self.loaded_width if self.loaded_width else zoom

    def own_zoom(self) -> float:
        """How many screen pixels one of the file's own pixels takes now."""
        f = self.card.file
        return self.view.transform().m11() * self.loaded_width / max(1, f.width or self.loaded_width)

    def refresh_title(self, active: bool) -> None:
        f, kept = self.card.file, self.card.kept
        colour, mark = ("#2f9e44", "✓ KEEP") if kept else ("#e03131", "✕ TRASH")
        zoom = f" · {self.own_zoom():.0%}" if self.loaded_width else ""
        self.title.setText(f'<span style="color:{colour};font-weight:700">{mark}</span> '
                           f'{os.path.basename(f.path)}<span style="color:#6b7079">{zoom}</span>')
        self.setStyleSheet(f"#comparePane {{ border: 2px solid {colour if active else '#dfe2e6'}; "
                           f"border-radius: 6px; }}")


class CompareDialog(QDialog):
    """The current group of a DuplicatesView, its files side by side; acts through the view."""

    def __init__(self, view: DuplicatesView) -> None:
        super().__init__(view)
        self.view = view
        self.setWindowTitle("Compare duplicates")
        self.setObjectName("compareDialog")
        self.panes: list[PicturePane] = []
        self.active = 0
        self.zoom = 0.0                 # 0: fit (set once the pictures and the window are known)
        self.reference_width = 1
        self._syncing = False
        self._group_key: str | None = None
        col = vbox(self, (12, 10, 12, 10), 6)
        top = hbox(spacing=6)
        self.title = label("", "dialogTitle", wrap=False)
        top.addWidget(self.title, 1)
        for text, slot in (("Fit", self.fit), ("100 %", lambda: self.set_zoom(1.0)),
                           ("−", lambda: self.zoom_by(1 / ZOOM_STEP)), ("+", lambda: self.zoom_by(ZOOM_STEP))):
            button = QPushButton(text)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.clicked.connect(slot)
            top.addWidget(button)
        col.addLayout(top)
        self.keys = label("K keep · T trash · ←/→ picture · N not duplicates · Enter move the trashed · "
                          "Page Down/Up next/previous group · Esc close", "note")
        col.addWidget(self.keys)
        split = QSplitter(Qt.Orientation.Vertical)
        self.row_box = QWidget()
        self.row = hbox(self.row_box, (0, 0, 0, 0), 8)
        split.addWidget(self.row_box)
        self.table = QTableWidget()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        split.addWidget(self.table)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 0)
        self.split = split
        col.addWidget(split, 1)
        self.keys_to = {
            Qt.Key.Key_K: lambda: self.mark(True), Qt.Key.Key_T: lambda: self.mark(False),
            Qt.Key.Key_Left: lambda: self.set_active(self.active - 1),
            Qt.Key.Key_Right: lambda: self.set_active(self.active + 1),
            Qt.Key.Key_N: self.view.not_duplicates, Qt.Key.Key_Return: self.view.trash_others,
            Qt.Key.Key_Enter: self.view.trash_others,
            Qt.Key.Key_PageDown: lambda: self.view.step_group(1), Qt.Key.Key_PageUp: lambda: self.view.step_group(-1),
            Qt.Key.Key_Space: self.close, Qt.Key.Key_Plus: lambda: self.zoom_by(ZOOM_STEP),
            Qt.Key.Key_Minus: lambda: self.zoom_by(1 / ZOOM_STEP), Qt.Key.Key_0: self.fit,
            Qt.Key.Key_1: lambda: self.set_zoom(1.0)}
        view.groupChanged.connect(self._group_changed)
        parent = view.window()
        self.resize(max(900, int(parent.width() * 0.92)), max(600, int(parent.height() * 0.9)))

    # -- the group ---------------------------------------------------------------------------

    def _group_changed(self) -> None:
        if not self.isVisible():
            return
        if self.view.current is None:
            self.close()
        elif self.view.current.key != self._group_key or [p.card for p in self.panes] != self.view.cards:
            self.show_group()

    def show_group(self) -> None:
        """Show the view's current group (its cards carry the Keep/Trash choices)."""
        group = self.view.current
        for pane in self.panes:
            pane.setParent(None)
            pane.deleteLater()
        self.panes = []
        if group is None:
            return
        self._group_key = group.key
        self.zoom = 0.0
        self.active = 0
        self.reference_width = max((f.width or 1) for f in group.files)
        from clipphotos.gui.duplicates_view import TIER_TITLES
        self.title.setText(f"{TIER_TITLES[group.tier]} · {len(group.files)} files")
        for card in self.view.cards:
            pane = PicturePane(self, card)
            self.panes.append(pane)
            self.row.addWidget(pane, 1)
            card.choiceChanged.connect(self.refresh)
            self.view.runner.submit(load_preview, card.file.path, LOAD_SIDE,
                                    on_done=lambda image, p=pane, k=group.key: self._loaded(k, p, image),
                                    on_failed=lambda exc, p=pane, k=group.key: self._loaded(k, p, QImage()))
        self._fill_table()
        self.refresh()

    def _loaded(self, key: str, pane: PicturePane, image: QImage) -> None:
        if key == self._group_key and pane in self.panes:
            pane.set_image(image)

    def _fill_table(self) -> None:
        """The differences: a row per thing compared, a column per file, what differs from the keep in colour."""
        from clipphotos.gui.duplicates_view import file_details
        cards = self.view.cards
        keep = next((c.file for c in cards if c.kept), cards[0].file)
        columns = [file_details(c.file, keep) for c in cards]
        names = [what for what, _, _ in columns[0]]
        self.table.clear()
        self.table.setRowCount(len(names))
        self.table.setColumnCount(len(cards))
        self.table.setVerticalHeaderLabels(names)
        self.table.setHorizontalHeaderLabels([os.path.basename(c.file.path) for c in cards])
        for col, rows in enumerate(columns):
            for row, (what, text, differs) in enumerate(rows):
                cell = QTableWidgetItem(text)
                cell.setToolTip(text)
                if differs and cards[col].file is not keep:
                    font = cell.font()
                    font.setBold(True)
                    cell.setFont(font)
                    cell.setForeground(Qt.GlobalColor.darkRed)
                self.table.setItem(row, col, cell)
        rows = self.table.verticalHeader().defaultSectionSize() * len(names)
        self.table.setMinimumHeight(rows + self.table.horizontalHeader().sizeHint().height() + 4)

    def refresh(self) -> None:
        for n, pane in enumerate(self.panes):
            pane.refresh_title(n == self.active)
        if self.panes:
            self._fill_table()

    # -- keys --------------------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:
        action = self.keys_to.get(Qt.Key(event.key()))
        if action is None or event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            super().keyPressEvent(event)        # Escape closes
            return
        action()

    def set_active(self, pane: PicturePane | int) -> None:
        n = self.panes.index(pane) if isinstance(pane, PicturePane) else pane
        if self.panes:
            self.active = max(0, min(len(self.panes) - 1, n))
            self.refresh()

    def mark(self, keep: bool) -> None:
        if self.panes:
            self.panes[self.active].card.set_kept(keep)

    # -- zoom and pan --------------------------------------------------------------------------

    def fit(self) -> None:
        self.zoom = 0.0
        self.apply_zoom()

    def set_zoom(self, zoom: float) -> None:
        self.zoom = max(0.02, min(16.0, zoom))
        self.apply_zoom()

    def zoom_by(self, factor: float) -> None:
        self.set_zoom((self.zoom or self._fit_zoom()) * factor)

    def _fit_zoom(self) -> float:
        """The zoom that shows the whole of every picture."""
        best = 16.0
        for pane in self.panes:
            f = pane.card.file
            w, h = f.width or 1, f.height or 1
            scale = self.reference_width / w            # this picture's size at zoom 1, per own pixel
            vp = pane.view.viewport()
            best = min(best, (vp.width() - 4) / (w * scale), (vp.height() - 4) / (h * scale))
        return max(0.02, best)

    def apply_zoom(self) -> None:
        zoom = self.zoom or self._fit_zoom()
        for pane in self.panes:
            pane.view.resetTransform()
            scale = pane.scale_for(zoom)
            pane.view.scale(scale, scale)
        self.refresh()
        if self.panes:
            self.panned(self.panes[self.active])

    def panned(self, source: PicturePane) -> None:
        """Every picture follows to the same place, as a share of its scrollable range."""
        if self._syncing:
            return
        self._syncing = True
        try:
            for attr in ("horizontalScrollBar", "verticalScrollBar"):
                bar = getattr(source.view, attr)()
                share = (bar.value() - bar.minimum()) / max(1, bar.maximum() - bar.minimum())
                for pane in self.panes:
                    if pane is not source:
                        other = getattr(pane.view, attr)()
                        other.setValue(round(other.minimum() + share * (other.maximum() - other.minimum())))
        finally:
            self._syncing = False

    def resizeEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        super().resizeEvent(event)
        if not self.zoom:
            self.apply_zoom()
