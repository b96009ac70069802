"""The Duplicates view: groups by tier, a group's files side by side, clean-ups in bulk, and undo.

Finding groups, making thumbnails and acting on files all run on a `workers.Runner`; the UI
thread only shows answers. Exact copies and near-duplicates send their other files to the
trash (`Library.trash_duplicates`: a holding folder first, so the message after each clean-up
offers Undo) after one confirmation that says how many files and megabytes go; a whole tier or
the selected groups go in one action. Similar shots are stacks to look through and are never
proposed for the trash. "Not duplicates" (N) sets a group apart for good; Undo takes that back
too. Space compares the group's files side by side (gui/compare.py).
"""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QEvent, QObject, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QKeyEvent, QPixmap, QResizeEvent, QShowEvent
from PySide6.QtWidgets import (QAbstractItemView, QButtonGroup, QFrame, QGridLayout, QLabel, QPushButton,
                               QScrollArea, QSplitter, QStackedWidget, QTreeWidget, QTreeWidgetItem, QWidget)

from clipphotos.duplicates import ACTION_TIERS, DuplicateFile, DuplicateGroup, SetApart, keep_reasons
from clipphotos.gui import desktop
from clipphotos.gui.widgets import confirm, hbox, label, plural, vbox
from clipphotos.gui.workers import Runner, load_preview

TIER_TITLES = {"exact": "Exact copies", "near": "Near-duplicates", "similar": "Similar shots"}
KEY_ROLE = Qt.ItemDataRole.UserRole
MIN_THUMB, MAX_THUMB = 128, 460     # cards' pictures scale with the window between these
CARD_PAD = 18                       # a card's frame and margins around its picture
CARD_GAP = 10
CARD_TEXT = 250                     # a card's height besides its picture (name, details, buttons)
LIST_ICON = 40                      # the group list's thumbnails
DIFFERS = "color:#c2410c;font-weight:600"
CHOICE_STYLE = {
    "keep": ("✓ Keep", "#2f9e44", "#ebfbee"),
    "trash": ("✕ Trash", "#e03131", "#fff5f5"),
}
PAGE_STAGE, PAGE_GROUPS, PAGE_NONE = range(3)


def _load_thumb(library: Any, digest: str, path: str) -> QImage:
    return QImage(str(library.thumbnails.ensure(digest, path)))


def megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.0f} kB"


def file_details(f: DuplicateFile, keep: DuplicateFile) -> list[tuple[str, str, bool]]:
    """(what, text, differs from the keep) for each thing a person compares (cards and compare table)."""
    dims = f"{f.width}×{f.height}" if f.width and f.height else "? × ?"
    rows = [("Pixels", dims, (f.width, f.height) != (keep.width, keep.height)),
            ("Crop", "cropped" if f.cropped else "full picture", f.cropped != keep.cropped),
            ("Format", f.format or "unknown", f.format != keep.format),
            ("Size", megabytes(f.size), f.size != keep.size),
            ("Date", (f.taken_at or "no date").replace("T", " "), f.taken_at != keep.taken_at),
            ("Camera", f.camera or "no camera", f.camera != keep.camera),
            ("Folder", f.folder, f.folder != keep.folder)]
    if f.similarity is not None:
        rows.append(("Alike", "the same picture" if f.similarity >= 0.995 else f"{f.similarity:.0%} alike", False))
    return rows


def _short(path: str) -> str:
    """The file's name with its folder's: copies often share the name."""
    return os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))


def _elide(widget: QLabel, text: str, width: int) -> None:
    widget.setText(widget.fontMetrics().elidedText(text, Qt.TextElideMode.ElideMiddle, max(40, width)))
    widget.setToolTip(text)


