#!/usr/bin/env python3
"""Screenshots of the desktop app on a generated library, offscreen: for reviews and the README.

    .venv/bin/python bench/screenshots.py OUTDIR [--model CONFIG --weights FILE]

Makes a library of camera-like photos (../shared/bench/make_library.py) and drawn shapes,
indexes it with the project's shapes model (tests/fixtures/shapes-clip unless told otherwise),
then saves PNGs of the real windows: browsing, search results with the preview, a photo's
details, the large viewer, the filter popup, indexing in progress, the first-run dialog's
pages (the offline one included), the settings dialog, and the Duplicates view (groups listed,
a near group compared, the bulk clean-up's confirmation and its message, a group set apart and
grouped again), and a damaged catalog offered its rebuild and then rebuilt, at 1024×700 and 1920×1080;
and tagging, each stage at 1024×700, 1280×800 and 1920×1080: a label just made (its suggestions in
the grid), the review with answers, the label applied, a photo's tag chips, and the Tags section.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"          # the first-run dialog shows its offline state

REPO = Path(__file__).resolve().parents[1]
MAKE_LIBRARY = REPO.parent / "shared" / "bench" / "make_library.py"
SIZES = ((1024, 700), (1280, 800), (1920, 1080))
SHAPES = REPO / "tests" / "fixtures" / "shapes-clip"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--model", type=Path, default=SHAPES / "config.json", help="OpenCLIP model config")
    parser.add_argument("--weights", type=Path, default=SHAPES / "shapes-clip.safetensors")
    parser.add_argument("--photos", type=int, default=48, help="camera-like photos to generate")
    parser.add_argument("--only", choices=["all", "duplicates", "tags", "picker", "damaged", "away"], default="all",
                        help="just the Duplicates view, just tagging, just the model picker (the "
                             "first-run dialog's model page and the settings dialog, no library), "
                             "just a damaged catalog offered its rebuild, or just a drive that is away "
                             "forgotten from its folder's menu")
    args = parser.parse_args()
    args.outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="clipphotos-shots-") as tmp:
        return shoot(Path(tmp), args)


def shoot(tmp: Path, args: argparse.Namespace) -> int:
    import clipphotos.gui  # noqa: F401 - first, for PySide6 6.12 on Python < 3.12 (see there)
    from PySide6.QtWidgets import QApplication, QWidget

    from clipphotos.gui import theme
    from clipphotos.gui.main_window import AppOptions, MainWindow
    from clipphotos.model_choices import ModelRequest
    from clipphotos.gui.welcome import WelcomeDialog
    from clipphotos.library import Library
    from clipphotos.shapes import write_library

    out: Path = args.outdir
    model = ModelRequest(str(args.model.resolve()), None, str(args.weights.resolve()))
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("ClipPhotos")
    theme.apply(app)
    app.setWindowIcon(theme.app_icon())

    def until(done: Callable[[], bool], timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while not done():
            if time.monotonic() > end:
                raise TimeoutError("the app did not get there in time")
            app.processEvents()
            time.sleep(0.02)

    def save(widget: QWidget, name: str) -> None:
        path = out / name
        for _ in range(3):   # layouts asked for by the last answers (a card's picture arrived) settle first
            app.processEvents()
        widget.grab().save(str(path))
        print(f"  {path}", flush=True)

    if args.only == "duplicates":
        shoot_duplicates(tmp, model, out, until, save)
        return 0
    if args.only == "picker":
        shoot_picker(tmp, model, until, save)
        return 0
    if args.only == "damaged":
        shoot_damaged(tmp, model, until, save)
        return 0
    if args.only == "away":
        shoot_away(tmp, model, until, save)
        return 0
    pictures, drawings = tmp / "Pictures", tmp / "Drawings"
    print("generating photos…", flush=True)
    if MAKE_LIBRARY.exists():
        subprocess.run([sys.executable, str(MAKE_LIBRARY), "--out", str(pictures), "--count", str(args.photos),
                        "--max-side", "1600", "--seed", "7", "--workers", "2"], check=True, capture_output=True)
    drawn = write_library(drawings, 64, seed=3, long_side=(300, 1200))
    red = {str((drawings / d["path"]).resolve()) for d in drawn if d["colour"] == "red"}
    folders = [p for p in (pictures, drawings) if p.is_dir()]
    print("indexing…", flush=True)
    with Library(tmp / "library", model=model.spec("cpu")) as lib:
        lib.index_folders(folders)

    def settle(window: MainWindow, seconds: float = 0.3) -> None:
        """Until thumbnails and previews have arrived, then a moment for the last paint."""
        p = window.provider
        for _ in range(5):          # let the grid paint (and so ask for its thumbnails) first
            app.processEvents()
            time.sleep(0.02)
        until(lambda: not p._queue and p._draining == 0 and not window.preview_runner.busy
              and not window.search_runner.busy and not window.tags.runner.busy)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)

    window = MainWindow(AppOptions(str(tmp / "library"), model, "cpu", welcome=False))
    window.resize(1280, 800)
    window.show()
    until(lambda: window.model_state == "ready" and window.reports > 0, 120)
    settle(window)
    if args.only == "tags":
        shoot_tagging(window, red, until, settle, save)
        window.close()
        return 0
    save(window, "01-main-window.png")

    window.search.field.setText("a red star")
    until(lambda: window.header_title.text().startswith("Best matches"))
    window.grid.setFocus()
    window.grid.setCurrentIndex(window.model.index(0))
    settle(window)
    save(window, "02-search-results.png")

    # Where the matches end (issue #20): a search with matches and one with none, small and large.
    for width, height in ((1024, 700), (1920, 1080)):
        window.resize(width, height)
        for name, text in (("matches", "a blue square"), ("no-match", "a pink house")):
            window.search.field.setText(text)
            until(lambda text=text: window.header_title.text() == f"Best matches for “{text}”"
                  and not window.search_runner.busy)
            settle(window)
            save(window, f"16-search-{name}-{width}x{height}.png")
    window.resize(1280, 800)

    window.search.clear()
    until(lambda: window.header_title.text() == "All photos")
    photos = window.model.photos()
    row = next((i for i, p in enumerate(photos) if p.camera), 0)
    window.grid.setCurrentIndex(window.model.index(row))
    settle(window)
    save(window, "03-photo-details.png")

    window.open_viewer()
    settle(window)
    save(window, "04-viewer.png")
    window.close_viewer()

    window.search.show_filters()
    window.search.filters.exclude.setText("text, screenshot")
    settle(window)
    save(window.search.filters, "05-filters.png")
    window.search.filters.hide()
    shoot_tagging(window, red, until, settle, save)
    window.close()

    # Indexing in progress: a fresh library, a folder added from the sidebar.
    fresh = MainWindow(AppOptions(str(tmp / "fresh"), model, "cpu", welcome=False))
    fresh.resize(1280, 800)
    fresh.show()
    until(lambda: fresh.model_state == "ready", 120)
    settle(fresh)
    save(fresh, "06-empty-library.png")
    fresh._add_folders([str(f) for f in folders])
    until(lambda: fresh.status_text.text().startswith("Indexing") and fresh.progress.value() >= 24, 120)
    fresh.refresh()                      # show what is indexed so far now, not at the next refresh
    until(lambda: fresh.model.rowCount() > 0, 120)
    settle(fresh, 0.1)
    save(fresh, "07-indexing.png")
    fresh.close()

    from clipphotos.gui.workers import Runner
    runner = Runner(1)
    welcome = WelcomeDialog(runner, theme.icons())
    welcome.folder_list.clear()
    for folder in folders:
        welcome.add_folder(str(folder))
    welcome.show()
    until(lambda: True)
    save(welcome, "08-welcome-folders.png")
    welcome.next.click()
    until(lambda: not runner.busy)
    save(welcome, "09-welcome-model.png")
    welcome.next.click()
    until(lambda: welcome.picker.error.isVisible(), 120)
    save(welcome, "10-welcome-offline.png")
    welcome.close()

    settings = window.settings_dialog()   # as the window opens it: the model's speed measured here
    settings.show()
    until(lambda: not runner.busy)
    save(settings, "11-settings.png")
    settings.close()
    runner.shutdown()
    shoot_duplicates(tmp, model, out, until, save)
    shoot_damaged(tmp, model, until, save)
    return 0


def shoot_damaged(tmp: Path, model, until: Callable, save: Callable) -> None:
    """A library whose catalog lost a page of vectors: the window's offer to rebuild it, and after."""
    import sqlite3

    from clipphotos.gui.main_window import AppOptions, MainWindow
    from clipphotos.library import Library
    from clipphotos.shapes import write_library
    folder = tmp / "Damaged drawings"
    write_library(folder, 24, seed=11)
    for width, height in ((1024, 700), (1920, 1080)):
        root = tmp / f"damaged-{width}"
        with Library(root, model=model.spec("cpu")) as lib:
            lib.index_folders([folder])
        with sqlite3.connect(root / "catalog.sqlite3") as con:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            page = con.execute("SELECT rootpage FROM sqlite_master WHERE name='vectors'").fetchone()[0]
        with open(root / "catalog.sqlite3", "r+b") as f:
            f.seek((page - 1) * 4096)
            f.write(b"\xff" * 4096)
        window = MainWindow(AppOptions(str(root), model, "cpu", welcome=False))
        window.resize(width, height)
        window.show()
        until(lambda: window.message.button.text() == "Rebuild the catalog" and window.message.isVisible(), 120)
        save(window, f"18-damaged-catalog-{width}.png")
        window.message.button.click()
        until(lambda: window.library is not None and window.model.rowCount() == 24 and not window.runner.busy, 120)
        save(window, f"19-catalog-rebuilt-{width}.png")
        window.close()


