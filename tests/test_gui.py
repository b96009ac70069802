"""The desktop app on real widgets (offscreen), a real library and the project's shapes model."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import clipphotos.gui  # noqa: F401 - first: keeps None/True/False alive under PySide6 6.12 on Python < 3.12
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from clipphotos.gui.library_jobs import SEARCH_LIMIT
from clipphotos.gui.main_window import AppOptions, MainWindow
from clipphotos.model_choices import CHOICES, ModelRequest
from clipphotos.gui.search_bar import split_negatives
from conftest import REPO, SHAPES_CONFIG, SHAPES_WEIGHTS, another_drive, point_an_index_entry_nowhere, shapes_spec

SHAPES = ModelRequest(str(SHAPES_CONFIG), None, str(SHAPES_WEIGHTS))
LONG = 90_000   # ms: the first model load imports torch and open_clip


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> tuple[Path, Path, dict[str, tuple[str, str]]]:
    """96 drawn shapes (3 of each colour × shape), indexed once for the module's read-only tests."""
    from clipphotos.library import Library
    from clipphotos.shapes import write_library
    folder = tmp_path_factory.mktemp("gui") / "photos"
    truth = write_library(folder, 96, seed=20261130, long_side=(200, 900))
    root = folder.parent / "library"
    with Library(root, model=shapes_spec()) as lib:
        lib.index_folders([folder])
    return root, folder, {str((folder / t["path"]).resolve()): (t["colour"], t["shape"]) for t in truth}


@pytest.fixture
def open_window(qtbot):
    """Open the main window on a library with the shapes model; waits until it watches the folders."""
    from clipphotos.watcher import WatchSettings
    brisk = WatchSettings(stability_seconds=0.2, debounce_seconds=0.1, tick_seconds=0.05, save_seconds=1.0,
                          publish_seconds=0.2, retry_seconds=0.5)

    def open_(library: Path) -> MainWindow:
        window = MainWindow(AppOptions(str(library), SHAPES, "cpu", welcome=False, watch=brisk))
        qtbot.addWidget(window)
        window.show()
        qtbot.waitUntil(lambda: window.model_state in ("ready", "failed"), timeout=LONG)
        assert window.model_state == "ready", window.model_error
        qtbot.waitUntil(lambda: window.reports > 0 or not window.status.get("folders"), timeout=LONG)
        return window
    return open_


def shown_paths(window: MainWindow) -> list[str]:
    return [p.path for p in window.model.photos()]


def search(qtbot, window: MainWindow, text: str) -> list[str]:
    window.search.field.setFocus()
    qtbot.keyClicks(window.search.field, text)
    qtbot.waitUntil(lambda: window.header_title.text() == f"Best matches for “{text}”", timeout=30_000)
    return shown_paths(window)


def focus_grid(qtbot, window: MainWindow, row: int) -> None:
    window.activateWindow()
    window.grid.setFocus()
    window.grid.setCurrentIndex(window.model.index(row))
    qtbot.waitUntil(window.grid.hasFocus)


# -- search, more like this, trash ------------------------------------------------------------


def test_typing_a_description_shows_the_matching_photos_first(qtbot, open_window, indexed):
    root, _folder, truth = indexed
    window = open_window(root)
    assert window.model.rowCount() == len(truth)            # browsing: every photo
    results = search(qtbot, window, "a red star")
    assert results == [r.path for r in window.library.search("a red star", limit=SEARCH_LIMIT)]
    top = [truth[p] for p in results[:3]]
    assert top.count(("red", "star")) >= 2, top              # 3 red stars among 96 pictures
    qtbot.keyClick(window.search.field, Qt.Key.Key_Escape)   # Esc clears: back to browsing
    qtbot.waitUntil(lambda: window.header_title.text() == "All photos" and window.model.rowCount() == len(truth))


def test_more_like_this_finds_the_same_kind_of_picture(qtbot, open_window, indexed):
    root, _folder, truth = indexed
    window = open_window(root)
    paths = shown_paths(window)
    row = next(i for i, p in enumerate(paths) if truth[p] == ("blue", "circle"))
    focus_grid(qtbot, window, row)
    qtbot.keyClick(window.grid, Qt.Key.Key_M)
    name = os.path.basename(paths[row])
    qtbot.waitUntil(lambda: window.header_title.text() == f"Photos like {name}", timeout=30_000)
    results = shown_paths(window)
    assert results == [r.path for r in window.library.search(image=paths[row], limit=SEARCH_LIMIT)]
    assert paths[row] not in results                         # not the photo itself
    top = [truth[p] for p in results[:4]]
    assert top.count(("blue", "circle")) >= 2, top           # the other two blue circles …
    assert all(c == "blue" or s == "circle" for c, s in top), top  # … and pictures that share its colour or shape
    assert window.search.chip.isVisible()


