"""The words read in the photo on show: a selectable section under the preview, and the query's
words marked on the photo itself.

Self-contained: the preview pane holds the section, the main window tells it which photo and
which query; the lines come from `Library.photo_text` on a worker.
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from clipphotos.gui.widgets import label, vbox
from clipphotos.gui.workers import Runner
from clipphotos.text_search import highlight_spans, query_terms

if TYPE_CHECKING:
    from clipphotos.library import PhotoRecord
    from clipphotos.library import Library
    from clipphotos.text_reader import TextLine

Polygon = list[tuple[float, float]]
MAX_LINES = 12          # more is summed up ("… and 30 more lines"); the whole text stays selectable


def word_marks(lines: list[TextLine], terms: list[str]) -> list[Polygon]:
    """Where the query's words sit on the photo: corners as fractions of the picture.

    A word's place along its line is taken in proportion to its characters; a line that runs up
    or down the picture (turned text) is marked whole.
    """
    marks = []
    for line in lines:
        spans = highlight_spans(line.text, terms)
        if not spans or len(line.box) != 4:
            continue
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = line.box
        if abs(x1 - x0) < abs(y3 - y0):      # turned: mark the line
            marks.append(list(line.box))
            continue
        n = max(1, len(line.text))
        for start, end in spans:
            a, b = start / n, end / n
            marks.append([(x0 + (x1 - x0) * a, y0 + (y1 - y0) * a), (x0 + (x1 - x0) * b, y0 + (y1 - y0) * b),
                          (x3 + (x2 - x3) * b, y3 + (y2 - y3) * b), (x3 + (x2 - x3) * a, y3 + (y2 - y3) * a)])
    return marks


def lines_html(lines: list[TextLine], terms: list[str]) -> str:
    """The lines as rich text, the query's words in bold on a highlight."""
    out = []
    for line in lines[:MAX_LINES]:
        text, pos, parts = line.text, 0, []
        for start, end in highlight_spans(text, terms):
            parts.append(html.escape(text[pos:start]))
            parts.append(f"<span style='background:#ffe58a;font-weight:600'>{html.escape(text[start:end])}</span>")
            pos = end
        parts.append(html.escape(text[pos:]))
        out.append("".join(parts))
    if len(lines) > MAX_LINES:
        out.append(f"<i>… and {len(lines) - MAX_LINES} more lines</i>")
    return "<br>".join(out)


class PhotoTextSection(QWidget):
    """'Text in this photo': the lines read in it, selectable; hidden when it holds none."""

    def __init__(self, runner: Runner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("photoText")
        self.runner = runner
        self.path: str | None = None
        self.lines: list[TextLine] = []
        self.marks: list[Polygon] = []
        self.on_marks = lambda marks: None        # the preview's photo draws them
        layout = vbox(self, (0, 0, 0, 0), 4)
        layout.addWidget(label("Text in this photo", "fieldName"))
        self.text = QLabel()
        self.text.setObjectName("photoTextLines")
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                          | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self.text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        layout.addWidget(self.text)
        self.hide()

    def show_for(self, library: Library | None, photo: PhotoRecord | None, query: str = "") -> None:
        """Show the text of `photo` (read on a worker), the words of `query` marked."""
        self.path = photo.path if photo is not None else None
        self._show([], [])
        if library is None or photo is None:
            return
        path, terms = photo.path, query_terms(query)
        self.runner.submit(library.photo_text, path, on_done=lambda lines: self._loaded(path, lines, terms))

    def plain_text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    def _loaded(self, path: str, lines: list[TextLine], terms: list[str]) -> None:
        if path == self.path:
            self._show(lines, terms)

    def _show(self, lines: list[TextLine], terms: list[str]) -> None:
        self.lines = lines
        self.marks = word_marks(lines, terms)
        self.text.setText(lines_html(lines, terms))
        self.setVisible(bool(lines))
        self.on_marks(self.marks)