def shoot_away(tmp: Path, model, until: Callable, save: Callable) -> None:
    """A drive reached inside a library folder (a followed link to another device) that is away:
    its photos' cells and one in the preview (with and without a kept thumbnail), its folder's menu, the question, and the library
    after its photos were forgotten."""
    from PySide6.QtCore import QPoint, QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from clipphotos.gui.main_window import AppOptions, MainWindow
    from clipphotos.library import Library
    from clipphotos.shapes import write_library
    shm = Path("/dev/shm")   # a folder on another device stands for the camera card
    if not shm.is_dir() or shm.stat().st_dev == tmp.stat().st_dev:
        print("drive-away shots skipped: no /dev/shm on another device than the temporary folder to stand for a drive")
        return
    for width, height in ((1024, 700), (1920, 1080)):
        folder, root = tmp / f"Photos-{width}", tmp / f"away-{width}"
        write_library(folder, 12, seed=12)
        drive = Path(tempfile.mkdtemp(prefix="clipphotos-shots-card-", dir=shm))
        (folder / "Camera card").symlink_to(drive)
        write_library(drive, 8, seed=13)
        with Library(root, model=model.spec("cpu")) as lib:
            lib.add_folder(folder, follow_links=True)
            lib.index_folders(read_text=False)
        drive.rename(f"{drive}-away")                              # the card is taken out
        try:
            window = MainWindow(AppOptions(str(root), model, "cpu", welcome=False))
            window.resize(width, height)
            window.show()
            until(lambda: window.model_state == "ready" and window.reports > 0 and window.model.rowCount() == 20, 120)
            item = window.sidebar.library.child(1)
            window.sidebar.tree.setCurrentItem(item)
            until(lambda: not window.runner.busy and window.model.rowCount() == 20)
            # An away photo without a kept thumbnail selected: its cell and the preview say why.
            away = [p for p in window.model.photos()
                    if "Camera card" in p.path and window.library.thumbnails.lookup(p.hash) is None]
            if away:   # the cells on screen load; one of them is enough
                until(lambda: any(window.provider.unavailable(p.hash) is not None for p in away))
                shown = next(p for p in away if window.provider.unavailable(p.hash) is not None)
                window.grid.setCurrentIndex(window.model.index(window.model.row_of(shown.path)))
                until(lambda: not window.runner.busy)
            save(window, f"25-drive-away-{width}.png")
            # One whose thumbnail was kept: it shows, and the preview says why there is no Open.
            kept = [p for p in window.model.photos()
                    if "Camera card" in p.path and window.library.thumbnails.lookup(p.hash) is not None]
            if kept:
                window.grid.setCurrentIndex(window.model.index(window.model.row_of(kept[0].path)))
                row = window.model.row_of(kept[0].path)
                until(lambda: not window.preview.open_button.isEnabled() and window.model.absent(row) is not None)
                save(window, f"25b-drive-away-kept-thumbnail-{width}.png")
                # Its context menu: what needs the file is off, and the first line says why.
                photo_menu = window.photo_menu(row)
                photo_menu.popup(window.grid.viewport().mapToGlobal(window.grid.visualRect(
                    window.model.index(row)).center()))
                save(photo_menu, f"25c-drive-away-photo-menu-{width}.png")
                photo_menu.close()
            menu = window.sidebar.folder_menu(item)
            menu.popup(window.sidebar.tree.viewport().mapToGlobal(window.sidebar.tree.visualItemRect(item).center()
                                                                 + QPoint(20, 0)))
            save(menu, f"26-drive-away-menu-{width}.png")
            menu.close()

            def answer() -> None:
                box = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible())
                save(box, f"27-forget-drive-question-{width}.png")
                next(b for b in box.buttons() if b.text() == "Forget Photos").click()
            QTimer.singleShot(300, answer)
            menu.actions()[-1].trigger()
            until(lambda: window.model.rowCount() == 12 and not window.runner.busy, 120)
            save(window, f"28-drive-forgotten-{width}.png")
            window.close()
        finally:
            shutil.rmtree(f"{drive}-away", ignore_errors=True)


