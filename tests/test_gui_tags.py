"""Tagging in the real window (offscreen): make a label, review it by keyboard, apply it, see it.

A drawn library (clipphotos.shapes) indexed with the project's shapes model; the label is
"red things: a red shape", and the drawings' own truth says which answers are right.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import clipphotos.gui  # noqa: F401 - first: keeps None/True/False alive under PySide6 6.12 on Python < 3.12
import pytest
from PySide6 import QtGui
from PySide6.QtCore import QPoint, QRect, Qt, QTimer
from PySide6.QtGui import QColor, QImage, QTextDocument
from PySide6.QtWidgets import QAbstractButton, QApplication, QLabel, QMessageBox, QPushButton, QToolButton, QWidget

from clipphotos.gui.main_window import AppOptions, MainWindow
from clipphotos.model_choices import ModelRequest
from clipphotos.gui.photo_grid import MarkRole
from clipphotos.gui.review import NO, YES
from clipphotos.xmp import read_tags, sidecar_path
from conftest import SHAPES_CONFIG, SHAPES_WEIGHTS, shapes_spec

SHAPES = ModelRequest(str(SHAPES_CONFIG), None, str(SHAPES_WEIGHTS))
LONG = 90_000
LABEL = "red things"
SIZES = ((1024, 700), (1280, 800), (1920, 1080))


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    """72 drawn shapes in two folders, indexed once; path → colour."""
    from clipphotos.library import Library
    from clipphotos.shapes import write_library
    base = tmp_path_factory.mktemp("tagsui")
    truth = {}
    for sub, seed in (("Drawings", 11), ("More drawings", 12)):
        folder = base / "photos" / sub
        for t in write_library(folder, 36, seed=seed, long_side=(200, 480)):
            truth[str((folder / t["path"]).resolve())] = t["colour"]
    root = base / "library"
    with Library(root, model=shapes_spec()) as lib:
        lib.index_folders([base / "photos"])
    return root, base / "photos", truth


@pytest.fixture
def window(qtbot, drawn, tmp_path):
    """The main window on a fresh copy of the drawn library's catalog (the photos are shared)."""
    import shutil
    root = tmp_path / "library"
    shutil.copytree(drawn[0], root)
    w = MainWindow(AppOptions(str(root), SHAPES, "cpu", welcome=False))
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    qtbot.waitUntil(lambda: w.model_state in ("ready", "failed"), timeout=LONG)
    assert w.model_state == "ready", w.model_error
    qtbot.waitUntil(lambda: w.reports > 0 and w.tags.ready, timeout=LONG)
    yield w
    for sidecar in drawn[1].rglob("*.xmp"):      # the photos are shared between tests
        sidecar.unlink()


# -- helpers ----------------------------------------------------------------------------------


class Dialogs:
    """Answers the app's modal questions by clicking a button by its text; remembers what they said."""

    def __init__(self, qtbot) -> None:
        self.qtbot = qtbot
        self.seen: list[tuple[str, str, list[str]]] = []
        self._answers: list[str] = []

    def answer(self, button: str) -> None:
        self._answers.append(button)
        self._poll(400)

    def _poll(self, tries: int) -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox) and self._answers:
            want = self._answers.pop(0)
            self.seen.append((box.text(), box.informativeText(), [b.text() for b in box.buttons()]))
            match = [b for b in box.buttons() if b.text() == want]
            (match[0] if match else box.buttons()[-1]).click()
        elif tries:
            QTimer.singleShot(25, lambda: self._poll(tries - 1))


def cli_counts(cli, root: Path) -> dict[str, dict]:
    result = cli("tag", "list", "--json", "--library", root)
    assert result.code == 0, result.err
    return {label["name"]: label for label in result.json["labels"]}


def sidebar_count(w: MainWindow, name: str) -> str:
    item = w.sidebar.tag_item(name)
    assert item is not None, f"no row for {name!r} under Tags"
    return item.text(1)


