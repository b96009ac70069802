"""`kill -9` at any moment, then run again: nothing lost, nothing duplicated."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from clipphotos.library import Library
from conftest import MODEL_ARGS, REPO, sql


def photo_rows(lib: Path) -> int:
    db = lib / "catalog.sqlite3"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT count(*) FROM photos").fetchone()[0]
    except sqlite3.OperationalError:  # schema not created yet
        return 0


def index_command(folder: Path, lib: Path) -> list[str]:
    return [sys.executable, "-m", "clipphotos", "index", str(folder), "--library", str(lib), *MODEL_ARGS,
            "--workers", "1", "--json"]


def snapshot(lib: Path) -> dict[str, tuple[str, np.ndarray]]:
    """path → (content hash, vector) of everything the library holds."""
    with Library(lib) as library:
        rows = sql(library, 
            "SELECT p.path, c.hash, v.vec FROM photos p JOIN contents c ON c.id=p.content_id "
            "JOIN vectors v ON v.content_id=c.id")
        assert len(library.index) == sql(library, "SELECT count(*) FROM contents")[0][0]
        assert sql(library, "SELECT count(*) FROM contents c WHERE NOT EXISTS "
                                     "(SELECT 1 FROM vectors v WHERE v.content_id=c.id)")[0][0] == 0
    return {bytes(p).decode(): (h, np.frombuffer(v, dtype=np.float16).astype(np.float32)) for p, h, v in rows}


def test_kill_during_indexing_then_resume(tmp_path):
    from clipphotos.shapes import write_library
    folder = tmp_path / "photos"
    total = len(write_library(folder, 120, seed=11))
    env = dict(os.environ, PYTHONPATH=str(REPO))

    killed_lib = tmp_path / "killed"
    kills = 0
    for _ in range(3):  # kill it twice mid-run, then let it finish
        proc = subprocess.Popen(index_command(folder, killed_lib), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        start_rows = photo_rows(killed_lib)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline and kills < 2:
            if photo_rows(killed_lib) > start_rows:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
                break
            time.sleep(0.01)
        if kills == 2 and proc.poll() is None:
            assert proc.wait(timeout=180) == 0
            break
        proc.wait()
    assert kills == 2, "the run finished before it could be killed; the test proves nothing"
    assert 0 < photo_rows(killed_lib) <= total

    clean_lib = tmp_path / "clean"
    subprocess.run(index_command(folder, clean_lib), env=env, check=True, capture_output=True)
    killed, clean = snapshot(killed_lib), snapshot(clean_lib)
    assert len(killed) == len(clean) == total
    assert {p: h for p, (h, _) in killed.items()} == {p: h for p, (h, _) in clean.items()}
    worst = min(float(killed[p][1] @ clean[p][1]) / float(np.linalg.norm(killed[p][1]) * np.linalg.norm(clean[p][1]))
                for p in clean)
    assert worst > 0.999


def test_damaged_index_is_rebuilt(tmp_path, cli):
    from clipphotos.shapes import write_library
    folder = tmp_path / "photos"
    write_library(folder, 12, seed=12)
    lib = tmp_path / "lib"
    assert cli("index", folder, "--library", lib, *MODEL_ARGS).code == 0
    before = cli("search", "a blue star", "--library", lib, "--json").json["results"]
    (index_file,) = (lib / "index").glob("*.hnsw")
    index_file.write_bytes(b"\xff" * 64 + index_file.read_bytes()[64:])  # a ruined header
    after = cli("search", "a blue star", "--library", lib, "--json").json["results"]
    assert [r["path"] for r in after] == [r["path"] for r in before]
    index_file.write_bytes(b"")  # even an empty file
    assert cli("search", "a blue star", "--library", lib, "--json").json["results"]
