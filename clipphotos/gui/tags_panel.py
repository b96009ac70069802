"""The Tags panel of the sidebar: the user's labels, their suggestions, review by keyboard, apply, export.

It only calls `Library.labels` (clipphotos.tags), always on a worker thread through a
`workers.Runner`; the UI thread just shows answers. Reviewing is fast on purpose: A accepts,
R rejects, U forgets the answer, and the cursor moves on at once. Answers are stored as they
are given and the label is refitted once the keys have been quiet for a moment, so a burst of
reviews costs one refit, after which the suggestions reload.

Signals: `tagsChanged` when stored tags changed (a run, a refit), `photoActivated(path)` to
show a suggested photo (Space or double click), `message(text)` for the status bar, and
`suggestionsShown(label)` once a label's suggestions are on screen.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QKeyEvent, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QLabel, QLineEdit, QListWidget,
                               QListWidgetItem, QPushButton, QToolButton, QVBoxLayout, QWidget)

from clipphotos.gui.workers import Runner, pil_to_qimage

if TYPE_CHECKING:
    from clipphotos.library import Library
    from clipphotos.tags import Decision, LabelInfo

REFIT_MS = 1200          # quiet time after the last review before the label is refitted
SUGGESTIONS = 60         # suggestions shown per label
THUMB_PX = 72
PATH_ROLE = Qt.ItemDataRole.UserRole
NAME_ROLE = Qt.ItemDataRole.UserRole + 1
ANSWER_MARKS = {True: "✓ ", False: "✗ ", None: ""}


def parse_label(text: str) -> tuple[str, list[str]]:
    """'receipts: a photo of a shopping receipt; a scanned invoice' → (name, prompts)."""
    name, _, rest = text.partition(":")
    return name.strip(), [p.strip() for p in rest.split(";") if p.strip()]


# -- work done on pool threads (no Qt widgets touched) ----------------------------------------


def load_labels(library: Library) -> list[LabelInfo]:
    return library.labels.info()


def load_suggestions(library: Library, name: str, uncertain: bool,
                     thumb_px: int = THUMB_PX) -> list[tuple[Decision, QImage | None]]:
    """The label's suggestions with a small picture each (from the thumbnail cache when it has one)."""
    found = library.labels.suggestions(name, limit=SUGGESTIONS, uncertain_first=uncertain, include_reviewed=True)
    return [(d, _thumbnail(library, d.path, thumb_px)) for d in found]


def _thumbnail(library: Library, path: str, px: int) -> QImage | None:
    from clipphotos.loader import UnreadableImage, load_image
    photo = library.catalog.photo_by_path(path)
    cached = library.thumbnails.lookup(photo.hash) if photo is not None else None
    try:
        image = load_image(cached or path, target=px).image
    except (UnreadableImage, OSError):
        return None
    image.thumbnail((px, px))
    return pil_to_qimage(image)


# -- widgets --------------------------------------------------------------------------------


class SuggestionList(QListWidget):
    """Suggested photos as thumbnails; A / R / U review the current one, Space shows it."""

    answered = Signal(str, object)      # path, True (accept) / False (reject) / None (forget)
    showRequested = Signal(str)

    KEYS = {Qt.Key.Key_A: True, Qt.Key.Key_R: False, Qt.Key.Key_U: None}

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tagSuggestions")
        self.setViewMode(QListWidget.ViewMode.IconMode)
        self.setIconSize(QSize(THUMB_PX, THUMB_PX))
        self.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.setMovement(QListWidget.Movement.Static)
        self.setUniformItemSizes(True)
        self.setWordWrap(True)
        self.setSpacing(4)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.itemDoubleClicked.connect(lambda item: self.showRequested.emit(item.data(PATH_ROLE)))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        item = self.currentItem()
        key = Qt.Key(event.key())
        if item is not None and key in self.KEYS and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            self.answered.emit(item.data(PATH_ROLE), self.KEYS[key])
            self.setCurrentRow(min(self.currentRow() + 1, self.count() - 1))
            return
        if item is not None and key == Qt.Key.Key_Space:
            self.showRequested.emit(item.data(PATH_ROLE))
            return
        super().keyPressEvent(event)


