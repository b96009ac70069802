"""Shared fixtures: the project's small shapes model, generated libraries, and the CLI in-process."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"  # tests never reach for the network
# Libraries made by tests share one folder of model exports (clipphotos.inference): the shapes
# model is exported and measured once per session, not once per library, and the folder goes
# with the session (each run would otherwise leave a third of a gigabyte in the temp folder).
# Tests of the export itself point it elsewhere.
_SESSION_MODEL_CACHE = None if "CLIPPHOTOS_MODEL_CACHE" in os.environ else tempfile.mkdtemp(prefix="clipphotos-models-")
if _SESSION_MODEL_CACHE is not None:
    os.environ["CLIPPHOTOS_MODEL_CACHE"] = _SESSION_MODEL_CACHE


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _SESSION_MODEL_CACHE is not None:
        shutil.rmtree(_SESSION_MODEL_CACHE, ignore_errors=True)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MAKE_LIBRARY = SHARED / "bench" / "make_library.py"
PILLOW_IMAGES = SHARED / "data" / "pillow-test-images"
SHAPES_DIR = REPO / "tests" / "fixtures" / "shapes-clip"
SHAPES_CONFIG = SHAPES_DIR / "config.json"
SHAPES_WEIGHTS = SHAPES_DIR / "shapes-clip.safetensors"
MODEL_ARGS = ["--model", str(SHAPES_CONFIG), "--weights", str(SHAPES_WEIGHTS)]


def sql(where, statement: str, params: tuple = ()) -> list[tuple]:
    """Run SQL on a library's catalog (a Library, a Catalog or its path) through a connection of
    the test's own: tests look at, or set up, the stored rows directly, while the app reaches
    them only through Catalog's methods."""
    import sqlite3
    from contextlib import closing
    path = getattr(getattr(where, "catalog", where), "path", where)
    with closing(sqlite3.connect(path, timeout=30)) as db:
        rows = db.execute(statement, params).fetchall()
        db.commit()
        return rows


def point_an_index_entry_nowhere(catalog: Path, index: str) -> None:
    """Damage that SQLite's quick check does not see: the last entry of a one-page index names a
    row that does not exist (the index stays in order). A query that follows it to its row fails
    with 'database disk image is malformed'."""
    import sqlite3
    with sqlite3.connect(catalog) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = con.execute("PRAGMA page_size").fetchone()[0]
        root = con.execute("SELECT rootpage FROM sqlite_master WHERE name=?", (index,)).fetchone()[0]
    data = bytearray(catalog.read_bytes())
    page = (root - 1) * page_size
    assert data[page] == 0x0A, "a leaf index page"
    cells = int.from_bytes(data[page + 3:page + 5], "big")
    cell = page + int.from_bytes(data[page + 8 + 2 * (cells - 1):page + 10 + 2 * (cells - 1)], "big")
    header = cell + 1                                  # after the payload size (one byte here)
    types = list(data[header + 1:header + data[header]])          # (key, row id): small integers
    sizes = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8, 8: 0, 9: 0}
    assert types[-1] == 1, "a row id stored in one byte"
    data[header + data[header] + sum(sizes[t] for t in types[:-1])] = 120   # the row id: no such row
    catalog.write_bytes(bytes(data))
    with sqlite3.connect(catalog) as con:
        assert con.execute("PRAGMA quick_check").fetchone()[0] == "ok"


def another_drive(inside: Path, how: str, request: pytest.FixtureRequest) -> Path:
    """A folder on another device than `inside`, reached at inside/"Card": a tmpfs mounted there
    (root only), or a followed link to a folder on another device (/dev/shm)."""
    card = inside / "Card"
    if how == "mount":
        card.mkdir(parents=True)
        if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(card)],
                                               capture_output=True).returncode != 0:
            pytest.skip("mounting a tmpfs needs root (the followed-link case covers the rule)")
        return card
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == inside.stat().st_dev:
        pytest.skip("no folder on another device to link to")
    elsewhere = Path(tempfile.mkdtemp(prefix="clipphotos-card-", dir=shm))
    request.addfinalizer(lambda: [shutil.rmtree(p, ignore_errors=True) for p in (elsewhere, Path(f"{elsewhere}-away"))])
    card.symlink_to(elsewhere)
    return card


