"""`clipphotos demo`: a working library in one command, offline, with answers that can be checked.

The demo draws a few hundred pictures of coloured shapes (the world the bundled toy model was
trained on) as files a user could have: mixed sizes and formats, EXIF-rotated phone shots,
near-duplicate copies and a few broken files. It indexes them into a library of its own, never
the user's, with the bundled model, through the same model path as any user model, and then
walks through searches whose right answers are known.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from clipphotos.library import Library
from clipphotos.models import SHAPES_CONFIG, SHAPES_WEIGHTS, ModelSpec
from clipphotos.shapes import COLOURS, SHAPES, write_library

DEMO_COUNT = 256
TOY_MODEL_NOTE = (
    "This demo uses ClipPhotos' bundled toy model, trained only on pictures of coloured shapes: it "
    "knows 8 colours and 4 shapes and nothing else. For your own photos, run `clipphotos index FOLDER`, "
    "which downloads a real CLIP model once (ViT-B-32-256, about 600 MB), or pass a local checkpoint "
    "with --model NAME --weights FILE.")
# (query, negative terms): what the walk-through searches for.
SUGGESTED_QUERIES: list[tuple[str, list[str]]] = [
    ("a red star", []),
    ("blue circle", []),
    ("a green triangle", []),
    ("a star", ["yellow"]),
]
# EXIF orientation → how a phone stores the upright pixels (the inverse of what a viewer does).
_STORED = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def demo_model() -> ModelSpec:
    return ModelSpec(str(SHAPES_CONFIG), None, str(SHAPES_WEIGHTS), "auto")


def default_demo_dir() -> Path:
    from platformdirs import user_data_dir
    return Path(user_data_dir("ClipPhotos-demo", appauthor=False))


@dataclass
class Demo:
    root: Path                                   # the demo library (catalog, index, …)
    photos: Path                                 # the drawn pictures
    truth: dict[str, dict] = field(default_factory=dict)   # absolute path → {"colour", "shape"}


def draw_demo_photos(photos: Path, seed: int = 2026) -> dict[str, dict]:
    """Draw the demo's files and return their ground truth, keyed by absolute path."""
    records = write_library(photos, DEMO_COUNT, seed, formats=("jpg", "png", "jpg", "webp"))
    truth = {str(photos / r["path"]): {"colour": r["colour"], "shape": r["shape"]} for r in records}
    rng = random.Random(seed)
    jpegs = sorted(p for p in truth if p.lower().endswith((".jpg", ".jpeg")))
    # Phone shots: pixels stored rotated, with the EXIF tag that turns them upright.
    for path in rng.sample(jpegs, 12):
        with Image.open(path) as im:
            upright = im.convert("RGB")
        orientation = rng.choice(sorted(_STORED))
        exif = Image.Exif()
        exif[0x0112] = orientation
        exif[0x010F], exif[0x0110] = "Google", "Pixel 7"
        upright.transpose(_STORED[orientation]).save(path, "JPEG", quality=90, exif=exif.tobytes())
    # Near-duplicates: a downsized copy in Downloads and a re-encoded one from a messenger.
    copies = photos / "Downloads"
    copies.mkdir(exist_ok=True)
    for n, path in enumerate(rng.sample(jpegs, 6)):
        with Image.open(path) as im:
            img = im.convert("RGB")
        dup = copies / f"copy {n} of {Path(path).stem}.jpg"
        if n % 2:
            img = img.resize((max(1, img.width // 2), max(1, img.height // 2)), Image.Resampling.LANCZOS)
        img.save(dup, "JPEG", quality=70)
        truth[str(dup)] = dict(truth[path])
    # A few broken files, as every real folder has.
    broken = photos / "broken"
    broken.mkdir(exist_ok=True)
    (broken / "empty.jpg").write_bytes(b"")
    (broken / "notes.png").write_text("shopping list: milk, eggs")
    (broken / "cut short.jpg").write_bytes(Path(jpegs[0]).read_bytes()[:300])
    return truth


def build_demo(folder: Path | None = None, on_progress=lambda p: None) -> Demo:
    """Create (or reuse) the demo library and index it with the bundled model."""
    root = Path(folder).expanduser().resolve() if folder else default_demo_dir()
    photos = root / "photos"
    truth_file = root / "demo-truth.json"
    if truth_file.exists() and photos.is_dir():
        truth = json.loads(truth_file.read_text())
    else:
        truth = draw_demo_photos(photos)
        truth_file.write_text(json.dumps(truth, indent=1))
    with Library(root, model=demo_model()) as lib:
        lib.index_folders([photos], on_progress=on_progress)
    return Demo(root, photos, truth)


def walk_through(demo: Demo, limit: int = 5) -> dict:
    """The suggested searches with their top results, each marked right or wrong by the truth."""
    out: dict = {"library": str(demo.root), "photos_folder": str(demo.photos), "note": TOY_MODEL_NOTE,
                 "queries": []}
    with Library(demo.root) as lib:
        status = lib.status()
        out["photos"] = status["photos"]
        out["skipped"] = status["skipped_files"]
        for query, negative in SUGGESTED_QUERIES:
            results = lib.search(query, negative=negative, limit=limit)
            rows = []
            for r in results:
                t = demo.truth.get(r.path, {})
                rows.append({"path": r.path, "score": round(r.score, 4), **t,
                             "right": _is_right(query, negative, t)})
            out["queries"].append({"query": query, "not": negative, "results": rows,
                                   "right": sum(row["right"] for row in rows)})
    return out


def _is_right(query: str, negative: list[str], truth: dict) -> bool:
    """Right when the picture has every colour and shape the query names and none it excludes."""
    if not truth:
        return False
    attributes = {truth["colour"], truth["shape"]}
    named = set(query.lower().split()) & (set(COLOURS) | set(SHAPES))
    return named <= attributes and not attributes & set(negative)


def print_walk_through(report: dict) -> None:
    print(f"Demo library: {report['library']} ({report['photos']} photos, "
          f"{len(report['skipped'])} broken files skipped with a reason)")
    print(f"Pictures: {report['photos_folder']}\n")
    for q in report["queries"]:
        extra = f"  --not {' '.join(q['not'])}" if q["not"] else ""
        print(f'clipphotos --library "{report["library"]}" search "{q["query"]}"{extra}')
        for r in q["results"]:
            mark = "✓" if r["right"] else "✗"
            print(f"  {mark} {r['score']:.3f}  {r.get('colour', '?')} {r.get('shape', '?')}  {r['path']}")
        print()
    for s in report["skipped"]:
        print(f"skipped {s['path']}: {s['reason']}")
    print(f"\n{report['note']}")
