#!/usr/bin/env python3
"""Render the app icon (clipphotos.svg) to the PNG sizes desktops and installers ask for.

    python resources/make_icons.py        # writes resources/icons/app/clipphotos-<size>.png
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def main() -> int:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    here = Path(__file__).resolve().parent
    app = QGuiApplication(sys.argv[:1])  # noqa: F841 - Qt's painting needs one
    renderer = QSvgRenderer(str(here / "clipphotos.svg"))
    out = here / "icons" / "app"
    out.mkdir(parents=True, exist_ok=True)
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        image.save(str(out / f"clipphotos-{size}.png"))
    print(f"wrote {len(SIZES)} PNGs to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
