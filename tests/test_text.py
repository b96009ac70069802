"""Words in photos: read with the real rapidocr models, stored in the real catalog, found by search."""
from __future__ import annotations

import os
import random
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from clipphotos.catalog import MIGRATIONS, Catalog, _statements
from clipphotos.library import Library
from clipphotos.shapes import draw_shape
from clipphotos.text_pass import TextPass
from clipphotos.text_search import highlight_spans, query_terms
from clipphotos.watcher import WatchEngine, WatchSettings
from conftest import MODEL_ARGS, shapes_spec, sql

NOTE = ("WiFi password: sunflower42", "Kitchen shelf 3")


def draw_note(lines: tuple[str, ...] = NOTE, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A note on paper-coloured ground, as a phone photographs it."""
    note = Image.new("RGB", size, (246, 240, 226))
    draw = ImageDraw.Draw(note)
    font = ImageFont.load_default(size=36)
    for n, line in enumerate(lines):
        draw.text((32, 110 + 120 * n), line, fill=(25, 25, 40), font=font)
    return note


def write_folder(folder: Path, shapes: int = 3) -> dict[str, Path]:
    """The note upright and turned by 90°, and a few shape pictures that hold no text."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"note": folder / "note.jpg", "turned": folder / "turned note.png"}
    draw_note().save(files["note"], quality=92)
    draw_note().rotate(90, expand=True).save(files["turned"])
    rng = random.Random(7)
    for n, (colour, shape) in enumerate([("red", "circle"), ("blue", "square"), ("green", "star")][:shapes]):
        files[f"shape{n}"] = folder / f"IMG_{n:04d}.jpg"
        draw_shape(rng, colour, shape, (480, 360)).save(files[f"shape{n}"])
    return files


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> tuple[Path, Path, dict[str, Path]]:
    """A library indexed (vectors and text) from the command line: (library, folder, files)."""
    from clipphotos.cli import main
    root = tmp_path_factory.mktemp("text")
    files = write_folder(root / "photos")
    assert main(["index", str(root / "photos"), "--library", str(root / "lib"), *MODEL_ARGS]) == 0
    return root / "lib", root / "photos", files


def test_the_note_is_found_first_by_search_and_by_its_text(indexed, cli):
    lib, _, files = indexed
    found = cli("search", "sunflower42", "--library", lib, "--json").json["results"]
    assert found[0]["path"] in (str(files["note"]), str(files["turned"]))
    assert {found[0]["path"], found[1]["path"]} == {str(files["note"]), str(files["turned"])}
    assert found[0]["text"] == ["WiFi password: sunflower42"]
    assert all(r["text"] == [] for r in found[2:])          # the shapes are there on CLIP's word alone
    text_only = cli("search", "--text", "sunflower42", "--library", lib, "--json").json["results"]
    assert sorted(r["path"] for r in text_only) == sorted([str(files["note"]), str(files["turned"])])
    human = cli("search", "--text", "SUNFLOWER", "--library", lib)
    assert "WiFi password: sunflower42" in human.out


def test_text_is_read_upright_and_turned_with_its_boxes(indexed):
    lib_dir, _, files = indexed
    with Library(lib_dir) as lib:
        upright = lib.photo_text(files["note"])
        turned = lib.photo_text(files["turned"])
        assert [line.text for line in upright] == list(NOTE)
        assert sorted(line.text for line in turned) == sorted(NOTE)
        assert lib.photo_text(files["shape0"]) == []
        assert lib.text_left() == 0
        (x0, y0), (x1, _), _, (_, y3) = upright[0].box
        assert 0.0 <= x0 < 0.2 and 0.5 < x1 <= 1.0 and 0.15 < y0 < y3 < 0.45   # the first line, top left
        (tx0, ty0), (tx1, _), _, (_, ty3) = next(line for line in turned if "sunflower" in line.text).box
        assert ty3 - ty0 > 3 * (tx1 - tx0)                    # turned: a tall box


def test_phrases_must_match_as_written(indexed):
    with Library(indexed[0]) as lib:
        assert len(lib.search_text('"wifi password"')) == 2
        assert lib.search_text('"password wifi"') == []
        halves = lib.search_text("password elephant")
        assert len(halves) == 2 and all(r.score == 0.5 for r in halves)


def test_substrings_case_and_accents_aside(tmp_path):
    with Library(tmp_path / "lib", model=shapes_spec()) as lib:
        folder = tmp_path / "photos"
        write_folder(folder, shapes=1)
        lib.index_folders([folder], read_text=False)
        photo = lib.catalog.photo_by_path(folder / "IMG_0000.jpg")
        from clipphotos.text_reader import fold
        lib.catalog.put_text(photo.content_id, [(t, fold(t), 0.99, "[[0,0],[1,0],[1,1],[0,1]]")
                                                for t in ("Crème BRÛLÉE 12,50 €", "Straße")], "test")
        for query in ("brulee", "CRÈME", "creme brul", "RULE", "strasse", "straße"):
            assert [r.path for r in lib.search_text(query)] == [str(folder / "IMG_0000.jpg")], query
        assert lib.search_text("crème caramel")[0].score == 0.5
        assert lib.search_text("tiramisu") == []
    assert query_terms('Crème "Brûlée 12" of a') == ["brulee 12", "creme"]
    assert highlight_spans("Crème BRÛLÉE", ["brulee"]) == [(6, 12)]


def test_the_text_pass_resumes_where_it_stopped_and_can_be_left_out(tmp_path, cli):
    folder, lib_dir = tmp_path / "photos", tmp_path / "lib"
    files = write_folder(folder)
    report = cli("index", folder, "--library", lib_dir, "--no-text", "--json", *MODEL_ARGS).json
    assert report["embedded"] == 5 and report["text"] is None
    from clipphotos.cli import parse_args
    assert parse_args(["watch", "--no-text"]).read_text is False and parse_args(["watch"]).read_text is None
    assert cli("search", "--text", "sunflower42", "--library", lib_dir, "--json").json["results"] == []
    assert cli("status", "--library", lib_dir, "--json").json["text"] == {"enabled": True, "read": 0,
                                                                         "with_text": 0, "left": 5}
    with Library(lib_dir) as lib:
        assert lib.text_left() == 5
        interrupted = TextPass(lib.catalog, lib.thumbnails)
        seen = []
        interrupted.should_yield = lambda: len(seen) >= 2
        report = interrupted.run(lambda p: seen.append(p.done) if p.phase == "reading text" and p.done else None)
        assert report.stopped and report.read == 2 and report.left == 3
        first = dict(sql(lib, "SELECT content_id, read_at FROM text_read"))
        assert len(first) == 2
        again = lib.index_folders(read_text=True)
        assert again.text.read == 3 and again.text.left == 0
        assert {k: v for k, v in sql(lib, "SELECT content_id, read_at FROM text_read")
                if k in first} == first                      # what was read is not read again
        assert [r.path for r in lib.search_text("sunflower42")] != []
        lib.set_text_enabled(False)
    with Library(lib_dir) as reopened:
        assert not reopened.text_enabled
    # A move keeps the text, as it keeps the vector: nothing is read again.
    moved = folder / "moved" / "renamed note.jpg"
    moved.parent.mkdir()
    shutil.move(files["note"], moved)
    report = cli("index", "--library", lib_dir, "--json").json
    assert report["moved"] == 1 and report["text"] is None      # switched off in the settings
    with Library(lib_dir) as lib:
        assert str(moved) in [r.path for r in lib.search_text("sunflower42")]
        assert [line.text for line in lib.photo_text(moved)] == list(NOTE)


def test_a_catalog_from_before_text_gains_the_text_tables(tmp_path):
    path = tmp_path / "catalog.sqlite3"
    before = next(n for n, script in enumerate(MIGRATIONS) if "text_lines" in script)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA foreign_keys=ON")
    db.create_function("clipphotos_shot_key", 1, lambda p: p)
    for script in MIGRATIONS[:before]:
        for statement in _statements(script):
            db.execute(statement)
    db.execute(f"PRAGMA user_version={before}")
    db.execute("INSERT INTO contents(hash, size) VALUES ('abc', 1)")
    db.close()
    catalog = Catalog(path)
    try:
        assert sql(catalog, "PRAGMA user_version")[0][0] == len(MIGRATIONS) > before
        cid = sql(catalog, "SELECT id FROM contents")[0][0]
        catalog.put_text(cid, [("Hello", "hello", 0.9, "[]")], "test")
        assert catalog.contents_with_text("ell") == {cid: ["Hello"]}
        with catalog.transaction() as tx:
            tx.execute("DELETE FROM contents")        # a content that leaves takes its text along
        assert catalog.contents_with_text("ell") == {}
        assert sql(catalog, "SELECT count(*) FROM text_read")[0][0] == 0
    finally:
        catalog.close()


def test_the_watcher_reads_text_when_nothing_else_waits(tmp_path):
    folder = tmp_path / "photos"
    write_folder(folder, shapes=1)
    settings = WatchSettings(stability_seconds=0.3, debounce_seconds=0.1, poll_seconds=0.5, retry_seconds=0.3,
                             tick_seconds=0.05, publish_seconds=0.2, events=False)
    with Library(tmp_path / "lib", model=shapes_spec()) as lib:
        lib.add_folder(folder)
        phases = []
        engine = WatchEngine(lib, settings, on_progress=lambda p: phases.append(p.phase))
        engine.start()
        try:
            assert engine.wait_idle(300)
        finally:
            engine.stop()
        assert engine.error is None
        assert lib.text_left() == 0 and engine.totals.text.read == 3
        assert phases.index("reading text") > phases.index("done")     # after the first indexing run
        assert [r.path for r in lib.search_text("kitchen")] != []


def test_the_app_finds_the_note_and_shows_its_text_with_the_words_marked(qtbot, indexed):
    import clipphotos.gui  # noqa: F401 - first, as in test_gui
    from PySide6.QtCore import Qt
    from clipphotos.gui.main_window import AppOptions, MainWindow
    from clipphotos.model_choices import ModelRequest
    from conftest import SHAPES_CONFIG, SHAPES_WEIGHTS
    lib_dir, _, files = indexed
    brisk = WatchSettings(stability_seconds=0.2, debounce_seconds=0.1, tick_seconds=0.05, save_seconds=1.0,
                          publish_seconds=0.2, retry_seconds=0.5)
    window = MainWindow(AppOptions(str(lib_dir), ModelRequest(str(SHAPES_CONFIG), None, str(SHAPES_WEIGHTS)), "cpu",
                                   welcome=False, watch=brisk))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.model_state == "ready", timeout=90_000)
    window.search.field.setFocus()
    qtbot.keyClicks(window.search.field, "sunflower42")
    qtbot.waitUntil(lambda: window.header_title.text() == "Best matches for “sunflower42”", timeout=30_000)
    first = window.model.photos()[0].path
    assert first in (str(files["note"]), str(files["turned"]))
    window.activateWindow()
    window.grid.setFocus()
    window.grid.setCurrentIndex(window.model.index(0))
    section = window.preview.text
    qtbot.waitUntil(lambda: section.isVisible() and bool(section.lines), timeout=10_000)
    assert "WiFi password: sunflower42" in section.plain_text()
    assert "sunflower42</span>" in section.text.text()                    # the word is marked in the text…
    assert len(window.preview.image.marks) == 1                          # …and on the photo
    assert section.text.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse
    window.grid.setCurrentIndex(window.model.index(window.model.rowCount() - 1))   # a shape: no text
    qtbot.waitUntil(lambda: not section.isVisible() and not window.preview.image.marks, timeout=10_000)


