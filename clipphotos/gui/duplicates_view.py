"""The Duplicates view: groups by tier, a group's files side by side, and a safe tidy-up.

Finding groups, making thumbnails and acting on files all run on a `workers.Runner`; the UI
thread only shows answers. Exact copies and near-duplicates can send their other files to the
system trash (Send2Trash via `Library.trash_duplicates`, after a confirmation); similar shots
are stacks to look through and are never proposed for the trash.
"""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap, QShowEvent
from PySide6.QtWidgets import (QFrame, QLabel, QMessageBox, QPushButton, QScrollArea, QSplitter, QTreeWidget,
                               QTreeWidgetItem, QWidget)

from clipphotos.duplicates import ACTION_TIERS, DuplicateFile, DuplicateGroup
from clipphotos.gui.widgets import hbox, label, vbox
from clipphotos.gui.workers import Runner

TIER_TITLES = {"exact": "Exact copies", "near": "Near-duplicates", "similar": "Similar shots"}
KEY_ROLE = Qt.ItemDataRole.UserRole
CARD_THUMB = 200
DIFFERS = "color:#d9480f;font-weight:bold"


def _load_thumb(library: Any, digest: str, path: str) -> QImage:
    return QImage(str(library.thumbnails.ensure(digest, path)))


def _size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"


def _details(f: DuplicateFile, keep: DuplicateFile) -> list[tuple[str, bool]]:
    """(text, differs from the keep) for each thing a person compares."""
    dims = f"{f.width}×{f.height}" if f.width and f.height else "? × ?"
    rows = [(dims + (" (cropped)" if f.cropped else ""), (f.width, f.height, f.cropped) != (keep.width, keep.height,
                                                                                          keep.cropped)),
            (f.format or "unknown format", f.format != keep.format),
            (_size(f.size), f.size != keep.size),
            ((f.taken_at or "no date").replace("T", " "), f.taken_at != keep.taken_at),
            (f.folder, f.folder != keep.folder)]
    if f.similarity is not None and f is not keep:
        rows.append((f"{f.similarity:.0%} alike", f.similarity < 0.999))
    return rows


