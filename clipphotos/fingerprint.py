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
    bits = low > np.partition(low, HASH_BITS // 2)[HASH_BITS // 2]   # the median of 63 (np.median imports numpy.ma)
    return int((bits.astype(np.uint64) * _WEIGHTS).sum())


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes (0 = same picture, ~32 = unrelated).

    Works on the 64-bit two's-complement patterns, so negative (signed) values are fine.
    """
    return ((a ^ b) & _MASK64).bit_count()


# -- thumbnails that confirm near-duplicates -------------------------------------------------
#
# The pHash cannot tell a light crop or a burst frame (the DCT shifts) from a different photo
# of one subject, so a 32×32 grey thumbnail is kept too (`grey_thumbnail`, 1 KB), and two
# candidates are compared after aligning one onto the other: a coarse search over per-axis
# zoom and shift at 16×16, then Gauss-Newton at 32×32 (the transform is separable: a crop or a
# burst shift maps x to a·x + t on each axis, whatever the aspect ratio did). The score is the
# correlation of the aligned pictures' 12×12 lowest DCT frequencies, each coefficient weighted
# by the pair's own magnitude: whitened like this, fine structure counts as much as the big
# blobs, so a mirrored flower or a neighbouring crop of one scene scores low while a
# re-encoded, resized, re-exposed or cropped copy scores high.

_ZOOMS = (1 / 1.15, 1 / 1.1, 1 / 1.05, 1.0, 1.05, 1.1, 1.15)  # the coarse search: ±15 % per axis
_SLACK = 0.02      # how far a window may stick out of the other picture (unit coordinates)
_SCORE_KEEP = 12   # lowest DCT frequencies per axis compared after alignment
_LAYOUT_KEEP = 6   # ... and describing the layout, for candidates (robust to crops)
_CHUNK = 256       # pairs aligned at once (memory ~ 20 KB a pair)


def grey_thumbnail(img: Image.Image) -> bytes:
    """The picture as 32×32 grey pixels, 1024 bytes: stored to confirm near-duplicates later.

    Lanczos, not the pHash's box average: a box lets fine texture alias differently after
    different decoders (a JPEG reduced by its DCT, a PNG by area), and aligned comparison
    looks at finer detail than the pHash does. The Lanczos step starts from at least 3× the
    thumbnail (Pillow's `reducing_gap` box-reduces a big picture by whole factors first): 4×
    faster on an indexer's decode, within 0.4 grey levels on average of Lanczos all the way.
    """
    grey = img if img.mode == "L" else img.convert("L")
    return np.asarray(grey.resize((_SIZE, _SIZE), Image.Resampling.LANCZOS, reducing_gap=3.0),
                      dtype=np.uint8).tobytes()


def fingerprints(img: Image.Image, smaller: Image.Image | None = None) -> tuple[int, bytes]:
    """`perceptual_hash` and `grey_thumbnail` of one picture, turned grey once for both.

    `smaller`, the same picture already shrunk (the indexer's input for the model), is used
    instead while it keeps at least the thumbnail's 32 px on each side: both fingerprints
    shrink far below that anyway, and a model-sized picture costs a tenth of a decode's time.
    """
    if smaller is not None and min(smaller.size) >= _SIZE:
        img = smaller
    grey = img if img.mode == "L" else img.convert("L")
    return perceptual_hash(grey), grey_thumbnail(grey)


def thumbnails(blobs: list[bytes]) -> np.ndarray:
    """(n, 32, 32) float32 pixels of stored `grey_thumbnail`s."""
    if not blobs:
        return np.zeros((0, _SIZE, _SIZE), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(-1, _SIZE, _SIZE).astype(np.float32)


def layout_vectors(thumbs: np.ndarray, zoom: float = 1.0) -> np.ndarray:
    """Unit vectors of the whitened 6×6 lowest frequencies, for nearest-neighbour candidates.

    `zoom` > 1 describes the centre 1/zoom of each picture, which is what a crop of it looks
    like: querying with zoomed vectors finds the cropped copies of a photo.
    """
    d = _D[:_LAYOUT_KEEP].astype(np.float32)
    if zoom != 1.0:
        d = d @ _resample_matrix(_SIZE, zoom, 0.0)   # the DCT of the zoomed picture, in one step
    n = len(thumbs)
    rows = (thumbs.reshape(n * _SIZE, _SIZE) @ d.T).reshape(n, _SIZE, _LAYOUT_KEEP)   # two plain GEMMs
    low = (rows.transpose(0, 2, 1).reshape(n * _LAYOUT_KEEP, _SIZE) @ d.T).reshape(n, -1)
    low = low.reshape(n, _LAYOUT_KEEP, _LAYOUT_KEEP).transpose(0, 2, 1).reshape(n, -1)[:, 1:]
    u, v = np.divmod(np.arange(1, _LAYOUT_KEEP * _LAYOUT_KEEP), _LAYOUT_KEEP)
    low = low * np.hypot(u, v).astype(np.float32)  # natural pictures fall off as 1/f: flatten that
    return low / np.maximum(np.linalg.norm(low, axis=1, keepdims=True), 1e-6)


def match_thumbnails(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Similarity of aligned thumbnail pairs a[i] ~ b[i], and the per-axis zoom that aligned them.

    Scores run from about 0 (unrelated) to 1 (same pixels); a copy that was cropped, resized,
    re-encoded or re-exposed stays above ~0.6. Zooms are b's magnification relative to a,
    (p, 2) as (x, y): well above 1 means b is a crop of a.
    """
    scores, zooms = [], []
    for start in range(0, len(a), _CHUNK):
        s, z = _match_chunk(a[start:start + _CHUNK], b[start:start + _CHUNK])
        scores.append(s)
        zooms.append(z)
    if not scores:
        return np.zeros(0, dtype=np.float32), np.zeros((0, 2), dtype=np.float32)
    return np.concatenate(scores), np.concatenate(zooms)


def _match_chunk(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    params = _coarse_alignment(_halve(a), _halve(b))
    warped, target, params = _refine_alignment(a, b, *params)
    return _whitened_correlation(warped, target), 1.0 / np.stack([params[0], params[2]], 1)


def _halve(x: np.ndarray) -> np.ndarray:
    p, n, _ = x.shape
    return x.reshape(p, n // 2, 2, n // 2, 2).mean(axis=(2, 4))


def _resample_matrix(n: int, zoom: float, shift: float) -> np.ndarray:
    """(n, n) linear interpolation reading source x = 0.5 + (u - 0.5)/zoom + shift at each output u."""
    return _tent(_positions(np.array([1.0 / zoom]), np.array([shift]), n, 0), n)[0][0]


def _positions(scale: np.ndarray, shift: np.ndarray, n: int, margin: int) -> np.ndarray:
    """Source pixel positions (p, n - 2·margin) of the output samples, for per-pair scale and shift."""
    u = (np.arange(margin, n - margin) + 0.5) / n - 0.5
    return np.clip((0.5 + scale[:, None] * u[None, :] + shift[:, None]) * n - 0.5, 0, n - 1)


def _tent(pos: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation weights (p, m, n) at the positions, and their derivative by position."""
    d = np.arange(n, dtype=np.float32)[None, None, :] - pos[:, :, None].astype(np.float32)
    inside = np.abs(d) < 1
    return np.where(inside, 1 - np.abs(d), 0).astype(np.float32), np.where(inside, np.sign(d), 0).astype(np.float32)


def _coarse_warps(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (scale, shift) of the coarse search and its (k, n, n) interpolation matrices."""
    step = 1 / (2 * n)
    params = []
    for zoom in _ZOOMS:
        reach = int((abs(0.5 / zoom - 0.5) + _SLACK) / step + 1e-9)  # the window stays (almost) inside
        params += [(1 / zoom, i * step) for i in range(-reach, reach + 1)]
    scale, shift = np.array(params).T
    return np.array(params), _tent(_positions(scale, shift, n, 0), n)[0]


_COARSE = _coarse_warps(_SIZE // 2)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=-1, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-6)


def _coarse_alignment(a: np.ndarray, b: np.ndarray, margin: int = 2) -> tuple[np.ndarray, ...]:
    """Per pair, the grid warp of `a` (x first, then y) that correlates best with `b`'s inside."""
    params, warps = _COARSE
    p, n, _ = a.shape
    inner = slice(margin, n - margin)
    target = _unit_rows(b[:, inner, inner].reshape(p, -1))
    identity = int(np.argmin(np.abs(params[:, 0] - 1) + np.abs(params[:, 1])))
    warps_t = warps.transpose(0, 2, 1)
    rows = warps[identity][inner] @ a                                    # y untouched, inside rows
    cand = (rows[:, None] @ warps_t[None, :, :, inner]).reshape(p, len(warps), -1)
    ix = (_unit_rows(cand) @ target[:, :, None])[..., 0].argmax(1)
    cols = a @ warps_t[ix][:, :, inner]                                  # best x warp, inside columns
    cand = (warps[None, :, inner, :] @ cols[:, None]).reshape(p, len(warps), -1)
    iy = (_unit_rows(cand) @ target[:, :, None])[..., 0].argmax(1)
    return params[ix, 0], params[ix, 1], params[iy, 0], params[iy, 1]


def _refine_alignment(a: np.ndarray, b: np.ndarray, sx: np.ndarray, tx: np.ndarray, sy: np.ndarray,
                      ty: np.ndarray, margin: int = 3, steps: int = 3) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Gauss-Newton on b ≈ gain·a(warped) + offset; returns warped a, b's inside, and the warp."""
    p, n, _ = a.shape
    target = b[:, margin:n - margin, margin:n - margin]
    u = ((np.arange(margin, n - margin) + 0.5) / n - 0.5).astype(np.float32) * n
    eye = 1e-2 * np.eye(6, dtype=np.float32)
    for _ in range(steps):
        (wx, dx), (wy, dy) = _tent(_positions(sx, tx, n, margin), n), _tent(_positions(sy, ty, n, margin), n)
        a_x = a @ wx.transpose(0, 2, 1)
        warped = wy @ a_x
        gx = wy @ (a @ dx.transpose(0, 2, 1))   # ∂warped/∂(source x), per output pixel
        gy = dy @ a_x
        jac = np.stack([warped, np.ones_like(warped), gx * u[None, None, :], gx * n,
                        gy * u[None, :, None], gy * n], axis=-1).reshape(p, -1, 6)
        jac_t = jac.transpose(0, 2, 1)
        sol = np.linalg.solve(jac_t @ jac + eye, jac_t @ target.reshape(p, -1, 1))[..., 0]
        gain = np.where(np.abs(sol[:, 0]) < 1e-3, 1e-3, sol[:, 0])
        step = sol[:, 2:] / gain[:, None]
        sx, tx = np.clip(sx + step[:, 0], 0.8, 1.25), np.clip(tx + step[:, 1], -0.15, 0.15)
        sy, ty = np.clip(sy + step[:, 2], 0.8, 1.25), np.clip(ty + step[:, 3], -0.15, 0.15)
    wx, wy = _tent(_positions(sx, tx, n, margin), n)[0], _tent(_positions(sy, ty, n, margin), n)[0]
    return wy @ a @ wx.transpose(0, 2, 1), target, (sx, tx, sy, ty)


def _whitened_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Correlation of the lowest DCT frequencies (DC left out), each weighted by the pair's magnitude."""
    d = _dct_matrix(a.shape[1])[:_SCORE_KEEP].astype(np.float32)
    fa = (d @ a @ d.T).reshape(len(a), -1)[:, 1:]
    fb = (d @ b @ d.T).reshape(len(b), -1)[:, 1:]
    weight = 1 / (np.abs(fa) + np.abs(fb) + 1e-3)
    fa, fb = fa * weight, fb * weight
    return (fa * fb).sum(1) / np.maximum(np.linalg.norm(fa, axis=1) * np.linalg.norm(fb, axis=1), 1e-9)
