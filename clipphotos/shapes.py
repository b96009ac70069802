"""Pictures of one coloured shape: a tiny world whose content is known exactly.

The bundled ``shapes-clip`` model was trained on these pictures, the test-suite measures search
and tagging against them, and ``clipphotos demo`` draws a demo library with them. They are
meant to look like files a user could own rather than like a clean dataset: any size and
orientation, the shape anywhere and slightly rotated, plain, gradient or noisy backgrounds,
JPEG artefacts, and file names that say nothing about the content.

Everything is driven by a caller-supplied :class:`random.Random`, so a seed reproduces a
picture (or a whole library) exactly.
"""
from __future__ import annotations

import colorsys
import io
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 35),
    "green": (35, 165, 60),
    "blue": (35, 85, 225),
    "yellow": (250, 215, 35),
    "purple": (135, 55, 190),
    "orange": (250, 135, 20),
    "white": (248, 248, 248),
    "black": (18, 18, 18),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")

#: Every colour × shape class, in a fixed order.
CLASSES: tuple[tuple[str, str], ...] = tuple((c, s) for c in COLOURS for s in SHAPES)

BACKGROUND_KINDS: tuple[str, ...] = ("plain", "gradient", "noisy")

_ACHROMATIC = frozenset({"white", "black"})
_MIN_HUE_GAP = 70.0  # degrees; keeps e.g. orange and yellow backgrounds away from a yellow shape
_MIN_RGB_DISTANCE = 110.0  # Euclidean; the shape must stand out even in a small thumbnail


# --------------------------------------------------------------------------- picture spec

@dataclass
class ShapeSpec:
    """Everything that decides how one picture looks; :meth:`render` draws it.

    Geometry is in pixels of the final picture. ``diameter`` is the shape's nominal extent,
    a fraction (15–60 %) of the picture's shorter side.
    """

    colour: str
    shape: str
    size: tuple[int, int]
    centre: tuple[float, float]
    diameter: float
    rotation: float  # degrees, counter-clockwise
    fill: tuple[int, int, int]
    background: str  # one of BACKGROUND_KINDS
    background_rgb: tuple[int, int, int]
    background_rgb2: tuple[int, int, int]  # the far end of a gradient
    gradient_angle: float = 0.0
    noise_sigma: float = 0.0
    noise_seed: int = 0
    background_name: str = field(default="grey")

    @classmethod
    def sample(cls, rng: random.Random, colour: str, shape: str,
               size: tuple[int, int] | None = None) -> ShapeSpec:
        """A random picture of a `colour` `shape`; `size` is (width, height), random if None."""
        if colour not in COLOURS:
            raise ValueError(f"unknown colour {colour!r}; expected one of {sorted(COLOURS)}")
        if shape not in SHAPES:
            raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
        w, h = size if size is not None else random_size(rng)
        diameter = rng.uniform(0.15, 0.60) * min(w, h)
        reach = diameter / 2 * _REACH
        centre = (rng.uniform(reach, w - reach), rng.uniform(reach, h - reach))
        fill = _jitter(rng, COLOURS[colour], 14)
        bg = _background_colour(rng, colour)
        kind = rng.choice(BACKGROUND_KINDS)
        bg2 = bg
        if kind == "gradient":
            # The far end stays a legal background too, so no part of the frame blends in.
            for _ in range(50):
                bg2 = _shift_colour(rng, bg)
                if _is_legal_background(bg2, colour):
                    break
            else:
                bg2 = bg
        return cls(
            colour=colour, shape=shape, size=(w, h), centre=centre, diameter=diameter,
            rotation=rng.uniform(-20.0, 20.0), fill=fill, background=kind,
            background_rgb=bg, background_rgb2=bg2,
            gradient_angle=rng.uniform(0.0, 360.0),
            noise_sigma=rng.uniform(6.0, 28.0) if kind == "noisy" else 0.0,
            noise_seed=rng.getrandbits(32), background_name=colour_name(bg),
        )

    @property
    def background_desc(self) -> str:
        """A caption phrase such as ``"a grey background"`` or ``"a noisy blue background"``."""
        style = {"plain": "", "gradient": "gradient ", "noisy": "noisy "}[self.background]
        if self.background != "plain" and self.noise_seed % 2:
            style = ""  # people rarely mention the texture; keep it occasional
        return f"a {self.background_name} {style}background"

    def render(self) -> Image.Image:
        """The picture as an upright RGB image."""
        img = _render_background(self)
        _paste_shape(img, self)
        return img


