#!/usr/bin/env python3
"""How well `clipphotos dupes` finds duplicates: pair precision and recall per duplicate kind.

Generates camera-like libraries with ../shared/bench/make_library.py (several seeds), indexes
each through the app (its own library, the project's small test model: there is no real CLIP
here, so the perceptual signals carry the decision), asks for the exact and near tiers, and
scores every pair of files grouped together against the manifest's groups. Pairs across the
manifest's `ambiguous_group_pairs` (overlapping crops of one seed photo) are left out.

Per kind, recall counts the pairs (original, copy of that kind); precision counts the grouped
pairs holding a file of that kind. The bar: precision >= 0.98 and recall >= 0.95 for every kind.

  python bench/dupes_quality.py                                  # seeds 1-3, 150 files each, 3000 px
  python bench/dupes_quality.py --work /tmp/dq --seeds 1 2 3 4   # keeps libraries for a rerun
"""
from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clipphotos.duplicates import ACTION_TIERS  # noqa: E402
from clipphotos.library import Library  # noqa: E402
from clipphotos.models import ModelSpec  # noqa: E402

MAKE_LIBRARY = REPO.parent / "shared" / "bench" / "make_library.py"
SHAPES = REPO / "tests" / "fixtures" / "shapes-clip"
KINDS = ["exact", "reencode", "resized", "cropped", "exposure", "rotated", "burst", "png"]
PRECISION_BAR, RECALL_BAR = 0.98, 0.95


def generate(out: Path, count: int, max_side: int, seed: int, workers: int) -> dict:
    """The library for one seed (made once per work folder) and its manifest."""
    manifest = out.with_name(out.name + ".manifest.json")
    if not manifest.exists():
        subprocess.run([sys.executable, str(MAKE_LIBRARY), "--out", str(out), "--count", str(count),
                        "--max-side", str(max_side), "--seed", str(seed), "--workers", str(workers)], check=True)
    return json.loads(manifest.read_text())


def grouped_pairs(photos: Path, library: Path, model: ModelSpec) -> tuple[set[frozenset[str]], float, dict]:
    """Pairs of files (relative paths) the app groups as exact or near duplicates, and the seconds it took."""
    photos = photos.resolve()
    with Library(library, model=model) as lib:
        lib.index_folders([photos])
        started = time.perf_counter()
        groups = lib.duplicates(tiers=ACTION_TIERS)
        seconds = time.perf_counter() - started
    pairs = set()
    tiers: dict[str, int] = defaultdict(int)
    for group in groups:
        tiers[group.tier] += 1
        names = [str(Path(p).relative_to(photos)) for p in group.paths if Path(p).is_relative_to(photos)]
        pairs |= {frozenset(pair) for pair in itertools.combinations(names, 2)}
    return pairs, seconds, dict(tiers)


def truth(manifest: dict) -> tuple[dict[str, dict], set[frozenset[str]], set[frozenset[int]]]:
    files = {f["path"]: f for f in manifest["files"]}
    groups: dict[int, list[str]] = defaultdict(list)
    for f in manifest["files"]:
        groups[f["group"]].append(f["path"])
    pairs = {frozenset(p) for paths in groups.values() for p in itertools.combinations(paths, 2)}
    ambiguous = {frozenset(p) for p in manifest["ambiguous_group_pairs"]}
    return files, pairs, ambiguous


def score(found: set[frozenset[str]], manifest: dict, table: dict[str, list[int]]) -> None:
    """Add one library's counts to the table: kind → [true pairs, found of them, grouped, right]."""
    files, true_pairs, ambiguous = truth(manifest)
    for pair in true_pairs:
        a, b = (files[p] for p in pair)
        kinds = {a["kind"], b["kind"]}
        table["all"][0] += 1
        table["all"][1] += pair in found
        if "original" in kinds and len(kinds) == 2:
            kind = (kinds - {"original"}).pop()
            table[kind][0] += 1
            table[kind][1] += pair in found
    for pair in found:
        a, b = (files[p] for p in pair)
        if a["group"] != b["group"] and frozenset((a["group"], b["group"])) in ambiguous:
            table["ambiguous"][2] += 1
            continue
        right = pair in true_pairs
        for kind in {a["kind"], b["kind"]} | {"all"}:
            table[kind][2] += 1
            table[kind][3] += right


def report(table: dict[str, list[int]]) -> bool:
    print(f"\n{'kind':10s} {'pairs':>6s} {'found':>6s} {'recall':>7s} {'grouped':>8s} {'right':>6s} {'precision':>9s}")
    ok = True
    for kind in [*KINDS, "original", "all"]:
        pairs, found, grouped, right = table[kind]
        recall = found / pairs if pairs else float("nan")
        precision = right / grouped if grouped else float("nan")
        passed = (not pairs or recall >= RECALL_BAR) and (not grouped or precision >= PRECISION_BAR)
        ok &= passed
        print(f"{kind:10s} {pairs:6d} {found:6d} {recall:7.3f} {grouped:8d} {right:6d} {precision:9.3f}"
              f"{'' if passed else '   below the bar'}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--count", type=int, default=150, help="files per library (default 150)")
    ap.add_argument("--max-side", type=int, default=3000, help="long side in pixels (default 3000)")
    ap.add_argument("--work", type=Path, help="keep generated and indexed libraries here for a rerun")
    ap.add_argument("--model", default=str(SHAPES / "config.json"), help="OpenCLIP config (default: the test model)")
    ap.add_argument("--weights", default=str(SHAPES / "shapes-clip.safetensors"))
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    if not MAKE_LIBRARY.exists():
        sys.exit(f"{MAKE_LIBRARY} is missing (the shared bench data lies beside the repo)")
    model = ModelSpec(args.model, None, args.weights, "cpu")
    work = args.work or Path(tempfile.mkdtemp(prefix="dupes-quality-"))
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    total_files = 0
    for seed in args.seeds:
        manifest = generate(work / f"seed-{seed}", args.count, args.max_side, seed, args.workers)
        found, seconds, tiers = grouped_pairs(work / f"seed-{seed}", work / f"library-{seed}", model)
        total_files += manifest["count"]
        print(f"seed {seed}: {manifest['count']} files, groups {tiers}, dupes took {seconds:.2f} s")
        score(found, manifest, table)
    print(f"{total_files} files in {len(args.seeds)} libraries, long side {args.max_side} px, model {args.model}")
    ok = report(table)
    print(f"(pairs across ambiguous groups, left out: {table['ambiguous'][2]} grouped)")
    print("\nPASS" if ok else "\nFAIL", f"(bar: precision >= {PRECISION_BAR}, recall >= {RECALL_BAR} per kind)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
