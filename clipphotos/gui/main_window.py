"""The main window: sidebar | search bar over the grid | preview, and the indexing status below.

It conducts; it does no heavy work. The library opens, the model loads, searches run, photos
index and files go to the trash on worker threads (workers.Runner + library_jobs); answers
come back as signals, and an answer to a question nobody asks any more (an old query) is
dropped by its generation number.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QObject, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QGuiApplication, QIcon, QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import (QFileDialog, QFrame, QHBoxLayout, QLabel, QMainWindow, QMenu, QMessageBox,
                               QProgressBar, QPushButton, QSplitter, QStackedWidget, QToolButton, QVBoxLayout,
                               QWidget)

from clipphotos.gui import desktop, library_jobs
from clipphotos.gui.duplicates_view import DuplicatesView
from clipphotos.gui.library_jobs import AppSettings, Browse, Opened
from clipphotos.model_choices import ModelRequest
from clipphotos.gui.photo_grid import PhotoGrid, PhotoGridModel, ThumbnailProvider
from clipphotos.gui.preview import PhotoViewer, PreviewPane
from clipphotos.gui.search_bar import Query, SearchBar
from clipphotos.gui.sidebar import Sidebar
from clipphotos.gui.tags_panel import TagsController
from clipphotos.gui.widgets import confirm, hbox, vbox
from clipphotos.gui.workers import Runner

if TYPE_CHECKING:
    from clipphotos.library import IndexReport, Library, PhotoRecord, Progress, RebuiltCatalog, SearchAnswer, TrashReport
    from clipphotos.gui.settings_dialog import SettingsDialog
    from clipphotos.watcher import WatchEngine, WatchSettings

REFRESH_WHILE_INDEXING_S = 3.0     # how often the browse grid picks up newly indexed photos


@dataclass(frozen=True)
class AppOptions:
    """What the command line asked for."""

    library: str | None = None
    model: ModelRequest | None = None     # --model/--pretrained/--weights, fixed for this run
    device: str | None = None
    precision: str | None = None          # --precision, fixed for this run
    welcome: bool = True                  # offer the first-run dialog when the library has no folders
    watch: WatchSettings | None = None    # how eagerly folders are followed (tests make it brisk)


class _EngineSignals(QObject):
    """The watch engine calls back from its own thread; these carry the calls to the UI thread."""

    progress = Signal(object)     # Progress
    report = Signal(object)       # IndexReport
    error = Signal(object)        # an exception


class _Message(QWidget):
    """A calm empty state: a title, a line of help, maybe a button."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        self.icon = QLabel()
        self.icon.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.icon)
        layout.addSpacing(6)
        self.title = QLabel()
        self.title.setObjectName("messageTitle")
        self.body = QLabel()
        self.body.setObjectName("messageBody")
        self.body.setWordWrap(True)
        self.button = QPushButton()
        self.button.setObjectName("primaryButton")
        self.button.setAutoDefault(True)          # Enter presses it when it has the focus
        for w in (self.title, self.body):
            w.setAlignment(Qt.AlignmentFlag.AlignCenter)
            layout.addWidget(w)
        layout.addSpacing(10)
        layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(3)
        self._action: Any = None
        self.button.clicked.connect(lambda: self._action and self._action())

    def show_message(self, title: str, body: str = "", button: str = "", action: Any = None) -> None:
        self.title.setText(title)
        self.body.setText(body)
        self.body.setVisible(bool(body))
        self.button.setText(button)
        self.button.setVisible(bool(button))
        self._action = action


