"""A photo folder with known duplicates, from the project's own drawn shapes (no ../shared needed).

The one place tests and bench/screenshots.py make a library to clean up: swap its body for a
camera-like generator and every caller follows.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from PIL import Image

from clipphotos.shapes import write_library


def make_duplicate_library(folder: Path, originals: int = 12, exact: int = 4, near: int = 3,
                           seed: int = 20261201) -> dict[str, list[tuple[str, ...]]]:
    """Draw `originals` pictures into Camera/, then copies: byte-identical ones in Backup/ (the first also in
    Downloads/, a group of three) and resized JPEG copies in Downloads/.

    Returns {"exact": [(original, copy, …), …], "near": [(original, copy), …]} as resolved paths.
    """
    folder = Path(folder)
    drawn, camera = folder / ".drawn", folder / "Camera"
    truth = write_library(drawn, originals, seed=seed, formats=("jpg",), long_side=(640, 1200))
    backup, downloads = folder / "Backup", folder / "Downloads"
    for place in (camera, backup, downloads):
        place.mkdir(parents=True, exist_ok=True)
    pictures = []
    for n, record in enumerate(truth, start=1):      # originals named as a camera names them
        pictures.append((camera / f"IMG_{n:04d}.jpg").resolve())
        os.replace(drawn / record["path"], pictures[-1])
    shutil.rmtree(drawn)
    made: dict[str, list[tuple[str, ...]]] = {"exact": [], "near": []}
    for n, original in enumerate(pictures[:exact]):
        copies = [backup / original.name] + ([downloads / original.name] if n == 0 else [])
        for copy in copies:
            shutil.copy2(original, copy)
        made["exact"].append((str(original), *(str(c.resolve()) for c in copies)))
    for original in pictures[exact:exact + near]:
        with Image.open(original) as im:
            small = im.convert("RGB").resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS)
        copy = downloads / f"{original.stem}-small.jpg"
        small.save(copy, quality=80)
        made["near"].append((str(original), str(copy.resolve())))
    return made
