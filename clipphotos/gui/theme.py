"""The app's look: icons and the light style sheet from `resources/`, and a calm light palette."""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication


def resources_dir() -> Path | None:
    """`resources/` beside the package (a source checkout) or inside it (an installed copy)."""
    here = Path(__file__).resolve().parent
    env = os.environ.get("CLIPPHOTOS_RESOURCES")
    for candidate in ([Path(env)] if env else []) + [here.parents[1] / "resources", here.parent / "resources"]:
        if (candidate / "style.qss").is_file():
            return candidate
    return None


def app_icon() -> QIcon:
    icon = QIcon()
    res = resources_dir()
    if res is None:
        return icon
    for png in sorted((res / "icons" / "app").glob("clipphotos-*.png")):
        icon.addFile(str(png))
    if (res / "clipphotos.svg").is_file():
        icon.addFile(str(res / "clipphotos.svg"))
    return icon


def icons() -> dict[str, QIcon]:
    """The UI's stroke icons by name (search, filter, folder, ...); empty where none are found."""
    res = resources_dir()
    found: dict[str, QIcon] = {"app": app_icon()}
    if res is not None:
        for svg in (res / "icons").glob("*.svg"):
            found[svg.stem] = QIcon(str(svg))
    return found


def apply(app: QApplication) -> None:
    """Fusion with a light palette (the same calm look everywhere), then resources/style.qss."""
    app.setStyle("Fusion")
    pal = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#f6f7f9", QPalette.ColorRole.WindowText: "#1f2329",
        QPalette.ColorRole.Base: "#ffffff", QPalette.ColorRole.AlternateBase: "#f3f4f6",
        QPalette.ColorRole.Text: "#1f2329", QPalette.ColorRole.Button: "#ffffff",
        QPalette.ColorRole.ButtonText: "#1f2329", QPalette.ColorRole.Highlight: "#2f6fde",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#2b2f36",
        QPalette.ColorRole.ToolTipText: "#f4f5f7", QPalette.ColorRole.PlaceholderText: "#8a8f98",
        QPalette.ColorRole.Link: "#2f6fde", QPalette.ColorRole.Mid: "#d9dce1",
    }
    for role, colour in colours.items():
        pal.setColor(role, QColor(colour))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#a4a9b1"))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor("#a4a9b1"))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#a4a9b1"))
    app.setPalette(pal)
    res = resources_dir()
    if res is not None:
        app.setStyleSheet((res / "style.qss").read_text(encoding="utf-8"))