def test_keyboard_opens_steps_through_and_leaves_the_viewer(qtbot, open_window, indexed):
    root, _folder, _truth = indexed
    window = open_window(root)
    focus_grid(qtbot, window, 0)
    qtbot.keyClick(window.grid, Qt.Key.Key_Right)                 # arrows move in the grid
    assert window.grid.currentIndex().row() == 1
    qtbot.keyClick(window.grid, Qt.Key.Key_Space)                 # Space: the photo large
    assert window.stack.currentWidget() is window.viewer and window.viewer.hasFocus()
    qtbot.keyClick(window.viewer, Qt.Key.Key_Right)               # next photo, still large
    assert window.grid.currentIndex().row() == 2 and window.stack.currentWidget() is window.viewer
    qtbot.keyClick(window.viewer, Qt.Key.Key_Escape)              # back to the grid
    assert window.stack.currentWidget() is window.grid and window.grid.hasFocus()
    qtbot.keyClick(window.grid, Qt.Key.Key_Return)                # Enter opens it too
    assert window.stack.currentWidget() is window.viewer
    qtbot.keyClick(window.viewer, Qt.Key.Key_Return)
    qtbot.keyClick(window.grid, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)   # Ctrl+F: search
    assert window.search.field.hasFocus()


def test_delete_moves_the_photo_to_the_trash_and_out_of_the_library(qtbot, open_window, tmp_path, monkeypatch,
                                                                   tmp_trash):
    from clipphotos.shapes import write_library
    folder = tmp_path / "photos"
    write_library(folder, 8, seed=5)
    from clipphotos.library import Library
    with Library(tmp_path / "library", model=shapes_spec()) as lib:
        lib.index_folders([folder])
    window = open_window(tmp_path / "library")
    victim = shown_paths(window)[2]
    asked: list[list[str]] = []
    monkeypatch.setattr(MainWindow, "confirm_trash", lambda self, paths: asked.append(paths) or True)
    focus_grid(qtbot, window, 2)
    with qtbot.waitSignal(window.trashFinished, timeout=30_000) as done:
        qtbot.keyClick(window.grid, Qt.Key.Key_Delete)
    assert asked == [[victim]]
    assert done.args[0].trashed == [victim] and not done.args[0].failed
    assert not os.path.exists(victim)
    assert (tmp_path / "xdg" / "Trash" / "files" / os.path.basename(victim)).is_file()
    assert window.library.catalog.photo_by_path(victim) is None
    assert victim not in shown_paths(window) and window.model.rowCount() == 7
    assert window.preview.photo is not None and window.preview.photo.path != victim


def test_added_folder_is_indexed_in_the_background_and_searchable(qtbot, open_window, tmp_path, monkeypatch):
    from clipphotos.shapes import write_library
    folder = tmp_path / "new photos"
    truth = write_library(folder, 32, seed=11)
    window = open_window(tmp_path / "library")
    assert window.model.rowCount() == 0 and window.message.title.text() == "No photos yet"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(folder)))
    seen: list[str] = []
    window.engine_signals.progress.connect(lambda p: seen.append(p.phase))
    indexed: list[int] = []   # files written a moment ago wait for the next run (they may still be copying)
    window.indexingFinished.connect(lambda report: indexed.append(report.indexed))
    qtbot.mouseClick(window.sidebar.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "indexing" in seen and window.progress.isVisible(), timeout=30_000)
    qtbot.waitUntil(lambda: sum(indexed) == len(truth), timeout=60_000)
    qtbot.waitUntil(lambda: window.model.rowCount() == len(truth))
    assert window.sidebar.all_item.text(1) == str(len(truth))
    # After indexing, the words in the photos are read ("Reading text: …"); then the quiet line.
    qtbot.waitUntil(lambda: window.status_text.text().startswith(f"{len(truth)} photos"), timeout=60_000)
    red = {str((folder / t["path"]).resolve()) for t in truth if t["colour"] == "red"}
    results = search(qtbot, window, "a red star")
    assert len(results) == len(truth) and results[0] in red


# -- first run -----------------------------------------------------------------------------------