def shoot_tagging(window, red: set[str], until: Callable, settle: Callable, save: Callable) -> None:
    """The tagging stages, each at the three window sizes; the review answers what is true (red drawings)."""
    def at_sizes(name: str) -> None:
        for width, height in SIZES:
            window.resize(width, height)
            settle(window)
            save(window, f"{name}-{width}x{height}.png")
        window.resize(1280, 800)
        settle(window)

    window.search.filters.exclude.clear()
    for width, height in SIZES[::2]:
        window.resize(width, height)
        window.search.clear()
        until(lambda: window.header_title.text() == "All photos")
        settle(window)
        save(window, f"01-main-window-{width}x{height}.png")
    window.resize(1280, 800)

    tags = window.tags
    window.sidebar.new_label.setText("red things: a red shape")
    window.sidebar.new_label.returnPressed.emit()
    until(lambda: tags.reviewing, 120)
    at_sizes("20-tags-label-created")

    for row in range(13):
        tags.answer(window.model.photo(row).path in red)
    tags.undo()                                # the last one taken back
    window.grid.scrollToTop()
    at_sizes("21-tags-review-answers")

    tags.review_bar.apply_button.click()
    until(lambda: not tags.busy and window.header_title.text().startswith("Tagged"), 120)
    at_sizes("22-tags-applied")

    window.grid.setFocus()
    window.grid.setCurrentIndex(window.model.index(0))
    until(lambda: bool(window.preview.tag_chips.chips))
    at_sizes("23-tags-chips")

    tags.notice.hide()
    window.grid.clearSelection()
    window.sidebar.tree.scrollToItem(window.sidebar.tag_item("red things"))
    at_sizes("24-tags-section")


