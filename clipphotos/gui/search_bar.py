"""The search bar: search as you type, `-word` to exclude, and a filter popup for folder and dates.

Everything it knows is one immutable `Query`, emitted (debounced while typing) whenever it
changes; the main window turns it into a `Library.search` call, or into browsing when there is
nothing to search for.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date

from PySide6.QtCore import QDate, QEvent, QObject, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QIcon, QKeyEvent
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDateEdit, QFormLayout, QFrame, QHBoxLayout, QLineEdit,
                               QPushButton, QToolButton, QWidget)

from clipphotos.gui.widgets import hbox, label, vbox

DEBOUNCE_MS = 250
_TOKEN = re.compile(r'-"([^"]+)"|-(\S+)')


@dataclass(frozen=True)
class Query:
    """What to show: a description and/or a picture to match, and what narrows it down."""

    text: str = ""
    negative: tuple[str, ...] = ()
    image: str | None = None
    folder: str | None = None
    since: date | None = None
    until: date | None = None
    tag: str | None = None          # only photos this label applies to (the sidebar's Tags section)

    @property
    def is_search(self) -> bool:
        return bool(self.text) or self.image is not None

    @property
    def filter_count(self) -> int:
        return sum(x is not None for x in (self.folder, self.since, self.until))


def split_negatives(raw: str) -> tuple[str, tuple[str, ...]]:
    """'dog -cat -"red car"' -> ('dog', ('cat', 'red car')): minus terms are excluded."""
    negatives = tuple(a or b for a, b in _TOKEN.findall(raw) if (a or b).strip("-"))
    positive = " ".join(_TOKEN.sub(" ", raw).split())
    return positive, negatives


def excluded_words(raw: str) -> tuple[str, ...]:
    """The filter popup's 'exclude' field: words or phrases separated by commas."""
    return tuple(w.strip() for w in raw.split(",") if w.strip())