def test_the_model_picker_shows_each_measured_speed_with_the_machine_it_came_from(qtbot):
    from PySide6.QtWidgets import QLabel

    from clipphotos.gui.welcome import ModelPicker
    from clipphotos.gui.workers import Runner
    from clipphotos.model_choices import SPEED_MACHINES
    runner = Runner(1)
    picker = ModelPicker(runner)
    qtbot.addWidget(picker)
    picker.show()
    for card in picker.cards:
        shown = [w for w in card.findChildren(QLabel, "choiceSpeed") if w.isVisible()]
        if not card.choice.cpu_speeds:
            assert shown == []                  # nothing measured: no figure made up
        else:
            assert len(shown) == 1
            text = shown[0].text()
            for rate, machine in zip(card.choice.cpu_speeds, SPEED_MACHINES, strict=True):
                said = f"{rate:.1f}" if rate < 10 else f"{rate:.0f}"
                assert f"{said} photos a second on {machine}" in text or f"{said} on {machine}" in text
    best = next(c for c in picker.cards if c.choice.key == "best").choice
    fast = next(c for c in picker.cards if c.choice.key == "fast").choice
    assert best.cpu_speeds and fast.cpu_speeds    # both measured, so the cost of quality can be weighed
    runner.shutdown()


def test_the_model_running_now_is_said_with_its_speed_on_this_computer(qtbot):
    """In Settings the current model's card gives the speed its first load measured here, the
    other cards the development machine's, each said with where it came from."""
    from PySide6.QtWidgets import QLabel

    from clipphotos.gui.welcome import ModelPicker
    from clipphotos.gui.workers import Runner
    from clipphotos.model_choices import CHOICES, SPEED_MACHINES
    runner = Runner(1)
    best = next(c for c in CHOICES if c.key == "best")
    picker = ModelPicker(runner, current=ModelRequest.of(best), speed_here=23.4)
    qtbot.addWidget(picker)
    picker.show()
    for card in picker.cards:
        shown = " ".join(w.text() for w in card.findChildren(QLabel, "choiceSpeed") if w.isVisible())
        if card.choice == best:
            assert "about 23 photos a second on this computer" in shown and SPEED_MACHINES[0] not in shown
        elif card.choice.cpu_speeds:
            assert SPEED_MACHINES[0] in shown and "this computer" not in shown
    runner.shutdown()


def test_settings_give_the_loaded_models_speed_measured_on_this_computer(qtbot, open_window, indexed):
    """The window keeps what the model's first load measured here and Settings says it; the
    figure is the library's own (its kept verdict), not one the window makes up."""
    from PySide6.QtWidgets import QLabel

    from clipphotos.model_choices import speed_here_text
    root, _folder, _truth = indexed
    window = open_window(root)
    measured = window.library.inference()[3]["images_per_second"]
    assert window.model_speed_here == measured > 0
    dialog = window.settings_dialog()
    qtbot.addWidget(dialog)
    said = [w.text() for w in dialog.findChildren(QLabel) if speed_here_text(measured) in w.text()]
    assert len(said) == 1 and "command line" in said[0]   # the window was opened with --model: that note
    assert not dialog.picker.file_label.isVisibleTo(dialog)   # its file is not a card's ("Weights file for Fast")


def test_answers_for_a_view_deleted_while_its_jobs_ran_go_nowhere(qtbot):
    """A view's runner dies with it; the jobs still running finish on their threads, and their
    answers must not reach the view's widgets, which are gone (a clean-clone run caught a
    duplicates card deleted with its view, then given its thumbnail during the next test)."""
    import threading

    from PySide6.QtCore import QCoreApplication, QEvent
    from PySide6.QtWidgets import QLabel

    from clipphotos.gui.workers import Runner
    view = QLabel()
    runner = Runner(1, view)
    started, release, answers = threading.Event(), threading.Event(), []

    def slow() -> str:
        started.set()
        release.wait(5)
        return "late"
    runner.submit(slow, on_done=lambda text: answers.append(view.setText(text)))
    assert started.wait(5)
    threading.Timer(0.2, release.set).start()        # the job ends while its pool is being destroyed
    view.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)   # the view and its runner go
    qtbot.wait(300)                                  # the job's answer arrives, and is dropped
    assert answers == []


