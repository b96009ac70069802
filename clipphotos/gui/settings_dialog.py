"""Settings: model, device, precision, thumbnail size, reading the words in photos, excluded folders.

The dialog only edits an `AppSettings` value; the main window stores it in the catalog's
settings table (through `Library`) and reloads what changed.
"""
from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QFileDialog, QFormLayout, QFrame, QHBoxLayout,
                               QListWidget, QPushButton, QScrollArea, QWidget)

from clipphotos.gui.library_jobs import AppSettings
from clipphotos.model_choices import ModelRequest
from clipphotos.gui.welcome import ModelPicker
from clipphotos.gui.widgets import label, vbox
from clipphotos.gui.workers import Runner

THUMBNAIL_SIZES = (("Small", 128), ("Medium", 176), ("Large", 224), ("Extra large", 288))
GPU = "mps" if sys.platform == "darwin" else "cuda"
DEVICES = (("Automatic (a GPU if there is one)", "auto"), ("CPU only", "cpu"), ("GPU", GPU))
PRECISIONS = (("Automatic (fastest that keeps results right)", "auto"), ("fp32 (full)", "fp32"),
              ("bf16 (through PyTorch; CPUs with native bf16)", "bf16"), ("fp16 (GPUs)", "fp16"),
              ("int8 (CPUs; slightly less exact)", "int8"))


class SettingsDialog(QDialog):
    def __init__(self, runner: Runner, current: AppSettings, fixed_model: ModelRequest | None = None,
                 speed_here: float | None = None, parent: QWidget | None = None) -> None:
        """`speed_here`: images/s the loaded model (the current one) measured on this computer."""
        super().__init__(parent)
        self.setObjectName("settings")
        self.setWindowTitle("Settings")
        self.current = current
        self.result_settings: AppSettings | None = None
        # Everything but Cancel/Save scrolls: on a short screen the dialog stays within it.
        page = QWidget()
        page.setObjectName("settingsPage")
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(page)
        dialog = vbox(self, (0, 0, 0, 20), 8)
        dialog.addWidget(scroll, 1)
        outer = vbox(page, (28, 24, 28, 8), 14)
        outer.addWidget(label("Settings", "dialogTitle"))

        outer.addWidget(label("Model", "sectionTitle"))
        self.picker = ModelPicker(runner, current=current.model, fixed=fixed_model, speed_here=speed_here)
        outer.addWidget(self.picker)
        outer.addWidget(label("A new model re-indexes your photos in the background; search keeps working "
                              "meanwhile.", "note"))

        form = QFormLayout()
        form.setHorizontalSpacing(16)
        form.setVerticalSpacing(10)
        self.device = QComboBox()
        for text, _value in DEVICES:
            self.device.addItem(text)
        self.device.setCurrentIndex(next((i for i, (_l, v) in enumerate(DEVICES) if v == current.device), 0))
        form.addRow("Run the model on", self.device)
        self.precision = QComboBox()
        self.precision.setObjectName("precision")
        for text, _value in PRECISIONS:
            self.precision.addItem(text)
        self.precision.setCurrentIndex(next((i for i, (_l, v) in enumerate(PRECISIONS) if v == current.precision), 0))
        self.precision.setToolTip("Advanced: the number format the model computes in. Vectors agree across "
                                  "formats, so a library indexed in one is searched correctly in another.")
        form.addRow("Precision (advanced)", self.precision)
        self.thumbs = QComboBox()
        for text, px in THUMBNAIL_SIZES:
            self.thumbs.addItem(f"{text} ({px} px)")
        self.thumbs.setCurrentIndex(min(range(len(THUMBNAIL_SIZES)),
                                        key=lambda i: abs(THUMBNAIL_SIZES[i][1] - current.thumbnail_size)))
        form.addRow("Thumbnails", self.thumbs)
        outer.addLayout(form)
        self.read_text = QCheckBox("Read the words in photos, so search finds receipts, signs and notes")
        self.read_text.setChecked(current.read_text)
        outer.addWidget(self.read_text)

        outer.addWidget(label("Excluded folders", "sectionTitle"))
        outer.addWidget(label("Photos inside these folders are left out of the library (e.g. app caches, "
                              "exports).", "note"))
        self.excluded = QListWidget()
        self.excluded.setObjectName("folderList")
        self.excluded.addItems(list(current.excluded))
        self.excluded.setMinimumHeight(90)
        outer.addWidget(self.excluded, 1)
        row = QHBoxLayout()
        add = QPushButton("Add…")
        add.clicked.connect(self._add_excluded)
        remove = QPushButton("Remove")
        remove.clicked.connect(lambda: self.excluded.takeItem(self.excluded.currentRow()))
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        outer.addLayout(row)

        buttons = QHBoxLayout()
        buttons.setContentsMargins(28, 0, 28, 0)
        buttons.addStretch(1)
        cancel = QPushButton("Cancel")
        cancel.clicked.connect(self.reject)
        self.save = QPushButton("Save")
        self.save.setObjectName("primaryButton")
        self.save.setDefault(True)
        self.save.clicked.connect(self._save)
        buttons.addWidget(cancel)
        buttons.addWidget(self.save)
        dialog.addLayout(buttons)
        self.picker.busyChanged.connect(lambda busy: self.save.setEnabled(not busy))
        screen = (parent.screen() if parent is not None else self.screen()).availableGeometry()
        wanted = page.sizeHint().height() + self.save.sizeHint().height() + 28
        self.resize(600, min(wanted, screen.height() - 60))

    def add_excluded(self, path: str) -> None:
        if path and path not in self.settings().excluded:
            self.excluded.addItem(path)

    def _add_excluded(self) -> None:
        self.add_excluded(QFileDialog.getExistingDirectory(self, "Folder to leave out", str(Path.home())))

    def settings(self) -> AppSettings:
        return AppSettings(self.picker.request(), DEVICES[self.device.currentIndex()][1],
                           THUMBNAIL_SIZES[self.thumbs.currentIndex()][1],
                           tuple(self.excluded.item(i).text() for i in range(self.excluded.count())),
                           PRECISIONS[self.precision.currentIndex()][1], self.read_text.isChecked())

    def _save(self) -> None:
        self.picker.prepare(self._ready)

    def _ready(self, _request: ModelRequest) -> None:
        self.result_settings = self.settings()
        self.accept()

    def reject(self) -> None:
        self.picker.cancel()
        super().reject()
