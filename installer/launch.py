"""The frozen app's entry script (PyInstaller runs this file as `__main__`).

The same as `python -m clipphotos` (clipphotos/__main__.py), kept outside the package so that
PyInstaller does not put the package's own folder on its search path (which would make
`models`, `tags`, `library`, ... importable as top-level modules during the analysis).

freeze_support() must come first: a RAW decoding worker (clipphotos.raw, started with
'spawn') is this executable started again with `--multiprocessing-fork`; PyInstaller's
multiprocessing hook makes freeze_support() run the worker there and exit, on every platform,
before the app's heavy imports.
"""
import multiprocessing

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from clipphotos.cli import main

    raise SystemExit(main())
