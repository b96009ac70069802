"""Tagging in the window: labels in the sidebar, review in the main grid, chips in the preview.

`TagsController` conducts it; the widgets only show and ask:
- the sidebar's Tags section lists the labels with the photos each applies to, and its
  new-label field makes one (gui/sidebar.py);
- a label's suggestions are reviewed in the main grid, large, most useful first, each answer
  a badge on its thumbnail (gui/review.py): A yes, R no, U or Ctrl+Z takes back the last
  answer whichever photo it was, Space the built-in viewer, arrows move;
- `TagBar` sits over the grid while a tag is shown: review it, export XMP, remove it;
- the preview's chips show a photo's tags; × takes one off (a "no" the label learns from),
  "Add tag" puts one on (gui/tag_chips.py);
- what changed many photos stays in a `NoticeBar` until dismissed, with Undo (gui/notice.py).

Everything goes through `Library` on one worker thread (`Runner(1)`), so answers, refits,
applies and exports happen in the order they were asked for; the UI thread never waits.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QItemSelectionModel, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QFrame, QMessageBox, QPushButton, QWidget

from clipphotos.gui.notice import NoticeBar
from clipphotos.gui.review import REVIEW_CELL, ReviewBar, ReviewSession
from clipphotos.gui.widgets import confirm, hbox, plural
from clipphotos.gui.workers import Runner

if TYPE_CHECKING:
    from clipphotos.library import PhotoRecord
    from clipphotos.gui.main_window import MainWindow
    from clipphotos.library import Library
    from clipphotos.tags import Applied, Decision, ExportPlan, ExportReport, LabelInfo, PhotoTag

REFIT_MS = 1200          # quiet time after the last answer before an applied label is decided again
SUGGESTIONS = 60         # suggestions reviewed per round
FOLDERS_LISTED = 6       # folders named in the export question


def parse_label(text: str) -> tuple[str, list[str]]:
    """'receipts: a photo of a shopping receipt; a scanned invoice' → (name, prompts)."""
    name, _, rest = text.partition(":")
    return name.strip(), [p.strip() for p in rest.split(";") if p.strip()]


class TagBar(QFrame):
    """Over the grid while a tag's photos are shown: review its suggestions, export XMP, remove it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tagBar")
        row = hbox(self, (0, 0, 0, 0), 8)
        self.review_button = QPushButton("Review suggestions")
        self.review_button.setObjectName("primaryButton")
        self.review_button.setToolTip("Answer yes or no to the photos this label might fit; then apply it")
        self.export_button = QPushButton("Export XMP…")
        self.export_button.setToolTip("Write every tag into .xmp sidecars beside the photos "
                                      "(you see what will be written first; photos are never modified)")
        self.remove_button = QPushButton("Remove label…")
        self.remove_button.setToolTip("Forget this label with its tags and your answers")
        for button in (self.review_button, self.export_button, self.remove_button):
            row.addWidget(button)
        row.addStretch(1)
        self.hide()


