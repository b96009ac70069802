"""The sidebar: the library's folders with their photo counts, and room for more sections.

Sections are top-level rows ("Library" now; "Tags" and "Duplicates" later add theirs with
`add_section`). Selecting "All photos" or a folder narrows what the grid shows.
"""
from __future__ import annotations

import os

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QIcon
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QToolButton, QTreeWidget, QTreeWidgetItem,
                               QWidget)

from clipphotos.gui.widgets import hbox, vbox

ALL_PHOTOS = ""          # the key of the "All photos" row (a folder row's key is its path)
DUPLICATES = "\0duplicates"   # the key of the "Duplicates" row (never a path)
KEY_ROLE = Qt.ItemDataRole.UserRole


def _key(item: QTreeWidgetItem) -> str | None:
    value = item.data(0, KEY_ROLE)
    return value if isinstance(value, str) else None


class Sidebar(QWidget):
    folderSelected = Signal(object)         # a folder path, or None for all photos
    duplicatesSelected = Signal()           # the "Duplicates" row was chosen
    addFolderRequested = Signal()
    removeFolderRequested = Signal(str)

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
        layout.addWidget(self.tree, 1)

        self.library = self.add_section("Library")
        self.all_item = self._row(self.library, "All photos", ALL_PHOTOS, icons.get("photos"))
        self.tidy = self.add_section("Tidy up")
        self.duplicates_item = self._row(self.tidy, "Duplicates", DUPLICATES, icons.get("duplicates"))

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
            item.setToolTip(0, tip)
            if not d.get("online", True):
                item.setForeground(0, QColor("#9aa0a8"))
                font = item.font(0)
                font.setItalic(True)
                item.setFont(0, font)
        self.tree.blockSignals(False)
        if self.duplicates_item.isSelected():
            return
        self.select_folder(selected, notify=selected is not None and selected not in
                           [d["path"] for d in details])

    # -- selection -----------------------------------------------------------------------

    def selected_folder(self) -> str | None:
        items = self.tree.selectedItems()
        key = _key(items[0]) if items else None
        return None if key == DUPLICATES else (key or None)

    def select_folder(self, path: str | None, notify: bool = False) -> None:
        target = self.all_item
        for i in range(self.library.childCount()):
            child = self.library.child(i)
            if path and _key(child) == path:
                target = child
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
        self.remove_button.setEnabled(folder is not None)
        self.folderSelected.emit(folder)

    def _remove_clicked(self) -> None:
        folder = self.selected_folder()
        if folder is not None:
            self.removeFolderRequested.emit(folder)