def test_welcome_says_when_the_hub_is_out_of_reach_and_takes_a_local_file(qtbot, tmp_path):
    from clipphotos.gui.welcome import WelcomeDialog
    from clipphotos.gui.workers import Runner
    runner = Runner(1)
    dialog = WelcomeDialog(runner, {})
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.folder_list.clear()
    assert not dialog.next.isEnabled()                       # no folder yet
    dialog.add_folder(str(tmp_path))
    qtbot.mouseClick(dialog.next, Qt.MouseButton.LeftButton)
    assert dialog.pages.currentIndex() == 1 and dialog.next.text() == "Download and start"
    qtbot.mouseClick(dialog.next, Qt.MouseButton.LeftButton)   # HF_HUB_OFFLINE=1 (conftest)
    qtbot.waitUntil(dialog.picker.error.isVisible, timeout=LONG)
    assert "cannot be reached" in dialog.picker.error.text()
    assert dialog.picker.file_button.isVisible() and dialog.next.isEnabled()
    weights = tmp_path / "fast.safetensors"
    weights.write_bytes(b"weights")
    dialog.picker.use_file(str(weights))
    assert dialog.next.text() == "Start"
    with qtbot.waitSignal(dialog.accepted):
        qtbot.mouseClick(dialog.next, Qt.MouseButton.LeftButton)
    assert dialog.folders == [str(tmp_path)]
    assert dialog.model == ModelRequest(CHOICES[0].name, None, str(weights))
    runner.shutdown()