class FilterPopup(QFrame):
    """Exclude words, folder, from/to dates: the parts of a query that are not the description."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setObjectName("filterPopup")
        self._folders: list[str | None] = [None]
        layout = vbox(self, (16, 14, 16, 14), 10)
        layout.addWidget(label("Filters", "popupTitle"))
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        form.setHorizontalSpacing(12)
        form.setVerticalSpacing(8)
        self.exclude = QLineEdit()
        self.exclude.setPlaceholderText("e.g. screenshot, text")
        self.exclude.setClearButtonEnabled(True)
        form.addRow("Exclude", self.exclude)
        self.folder = QComboBox()
        self.folder.addItem("All folders")
        self.folder.setMinimumWidth(240)
        form.addRow("Folder", self.folder)
        self.use_since, self.since = self._date_row(form, "From")
        self.use_until, self.until = self._date_row(form, "To")
        layout.addLayout(form)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        reset = QPushButton("Clear filters")
        reset.setObjectName("flatButton")
        reset.clicked.connect(self.clear)
        buttons.addWidget(reset)
        layout.addLayout(buttons)
        self.exclude.textChanged.connect(self.changed)
        self.folder.currentIndexChanged.connect(self.changed)

    def _date_row(self, form: QFormLayout, title: str) -> tuple[QCheckBox, QDateEdit]:
        row = QHBoxLayout()
        check = QCheckBox()
        edit = QDateEdit(QDate.currentDate())
        edit.setCalendarPopup(True)
        edit.setDisplayFormat("d MMM yyyy")
        edit.setEnabled(False)
        check.toggled.connect(edit.setEnabled)
        check.toggled.connect(self.changed)
        edit.dateChanged.connect(lambda _d: check.isChecked() and self.changed.emit())
        row.addWidget(check)
        row.addWidget(edit, 1)
        form.addRow(title, row)
        return check, edit

    def set_folders(self, folders: list[str]) -> None:
        current = self.current_folder()
        self.folder.blockSignals(True)
        self.folder.clear()
        self.folder.addItem("All folders")
        for path in folders:
            self.folder.addItem(os.path.basename(path.rstrip(os.sep)) or path)
            self.folder.setItemData(self.folder.count() - 1, path, Qt.ItemDataRole.ToolTipRole)
        self._folders = [None, *folders]
        self.folder.setCurrentIndex(self._folders.index(current) if current in self._folders else 0)
        self.folder.blockSignals(False)

    def current_folder(self) -> str | None:
        i = self.folder.currentIndex()
        return self._folders[i] if 0 <= i < len(self._folders) else None

    def set_folder(self, path: str | None) -> None:
        if path in self._folders:
            self.folder.setCurrentIndex(self._folders.index(path))

    def dates(self) -> tuple[date | None, date | None]:
        since = self.since.date().toPython() if self.use_since.isChecked() else None
        until = self.until.date().toPython() if self.use_until.isChecked() else None
        return since, until  # type: ignore[return-value]

    def clear(self) -> None:
        for w in (self.exclude, self.folder, self.use_since, self.use_until):
            w.blockSignals(True)
        self.exclude.clear()
        self.folder.setCurrentIndex(0)
        self.use_since.setChecked(False)
        self.use_until.setChecked(False)
        self.since.setEnabled(False)
        self.until.setEnabled(False)
        for w in (self.exclude, self.folder, self.use_since, self.use_until):
            w.blockSignals(False)
        self.changed.emit()


class SearchBar(QWidget):
    """The query field, the 'like this photo' chip and the filter button."""

    changed = Signal(object)          # Query
    leaveDown = Signal()              # Down arrow or Enter in the field: go to the results

    def __init__(self, icons: dict[str, QIcon], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("searchBar")
        self._image: str | None = None
        self._tag: str | None = None
        self._query = Query()
        layout = hbox(self, spacing=8)

        self.field = QLineEdit()
        self.field.setObjectName("searchField")
        self.field.setPlaceholderText("Describe a photo, e.g. “dog on a beach at sunset”")
        self.field.setToolTip("Search as you type. Put a minus before a word to leave it out: "
                              "beach -people. Esc clears.")
        self.field.setClearButtonEnabled(True)
        self.field.addAction(QAction(icons.get("search", QIcon()), "", self.field),
                             QLineEdit.ActionPosition.LeadingPosition)
        self.field.installEventFilter(self)
        layout.addWidget(self.field, 1)

        self.chip = QToolButton()
        self.chip.setObjectName("likeChip")
        self.chip.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.chip.setIcon(icons.get("close", QIcon()))
        self.chip.setLayoutDirection(Qt.LayoutDirection.RightToLeft)
        self.chip.setToolTip("Stop matching this photo")
        self.chip.clicked.connect(lambda: self.set_image(None))
        self.chip.hide()
        layout.addWidget(self.chip)

        self.filters = FilterPopup(self)
        self.filter_button = QToolButton()
        self.filter_button.setObjectName("filterButton")
        self.filter_button.setIcon(icons.get("filter", QIcon()))
        self.filter_button.setText("Filters")
        self.filter_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.filter_button.setToolTip("Exclude words, pick a folder or a date range")
        self.filter_button.clicked.connect(self.show_filters)
        layout.addWidget(self.filter_button)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._emit)
        self.field.textChanged.connect(lambda _t: self._debounce.start())
        self.filters.changed.connect(self._emit)

    # -- state ---------------------------------------------------------------------------

    def query(self) -> Query:
        text, negatives = split_negatives(self.field.text())
        since, until = self.filters.dates()
        return Query(text, negatives + excluded_words(self.filters.exclude.text()), self._image,
                     self.filters.current_folder(), since, until, self._tag)

    def set_image(self, path: str | None) -> None:
        """Match photos like this one ('more like this'); None goes back to the description alone."""
        self._image = path
        if path is None:
            self.chip.hide()
        else:
            name = os.path.basename(path)
            self.chip.setText(f"Like {name if len(name) <= 28 else name[:25] + '…'}")
            self.chip.setToolTip(f"Showing photos like {path}\nClick to stop")
            self.chip.show()
        self._emit()

    def set_folder(self, path: str | None) -> None:
        self.filters.set_folder(path)   # emits through `changed` when it differs

    def set_tag(self, name: str | None) -> None:
        """Show only the photos a label applies to (None: all), under the same search and filters."""
        self._tag = name
        self._emit()

    def set_folders(self, folders: list[str]) -> None:
        self.filters.set_folders(folders)

    def clear(self) -> None:
        """Esc: back to browsing (filters stay: they are not part of what was typed)."""
        self.field.clear()          # not with signals blocked: the field's clear button listens too
        self._debounce.stop()
        self.set_image(None)

    def focus(self) -> None:
        self.field.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.field.selectAll()

    def show_filters(self) -> None:
        self.filters.adjustSize()
        below = self.filter_button.mapToGlobal(QPoint(self.filter_button.width(), self.filter_button.height() + 4))
        self.filters.move(below.x() - self.filters.width(), below.y())
        self.filters.show()
        self.filters.exclude.setFocus()

    def _emit(self) -> None:
        self._debounce.stop()
        query = self.query()
        count = query.filter_count + (1 if self.filters.exclude.text().strip() else 0)
        self.filter_button.setText(f"Filters · {count}" if count else "Filters")
        self.filter_button.setProperty("active", bool(count))
        self.filter_button.style().unpolish(self.filter_button)
        self.filter_button.style().polish(self.filter_button)
        if query != self._query:
            self._query = query
            self.changed.emit(query)

    def flush(self) -> None:
        """Emit now what is pending (Enter does not wait for the debounce)."""
        if self._debounce.isActive():
            self._emit()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.field and event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
            key = event.key()
            if key == Qt.Key.Key_Escape:
                if self.field.text() or self._image is not None:
                    self.clear()
                else:
                    self.leaveDown.emit()
                return True
            if key in (Qt.Key.Key_Down, Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.flush()
                self.leaveDown.emit()
                return True
        return super().eventFilter(watched, event)