class TagsPanel(QWidget):
    """Create labels, review their suggestions, apply them to the library and export XMP."""

    tagsChanged = Signal()
    photoActivated = Signal(str)
    message = Signal(str)
    suggestionsShown = Signal(str)

    def __init__(self, runner: Runner | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tagsPanel")
        self.runner = runner or Runner(1, self)
        self.library: Library | None = None
        self._generation = 0
        self._pending: set[str] = set()          # labels with reviews not refitted yet
        self._want: str | None = None            # the label to select once the list reloads
        self._shown: str | None = None           # the label whose suggestions are on screen
        self._refit = QTimer(self)
        self._refit.setSingleShot(True)
        self._refit.setInterval(REFIT_MS)
        self._refit.timeout.connect(self.refit_now)
        self._build()
        self._set_enabled(False)

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(6)
        title = QLabel("TAGS")
        title.setObjectName("tagsTitle")
        font = title.font()                  # like the sidebar's section headers
        font.setPointSizeF(font.pointSizeF() * 0.8)
        font.setBold(True)
        title.setFont(font)
        title.setStyleSheet("color: #8a8f98")
        title.setToolTip("Your own labels: ClipPhotos suggests the photos they fit, you confirm")
        layout.addWidget(title)
        self.new_label = QLineEdit()
        self.new_label.setObjectName("newLabel")
        self.new_label.setPlaceholderText("New label, e.g. receipts: a scanned invoice")
        self.new_label.setToolTip("A name, optionally followed by ':' and describing phrases separated by ';'")
        self.new_label.returnPressed.connect(self.create_label)
        layout.addWidget(self.new_label)

        self.labels = QListWidget()
        self.labels.setObjectName("tagLabels")
        self.labels.setMaximumHeight(150)
        self.labels.currentItemChanged.connect(lambda *_: self.load_suggestions())
        layout.addWidget(self.labels)

        row = QHBoxLayout()
        self.order = QComboBox()
        self.order.addItems(["Most confident", "Least sure"])
        self.order.setToolTip("Least sure first: the answers that teach the label most")
        self.order.currentIndexChanged.connect(lambda *_: self.load_suggestions())
        row.addWidget(self.order, 1)
        self.remove_button = QToolButton()
        self.remove_button.setText("Remove")
        self.remove_button.setToolTip("Forget the selected label, its tags and reviews")
        self.remove_button.clicked.connect(self.remove_label)
        row.addWidget(self.remove_button)
        layout.addLayout(row)

        self.suggestions = SuggestionList()
        self.suggestions.answered.connect(self.answer)
        self.suggestions.showRequested.connect(self.photoActivated)
        self.suggestions.currentItemChanged.connect(self._explain_current)
        layout.addWidget(self.suggestions, 1)
        self.why = QLabel("A accept · R reject · U undo · Space show")
        self.why.setObjectName("tagWhy")
        self.why.setWordWrap(True)
        layout.addWidget(self.why)

        buttons = QHBoxLayout()
        self.apply_button = QPushButton("Apply to library")
        self.apply_button.setToolTip("Calibrate every label on the library and tag all photos")
        self.apply_button.clicked.connect(self.apply)
        self.export_button = QPushButton("Export XMP")
        self.export_button.setToolTip("Write the tags into .xmp sidecars beside the photos (photos are not modified)")
        self.export_button.clicked.connect(self.export)
        buttons.addWidget(self.apply_button)
        buttons.addWidget(self.export_button)
        layout.addLayout(buttons)

    def _set_enabled(self, enabled: bool) -> None:
        for w in (self.new_label, self.labels, self.order, self.remove_button, self.suggestions,
                  self.apply_button, self.export_button):
            w.setEnabled(enabled)

    # -- state ---------------------------------------------------------------------------

    def set_library(self, library: Library | None) -> None:
        """Show this library's labels (None: an empty, disabled panel)."""
        self.library = library
        self._pending.clear()
        self._shown = None
        self.labels.clear()
        self.suggestions.clear()
        self._set_enabled(library is not None)
        if library is not None:
            self.reload_labels()

    def current_label(self) -> str | None:
        item = self.labels.currentItem()
        return item.data(NAME_ROLE) if item is not None else None

    def _submit(self, fn: Any, *args: Any, on_done: Any) -> None:
        self.runner.submit(fn, *args, on_done=on_done, on_failed=lambda exc: self._say(f"Tags: {exc}"))

    def _say(self, text: str) -> None:
        self.why.setText(text)
        self.message.emit(text)

    # -- labels --------------------------------------------------------------------------

    def reload_labels(self) -> None:
        if self.library is not None:
            self._submit(load_labels, self.library, on_done=self._show_labels)

    def _show_labels(self, infos: list[LabelInfo]) -> None:
        keep, self._want = self._want or self.current_label(), None
        self.labels.blockSignals(True)
        self.labels.clear()
        for info in infos:
            item = QListWidgetItem(f"{info.name}  ·  {info.tagged:,}")
            item.setData(NAME_ROLE, info.name)
            cut = f"threshold {info.threshold:+.3f} ({info.method})" if info.threshold is not None else "not applied yet"
            item.setToolTip("\n".join([cut, *(f"“{p}”" for p in info.prompts),
                                       f"{info.accepted} accepted, {info.rejected} rejected by you"]))
            self.labels.addItem(item)
            if info.name == keep:
                self.labels.setCurrentItem(item)
        if self.labels.currentItem() is None and self.labels.count():
            self.labels.setCurrentRow(0)
        self.labels.blockSignals(False)
        self.load_suggestions()

    def create_label(self) -> None:
        name, prompts = parse_label(self.new_label.text())
        if not name or self.library is None:
            return
        self.new_label.clear()
        library = self.library

        def create() -> str:
            return library.labels.add(name, prompts).name
        self._submit(create, on_done=self._label_created)

    def _label_created(self, name: str) -> None:
        self._say(f"Label “{name}” created: suggestions below; Apply tags the library.")
        self._want = name
        self.reload_labels()

    def remove_label(self) -> None:
        name = self.current_label()
        if name is None or self.library is None:
            return
        library = self.library
        self._submit(lambda: library.labels.remove(name), on_done=lambda _: self._changed())

    # -- suggestions and review ----------------------------------------------------------

    def load_suggestions(self) -> None:
        name = self.current_label()
        self._generation += 1
        if name != self._shown:
            self.suggestions.clear()     # another label's photos must not linger under this one
        if name is None or self.library is None:
            return
        gen = self._generation
        self._submit(load_suggestions, self.library, name, self.order.currentIndex() == 1,
                     on_done=lambda found: self._show_suggestions(gen, name, found))

    def _show_suggestions(self, gen: int, name: str, found: list[tuple[Decision, QImage | None]]) -> None:
        if gen != self._generation:
            return  # the user moved on to another label or order
        keep = self.suggestions.currentRow() if name == self._shown else 0
        self._shown = name
        self.suggestions.clear()
        for decision, image in found:
            item = QListWidgetItem(self._caption(decision))
            item.setData(PATH_ROLE, decision.path)
            item.setToolTip(f"{decision.path}\n{decision.explain()}")
            if image is not None:
                item.setIcon(QPixmap.fromImage(image))
            if not decision.applies:
                item.setForeground(QColor("#8a8f98"))
            self.suggestions.addItem(item)
        if self.suggestions.count():
            self.suggestions.setCurrentRow(max(0, min(keep, self.suggestions.count() - 1)))
        self.suggestionsShown.emit(name)

    @staticmethod
    def _caption(d: Decision, answer: bool | None = None) -> str:
        if answer is None and d.review is not None:
            answer = d.review == "accepted"
        return f"{ANSWER_MARKS[answer]}{d.confidence:.0%}"

    def _explain_current(self, item: QListWidgetItem | None, *_: Any) -> None:
        if item is not None:
            self.why.setText(item.toolTip().split("\n", 1)[-1])

    def answer(self, path: str, accepted: bool | None) -> None:
        """Store the user's answer now; refit the label once the keys go quiet."""
        name = self.current_label()
        if name is None or self.library is None:
            return
        for i in range(self.suggestions.count()):
            item = self.suggestions.item(i)
            if item.data(PATH_ROLE) == path:
                item.setText(ANSWER_MARKS[accepted] + item.text().lstrip("✓✗ "))
        library = self.library

        def store() -> None:
            library.labels.review(name, [path], accepted, refit=False)
        self._pending.add(name)
        self._submit(store, on_done=lambda _: self._refit.start())

    def refit_now(self) -> None:
        """Decide the reviewed labels again on the whole library (the answers are already stored)."""
        self._refit.stop()
        if not self._pending or self.library is None:
            return
        names, self._pending = sorted(self._pending), set()
        library = self.library
        self._submit(lambda: library.labels.run(names), on_done=lambda _: self._changed())

    # -- library-wide actions ------------------------------------------------------------

    def apply(self) -> None:
        if self.library is None:
            return
        library = self.library
        self._say("Tagging the library…")
        self._pending.clear()
        self._submit(lambda: library.labels.run(), on_done=self._applied)

    def _applied(self, result: Any) -> None:
        tagged = sum(bool(t) for t in result.tags.values())
        self._say(f"Tagged {tagged:,} of {len(result.tags):,} photos.")
        self._changed()

    def export(self) -> None:
        if self.library is None:
            return
        library = self.library
        self._say("Writing XMP sidecars…")
        self._submit(lambda: library.labels.export_xmp(), on_done=self._exported)

    def _exported(self, report: Any) -> None:
        failed = f", {len(report.failed)} failed" if report.failed else ""
        self._say(f"{len(report.written):,} sidecars written, {report.unchanged:,} up to date{failed}.")

    def _changed(self) -> None:
        self.tagsChanged.emit()
        self.reload_labels()
