#!/usr/bin/env python3
"""ClipPhotos against the peer we race, rclip 4.0.8, on the same weights and the same photos.

rclip 4 is the current CLI CLIP search: ONNX Runtime fp32, JPEG draft decoding, batch 8. Both
programs run as a user runs them, each a whole process timed from outside, its peak memory its
own (VmHWM, polled):
  indexing   `clipphotos index FOLDER --no-text` into a new library that keeps the model's export
             (any run after a library's first), against `rclip -f -t 1 "a photo"` in the folder
             with a new database (rclip indexes the folder before it answers; its data folder
             holds its exported towers). No text reading on either side: rclip has none.
  search     a new query each run on the indexed library: `clipphotos search QUERY --json`
             against `rclip -n -f QUERY` (-n: no re-indexing); new words each run, as ClipPhotos
             keeps the vector of a query it was asked before.
The two take turns, A-B then B-A, `--rounds` times: on a shared machine the speed moves from
minute to minute, and each pair shares its minute. Prints every pair, the median ratio, and the
CPU (its name and the flags that pick the app's precision).

Needs ../shared/bench/peer/rclip4_peer.sh and a Python 3.12/3.13 for rclip (the script's
header says how it installs rclip offline and exports its towers). Without --weights the model
gets random weights made in this run (speed does not depend on the values).

  python bench/rclip_race.py --count 300 --max-side 6016
  python bench/rclip_race.py --photos FOLDER --weights W.safetensors --rounds 5
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEER = REPO.parent / "shared" / "bench" / "peer" / "rclip4_peer.sh"
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

from index_throughput import MAKE_LIBRARY, make_weights, measured  # noqa: E402

from clipphotos.loader import is_supported  # noqa: E402
from clipphotos.models import cpu_identity  # noqa: E402

WORDS = ["dog", "beach", "sunset", "birthday cake", "mountain lake", "red car", "kids", "snow",
         "city at night", "flowers", "a cat", "boat", "forest path", "old church", "bicycle"]


class ClipPhotos:
    """`clipphotos` as its command runs, on one model and weights."""

    def __init__(self, model: str, weights: Path, work: Path) -> None:
        self.model, self.weights, self.work = model, weights, work
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.first: Path | None = None   # the library whose models/ (the export) later ones copy
        self.library: Path | None = None

    def _cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "clipphotos", *args]

    def index(self, photos: Path, n: int) -> tuple[float, int, int]:
        """Seconds, peak RSS and photos indexed by one run into a new library."""
        lib = self.work / f"clipphotos-{n}"
        if self.first is not None:
            shutil.copytree(self.first / "models", lib / "models")
        seconds, peak, out = measured(self._cli("index", str(photos), "--library", str(lib), "--model", self.model,
                                                "--weights", str(self.weights), "--json", "--no-text"), REPO, self.env)
        report = json.loads(out)
        self.first = self.first or lib
        self.library = lib
        return seconds, peak, report["indexed"] + report["unchanged"] + report["moved"]

    def search(self, query: str) -> tuple[float, int]:
        assert self.library is not None
        seconds, peak, _ = measured(self._cli("search", query, "--library", str(self.library), "--json"),
                                    REPO, self.env)
        return seconds, peak


class Rclip:
    """rclip 4.0.8 as set up by the peer script, with a data folder (its database) per library."""

    def __init__(self, weights: Path, work: Path) -> None:
        lines = subprocess.run(["bash", str(PEER), str(weights), str(work / "peer")], check=True,
                               capture_output=True, text=True, env={**os.environ, "PYTHON": sys.executable}
                               ).stdout.split()
        self.program, self.data = Path(lines[-2]), Path(lines[-1])
        self.work = work
        self.env: dict[str, str] = {}

    def index(self, photos: Path, n: int) -> tuple[float, int, int]:
        data = self.work / f"rclip-{n}"
        shutil.copytree(self.data, data)
        self.env = {**os.environ, "RCLIP_DATADIR": str(data), "HF_HUB_OFFLINE": "1"}
        seconds, peak, _ = measured([str(self.program), "-f", "-t", "1", "a photo"], photos, self.env)
        self.photos = photos
        return seconds, peak, self.indexed(data)

    @staticmethod
    def indexed(data: Path) -> int:
        """Photos in rclip's database (its own count: a photo it skipped is not in it)."""
        with closing(sqlite3.connect(next(data.glob("*.sqlite3")))) as db:
            return db.execute("SELECT count(*) FROM images WHERE deleted IS NULL AND vector IS NOT NULL").fetchone()[0]

    def search(self, query: str) -> tuple[float, int]:
        seconds, peak, _ = measured([str(self.program), "-n", "-f", query], self.photos, self.env)
        return seconds, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=300, help="photos to generate (without --photos)")
    ap.add_argument("--max-side", type=int, default=6016, help="long side of the generated photos")
    ap.add_argument("--photos", type=Path, help="an existing folder instead of a generated library")
    ap.add_argument("--weights", type=Path, help="a ViT-B-32-256 checkpoint; default: random weights made here")
    ap.add_argument("--rounds", type=int, default=3, help="indexing runs of each, in turns")
    ap.add_argument("--searches", type=int, default=7, help="new queries asked of each, in turns")
    args = ap.parse_args()
    if not PEER.exists():
        sys.exit(f"{PEER} is missing: the peer is set up from ../shared")
    work = Path(tempfile.mkdtemp(prefix="clipphotos-race-"))
    photos = args.photos
    if photos is None:
        photos = work / "photos"
        subprocess.run([sys.executable, str(MAKE_LIBRARY), "--out", str(photos), "--count", str(args.count),
                        "--max-side", str(args.max_side), "--dup-rate", "0"], check=True, capture_output=True)
    count = sum(1 for p in photos.rglob("*") if p.is_file() and is_supported(p.name))
    weights = args.weights or make_weights("ViT-B-32-256", work / "weights.safetensors")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "clipphotos")], check=True)
    app, peer = ClipPhotos("ViT-B-32-256", weights, work), Rclip(weights, work)
    print(f"CPU: {cpu_identity()}; load {os.getloadavg()[0]:.2f} (1 min) at the start")
    print(f"{count} photos in {photos}, ViT-B-32-256 with {'given' if args.weights else 'random'} weights")
    app.index(photos, 0)   # the model's first load on this CPU (export, checks, timings): once per library

    ratios, peaks = [], {"app": 0, "rclip": 0}
    for n in range(1, args.rounds + 1):
        order = [("app", app), ("rclip", peer)][:: 1 if n % 2 else -1]
        rates = {}
        for name, side in order:
            seconds, peak, done = side.index(photos, n)
            rates[name] = done / seconds
            peaks[name] = max(peaks[name], peak)
            if done != count:
                print(f"  note: {name} indexed {done} of {count} photos")
        ratios.append(rates["app"] / rates["rclip"])
        print(f"indexing, round {n}: ClipPhotos {rates['app']:.2f} img/s, rclip 4 {rates['rclip']:.2f} img/s, "
              f"ratio {ratios[-1]:.2f}")
    print(f"indexing {count} photos, whole process: ClipPhotos / rclip 4 median ratio {statistics.median(ratios):.2f} "
          f"over {len(ratios)} rounds; peak RSS ClipPhotos {peaks['app'] / 2**30:.2f} GiB, "
          f"rclip 4 {peaks['rclip'] / 2**30:.2f} GiB")

    walls: dict[str, list[float]] = {"app": [], "rclip": []}
    peaks = {"app": 0, "rclip": 0}
    stamp = time.time_ns() % 100_000
    for i in range(args.searches + 1):
        query = f"{WORDS[i % len(WORDS)]} next to a {WORDS[(3 * i + 1) % len(WORDS)]} {stamp}"
        for name, side in [("app", app), ("rclip", peer)][:: 1 if i % 2 else -1]:
            seconds, peak = side.search(query)
            if i:   # the first pair warms the file caches
                walls[name].append(seconds)
                peaks[name] = max(peaks[name], peak)
    a, r = statistics.median(walls["app"]), statistics.median(walls["rclip"])
    print(f"search, a new query, whole process (median of {args.searches}): ClipPhotos {a:.2f} s "
          f"({min(walls['app']):.2f}-{max(walls['app']):.2f}), peak RSS {peaks['app'] / 2**20:.0f} MiB; "
          f"rclip 4 {r:.2f} s ({min(walls['rclip']):.2f}-{max(walls['rclip']):.2f}), "
          f"peak RSS {peaks['rclip'] / 2**20:.0f} MiB; ClipPhotos takes {a / r:.2f}x rclip's time")
    print(f"load {os.getloadavg()[0]:.2f} (1 min) at the end; work folder {work}")


if __name__ == "__main__":
    main()
