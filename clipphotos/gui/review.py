"""Reviewing a label's suggestions in the main grid: the answers, their badges, the bar above the grid.

`ReviewSession` is the plain state of one review: the user's answer per photo and the order
they were given in, so that undo takes back the *last answer*, whichever photo it was.
`CellMark` is what a grid cell shows of it, painted on top of the thumbnail by `paint_mark`:
a large ✓ or ✗ badge once answered, the label's confidence in words before. `ReviewBar` is the
key legend (always visible while reviewing), the progress line and the Apply / Done buttons.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QFrame, QHBoxLayout, QPushButton, QWidget

from clipphotos.gui.widgets import label, vbox

if TYPE_CHECKING:
    from clipphotos.tags import Decision

YES = QColor("#1e9e5a")
NO = QColor("#d64545")
# Non-breaking spaces inside each key's entry: a narrow window wraps between entries, never inside one.
LEGEND = "   ·   ".join(k.replace(" ", "\u00a0") for k in (
    "A  yes", "R  no", "U or Ctrl+Z  undo the last answer", "Space  view large", "Arrows  move"))
REVIEW_CELL = 232      # review thumbnails are large: an answer needs a good look


def confidence_words(p: float) -> str:
    """How sure the label is, in words (the numbers go in the tooltip)."""
    if p >= 0.9:
        return "very likely"
    if p >= 0.7:
        return "likely"
    if p > 0.3:
        return "unsure"
    if p > 0.1:
        return "unlikely"
    return "very unlikely"


@dataclass(frozen=True)
class CellMark:
    """What a grid cell shows of a review: the answer (None: not yet) and the label's confidence."""

    answer: bool | None
    words: str
    tooltip: str


class ReviewSession:
    """One label's suggestions under review: answers by photo and the order they came in."""

    def __init__(self, label: str, decisions: list[Decision]) -> None:
        self.label = label
        self.decisions = {d.path: d for d in decisions}
        self.order = [d.path for d in decisions]
        self.answers: dict[str, bool] = {d.path: d.review == "accepted" for d in decisions if d.review}
        self.history: list[tuple[str, bool | None]] = []     # (path, its answer before)

    def answer(self, path: str, accepted: bool) -> None:
        self.history.append((path, self.answers.get(path)))
        self.answers[path] = accepted

    def undo(self) -> tuple[str, bool | None] | None:
        """Take back the last answer; (its photo, the answer it has again), or None if none was given."""
        if not self.history:
            return None
        path, before = self.history.pop()
        if before is None:
            self.answers.pop(path, None)
        else:
            self.answers[path] = before
        return path, before

    def progress(self) -> str:
        yes = sum(self.answers.get(p) is True for p in self.order)
        no = sum(self.answers.get(p) is False for p in self.order)
        return f"{yes + no} of {len(self.order)} reviewed · {yes} yes · {no} no"

    def mark(self, path: str) -> CellMark:
        d = self.decisions[path]
        return CellMark(self.answers.get(path), confidence_words(d.confidence),
                        f"{confidence_words(d.confidence).capitalize()} ({d.confidence:.0%})\n{d.explain()}")

    def marks(self) -> dict[str, CellMark]:
        return {p: self.mark(p) for p in self.order}


def _badge_path(kind: bool, box: QRectF) -> QPainterPath:
    """A tick or a cross drawn as lines (a font may lack ✓ and ✗)."""
    path = QPainterPath()
    x, y, w = box.x(), box.y(), box.width()
    if kind:
        path.moveTo(QPointF(x + 0.27 * w, y + 0.52 * w))
        path.lineTo(QPointF(x + 0.44 * w, y + 0.69 * w))
        path.lineTo(QPointF(x + 0.74 * w, y + 0.34 * w))
    else:
        for a, b in (((0.32, 0.32), (0.68, 0.68)), ((0.68, 0.32), (0.32, 0.68))):
            path.moveTo(QPointF(x + a[0] * w, y + a[1] * w))
            path.lineTo(QPointF(x + b[0] * w, y + b[1] * w))
    return path


def paint_mark(painter: QPainter, target: QRect, mark: CellMark) -> None:
    """On top of the picture: a ring and a big ✓/✗ badge once answered, else the confidence in words."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    if mark.answer is not None:
        colour = YES if mark.answer else NO
        if not mark.answer:
            painter.fillRect(target, QColor(255, 255, 255, 110))     # a "no" fades back
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(colour, 4))
        painter.drawRoundedRect(QRectF(target).adjusted(2, 2, -2, -2), 4, 4)
        side = max(26.0, min(44.0, target.width() * 0.2))
        box = QRectF(target.right() - side - 6, target.top() + 6, side, side)
        painter.setPen(QPen(QColor("#ffffff"), 2.5))
        painter.setBrush(colour)
        painter.drawEllipse(box)
        painter.setPen(QPen(QColor("#ffffff"), max(3.0, side / 9), Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                            Qt.PenJoinStyle.RoundJoin))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(_badge_path(mark.answer, box))
    else:
        font = QFont(painter.font())
        font.setPointSizeF(max(8.0, font.pointSizeF() * 0.9))
        font.setBold(True)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        w, h = metrics.horizontalAdvance(mark.words) + 14, metrics.height() + 6
        pill = QRectF(target.left() + 6, target.bottom() - h - 6, w, h)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(20, 22, 26, 175))
        painter.drawRoundedRect(pill, h / 2, h / 2)
        painter.setPen(QColor("#ffffff"))
        painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, mark.words)
    painter.restore()


class ReviewBar(QFrame):
    """Above the grid while reviewing: the keys, the progress line, Apply and Done."""

    applyRequested = Signal()
    doneRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("reviewBar")
        layout = vbox(self, (12, 8, 12, 8), 6)
        self.legend = label(LEGEND, "reviewLegend")
        layout.addWidget(self.legend)
        row = QHBoxLayout()
        row.setSpacing(8)
        self.progress = label("", "reviewProgress")
        row.addWidget(self.progress, 1)
        self.apply_button = QPushButton("Apply to library")
        self.apply_button.setObjectName("primaryButton")
        self.apply_button.setToolTip("Decide the label on every photo, with your answers; you can undo it")
        self.apply_button.clicked.connect(self.applyRequested)
        self.done_button = QPushButton("Done")
        self.done_button.setToolTip("Stop reviewing (your answers are kept)")
        self.done_button.clicked.connect(self.doneRequested)
        row.addWidget(self.apply_button, 0, Qt.AlignmentFlag.AlignBottom)
        row.addWidget(self.done_button, 0, Qt.AlignmentFlag.AlignBottom)
        layout.addLayout(row)

    def set_progress(self, text: str) -> None:
        self.progress.setText(text)