def shoot_picker(tmp: Path, model, until: Callable, save: Callable) -> None:
    """The model choices with their measured speeds: the first-run dialog's model page and the
    settings dialog, each at 1024×700 and 1920×1080; then Settings as a window on a library of
    drawings opens it (11b): the model running there said with its speed measured here."""
    from clipphotos.gui import theme
    from clipphotos.gui.library_jobs import AppSettings
    from clipphotos.gui.main_window import AppOptions, MainWindow
    from clipphotos.gui.settings_dialog import SettingsDialog
    from clipphotos.gui.welcome import WelcomeDialog
    from clipphotos.gui.workers import Runner
    from clipphotos.library import Library
    from clipphotos.shapes import write_library
    runner = Runner(1)
    welcome = WelcomeDialog(runner, theme.icons())
    welcome.add_folder(str(Path.home()))
    welcome.show()
    welcome.next.click()
    settings = SettingsDialog(runner, AppSettings())
    settings.show()
    for width, height in ((1024, 700), (1920, 1080)):
        for dialog, name in ((welcome, "09-welcome-model"), (settings, "11-settings")):
            dialog.resize(width, height)
            until(lambda: not runner.busy)
            save(dialog, f"{name}-{width}x{height}.png")
    welcome.close()
    settings.close()
    runner.shutdown()
    write_library(tmp / "Drawings", 12, seed=5)
    with Library(tmp / "picker-library", model=model.spec("cpu")) as lib:   # the library remembers its model
        lib.index_folders([tmp / "Drawings"], read_text=False)
    window = MainWindow(AppOptions(str(tmp / "picker-library"), None, "cpu", welcome=False))
    window.show()
    until(lambda: window.model_state == "ready", 120)
    here = window.settings_dialog()
    here.show()
    for width, height in ((1024, 700), (1920, 1080)):
        here.resize(width, height)
        save(here, f"11b-settings-model-here-{width}x{height}.png")
    here.close()
    window.close()


