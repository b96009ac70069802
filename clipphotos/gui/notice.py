"""A message over the grid that stays until dismissed: what an action did, with its Undo.

The status bar's messages vanish (and indexing overwrites them); an action that changed many
photos says so here instead, with a button to take it back and × to dismiss. While the action
is still running the notice shows an indeterminate progress bar and no buttons.
"""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QProgressBar, QPushButton, QToolButton, QWidget

from clipphotos.gui.widgets import hbox, label


class NoticeBar(QFrame):
    """One notice at a time: text, maybe progress, maybe an action button, and ×."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("notice")
        row = hbox(self, (12, 6, 6, 6), 8)
        self.text = label("", "noticeText")
        row.addWidget(self.text, 1)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setTextVisible(False)
        self.progress.setFixedWidth(120)
        row.addWidget(self.progress, 0, Qt.AlignmentFlag.AlignVCenter)
        self.action = QPushButton()
        self.action.setObjectName("linkButton")
        row.addWidget(self.action, 0, Qt.AlignmentFlag.AlignVCenter)
        self.close_button = QToolButton()
        self.close_button.setObjectName("noticeClose")
        self.close_button.setText("×")
        self.close_button.setToolTip("Dismiss")
        self.close_button.clicked.connect(self.hide)
        row.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignVCenter)
        self._callback: Callable[[], None] | None = None
        self.action.clicked.connect(self._act)
        self.hide()

    def busy(self, text: str) -> None:
        """A running action: its text and a moving bar; nothing to click until it is done."""
        self._show(text, progress=True)

    def say(self, text: str, action: str = "", callback: Callable[[], None] | None = None) -> None:
        """A finished action's message; it stays until × (or the next notice)."""
        self._show(text, action=action, callback=callback)

    def _show(self, text: str, progress: bool = False, action: str = "",
              callback: Callable[[], None] | None = None) -> None:
        self.text.setText(text)
        self.progress.setVisible(progress)
        self.close_button.setVisible(not progress)
        self.action.setText(action)
        self.action.setVisible(bool(action))
        self._callback = callback
        self.show()

    def _act(self) -> None:
        callback, self._callback = self._callback, None
        self.action.hide()
        if callback is not None:
            callback()
