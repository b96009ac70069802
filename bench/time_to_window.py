#!/usr/bin/env python3
"""How long `clipphotos` (no command) takes to put its window on screen, measured from outside.

    .venv/bin/python bench/time_to_window.py [--runs 5] [--library DIR]

Each run starts a fresh interpreter with `python -m clipphotos --library DIR` and
CLIPPHOTOS_EXIT_WHEN_SHOWN=1, which makes the app print the wall-clock time once its window's
first frame is up, then quit. The measure is that time minus the moment the process was
spawned: interpreter start, imports, QApplication, window, first paint. Offscreen
(QT_QPA_PLATFORM) unless a display is set.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--library", type=Path, help="library folder (default: a new empty one)")
    args = parser.parse_args()
    env = {**os.environ, "CLIPPHOTOS_EXIT_WHEN_SHOWN": "1", "HF_HUB_OFFLINE": "1"}
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory() as tmp:
        library = args.library or Path(tmp) / "library"
        times = []
        for _ in range(args.runs):
            spawned = time.time()
            out = subprocess.run([sys.executable, "-m", "clipphotos", "--library", str(library)],
                                 env=env, capture_output=True, text=True, timeout=120)
            shown = next((line for line in out.stderr.splitlines() if line.startswith("window shown at")), None)
            if shown is None:
                print(out.stderr, file=sys.stderr)
                return 1
            times.append(float(shown.split()[-1]) - spawned)
            print(f"window up after {times[-1]:.2f} s", flush=True)
    print(f"median {statistics.median(times):.2f} s, best {min(times):.2f} s over {len(times)} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
