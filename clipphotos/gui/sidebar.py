"""The sidebar: the library's folders, Tidy up (duplicates) and the user's tags, each with its count.

Sections are top-level rows of one tree ("Library", "Tidy up", "Tags"), which scrolls when the
window is short, so every entry stays reachable at any size; nothing in it is elided. Selecting
"All photos" or a folder narrows what the grid shows; a tag shows the photos it applies to
(the search and filters still apply on top). A folder's context menu removes it, or forgets the
photos of a drive mounted inside it that is away for good. Below the tree: a field to make a new
label, and the folder buttons.
"""
from __future__ import annotations

import os

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QColor, QFont, QIcon
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QLineEdit, QMenu, QToolButton, QTreeWidget,
                               QTreeWidgetItem, QWidget)

from clipphotos.gui.widgets import hbox, vbox

ALL_PHOTOS = ""          # the key of the "All photos" row (a folder row's key is its path)
DUPLICATES = "\0duplicates"   # the key of the "Duplicates" row (never a path)
TAG = "\0tag:"                # a tag row's key: TAG + the label's name
NO_TAGS = "\0no-tags"         # the hint row of an empty Tags section
KEY_ROLE = Qt.ItemDataRole.UserRole
AWAY_ROLE = Qt.ItemDataRole.UserRole + 1   # a folder row's drives that are away (mount paths)


def _key(item: QTreeWidgetItem) -> str | None:
    value = item.data(0, KEY_ROLE)
    return value if isinstance(value, str) else None