def needs_shared(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared test data lies beside the repo only in this "
                    f"workplace and CI (../shared)")


# The precisions every model-level test runs in, whatever this CPU would choose by itself: a CPU
# without native bf16 still runs the bf16 path (slowly, so those cases stay small).
PRECISIONS = ("fp32", "bf16")
# How close (cosine) two vectors of one input must be when only the arithmetic differs: fp32
# rounding, or half precision's shorter mantissa.
AGREEMENT = {"fp32": 0.99999, "bf16": 0.995, "fp16": 0.995}


def shapes_spec(precision: str = "fp32"):
    """The bundled shapes model on the CPU in an explicit precision (tests compare numbers)."""
    from clipphotos.models import ModelSpec
    return ModelSpec(str(SHAPES_CONFIG), None, str(SHAPES_WEIGHTS), "cpu", precision)


@pytest.fixture(scope="session")
def shapes_model():
    """The loaded small model in fp32, shared by tests that embed directly."""
    from clipphotos.models import load_model
    return load_model(shapes_spec())


@pytest.fixture(scope="session", params=PRECISIONS)
def shapes_model_each(request):
    """The loaded small model once in each precision of PRECISIONS."""
    from clipphotos.models import load_model
    return load_model(shapes_spec(request.param))


def make_photo_library(out: Path, count: int = 40, max_side: int = 640, seed: int = 1) -> dict:
    """A realistic camera library drawn by the project's own generator, and its ground truth."""
    from fixtures.camera_library import make_library
    return make_library(out, count, max_side=max_side, seed=seed, workers=2)


def make_shared_library(out: Path, count: int = 40, max_side: int = 640, seed: int = 1) -> dict:
    """A library cut from real photographs by ../shared/bench/make_library.py (CI and this
    workplace only), with the same manifest fields."""
    needs_shared(MAKE_LIBRARY)
    subprocess.run([sys.executable, str(MAKE_LIBRARY), "--out", str(out), "--count", str(count),
                    "--max-side", str(max_side), "--seed", str(seed), "--workers", "2"],
                   check=True, capture_output=True)
    return json.loads(out.with_name(out.name + ".manifest.json").read_text())


@pytest.fixture(scope="session")
def photo_library(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("photos") / "library"
    return root, make_photo_library(root)


@pytest.fixture(scope="session")
def shapes_folder(tmp_path_factory) -> tuple[Path, list[dict]]:
    """160 freshly drawn shape pictures (a seed unseen in training) with their truth."""
    from clipphotos.shapes import write_library
    root = tmp_path_factory.mktemp("shapes") / "drawn"
    return root, write_library(root, 160, seed=20261129)


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    @property
    def json(self) -> dict:
        return json.loads(self.out)


@pytest.fixture
def cli(capsys):
    """Run `clipphotos ARGS` in this process and return its exit code, stdout and stderr."""
    from clipphotos.cli import main

    def run(*args: str) -> CliResult:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)
    return run


@pytest.fixture
def tmp_trash(tmp_path: Path, monkeypatch):
    """The system trash inside tmp_path. Send2Trash reads XDG_DATA_HOME when it is imported, so
    it is imported afresh here, and sys.modules is put back afterwards (other tests' trash must not
    land in this one)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))

    def ours() -> dict:
        return {k: v for k, v in sys.modules.items() if k.split(".")[0] == "send2trash"}
    saved = ours()
    for name in saved:
        del sys.modules[name]
    yield tmp_path / "xdg" / "Trash"
    for name in ours():
        del sys.modules[name]
    sys.modules.update(saved)
