"""The Duplicates view on real widgets (offscreen) and a real library of drawn shapes."""
from __future__ import annotations

import os
from pathlib import Path

import clipphotos.gui  # noqa: F401 - first: keeps None/True/False alive under PySide6 6.12 on Python < 3.12
import pytest

from PySide6.QtCore import Qt

from clipphotos.gui.duplicates_view import DuplicatesView
from conftest import shapes_spec
from duplicate_library import make_duplicate_library


def answer_confirmation(qtbot, button: str, asked: list[str]) -> None:
    """Click `button` on the confirmation box when it opens (the real QMessageBox, run modal)."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    def click() -> None:
        boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
        if not boxes:
            QTimer.singleShot(20, click)
            return
        box = boxes[0]
        asked.append(f"{box.text()}\n{box.informativeText()}")
        next(b for b in box.buttons() if b.text() == button).click()
    QTimer.singleShot(0, click)


@pytest.fixture
def dup_library(tmp_path: Path):
    """Drawn pictures with known exact copies and resized copies (tests/duplicate_library.py), indexed."""
    from clipphotos.library import Library
    made = make_duplicate_library(tmp_path / "photos", originals=8, exact=2, near=2)
    lib = Library(tmp_path / "library", model=shapes_spec())
    lib.index_folders([tmp_path / "photos"])
    yield lib, made
    lib.close()


def open_view(qtbot, lib) -> DuplicatesView:
    view = DuplicatesView()
    qtbot.addWidget(view)
    view.resize(1000, 700)
    view.set_library(lib)
    with qtbot.waitSignal(view.groupsShown, timeout=30_000):
        view.show()
        assert view.status.text() == "Looking for duplicates…"
        assert view.pages.currentIndex() == 0 and view.stage.text() == "Looking for duplicates…"
    return view


def group_of(view: DuplicatesView, tier: str, paths: tuple[str, ...]) -> str:
    keys = [k for k in view.group_keys(tier) if set(paths) <= set(view.groups[k].paths)]
    assert keys, (tier, paths, {k: g.paths for k, g in view.groups.items()})
    return keys[0]


def section_titles(view: DuplicatesView) -> list[str]:
    return [view.tree.topLevelItem(i).text(0) for i in range(view.tree.topLevelItemCount())]


def test_one_group_at_a_time_counts_follow_and_the_next_group_is_shown(qtbot, dup_library):
    lib, made = dup_library
    view = open_view(qtbot, lib)
    near = [group_of(view, "near", pair) for pair in made["near"]]
    assert section_titles(view)[:2] == ["Exact copies (2)", "Near-duplicates (2)"]
    view.select_group(near[0])
    keep, other = view.cards
    assert keep.kept and not other.kept and keep.file.path == made["near"][0][0]   # the bigger original
    assert keep.property("choice") == "keep" and other.property("choice") == "trash"
    assert keep.badge.text() == "✓ Keep" and other.badge.text() == "✕ Trash"
    assert keep.star.text().startswith("★ Suggested keep") and other.star.text() == ""
    assert view.trash_button.text() == "Move 1 file to trash"
    qtbot.waitUntil(lambda: all(c.thumb.pixmap() is not None and not c.thumb.pixmap().isNull()
                                for c in view.cards), timeout=20_000)
    other.keep_button.click()                  # keep both: nothing to move, no star on a trashed card
    keep.trash_button.click()                  # the star follows the choice
    assert other.star.text().startswith("★ Your keep") and keep.star.text() == ""
    other.trash_button.click()
    keep.keep_button.click()

    asked: list[str] = []
    answer_confirmation(qtbot, "Move to Trash", asked)
    with qtbot.waitSignal(view.actionFinished, timeout=30_000) as done:
        view.trash_button.click()
    size = os.path.getsize(done.args[0].moved[0][1])
    assert asked and asked[0].startswith(f"Move 1 file ({size / 1e3:.0f} kB) to the Trash?")
    assert [p for p, _ in done.args[0].moved] == [made["near"][0][1]]
    assert not os.path.exists(made["near"][0][1]) and lib.catalog.photo_by_path(made["near"][0][1]) is None
    assert view.current.key == near[1]                       # the next group, not the top one
    assert section_titles(view)[:2] == ["Exact copies (2)", "Near-duplicates (1)"]
    assert view.status.text().startswith("2 exact copies · 1 near-duplicates")
    assert view.message_bar.isVisible() and view.message.text() == f"Moved 1 file ({size / 1e3:.0f} kB) to the Trash"
    assert view.undo_button.isVisible()

    view.select_group(group_of(view, "exact", made["exact"][0]))
    nxt = view.listed_keys()[1]
    with qtbot.waitSignal(view.actionFinished, timeout=30_000):
        qtbot.keyClick(view.tree, Qt.Key.Key_N)                  # N: not duplicates
    assert view.current.key == nxt and section_titles(view)[0] == "Exact copies (1)"
    assert "will not be grouped again" in view.message.text()

    with qtbot.waitSignal(view.groupsShown, timeout=30_000):
        view.undo_button.click()
    assert os.path.exists(made["near"][0][1]) and lib.catalog.photo_by_path(made["near"][0][1]) is not None
    assert view.message.text().startswith("Put back 1 file")
    assert near[0] in view.groups and not view.undo_button.isVisible()


def test_sidebar_duplicates_row_switches_views_and_survives_a_status_refresh(qtbot):
    from clipphotos.gui.sidebar import Sidebar
    bar = Sidebar({})
    qtbot.addWidget(bar)
    folders: list[object] = []
    bar.folderSelected.connect(folders.append)
    with qtbot.waitSignal(bar.duplicatesSelected, timeout=1000):
        bar.tree.setCurrentItem(bar.duplicates_item)
    assert bar.selected_folder() is None and folders == []
    bar.set_folders([{"path": "/photos/a", "photos": 3}], 3)       # a status refresh keeps the view
    assert bar.duplicates_item.isSelected() and folders == []
    bar.tree.setCurrentItem(bar.all_item)
    assert folders == [None]