class MainWindow(QMainWindow):
    """Search, browse and index one library."""

    libraryOpened = Signal()
    modelReady = Signal()
    resultsShown = Signal()                 # the grid shows a new browse or search answer
    indexingFinished = Signal(object)       # IndexReport
    trashFinished = Signal(object)          # TrashReport

    PAGE_MESSAGE, PAGE_GRID, PAGE_VIEWER = range(3)

    def __init__(self, options: AppOptions | None = None, icons: dict[str, QIcon] | None = None) -> None:
        super().__init__()
        from clipphotos.gui import theme
        self.options = options or AppOptions()
        self.icons = icons if icons is not None else theme.icons()
        self.library: Library | None = None
        self.settings = AppSettings()
        self.model_state = "waiting"        # waiting, loading, ready, failed
        self.model_error = ""
        self.model_speed_here: float | None = None   # images/s of the loaded model, measured on this computer
        self._intact: bool | None = None    # the open catalog passed SQLite's quick check (None: being checked)
        self.query = Query()
        self.matches = 0                    # how many photos clearly match the search on show
        self.status: dict = {}
        self.engine: WatchEngine | None = None
        self.indexing = False               # a run of the engine is going on
        self._paused = False
        self._first_report = True
        self.reports = 0                    # indexing runs reported since the window opened
        self._generation = 0
        self._last_refresh = 0.0
        self._refresh_every = REFRESH_WHILE_INDEXING_S
        self._opened_once = False
        self._closing = False

        self.runner = Runner(2, self)            # library, browsing, trash, folders
        self.search_runner = Runner(1, self)     # one search at a time, newest wins
        self.engine_signals = _EngineSignals(self)
        self.engine_signals.progress.connect(self._show_progress)
        self.engine_signals.report.connect(self._engine_report)
        self.engine_signals.error.connect(self._engine_error)
        self.state_timer = QTimer(self)
        self.state_timer.setInterval(1000)
        self.state_timer.timeout.connect(self._show_engine_state)
        self.preview_runner = Runner(1, self)    # sharp previews never wait behind a big job
        self.provider = ThumbnailProvider(self)
        self._build()
        self.setWindowTitle("ClipPhotos")
        self.setWindowIcon(self.icons.get("app", QIcon()))
        self.resize(1280, 800)
        self.setMinimumSize(900, 560)

    # -- building ------------------------------------------------------------------------

    def _build(self) -> None:
        self.sidebar = Sidebar(self.icons)
        self.sidebar.setMinimumWidth(190)
        self.sidebar.folderSelected.connect(self._folder_selected)
        self.sidebar.addFolderRequested.connect(self.choose_folder)
        self.sidebar.removeFolderRequested.connect(self.remove_folder)
        self.sidebar.forgetDriveRequested.connect(self.forget_away_drive)
        self.sidebar.tagSelected.connect(self._tag_selected)
        self.duplicates = DuplicatesView(self.runner)   # exact, near, similar groups (clipphotos.duplicates)
        self.sidebar.duplicatesSelected.connect(self.show_duplicates)
        self.libraryOpened.connect(lambda: self.duplicates.set_library(self.library))
        self.duplicates.libraryChanged.connect(self.refresh)

        centre = QWidget()
        centre.setObjectName("centre")
        col = vbox(centre, (18, 14, 18, 0), 10)
        top = QHBoxLayout()
        top.setSpacing(8)
        self.search = SearchBar(self.icons)
        self.search.changed.connect(self._query_changed)
        self.search.leaveDown.connect(self._focus_grid)
        top.addWidget(self.search, 1)
        self.settings_button = QToolButton()
        self.settings_button.setObjectName("settingsButton")
        self.settings_button.setIcon(self.icons.get("settings", QIcon()))
        self.settings_button.setToolTip("Settings (Ctrl+,)")
        self.settings_button.clicked.connect(self.open_settings)
        top.addWidget(self.settings_button)
        col.addLayout(top)

        self.banner = QFrame()
        self.banner.setObjectName("banner")
        row = hbox(self.banner, (12, 8, 8, 8))
        self.banner_text = QLabel()
        self.banner_text.setObjectName("bannerText")
        self.banner_text.setWordWrap(True)
        row.addWidget(self.banner_text, 1)
        banner_button = QPushButton("Choose a model…")
        banner_button.clicked.connect(self.open_settings)
        row.addWidget(banner_button, 0, Qt.AlignmentFlag.AlignTop)
        self.banner.hide()
        col.addWidget(self.banner)

        header = QHBoxLayout()
        self.header_title = QLabel("All photos")
        self.header_title.setObjectName("headerTitle")
        self.header_count = QLabel()
        self.header_count.setObjectName("headerCount")
        header.addWidget(self.header_title)
        header.addSpacing(6)
        header.addWidget(self.header_count, 0, Qt.AlignmentFlag.AlignBaseline)
        header.addStretch(1)
        col.addLayout(header)

        self.stack = QStackedWidget()
        self.message = _Message()
        self.message.icon.setPixmap(self.icons.get("app", QIcon()).pixmap(64, 64))
        self.model = PhotoGridModel(self.provider, self)
        self.grid = PhotoGrid()
        self.grid.setModel(self.model)
        self.grid.selectionModel().currentChanged.connect(self._current_changed)
        self.grid.activated.connect(lambda _i: self.open_viewer())
        self.grid.customContextMenuRequested.connect(self._context_menu)
        self.viewer = PhotoViewer(self.preview_runner)
        self.viewer.stepRequested.connect(self._viewer_step)
        self.viewer.closeRequested.connect(self.close_viewer)
        for page in (self.message, self.grid, self.viewer):
            self.stack.addWidget(page)
        col.addWidget(self.stack, 1)

        self.preview = PreviewPane(self.preview_runner, self.icons)
        self.preview.setMinimumWidth(260)
        self.preview.openRequested.connect(desktop.open_file)
        self.preview.showInFolderRequested.connect(desktop.show_in_folder)
        self.preview.moreLikeThisRequested.connect(self.more_like_this)

        self.pages = QStackedWidget()             # the photos (centre), or the duplicates view
        self.pages.addWidget(centre)
        self.pages.addWidget(self.duplicates)
        self.splitter = QSplitter()
        self.splitter.setHandleWidth(1)
        for i, w in enumerate((self.sidebar, self.pages, self.preview)):
            self.splitter.addWidget(w)
            self.splitter.setCollapsible(i, i == 2)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([220, 740, 320])
        self.setCentralWidget(self.splitter)
        # Tags: the sidebar's section, review in the grid, the preview's chips (gui/tags_panel.py).
        self.tags = TagsController(self)
        for widget in (self.tags.notice, self.tags.bar, self.tags.review_bar):
            col.insertWidget(col.indexOf(self.stack), widget)
        for runner in (self.runner, self.search_runner, self.preview_runner, self.tags.runner):
            runner.intercept = self._damage_met
        self.libraryOpened.connect(lambda: self.tags.set_library(self.library, self.model_state == "ready"))
        self.modelReady.connect(lambda: self.tags.set_library(self.library, ready=True))
        self.indexingFinished.connect(lambda _report: self.tags.reload_labels())
        self._build_status_bar()
        self._build_shortcuts()
        self._show_message("Opening your library…")

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        bar.setSizeGripEnabled(False)
        self.status_text = QLabel("")
        self.progress = QProgressBar()
        self.progress.setFixedWidth(180)
        self.progress.setTextVisible(False)
        self.pause_button = QToolButton()
        self.pause_button.setText("Pause")
        self.pause_button.setIcon(self.icons.get("pause", QIcon()))
        self.pause_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.model_label = QLabel("")
        self.model_label.setObjectName("modelLabel")
        bar.addWidget(self.status_text, 1)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.pause_button)
        bar.addPermanentWidget(self.model_label)
        self.progress.hide()
        self.pause_button.hide()

    def _build_shortcuts(self) -> None:
        def on(keys: QKeySequence | str, slot: Any, widget: QWidget | None = None) -> None:
            sc = QShortcut(QKeySequence(keys), widget or self)
            if widget is not None:
                sc.setContext(Qt.ShortcutContext.WidgetShortcut)
            sc.activated.connect(slot)

        on(QKeySequence.StandardKey.Find, self.search.focus)
        on("Ctrl+,", self.open_settings)
        on(QKeySequence.StandardKey.Delete, self.trash_selected, self.grid)
        on("M", lambda: self.more_like_this(self.current_path()), self.grid)
        on("Space", self.open_viewer, self.grid)
        on("Escape", self._grid_escape, self.grid)

    # -- start-up ------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._opened_once:
            self._opened_once = True
            # After the first paint: the window is up before torch starts loading.
            QTimer.singleShot(0, self.open_library)

    def open_library(self) -> None:
        o = self.options
        self.runner.submit(library_jobs.open_library, o.library, o.model, o.device, o.precision,
                           on_done=self._library_opened, on_failed=self._library_failed)

    def _files_from(self, library: Library) -> None:
        """Thumbnails, and why a photo's file is not there, come from this library now."""
        self.provider.set_cache(library.thumbnails, library.file_absence)
        for loader in (self.preview.loader, self.viewer.loader):
            loader.absence = library.file_absence

    def _library_opened(self, opened: Opened) -> None:
        old, self.library = self.library, opened.library
        if old is not None and old is not opened.library:
            self.runner.submit(old.close, on_failed=lambda exc: None)
        self.settings = opened.settings
        self._files_from(opened.library)
        self.grid.set_cell_size(self.settings.thumbnail_size)
        self._generation += 1
        self._check_catalog(opened.library)     # first: a rebuilt catalog's photos are shown again
        self._apply_browse(self._generation, self.query, opened.browse)
        self.libraryOpened.emit()
        if not self.status.get("folders") and self.options.welcome:
            QTimer.singleShot(0, self.show_welcome)
        else:
            self.load_model()

    def _library_failed(self, exc: BaseException) -> None:
        from clipphotos.library import is_damage
        if is_damage(exc):
            self._show_message(
                "This library's catalog is damaged",
                f"{str(exc)[:1].upper()}{str(exc)[1:]}.\n\nYour photos are untouched. Rebuilding starts a fresh "
                "catalog: the damaged one is kept beside it under a new name, what can still be read of it "
                "(folders, labels, your tag answers, “not duplicates” marks) is carried over, and your folders "
                "are indexed again.", "Rebuild the catalog", self.rebuild_catalog, focus=True)
            return
        self._show_message("The library could not be opened", str(exc))

    def _check_catalog(self, lib: Library) -> None:
        """SQLite's quick check on a worker, before anything is indexed into the catalog: browsing
        goes on meanwhile, and a damaged catalog is offered a rebuild instead of being built on."""
        self._intact = None

        def checked(exc: BaseException | None) -> None:
            if lib is not self.library:
                return
            from clipphotos.library import is_damage
            if exc is not None and is_damage(exc):
                self._intact = False
                self._library_failed(exc)
                return
            self._intact = True     # checked, or the check itself could not run: as before it existed
            self.start_watching()
        self.runner.submit(lib.ensure_intact, on_done=lambda _r: checked(None), on_failed=checked)

    def _damage_met(self, exc: BaseException) -> bool:
        """Any job that meets catalog damage (in a page the quick check at opening passed) leads
        to the rebuild page, once, instead of its own error: True when `exc` was that."""
        from clipphotos.library import is_damage
        if self.library is None or self._closing or not is_damage(exc):
            return False       # (while rebuilding, self.library is None: its errors are its own)
        if self._intact is not False:
            self._intact = False
            self.stop_watching()
            self._library_failed(exc)
        return True

    def rebuild_catalog(self) -> None:
        """Start a fresh catalog in place of the damaged one, then open the library again."""
        self._show_message("Rebuilding the catalog…", "Setting the damaged catalog aside…")
        o = self.options
        damaged, self.library = self.library, None     # closed by the job, before the rebuild takes its lock
        self.runner.submit(library_jobs.rebuild_catalog, damaged, o.library, o.model, o.device, progress=True,
                           on_progress=self._rebuild_progress, on_done=self._catalog_rebuilt,
                           on_failed=self._rebuild_failed)

    def _rebuild_failed(self, exc: BaseException) -> None:
        self._show_message("The catalog could not be rebuilt", str(exc), "Try again", self.rebuild_catalog, focus=True)

    def _rebuild_progress(self, p: Progress) -> None:
        if p.phase == "indexing" and p.total:
            parts = [f"Indexing your folders again: {p.done:,} of {p.total:,} photos"]
            if p.eta_seconds is not None and p.done < p.total:
                parts.append(_eta(p.eta_seconds))
            self.message.body.setText(" · ".join(parts) + ". Your photos are untouched.")
        elif p.phase == "scanning":
            self.message.body.setText("Looking through your folders…")

    def _catalog_rebuilt(self, done: RebuiltCatalog) -> None:
        answers = f", {done.reviews_restored:,} tag answers kept" if done.reviews_restored else ""
        self.statusBar().showMessage(f"Catalog rebuilt: {done.index.indexed:,} photos indexed again{answers}; "
                                     f"the damaged one is set aside in the library folder", 20_000)
        self.open_library()

    def load_model(self) -> None:
        if self.library is None or self.model_state == "loading":
            return
        self.model_state = "loading"
        self.model_label.setText("Loading the model…")
        self.runner.submit(library_jobs.load_model, self.library,
                           on_done=self._model_loaded, on_failed=self._model_failed)

    def _model_loaded(self, ready: library_jobs.ModelReady) -> None:
        self.model_state = "ready"
        self.model_speed_here = ready.speed_here
        self.banner.hide()
        self.model_label.setText(f"Model: {ready.title}")
        self.model_label.setToolTip(ready.details)
        self.modelReady.emit()
        if self.query.is_search:
            self._run_search()
        self.start_watching()

    def _model_failed(self, exc: BaseException) -> None:
        self.model_state = "failed"
        self.model_error = str(exc)
        self.model_label.setText("Model unavailable")
        self.model_label.setToolTip(self.model_error)
        first = self.model_error.splitlines()[0] if self.model_error else type(exc).__name__
        self.banner_text.setText(f"<b>Search is off until a model is ready.</b> {first} "
                                 f"Browsing works meanwhile.")
        self.banner.show()
        if self.query.is_search:
            self._show_message("Search needs a model", self.model_error, "Choose a model…", self.open_settings)

    def show_welcome(self) -> None:
        from clipphotos.gui.welcome import WelcomeDialog
        dialog = WelcomeDialog(self.runner, self.icons, fixed=self.options.model, parent=self)
        if dialog.exec() and self.library is not None:
            lib, folders, model = self.library, dialog.folders, dialog.model
            if model is not None and model != self.options.model:
                self.settings = replace(self.settings, model=model)
                self.runner.submit(library_jobs.store_settings, lib, self.settings,
                                   on_done=lambda _r: self._reopen_then(folders))
            else:
                self._add_folders(folders)
        else:
            self._show_browse_or_empty()
            self.load_model()

    def _reopen_then(self, folders: list[str]) -> None:
        """Open the library again with the model just chosen, then add the folders."""
        o = self.options
        self.model_state = "waiting"
        self.runner.submit(library_jobs.open_library, o.library, o.model, o.device, o.precision,
                           on_done=lambda opened: (self._library_opened_quietly(opened), self._add_folders(folders)),
                           on_failed=self._library_failed)

    def _library_opened_quietly(self, opened: Opened) -> None:
        old, self.library = self.library, opened.library
        if old is not None:
            self.runner.submit(old.close, on_failed=lambda exc: None)
        self.settings = opened.settings
        self._files_from(opened.library)
        self.duplicates.set_library(self.library)

    # -- folders -------------------------------------------------------------------------

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Add a folder of photos", os.path.expanduser("~"))
        if path:
            self.add_folder(path)

    def add_folder(self, path: str) -> None:
        self._add_folders([path])

    def _add_folders(self, paths: list[str]) -> None:
        lib, engine = self.library, self.engine
        if lib is None:
            return

        def add_all() -> None:
            for path in paths:
                # Through the engine when it runs: it watches the folder and scans it at once.
                (engine.add_folder if engine is not None else lib.add_folder)(path)

        self.runner.submit(add_all, on_done=lambda _r: self._folders_changed(),
                           on_failed=lambda exc: QMessageBox.warning(self, "Folder not added", str(exc)))

    def _folders_changed(self) -> None:
        self.refresh()
        if self.model_state in ("waiting", "failed"):
            self.load_model()

    def remove_folder(self, path: str) -> None:
        if not confirm(self, "Remove folder", f"Remove “{os.path.basename(path) or path}” from the library?",
                       "The photos stay on disk; ClipPhotos just stops showing them.", "Remove Folder"):
            return
        if self.query.folder == path:
            self.search.set_folder(None)
        self._forget(path)

    def forget_away_drive(self, mount: str) -> None:
        """Stop waiting for a drive mounted inside a library folder that is gone for good."""
        name = os.path.basename(mount.rstrip(os.sep)) or mount
        if confirm(self, "Forget a drive", f"Forget the photos on “{name}”?",
                   f"The drive that was at {mount} is away. ClipPhotos keeps its photos until it is back; "
                   "forget them if it is gone for good. Nothing on the drive is touched: plugged in again, "
                   "its photos are indexed anew.", "Forget Photos"):
            self._forget(mount)

    def _forget(self, path: str) -> None:
        """Forget a folder, or an away drive, through the watcher when it runs (between its runs)."""
        if self.library is None:
            return
        lib, engine = self.library, self.engine

        def remove() -> None:
            if engine is None:
                lib.remove_folder(path)
            else:
                # The engine forgets the folder between runs, never under one; wait for that.
                engine.remove_folder(path)
                engine.wait_idle(timeout=30)

        self.runner.submit(remove, on_done=lambda _r: self.refresh())

    def _folder_selected(self, folder: str | None) -> None:
        self._leave_duplicates()
        self.search.set_tag(None)
        self.search.set_folder(folder)

    def _leave_duplicates(self) -> None:
        if self.pages.currentWidget() is self.duplicates:
            self.pages.setCurrentIndex(0)
            if self.stack.currentIndex() != self.PAGE_VIEWER:
                self.preview.setVisible(bool(self.status.get("photos")))

    def _tag_selected(self, name: str) -> None:
        """A tag's photos in the grid; the search and the filters still apply on top."""
        self._leave_duplicates()
        if self.query.tag == name:
            self.tags.stop_review(reload=False)
            self.reload_listing()
        else:
            self.search.set_tag(name)

    def show_duplicates(self) -> None:
        """The Duplicates view in the centre (it looks for groups each time it is shown)."""
        self.preview.hide()
        self.pages.setCurrentWidget(self.duplicates)

    # -- watching: indexing in the background ------------------------------------------

    def start_watching(self) -> None:
        """Keep the library indexed from now on: a full scan, then the folders' changes."""
        if self.library is None or self.model_state != "ready" or self._closing or self.engine is not None \
                or not self._intact:
            return
        from clipphotos.watcher import WatchEngine
        sig = self.engine_signals
        self.engine = WatchEngine(self.library, self.options.watch, on_progress=library_jobs.throttled(sig.progress.emit),
                                  on_report=sig.report.emit, on_error=sig.error.emit)
        if self._paused:
            self.engine.pause()
        self._first_report = True
        self.engine.start()
        self.state_timer.start()

    def stop_watching(self, then: Any = None) -> None:
        """Stop the engine (the batch in flight is committed) on a worker, then call `then`."""
        engine, self.engine = self.engine, None
        self.state_timer.stop()
        self._index_over()
        if engine is None:
            if then is not None:
                then()
            return
        self.runner.submit(engine.stop, on_done=lambda _r: then and then())

    def toggle_pause(self) -> None:
        self._paused = not self._paused
        if self.engine is not None:
            (self.engine.pause if self._paused else self.engine.resume)()
        self._show_engine_state()

    def _show_progress(self, p: Progress) -> None:
        if self._closing:
            return
        self.indexing = p.phase != "done"
        self.progress.show()
        self.pause_button.show()
        if p.phase == "scanning":
            self.progress.setRange(0, 0)
            self.status_text.setText("Looking for new and changed photos…")
            return
        if p.phase == "indexing" and p.total:
            self.progress.setRange(0, p.total)
            self.progress.setValue(p.done)
            parts = [f"Indexing {p.done:,} of {p.total:,}"]
            if p.images_per_second > 0:
                parts.append(f"{p.images_per_second:.1f} photos/s")
            if p.eta_seconds is not None and p.done < p.total:
                parts.append(_eta(p.eta_seconds))
            self.status_text.setText(" · ".join(parts))
            now = time.monotonic()
            if now - self._last_refresh >= self._refresh_every and p.done:
                self._last_refresh = now
                self.refresh(quiet=True)
        elif p.phase == "finishing":
            self.progress.setRange(0, 0)
            self.status_text.setText("Finishing…")
        elif p.phase == "reading text" and p.total:
            self.progress.setRange(0, p.total)
            self.progress.setValue(p.done)
            self.status_text.setText(f"Reading text: {p.done:,} of {p.total:,}")

    def _engine_report(self, report: IndexReport) -> None:
        if self._closing:
            return
        self._index_over()
        changed = bool(report.indexed or report.moved or report.removed)
        if report.skipped:
            self.status_text.setToolTip("\n".join(f"{p}: {r}" for p, r in report.skipped[:30]))
        found_text = report.text is not None and report.text.with_text > 0   # search may find more now
        if changed or self._first_report:
            self.refresh(quiet=not self._first_report)
            if self.query.is_search:
                self._run_search(keep_position=True)
        elif found_text and self.query.is_search:
            self._run_search(keep_position=True)
        self._first_report = False
        self.provider.recheck_missing()   # a drive may be back: its photos' cells look again
        self.reports += 1
        self._show_engine_state()
        self.indexingFinished.emit(report)

    def _engine_error(self, exc: BaseException) -> None:
        if self._closing or self._damage_met(exc):
            return
        self._index_over()
        engine = self.engine
        if engine is not None and engine.error is exc:   # the engine ended: say so plainly
            self.engine = None
            self.state_timer.stop()
            self.status_text.setText(f"Watching stopped: {exc}")
        else:
            self.status_text.setText(f"Indexing will retry shortly: {exc}")

    def _index_over(self) -> None:
        self.indexing = False
        self.progress.hide()
        self.pause_button.setVisible(self._paused)

    def _show_engine_state(self) -> None:
        """The quiet status line between runs: photo count, what is watched, what waits."""
        engine = self.engine
        if engine is None or self.indexing:
            return
        state = engine.state()
        count = self.status.get("photos", 0)
        parts = [f"{count:,} photo{'s' if count != 1 else ''}"]
        if state.watching:
            n = len(state.watching)
            parts.append(f"watching {n} folder{'s' if n != 1 else ''}")
        if state.queued:
            parts.append(f"{state.queued:,} waiting")
        if state.paused:
            parts.append("indexing paused")
        self.status_text.setText(" · ".join(parts))
        self.pause_button.setVisible(state.paused or state.indexing)
        self.pause_button.setText("Resume" if self._paused else "Pause")
        self.pause_button.setIcon(self.icons.get("play" if self._paused else "pause", QIcon()))

    def _idle_text(self) -> None:
        if self.engine is not None:
            self._show_engine_state()
            return
        count = self.status.get("photos", 0)
        self.status_text.setText(f"{count:,} photo{'s' if count != 1 else ''}")

    # -- browsing and searching ----------------------------------------------------------

    def refresh(self, quiet: bool = False) -> None:
        """Re-read the library (counts, folders; the grid too when browsing)."""
        if self.library is None:
            return
        if self.query.is_search or self.tags.reviewing:
            self.runner.submit(self.library.status, on_done=self._apply_status)
            return
        # A quiet refresh (during indexing) leaves a grid the user is looking through alone.
        if quiet and self.model.rowCount() and (self.grid.verticalScrollBar().value() > 0
                                                or self.grid.selectionModel().hasSelection()):
            self.runner.submit(self.library.status, on_done=self._apply_status)
            return
        self._generation += 1
        gen, query = self._generation, self.query
        self.runner.submit(library_jobs.browse, self.library, query,
                           on_done=lambda b: self._apply_browse(gen, query, b))

    def _apply_status(self, status: dict) -> None:
        self.status = status
        if self.stack.currentIndex() != self.PAGE_VIEWER and self.pages.currentWidget() is not self.duplicates:
            self.preview.setVisible(bool(status.get("photos")))   # an empty library needs no preview
        self.sidebar.set_folders(status.get("folder_details", []), status.get("photos", 0))
        self.search.set_folders(status.get("folders", []))
        if not self.indexing:
            self._idle_text()

    def _apply_browse(self, gen: int, query: Query, browse: Browse) -> None:
        # Re-reading a huge library is not free: while indexing, do it at most 1/5 of the time.
        self._refresh_every = max(REFRESH_WHILE_INDEXING_S, 5 * browse.seconds)
        self._apply_status(browse.status)
        if gen != self._generation:
            return
        self._show_photos(browse.photos, None, keep_position=True)

    def _query_changed(self, query: Query) -> None:
        self.tags.stop_review(reload=False)     # a new question ends a review (its answers stay)
        folder_changed = query.folder != self.query.folder
        self.query = query
        if folder_changed:
            self.sidebar.select_folder(query.folder)
        if not query.is_search:
            self.refresh()
        elif self.model_state == "ready":
            self._run_search()
        elif self.model_state == "failed":
            self._show_message("Search needs a model", self.model_error, "Choose a model…", self.open_settings)
        else:
            self._show_message("Getting the model ready…", "Your search starts as soon as it has loaded.")

    def _run_search(self, keep_position: bool = False) -> None:
        if self.library is None:
            return
        self._generation += 1
        gen, query = self._generation, self.query
        self.search_runner.submit(library_jobs.search, self.library, query, lambda: gen == self._generation,
                                  on_done=lambda results: self._search_done(gen, query, results, keep_position),
                                  on_failed=lambda exc: self._search_failed(gen, exc))

    def _search_done(self, gen: int, query: Query, answer: SearchAnswer | None, keep: bool) -> None:
        if answer is None or gen != self._generation:
            return
        results = answer.results
        self.matches = answer.matches
        shown = sum(r.match for r in results)   # matches come first: the rest start after them
        self._show_photos([r.photo for r in results], [r.score for r in results], keep_position=keep,
                          divider=shown)

    def _search_failed(self, gen: int, exc: BaseException) -> None:
        if gen == self._generation:
            self._show_message("The search failed", str(exc))

    def reload_listing(self, keep_position: bool = False) -> None:
        """Show again what the query asks for (after a review, or when tags changed)."""
        if self.query.is_search and self.model_state == "ready":
            self._run_search(keep_position)
        else:
            self.refresh()      # browsing keeps the current photo and the scroll by itself

    def show_listing(self, photos: list[PhotoRecord], title: str, subtitle: str) -> None:
        """Photos that are not the query's answer (a label's suggestions to review) in the grid."""
        self._generation += 1                    # answers to earlier questions are dropped
        self.close_viewer()
        self._leave_duplicates()
        self._show_photos(photos, None, keep_position=False, listing=True)
        self.header_title.setText(title)
        self.header_count.setText(subtitle)

    def _show_photos(self, photos: list[PhotoRecord], scores: list[float] | None, keep_position: bool,
                     listing: bool = False, divider: int | None = None) -> None:
        if self.tags.reviewing and not listing:
            return      # a review keeps the grid until it ends
        if self._intact is False:
            return      # a damaged catalog keeps its page until it is rebuilt (a browse may still answer)
        current = self.current_path() if keep_position else None
        scroll = self.grid.verticalScrollBar().value() if keep_position else 0
        self.model.set_photos(photos, scores, divider)
        self._update_header(len(photos))
        if photos:
            row = self.model.row_of(current) if current else None
            if row is not None:
                self.grid.selectionModel().setCurrentIndex(self.model.index(row),
                                                           QItemSelectionModel.SelectionFlag.ClearAndSelect)
            else:
                self.preview.show_photo(None, None)
            self.grid.verticalScrollBar().setValue(scroll)
            if self.stack.currentIndex() != self.PAGE_VIEWER:
                self.stack.setCurrentIndex(self.PAGE_GRID)
        else:
            self.preview.show_photo(None, None)
            self._show_browse_or_empty()
        self.resultsShown.emit()

    def _show_browse_or_empty(self) -> None:
        if self.model.rowCount():
            self.stack.setCurrentIndex(self.PAGE_GRID)
        elif self.query.is_search:
            what = f"“{self.query.text}”" if self.query.text else "this photo"
            self._show_message(f"No photos match {what}", "Try other words, or clear the filters.")
        elif not self.status.get("folders"):
            self._show_message("No photos yet", "Add a folder of photos; ClipPhotos indexes it in the background.",
                               "Add folder…", self.choose_folder)
        elif self.indexing or self.model_state in ("waiting", "loading"):
            self._show_message("Indexing your photos…", "They appear here as they are indexed.")
        elif self.query.tag:
            self._show_message(f"No photos tagged “{self.query.tag}”",
                               "Review its suggestions and apply it, or clear the filters.")
        elif self.query.folder or self.query.since or self.query.until:
            self._show_message("No photos here", "Nothing in this folder or date range.")
        else:
            self._show_message("No photos found", "The library’s folders hold no pictures ClipPhotos can read.")

    def _show_message(self, title: str, body: str = "", button: str = "", action: Any = None,
                      focus: bool = False) -> None:
        """The message page; `focus` gives its button the keyboard (Enter presses it), for pages
        where nothing else can work meanwhile (a damaged catalog)."""
        self.message.show_message(title, body, button, action)
        self.stack.setCurrentIndex(self.PAGE_MESSAGE)
        if focus and button:
            self.message.button.setFocus(Qt.FocusReason.OtherFocusReason)

    def _update_header(self, count: int) -> None:
        q = self.query
        if q.image is not None and q.text:
            title = f"Like {os.path.basename(q.image)}, and “{q.text}”"
        elif q.image is not None:
            title = f"Photos like {os.path.basename(q.image)}"
        elif q.text:
            title = f"Best matches for “{q.text}”"
        elif q.tag:
            title = f"Tagged “{q.tag}”"
        elif q.folder:
            title = os.path.basename(q.folder.rstrip(os.sep)) or q.folder
        else:
            title = "All photos"
        self.header_title.setText(title)
        extra = []
        if q.negative:
            extra.append("without " + ", ".join(q.negative))
        if q.since or q.until:
            extra.append(f"{q.since or '…'} – {q.until or '…'}")
        if q.folder and (q.is_search or q.tag):
            extra.append(f"in {os.path.basename(q.folder)}")
        if q.tag and q.is_search:
            extra.append(f"tagged “{q.tag}”")
        if q.is_search:
            counted = (f"{self.matches:,} match{'es' if self.matches != 1 else ''}" if self.matches
                       else "No clear match")
        else:
            counted = f"{count:,} photo{'s' if count != 1 else ''}"
        self.header_count.setText(" · ".join([counted, *extra]) if count or extra else "")

    def more_like_this(self, path: str | None) -> None:
        if path:
            self.close_viewer()
            self.search.set_image(path)

    # -- selection, preview, viewer ------------------------------------------------------

    def current_photo(self) -> PhotoRecord | None:
        index = self.grid.currentIndex()
        return self.model.photo(index.row()) if index.isValid() else None

    def current_path(self) -> str | None:
        photo = self.current_photo()
        return photo.path if photo is not None else None

    def selected_paths(self) -> list[str]:
        rows = sorted(i.row() for i in self.grid.selectionModel().selectedIndexes())
        paths = [p.path for p in map(self.model.photo, rows) if p is not None]
        return paths or ([self.current_path()] if self.current_path() else [])

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        photo = self.model.photo(current.row()) if current.isValid() else None
        self.preview.show_photo(photo, self.provider.cached(photo.hash) if photo else None)
        self.preview.text.show_for(self.library, photo, self.query.text if self.query.is_search else "")

    def _focus_grid(self) -> None:
        if self.model.rowCount():
            self.stack.setCurrentIndex(self.PAGE_GRID)
            self.grid.setFocus()
            if not self.grid.currentIndex().isValid():
                self.grid.setCurrentIndex(self.model.index(0))

    def _grid_escape(self) -> None:
        if self.query.is_search:
            self.search.clear()
        else:
            self.grid.clearSelection()

    def open_viewer(self) -> None:
        photo = self.current_photo()
        if photo is None:
            return
        self.viewer.show_photo(photo, self.provider.cached(photo.hash))
        self.stack.setCurrentIndex(self.PAGE_VIEWER)
        self.preview.hide()          # the viewer shows the photo large: no need for it twice
        self.viewer.setFocus()
        self.tags.viewer_showing(photo.path)     # while reviewing: its answer, and A/R work here too

    def close_viewer(self) -> None:
        if self.stack.currentIndex() == self.PAGE_VIEWER:
            self.stack.setCurrentIndex(self.PAGE_GRID)
            self.preview.setVisible(bool(self.status.get("photos")))
            self.grid.setFocus()

    def _viewer_step(self, step: int) -> None:
        row = self.grid.currentIndex().row() + step
        if self.model.is_divider(row):
            row += step
        if 0 <= row < self.model.rowCount():
            index = self.model.index(row)
            self.grid.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
            self.grid.scrollTo(index)
            self.open_viewer()

    def _context_menu(self, pos: QPoint) -> None:
        index = self.grid.indexAt(pos)
        if not index.isValid():
            return
        if not self.grid.selectionModel().isSelected(index):
            self.grid.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        menu = self.photo_menu(index.row())
        if menu is not None:
            menu.exec(self.grid.viewport().mapToGlobal(pos))

    def photo_menu(self, row: int) -> QMenu | None:
        """A grid cell's context menu. For a photo whose file is known not to be there (its drive
        away, or gone) the actions on the file are off (a gone file's folder can still be shown),
        and the menu's first line says why."""
        photo = self.model.photo(row)
        if photo is None:
            return None
        absent = self.model.absent(row)
        menu = QMenu(self)
        if absent is not None:
            menu.addAction(absent.text).setEnabled(False)
            menu.addSeparator()
        menu.addAction("Preview", self.open_viewer).setShortcut(QKeySequence("Space"))
        menu.addAction(self.icons.get("open", QIcon()), "Open in default app",
                       lambda: desktop.open_file(photo.path)).setEnabled(absent is None)
        menu.addAction(self.icons.get("folder", QIcon()), "Show in folder",
                       lambda: desktop.show_in_folder(photo.path)).setEnabled(absent is None or absent.folder_there)
        menu.addSeparator()
        menu.addAction(self.icons.get("similar", QIcon()), "More like this",
                       lambda: self.more_like_this(photo.path)).setShortcut(QKeySequence("M"))
        menu.addAction("Copy path", lambda: QGuiApplication.clipboard().setText(photo.path))
        menu.addSeparator()
        count = len(self.selected_paths())
        trash = menu.addAction(self.icons.get("trash", QIcon()), f"Move {count} photos to trash…" if count > 1
                               else "Move to trash…", self.trash_selected)
        trash.setShortcut(QKeySequence.StandardKey.Delete)
        trash.setEnabled(absent is None or count > 1)
        return menu

    # -- trash ---------------------------------------------------------------------------

    def confirm_trash(self, paths: list[str]) -> bool:
        what = f"“{os.path.basename(paths[0])}”" if len(paths) == 1 else f"{len(paths):,} photos"
        return confirm(self, "Move to trash", f"Move {what} to the trash?", "You can restore them from the system trash.")

    def trash_selected(self) -> None:
        paths = self.selected_paths()
        if not paths or self.library is None or not self.confirm_trash(paths):
            return
        self.runner.submit(self.library.trash, paths, on_done=self._trashed,
                           on_failed=lambda exc: QMessageBox.warning(self, "Nothing was moved", str(exc)))

    def _trashed(self, report: TrashReport) -> None:
        gone = set(report.trashed) | {p for p, _ in report.failed if not os.path.lexists(p)}
        row = self.grid.currentIndex().row()
        self.model.remove_paths(gone)
        if self.model.rowCount():
            index = self.model.index(min(max(row, 0), self.model.rowCount() - 1))
            self.grid.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        else:
            self.preview.show_photo(None, None)
            self._show_browse_or_empty()
        self._update_header(len(self.model.photos()))
        self.runner.submit(self.library.status, on_done=self._apply_status) if self.library else None
        moved = len(report.trashed)
        self.statusBar().showMessage(f"Moved {moved:,} photo{'s' if moved != 1 else ''} to the trash", 5000)
        failed = [(p, r) for p, r in report.failed if os.path.lexists(p)]
        if failed:
            lines = "\n".join(f"{os.path.basename(p)}: {r}" for p, r in failed[:10])
            more = f"\n… and {len(failed) - 10} more" if len(failed) > 10 else ""
            QMessageBox.warning(self, "Some photos were not moved",
                                f"{len(failed)} photo(s) could not be moved to the trash and were left "
                                f"where they are:\n\n{lines}{more}")
        self.trashFinished.emit(report)

    # -- settings ------------------------------------------------------------------------

    def settings_dialog(self) -> SettingsDialog:
        """Settings as they are now; the model running now is said with its speed on this computer."""
        from clipphotos.gui.settings_dialog import SettingsDialog
        speed = self.model_speed_here if self.model_state == "ready" else None
        return SettingsDialog(self.runner, self.settings, fixed_model=self.options.model, speed_here=speed,
                              parent=self)

    def open_settings(self) -> None:
        dialog = self.settings_dialog()
        if dialog.exec() and dialog.result_settings is not None:
            self.apply_settings(dialog.result_settings)

    def apply_settings(self, new: AppSettings) -> None:
        old, self.settings = self.settings, new
        if new.thumbnail_size != old.thumbnail_size:
            self.grid.set_cell_size(new.thumbnail_size)
        if self.library is None:
            return
        lib = self.library
        model_changed = ((new.model != old.model and self.options.model is None) or new.device != old.device
                         or new.precision != old.precision)
        if model_changed:
            self.model_speed_here = None   # measured for the model being replaced
        self.runner.submit(library_jobs.store_settings, lib, new,
                           on_done=lambda _r: self._settings_stored(model_changed, new.excluded != old.excluded))

    def _settings_stored(self, model_changed: bool, excluded_changed: bool) -> None:
        if self.engine is not None:
            self.engine.set_read_text(self.settings.read_text)
        if model_changed:
            self.stop_watching(then=self._reload_model)
        elif excluded_changed and self.engine is not None:
            self.engine.rescan()   # photos in newly excluded folders leave, re-included ones come back

    def _reload_model(self) -> None:
        """Open the library again with the new model or device (the watcher was stopped first)."""
        self.model_state = "waiting"
        self.model_label.setText("Loading the model…")
        o = self.options
        self.runner.submit(library_jobs.open_library, o.library, o.model, o.device, o.precision,
                           on_done=lambda opened: (self._library_opened_quietly(opened), self.load_model()),
                           on_failed=self._library_failed)

    # -- closing -------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop watching (the batch in flight is committed) and let the workers finish."""
        self._closing = True
        self.state_timer.stop()
        self.hide()
        if self.engine is not None:
            self.engine.stop(wait=False)
        self.provider.shutdown()
        for runner in (self.search_runner, self.preview_runner, self.tags.runner, self.runner):
            runner.shutdown()
        if self.engine is not None:
            self.engine.stop(wait=True, timeout=120)
            self.engine = None
        if self.library is not None:
            self.library.close()
            self.library = None
        super().closeEvent(event)


def _eta(seconds: float) -> str:
    if seconds < 60:
        return "less than a minute left"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min left"
    return f"about {minutes // 60} h {minutes % 60:02d} min left"

