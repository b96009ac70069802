#!/usr/bin/env python3
"""Is finding duplicates fast enough for a big library? Target: 100 000 photos in <= 60 s.

Builds a temporary library of synthetic signals through the core API (no image is decoded,
as with `clipphotos dupes` on an indexed library): every content gets a 32×32 grey thumbnail
drawn from a natural-image-like 1/f field, its pHash, a capture time and a CLIP-like vector.
Some photos are byte-identical copies, some near-duplicates (zoomed crops, exposure changes,
noise: re-encodes), some burst series of one scene seconds apart. Then it times the grouping
(all three tiers) and prints the seconds, the ratio to the target and what was found.

  python bench/dupes_scale.py                 # 100 000 photos
  python bench/dupes_scale.py --photos 20000  # a quicker look
  python bench/dupes_scale.py --keep /tmp/big # build once, time again on later runs
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clipphotos.catalog import Catalog, ContentInfo  # noqa: E402
from clipphotos.duplicates import find_duplicates  # noqa: E402
from clipphotos.fingerprint import perceptual_hash  # noqa: E402

TARGET_SECONDS = 60.0
DIM = 512
SIDE = 32


def natural_fields(rng: np.random.Generator, n: int, side: int = 64) -> np.ndarray:
    """n grey pictures (side × side, 0..255) with a natural 1/f amplitude spectrum."""
    fy = np.fft.fftfreq(side)[:, None]
    fx = np.fft.rfftfreq(side)[None, :]
    amplitude = 1.0 / np.maximum(np.hypot(fx, fy), 1.0 / side)
    out = np.empty((n, side, side), dtype=np.float32)
    for start in range(0, n, 2000):
        m = min(2000, n - start)
        phase = rng.uniform(0, 2 * np.pi, (m, side, side // 2 + 1))
        field = np.fft.irfft2(amplitude * np.exp(1j * phase), s=(side, side))
        field = (field - field.mean(axis=(1, 2), keepdims=True)) / field.std(axis=(1, 2), keepdims=True)
        out[start:start + m] = np.clip(128 + 45 * field, 0, 255)
    return out


def thumbnail(field: np.ndarray, zoom_x: float = 1.0, zoom_y: float = 1.0, gain: float = 1.0,
              noise: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """The stored thumbnail of a picture, or of a crop / exposure change / re-encode of it."""
    side = field.shape[0]
    w, h = side / zoom_x, side / zoom_y
    box = ((side - w) / 2, (side - h) / 2, (side + w) / 2, (side + h) / 2)
    img = Image.fromarray(np.clip(field * gain, 0, 255).astype(np.uint8)).resize(
        (SIDE, SIDE), Image.Resampling.LANCZOS, box=box)
    x = np.asarray(img, dtype=np.float32)
    if noise and rng is not None:
        x = x + rng.normal(0, noise, x.shape)
    return np.clip(x, 0, 255).astype(np.uint8)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def nudge(v: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at cosine ~ 1/sqrt(1 + amount²) from v: another view of the same thing."""
    return unit(v + amount * unit(rng.normal(size=v.shape)))


def build(root: Path, photos: int, seed: int) -> dict[str, int]:
    """Fill a catalog with synthetic contents and photos; returns what went in."""
    rng = np.random.default_rng(seed)
    n_exact, n_near, n_series = photos // 20, photos // 10, photos // 20
    n_orig = photos - n_exact - n_near - n_series
    fields = natural_fields(rng, n_orig + n_series)
    vectors = unit(rng.normal(size=(n_orig, DIM)).astype(np.float32))
    times = rng.uniform(1.45e9, 1.75e9, n_orig)
    contents: list[tuple[np.ndarray, np.ndarray, float]] = []
    for i in range(n_orig):
        contents.append((thumbnail(fields[i]), vectors[i], times[i]))
    for j in range(n_near):                       # crops, exposure edits, re-encodes of originals
        i = int(rng.integers(n_orig))
        kind = j % 3
        thumb = (thumbnail(fields[i], *rng.uniform(1.03, 1.13, 2)) if kind == 0 else
                 thumbnail(fields[i], gain=float(rng.choice([0.88, 1.12]))) if kind == 1 else
                 thumbnail(fields[i], noise=3.0, rng=rng))
        contents.append((thumb, nudge(vectors[i], 0.15, rng), times[i]))
    for j in range(n_series):                     # another shot of a scene, seconds later
        i = int(rng.integers(n_orig))
        mix = 0.6 * fields[i] + 0.4 * fields[n_orig + j]
        contents.append((thumbnail(mix), nudge(vectors[i], 0.45, rng),
                         times[i] + float(rng.uniform(1, 20))))
    catalog = Catalog(root / "catalog.sqlite3")
    folder = catalog.add_folder(root / "photos")
    model = catalog.model_id("synthetic-clip", DIM)
    catalog.set_setting("model.key", "synthetic-clip")
    holders = list(range(len(contents))) + [int(i) for i in rng.integers(len(contents), size=n_exact)]
    with catalog.transaction() as db:
        ids = []
        for n, (thumb, vec, when) in enumerate(contents):
            taken = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when))
            info = ContentInfo(f"{n:032x}", 2_000_000, 4000, 3000, "JPEG", taken, "Camera", 1,
                               perceptual_hash(Image.fromarray(thumb)), thumb.tobytes())
            ids.append(catalog.upsert_content(db, info))
            catalog.put_vector(db, ids[-1], model, vec)
        for n, holder in enumerate(holders):
            path = str(root / "photos" / f"{n // 1000:03d}" / f"IMG_{n:06d}.JPG").encode()
            catalog.put_photo(db, path, folder, ids[holder], 2_000_000, n)
    catalog.close()
    return {"photos": len(holders), "contents": len(contents), "exact copies": n_exact,
            "near-duplicates": n_near, "series shots": n_series}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", type=Path, help="build the library in this folder once and reuse it")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dupes-scale-") as tmp:
        root = args.keep or Path(tmp)
        if not (root / "catalog.sqlite3").exists():
            started = time.perf_counter()
            made = build(root, args.photos, args.seed)
            print(f"built {made} in {time.perf_counter() - started:.1f} s")
        catalog = Catalog(root / "catalog.sqlite3")
        args.photos = catalog.photo_count()
        started = time.perf_counter()
        groups = find_duplicates(catalog)
        seconds = time.perf_counter() - started
        catalog.close()
    tiers = {t: sum(g.tier == t for g in groups) for t in ("exact", "near", "similar")}
    target = TARGET_SECONDS * args.photos / 100_000
    print(f"groups: {tiers}")
    print(f"grouping {args.photos} photos took {seconds:.1f} s; target {target:.0f} s; "
          f"ratio {seconds / target:.2f} ({'within' if seconds <= target else 'OVER'} the target)")
    return 0 if seconds <= target else 1


if __name__ == "__main__":
    sys.exit(main())
