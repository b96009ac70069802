"""`clipphotos` with no command: the desktop app.

Only PySide6 and the GUI's own light modules load before the window shows; the core (and
with it torch and open_clip) is imported by the worker that opens the library.
"""
from __future__ import annotations

import os
import sys
import time
from argparse import Namespace

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from clipphotos.gui import theme
from clipphotos.gui.main_window import AppOptions, MainWindow
from clipphotos.model_choices import ModelRequest


def options_from_args(args: Namespace) -> AppOptions:
    """The command line's --library/--model/--pretrained/--weights/--device/--precision as app options."""
    model = ModelRequest.from_options(*(getattr(args, k, None) for k in ("model", "pretrained", "weights")))
    return AppOptions(getattr(args, "library", None), model, getattr(args, "device", None),
                      getattr(args, "precision", None))


def run_app(args: Namespace) -> int:
    """Show the main window and run the event loop; returns the exit code."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("ClipPhotos")
    app.setApplicationDisplayName("ClipPhotos")
    app.setOrganizationName("ClipPhotos")
    app.setDesktopFileName("clipphotos")
    theme.apply(app)
    app.setWindowIcon(theme.app_icon())
    window = MainWindow(options_from_args(args))
    window.show()
    if os.environ.get("CLIPPHOTOS_EXIT_WHEN_SHOWN"):
        # For bench/time_to_window.py: say when the first frame is up (wall clock), then quit.
        def shown() -> None:
            print(f"window shown at {time.time():.6f}", file=sys.stderr, flush=True)
            window.close()
            app.quit()
        QTimer.singleShot(0, shown)
    return app.exec()
