"""PyInstaller runtime hook: give a windowed app somewhere to write.

A windowed executable (clipphotosw.exe on Windows, the .app on macOS when opened from the
Finder) starts with sys.stdout and sys.stderr set to None; messages, warnings and the model
download's progress bar would then raise. They go nowhere instead.
"""
import os
import sys

for _name in ("stdout", "stderr"):
    if getattr(sys, _name) is None:
        setattr(sys, _name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115 - lives as long as the app
