#!/usr/bin/env python3
"""Auto-tagging quality: per-label precision, recall and F1 on freshly drawn shape libraries.

For each seed a library of drawn pictures is indexed with the project's shapes model, twelve
labels are created (8 colours, 4 shapes: none of them exclusive of all others), and the library
is tagged. Then, for each label on its own, the user reviews five photos (the ones the label is
least sure of, answered truthfully) and the label is refitted: F1 on the rest of the library is
measured before and after. Finally a library without any red picture is tagged with "red",
which must tag (almost) nothing.

  python bench/tag_quality.py --count 640 --seeds 3
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clipphotos.library import Library  # noqa: E402
from clipphotos.models import ModelSpec  # noqa: E402
from clipphotos.shapes import COLOURS, SHAPES, write_library  # noqa: E402

SHAPES_MODEL = REPO / "clipphotos" / "models" / "shapes-clip"
LABELS = (*COLOURS, *SHAPES)


@dataclass(frozen=True)
class Quality:
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int


def model_spec(config: Path = SHAPES_MODEL / "config.json",
               weights: Path = SHAPES_MODEL / "shapes-clip.safetensors") -> ModelSpec:
    return ModelSpec(str(config), None, str(weights), "cpu")


def truth_of(folder: Path, records: list[dict]) -> dict[str, set[str]]:
    """path → the labels that truly apply (its colour and its shape)."""
    return {str((folder / r["path"]).resolve()): {r["colour"], r["shape"]} for r in records}


def indexed_library(folder: Path, library: Path, count: int, seed: int, spec: ModelSpec,
                    drop_colour: str | None = None) -> tuple[Library, dict[str, set[str]]]:
    """Draw `count` pictures (less those of `drop_colour`), index them, and return the truth."""
    records = write_library(folder, count, seed)
    if drop_colour is not None:
        for r in records:
            if r["colour"] == drop_colour:
                (folder / r["path"]).unlink()
        records = [r for r in records if r["colour"] != drop_colour]
    lib = Library(library, model=spec)
    lib.index_folders([folder])
    return lib, truth_of(folder, records)


def quality(tags: dict[str, list[str]], truth: dict[str, set[str]], label: str,
            among: set[str] | None = None) -> Quality:
    """How well the label's tags match the truth, over `among` (default: every photo)."""
    paths = among if among is not None else set(truth)
    tp = sum(label in tags.get(p, ()) and label in truth[p] for p in paths)
    fp = sum(label in tags.get(p, ()) and label not in truth[p] for p in paths)
    fn = sum(label not in tags.get(p, ()) and label in truth[p] for p in paths)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Quality(precision, recall, f1, tp, fp, fn)


def tag_all(lib: Library, labels: tuple[str, ...] = LABELS) -> dict[str, list[str]]:
    for name in labels:
        lib.labels.add(name)
    return lib.labels.run().tags


def review_effect(lib: Library, truth: dict[str, set[str]], label: str, k: int = 5,
                  uncertain: bool = True) -> tuple[Quality, Quality, list[str]]:
    """F1 on the rest of the library before and after answering `k` suggestions truthfully.

    The answers are forgotten again afterwards, so each label is measured on its own.
    """
    before_tags = lib.labels.tags_of()
    picked = [d.path for d in lib.labels.suggestions(label, limit=k, uncertain_first=uncertain)]
    rest = set(truth) - set(picked)
    before = quality(before_tags, truth, label, rest)
    accepted = [p for p in picked if label in truth[p]]
    rejected = [p for p in picked if label not in truth[p]]
    if accepted:
        lib.labels.review(label, accepted, True, refit=False)
    if rejected:
        lib.labels.review(label, rejected, False, refit=False)
    after = quality(lib.labels.run([label]).tags, truth, label, rest)
    lib.labels.review(label, picked, None)
    return before, after, picked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=640, help="pictures per library (default 640)")
    parser.add_argument("--seeds", type=int, default=3, help="libraries, each drawn with its own seed")
    parser.add_argument("--first-seed", type=int, default=7001)
    parser.add_argument("--review", type=int, default=5, help="photos reviewed per label (default 5)")
    parser.add_argument("--config", type=Path, default=SHAPES_MODEL / "config.json", help="OpenCLIP model config")
    parser.add_argument("--weights", type=Path, default=SHAPES_MODEL / "shapes-clip.safetensors")
    args = parser.parse_args(argv)
    spec = model_spec(args.config, args.weights)
    per_label: dict[str, list[Quality]] = {name: [] for name in LABELS}
    reviews: dict[str, list[tuple[float, float]]] = {name: [] for name in LABELS}
    absent: list[int] = []
    work = Path(tempfile.mkdtemp(prefix="tag-quality-"))
    try:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            started = time.perf_counter()
            lib, truth = indexed_library(work / f"p{seed}", work / f"l{seed}", args.count, seed, spec)
            tags = tag_all(lib)
            for name in LABELS:
                per_label[name].append(quality(tags, truth, name))
                before, after, _ = review_effect(lib, truth, name, args.review)
                reviews[name].append((before.f1, after.f1))
            lib.close()
            lib, truth = indexed_library(work / f"n{seed}", work / f"m{seed}", args.count, seed, spec,
                                         drop_colour="red")
            absent.append(sum("red" in t for t in tag_all(lib).values()))
            lib.close()
            print(f"seed {seed}: {len(truth)} + {args.count} pictures in {time.perf_counter() - started:.0f} s",
                  file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_report(per_label, reviews, absent, args)
    return 0


def print_report(per_label: dict[str, list[Quality]], reviews: dict[str, list[tuple[float, float]]],
                 absent: list[int], args: argparse.Namespace) -> None:
    mean = statistics.fmean
    print(f"{args.seeds} libraries of {args.count} drawn pictures (seeds {args.first_seed}…), shapes-clip model\n")
    print(f"{'label':10s} {'precision':>9s} {'recall':>7s} {'F1':>6s} {'min F1':>7s}   "
          f"{'F1 before':>9s} {'after':>6s} {'worst Δ':>8s}  (review of {args.review} least-sure photos)")
    for name, qs in per_label.items():
        before, after = zip(*reviews[name])
        worst = min(a - b for b, a in reviews[name])
        print(f"{name:10s} {mean(q.precision for q in qs):9.3f} {mean(q.recall for q in qs):7.3f} "
              f"{mean(q.f1 for q in qs):6.3f} {min(q.f1 for q in qs):7.3f}   "
              f"{mean(before):9.3f} {mean(after):6.3f} {worst:+8.3f}")
    every = [q for qs in per_label.values() for q in qs]
    print(f"{'all':10s} {mean(q.precision for q in every):9.3f} {mean(q.recall for q in every):7.3f} "
          f"{mean(q.f1 for q in every):6.3f} {min(q.f1 for q in every):7.3f}")
    print(f"\n'red' on libraries without a red picture: {absent} photos tagged")


if __name__ == "__main__":
    raise SystemExit(main())
