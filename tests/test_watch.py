"""The watch engine: real watchdog observer, real files, real SQLite and hnswlib, the shapes model."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from clipphotos.indexer import Progress, content_hash
from clipphotos.library import Library
from clipphotos.loader import is_supported
from clipphotos.shapes import write_library
from clipphotos.watch_state import live_watcher
from clipphotos.watcher import POLLING, WatchEngine, WatchSettings, filesystem_type
from conftest import MODEL_ARGS, REPO, shapes_spec, sql

FAST = WatchSettings(stability_seconds=0.4, debounce_seconds=0.1, max_delay_seconds=2.0, poll_seconds=0.5,
                     publish_seconds=0.2, retry_seconds=0.3, tick_seconds=0.05)


# -- helpers ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> list[Path]:
    """240 small shape pictures, drawn once and copied into each test's folders."""
    root = tmp_path_factory.mktemp("pool")
    write_library(root, 240, seed=424242, long_side=(200, 400))
    return sorted(p for p in root.rglob("*") if p.is_file())


def fill(folder: Path, files: list[Path]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for n, f in enumerate(files):
        copies.append(folder / f"IMG_{n:04d}{f.suffix}")
        shutil.copyfile(f, copies[-1])
    return copies


def wait_for(condition: Callable[[], object], timeout: float = 60.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def catalog_paths(lib: Library) -> list[str]:
    return [os.fsdecode(p) for (p,) in sql(lib, "SELECT path FROM photos ORDER BY path")]


def pictures_under(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file() and is_supported(p.name))


def distinct_contents(files: list[str]) -> int:
    return len({hashlib.blake2b(Path(f).read_bytes(), digest_size=16).digest() for f in files})


def assert_consistent(lib: Library, folder: Path) -> None:
    """Every picture exactly once, one content row per distinct content, the index matching the catalog."""
    on_disk = pictures_under(folder)
    in_catalog = catalog_paths(lib)
    assert in_catalog == on_disk
    contents = sql(lib, "SELECT count(*) FROM contents")[0][0]
    assert contents == distinct_contents(on_disk)
    assert len(lib.index) == contents


@pytest.fixture
def watching(tmp_path):
    """Start a WatchEngine on a fresh library holding `photos`; stopped and closed afterwards."""
    engines: list[WatchEngine] = []

    def start(photos: Path, settings: WatchSettings = FAST, **callbacks) -> WatchEngine:
        lib = Library(tmp_path / "lib", model=shapes_spec(), workers=2)
        lib.add_folder(photos)
        engine = WatchEngine(lib, settings, **callbacks)
        engines.append(engine)
        engine.start()
        return engine

    yield start
    for engine in engines:
        engine.stop(timeout=60)
        engine.library.close()
        assert engine.error is None, engine.error


def idle(engine: WatchEngine) -> None:
    """Settled: events have had time to arrive (watchdog pairs moves for 0.5 s) and all are indexed."""
    time.sleep(0.7)
    assert engine.wait_idle(60), "the engine did not settle"


# -- tests ------------------------------------------------------------------------------------------


def test_photos_copied_in_while_indexing_are_each_indexed_once(tmp_path, watching, pool):
    photos, incoming = tmp_path / "photos", tmp_path / "incoming"
    fill(photos, pool[:40])
    fill(incoming, pool[40:])
    copier = threading.Thread(target=shutil.copytree, args=(incoming, photos / "import"))

    def copy_once_indexing(p: Progress) -> None:
        if p.phase == "indexing" and p.done and not copier.is_alive() and copier.ident is None:
            copier.start()

    engine = watching(photos, on_progress=copy_once_indexing)
    wait_for(lambda: copier.ident is not None, what="the first run to index")
    copier.join()
    expected = pictures_under(photos)
    assert len(expected) == 240
    wait_for(lambda: catalog_paths(engine.library) == expected, what="all 240 photos in the catalog")
    idle(engine)
    assert_consistent(engine.library, photos)
    assert engine.totals.embedded == distinct_contents(expected)  # nothing embedded twice
    assert not engine.library.catalog.skipped()


def test_a_slow_copy_is_indexed_once_complete(tmp_path, watching, pool):
    photos = tmp_path / "photos"
    photos.mkdir()
    engine = watching(photos, dataclasses.replace(FAST, stability_seconds=1.0))
    assert engine.wait_idle(60)
    data = max((f.read_bytes() for f in pool if f.suffix.lower() in (".jpg", ".jpeg")), key=len)
    target = photos / "DSC_0001.jpg"
    chunks = 10
    with open(target, "wb") as out:
        for n in range(chunks):  # two seconds, a pause never as long as the stability window
            out.write(data[n * len(data) // chunks:(n + 1) * len(data) // chunks])
            out.flush()
            time.sleep(0.2)
    wait_for(lambda: engine.library.catalog.photo_by_path(target) is not None, what="the slow copy")
    idle(engine)
    record = engine.library.catalog.photo_by_path(target)
    assert record is not None and record.size == len(data) and record.hash == content_hash(data)
    assert (engine.totals.indexed, engine.totals.embedded) == (1, 1)
    assert not engine.library.catalog.skipped()


def test_moving_a_folder_keeps_every_vector(tmp_path, watching, pool):
    photos = tmp_path / "photos"
    fill(photos / "2023" / "trip", pool[:50])
    (photos / "albums").mkdir()
    engine = watching(photos)
    idle(engine)
    lib = engine.library
    before = dataclasses.replace(engine.totals)
    ids = {r.hash: r.content_id for r in lib.catalog.iter_photos()}

    shutil.move(photos / "2023" / "trip", photos / "albums" / "trip")
    wait_for(lambda: engine.totals.moved - before.moved >= 50, what="the move")
    idle(engine)
    assert engine.totals.moved - before.moved == 50
    assert engine.totals.embedded == before.embedded  # nothing re-embedded
    assert engine.totals.removed == before.removed
    assert all(p.startswith(str(photos / "albums" / "trip")) for p in catalog_paths(lib))
    assert {r.hash: r.content_id for r in lib.catalog.iter_photos()} == ids
    assert_consistent(lib, photos)

    # Into another library folder, added while running: two watches, a delete and a create.
    other = tmp_path / "other"
    other.mkdir()
    engine.add_folder(other)
    wait_for(lambda: len(engine.state().watching) == 2, what="the second folder")
    idle(engine)
    shutil.move(photos / "albums" / "trip", other / "trip")
    wait_for(lambda: all(p.startswith(str(other)) for p in catalog_paths(lib)), what="the second move")
    idle(engine)
    assert engine.totals.embedded == before.embedded
    assert {r.hash: r.content_id for r in lib.catalog.iter_photos()} == ids
    assert len(catalog_paths(lib)) == 50

    engine.remove_folder(other)
    wait_for(lambda: not catalog_paths(lib), what="the folder's removal")
    # the engine forgets the photos, then stops watching the folder: the state follows a moment later
    wait_for(lambda: [w.folder for w in engine.state().watching] == [str(photos)], what="the watch's end")
    assert len(lib.index) == 0


def test_deleted_photos_leave_the_catalog_and_search(tmp_path, watching, pool):
    photos = tmp_path / "photos"
    files = fill(photos, pool[:30])
    engine = watching(photos)
    idle(engine)
    lib = engine.library
    found = {r.path for r in lib.search("a red circle", limit=100)}
    gone = [str(f) for f in files[:10]]
    assert set(gone) <= found
    for f in files[:10]:
        f.unlink()
    wait_for(lambda: len(catalog_paths(lib)) == 20, what="the deletions")
    idle(engine)
    assert not set(gone) & {r.path for r in lib.search("a red circle", limit=100)}
    assert not set(gone) & set(catalog_paths(lib))
    assert_consistent(lib, photos)


def test_photos_deleted_while_paused_leave_the_catalog_on_resume(tmp_path, watching, pool):
    """Paused, the engine queues what happens in its folders; resumed, it catches up."""
    photos = tmp_path / "photos"
    files = fill(photos, pool[:12])
    engine = watching(photos)
    idle(engine)
    lib = engine.library
    engine.pause()
    for f in files[:3]:
        f.unlink()
    time.sleep(1.0)
    assert len(catalog_paths(lib)) == 12                     # nothing done while paused
    engine.resume()
    wait_for(lambda: len(catalog_paths(lib)) == 9, what="the deletions, on resume")
    idle(engine)
    assert_consistent(lib, photos)


def photo_rows(lib: Path) -> int:
    try:
        with sqlite3.connect(f"file:{lib / 'catalog.sqlite3'}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT count(*) FROM photos").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_a_watcher_killed_mid_run_resumes_exactly(tmp_path, watching, pool):
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    fill(photos, pool[:160])
    watcher = subprocess.Popen(
        [sys.executable, "-m", "clipphotos", "watch", str(photos), "--library", str(lib), *MODEL_ARGS,
         "--workers", "1", "--stability", "0.3"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: photo_rows(lib) > 0 or watcher.poll() is not None, timeout=120, what="the watcher to index")
        os.kill(watcher.pid, signal.SIGKILL)
    finally:
        watcher.kill()
        _, err = watcher.communicate()
    assert watcher.returncode == -signal.SIGKILL, err.decode()
    assert 0 < photo_rows(lib) < 160, "the kill should land in the middle of the run"
    with Library(lib) as dead:
        assert dead.status()["watching"] == [] and dead.status()["queued"] == 0  # its pid is gone
    fill(photos / "while-down", pool[160:170])

    engine = watching(photos)
    idle(engine)
    assert len(catalog_paths(engine.library)) == 170
    assert_consistent(engine.library, photos)


def test_a_damaged_index_file_is_rebuilt(tmp_path, watching, pool):
    photos = tmp_path / "photos"
    fill(photos, pool[:30])
    engine = watching(photos)
    idle(engine)
    engine.stop()  # saves the index
    engine.library.close()
    [index_file] = (tmp_path / "lib" / "index").glob("*.hnsw")
    with open(index_file, "r+b") as f:
        f.seek(0)
        f.write(os.urandom(64))
        f.seek(index_file.stat().st_size // 2)
        f.write(b"\0" * 4096)

    with Library(tmp_path / "lib") as lib:
        assert len(lib.search("a blue square", limit=50)) == 30
        assert_consistent(lib, photos)


def test_status_busy_index_and_pause(tmp_path, watching, pool, cli):
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    fill(photos, pool[:60])
    holding, release = threading.Event(), threading.Event()

    def hold_mid_run(p: Progress) -> None:
        if p.phase == "indexing" and p.done == 5 and not holding.is_set():
            holding.set()
            release.wait(60)  # the engine's thread waits here, inside the run, holding the writer lock

    engine = watching(photos, on_progress=hold_mid_run)
    wait_for(holding.is_set, what="the first run")
    status: dict = {}

    def published() -> bool:  # the state that says "indexing" (an earlier one may say only "watching")
        status.update(cli("status", "--library", lib, "--json").json)
        state = live_watcher(engine.library.catalog)
        return bool(status["watching"]) and state is not None and state["indexing"]
    wait_for(published, what="the published state")
    assert status["watching"] == [{"folder": str(photos), "mode": "events"}]
    assert status["queued"] > 0
    busy = cli("index", "--library", lib, *MODEL_ARGS)
    assert busy.code == 3 and "clipphotos watch" in busy.err

    engine.pause()
    release.set()
    wait_for(lambda: not engine.state().indexing, what="the paused run to end")
    assert cli("index", "--library", lib, *MODEL_ARGS).code == 0  # the lock is free while paused
    engine.resume()
    idle(engine)
    assert_consistent(engine.library, photos)
    assert engine.totals.embedded < 60  # the paused run's batches were kept, the rest found indexed
    wait_for(lambda: cli("status", "--library", lib, "--json").json["queued"] == 0, what="an empty queue")
    engine.stop()
    assert cli("status", "--library", lib, "--json").json["watching"] == []


def test_polling_without_events(tmp_path, watching, pool):
    photos = tmp_path / "photos"
    fill(photos, pool[:5])
    engine = watching(photos, dataclasses.replace(FAST, events=False))
    idle(engine)
    assert [w.mode for w in engine.state().watching] == [POLLING]
    shutil.copyfile(pool[5], photos / f"late{pool[5].suffix}")
    wait_for(lambda: len(catalog_paths(engine.library)) == 6, what="the poll to find the new photo")
    idle(engine)   # the run that committed it may still be adding its vector to the index
    assert_consistent(engine.library, photos)


def test_network_file_systems_are_recognised():
    mounts = ("/dev/sda1 / ext4 rw 0 0\n"
              "nas:/photos /mnt/nas nfs4 rw 0 0\n"
              "//box/share /mnt/my\\040share cifs rw 0 0\n")
    assert filesystem_type("/mnt/nas/2023/a.jpg", mounts) == "nfs4"
    assert filesystem_type("/mnt/my share/x", mounts) == "cifs"
    assert filesystem_type("/mnt/nasty", mounts) == "ext4"
    assert filesystem_type("/home/me", mounts) == "ext4"


def test_status_without_a_watcher_says_so(tmp_path):
    with Library(tmp_path / "lib") as lib:
        status = lib.status()
        assert (status["queued"], status["watching"]) == (0, [])
        lib.catalog.set_setting("watch.state", json.dumps(
            {"pid": os.getpid(), "host": os.uname().nodename, "heartbeat": time.time() - 3600, "queued": 9,
             "watching": [{"folder": "/x", "mode": "events"}]}))
        assert lib.status()["watching"] == []  # a stale heartbeat is a dead watcher