class FileCard(QFrame):
    """One file of a group: picture, details (differences in colour), Keep/Trash, Open, Show in folder.

    Keep and Trash are two states one sees at a glance: a green or red frame, a ✓ or ✕ badge.
    """

    choiceChanged = Signal()

    def __init__(self, f: DuplicateFile, keep: DuplicateFile, can_trash: bool, thumb: int) -> None:
        super().__init__()
        self.file = f
        self.can_trash = can_trash
        self.image = QImage()
        self.thumb_size = thumb
        self.setObjectName("duplicateCard")
        col = vbox(self, (8, 8, 8, 8), 3)
        self.badge = QLabel()
        self.badge.setObjectName("choiceBadge")
        col.addWidget(self.badge)
        self.thumb = QLabel("Loading…")
        self.thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        col.addWidget(self.thumb)
        self.name = QLabel()
        self.name.setObjectName("cardName")
        col.addWidget(self.name)
        self.rows: list[tuple[QLabel, str]] = []
        for what, text, differs in file_details(f, keep):
            if what in ("Crop", "Camera") and not differs:
                continue            # said only where it differs: the card stays short
            row = QLabel()
            if differs and f is not keep:
                row.setStyleSheet(DIFFERS)
            row.setToolTip(f"{what}: {text}")
            self.rows.append((row, text))
            col.addWidget(row)
        self.star = label("", "note")
        self.star.setObjectName("keepStar")
        col.addWidget(self.star)
        choice = hbox(spacing=4)
        self.keep_button = QPushButton("✓ Keep")
        self.trash_button = QPushButton("✕ Trash")
        self.choice_group = QButtonGroup(self)
        for button in (self.keep_button, self.trash_button):
            button.setCheckable(True)
            self.choice_group.addButton(button)
            choice.addWidget(button)
        self.keep_button.setChecked(f is keep or not can_trash)
        self.trash_button.setChecked(not self.keep_button.isChecked())
        for button in (self.keep_button, self.trash_button):
            button.setVisible(can_trash)
        self.choice_group.buttonToggled.connect(lambda _b, on: on and self._choice_changed())
        col.addLayout(choice)
        tools = hbox(spacing=2)
        self.open_button = QPushButton("Open")
        self.open_button.setObjectName("linkButton")
        self.open_button.clicked.connect(lambda: desktop.open_file(f.path))
        self.folder_button = QPushButton("Show in folder")
        self.folder_button.setObjectName("linkButton")
        self.folder_button.clicked.connect(lambda: desktop.show_in_folder(f.path))
        tools.addWidget(self.open_button)
        tools.addWidget(self.folder_button)
        tools.addStretch(1)
        col.addLayout(tools)
        col.addStretch(1)
        self._paint_choice()
        self.set_thumb_size(thumb)

    @property
    def kept(self) -> bool:
        return self.keep_button.isChecked()

    def set_kept(self, keep: bool) -> None:
        (self.keep_button if keep else self.trash_button).setChecked(True)

    def _choice_changed(self) -> None:
        self._paint_choice()
        self.choiceChanged.emit()

    def _paint_choice(self) -> None:
        text, colour, tint = CHOICE_STYLE["keep" if self.kept else "trash"]
        self.setProperty("choice", "keep" if self.kept else "trash")
        self.setStyleSheet(f"#duplicateCard {{ border: 2px solid {colour}; border-radius: 6px; background: {tint}; }}"
                           f"#duplicateCard QPushButton:checked {{ background: {colour}; border-color: {colour}; "
                           "color: #ffffff; }"
                           "#duplicateCard QPushButton { padding: 3px 4px; }")
        self.badge.setText(text)
        self.badge.setStyleSheet(f"color: {colour}; font-weight: 700;")
        self.badge.setVisible(self.can_trash)

    def set_star(self, text: str) -> None:
        self.star.setText(text)
        self.star.setVisible(bool(text))
        if text:
            self.star.setToolTip(text)

    def set_thumb_size(self, size: int) -> None:
        self.thumb_size = size
        self.setMinimumHeight(0)
        self.setMaximumHeight(16777215)         # _show_image fits the height to the picture again
        self.setFixedWidth(size + CARD_PAD)
        self.thumb.setFixedSize(size, size)
        inner = size
        _elide(self.name, os.path.basename(self.file.path), inner)
        for row, text in self.rows:
            _elide(row, text, inner)
        self.star.setMaximumWidth(inner)
        self._show_image()

    def set_image(self, image: QImage) -> None:
        self.image = image
        if image.isNull():
            self.thumb.setText("(unreadable)")
            return
        self._show_image()

    def _show_image(self) -> None:
        if not self.image.isNull():
            ratio = self.devicePixelRatioF()
            pixmap = QPixmap.fromImage(self.image).scaled(
                int(self.thumb_size * ratio), int(self.thumb_size * ratio), Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation)
            pixmap.setDevicePixelRatio(ratio)
            self.thumb.setFixedHeight(max(24, round(pixmap.height() / ratio)))   # no empty band around it
            self.thumb.setPixmap(pixmap)
            self.layout().activate()
            self.setFixedHeight(self.layout().sizeHint().height())