def shoot_duplicates(tmp: Path, model, out: Path, until: Callable, save: Callable) -> None:
    """The Duplicates view at 1024×700 and 1920×1080: the groups, a near group compared, a bulk clean-up,
    a group set apart and grouped again."""
    sys.path.insert(0, str(REPO / "tests"))
    from duplicate_library import make_duplicate_library

    from clipphotos.gui.main_window import AppOptions, MainWindow
    from clipphotos.library import Library
    from PySide6.QtWidgets import QApplication, QMessageBox
    from PySide6.QtCore import QTimer
    folder = tmp / "Family photos"
    make_duplicate_library(folder, originals=14, exact=5, near=4)
    with Library(tmp / "dupes-library", model=model.spec("cpu")) as lib:
        lib.index_folders([folder])
    for width, height in ((1024, 700), (1920, 1080)):
        shutil.copytree(tmp / "dupes-library", tmp / f"dupes-{width}")
        window = MainWindow(AppOptions(str(tmp / f"dupes-{width}"), model, "cpu", welcome=False))
        window.resize(width, height)
        window.show()
        until(lambda: window.library is not None, 120)
        view = window.duplicates
        shown = []
        view.groupsShown.connect(lambda: shown.append(1))
        window.sidebar.tree.setCurrentItem(window.sidebar.duplicates_item)
        until(lambda: shown and not view.runner.busy, 120)
        view.select_group(view.listed_keys()[0])
        until(lambda: not view.runner.busy)
        save(window, f"12-duplicates-{width}.png")
        near = next(k for k in view.listed_keys() if view.groups[k].tier == "near")
        view.select_group(near)
        view.open_compare()
        until(lambda: all(p.loaded_width for p in view.compare.panes) and not view.runner.busy)
        until(lambda: True)
        save(view.compare, f"13-duplicates-compare-{width}.png")
        view.compare.close()

        def accept() -> None:
            boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
            if not boxes:
                QTimer.singleShot(20, accept)
                return
            save(boxes[0], f"14-duplicates-confirm-{width}.png")
            next(b for b in boxes[0].buttons() if b.text() == "Move to Trash").click()
        QTimer.singleShot(0, accept)
        done = []
        view.actionFinished.connect(done.append)
        view.bulk_buttons["exact"].click()
        until(lambda: done and not view.runner.busy, 120)
        save(window, f"15-duplicates-cleaned-{width}.png")
        view.select_group(next(k for k in view.listed_keys() if view.groups[k].tier == "near"))
        view.not_duplicates()
        until(lambda: len(done) > 1 and not view.runner.busy, 120)
        save(window, f"16-duplicates-set-apart-{width}.png")
        view.undo()                     # grouped again, shown
        until(lambda: len(done) > 2 and not view.runner.busy, 120)
        save(window, f"17-duplicates-grouped-again-{width}.png")
        view.undo()                     # the generated files are shared by both sizes
        until(lambda: len(done) > 3 and not view.runner.busy, 120)
        window.close()


if __name__ == "__main__":
    raise SystemExit(main())