class FileCard(QFrame):
    """One file of a group: thumbnail, details (differences in bold colour) and Keep/Trash."""

    def __init__(self, f: DuplicateFile, keep: DuplicateFile, reasons: tuple[str, ...], can_trash: bool) -> None:
        super().__init__()
        self.file = f
        self.setObjectName("duplicateCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        col = vbox(self, (8, 8, 8, 8), 4)
        self.thumb = QLabel("…")
        self.thumb.setFixedSize(CARD_THUMB, CARD_THUMB)
        self.thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        col.addWidget(self.thumb)
        name = label(os.path.basename(f.path), wrap=True)
        name.setToolTip(f.path)
        col.addWidget(name)
        for text, differs in _details(f, keep):
            row = QLabel(f'<span style="{DIFFERS}">{text}</span>' if differs and f is not keep else text)
            row.setTextFormat(Qt.TextFormat.RichText if differs and f is not keep else Qt.TextFormat.PlainText)
            row.setWordWrap(True)
            col.addWidget(row)
        if f is keep:
            suggested = label("★ Suggested keep: " + "; ".join(reasons), "note")
            col.addWidget(suggested)
        self.toggle = QPushButton()
        self.toggle.setCheckable(True)
        self.toggle.setChecked(f is keep or not can_trash)      # checked = keep
        self.toggle.setEnabled(can_trash)
        self.toggle.setVisible(can_trash)
        self.toggle.toggled.connect(self._show_choice)
        self._show_choice(self.toggle.isChecked())
        col.addWidget(self.toggle)
        col.addStretch(1)

    @property
    def kept(self) -> bool:
        return self.toggle.isChecked()

    def _show_choice(self, keep: bool) -> None:
        self.toggle.setText("Keep" if keep else "Trash")

    def set_image(self, image: QImage) -> None:
        if image.isNull():
            self.thumb.setText("(unreadable)")
            return
        self.thumb.setPixmap(QPixmap.fromImage(image).scaled(CARD_THUMB, CARD_THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                                                             Qt.TransformationMode.SmoothTransformation))


class DuplicatesView(QWidget):
    """Finds the library's duplicates when shown; one group at a time side by side."""

    groupsShown = Signal()              # the list shows a new answer of the library
    actionFinished = Signal(object)     # a MoveReport, or the number of pairs set apart
    libraryChanged = Signal()           # files went to the trash: the catalog changed

    def __init__(self, runner: Runner | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("duplicatesView")
        self.runner = runner or Runner(2, self)
        self.library: Any = None
        self.groups: dict[str, DuplicateGroup] = {}
        self.cards: list[FileCard] = []
        self.current: DuplicateGroup | None = None
        self.busy = False
        self._generation = 0

        col = vbox(self, (18, 14, 18, 8), 8)
        title = label("Duplicates", "headerTitle", wrap=False)
        col.addWidget(title)
        self.status = label("", "note")
        col.addWidget(self.status)
        split = QSplitter()
        self.tree = QTreeWidget()
        self.tree.setHeaderHidden(True)
        self.tree.setMinimumWidth(220)
        self.tree.currentItemChanged.connect(self._current_changed)
        split.addWidget(self.tree)

        detail = QWidget()
        dcol = vbox(detail, (8, 0, 0, 0), 6)
        self.group_title = label("", "dialogTitle")
        dcol.addWidget(self.group_title)
        self.group_note = label("", "note")
        dcol.addWidget(self.group_note)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.cards_box = QWidget()
        self.cards_row = hbox(self.cards_box, (0, 0, 0, 0), 10)
        self.scroll.setWidget(self.cards_box)
        dcol.addWidget(self.scroll, 1)
        buttons = hbox(spacing=8)
        buttons.addStretch(1)
        self.not_button = QPushButton("Not duplicates")
        self.not_button.clicked.connect(self.not_duplicates)
        self.trash_button = QPushButton("Move others to trash")
        self.trash_button.clicked.connect(self.trash_others)
        buttons.addWidget(self.not_button)
        buttons.addWidget(self.trash_button)
        dcol.addLayout(buttons)
        split.addWidget(detail)
        split.setStretchFactor(1, 1)
        split.setSizes([240, 700])
        col.addWidget(split, 1)
        self._show_group(None)

    # -- finding ---------------------------------------------------------------------------

    def set_library(self, library: Any) -> None:
        if library is self.library:
            return
        self.library = library
        self.groups = {}
        self.tree.clear()
        if self.isVisible():
            self.refresh()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh()

    def refresh(self) -> None:
        if self.library is None:
            self.status.setText("Opening your library…")
            return
        self._generation += 1
        gen = self._generation
        self.status.setText("Looking for duplicates…")
        library = self.library
        self.runner.submit(lambda progress: library.duplicates(on_stage=progress), progress=True,
                           on_progress=lambda stage: self._stage(gen, stage),
                           on_done=lambda groups: self._show_groups(gen, groups),
                           on_failed=lambda exc: self._failed(gen, exc))

    def _stage(self, gen: int, stage: str) -> None:
        if gen == self._generation:
            self.status.setText(f"Looking for duplicates: {stage}…")

    def _failed(self, gen: int, exc: BaseException) -> None:
        if gen == self._generation:
            self.status.setText(f"Looking for duplicates failed: {exc}")

    def _show_groups(self, gen: int, groups: list[DuplicateGroup]) -> None:
        if gen != self._generation:
            return
        wanted = self.current.key if self.current is not None else None
        self.groups = {g.key: g for g in groups}
        self.tree.blockSignals(True)
        self.tree.clear()
        select = None
        for tier, title in TIER_TITLES.items():
            members = [g for g in groups if g.tier == tier]
            if not members:
                continue
            section = QTreeWidgetItem(self.tree, [f"{title} ({len(members)})"])
            section.setFlags(Qt.ItemFlag.ItemIsEnabled)
            section.setExpanded(True)
            for g in members:
                names = ", ".join(os.path.basename(p) for p in g.paths[:2])
                more = f" +{len(g.files) - 2}" if len(g.files) > 2 else ""
                item = QTreeWidgetItem(section, [f"{len(g.files)} files · {names}{more}"])
                item.setData(0, KEY_ROLE, g.key)
                item.setToolTip(0, "\n".join(g.paths))
                if select is None or g.key == wanted:
                    select = item
        self.tree.blockSignals(False)
        counts = [f"{sum(g.tier == t for g in groups)} {TIER_TITLES[t].lower()}" for t in TIER_TITLES]
        self.status.setText("No duplicates found." if not groups else " · ".join(counts))
        if select is not None:
            self.tree.setCurrentItem(select)
        else:
            self._show_group(None)
        self.groupsShown.emit()

    def group_keys(self, tier: str | None = None) -> list[str]:
        return [k for k, g in self.groups.items() if tier is None or g.tier == tier]

    def select_group(self, key: str) -> None:
        for i in range(self.tree.topLevelItemCount()):
            section = self.tree.topLevelItem(i)
            for j in range(section.childCount()):
                if section.child(j).data(0, KEY_ROLE) == key:
                    self.tree.setCurrentItem(section.child(j))
                    return
        raise KeyError(key)

    # -- one group ---------------------------------------------------------------------------

    def _current_changed(self, item: QTreeWidgetItem | None, _previous: QTreeWidgetItem | None) -> None:
        key = item.data(0, KEY_ROLE) if item is not None else None
        self._show_group(self.groups.get(key) if isinstance(key, str) else None)

    def _show_group(self, group: DuplicateGroup | None) -> None:
        self.current = group
        for card in self.cards:
            card.setParent(None)
            card.deleteLater()
        self.cards = []
        while self.cards_row.count():
            self.cards_row.takeAt(0)
        can_trash = group is not None and group.tier in ACTION_TIERS
        self.trash_button.setVisible(can_trash)
        self.not_button.setEnabled(group is not None and not self.busy)
        self.trash_button.setEnabled(can_trash and not self.busy)
        if group is None:
            self.group_title.setText("")
            self.group_note.setText("Choose a group on the left." if self.groups else "")
            return
        self.group_title.setText(f"{TIER_TITLES[group.tier]} · {len(group.files)} files")
        differs = ", ".join(group.differences) or "nothing but the path"
        note = f"They differ in: {differs}."
        if group.tier == "similar":
            note += " A stack of shots of one moment: pick the ones you like; nothing is proposed for the trash."
        self.group_note.setText(note)
        keep = group.files[0]
        for f in group.files:
            card = FileCard(f, keep, group.reasons, can_trash)
            self.cards.append(card)
            self.cards_row.addWidget(card)
            if self.library is not None:
                self.runner.submit(_load_thumb, self.library, f.content, f.path,
                                   on_done=lambda image, c=card, k=group.key: self._thumb_done(k, c, image),
                                   on_failed=lambda exc: None)
        self.cards_row.addStretch(1)

    def _thumb_done(self, key: str, card: FileCard, image: QImage) -> None:
        if self.current is not None and self.current.key == key and card in self.cards:
            card.set_image(image)

    def chosen_group(self) -> DuplicateGroup | None:
        """The current group as the cards choose it: the first kept file, then the files to trash."""
        group = self.current
        if group is None:
            return None
        kept = [c.file for c in self.cards if c.kept]
        trash = [c.file for c in self.cards if not c.kept]
        if not kept or not trash:
            return None
        chosen = group.with_keep(kept[0].path) if kept[0].path != group.keep else group
        return replace(chosen, files=(kept[0], *trash))

    # -- acting ------------------------------------------------------------------------------

    def confirm_trash(self, paths: list[str]) -> bool:
        names = "\n".join(os.path.basename(p) for p in paths[:8]) + ("\n…" if len(paths) > 8 else "")
        answer = QMessageBox.question(
            self, "Move to trash",
            f"Move {len(paths)} file{'s' if len(paths) != 1 else ''} to the trash?\n\n{names}\n\n"
            "You can restore them from the trash.")
        return answer == QMessageBox.StandardButton.Yes

    def trash_others(self) -> None:
        group = self.chosen_group()
        if self.library is None or self.busy:
            return
        if group is None or group.tier not in ACTION_TIERS:
            self.group_note.setText("Mark at least one file Keep and one Trash.")
            return
        paths = group.others()
        if not paths or not self.confirm_trash(paths):
            return
        self._act(self.current.key, self.library.trash_duplicates, [group])

    def not_duplicates(self) -> None:
        if self.library is None or self.current is None or self.busy:
            return
        self._act(self.current.key, self.library.mark_not_duplicates, self.current.paths)

    def _act(self, key: str, fn: Any, arg: Any) -> None:
        self.busy = True
        self.trash_button.setEnabled(False)
        self.not_button.setEnabled(False)
        self.runner.submit(fn, arg, on_done=lambda result: self._acted(key, result),
                           on_failed=self._act_failed)

    def _act_failed(self, exc: BaseException) -> None:
        self.busy = False
        self.status.setText(f"That did not work: {exc}")
        self._show_group(self.current)

    def _acted(self, key: str, result: Any) -> None:
        self.busy = False
        self.groups.pop(key, None)
        failed = getattr(result, "failed", None)
        if failed:
            self.status.setText(f"{len(failed)} file(s) could not be moved: {failed[0][1]}")
        skipped = getattr(result, "skipped", None)
        if skipped:   # a file changed since it was indexed: nothing of that group was moved
            self.status.setText(f"Nothing moved: {skipped[0][2]}")
        self._remove_item(key)
        if hasattr(result, "moved"):
            self.libraryChanged.emit()
        self.actionFinished.emit(result)

    def _remove_item(self, key: str) -> None:
        for i in range(self.tree.topLevelItemCount()):
            section = self.tree.topLevelItem(i)
            for j in range(section.childCount()):
                if section.child(j).data(0, KEY_ROLE) == key:
                    section.removeChild(section.child(j))
                    if section.childCount() == 0:
                        self.tree.takeTopLevelItem(i)
                    nxt = self._first_group_item()
                    if nxt is not None:
                        self.tree.setCurrentItem(nxt)
                    else:
                        self._show_group(None)
                    return

    def _first_group_item(self) -> QTreeWidgetItem | None:
        for i in range(self.tree.topLevelItemCount()):
            section = self.tree.topLevelItem(i)
            if section.childCount():
                return section.child(0)
        return None