def random_size(rng: random.Random, long_side: tuple[int, int] = (200, 1600)) -> tuple[int, int]:
    """A photo-like (width, height): common aspect ratios, landscape or portrait."""
    long = rng.randint(*long_side)
    aspect = rng.choice((1.0, 5 / 4, 4 / 3, 4 / 3, 3 / 2, 16 / 9))
    short = max(1, round(long / aspect))
    return (long, short) if rng.random() < 0.6 else (short, long)


def draw_shape(rng: random.Random, colour: str, shape: str,
               size: tuple[int, int] | None = None) -> Image.Image:
    """A random upright RGB picture of one `colour` `shape` (see :class:`ShapeSpec`)."""
    return ShapeSpec.sample(rng, colour, shape, size).render()


# --------------------------------------------------------------------------- captions

_FULL_TEMPLATES: tuple[str, ...] = (
    "{c} {s}",
    "a {c} {s}",
    "a {c} {s}",
    "a photo of a {c} {s}.",
    "a photo of a {c} {s}.",
    "a picture of a {c} {s}.",
    "a picture of a {c} {s}.",
    "a photo of a {c} {s}",
    "a picture of a {c} {s}",
    "an image of a {c} {s}",
    "a {s} that is {c}",
    "a {c} {s} shape",
    "the {c} {s}",
    "a drawing of a {c} {s}",
    "{c} {s} picture",
    "a {c} coloured {s}",
    "a {s}, {c}",
    "one {c} {s}",
    "photo of a {c} {s}",
    "a photo of the {c} {s}.",
    "a simple {c} {s}",
    "a {s} in {c}",
)
_BACKGROUND_TEMPLATES: tuple[str, ...] = (
    "a {c} {s} on {bg}",
    "a photo of a {c} {s} on {bg}",
    "a picture of a {c} {s} on {bg}.",
    "{c} {s} on {bg}",
)
_COLOUR_TEMPLATES: tuple[str, ...] = (
    "{c}",
    "a photo of {c}.",
    "a picture of {c}.",
    "something {c}",
    "something {c}",
    "a {c} shape",
    "a {c} shape",
    "a photo of a {c} shape.",
    "a picture of a {c} shape.",
    "a photo of something {c}.",
    "a picture of something {c}.",
    "{c} shape",
    "a {c} thing",
    "the colour {c}",
    "a shape that is {c}",
    "a photo of {c} things.",
)
_SHAPE_TEMPLATES: tuple[str, ...] = (
    "{s}",
    "a {s}",
    "a {s}",
    "a photo of {s}.",
    "a picture of {s}.",
    "a photo of a {s}.",
    "a photo of a {s}.",
    "a picture of a {s}.",
    "a picture of a {s}.",
    "a photo of a {s}",
    "a {s} shape",
    "{s} shape",
    "an image of a {s}",
    "a drawing of a {s}",
    "the {s}",
    "something shaped like a {s}",
)


def caption(rng: random.Random, colour: str | None, shape: str | None,
            background_desc: str | None = None) -> str:
    """A training caption in varied wording, e.g. ``"a photo of a blue star on a grey background"``.

    Passing None for `colour` or `shape` gives a partial caption ("a red shape", "a photo of a
    star"), which is what teaches the model single-attribute tags.
    """
    if colour is None and shape is None:
        raise ValueError("a caption needs a colour, a shape, or both")
    if shape is None:
        return rng.choice(_COLOUR_TEMPLATES).format(c=colour)
    if colour is None:
        return rng.choice(_SHAPE_TEMPLATES).format(s=shape)
    if background_desc and rng.random() < 0.2:
        return rng.choice(_BACKGROUND_TEMPLATES).format(c=colour, s=shape, bg=background_desc)
    return rng.choice(_FULL_TEMPLATES).format(c=colour, s=shape)


# --------------------------------------------------------------------------- library on disk

_FORMATS: dict[str, tuple[str, tuple[str, ...]]] = {
    "jpg": ("JPEG", (".jpg", ".jpg", ".jpg", ".jpeg", ".JPG")),
    "png": ("PNG", (".png",)),
    "webp": ("WEBP", (".webp",)),
}
_FOLDERS: tuple[str, ...] = ("", "", "", "Camera", "2023/summer", "2024/01 January", "misc",
                             "Downloads", "family/old scans")