def cell_colour_pixels(w: MainWindow, row: int, colour: QColor) -> int:
    """Pixels of about this colour in the top-right quarter of a grid cell, as painted on screen."""
    w.grid.scrollTo(w.model.index(row))
    rect = w.grid.visualRect(w.model.index(row))
    image: QImage = w.grid.viewport().grab(rect).toImage()
    count = 0
    for y in range(0, image.height() // 3):
        for x in range(image.width() * 2 // 3, image.width()):
            c = image.pixelColor(x, y)
            if abs(c.red() - colour.red()) < 30 and abs(c.green() - colour.green()) < 30 and \
                    abs(c.blue() - colour.blue()) < 30:
                count += 1
    return count


def make_label(qtbot, w: MainWindow, text: str) -> None:
    w.sidebar.new_label.setFocus()
    with qtbot.waitSignal(w.tags.reviewShown, timeout=LONG):
        qtbot.keyClicks(w.sidebar.new_label, text)
        qtbot.keyClick(w.sidebar.new_label, Qt.Key.Key_Return)


def clipped_texts(window: QWidget) -> list[str]:
    """Visible buttons and labels whose text does not fit their widget."""
    bad = []
    for widget in window.findChildren(QWidget):
        if not isinstance(widget, (QPushButton, QToolButton, QLabel)) or not widget.isVisible():
            continue
        text = widget.text()
        if isinstance(widget, QLabel) and QtGui.Qt.mightBeRichText(text):
            doc = QTextDocument()
            doc.setHtml(text)
            text = doc.toPlainText()
        if not text.strip():
            continue
        metrics = widget.fontMetrics()
        wrapped = isinstance(widget, QLabel) and widget.wordWrap()
        pieces = re.split(r"[\s\u200b]+", text) if wrapped else text.split("\n")   # where Qt may wrap
        need = max(metrics.horizontalAdvance(p) for p in pieces)
        if isinstance(widget, QAbstractButton) and not widget.icon().isNull():
            need += widget.iconSize().width() + 4
        room = widget.contentsRect().width()
        name = f"{type(widget).__name__} {text!r}"
        if need > room:
            bad.append(f"{name}: text {need} px in {room} px")
        elif isinstance(widget, QAbstractButton) and widget.width() < widget.sizeHint().width():
            bad.append(f"{name}: {widget.width()} px wide, needs {widget.sizeHint().width()}")
    return bad


def duplicates_reachable(w: MainWindow) -> bool:
    tree = w.sidebar.tree
    rect = tree.visualItemRect(w.sidebar.duplicates_item)
    on_tree = tree.viewport().rect().contains(rect)
    top_left = tree.viewport().mapTo(w, rect.topLeft())
    return on_tree and w.rect().contains(QRect(top_left, rect.size()))


# -- the story ----------------------------------------------------------------------------------


def test_make_review_apply_see_fix_and_export_a_label(qtbot, window, drawn, cli, monkeypatch):
    w = window
    root = Path(w.library.root)
    truth = drawn[2]
    from clipphotos.gui import desktop
    opened = []
    monkeypatch.setattr(desktop, "open_file", opened.append)
    assert w.preview.tag_chips.none.text() != "No tags yet"

    # 1. A label is made from the sidebar; its suggestions fill the main grid, large, and the keys go there.
    make_label(qtbot, w, f"{LABEL}: a red shape")
    session = w.tags.session
    assert session is not None and w.grid.hasFocus()
    assert w.header_title.text() == f"Review “{LABEL}”"
    assert w.grid.gridSize().width() >= 232
    decisions = [session.decisions[p.path] for p in w.model.photos()]
    yes = [d for d in decisions if d.applies]
    assert yes and decisions[:len(yes)] == yes, "what the label would tag comes first"
    assert [d.confidence for d in yes] == sorted(d.confidence for d in yes), "least sure first"
    assert sidebar_count(w, LABEL) == "new"                    # not "0" beside 100 % suggestions
    tip = w.model.data(w.model.index(0), Qt.ItemDataRole.ToolTipRole)
    assert re.search(r"\d+%", tip) and w.model.data(w.model.index(0), MarkRole).words in tip.lower()
    assert w.tags.review_bar.legend.isVisible() and "R  no" in w.tags.review_bar.legend.text().replace("\u00a0", " ")

    # 2. Twenty answers by keyboard, each one visible as a badge on its thumbnail.
    answered = {}
    for row in range(20):
        assert w.grid.currentIndex().row() == row
        path = w.model.photo(row).path
        right = truth[path] == "red"
        qtbot.keyClick(w.grid, Qt.Key.Key_A if right else Qt.Key.Key_R)
        answered[path] = right
    for row in range(20):
        path = w.model.photo(row).path
        assert w.model.data(w.model.index(row), MarkRole).answer is answered[path]
        assert cell_colour_pixels(w, row, YES if answered[path] else NO) > 40, f"no badge on row {row}"
    n_yes = sum(answered.values())
    assert w.tags.review_bar.progress.text() == \
        f"20 of {len(decisions)} reviewed · {n_yes} yes · {20 - n_yes} no"
    assert "R  no" in w.tags.review_bar.legend.text().replace("\u00a0", " ") and w.tags.review_bar.legend.isVisible()

    # Undo takes back the *last* answer, wherever the cursor is, and goes back to it.
    w.grid.setCurrentIndex(w.model.index(25))
    qtbot.keyClick(w.grid, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert w.grid.currentIndex().row() == 19 and w.model.data(w.model.index(19), MarkRole).answer is None
    assert w.model.data(w.model.index(20), MarkRole).answer is None
    qtbot.keyClick(w.grid, Qt.Key.Key_U)
    assert w.grid.currentIndex().row() == 18 and w.model.data(w.model.index(18), MarkRole).answer is None
    assert w.tags.review_bar.progress.text().startswith(f"18 of {len(decisions)} reviewed")
    for row in (18, 19):
        qtbot.keyClick(w.grid, Qt.Key.Key_A if answered[w.model.photo(row).path] else Qt.Key.Key_R)
    assert w.tags.review_bar.progress.text().startswith("20 of")

    # Space is the built-in viewer, never another app; arrows move.
    qtbot.keyClick(w.grid, Qt.Key.Key_Space)
    assert w.stack.currentIndex() == w.PAGE_VIEWER and not opened
    row = w.grid.currentIndex().row()
    assert row == 20 and f"“{LABEL}”: " in w.viewer.caption.text()
    qtbot.keyClick(w.viewer, Qt.Key.Key_A)                 # the keys answer in the large view too
    assert w.grid.currentIndex().row() == 21 and w.stack.currentIndex() == w.PAGE_VIEWER
    assert w.tags.review_bar.progress.text().startswith("21 of") and w.tags.review_bar.isVisible()
    qtbot.keyClick(w.viewer, Qt.Key.Key_U)
    assert w.grid.currentIndex().row() == 20 and w.model.mark(20).answer is None
    assert w.tags.review_bar.progress.text().startswith("20 of")
    assert w.viewer.caption.text().endswith("U undo") and os.path.basename(w.model.photo(20).path) in \
        w.viewer.caption.text()
    qtbot.keyClick(w.viewer, Qt.Key.Key_Escape)
    assert w.stack.currentIndex() == w.PAGE_GRID and w.grid.hasFocus()
    row = w.grid.currentIndex().row()
    qtbot.keyClick(w.grid, Qt.Key.Key_Right)
    assert w.grid.currentIndex().row() == row + 1

    qtbot.waitUntil(lambda: len(cli_reviews(cli, root)) == 20, timeout=30_000)   # every answer stored
    assert cli_reviews(cli, root) == {p: ("accepted" if a else "rejected") for p, a in answered.items()}

    # 3. Apply: progress, what must wait is disabled, and a message that stays, with Undo.
    w.tags.review_bar.apply_button.click()
    assert not w.tags.review_bar.apply_button.isEnabled() and not w.sidebar.new_label.isEnabled()
    assert w.tags.notice.progress.isVisible() and "Applying" in w.tags.notice.text.text()
    with qtbot.waitSignal(w.tags.applied, timeout=LONG) as applied:
        pass
    tagged = applied.args[0].photos
    counts = cli_counts(cli, root)
    assert tagged == counts[LABEL]["tagged"] > 0
    assert w.tags.notice.text.text() == f"Tagged {tagged} photos “{LABEL}”"
    assert w.tags.notice.action.text() == "Undo" and w.tags.review_bar.apply_button.isEnabled()
    qtbot.waitUntil(lambda: w.header_title.text() == f"Tagged “{LABEL}”", timeout=30_000)
    qtbot.wait(1500)
    assert w.tags.notice.isVisible() and w.tags.notice.text.text().startswith("Tagged")   # still there

    # 4. Under Tags: the label with the count `tag list` gives, its photos in the grid.
    qtbot.waitUntil(lambda: sidebar_count(w, LABEL) == str(tagged), timeout=30_000)
    assert w.sidebar.selected_tag() == LABEL and w.model.rowCount() == tagged
    assert all(answered.get(p.path, True) for p in w.model.photos()), "a rejected photo is tagged"
    assert w.tags.bar.isVisible()

    # Undo puts the label back as it was (not applied), Apply again from the tag's own bar.
    with qtbot.waitSignal(w.tags.undone, timeout=LONG):
        w.tags.notice.action.click()
    qtbot.waitUntil(lambda: sidebar_count(w, LABEL) == "new" and w.model.rowCount() == 0, timeout=30_000)
    assert cli_counts(cli, root)[LABEL]["tagged"] == 0
    with qtbot.waitSignal(w.tags.reviewShown, timeout=LONG):
        w.tags.bar.review_button.click()
    assert w.tags.review_bar.progress.text().startswith("20 of")        # the answers stayed
    with qtbot.waitSignal(w.tags.applied, timeout=LONG):
        w.tags.review_bar.apply_button.click()
    qtbot.waitUntil(lambda: w.model.rowCount() == tagged and sidebar_count(w, LABEL) == str(tagged), timeout=30_000)

    # A search applies on top of the tag, as `search --tag` does.
    w.search.field.setText("a red star")
    qtbot.waitUntil(lambda: w.header_title.text() == "Best matches for “a red star”", timeout=30_000)
    assert "tagged “red things”" in w.header_count.text()
    tagged_paths = cli_tagged(cli, root)
    assert 0 < w.model.rowCount() <= tagged and {p.path for p in w.model.photos()} <= tagged_paths
    w.search.clear()
    qtbot.waitUntil(lambda: w.header_title.text() == f"Tagged “{LABEL}”", timeout=30_000)

    # 5. The preview shows the photo's tags as chips; × takes a wrong one off, and the label learns.
    wrong = next((p for p in w.model.photos() if truth[p.path] != "red"), w.model.photo(0))
    with qtbot.waitSignal(w.tags.chipsShown, timeout=30_000, check_params_cb=lambda p: p == wrong.path):
        w.grid.setCurrentIndex(w.model.index(w.model.row_of(wrong.path)))
    assert w.preview.tag_chips.names_shown() == [LABEL]
    chip = w.preview.tag_chips.chips[0]
    assert chip.isVisible() and ("%" in chip.toolTip() or "you gave it" in chip.toolTip())
    rejected_before = cli_counts(cli, root)[LABEL]["rejected"]
    with qtbot.waitSignal(w.tags.tagChanged, timeout=30_000):
        qtbot.mouseClick(chip.remove, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: sidebar_count(w, LABEL) == str(tagged - 1), timeout=30_000)
    after = cli_counts(cli, root)[LABEL]
    assert after["tagged"] == tagged - 1 and after["rejected"] == rejected_before + 1
    assert cli_reviews(cli, root)[wrong.path] == "rejected"
    qtbot.waitUntil(lambda: w.model.row_of(wrong.path) is None, timeout=30_000)    # it left the tag's list
    assert "Took “red things” off" in w.tags.notice.text.text()

    # "Add tag" completes from the labels and puts one on.
    photo = w.model.photo(0)
    with qtbot.waitSignal(w.tags.chipsShown, timeout=30_000, check_params_cb=lambda p: p == photo.path):
        w.grid.setCurrentIndex(w.model.index(0))
    completer = w.preview.tag_chips.add.completer()
    completer.setCompletionPrefix("red")
    assert completer.currentCompletion() == LABEL
    w.preview.tag_chips.add.setText("favourites")
    qtbot.keyClick(w.preview.tag_chips.add, Qt.Key.Key_Return)
    # An earlier refresh of this photo's chips may still be in flight: wait for the chips the tag
    # put on, not for the first chipsShown.
    qtbot.waitUntil(lambda: w.preview.tag_chips.names_shown() == ["favourites", LABEL], timeout=30_000)
    qtbot.waitUntil(lambda: sidebar_count(w, "favourites") == "1", timeout=30_000)

    # 6. Export XMP says what it will write, asks once, then writes exactly that.
    sidecars = tagged - 1          # the photos with a tag: "favourites" went on one already tagged
    dialogs = Dialogs(qtbot)
    dialogs.answer("Cancel")
    w.tags.bar.export_button.click()
    qtbot.waitUntil(lambda: len(dialogs.seen) == 1, timeout=30_000)
    assert not list(drawn[1].rglob("*.xmp"))                        # cancelled: nothing written
    dialogs.answer(f"Write {sidecars} Sidecars")
    with qtbot.waitSignal(w.tags.exported, timeout=LONG) as exported:
        w.tags.bar.export_button.click()
    text, detail, buttons = dialogs.seen[-1]
    assert len(dialogs.seen) == 2 and text == f"Write {sidecars} XMP sidecars?"
    assert f"Write {sidecars} Sidecars" in buttons and "Cancel" in buttons
    written = sorted(exported.args[0].written)
    assert written == sorted(str(p) for p in drawn[1].rglob("*.xmp")) and len(written) == sidecars
    folders = {str(Path(p).parent) for p in written}
    assert f"{sidecars} new, 0 updated, in {len(folders)} folders:" in detail
    listed = [line.strip().rsplit("  (", 1)[0] for line in detail.splitlines()[1:] if line.endswith(")")]
    assert listed and set(listed) <= folders and len(listed) == min(len(folders), 6)
    assert read_tags(photo.path) == ["favourites", LABEL] and not sidecar_path(wrong.path).exists()
    assert w.tags.notice.text.text() == f"Wrote {sidecars} XMP sidecars in {len(folders)} folders."

    # 7. Remove label asks, naming the tags and answers that go with it.
    w.sidebar.select_tag(LABEL)
    qtbot.waitUntil(lambda: w.header_title.text() == f"Tagged “{LABEL}”", timeout=30_000)
    info = cli_counts(cli, root)[LABEL]
    dialogs.answer("Cancel")
    w.tags.bar.remove_button.click()
    assert LABEL in cli_counts(cli, root)
    text, detail, buttons = dialogs.seen[-1]
    assert text == f"Remove the label “{LABEL}”?" and "Remove Label" in buttons
    answers = info["accepted"] + info["rejected"]
    assert f"on {info['tagged']} photos" in detail and f"{answers} answers ({info['accepted']} yes, " \
                                                        f"{info['rejected']} no)" in detail
    dialogs.answer("Remove Label")
    w.tags.bar.remove_button.click()
    qtbot.waitUntil(lambda: w.sidebar.tag_item(LABEL) is None and w.header_title.text() == "All photos",
                    timeout=30_000)
    assert LABEL not in cli_counts(cli, root)


def cli_reviews(cli, root: Path) -> dict[str, str]:
    result = cli("tag", "show", LABEL, "--limit", "1000", "--json", "--library", root)
    return {s["path"]: s["review"] for s in result.json["suggestions"] if s["review"]}


def cli_tagged(cli, root: Path) -> set[str]:
    result = cli("search", "shape", "--tag", LABEL, "--limit", "1000", "--json", "--library", root)
    assert result.code == 0, result.err
    return {r["path"] for r in result.json["results"]}


# -- the sidebar never clips --------------------------------------------------------------------


def test_nothing_is_clipped_and_duplicates_is_reachable_at_every_size(qtbot, window):
    w = window
    make_label(qtbot, w, "blue things: a blue shape")     # the review bar and the tags section on show
    for step in ("review", "tag"):
        for width, height in SIZES:
            w.resize(width, height)
            qtbot.waitUntil(lambda: w.width() == width and w.height() == height, timeout=5000)
            qtbot.wait(100)
            assert not clipped_texts(w), f"{width}x{height} ({step}): {clipped_texts(w)}"
            assert duplicates_reachable(w), f"{width}x{height}: Duplicates is outside the window"
            assert w.sidebar.tag_item("blue things") is not None
        if step == "review":                 # Done: back to what the sidebar and the query say
            w.tags.review_bar.done_button.click()
            qtbot.waitUntil(lambda: w.header_title.text() == "All photos", timeout=30_000)
            assert not w.tags.reviewing and w.sidebar.selected_tag() is None and w.sidebar.all_item.isSelected()
            assert w.model.mark(0) is None and w.model.rowCount() == len(w.library.catalog.iter_photos())
        w.sidebar.select_tag("blue things")
        qtbot.waitUntil(lambda: w.tags.bar.isVisible(), timeout=30_000)
    w.resize(1024, 700)
    qtbot.wait(100)
    w.sidebar.tree.scrollToItem(w.sidebar.tag_item("blue things"))
    rect = w.sidebar.tree.visualItemRect(w.sidebar.tag_item("blue things"))
    assert w.sidebar.tree.viewport().rect().contains(rect)
    assert w.sidebar.tree.viewport().mapTo(w, QPoint(0, rect.bottom())).y() < w.height()