def test_pictures_that_differ_only_in_their_text_are_not_near_duplicates(tmp_path):
    from clipphotos.duplicates import find_duplicates
    from clipphotos.text_reader import fold
    folder = tmp_path / "screens"
    folder.mkdir()
    draw_note(("Order 1234 total 19.90",)).save(folder / "a.png")
    draw_note(("Order 1234 total 19.90",)).save(folder / "b.jpg", quality=80)   # the same, saved again
    with Library(tmp_path / "lib", model=shapes_spec()) as lib:
        lib.index_folders([folder], read_text=False)
        def near() -> list[list[str]]:
            return [sorted(os.path.basename(p) for p in g.paths) for g in find_duplicates(lib.catalog, ["near"])]
        assert near() == [["a.png", "b.jpg"]]
        a, b = (lib.catalog.photo_by_path(folder / name).content_id for name in ("a.png", "b.jpg"))
        lib.catalog.put_text(a, [("Order 1234 total 19.90", fold("Order 1234 total 19.90"), 0.99, "[]")], "test")
        lib.catalog.put_text(b, [("Order 1234 total l9.90", fold("Order 1234 total l9.90"), 0.9, "[]")], "test")
        assert near() == [["a.png", "b.jpg"]]            # one misread word of four: still one picture
        lib.catalog.put_text(b, [("Invoice 5678 due 42.00", fold("Invoice 5678 due 42.00"), 0.99, "[]")], "test")
        assert near() == []                              # same look, other words: two documents