def write_library(folder: Path, count: int, seed: int, *,
                  formats: tuple[str, ...] = ("jpg", "png"),
                  long_side: tuple[int, int] = (200, 1600)) -> list[dict]:
    """Draw `count` pictures into `folder` as a user's photo files; return the ground truth.

    Classes cycle evenly through all 32 colour × shape pairs (in shuffled order, so any
    multiple of 32 is perfectly balanced). Names look like camera or download files and never
    mention the content, some files sit in subfolders, and JPEGs use quality 60–95. Each
    record is ``{"path": <path relative to folder, POSIX>, "colour": ..., "shape": ...}``.
    The same seed writes byte-identical files.
    """
    unknown = set(formats) - set(_FORMATS)
    if not formats or unknown:
        raise ValueError(f"formats must be a non-empty subset of {sorted(_FORMATS)}")
    rng = random.Random(seed)
    folder = Path(folder)
    records: list[dict] = []
    used: set[str] = set()
    order: list[tuple[str, str]] = []
    for i in range(count):
        if i % len(CLASSES) == 0:
            order = list(CLASSES)
            rng.shuffle(order)
        colour, shape = order[i % len(CLASSES)]
        spec = ShapeSpec.sample(rng, colour, shape, random_size(rng, long_side))
        fmt = formats[i % len(formats)]
        pil_format, extensions = _FORMATS[fmt]
        rel = _unique_name(rng, rng.choice(extensions), used)
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(spec.render(), pil_format, rng.randint(60, 95)))
        records.append({"path": rel, "colour": colour, "shape": shape})
    return records


def encode(img: Image.Image, pil_format: str = "JPEG", quality: int = 85) -> bytes:
    """`img` as file bytes; `quality` applies to lossy formats."""
    buf = io.BytesIO()
    if pil_format == "PNG":
        img.save(buf, "PNG", compress_level=1)  # speed; content is identical at any level
    else:
        img.save(buf, pil_format, quality=quality)
    return buf.getvalue()


def _unique_name(rng: random.Random, ext: str, used: set[str]) -> str:
    while True:
        style = rng.randrange(5)
        if style == 0:
            stem = f"IMG_{rng.randint(1, 9999):04d}"
        elif style == 1:
            stem = f"DSC{rng.randint(1, 99999):05d}"
        elif style == 2:
            stem = (f"PXL_2024{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}_"
                    f"{rng.randint(0, 235959):06d}")
        elif style == 3:
            stem = (f"photo_{rng.randint(2015, 2025)}-{rng.randint(1, 12):02d}-"
                    f"{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}.{rng.randint(0, 59):02d}")
        else:
            stem = f"image ({rng.randint(1, 300)})"
        sub = rng.choice(_FOLDERS)
        rel = f"{sub}/{stem}{ext}" if sub else f"{stem}{ext}"
        if rel.lower() not in used:  # case-insensitive file systems exist
            used.add(rel.lower())
            return rel


# --------------------------------------------------------------------------- colours

def colour_name(rgb: tuple[int, int, int]) -> str:
    """A plain-English name for a background colour ("grey", "dark blue", "pink", ...)."""
    h, s, v = colorsys.rgb_to_hsv(*(x / 255 for x in rgb))
    if s < 0.18 or v < 0.12:
        if v > 0.85:
            return "white"
        if v < 0.22:
            return "black"
        return "light grey" if v > 0.65 else "dark grey" if v < 0.38 else "grey"
    hue = h * 360
    names = ((15, "red"), (40, "orange"), (70, "yellow"), (165, "green"), (195, "teal"),
             (255, "blue"), (290, "purple"), (345, "pink"), (361, "red"))
    name = next(n for limit, n in names if hue < limit)
    if name == "orange" and v < 0.6:
        return "brown"
    if v < 0.45:
        return f"dark {name}"
    if s < 0.45 and v > 0.7 and name != "pink":
        return f"light {name}"
    return name


def _hue_distance(a: float, b: float) -> float:
    d = abs(a - b) % 360
    return min(d, 360 - d)


def _is_legal_background(rgb: tuple[int, int, int], colour: str) -> bool:
    """Whether `rgb` is a background that cannot be mistaken for the shape's `colour`."""
    target = COLOURS[colour]
    if math.dist(rgb, target) < _MIN_RGB_DISTANCE:
        return False
    h, s, v = colorsys.rgb_to_hsv(*(x / 255 for x in rgb))
    if colour in _ACHROMATIC:
        # No greys behind white or black shapes, and enough contrast in brightness.
        return s >= 0.4 and (v <= 0.85 if colour == "white" else v >= 0.45)
    if s < 0.15 or v < 0.2:
        return True  # greys, near-black and near-white are fine behind a coloured shape
    th, _, _ = colorsys.rgb_to_hsv(*(x / 255 for x in target))
    return _hue_distance(h * 360, th * 360) >= _MIN_HUE_GAP


def _background_colour(rng: random.Random, colour: str) -> tuple[int, int, int]:
    while True:
        if colour not in _ACHROMATIC and rng.random() < 0.3:
            v = rng.uniform(0.1, 0.95)
            rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.1), v)
        else:
            rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.15, 1.0), rng.uniform(0.2, 1.0))
        cand = tuple(round(255 * x) for x in rgb)
        if _is_legal_background(cand, colour):  # type: ignore[arg-type]
            return cand  # type: ignore[return-value]