class DuplicatesView(QWidget):
    """Finds the library's duplicates when shown; one group at a time side by side; bulk clean-ups."""

    groupsShown = Signal()              # the list shows a new answer of the library
    groupChanged = Signal()             # another group (or none) is shown
    actionFinished = Signal(object)     # a CleanupReport, a RestoreReport, or the number of pairs set apart
    libraryChanged = Signal()           # files moved (or came back): the catalog changed

    def __init__(self, runner: Runner | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("duplicatesView")
        self.runner = runner or Runner(2, self)
        self.library: Any = None
        self.groups: dict[str, DuplicateGroup] = {}
        self.cards: list[FileCard] = []
        self.current: DuplicateGroup | None = None
        self.busy = False
        # this session's actions, newest last: clean-ups (their ids) and groups set apart (key, what was stored)
        self.undo_stack: list[int | tuple[str, SetApart]] = []
        self.compare: Any = None
        self._generation = 0
        self._select: str | None = None     # a group to show once found (one grouped again)
        self._icons: dict[str, QIcon] = {}

        col = vbox(self, (18, 14, 18, 8), 6)
        top = hbox(spacing=8)
        top.addWidget(label("Duplicates", "headerTitle", wrap=False))
        top.addStretch(1)
        self.bulk_buttons: dict[str, QPushButton] = {}
        for tier in ACTION_TIERS:
            button = QPushButton()
            button.clicked.connect(lambda _=False, t=tier: self.clean_up_tier(t))
            self.bulk_buttons[tier] = button
            top.addWidget(button)
        self.selected_button = QPushButton()
        self.selected_button.clicked.connect(self.clean_up_selected)
        top.addWidget(self.selected_button)
        col.addLayout(top)
        self.status = label("", "note")
        col.addWidget(self.status)

        self.message_bar = QFrame()
        self.message_bar.setObjectName("messageBar")
        bar = hbox(self.message_bar, (10, 4, 6, 4), 8)
        self.message = QLabel()
        self.message.setWordWrap(True)
        bar.addWidget(self.message, 1)
        self.undo_button = QPushButton("Undo")
        self.undo_button.setObjectName("primaryButton")
        self.undo_button.clicked.connect(self.undo)
        bar.addWidget(self.undo_button)
        close = QPushButton("×")
        close.setObjectName("flatButton")
        close.setToolTip("Hide this message")
        close.clicked.connect(self.message_bar.hide)
        bar.addWidget(close)
        self.message_bar.hide()
        col.addWidget(self.message_bar)

        self.pages = QStackedWidget()
        self.stage = label("", "dialogTitle")
        self.stage.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.pages.addWidget(self.stage)
        split = QSplitter()
        self.tree = QTreeWidget()
        self.tree.setHeaderHidden(True)
        self.tree.setMinimumWidth(200)
        self.tree.setIconSize(QSize(LIST_ICON, LIST_ICON))
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.currentItemChanged.connect(self._current_changed)
        self.tree.itemSelectionChanged.connect(self._update_buttons)
        split.addWidget(self.tree)
        detail = QWidget()
        dcol = vbox(detail, (8, 0, 0, 0), 4)
        self.group_title = label("", "dialogTitle")
        dcol.addWidget(self.group_title)
        self.group_note = label("", "note")
        dcol.addWidget(self.group_note)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.cards_box = QWidget()
        self.cards_grid = QGridLayout(self.cards_box)
        self.cards_grid.setContentsMargins(0, 0, 0, 0)
        self.cards_grid.setSpacing(CARD_GAP)
        self.scroll.setWidget(self.cards_box)
        dcol.addWidget(self.scroll, 1)
        buttons = hbox(spacing=8)
        self.keys_hint = label("Space: compare · N: not duplicates", "note")
        buttons.addWidget(self.keys_hint)
        buttons.addStretch(1)
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("See the files side by side at the same zoom (Space)")
        self.compare_button.clicked.connect(self.open_compare)
        self.not_button = QPushButton("Not duplicates")
        self.not_button.clicked.connect(self.not_duplicates)
        self.trash_button = QPushButton("Move others to trash")
        self.trash_button.setObjectName("primaryButton")
        self.trash_button.clicked.connect(self.trash_others)
        for button in (self.compare_button, self.not_button, self.trash_button):
            buttons.addWidget(button)
        dcol.addLayout(buttons)
        split.addWidget(detail)
        split.setStretchFactor(1, 1)
        split.setSizes([230, 700])
        self.pages.addWidget(split)
        self.none_label = label("No duplicates found: every photo in your library is one of a kind.", "dialogTitle")
        self.none_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.pages.addWidget(self.none_label)
        col.addWidget(self.pages, 1)

        self.tree.installEventFilter(self)         # Space and N before the list takes them
        self._show_group(None)
        self._update_buttons()

    # -- keys ------------------------------------------------------------------------------

    def handle_key(self, event: QKeyEvent) -> bool:
        """Space compares, N says not duplicates, Ctrl+Z undoes the last of either."""
        key, mods = event.key(), event.modifiers()
        if key == Qt.Key.Key_Z and mods & Qt.KeyboardModifier.ControlModifier:
            self.undo()
        elif mods & ~Qt.KeyboardModifier.KeypadModifier:
            return False
        elif key == Qt.Key.Key_Space:
            self.open_compare()
        elif key == Qt.Key.Key_N:
            self.not_duplicates()
        else:
            return False
        return True

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.KeyPress and self.handle_key(event):  # type: ignore[arg-type]
            return True
        return super().eventFilter(watched, event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if not self.handle_key(event):
            super().keyPressEvent(event)

    # -- finding ---------------------------------------------------------------------------

    def set_library(self, library: Any) -> None:
        if library is self.library:
            return
        self.library = library
        self.groups = {}
        self.undo_stack = []
        self.tree.clear()
        if self.isVisible():
            self.refresh()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh()

    def refresh(self, select: str | None = None) -> None:
        """Find the groups again; `select`: the group to show once found, even if another search
        (the watcher's) overtakes this one; else the one shown stays."""
        self._select = select or self._select
        if self.library is None:
            self._set_stage("Opening your library…")
            return
        self._generation += 1
        gen = self._generation
        self._set_stage("Looking for duplicates…")
        library = self.library
        self.runner.submit(lambda progress: library.duplicates(on_stage=progress), progress=True,
                           on_progress=lambda stage: self._stage(gen, stage),
                           on_done=lambda groups: self._show_groups(gen, groups),
                           on_failed=lambda exc: self._failed(gen, exc))

    def _set_stage(self, text: str) -> None:
        """While looking, say what is being done: in the list's place until there is a list."""
        self.status.setText(text)
        if not self.groups:
            self.stage.setText(text)
            self.pages.setCurrentIndex(PAGE_STAGE)

    def _stage(self, gen: int, stage: str) -> None:
        if gen == self._generation:
            self._set_stage(f"Looking for duplicates: {stage}…")

    def _failed(self, gen: int, exc: BaseException) -> None:
        if gen == self._generation:
            self._set_stage(f"Looking for duplicates failed: {exc}")

    def _show_groups(self, gen: int, groups: list[DuplicateGroup]) -> None:
        if gen != self._generation:
            return
        wanted = self._select or (self.current.key if self.current is not None else None)
        self._select = None
        self.groups = {g.key: g for g in groups}
        self.tree.blockSignals(True)
        self.tree.clear()
        select = None
        for tier, title in TIER_TITLES.items():
            members = [g for g in groups if g.tier == tier]
            if not members:
                continue
            section = QTreeWidgetItem(self.tree, [title])
            section.setData(0, KEY_ROLE, tier)
            section.setFlags(Qt.ItemFlag.ItemIsEnabled)
            section.setExpanded(True)
            for g in members:
                item = QTreeWidgetItem(section, [self._item_text(g)])
                item.setData(0, KEY_ROLE, g.key)
                item.setToolTip(0, "\n".join(g.paths))
                item.setSizeHint(0, QSize(0, LIST_ICON + 6))
                if g.key in self._icons:
                    item.setIcon(0, self._icons[g.key])
                if select is None or g.key == wanted:
                    select = item
        self.tree.blockSignals(False)
        self._update_counts()
        self.pages.setCurrentIndex(PAGE_GROUPS if groups else PAGE_NONE)
        if select is not None:
            self.tree.setCurrentItem(select)
        else:
            self._show_group(None)
        self._load_icons(groups)
        self.groupsShown.emit()

    @staticmethod
    def _item_text(g: DuplicateGroup) -> str:
        names = ", ".join(os.path.basename(p) for p in g.paths[:2]) + (f" +{len(g.files) - 2}" if len(g.files) > 2
                                                                      else "")
        frees = f" · frees {megabytes(g.reclaimable)}" if g.reclaimable else ""
        return f"{len(g.files)} files{frees}\n{names}"

    def _load_icons(self, groups: list[DuplicateGroup]) -> None:
        if self.library is None:
            return
        for g in groups:
            if g.key not in self._icons:
                self.runner.submit(_load_thumb, self.library, g.files[0].content, g.keep,
                                   on_done=lambda image, k=g.key: self._icon_done(k, image), on_failed=lambda exc: None)

    def _icon_done(self, key: str, image: QImage) -> None:
        if image.isNull():
            return
        self._icons[key] = QIcon(QPixmap.fromImage(image))
        item = self._item(key)
        if item is not None:
            item.setIcon(0, self._icons[key])

    def _update_counts(self) -> None:
        """Section titles, the summary line and the bulk buttons say what is left, as it changes."""
        for i in range(self.tree.topLevelItemCount()):
            section = self.tree.topLevelItem(i)
            section.setText(0, f"{TIER_TITLES[section.data(0, KEY_ROLE)]} ({section.childCount()})")
        if not self.groups:
            self.status.setText("No duplicates left." if self.undo_stack else "No duplicates found.")
        else:
            counts = [f"{sum(g.tier == t for g in self.groups.values())} {TIER_TITLES[t].lower()}"
                      for t in TIER_TITLES]
            self.status.setText(" · ".join(counts))
        self._update_buttons()

    def _update_buttons(self) -> None:
        for tier, button in self.bulk_buttons.items():
            groups = [g for g in self.groups.values() if g.tier == tier]
            files, size = sum(len(g.others()) for g in groups), sum(g.reclaimable for g in groups)
            what = "exact copies" if tier == "exact" else "near-duplicates"
            button.setText(f"Clean up all {what} ({plural(files, 'file')}, {megabytes(size)})…")
            button.setToolTip(f"Keep the suggested file in every {'exact' if tier == 'exact' else 'near'} group "
                              f"and move the {plural(files, 'other')} to the Trash (Undo puts them back)")
            button.setVisible(bool(groups))
            button.setEnabled(not self.busy)
        chosen = self.selected_keys()
        self.selected_button.setText(f"Clean up {len(chosen)} selected groups…")
        self.selected_button.setVisible(len(chosen) > 1)
        self.selected_button.setEnabled(not self.busy)

    def group_keys(self, tier: str | None = None) -> list[str]:
        return [k for k, g in self.groups.items() if tier is None or g.tier == tier]

    def listed_keys(self) -> list[str]:
        """The groups' keys in the list's order."""
        keys = []
        for i in range(self.tree.topLevelItemCount()):
            section = self.tree.topLevelItem(i)
            keys += [section.child(j).data(0, KEY_ROLE) for j in range(section.childCount())]
        return keys

    def selected_keys(self) -> list[str]:
        return [k for k in (i.data(0, KEY_ROLE) for i in self.tree.selectedItems()) if k in self.groups]

    def _item(self, key: str) -> QTreeWidgetItem | None:
        for i in range(self.tree.topLevelItemCount()):
            section = self.tree.topLevelItem(i)
            for j in range(section.childCount()):
                if section.child(j).data(0, KEY_ROLE) == key:
                    return section.child(j)
        return None

    def select_group(self, key: str) -> None:
        item = self._item(key)
        if item is None:
            raise KeyError(key)
        self.tree.setCurrentItem(item)

    def step_group(self, step: int) -> None:
        """Show the next (1) or previous (-1) group of the list."""
        keys = self.listed_keys()
        if not keys:
            return
        at = keys.index(self.current.key) if self.current is not None and self.current.key in keys else -step
        self.select_group(keys[max(0, min(len(keys) - 1, at + step))])

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
        can_trash = group is not None and group.tier in ACTION_TIERS
        self.trash_button.setVisible(can_trash)
        for button in (self.not_button, self.compare_button):
            button.setEnabled(group is not None and not self.busy)
        self.trash_button.setEnabled(can_trash and not self.busy)
        if group is None:
            self.group_title.setText("")
            self.group_note.setText("Choose a group on the left." if self.groups else "")
            self.groupChanged.emit()
            return
        self.group_title.setText(f"{TIER_TITLES[group.tier]} · {len(group.files)} files")
        differs = ", ".join(group.differences) or "nothing but the path"
        note = f"They differ in: {differs}."
        if group.tier == "similar":
            note += " A stack of shots of one moment: pick the ones you like; nothing is proposed for the trash."
        self.group_note.setText(note)
        keep = group.files[0]
        thumb = self._thumb_size(len(group.files))
        for f in group.files:
            card = FileCard(f, keep, can_trash, thumb)
            card.choiceChanged.connect(self._choice_changed)
            self.cards.append(card)
            if self.library is not None:
                self.runner.submit(load_preview, f.path, MAX_THUMB,
                                   on_done=lambda image, c=card, k=group.key: self._thumb_done(k, c, image),
                                   on_failed=lambda exc, c=card, k=group.key: self._thumb_done(k, c, QImage()))
        self._lay_out_cards()
        self._choice_changed()
        self.groupChanged.emit()

    def _columns(self, n: int) -> int:
        width = self.scroll.viewport().width()
        return max(1, min(n, (width + CARD_GAP) // (MIN_THUMB + CARD_PAD + CARD_GAP)))

    def _thumb_size(self, n: int) -> int:
        """The biggest picture that lets the cards sit side by side without a horizontal scroll."""
        cols = self._columns(n)
        width = self.scroll.viewport().width() - (cols - 1) * CARD_GAP - 2
        tall = self.scroll.viewport().height() - CARD_TEXT        # the whole card in view, when it can be
        return max(MIN_THUMB, min(MAX_THUMB, width // cols - CARD_PAD, tall))

    def _lay_out_cards(self) -> None:
        while self.cards_grid.count():
            self.cards_grid.takeAt(0)
        cols = self._columns(len(self.cards))
        thumb = self._thumb_size(len(self.cards))
        for n, card in enumerate(self.cards):
            card.set_thumb_size(thumb)
            self.cards_grid.addWidget(card, n // cols, n % cols, Qt.AlignmentFlag.AlignTop)
        self.cards_grid.setColumnStretch(cols, 1)
        self.cards_grid.setRowStretch((len(self.cards) - 1) // cols + 1 if self.cards else 0, 1)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self.cards:
            self._lay_out_cards()

    def _thumb_done(self, key: str, card: FileCard, image: QImage) -> None:
        if self.current is not None and self.current.key == key and card in self.cards:
            card.set_image(image)

    def _choice_changed(self) -> None:
        """The star follows the file that will be kept; the action button says how many files go."""
        group = self.chosen_group()
        keep = group.files[0].path if group is not None else None
        suggested = self.current.keep if self.current is not None else None
        for card in self.cards:
            if card.file.path == keep and group is not None:
                who = "★ Suggested keep" if keep == suggested else "★ Your keep"
                card.set_star(f"{who}: " + "; ".join(group.reasons))
            else:
                card.set_star("")
        trash = [c for c in self.cards if not c.kept]
        self.trash_button.setText(f"Move {plural(len(trash), 'file')} to trash" if trash else "Move others to trash")

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
        return replace(chosen, files=(kept[0], *trash), reasons=tuple(keep_reasons(kept[0], trash)))

    # -- comparing ---------------------------------------------------------------------------

    def open_compare(self) -> None:
        if self.current is None:
            return
        from clipphotos.gui.compare import CompareDialog
        if self.compare is None:
            self.compare = CompareDialog(self)
        self.compare.show_group()
        self.compare.show()
        self.compare.raise_()
        self.compare.activateWindow()

    # -- acting ------------------------------------------------------------------------------

    def confirm_trash(self, paths: list[str], size: int, groups: int) -> bool:
        names = ", ".join(_short(p) for p in paths[:3]) + (" …" if len(paths) > 3 else "")
        kept = "The group keeps its chosen file" if groups == 1 else f"Each of the {groups} groups keeps its chosen file"
        return confirm(self, "Move to trash", f"Move {plural(len(paths), 'file')} ({megabytes(size)}) to the Trash?",
                       f"{names}\n\n{kept}. Undo puts every file back where it was, in the library with its tags.")

    def trash_others(self) -> None:
        group = self.chosen_group()
        if self.library is None or self.busy or self.current is None:
            return
        if group is None or group.tier not in ACTION_TIERS:
            self.group_note.setText("Mark at least one file Keep and one Trash.")
            return
        self._clean_up([group], [self.current.key])

    def clean_up_tier(self, tier: str) -> None:
        """Keep the suggested file in every group of a tier, the rest to the trash: one confirmation."""
        keys = self.group_keys(tier)
        self._clean_up([self._as_chosen(k) for k in keys], keys)

    def clean_up_selected(self) -> None:
        keys = [k for k in self.selected_keys() if self.groups[k].tier in ACTION_TIERS]
        self._clean_up([self._as_chosen(k) for k in keys], keys)

    def _as_chosen(self, key: str) -> DuplicateGroup:
        """The group as the user marked it if it is the one on screen, else as suggested."""
        chosen = self.chosen_group() if self.current is not None and self.current.key == key else None
        return chosen or self.groups[key]

    def _clean_up(self, groups: list[DuplicateGroup], keys: list[str]) -> None:
        groups = [g for g in groups if g.tier in ACTION_TIERS]
        if self.library is None or self.busy or not groups:
            return
        paths = list(dict.fromkeys(p for g in groups for p in g.others()))
        size = sum(g.reclaimable for g in groups)
        if not paths or not self.confirm_trash(paths, size, len(groups)):
            return
        self._act(keys, self.library.trash_duplicates, groups)

    def not_duplicates(self) -> None:
        if self.library is None or self.current is None or self.busy:
            return
        self._act([self.current.key], self.library.mark_not_duplicates, self.current.paths)

    def undo(self) -> None:
        """Take back this session's latest action (again for the one before): put a clean-up's
        files back, or group again the files set apart."""
        if self.library is None or self.busy or not self.undo_stack:
            return
        last = self.undo_stack[-1]
        if isinstance(last, tuple):
            self._act([], self.library.undo_not_duplicates, last[1], done=lambda _: self._grouped_again(last))
        else:
            self._act([], self.library.undo_cleanup, last)

    def _grouped_again(self, entry: tuple[str, SetApart]) -> None:
        self.busy = False
        self.undo_button.setEnabled(True)
        self.undo_stack = [e for e in self.undo_stack if e is not entry]
        self.say(f"Grouped again: {plural(len(entry[1].paths), 'file')} no longer set apart.")
        self.actionFinished.emit(entry[1])
        self.refresh(select=entry[0])

    def _act(self, keys: list[str], fn: Any, arg: Any, done: Any = None) -> None:
        self.busy = True
        for button in (self.trash_button, self.not_button, self.undo_button):
            button.setEnabled(False)
        self._update_buttons()
        listed = self.listed_keys()
        after = [k for k in listed[listed.index(keys[-1]) + 1:] if k not in keys] if keys and keys[-1] in listed \
            else []
        self.runner.submit(fn, arg, on_done=done or (lambda result: self._acted(keys, after, result)),
                           on_failed=self._act_failed)

    def _act_failed(self, exc: BaseException) -> None:
        self.busy = False
        self.undo_button.setEnabled(True)
        self.say(f"That did not work: {exc}")
        self._show_group(self.current)
        self._update_buttons()

    def _acted(self, keys: list[str], after: list[str], result: Any) -> None:
        self.busy = False
        self.undo_button.setEnabled(True)
        if hasattr(result, "restored"):         # an undo: the groups come back with the files
            self.undo_stack = [c for c in self.undo_stack if c != result.cleanup]
            self.say(f"Put back {plural(len(result.restored), 'file')} ({megabytes(result.bytes)}) where they were"
                     + (f"; {len(result.failed)} could not be: {result.failed[0][1]}" if result.failed else "."))
            self.libraryChanged.emit()
            self.actionFinished.emit(result)
            self.refresh()
            return
        failed = {p for p, _ in getattr(result, "failed", [])}
        done = [k for k in keys if not (set(self.groups[k].others()) & failed)] if keys else []
        if hasattr(result, "moved"):
            if result.cleanup is not None and result.moved:
                self.undo_stack.append(result.cleanup)
            self.say(f"Moved {plural(result.files, 'file')} ({megabytes(result.bytes)}) to the Trash"
                     + (f"; {len(failed)} could not be moved: {result.failed[0][1]}" if failed else ""))
            self.libraryChanged.emit()
        else:
            self.undo_stack.append((keys[0], result))
            self.say(f"Set {plural(len(self.groups[keys[0]].files), 'file')} apart: they will not be grouped again.")
        self._remove_groups(done, after)
        self.actionFinished.emit(result)

    def say(self, text: str) -> None:
        """The message that stays until the next one: what happened, with Undo while there is one."""
        self.message.setText(text)
        self.undo_button.setVisible(bool(self.undo_stack))
        self.undo_button.setText("Undo" if len(self.undo_stack) < 2 else f"Undo ({len(self.undo_stack)})")
        self.message_bar.show()

    def _remove_groups(self, keys: list[str], after: list[str]) -> None:
        """Drop resolved groups; the next one in the list (not the top) is shown."""
        current = self.current.key if self.current is not None else None
        for key in keys:
            self.groups.pop(key, None)
            item = self._item(key)
            if item is not None:
                section = item.parent()
                section.removeChild(item)
                if section.childCount() == 0:
                    self.tree.takeTopLevelItem(self.tree.indexOfTopLevelItem(section))
        self._update_counts()
        if current in self.groups:
            self._show_group(self.groups[current])
            return
        listed = self.listed_keys()
        nxt = next((k for k in after if k in self.groups), listed[-1] if listed else None)
        if nxt is not None:
            self.select_group(nxt)
        else:
            self.tree.setCurrentItem(None)
            self._show_group(None)
            self.pages.setCurrentIndex(PAGE_NONE)
            self.none_label.setText("No duplicates left." if self.undo_stack else "No duplicates found.")
