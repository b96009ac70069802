"""The Duplicates view on real widgets (offscreen) and a real library of drawn shapes."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import clipphotos.gui  # noqa: F401 - first: keeps None/True/False alive under PySide6 6.12 on Python < 3.12
import pytest
from PIL import Image

from clipphotos.gui.duplicates_view import DuplicatesView
from conftest import shapes_spec


@pytest.fixture
def dup_library(tmp_path: Path):
    """8 shapes, a byte-identical copy of one and a resized JPEG copy of another, indexed."""
    from clipphotos.library import Library
    from clipphotos.shapes import write_library
    folder = tmp_path / "photos"
    truth = write_library(folder, 8, seed=20261130)
    first, second = folder / truth[0]["path"], folder / truth[1]["path"]
    (folder / "Backup").mkdir()
    exact = folder / "Backup" / first.name
    shutil.copy2(first, exact)
    with Image.open(second) as im:
        small = im.convert("RGB").resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS)
    near = folder / "Backup" / (second.stem + "-small.jpg")
    small.save(near, quality=85)
    lib = Library(tmp_path / "library", model=shapes_spec())
    lib.index_folders([folder])
    yield lib, {"exact": (str(first.resolve()), str(exact.resolve())),
                "near": (str(second.resolve()), str(near.resolve()))}
    lib.close()


def open_view(qtbot, lib) -> DuplicatesView:
    view = DuplicatesView()
    qtbot.addWidget(view)
    view.set_library(lib)
    with qtbot.waitSignal(view.groupsShown, timeout=30_000):
        view.show()
        assert view.status.text() == "Looking for duplicates…"
    return view


def group_of(view: DuplicatesView, tier: str, paths: tuple[str, str]) -> str:
    keys = [k for k in view.group_keys(tier) if set(paths) <= set(view.groups[k].paths)]
    assert keys, (tier, paths, {k: g.paths for k, g in view.groups.items()})
    return keys[0]


def test_view_lists_exact_and_near_groups_and_trashes_the_others(qtbot, dup_library, tmp_trash, monkeypatch):
    lib, made = dup_library
    view = open_view(qtbot, lib)
    exact = group_of(view, "exact", made["exact"])
    near = group_of(view, "near", made["near"])
    assert {view.tree.topLevelItem(i).text(0).split(" (")[0] for i in range(view.tree.topLevelItemCount())} >= \
        {"Exact copies", "Near-duplicates"}

    view.select_group(near)
    assert view.current.key == near and len(view.cards) == 2
    assert view.trash_button.isVisible()
    keep, other = view.cards
    assert keep.kept and not other.kept and keep.file.path == made["near"][0]   # the bigger original
    qtbot.waitUntil(lambda: all(c.thumb.pixmap() is not None and not c.thumb.pixmap().isNull()
                                for c in view.cards), timeout=20_000)

    asked: list[list[str]] = []
    monkeypatch.setattr(DuplicatesView, "confirm_trash", lambda self, paths: asked.append(paths) or True)
    with qtbot.waitSignal(view.actionFinished, timeout=30_000) as done:
        view.trash_button.click()
    assert asked == [[made["near"][1]]]
    assert done.args[0].moved == [(made["near"][1], "trash")]
    assert not os.path.exists(made["near"][1]) and os.path.exists(made["near"][0])
    assert (tmp_trash / "files" / os.path.basename(made["near"][1])).is_file()
    assert lib.catalog.photo_by_path(made["near"][1]) is None
    assert near not in view.groups and exact in view.groups

    view.select_group(exact)
    with qtbot.waitSignal(view.actionFinished, timeout=30_000):
        view.not_button.click()
    assert exact not in view.group_keys()
    with qtbot.waitSignal(view.groupsShown, timeout=30_000):
        view.refresh()
    assert not any(set(made["exact"]) <= set(g.paths) for g in view.groups.values())
    assert all(os.path.exists(p) for p in made["exact"])


def test_sidebar_duplicates_row_switches_views_and_survives_a_status_refresh(qtbot):
    from clipphotos.gui.sidebar import Sidebar
    bar = Sidebar({})
    qtbot.addWidget(bar)
    folders: list[object] = []
    bar.folderSelected.connect(folders.append)
    with qtbot.waitSignal(bar.duplicatesSelected, timeout=1000):
        bar.tree.setCurrentItem(bar.duplicates_item)
    assert bar.selected_folder() is None and folders == []
    bar.set_folders([{"path": "/photos/a", "photos": 3}], 3)       # a status refresh keeps the view
    assert bar.duplicates_item.isSelected() and folders == []
    bar.tree.setCurrentItem(bar.all_item)
    assert folders == [None]