def _shift_colour(rng: random.Random, rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    h, s, v = colorsys.rgb_to_hsv(*(x / 255 for x in rgb))
    h = (h + rng.uniform(-0.08, 0.08)) % 1.0
    s = min(1.0, max(0.0, s + rng.uniform(-0.25, 0.25)))
    v = min(1.0, max(0.05, v + rng.uniform(-0.35, 0.35)))
    return tuple(round(255 * x) for x in colorsys.hsv_to_rgb(h, s, v))  # type: ignore[return-value]


def _jitter(rng: random.Random, rgb: tuple[int, int, int], amount: int) -> tuple[int, int, int]:
    return tuple(min(255, max(0, x + rng.randint(-amount, amount))) for x in rgb)  # type: ignore[return-value]


# --------------------------------------------------------------------------- rendering

_REACH = 1.15  # farthest vertex from the centre, in radii (the square's rotated corner)
_SUPERSAMPLE = 4  # the shape is drawn at 4× and reduced, for smooth anti-aliased edges


def _render_background(spec: ShapeSpec) -> Image.Image:
    w, h = spec.size
    if spec.background == "plain":
        return Image.new("RGB", (w, h), spec.background_rgb)
    nrng = np.random.default_rng(spec.noise_seed)
    if spec.background == "gradient":
        a = math.radians(spec.gradient_angle)
        x = np.linspace(-0.5, 0.5, w, dtype=np.float32) * math.cos(a) * w / max(w, h)
        y = np.linspace(-0.5, 0.5, h, dtype=np.float32) * math.sin(a) * h / max(w, h)
        t = np.clip(x[None, :] + y[:, None] + 0.5, 0.0, 1.0)[..., None]
        c1 = np.asarray(spec.background_rgb, np.float32)
        c2 = np.asarray(spec.background_rgb2, np.float32)
        arr = c1 * (1 - t) + c2 * t
    else:
        # Fine grain plus coarse blotches, like a sensor in poor light or a textured wall.
        # Mostly brightness, a little colour, so the background keeps its named hue.
        gh, gw = max(2, h // 40), max(2, w // 40)
        coarse = nrng.normal(0.0, spec.noise_sigma, (gh, gw, 1)) \
            + nrng.normal(0.0, spec.noise_sigma * 0.3, (gh, gw, 3))
        blotches = np.asarray(Image.fromarray(
            np.clip(coarse + 128, 0, 255).astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR),
            np.float32) - 128
        grain = nrng.normal(0.0, spec.noise_sigma * 0.6, (h, w, 1)).astype(np.float32)
        arr = np.asarray(spec.background_rgb, np.float32) + blotches + grain
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _outline(shape: str, radius: float, rotation: float) -> list[tuple[float, float]]:
    """Polygon vertices around the origin (y down) for the non-circular shapes."""
    if shape == "square":  # half-side 0.8 r: about the visual weight of the circle
        pts = [(math.radians(45 + 90 * k), radius * 0.8 * math.sqrt(2)) for k in range(4)]
    elif shape == "triangle":
        pts = [(math.radians(-90 + 120 * k), radius) for k in range(3)]
    else:  # star
        pts = [(math.radians(-90 + 36 * k), radius if k % 2 == 0 else radius * 0.42)
               for k in range(10)]
    rot = math.radians(-rotation)
    out = [(r * math.cos(a + rot), r * math.sin(a + rot)) for a, r in pts]
    if shape == "triangle":  # centre the triangle's bounding box, not its centroid
        ys = [p[1] for p in out]
        dy = (max(ys) + min(ys)) / 2
        out = [(x, y - dy) for x, y in out]
    return out


def _paste_shape(img: Image.Image, spec: ShapeSpec) -> None:
    r = spec.diameter / 2
    half = math.ceil(r * _REACH) + 2
    cx, cy = spec.centre
    x0, y0 = math.floor(cx) - half, math.floor(cy) - half
    side = 2 * half
    ss = _SUPERSAMPLE
    mask = Image.new("L", (side * ss, side * ss), 0)
    draw = ImageDraw.Draw(mask)
    ox, oy = (cx - x0) * ss, (cy - y0) * ss
    if spec.shape == "circle":
        draw.ellipse((ox - r * ss, oy - r * ss, ox + r * ss, oy + r * ss), fill=255)
    else:
        pts = [(ox + x * ss, oy + y * ss) for x, y in _outline(spec.shape, r, spec.rotation)]
        draw.polygon(pts, fill=255)
    mask = mask.resize((side, side), Image.Resampling.BOX)
    img.paste(Image.new("RGB", (side, side), spec.fill), (x0, y0), mask)
