"""The perceptual hash: same photo after everyday edits stays close, different photos do not."""
from __future__ import annotations

import io
import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from clipphotos.fingerprint import _dct_matrix, fingerprints, grey_thumbnail, hamming, perceptual_hash
from clipphotos.loader import load_image

SEED_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "seed-photos"


def synthetic_photo(seed: int, size: tuple[int, int] = (480, 360)) -> Image.Image:
    """A random 'scene': a gradient sky, blurred shapes of random colours and sizes."""
    rng = np.random.default_rng(seed)
    w, h = size
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, h)[:, None, None]
    sky = (top * (1 - t) + bottom * t).repeat(w, axis=1).astype(np.uint8)
    im = Image.fromarray(sky)
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(6, 14))):
        x0, y0 = int(rng.integers(-w // 4, w)), int(rng.integers(-h // 4, h))
        x1, y1 = x0 + int(rng.integers(w // 10, w // 2)), y0 + int(rng.integers(h // 10, h // 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    return im.filter(ImageFilter.GaussianBlur(2))


def photos() -> dict[str, Image.Image]:
    """The seed photos as the loader gives them to the indexer, or synthetic stand-ins."""
    if SEED_PHOTOS.is_dir():
        paths = sorted(p for p in SEED_PHOTOS.iterdir() if p.suffix.lower() in (".jpg", ".png"))
        if len(paths) >= 5:
            return {p.stem: load_image(p, target=256).image for p in paths}
    return {f"synthetic-{i}": synthetic_photo(i) for i in range(12)}


@pytest.fixture(scope="module")
def library() -> dict[str, Image.Image]:
    return photos()


def reencode(im: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return load_image(buf.getvalue()).image


EDITS = {
    "jpeg quality 60": lambda im: reencode(im, 60),
    "resized to 40 %": lambda im: im.resize((max(1, round(im.width * 0.4)), max(1, round(im.height * 0.4))),
                                            Image.Resampling.LANCZOS),
    "brightness x1.1": lambda im: ImageEnhance.Brightness(im).enhance(1.1),
    "contrast x0.9": lambda im: ImageEnhance.Contrast(im).enhance(0.9),
    "png round trip": lambda im: im.convert("RGBA").convert("RGB"),
}


@pytest.mark.parametrize("edit", EDITS)
def test_same_photo_after_edits_stays_close(library: dict[str, Image.Image], edit: str) -> None:
    distances = {name: hamming(perceptual_hash(im), perceptual_hash(EDITS[edit](im)))
                 for name, im in library.items()}
    assert max(distances.values()) <= 8, distances


def test_reduced_and_full_size_decodes_hash_alike() -> None:
    big = synthetic_photo(42, (2400, 1800))
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=85)
    full = perceptual_hash(load_image(buf.getvalue()).image)
    reduced = perceptual_hash(load_image(buf.getvalue(), target=256).image)
    assert hamming(full, reduced) <= 4


def test_the_grey_thumbnail_of_a_big_decode_is_lanczos_all_the_way_within_a_grey_level() -> None:
    """The indexer's fingerprints of a 1000-px decode (box-reduced first, then Lanczos) are what
    Lanczos alone gives, near enough that thumbnails kept by older versions still compare."""
    big = synthetic_photo(7, (1020, 768))
    grey = big.convert("L")
    lanczos = np.asarray(grey.resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    thumb = np.frombuffer(grey_thumbnail(big), dtype=np.uint8).reshape(32, 32)
    assert float(np.abs(thumb - lanczos).mean()) < 1.0
    assert fingerprints(big) == (perceptual_hash(big), grey_thumbnail(big))


def test_the_indexers_model_sized_picture_gives_the_decodes_fingerprints_nearly() -> None:
    """The indexer hands its model-sized picture along (no second shrink of the decode): the
    grey thumbnail stays within a grey level of the decode's, the pHash within a few bits, so
    fingerprints kept by older versions still compare; one under 32 px a side is not used."""
    from clipphotos.preprocess import fit
    for seed in range(6):
        decode = synthetic_photo(seed, (1020, 680))
        model_sized = fit(decode, 224)
        phash, thumb = fingerprints(decode, model_sized)
        assert (phash, thumb) == fingerprints(model_sized)
        old_phash, old_thumb = fingerprints(decode)
        assert hamming(phash, old_phash) <= 6
        diff = np.abs(np.frombuffer(thumb, np.uint8).astype(float) - np.frombuffer(old_thumb, np.uint8))
        assert float(diff.mean()) < 1.0
    too_small = fit(decode, 40)   # 40 × 27
    assert fingerprints(decode, too_small) == fingerprints(decode)


def test_different_photos_are_far_apart(library: dict[str, Image.Image]) -> None:
    hashes = {name: perceptual_hash(im) for name, im in library.items()}
    distances = [hamming(a, b) for a, b in itertools.combinations(hashes.values(), 2)]
    print(f"\nunrelated pairs: {len(distances)}, mean distance {np.mean(distances):.1f}, "
          f"min {min(distances)}, max {max(distances)}")
    assert sum(d >= 16 for d in distances) >= 0.9 * len(distances)
    assert 24 <= float(np.mean(distances)) <= 40


def test_synthetic_photos_are_far_apart_too() -> None:
    hashes = [perceptual_hash(synthetic_photo(i)) for i in range(100, 112)]
    distances = [hamming(a, b) for a, b in itertools.combinations(hashes, 2)]
    assert sum(d >= 16 for d in distances) >= 0.9 * len(distances)


def test_hash_fits_a_signed_64_bit_sqlite_integer(library: dict[str, Image.Image]) -> None:
    for im in library.values():
        h = perceptual_hash(im)
        assert isinstance(h, int)
        assert -(2**63) <= h < 2**63
        assert h == perceptual_hash(im.copy())  # deterministic


def test_hash_ignores_mode_and_handles_tiny_or_flat_pictures() -> None:
    im = synthetic_photo(5)
    assert hamming(perceptual_hash(im), perceptual_hash(im.convert("L"))) == 0
    assert hamming(perceptual_hash(im), perceptual_hash(im.convert("RGBA"))) == 0
    for odd in (Image.new("RGB", (1, 1), "red"), Image.new("RGB", (3, 700), "blue"),
                Image.new("RGB", (64, 64), (128, 128, 128))):
        h = perceptual_hash(odd)
        assert -(2**63) <= h < 2**63


def test_flip_is_a_different_picture() -> None:
    im = synthetic_photo(9)
    flipped = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    assert hamming(perceptual_hash(im), perceptual_hash(flipped)) >= 8


def test_hamming() -> None:
    assert hamming(0, 0) == 0
    assert hamming(0b1011, 0b0001) == 2
    assert hamming(0, -1) == 64  # signed values compare as their 64-bit patterns
    assert hamming(-(2**63), 2**63 - 1) == 64
    assert hamming(-5, -5) == 0
    assert hamming(12345, -12345) == hamming(-12345, 12345)


def test_dct_matrix_is_orthonormal_dct_ii() -> None:
    m = _dct_matrix(32)
    assert np.allclose(m @ m.T, np.eye(32))
    x = np.random.default_rng(0).normal(size=32)
    n = np.arange(32)
    naive = np.array([np.sum(x * np.cos(np.pi * k * (2 * n + 1) / 64)) for k in range(32)])
    naive *= np.sqrt(2 / 32)
    naive[0] /= np.sqrt(2)
    assert np.allclose(m @ x, naive)