class TagsController(QObject):
    """Labels, review, apply/undo, chips and export for one window, through `Library` only."""

    labelsShown = Signal()            # the sidebar's Tags section was (re)filled
    reviewShown = Signal(str)         # a label's suggestions are in the grid, ready for keys
    answered = Signal(str)            # an answer (or its undo) is stored (path)
    applied = Signal(object)          # Applied
    undone = Signal(str)              # an apply was undone (label)
    exported = Signal(object)         # ExportReport
    chipsShown = Signal(str)          # the preview shows a photo's tags (path)
    tagChanged = Signal(str, str)     # a tag was put on or taken off by hand (path, label)
    busyChanged = Signal(bool)

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.runner = Runner(1, self)
        self.library: Library | None = None
        self.ready = False                      # the model is loaded: suggestions can be made
        self.busy = False
        self.session: ReviewSession | None = None
        self.infos: list[LabelInfo] = []
        self._pending: set[str] = set()         # labels with answers not decided again yet
        self._refit = QTimer(self)
        self._refit.setSingleShot(True)
        self._refit.setInterval(REFIT_MS)
        self._refit.timeout.connect(self.refit_now)
        self.bar = TagBar()
        self.review_bar = ReviewBar()
        self.review_bar.hide()
        self.notice = NoticeBar()
        self._connect()

    def _connect(self) -> None:
        w = self.window
        w.sidebar.labelRequested.connect(self.create_label)
        w.sidebar.new_label.setEnabled(False)
        self.bar.review_button.clicked.connect(lambda: self.review(self.shown_tag()))
        self.bar.export_button.clicked.connect(self.export)
        self.bar.remove_button.clicked.connect(lambda: self.remove_label(self.shown_tag()))
        self.review_bar.applyRequested.connect(self.apply)
        self.review_bar.doneRequested.connect(self.stop_review)
        chips = w.preview.tag_chips
        chips.wanted.connect(self.load_chips)
        chips.tagRemoved.connect(lambda path, name: self.set_tag(path, name, False))
        chips.tagAdded.connect(lambda path, name: self.set_tag(path, name, True))
        w.resultsShown.connect(self._results_shown)
        for widget in (w.grid, w.viewer):       # the keys answer in the grid and in the large view
            for keys, slot in (("A", lambda: self.answer(True)), ("R", lambda: self.answer(False)),
                               ("U", self.undo), (QKeySequence.StandardKey.Undo, self.undo)):
                shortcut = QShortcut(QKeySequence(keys), widget)
                shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
                shortcut.activated.connect(slot)

    # -- state ---------------------------------------------------------------------------

    def set_library(self, library: Library | None, ready: bool = False) -> None:
        self.library = library
        self.ready = ready and library is not None
        self.window.sidebar.new_label.setEnabled(self.ready and not self.busy)
        self.reload_labels()

    @property
    def reviewing(self) -> bool:
        return self.session is not None

    def shown_tag(self) -> str | None:
        return self.window.query.tag

    def _submit(self, fn: Any, *args: Any, on_done: Any = None, what: str = "Tags") -> None:
        self.runner.submit(fn, *args, on_done=on_done, on_failed=lambda exc: self._failed(what, exc))

    def _failed(self, what: str, exc: BaseException) -> None:
        self.set_busy(False)
        self.notice.say(f"{what}: {exc}")

    def set_busy(self, busy: bool) -> None:
        """While a library-wide action runs, what must wait is disabled."""
        self.busy = busy
        for widget in (self.review_bar.apply_button, self.review_bar.done_button, self.bar.review_button,
                       self.bar.export_button, self.bar.remove_button):
            widget.setEnabled(not busy)
        self.window.sidebar.new_label.setEnabled(self.ready and not busy)
        self.busyChanged.emit(busy)

    # -- labels --------------------------------------------------------------------------

    def reload_labels(self) -> None:
        if self.library is None:
            self._labels_loaded([])
            return
        self._submit(self.library.label_infos, on_done=self._labels_loaded)

    def _labels_loaded(self, infos: list[LabelInfo]) -> None:
        self.infos = infos
        self.window.sidebar.set_tags(infos)
        self.window.preview.tag_chips.set_labels([i.name for i in infos])
        self.labelsShown.emit()

    def info(self, name: str) -> LabelInfo | None:
        return next((i for i in self.infos if i.name.casefold() == name.casefold()), None)

    def create_label(self, text: str) -> None:
        name, prompts = parse_label(text)
        if not name or self.library is None or not self.ready:
            return
        self.notice.busy(f"Looking for photos that fit “{name}”…")
        self._submit(self.library.add_label, name, prompts, on_done=self._label_made, what="The label was not made")

    def _label_made(self, label: Any) -> None:
        self.reload_labels()          # answered before the suggestions: one worker, in order
        self.review(label.name)

    def remove_label(self, name: str | None) -> None:
        info = self.info(name) if name else None
        if info is None or self.library is None:
            return
        answers = info.accepted + info.rejected
        detail = (f"It is on {plural(info.tagged, 'photo')}; those tags and your {plural(answers, 'answer')} "
                  f"({info.accepted} yes, {info.rejected} no) go with it. XMP sidecars already written "
                  f"keep it until the next export.")
        if not confirm(self.window, "Remove label", f"Remove the label “{info.name}”?", detail, "Remove Label"):
            return
        if self.session is not None and self.session.label == info.name:
            self.stop_review(reload=False)
        self._submit(self.library.remove_label, info.name, on_done=lambda _r: self._removed(info.name))

    def _removed(self, name: str) -> None:
        self.notice.say(f"Label “{name}” removed.")
        if self.window.query.tag == name:
            self.window.search.set_tag(None)
        self.reload_labels()

    # -- review in the grid --------------------------------------------------------------

    def review(self, name: str | None) -> None:
        if not name or self.library is None or not self.ready:
            return
        self.notice.busy(f"Looking for photos that fit “{name}”…")
        self._submit(self.library.tag_suggestions, name, SUGGESTIONS,
                     on_done=lambda found: self._show_review(name, found), what="No suggestions")

    def _show_review(self, name: str, found: list[tuple[PhotoRecord, Decision]]) -> None:
        self.notice.hide()
        session = ReviewSession(name, [d for _, d in found])
        self.session = session
        w = self.window
        w.grid.set_cell_size(max(REVIEW_CELL, w.settings.thumbnail_size))
        w.show_listing([p for p, _ in found], f"Review “{name}”",
                       f"{plural(len(found), 'suggestion')}, most useful first" if found else "")
        w.model.set_marks(session.marks())
        self.bar.hide()
        w.sidebar.select_tag(name, notify=False)
        self.review_bar.set_progress(session.progress())
        self.review_bar.show()
        if found:
            w.grid.selectionModel().setCurrentIndex(w.model.index(0), QItemSelectionModel.SelectionFlag.ClearAndSelect)
            w.grid.setFocus()
        self.reviewShown.emit(name)

    def stop_review(self, reload: bool = True) -> None:
        """Leave review (answers are kept): the grid shows what the query asks for again."""
        if self.session is None:
            return
        self.session = None
        w = self.window
        w.model.set_marks({})
        w.grid.set_cell_size(w.settings.thumbnail_size)
        w.grid.scrollToTop()                  # what comes next is another list: from its top
        self.review_bar.hide()
        self.refit_now()
        if reload:
            if w.query.tag is not None:          # the sidebar shows what the grid shows again
                w.sidebar.select_tag(w.query.tag, notify=False)
            else:
                w.sidebar.select_folder(w.query.folder)
            w.reload_listing()

    def answer(self, accepted: bool) -> None:
        """A or R on the current photo: its badge at once, the answer stored, the cursor on to the next."""
        session, w = self.session, self.window
        path = w.current_path()
        if session is None or self.busy or path is None or path not in session.decisions or self.library is None:
            return
        session.answer(path, accepted)
        self._answer_shown(path)
        row = w.grid.currentIndex().row()
        if row + 1 < w.model.rowCount():
            self._go_to(row + 1)
        self._store(session.label, path, accepted)

    def _go_to(self, row: int) -> None:
        """Move the cursor (and the large view, when open) to another suggestion."""
        w = self.window
        w.grid.selectionModel().setCurrentIndex(w.model.index(row), QItemSelectionModel.SelectionFlag.ClearAndSelect)
        w.grid.scrollTo(w.model.index(row))
        if w.stack.currentIndex() == w.PAGE_VIEWER:
            w.open_viewer()

    def viewer_showing(self, path: str) -> None:
        """The large view's caption says the photo's answer (or the label's guess) and the keys."""
        session = self.session
        if session is None or path not in session.decisions:
            return
        mark = session.mark(path)
        state = {True: "✓ yes", False: "✗ no", None: mark.words}[mark.answer]
        caption = self.window.viewer.caption
        caption.setText(f"{caption.text()}\n“{session.label}”: {state}   ·   A yes  ·  R no  ·  U undo")

    def undo(self) -> None:
        """U or Ctrl+Z: take back the last answer, whichever photo it was, and go back to that photo."""
        session, w = self.session, self.window
        if session is None or self.busy:
            return
        undone = session.undo()
        if undone is None:
            self.review_bar.set_progress(f"{session.progress()} · nothing to undo")
            return
        path, answer = undone
        self._answer_shown(path)
        row = w.model.row_of(path)
        if row is not None:
            self._go_to(row)
        self._store(session.label, path, answer)

    def _answer_shown(self, path: str) -> None:
        assert self.session is not None
        self.window.model.set_mark(path, self.session.mark(path))
        self.review_bar.set_progress(self.session.progress())

    def _store(self, name: str, path: str, answer: bool | None) -> None:
        assert self.library is not None
        self._pending.add(name)
        self._submit(self.library.review_tag, name, [path], answer,
                     on_done=lambda _r: (self.answered.emit(path), self._refit.start()), what="Answer not stored")

    def refit_now(self) -> None:
        """Decide the answered labels again (only those already applied: a new label waits for Apply)."""
        self._refit.stop()
        if not self._pending or self.library is None:
            return
        names, self._pending = sorted(self._pending), set()
        library = self.library

        def refit() -> None:
            for name in names:
                library.refit_label(name)
        self._submit(refit, on_done=lambda _r: self._tags_changed(), what="Tags")

    # -- apply and undo ------------------------------------------------------------------

    def apply(self) -> None:
        session = self.session
        if session is None or self.library is None or self.busy:
            return
        name = session.label
        self._refit.stop()
        self._pending.discard(name)
        self.set_busy(True)
        self.notice.busy(f"Applying “{name}” to the whole library…")
        self._submit(self.library.apply_label, name, on_done=self._applied, what=f"“{name}” was not applied")

    def _applied(self, applied: Applied) -> None:
        self.set_busy(False)
        self.stop_review(reload=False)
        self.notice.say(f"Tagged {plural(applied.photos, 'photo')} “{applied.label}”", "Undo",
                        lambda: self.undo_apply(applied))
        self._show_tag(applied.label)
        self.applied.emit(applied)

    def undo_apply(self, applied: Applied) -> None:
        if self.library is None:
            return
        self.set_busy(True)
        self.notice.busy(f"Undoing “{applied.label}”…")
        self._submit(self.library.undo_apply, applied, on_done=lambda _r: self._apply_undone(applied),
                     what="Not undone")

    def _apply_undone(self, applied: Applied) -> None:
        self.set_busy(False)
        before = len(applied.before_tags)
        self.notice.say(f"Undone: “{applied.label}” is back as it was "
                        f"({'not applied' if not before and applied.before_calibration is None else plural(before, 'tag')}).")
        self._tags_changed()
        self.undone.emit(applied.label)

    def _show_tag(self, name: str) -> None:
        """The tag's photos in the grid, its row selected (labels reload first: it may be new)."""
        self.reload_labels()

        def select() -> None:
            self.labelsShown.disconnect(select)
            self.window.sidebar.select_tag(name)
        self.labelsShown.connect(select)

    def _tags_changed(self) -> None:
        """Counts, the grid (when it lists a tag) and the chips follow a change of stored tags."""
        self.reload_labels()
        w = self.window
        if w.query.tag is not None and self.session is None:
            w.reload_listing(keep_position=True)
        if w.preview.tag_chips.path is not None:
            self.load_chips(w.preview.tag_chips.path)

    def _results_shown(self) -> None:
        self.bar.setVisible(self.window.query.tag is not None and self.session is None)

    # -- chips ---------------------------------------------------------------------------

    def load_chips(self, path: str) -> None:
        if self.library is None:
            return
        self._submit(self.library.photo_tags, path, on_done=lambda tags: self._chips_loaded(path, tags))

    def _chips_loaded(self, path: str, tags: list[PhotoTag]) -> None:
        self.window.preview.tag_chips.set_tags(path, tags)
        self.chipsShown.emit(path)

    def set_tag(self, path: str, name: str, on: bool, undo: bool = False) -> None:
        """A chip's × (on=False) or "Add tag" (on=True): stored as an answer, shown at once."""
        if self.library is None:
            return
        self._submit(self.library.set_photo_tag, path, name, on,
                     on_done=lambda _r: self._tag_set(path, name, on, undo), what="Tag not changed")

    def _tag_set(self, path: str, name: str, on: bool, undo: bool) -> None:
        self._tags_changed()
        if not undo:
            what = (f"Tagged {os.path.basename(path)} “{name}”" if on else
                    f"Took “{name}” off {os.path.basename(path)}: the label learns from it at its next Apply")
            self.notice.say(what, "Undo", lambda: self.set_tag(path, name, not on, undo=True))
        self.tagChanged.emit(path, name)

    # -- export --------------------------------------------------------------------------

    def export(self) -> None:
        if self.library is None or self.busy:
            return
        self.set_busy(True)
        self.notice.busy("Checking which XMP sidecars need writing…")
        self._submit(self.library.xmp_plan, on_done=self._plan_ready, what="XMP not exported")

    def _plan_ready(self, plan: ExportPlan) -> None:
        self.set_busy(False)
        self.notice.hide()
        n = len(plan.sidecars)
        if not n:
            QMessageBox.information(self.window, "Export XMP", "Every XMP sidecar is already up to date: "
                                                               "there is nothing to write.")
            return
        folders = plan.folders()
        home = os.path.expanduser("~")
        lines = [f"  {f.replace(home, '~', 1) if f.startswith(home + os.sep) else f}  ({c})"
                 for f, c in list(folders.items())[:FOLDERS_LISTED]]
        if len(folders) > FOLDERS_LISTED:
            lines.append(f"  … and {len(folders) - FOLDERS_LISTED} more folders")
        detail = (f"{plan.new:,} new, {n - plan.new:,} updated, in {plural(len(folders), 'folder')}:\n"
                  + "\n".join(lines) + "\n\nEach .xmp file sits beside its photo and lists its tags as keywords; "
                  "the photos themselves are not changed.")
        if not confirm(self.window, "Export XMP", f"Write {plural(n, 'XMP sidecar')}?", detail,
                       f"Write {plural(n, 'Sidecar')}"):
            return
        assert self.library is not None
        self.set_busy(True)
        self.notice.busy(f"Writing {plural(n, 'XMP sidecar')}…")
        self._submit(self.library.export_xmp, on_done=self._exported, what="XMP not exported")

    def _exported(self, report: ExportReport) -> None:
        self.set_busy(False)
        folders = {os.path.dirname(p) for p in report.written}
        failed = f"; {len(report.failed)} could not be written (hover for why)" if report.failed else ""
        self.notice.say(f"Wrote {plural(len(report.written), 'XMP sidecar')} in "
                        f"{plural(len(folders), 'folder')}{failed}.")
        self.notice.setToolTip("\n".join(f"{p}: {r}" for p, r in report.failed[:20]))
        self.exported.emit(report)
