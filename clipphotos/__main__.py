"""`python -m clipphotos`, and the entry point of a frozen (PyInstaller) app."""
import multiprocessing

if __name__ == "__main__":
    # In a frozen app a RAW decoding worker (clipphotos.raw) is the app started again: this
    # runs the worker and exits, before the app's heavy imports. Elsewhere it does nothing.
    multiprocessing.freeze_support()
    from clipphotos.cli import main

    raise SystemExit(main())
