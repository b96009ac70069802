"""Small builders for the layouts and labels every part of the window repeats."""
from __future__ import annotations

from PySide6.QtWidgets import QBoxLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

Margins = tuple[int, int, int, int]


def _box(layout: QBoxLayout, margins: Margins, spacing: int) -> QBoxLayout:
    layout.setContentsMargins(*margins)
    layout.setSpacing(spacing)
    return layout


def vbox(parent: QWidget | None = None, margins: Margins = (0, 0, 0, 0), spacing: int = 0) -> QVBoxLayout:
    return _box(QVBoxLayout(parent) if parent is not None else QVBoxLayout(), margins, spacing)  # type: ignore[return-value]


def hbox(parent: QWidget | None = None, margins: Margins = (0, 0, 0, 0), spacing: int = 8) -> QHBoxLayout:
    return _box(QHBoxLayout(parent) if parent is not None else QHBoxLayout(), margins, spacing)  # type: ignore[return-value]


def label(text: str = "", name: str = "", wrap: bool = True) -> QLabel:
    """A label styled by its object name in resources/style.qss (dialogTitle, note, ...)."""
    widget = QLabel(text)
    if name:
        widget.setObjectName(name)
    widget.setWordWrap(wrap)
    return widget


def confirm(parent: QWidget, title: str, question: str, detail: str, action: str = "Move to Trash") -> bool:
    """The app's one confirmation: a question, what follows, and a button named for the action.

    The action button is the default (Enter), Cancel or Escape says no.
    """
    from PySide6.QtWidgets import QMessageBox
    box = QMessageBox(QMessageBox.Icon.Question, title, question, parent=parent)
    box.setObjectName("confirmBox")
    box.setInformativeText(detail)
    yes = box.addButton(action, QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(yes)
    box.exec()
    return box.clickedButton() is yes


def plural(n: int, word: str) -> str:
    """'1 photo', '25 photos': counts in messages read as sentences."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"
