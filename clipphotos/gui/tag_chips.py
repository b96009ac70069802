"""A photo's tags in the preview: one chip per tag with a remove button, and "Add tag" with completion.

It only shows and asks: removing a chip or adding a tag is emitted (`tagRemoved`, `tagAdded`
with the photo's path and the label's name) for the window's tags controller to store through
`Library` (a removed tag is a "no" the label learns from). `wanted(path)` asks for a photo's
tags when the preview moves to it; `set_tags` shows them when they arrive.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPoint, QRect, QSize, QStringListModel, Qt, Signal
from PySide6.QtWidgets import (QCompleter, QFrame, QLabel, QLayout, QLayoutItem, QLineEdit, QSizePolicy,
                               QToolButton, QWidget)

from clipphotos.gui.review import confidence_words
from clipphotos.gui.widgets import hbox, vbox

if TYPE_CHECKING:
    from clipphotos.tags import PhotoTag


class FlowLayout(QLayout):
    """Widgets left to right, wrapping onto the next line when the width runs out."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 6) -> None:
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._spacing = spacing
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._arrange(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._arrange(rect, move=True)

    def sizeHint(self) -> QSize:
        return self.minimumSize()

    def minimumSize(self) -> QSize:
        size = QSize()
        for item in self._items:
            size = size.expandedTo(item.minimumSize())
        return size

    def _arrange(self, rect: QRect, move: bool) -> int:
        x, y, line = rect.x(), rect.y(), 0
        for item in self._items:
            hint = item.sizeHint()
            if x + hint.width() > rect.right() + 1 and line:
                x, y, line = rect.x(), y + line + self._spacing, 0
            if move:
                item.setGeometry(QRect(QPoint(x, y), QSize(min(hint.width(), rect.width()), hint.height())))
            x += hint.width() + self._spacing
            line = max(line, hint.height())
        return y + line - rect.y()


class TagChip(QFrame):
    """One tag: its name (confidence in the tooltip) and a × that takes it off the photo."""

    removeClicked = Signal(str)

    def __init__(self, tag: PhotoTag, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tagChip")
        self.name = tag.label
        row = hbox(self, (9, 2, 3, 2), 2)
        self.text = QLabel(tag.label)
        self.text.setObjectName("tagChipText")
        row.addWidget(self.text)
        self.remove = QToolButton()
        self.remove.setObjectName("tagChipRemove")
        self.remove.setText("×")
        self.remove.setAccessibleName(f"Remove tag {tag.label}")
        self.remove.setToolTip(f"Not “{tag.label}”: take the tag off (the label learns from it)")
        self.remove.clicked.connect(lambda: self.removeClicked.emit(self.name))
        row.addWidget(self.remove)
        given = "you gave it" if tag.review == "accepted" else \
            f"{confidence_words(tag.confidence)} ({tag.confidence:.0%})"
        self.setToolTip(f"{tag.label}: {given}")
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)


class TagChips(QWidget):
    """The Tags row of the preview."""

    wanted = Signal(str)                 # a photo's tags are needed (path)
    tagRemoved = Signal(str, str)        # path, label
    tagAdded = Signal(str, str)          # path, label

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tagChips")
        self.path: str | None = None
        layout = vbox(self, (0, 0, 0, 0), 6)
        self.chip_area = QWidget()
        self.flow = FlowLayout(self.chip_area)
        layout.addWidget(self.chip_area)
        self.none = QLabel("No tags")
        self.none.setObjectName("fieldValue")
        layout.addWidget(self.none)
        self.add = QLineEdit()
        self.add.setObjectName("addTag")
        self.add.setPlaceholderText("Add tag…")
        self.add.setToolTip("Type a label (an existing one or a new one) and press Enter")
        self.add.setClearButtonEnabled(True)
        self.names = QStringListModel(self)
        completer = QCompleter(self.names, self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.add.setCompleter(completer)
        self.add.returnPressed.connect(self._add)
        layout.addWidget(self.add)
        self.chips: list[TagChip] = []

    def set_labels(self, names: list[str]) -> None:
        """The labels to complete from."""
        self.names.setStringList(names)

    def set_photo(self, path: str | None) -> None:
        """The preview moved to a photo: clear what showed, ask for its tags."""
        self.path = path
        self._show([])
        self.none.setText("…" if path else "No tags")
        if path is not None:
            self.wanted.emit(path)

    def set_tags(self, path: str, tags: list[PhotoTag]) -> None:
        if path == self.path:
            self._show(tags)

    def names_shown(self) -> list[str]:
        return [chip.name for chip in self.chips]

    def _show(self, tags: list[PhotoTag]) -> None:
        for chip in self.chips:
            self.flow.removeWidget(chip)
            chip.deleteLater()
        self.chips = []
        for tag in tags:
            chip = TagChip(tag, self.chip_area)
            chip.removeClicked.connect(self._remove)
            self.flow.addWidget(chip)
            chip.show()
            self.chips.append(chip)
        self.chip_area.setVisible(bool(tags))
        self.none.setText("No tags")
        self.none.setVisible(not tags)
        self.chip_area.updateGeometry()

    def _remove(self, name: str) -> None:
        if self.path is not None:
            self.tagRemoved.emit(self.path, name)

    def _add(self) -> None:
        name = " ".join(self.add.text().split())
        if name and self.path is not None:
            self.add.clear()
            self.tagAdded.emit(self.path, name)