class Sidebar(QWidget):
    folderSelected = Signal(object)         # a folder path, or None for all photos
    duplicatesSelected = Signal()           # the "Duplicates" row was chosen
    addFolderRequested = Signal()
    removeFolderRequested = Signal(str)
    forgetDriveRequested = Signal(str)      # the mount path of a drive that is away
    tagSelected = Signal(str)               # a label's name
    labelRequested = Signal(str)            # "name: prompt; prompt" typed in the new-label field

    def __init__(self, icons: dict[str, QIcon], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sidebar")
        self.icons = icons
        layout = vbox(self, (0, 10, 0, 8), 0)

        self.tree = QTreeWidget()
        self.tree.setObjectName("sidebarTree")
        self.tree.setColumnCount(2)
        self.tree.setHeaderHidden(True)
        self.tree.setRootIsDecorated(False)
        self.tree.setIndentation(0)
        self.tree.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.header().setStretchLastSection(False)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.itemSelectionChanged.connect(self._selection_changed)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(lambda pos: self._show_menu(self.tree.itemAt(pos), pos))
        layout.addWidget(self.tree, 1)

        self.library = self.add_section("Library")
        self.all_item = self._row(self.library, "All photos", ALL_PHOTOS, icons.get("photos"))
        self.tidy = self.add_section("Tidy up")
        self.duplicates_item = self._row(self.tidy, "Duplicates", DUPLICATES, icons.get("duplicates"))
        self.tags = self.add_section("Tags")
        self.tags.setToolTip(0, "Your own labels: ClipPhotos suggests the photos each fits, you confirm")
        self._show_no_tags()

        self.new_label = QLineEdit()
        self.new_label.setObjectName("newLabel")
        self.new_label.setPlaceholderText("New label…")
        self.new_label.setToolTip("A name, e.g. “receipts”, optionally with describing phrases after “:”, "
                                  "separated by “;”:\nreceipts: a shopping receipt; a scanned invoice\n"
                                  "Enter shows its suggestions to review")
        self.new_label.setClearButtonEnabled(True)
        self.new_label.returnPressed.connect(self._new_label)
        field = hbox(margins=(10, 6, 10, 0), spacing=0)
        field.addWidget(self.new_label)
        layout.addLayout(field)

        buttons = hbox(margins=(10, 6, 10, 0), spacing=4)
        self.add_button = QToolButton()
        self.add_button.setObjectName("sidebarButton")
        self.add_button.setIcon(icons.get("plus", QIcon()))
        self.add_button.setText("Add folder…")
        self.add_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.add_button.clicked.connect(self.addFolderRequested)
        self.remove_button = QToolButton()
        self.remove_button.setObjectName("sidebarButton")
        self.remove_button.setIcon(icons.get("minus", QIcon()))
        self.remove_button.setToolTip("Remove the selected folder from the library (the photos stay on disk)")
        self.remove_button.setEnabled(False)
        self.remove_button.clicked.connect(self._remove_clicked)
        buttons.addWidget(self.add_button)
        buttons.addStretch(1)
        buttons.addWidget(self.remove_button)
        layout.addLayout(buttons)
        self.all_item.setSelected(True)

    # -- building ------------------------------------------------------------------------

    def add_section(self, title: str) -> QTreeWidgetItem:
        """A section header row; later features (Tags, Duplicates) hang their rows under one."""
        item = QTreeWidgetItem(self.tree, [title.upper(), ""])
        item.setFlags(Qt.ItemFlag.ItemIsEnabled)
        font = QFont(self.tree.font())
        font.setPointSizeF(font.pointSizeF() * 0.8)
        font.setBold(True)
        font.setLetterSpacing(QFont.SpacingType.PercentageSpacing, 108)
        item.setFont(0, font)
        item.setForeground(0, QColor("#8a8f98"))
        item.setExpanded(True)
        return item

    def _row(self, section: QTreeWidgetItem, text: str, key: str, icon: QIcon | None) -> QTreeWidgetItem:
        item = QTreeWidgetItem(section, [text, ""])
        item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        item.setForeground(1, QColor("#8a8f98"))
        if icon is not None:
            item.setIcon(0, icon)
        item.setData(0, KEY_ROLE, key)
        return item

    def _show_no_tags(self) -> None:
        hint = self._row(self.tags, "No labels yet", NO_TAGS, None)
        hint.setFlags(Qt.ItemFlag.ItemIsEnabled)
        hint.setForeground(0, QColor("#8a8f98"))
        hint.setToolTip(0, "Type a label in the field below and press Enter")

    def set_tags(self, infos: list) -> None:
        """Rows from `Library.label_infos()`: each label and the photos it applies to ("new" before
        it is applied); keeps the selection."""
        selected = self.selected_tag()
        self.tree.blockSignals(True)
        for i in reversed(range(self.tags.childCount())):
            self.tags.removeChild(self.tags.child(i))
        for info in infos:
            item = self._row(self.tags, info.name, TAG + info.name, self.icons.get("tag"))
            applied = info.tagged or info.threshold is not None
            item.setText(1, f"{info.tagged:,}" if applied else "new")
            lines = [f"{info.name}: on {info.tagged:,} photo{'s' if info.tagged != 1 else ''}" if applied else
                     f"{info.name}: not applied yet (review its suggestions, then Apply)",
                     *(f"“{p}”" for p in info.prompts)]
            if info.accepted or info.rejected:
                lines.append(f"Your answers: {info.accepted} yes, {info.rejected} no")
            item.setToolTip(0, "\n".join(lines))
            item.setToolTip(1, item.toolTip(0))
            if info.name == selected:
                item.setSelected(True)
                self.tree.setCurrentItem(item)
        if not infos:
            self._show_no_tags()
        self.tree.blockSignals(False)
        if selected is not None and self.selected_tag() is None:
            self.select_folder(None, notify=True)      # the label is gone: back to all photos

    def tag_names(self) -> list[str]:
        return [k[len(TAG):] for k in (_key(self.tags.child(i)) for i in range(self.tags.childCount()))
                if k and k.startswith(TAG)]

    def tag_item(self, name: str) -> QTreeWidgetItem | None:
        for i in range(self.tags.childCount()):
            if _key(self.tags.child(i)) == TAG + name:
                return self.tags.child(i)
        return None

    def selected_tag(self) -> str | None:
        items = self.tree.selectedItems()
        key = _key(items[0]) if items else None
        return key[len(TAG):] if key and key.startswith(TAG) else None

    def select_tag(self, name: str, notify: bool = True) -> None:
        item = self.tag_item(name)
        if item is None:
            return
        self.tree.blockSignals(True)
        self.tree.clearSelection()            # one row selected, and no passing through "All photos"
        self.tree.blockSignals(not notify)
        item.setSelected(True)
        self.tree.setCurrentItem(item)
        self.tree.scrollToItem(item)
        self.tree.blockSignals(False)

    def _new_label(self) -> None:
        text = self.new_label.text().strip()
        if text:
            self.new_label.clear()
            self.labelRequested.emit(text)

    def set_folders(self, details: list[dict], total: int) -> None:
        """Rows from `Library.status()['folder_details']`; keeps the selection when it can."""
        selected = self.selected_folder()
        self.tree.blockSignals(True)
        for i in reversed(range(self.library.childCount())):
            child = self.library.child(i)
            if _key(child) != ALL_PHOTOS:
                self.library.removeChild(child)
        self.all_item.setText(1, f"{total:,}")
        for d in details:
            path = d["path"]
            item = self._row(self.library, os.path.basename(path.rstrip(os.sep)) or path, path,
                             self.icons.get("folder"))
            item.setText(1, f"{d['photos']:,}")
            tip = path if d.get("online", True) else f"{path}\nOffline: its photos are kept until it is back"
            for away in d.get("away", []):
                tip += (f"\n{away}: its drive is away; its photos are kept until it is back "
                        f"(right-click to forget them if it is gone for good)")
            item.setToolTip(0, tip)
            item.setData(0, AWAY_ROLE, list(d.get("away", [])))
            if not d.get("online", True):
                item.setForeground(0, QColor("#9aa0a8"))
                font = item.font(0)
                font.setItalic(True)
                item.setFont(0, font)
        self.tree.blockSignals(False)
        if self.duplicates_item.isSelected() or self.selected_tag() is not None:
            return
        self.select_folder(selected, notify=selected is not None and selected not in
                           [d["path"] for d in details])

    # -- selection -----------------------------------------------------------------------

    def selected_folder(self) -> str | None:
        items = self.tree.selectedItems()
        key = _key(items[0]) if items else None
        return None if key is None or key.startswith("\0") else (key or None)

    def select_folder(self, path: str | None, notify: bool = False) -> None:
        target = self.all_item
        for i in range(self.library.childCount()):
            child = self.library.child(i)
            if path and _key(child) == path:
                target = child
        self.tree.blockSignals(True)
        self.tree.clearSelection()            # a tag's row may have been selected
        self.tree.blockSignals(not notify)
        target.setSelected(True)
        self.tree.setCurrentItem(target)
        self.tree.blockSignals(False)
        self.remove_button.setEnabled(_key(target) != ALL_PHOTOS)

    def _selection_changed(self) -> None:
        folder = self.selected_folder()
        if not self.tree.selectedItems():
            self.all_item.setSelected(True)
            return
        if self.duplicates_item.isSelected():
            self.remove_button.setEnabled(False)
            self.duplicatesSelected.emit()
            return
        tag = self.selected_tag()
        if tag is not None:
            self.remove_button.setEnabled(False)
            self.tagSelected.emit(tag)
            return
        self.remove_button.setEnabled(folder is not None)
        self.folderSelected.emit(folder)

    def folder_menu(self, item: QTreeWidgetItem | None) -> QMenu | None:
        """A folder row's context menu: remove the folder; forget each of its drives that is away."""
        key = _key(item) if item is not None else None
        if item is None or not key or key.startswith("\0"):
            return None
        menu = QMenu(self)
        menu.addAction("Remove Folder…", lambda: self.removeFolderRequested.emit(key))
        for mount in item.data(0, AWAY_ROLE) or []:
            name = os.path.basename(mount.rstrip(os.sep)) or mount
            menu.addAction(f"Forget the Photos on “{name}” (Drive Away)…",
                           lambda m=mount: self.forgetDriveRequested.emit(m))
        return menu

    def _show_menu(self, item: QTreeWidgetItem | None, pos: QPoint) -> None:
        menu = self.folder_menu(item)
        if menu is not None:
            menu.exec(self.tree.viewport().mapToGlobal(pos))
            menu.deleteLater()          # one menu per right-click: not kept as the sidebar's child

    def _remove_clicked(self) -> None:
        folder = self.selected_folder()
        if folder is not None:
            self.removeFolderRequested.emit(folder)
