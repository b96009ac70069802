"""The Duplicates view on real widgets (offscreen) and a real library of drawn shapes."""
from __future__ import annotations

import os
from pathlib import Path

import clipphotos.gui  # noqa: F401 - first: keeps None/True/False alive under PySide6 6.12 on Python < 3.12
import pytest

from PySide6.QtCore import Qt

from clipphotos.gui.duplicates_view import DuplicatesView, megabytes
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
    assert asked and asked[0].startswith(f"Move 1 file ({megabytes(size)}) to the Trash?")
    assert [p for p, _ in done.args[0].moved] == [made["near"][0][1]]
    assert not os.path.exists(made["near"][0][1]) and lib.catalog.photo_by_path(made["near"][0][1]) is None
    assert view.current.key == near[1]                       # the next group, not the top one
    assert section_titles(view)[:2] == ["Exact copies (2)", "Near-duplicates (1)"]
    assert view.status.text().startswith("2 exact copies · 1 near-duplicates")
    assert view.message_bar.isVisible() and view.message.text() == f"Moved 1 file ({megabytes(size)}) to the Trash"
    assert view.undo_button.isVisible()

    set_apart = group_of(view, "exact", made["exact"][0])
    view.select_group(set_apart)
    nxt = view.listed_keys()[1]
    with qtbot.waitSignal(view.actionFinished, timeout=30_000):
        qtbot.keyClick(view.tree, Qt.Key.Key_N)                  # N: not duplicates
    assert view.current.key == nxt and section_titles(view)[0] == "Exact copies (1)"
    assert "will not be grouped again" in view.message.text()
    assert view.undo_button.isVisible() and view.undo_button.text() == "Undo (2)"

    with qtbot.waitSignal(view.groupsShown, timeout=30_000):   # the latest first: the group comes back, shown
        qtbot.keyClick(view.tree, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert view.current.key == set_apart and section_titles(view)[0] == "Exact copies (2)"
    assert view.message.text() == f"Grouped again: {len(view.groups[set_apart].files)} files no longer set apart."
    assert view.undo_button.text() == "Undo" and lib.catalog.distinct_pairs() == (set(), set())

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


def test_clean_all_exact_copies_compare_a_near_group_then_undo_in_the_real_window(qtbot, tmp_path):
    """The issue's user story: one action for every exact copy, a near group side by side, then undo."""
    import hashlib

    from clipphotos.gui.main_window import AppOptions, MainWindow
    from clipphotos.model_choices import ModelRequest
    from clipphotos.library import Library
    from conftest import SHAPES_CONFIG, SHAPES_WEIGHTS
    made = make_duplicate_library(tmp_path / "photos", originals=10, exact=3, near=2)
    with Library(tmp_path / "library", model=shapes_spec()) as lib:
        lib.index_folders([tmp_path / "photos"])
        lib.labels.add("star")
        lib.labels.review("star", [made["exact"][0][1]], True)
        copies = [p for group in made["exact"] for p in group[1:]]
        before = {p: (hashlib.sha256(Path(p).read_bytes()).digest(), lib.catalog.photo_by_path(p)) for p in copies}
        tags_before = lib.labels.tags_of(copies)
    window = MainWindow(AppOptions(str(tmp_path / "library"), ModelRequest(str(SHAPES_CONFIG), None,
                                                                         str(SHAPES_WEIGHTS)), "cpu", welcome=False))
    qtbot.addWidget(window)
    window.resize(1024, 700)
    window.show()
    qtbot.waitUntil(lambda: window.library is not None, timeout=90_000)
    view = window.duplicates
    with qtbot.waitSignal(view.groupsShown, timeout=60_000):
        window.sidebar.tree.setCurrentItem(window.sidebar.duplicates_item)
    assert window.pages.currentWidget() is view
    # Three cards fit at 1024 px, side by side, with no horizontal scroll.
    three = group_of(view, "exact", made["exact"][0])
    view.select_group(three)
    assert len(view.cards) == 3
    assert len({c.y() for c in view.cards}) == 1
    assert max(c.geometry().right() for c in view.cards) <= view.scroll.viewport().width()
    assert all(c.thumb.width() >= 128 for c in view.cards)

    # 1. Every exact copy in one action, one confirmation naming files and megabytes.
    size = sum(os.path.getsize(p) for p in copies)
    assert view.bulk_buttons["exact"].isVisible()
    asked: list[str] = []
    answer_confirmation(qtbot, "Move to Trash", asked)
    with qtbot.waitSignal(view.actionFinished, timeout=60_000) as done:
        view.bulk_buttons["exact"].click()
    assert len(asked) == 1 and asked[0].startswith(f"Move {len(copies)} files ({megabytes(size)}) to the Trash?")
    assert sorted(p for p, _ in done.args[0].moved) == sorted(copies)
    assert not any(os.path.exists(p) for p in copies)
    assert view.group_keys("exact") == [] and not any("Exact" in t for t in section_titles(view))
    assert view.message.text() == f"Moved {len(copies)} files ({megabytes(size)}) to the Trash"
    assert view.undo_button.isVisible() and view.message_bar.isVisible()

    # 2. A near group side by side: one zoom, panning together, a table of differences, K/T keys.
    near = group_of(view, "near", made["near"][0])
    view.select_group(near)
    qtbot.keyClick(view.tree, Qt.Key.Key_Space)
    compare = view.compare
    assert compare is not None and compare.isVisible() and len(compare.panes) == 2
    qtbot.waitUntil(lambda: all(p.loaded_width for p in compare.panes), timeout=30_000)
    qtbot.keyClick(compare, Qt.Key.Key_1)                    # 100 % of the largest picture
    big, small = compare.panes
    assert big.own_zoom() == pytest.approx(1.0, rel=0.01) and small.own_zoom() == pytest.approx(2.0, rel=0.02)
    hbar = big.view.horizontalScrollBar()
    assert hbar.maximum() > 0
    hbar.setValue(hbar.maximum())
    other = small.view.horizontalScrollBar()
    assert other.value() == other.maximum()                   # the other picture pans along
    rows = [compare.table.verticalHeaderItem(r).text() for r in range(compare.table.rowCount())]
    assert {"Size", "Pixels", "Date", "Camera", "Folder", "Format", "Crop"} <= set(rows)
    pixels = rows.index("Pixels")
    assert compare.table.item(pixels, 1).font().bold() and not compare.table.item(pixels, 0).font().bold()
    qtbot.keyClick(compare, Qt.Key.Key_Right)
    qtbot.keyClick(compare, Qt.Key.Key_K)                     # keep the small one too: nothing to trash
    assert view.cards[1].kept and "KEEP" in small.title.text()
    qtbot.keyClick(compare, Qt.Key.Key_T)
    assert not view.cards[1].kept and "TRASH" in small.title.text()
    qtbot.keyClick(compare, Qt.Key.Key_PageDown)              # the next group
    assert view.current.key != near and compare.isVisible()
    qtbot.keyClick(compare, Qt.Key.Key_Escape)
    assert not compare.isVisible()

    # 3. Undo: every file back where it was, byte for byte, in the library with its tags.
    with qtbot.waitSignal(view.groupsShown, timeout=60_000):
        view.undo_button.click()
    lib = window.library
    for path, (digest, photo) in before.items():
        assert hashlib.sha256(Path(path).read_bytes()).digest() == digest
        assert lib.catalog.photo_by_path(path) == photo
    assert lib.labels.tags_of(copies) == tags_before
    assert view.group_keys("exact") and view.message.text().startswith(f"Put back {len(copies)} files")
    window.close()