class _SlowHub:
    """A stand-in for the model hub on localhost: serves one big file slowly, counts what it sent."""

    SIZE = 40 << 20

    def __init__(self) -> None:
        import http.server
        import threading
        hub = self
        self.sent = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _headers(self) -> bool:
                found = self.path.endswith("/open_clip_model.safetensors")
                self.send_response(200 if found else 404)
                self.send_header("X-Repo-Commit", "a" * 40)
                self.send_header("ETag", '"fake"')
                self.send_header("Content-Length", str(hub.SIZE if found else 0))
                self.end_headers()
                return found

            def do_HEAD(self) -> None:
                self._headers()

            def do_GET(self) -> None:
                if self._headers():
                    try:
                        while hub.sent < hub.SIZE:
                            self.wfile.write(b"w" * 65536)
                            hub.sent += 65536
                            time.sleep(0.01)
                    except OSError:
                        pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_model_download_shows_progress_and_cancel_really_stops_it(qtbot, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from clipphotos.gui.welcome import WelcomeDialog
    from clipphotos.gui.workers import Runner
    hub = _SlowHub()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    runner = Runner(1)
    dialog = WelcomeDialog(runner, {})
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.add_folder(str(tmp_path))
    qtbot.mouseClick(dialog.next, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(dialog.next, Qt.MouseButton.LeftButton)          # Download and start
    picker = dialog.picker
    qtbot.waitUntil(lambda: picker.progress.value() > 0, timeout=LONG)
    assert " MB of 42 MB" in picker.progress_text.text() and not dialog.next.isEnabled()
    qtbot.mouseClick(picker.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(picker.error.isVisible, timeout=10_000)
    assert "cancelled" in picker.error.text() and dialog.next.isEnabled() and dialog.isVisible()
    stopped_at = hub.sent
    time.sleep(0.5)
    assert hub.sent - stopped_at <= 4 << 20 and hub.sent < hub.SIZE / 2   # the transfer itself ended
    runner.shutdown()
    hub.server.shutdown()


def test_offered_models_exist_in_open_clip():
    import open_clip
    known = set(open_clip.list_pretrained())
    assert all((c.name, c.pretrained) in known for c in CHOICES)
    assert all(open_clip.get_pretrained_cfg(c.name, c.pretrained)["hf_hub"].rstrip("/") == c.hub_repo
               for c in CHOICES)


# -- pieces -----------------------------------------------------------------------------------


def test_app_shows_its_window_without_importing_torch():
    code = ("import sys, clipphotos.cli, clipphotos.gui.app, clipphotos.gui.main_window; "
            "print(sorted(m for m in ('torch', 'open_clip', 'clipphotos.library') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_minus_words_are_excluded():
    assert split_negatives('dog on a beach -people -"red car"') == ("dog on a beach", ("people", "red car"))
    assert split_negatives("- lonely dash") == ("- lonely dash", ())


def test_thumbnails_are_made_once_from_the_loader_and_found_by_hash(tmp_path):
    from PIL import Image

    from clipphotos.loader import load_image
    from clipphotos.thumbnails import THUMB_SIZE, ThumbnailCache
    photo = tmp_path / "p.jpg"
    Image.new("RGB", (3000, 2000), (200, 40, 40)).save(photo)
    cache = ThumbnailCache(tmp_path / "thumbnails")
    assert cache.lookup("ab12") is None
    made = cache.ensure("ab12", photo)
    assert made == tmp_path / "thumbnails" / "ab" / "ab12.jpg"
    with Image.open(made) as thumb:
        assert thumb.size == (THUMB_SIZE, round(THUMB_SIZE * 2 / 3))
    assert cache.ensure("ab12", tmp_path / "gone.jpg") == made   # found by hash, source not read
    assert not list(made.parent.glob("*.tmp"))
    cache.from_decoded("cd34", load_image(photo, target=64))     # a small model's decode: too blurry
    assert cache.lookup("cd34") is None
    cache.from_decoded("cd34", load_image(photo, target=256))
    assert cache.lookup("cd34") is not None


def test_grid_of_100000_photos_fills_without_touching_the_disk(qtbot, monkeypatch):
    from clipphotos.catalog import PhotoRecord
    from clipphotos.gui.photo_grid import PhotoGrid, PhotoGridModel, ThumbnailProvider
    provider = ThumbnailProvider()
    asked: list[str] = []
    monkeypatch.setattr(provider, "_pool", type("NoPool", (), {"start": lambda s, r: None,
                                                               "maxThreadCount": lambda s: 2})())
    model = PhotoGridModel(provider)
    grid = PhotoGrid()
    qtbot.addWidget(grid)
    grid.setModel(model)
    grid.resize(900, 700)
    grid.show()
    photos = [PhotoRecord(i, f"/nowhere/{i}.jpg", i, 1, 1, 4000, 3000, "JPEG", None, None, f"{i:032x}", None)
              for i in range(100_000)]
    monkeypatch.setattr(os, "stat", lambda *a, **k: asked.append("stat"))
    started = time.perf_counter()
    model.set_photos(photos)
    qtbot.waitUntil(lambda: len(provider._queue) > 0)      # the first cells are on screen...
    first = time.perf_counter() - started
    qtbot.waitUntil(lambda: grid.verticalScrollBar().maximum() > 100_000 // 6 * 100, timeout=20_000)
    grid.scrollTo(model.index(99_999))                     # ...and all 100 000 are laid out
    grid.viewport().repaint()
    monkeypatch.undo()
    assert not asked                                       # data() and paint() never touched the disk
    assert first < 2.0, first
    assert grid.indexAt(grid.viewport().rect().center()).row() > 99_000
    assert 0 < len(provider._queue) <= provider.MAX_QUEUE  # visible cells asked for their thumbnails


def test_search_shows_its_matches_then_a_less_likely_divider(qtbot, open_window, indexed):
    """The header counts the matches, the grid puts a "Less likely" cell after them; none: "No clear match"."""
    from clipphotos.gui.photo_grid import DividerRole
    root, _folder, truth = indexed
    window = open_window(root)
    search(qtbot, window, "yellow")
    answer = window.library.find("yellow", limit=SEARCH_LIMIT)
    assert answer.matches > 0
    assert window.header_count.text().startswith(f"{answer.matches} match")
    row = window.model.divider_row()
    assert row == sum(r.match for r in answer.results)
    assert window.model.index(row).data(DividerRole) is True
    assert window.model.photo(row) is None and not window.model.flags(window.model.index(row))
    assert shown_paths(window) == [r.path for r in answer.results]          # the divider is no photo
    assert all(truth[p][0] == "yellow" for p in shown_paths(window)[:row])
    window.grid.setCurrentIndex(window.model.index(row - 1))
    window.open_viewer()
    window._viewer_step(1)                                                    # the viewer steps over it
    assert window.current_photo() is not None and window.grid.currentIndex().row() == row + 1
    window.close_viewer()
    qtbot.keyClick(window.search.field, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: window.header_title.text() == "All photos")
    assert window.model.divider_row() is None
    search(qtbot, window, "a pink house")                                     # nothing of the kind here
    qtbot.waitUntil(lambda: window.header_count.text().startswith("No clear match"))
    assert window.library.find("a pink house").matches == 0
    assert window.model.divider_row() is None and window.model.rowCount() > 0   # the closest ones still show


def test_settings_carry_the_precision_and_fit_a_short_screen(qtbot):
    """Settings → Precision (advanced) edits the precision; the dialog never outgrows the screen."""
    from clipphotos.gui.library_jobs import AppSettings
    from clipphotos.gui.settings_dialog import SettingsDialog
    from clipphotos.gui.workers import Runner
    runner = Runner(1)
    dialog = SettingsDialog(runner, AppSettings(precision="bf16"))
    qtbot.addWidget(dialog)
    assert dialog.precision.currentText().startswith("bf16")
    assert dialog.settings().precision == "bf16"
    dialog.precision.setCurrentIndex(1)
    assert dialog.settings().precision == "fp32"
    dialog.show()
    assert dialog.height() <= dialog.screen().availableGeometry().height() - 60
    assert dialog.save.isVisible()
    runner.shutdown()


def test_a_damaged_catalog_is_rebuilt_from_the_window(qtbot, tmp_path):
    """The window checks the catalog before it indexes anything; a damaged one (a page of its
    vectors overwritten) is offered a rebuild: the damaged file is kept, the folder and a label
    carried over, the folder indexed again, and the library opens with its photos."""
    import sqlite3

    from clipphotos.library import Library
    from clipphotos.shapes import write_library
    photos, root = tmp_path / "photos", tmp_path / "library"
    write_library(photos, 6, seed=77)
    with Library(root, model=shapes_spec()) as lib:
        lib.index_folders([photos])
        lib.labels.add("circles")
    catalog = root / "catalog.sqlite3"
    with sqlite3.connect(catalog) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = con.execute("SELECT rootpage FROM sqlite_master WHERE name='vectors'").fetchone()[0]
    with open(catalog, "r+b") as f:
        f.seek((page - 1) * 4096)
        f.write(b"\xff" * 4096)
    window = MainWindow(AppOptions(str(root), SHAPES, "cpu", welcome=False))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.message.title.text() == "This library's catalog is damaged", timeout=LONG)
    assert window.stack.currentIndex() == window.PAGE_MESSAGE and "untouched" in window.message.body.text()
    assert window.message.button.isVisible() and window.message.button.text() == "Rebuild the catalog"
    assert window.engine is None                          # nothing was indexed into it
    assert window.focusWidget() is window.message.button  # the one thing to do has the keyboard
    with qtbot.waitSignal(window.libraryOpened, timeout=LONG):
        qtbot.keyClick(window.message.button, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(shown_paths(window)) == 6, timeout=LONG)
    assert "Catalog rebuilt: 6 photos indexed again" in window.statusBar().currentMessage()
    assert list(root.glob("catalog.sqlite3.damaged-*"))
    assert [label.name for label in window.library.labels.all()] == ["circles"]
    qtbot.waitUntil(lambda: window.engine is not None, timeout=LONG)   # checked again: now it is watched


def test_a_drive_away_for_good_is_forgotten_from_the_folders_menu(qtbot, tmp_path, open_window, request):
    """A drive reached inside a library folder is away: its folder's tooltip says so, and its
    context menu offers to forget the drive's photos; confirmed, they go and the rest stay."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from clipphotos.gui.sidebar import AWAY_ROLE
    from clipphotos.library import Library
    from clipphotos.shapes import write_library
    photos, root = tmp_path / "photos", tmp_path / "library"
    write_library(photos, 3, seed=31)
    card = another_drive(photos, "link", request)
    target = card.resolve()
    write_library(target, 4, seed=32)
    with Library(root, model=shapes_spec()) as lib:
        lib.add_folder(photos, follow_links=True)
        lib.index_folders(read_text=False)
    target.rename(target.with_name(target.name + "-away"))          # the drive is away
    window = open_window(root)
    assert len(shown_paths(window)) == 7                            # kept while it is away
    # Those whose thumbnail was not kept (the shapes model's pictures are too small to make most
    # of them from) say the drive is not connected, not that the photo is broken; so do their
    # tooltip and the preview. The others show the thumbnail kept for them.
    from clipphotos.gui.photo_grid import AWAY
    on_card = [p for p in window.model.photos() if p.path.startswith(f"{card}{os.sep}")]
    thumbless = [p for p in on_card if window.library.thumbnails.lookup(p.hash) is None]
    assert len(on_card) == 4 and thumbless
    qtbot.waitUntil(lambda: all(window.provider.unavailable(p.hash) is AWAY for p in thumbless), timeout=LONG)
    assert all(window.provider.unavailable(p.hash) is None for p in window.model.photos() if p not in thumbless)
    row = window.model.row_of(thumbless[0].path)
    assert "drive is not connected" in window.model.data(window.model.index(row), Qt.ItemDataRole.ToolTipRole)
    window.grid.setCurrentIndex(window.model.index(row))
    qtbot.waitUntil(lambda: window.preview.image.message == AWAY.tip, timeout=LONG)
    assert not window.preview.open_button.isEnabled() and window.preview.like_button.isEnabled()
    # One whose thumbnail was kept shows it, veiled: its cell, tooltip and context menu say the
    # drive is not connected and offer nothing that needs the file (a photo here offers it all).
    # Its sharp load finds no file, and the pane says why and offers no Open; the large viewer's
    # caption says it too.
    kept = next(p for p in on_card if p not in thumbless)
    kept_row = window.model.row_of(kept.path)
    qtbot.waitUntil(lambda: window.provider.absent(kept.path) is AWAY, timeout=LONG)
    assert window.provider.cached(kept.hash) is not None and window.model.absent(kept_row) is AWAY
    assert "drive is not connected" in window.model.data(window.model.index(kept_row), Qt.ItemDataRole.ToolTipRole)
    assert window.model.data(window.model.index(kept_row), Qt.ItemDataRole.AccessibleTextRole).endswith(
        ", drive not connected")
    window.grid.setCurrentIndex(window.model.index(kept_row))
    menu = {a.text(): a.isEnabled() for a in window.photo_menu(kept_row).actions() if a.text()}
    assert menu["Drive not connected"] is False and menu["Preview"] and menu["More like this"]
    assert not menu["Open in default app"] and not menu["Show in folder"] and not menu["Move to trash…"]
    here_row = next(window.model.row_of(p.path) for p in window.model.photos() if p not in on_card)
    here = {a.text(): a.isEnabled() for a in window.photo_menu(here_row).actions() if a.text()}
    assert "Drive not connected" not in here and here["Open in default app"] and here["Move to trash…"]
    window.grid.setCurrentIndex(window.model.index(kept_row))
    qtbot.waitUntil(lambda: not window.preview.open_button.isEnabled(), timeout=LONG)
    assert window.preview.image.has_pixmap() and "Drive not connected" in window.preview.when.text()
    assert "no file to open" in window.preview.open_button.toolTip()
    assert not window.preview.folder_button.isEnabled()          # its drive's folder is not there
    window.open_viewer()
    qtbot.waitUntil(lambda: "Drive not connected" in window.viewer.caption.text(), timeout=LONG)
    window.close_viewer()
    present = next(p for p in window.model.photos() if p not in on_card)
    window.grid.setCurrentIndex(window.model.index(window.model.row_of(present.path)))
    assert window.preview.open_button.isEnabled() and "Drive not connected" not in window.preview.when.text()
    assert window.preview.folder_button.isEnabled()
    away = target.with_name(target.name + "-away")
    away.rename(target)                                            # back for a moment: the cells look again
    window.provider.recheck_missing()                              # (each watcher report does this)
    qtbot.waitUntil(lambda: all(window.provider.cached(p.hash) is not None for p in thumbless), timeout=LONG)
    assert all(window.provider.unavailable(p.hash) is None for p in window.model.photos())
    qtbot.waitUntil(lambda: kept.path in window.provider._absent, timeout=LONG)   # looked at again
    assert window.model.absent(kept_row) is None and window.photo_menu(kept_row).actions()[0].text() == "Preview"
    target.rename(away)
    item = window.sidebar.library.child(1)
    assert item.data(0, AWAY_ROLE) == [str(card)] and "right-click to forget" in item.toolTip(0)
    menu = window.sidebar.folder_menu(item)
    forget = menu.actions()[-1]
    assert [a.text() for a in menu.actions()] == ["Remove Folder…", "Forget the Photos on “Card” (Drive Away)…"]

    def answer() -> None:
        box = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible())
        assert "Forget the photos on “Card”?" == box.text() and "Nothing on the drive is touched" in box.informativeText()
        next(b for b in box.buttons() if b.text() == "Forget Photos").click()
    QTimer.singleShot(200, answer)
    forget.trigger()
    qtbot.waitUntil(lambda: len(shown_paths(window)) == 3, timeout=LONG)
    assert all(not p.startswith(str(card)) for p in shown_paths(window))
    qtbot.waitUntil(lambda: window.sidebar.library.child(1).data(0, AWAY_ROLE) == [], timeout=LONG)


def test_a_photo_deleted_behind_the_apps_back_shows_its_kept_thumbnail_marked_missing(qtbot, tmp_path, open_window):
    """A file deleted outside the app while watching is paused keeps its cell and kept thumbnail,
    veiled and named "File missing" once the cells look again; Open and Move to trash are off in
    its menu and the preview, while Show in folder stays on (its folder is there). Watching
    resumed, the scan drops the photo from the catalog, and the grid once no photo is selected."""
    from clipphotos.gui.photo_grid import GONE
    from clipphotos.library import Library
    from clipphotos.shapes import write_library
    photos, root = tmp_path / "photos", tmp_path / "library"
    write_library(photos, 8, seed=32)
    with Library(root, model=shapes_spec()) as lib:
        lib.add_folder(photos)
        lib.index_folders(read_text=False)
        kept = [p for p in lib.browse() if lib.thumbnails.lookup(p.hash) is not None]
    assert kept
    gone = kept[0]
    window = open_window(root)
    row = window.model.row_of(gone.path)
    qtbot.waitUntil(lambda: gone.path in window.provider._absent, timeout=LONG)   # its cell looked once
    assert window.model.absent(row) is None
    window.toggle_pause()
    os.remove(gone.path)
    window.provider.recheck_missing()                               # (each watcher report does this)
    qtbot.waitUntil(lambda: window.model.absent(row) is GONE, timeout=LONG)
    assert window.provider.cached(gone.hash) is not None            # its kept thumbnail still shows
    assert "no longer there" in window.model.data(window.model.index(row), Qt.ItemDataRole.ToolTipRole)
    menu = {a.text(): a.isEnabled() for a in window.photo_menu(row).actions() if a.text()}
    assert menu["File missing"] is False and menu["Show in folder"] and menu["More like this"]
    assert not menu["Open in default app"] and not menu["Move to trash…"]
    window.grid.setCurrentIndex(window.model.index(row))
    qtbot.waitUntil(lambda: not window.preview.open_button.isEnabled(), timeout=LONG)
    assert window.preview.folder_button.isEnabled() and "File missing" in window.preview.when.text()
    assert all(window.model.absent(window.model.row_of(p.path)) is None
               for p in window.model.photos() if p.path != gone.path and p.path in window.provider._absent)
    # Resumed, the scan drops it from the catalog; the grid the user is looking through (a photo
    # selected) is left as it is, and the cell goes on saying why; the next refresh drops it.
    reports = window.reports
    window.toggle_pause()
    qtbot.waitUntil(lambda: window.reports > reports and window.library.photo_count() == 7, timeout=LONG)
    qtbot.waitUntil(lambda: window.model.absent(window.model.row_of(gone.path)) is GONE, timeout=LONG)
    window.grid.clearSelection()
    window.refresh(quiet=True)
    qtbot.waitUntil(lambda: gone.path not in shown_paths(window), timeout=LONG)
    assert len(shown_paths(window)) == 7


def test_damage_met_after_opening_leads_to_the_rebuild_page(qtbot, tmp_path, open_window):
    """A catalog that passes the quick check at opening but fails a later query (a search here)
    shows the rebuild page, not the search's own error, and the rebuild mends it."""
    from clipphotos.library import Library
    from clipphotos.shapes import write_library
    photos, root = tmp_path / "photos", tmp_path / "library"
    write_library(photos, 6, seed=78)
    with Library(root, model=shapes_spec()) as lib:
        lib.set_text_enabled(False)      # the watcher's text pass would meet the damage first
        lib.index_folders([photos])
    point_an_index_entry_nowhere(root / "catalog.sqlite3", "photos_content")
    window = open_window(root)
    assert window.stack.currentIndex() == window.PAGE_GRID and len(shown_paths(window)) == 6
    window.search.field.setFocus()
    qtbot.keyClicks(window.search.field, "a red circle")
    qtbot.waitUntil(lambda: window.message.title.text() == "This library's catalog is damaged", timeout=LONG)
    qtbot.wait(500)                                   # answers still arriving do not take the page away
    assert window.stack.currentIndex() == window.PAGE_MESSAGE
    assert "malformed" in window.message.body.text() and window.engine is None
    assert window.focusWidget() is window.message.button
    with qtbot.waitSignal(window.libraryOpened, timeout=LONG):
        qtbot.keyClick(window.message.button, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(shown_paths(window)) == 6, timeout=LONG)
    assert list(root.glob("catalog.sqlite3.damaged-*"))
