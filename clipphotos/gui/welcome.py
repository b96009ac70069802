"""First run: pick the photo folders, pick a model, fetch its weights (or use a local file).

`ModelPicker` is also the model part of the settings dialog. A download runs in a worker
and reports progress; Cancel stops the transfer itself. When the model hub cannot be reached
the picker says so in plain words and offers a weights file from this computer instead.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (QButtonGroup, QDialog, QFileDialog, QFrame, QHBoxLayout, QLabel, QListWidget,
                               QProgressBar, QPushButton, QRadioButton, QStackedWidget, QWidget)

from clipphotos.model_choices import (CHOICES, DownloadCancelled, ModelChoice, ModelRequest, download_weights,
                                      speed_here_text)
from clipphotos.gui.widgets import hbox, label, vbox
from clipphotos.gui.workers import Job, Runner

WEIGHT_FILES = "Model weights (*.safetensors *.pt *.pth *.bin);;All files (*)"


class _ChoiceCard(QFrame):
    """One model on offer: a radio button with its size and what it is good for."""

    def __init__(self, choice: ModelChoice, group: QButtonGroup, speed_here: float | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("choiceCard")
        self.choice = choice
        layout = vbox(self, (12, 10, 12, 10), 2)
        top = QHBoxLayout()
        self.radio = QRadioButton(choice.title)
        self.radio.setObjectName("choiceTitle")
        group.addButton(self.radio)
        top.addWidget(self.radio)
        top.addStretch(1)
        self.size = label(f"{choice.size_text} download", "choiceSize", wrap=False)
        top.addWidget(self.size)
        layout.addLayout(top)
        detail = f"{choice.blurb}  <span style='color:#8a8f98'>{choice.name}</span>"
        if not choice.available:
            detail += f"<br><i>Needs the optional “{choice.needs}” Python package.</i>"
            self.radio.setEnabled(False)
        text = label(detail, "choiceBlurb")
        text.setContentsMargins(24, 0, 0, 0)
        layout.addWidget(text)
        # The model running now was timed on this computer: that figure, not the development machine's.
        said = speed_here_text(speed_here) if speed_here else choice.speed_text
        if said:
            speed = label(said, "choiceSpeed")
            speed.setContentsMargins(24, 0, 0, 0)
            layout.addWidget(speed)

    def mousePressEvent(self, event: object) -> None:
        if self.radio.isEnabled():
            self.radio.setChecked(True)

    def set_downloaded(self, yes: bool) -> None:
        self.size.setText("On this computer" if yes else f"{self.choice.size_text} download")


class ModelPicker(QWidget):
    """Choose a model; `prepare` makes sure its weights are here (downloading with progress)."""

    busyChanged = Signal(bool)

    def __init__(self, runner: Runner, current: ModelRequest | None = None, fixed: ModelRequest | None = None,
                 speed_here: float | None = None, parent: QWidget | None = None) -> None:
        """`speed_here`: images/s the current model (the one loaded, `fixed` if given) measured here."""
        super().__init__(parent)
        self.runner = runner
        self.fixed = fixed
        custom = current is not None and current.choice is None and fixed is None
        # A current model's file stays with it; a file picked here goes with the chosen card. A model
        # fixed by the command line is named with its file in its own note, and no card is chosen.
        self.local_file: str | None = current.weights if current and current.weights and not custom \
            and fixed is None else None
        self._job: Job | None = None
        self._downloaded: set[str] = set()
        layout = vbox(self, spacing=8)

        self.group = QButtonGroup(self)
        self.cards: list[_ChoiceCard] = []
        here = f"<br>{speed_here_text(speed_here)}" if speed_here else ""
        if fixed is not None:
            layout.addWidget(label(f"Using the model given on the command line: <b>{fixed.describe()}</b>{here}",
                                    "note"))
        running = current.choice if current is not None and fixed is None else None
        for choice in CHOICES:
            card = _ChoiceCard(choice, self.group, speed_here if choice == running else None)
            card.setVisible(fixed is None)
            self.cards.append(card)
            layout.addWidget(card)
        self.custom = current if custom else None
        selected = (current.choice if current else None) or (None if custom else CHOICES[0])
        if selected is not None:     # a custom current model leaves every card unchecked
            self.cards[CHOICES.index(selected)].radio.setChecked(True)
        if self.custom is not None:
            layout.addWidget(label(f"Now: <b>{self.custom.describe()}</b> (stays unless you pick another){here}",
                                   "note"))

        row = QHBoxLayout()
        self.file_button = QPushButton("Use a weights file on this computer…")
        self.file_button.setObjectName("linkButton")
        self.file_button.clicked.connect(self.choose_file)
        self.file_button.setVisible(fixed is None)
        row.addWidget(self.file_button)
        row.addStretch(1)
        layout.addLayout(row)
        self.file_label = label("", "note")
        layout.addWidget(self.file_label)

        self.progress_row = QWidget()
        prow = hbox(self.progress_row)
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress_text = label("", "note", wrap=False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        prow.addWidget(self.progress, 1)
        prow.addWidget(self.progress_text)
        prow.addWidget(self.cancel_button)
        self.progress_row.hide()
        layout.addWidget(self.progress_row)

        self.error = label("", "errorText")
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()
        layout.addWidget(self.error)
        self._touched = False       # a custom current model stays until the user picks another
        self._refresh()
        self.group.buttonToggled.connect(lambda *_: self._selection_changed())
        if fixed is None:
            self.runner.submit(_cached_choices, on_done=self._mark_downloaded, on_failed=lambda exc: None)

    # -- what is chosen ------------------------------------------------------------------

    def selected_choice(self) -> ModelChoice:
        for card in self.cards:
            if card.radio.isChecked():
                return card.choice
        return CHOICES[0]

    def request(self) -> ModelRequest:
        if self.fixed is not None:
            return self.fixed
        if self.custom is not None and not self._touched:
            return self.custom
        return ModelRequest.of(self.selected_choice(), self.local_file)

    def needs_download(self) -> bool:
        req = self.request()
        return bool(req.pretrained) and req.weights is None and req.choice is not None \
            and req.choice.key not in self._downloaded

    def _selection_changed(self) -> None:
        self._touched = True
        self._refresh()

    def _refresh(self) -> None:
        self.error.hide()
        if self.local_file:
            self.file_label.setText(f"Weights file for {self.selected_choice().title}: {self.local_file}")
        self.file_label.setVisible(bool(self.local_file))
        self.busyChanged.emit(self.busy)

    def _mark_downloaded(self, keys: set[str]) -> None:
        self._downloaded |= keys
        for card in self.cards:
            card.set_downloaded(card.choice.key in self._downloaded)
        self.busyChanged.emit(self.busy)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, f"Weights file for {self.selected_choice().name}",
                                              str(Path.home()), WEIGHT_FILES)
        if path:
            self.use_file(path)

    def use_file(self, path: str) -> None:
        """The weights file for the selected model (what the file button asks for)."""
        self.local_file = path
        self._selection_changed()

    # -- making it ready -----------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._job is not None

    def prepare(self, on_ready: Callable[[ModelRequest], None]) -> None:
        """Call `on_ready(request)` once the weights are on this computer (downloading if need be)."""
        request = self.request()
        if not self.needs_download():
            on_ready(request)
            return
        choice = request.choice
        assert choice is not None
        self.error.hide()
        self.progress.setRange(0, 0)
        self.progress_text.setText("Connecting…")
        self.progress_row.show()
        self._job = self.runner.submit(
            download_weights, choice, progress=True, cancellable=True,
            on_progress=self._progress,
            on_done=lambda _path: self._finished(choice, on_ready),
            on_failed=self._failed)
        self.busyChanged.emit(True)

    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel.set()
            self.progress_text.setText("Cancelling…")
            self.cancel_button.setEnabled(False)

    def _progress(self, value: tuple[int, int | None]) -> None:
        done, total = value
        if total:
            self.progress.setRange(0, 1000)
            self.progress.setValue(round(1000 * done / total))
            self.progress_text.setText(f"{done / 1e6:,.0f} MB of {total / 1e6:,.0f} MB")
        else:
            self.progress_text.setText(f"{done / 1e6:,.0f} MB")

    def _finished(self, choice: ModelChoice, on_ready: Callable[[ModelRequest], None]) -> None:
        self._end()
        self._mark_downloaded({choice.key})
        on_ready(self.request())

    def _failed(self, exc: BaseException) -> None:
        self._end()
        if isinstance(exc, DownloadCancelled):
            self.error.setText("Download cancelled.")
        else:
            # The core's message speaks to the command line (--weights FILE); here the button does that.
            lines = [line.strip() for line in str(exc).splitlines() if "--weights" not in line]
            heading = "No connection to the model hub." if "cannot be reached" in str(exc) \
                else "The model could not be downloaded."
            self.error.setText(f"<b>{heading}</b><br>{_html(' '.join(lines))}<br><br>"
                               f"Connect to the internet and try again, or use a weights file from this computer.")
        self.error.show()
        self.file_button.show()

    def _end(self) -> None:
        self._job = None
        self.progress_row.hide()
        self.cancel_button.setEnabled(True)
        self.busyChanged.emit(False)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", "<br>")


def _cached_choices() -> set[str]:
    from clipphotos.model_choices import cached_weights
    return {c.key for c in CHOICES if cached_weights(c) is not None}


class WelcomeDialog(QDialog):
    """Two calm steps: which folders, which model. `folders` and `model` hold the answers."""

    def __init__(self, runner: Runner, icons: dict[str, QIcon], fixed: ModelRequest | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcome")
        self.setWindowTitle("Welcome to ClipPhotos")
        self.setModal(True)
        self.resize(620, 600)
        self.model: ModelRequest | None = None
        outer = vbox(self, (32, 28, 32, 24), 16)
        self.pages = QStackedWidget()
        outer.addWidget(self.pages, 1)

        # Page 1: folders.
        page = QWidget()
        col = vbox(page, spacing=12)
        head = QHBoxLayout()
        logo = QLabel()
        logo.setPixmap(icons.get("app", QIcon()).pixmap(56, 56))
        head.addWidget(logo)
        head.addSpacing(8)
        head.addWidget(label("Welcome to ClipPhotos", "dialogTitle"), 1)
        col.addLayout(head)
        col.addWidget(label("Find any photo by describing it: “birthday cake”, “snowy mountains”, "
                             "“the red car”. ClipPhotos looks at your pictures on this computer; "
                             "nothing is uploaded.", "dialogBody"))
        col.addSpacing(8)
        col.addWidget(label("Which folders hold your photos?", "sectionTitle"))
        self.folder_list = QListWidget()
        self.folder_list.setObjectName("folderList")
        col.addWidget(self.folder_list, 1)
        row = QHBoxLayout()
        add = QPushButton(icons.get("plus", QIcon()), "Add folder…")
        add.clicked.connect(self._add_folder)
        self.remove = QPushButton("Remove")
        self.remove.clicked.connect(lambda: self.folder_list.takeItem(self.folder_list.currentRow()))
        row.addWidget(add)
        row.addWidget(self.remove)
        row.addStretch(1)
        col.addLayout(row)
        col.addWidget(label("Subfolders are included. You can add or remove folders later.", "note"))
        self.pages.addWidget(page)

        # Page 2: model.
        page = QWidget()
        col = vbox(page, spacing=12)
        col.addWidget(label("Choose a model", "dialogTitle"))
        col.addWidget(label("ClipPhotos understands your photos with a model that runs on this computer. "
                             "It is downloaded once; you can change it later in Settings.", "dialogBody"))
        self.picker = ModelPicker(runner, fixed=fixed)
        col.addWidget(self.picker)
        col.addStretch(1)
        self.pages.addWidget(page)

        buttons = QHBoxLayout()
        self.back = QPushButton("Back")
        self.back.clicked.connect(lambda: self._go(0))
        self.skip = QPushButton("Not now")
        self.skip.setObjectName("flatButton")
        self.skip.clicked.connect(self.reject)
        self.next = QPushButton("Next")
        self.next.setObjectName("primaryButton")
        self.next.setDefault(True)
        self.next.clicked.connect(self._next)
        buttons.addWidget(self.skip)
        buttons.addStretch(1)
        buttons.addWidget(self.back)
        buttons.addWidget(self.next)
        outer.addLayout(buttons)
        self.folder_list.model().rowsInserted.connect(self._update)
        self.folder_list.model().rowsRemoved.connect(self._update)
        self.picker.busyChanged.connect(lambda _b: self._update())
        pictures = Path.home() / "Pictures"
        if pictures.is_dir():
            self.folder_list.addItem(str(pictures))
        self._go(0)

    @property
    def folders(self) -> list[str]:
        return [self.folder_list.item(i).text() for i in range(self.folder_list.count())]

    def add_folder(self, path: str) -> None:
        path = os.path.abspath(path)
        if path not in self.folders:
            self.folder_list.addItem(path)

    def _add_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a folder of photos", str(Path.home()))
        if path:
            self.add_folder(path)

    def _go(self, page: int) -> None:
        self.pages.setCurrentIndex(page)
        self._update()

    def _update(self, *args: object) -> None:
        on_folders = self.pages.currentIndex() == 0
        self.back.setVisible(not on_folders)
        self.remove.setEnabled(self.folder_list.count() > 0)
        if on_folders:
            self.next.setText("Next")
            self.next.setEnabled(self.folder_list.count() > 0)
        else:
            self.next.setText("Download and start" if self.picker.needs_download() else "Start")
            self.next.setEnabled(not self.picker.busy)
            self.back.setEnabled(not self.picker.busy)

    def _next(self) -> None:
        if self.pages.currentIndex() == 0:
            self._go(1)
            return
        self.picker.prepare(self._ready)

    def _ready(self, request: ModelRequest) -> None:
        self.model = request
        self.accept()

    def reject(self) -> None:
        self.picker.cancel()
        super().reject()
