"""Perceptual fingerprints to find the same photo saved twice, resized, re-encoded or edited.

A DCT pHash keeps only the coarse structure of the picture (the lowest spatial frequencies
of a 32×32 grey thumbnail), so re-compression, resizing and small exposure changes move few
of its bits, while unrelated photos differ in about half of them.

Hashes are stored in SQLite, whose INTEGER is a signed 64-bit number. The hash has 63 bits
(the 8×8 lowest frequencies minus the DC term, which only encodes mean brightness), so it
is always in 0 .. 2**63 - 1 and fits as it is, with no sign juggling. `hamming` also
accepts any values in the signed 64-bit range, should hashes of another kind be compared.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

HASH_BITS = 63
_SIZE = 32  # side of the grey thumbnail the DCT is taken of
_KEEP = 8  # lowest frequencies kept per axis
_MASK64 = (1 << 64) - 1


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix: `M @ x` is the DCT of the column vector x."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0, :] /= np.sqrt(2.0)
    return m


# Only the first _KEEP rows are ever needed: the 2-D DCT's low corner is D8 @ X @ D8.T.
_D = _dct_matrix(_SIZE)[:_KEEP]
_WEIGHTS = 1 << np.arange(HASH_BITS - 1, -1, -1, dtype=np.uint64)


def perceptual_hash(img: Image.Image) -> int:
    """63-bit DCT pHash of an upright picture, as a non-negative int below 2**63.

    Expects what `loader.load_image` returns (RGB, upright, ideally already reduced: a
    256-px image takes well under a millisecond). Alpha, if any, is ignored.
    """
    grey = img if img.mode == "L" else img.convert("L")
    # BOX = area average: the right anti-aliasing for a big reduction, and the fastest.
    small = grey.resize((_SIZE, _SIZE), Image.Resampling.BOX)
    x = np.asarray(small, dtype=np.float64)
    low = (_D @ x @ _D.T).ravel()[1:]  # 8×8 lowest frequencies, row-major, DC dropped
    bits = low > np.median(low)
    return int((bits.astype(np.uint64) * _WEIGHTS).sum())


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes (0 = same picture, ~32 = unrelated).

    Works on the 64-bit two's-complement patterns, so negative (signed) values are fine.
    """
    return ((a ^ b) & _MASK64).bit_count()
