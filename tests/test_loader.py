"""The image loader against real files made on the fly, and against Pillow's odd and broken ones."""
from __future__ import annotations

import collections
import io
import os
import struct
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, features

from clipphotos.loader import (
    MAX_PIXELS,
    SUPPORTED_EXTENSIONS,
    LoadedImage,
    UnreadableImage,
    is_supported,
    load_image,
)

PILLOW_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "pillow-test-images"

RED = (255, 0, 0)
GREY = (128, 128, 128)

# How a camera stores an upright picture for each EXIF orientation: the inverse of the
# transform a viewer applies (transposes are their own inverse, 90° turns are not).
STORE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def upright_picture(w: int, h: int) -> Image.Image:
    """Grey with a red block in the top-left corner and a blue one bottom-right."""
    im = Image.new("RGB", (w, h), GREY)
    im.paste(RED, (0, 0, w // 4, h // 4))
    im.paste((0, 0, 255), (w - w // 4, h - h // 4, w, h))
    return im


def as_camera_stores(upright: Image.Image, orientation: int) -> Image.Image:
    op = STORE[orientation]
    return upright if op is None else upright.transpose(op)


def exif_bytes(orientation: int | None = None, **tags: object) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    for key, value in tags.items():
        if key == "DateTimeOriginal":
            exif.get_ifd(0x8769)[0x9003] = value
        elif key == "DateTimeDigitized":
            exif.get_ifd(0x8769)[0x9004] = value
        else:
            exif[{"Make": 0x010F, "Model": 0x0110, "DateTime": 0x0132}[key]] = value
    return exif.tobytes()


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def assert_upright(img: Image.Image) -> None:
    """Red block top-left, blue bottom-right, grey elsewhere."""
    a = np.asarray(img).astype(int)
    h, w = a.shape[:2]
    def at(fx: float, fy: float) -> np.ndarray:
        return a[int(fy * h), int(fx * w)]
    assert np.abs(at(0.1, 0.1) - RED).max() < 40, at(0.1, 0.1)
    assert np.abs(at(0.9, 0.9) - (0, 0, 255)).max() < 40, at(0.9, 0.9)
    for corner in ((0.9, 0.1), (0.1, 0.9), (0.5, 0.5)):
        assert np.abs(at(*corner) - GREY).max() < 40, (corner, at(*corner))


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)).mean())


def photo_like(w: int, h: int, seed: int = 0) -> Image.Image:
    """Smooth gradients plus shapes: compresses like a photo, unlike random noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 100 * np.sin(x / w * 6.0 + rng.uniform(0, 3))
    g = 128 + 100 * np.cos(y / h * 5.0 + rng.uniform(0, 3))
    b = 128 + 90 * np.sin((x + y) / (w + h) * 9.0)
    im = Image.fromarray(np.stack([r, g, b], axis=2).clip(0, 255).astype(np.uint8))
    from PIL import ImageDraw

    draw = ImageDraw.Draw(im)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, w - w // 8)), int(rng.integers(0, h - h // 8))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse((x0, y0, x0 + w // 8, y0 + h // 8), fill=colour)
    return im


# ---------------------------------------------------------------------------------------
# Extensions


def test_supported_extensions() -> None:
    for ext in (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"):
        assert ext in SUPPORTED_EXTENSIONS
    assert all(e == e.lower() and e.startswith(".") for e in SUPPORTED_EXTENSIONS)
    if _have_heif():
        assert {".heic", ".heif"} <= SUPPORTED_EXTENSIONS
    assert ".txt" not in SUPPORTED_EXTENSIONS and ".eps" not in SUPPORTED_EXTENSIONS


def test_is_supported() -> None:
    assert is_supported("a/b/IMG_0001.JPG")
    assert is_supported(Path("holiday.Jpeg"))
    assert is_supported(b"/photos/caf\xe9.jpg")  # not valid UTF-8
    assert is_supported(b"/photos/caf\xe9.PNG")
    assert not is_supported("notes.txt")
    assert not is_supported("jpg")
    assert not is_supported("archive.jpg.zip")
    assert not is_supported("/photos/._IMG_0001.JPG")  # macOS AppleDouble, not a picture


# ---------------------------------------------------------------------------------------
# Orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_comes_out_upright(tmp_path: Path, orientation: int) -> None:
    upright = upright_picture(400, 300)
    path = tmp_path / f"o{orientation}.jpg"
    as_camera_stores(upright, orientation).save(path, quality=95, exif=exif_bytes(orientation))
    r = load_image(path)
    assert (r.width, r.height) == (400, 300)
    assert r.image.size == (400, 300)
    assert r.image.mode == "RGB"
    assert r.orientation == orientation
    assert r.format == "JPEG"
    assert_upright(r.image)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_with_draft_on_a_big_jpeg(orientation: int) -> None:
    upright = upright_picture(4000, 3000)
    data = encode(as_camera_stores(upright, orientation), "JPEG", quality=80,
                  exif=exif_bytes(orientation))
    r = load_image(data, target=256)
    assert (r.width, r.height) == (4000, 3000)
    assert r.image.size == (500, 375)  # libjpeg's 1/8 scale, then turned upright
    assert_upright(r.image)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
@pytest.mark.parametrize("orientation", [3, 6, 7])
def test_orientation_in_other_formats(fmt: str, orientation: int) -> None:
    upright = upright_picture(160, 120)
    data = encode(as_camera_stores(upright, orientation), fmt, exif=exif_bytes(orientation),
                  **({"lossless": True} if fmt == "WEBP" else {}))
    r = load_image(data)
    assert (r.width, r.height) == (160, 120)
    assert r.image.size == (160, 120)
    assert r.orientation == orientation
    assert_upright(r.image)


@pytest.mark.parametrize("bad", [0, 9, 255, 65535])
def test_out_of_range_orientation_is_ignored(bad: int) -> None:
    data = encode(upright_picture(120, 90), "JPEG", exif=exif_bytes(bad))
    r = load_image(data)
    assert r.orientation == 1 and r.image.size == (120, 90)
    assert_upright(r.image)


def _with_app1(jpeg: bytes, payload: bytes) -> bytes:
    """Insert an APP1 (EXIF) segment with arbitrary content right after SOI."""
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.parametrize("payload", [
    b"Exif\x00\x00garbage that is not TIFF",
    b"Exif\x00\x00II*\x00\xff\xff\xff\x7f",  # IFD offset far past the end
    b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00",  # cut short
    b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x02\x00\x04\x00\x00\x00six\x00",  # ASCII orientation
    b"Exif\x00\x00",
])
def test_broken_exif_never_fails_the_picture(payload: bytes) -> None:
    data = _with_app1(encode(upright_picture(120, 90), "JPEG"), payload)
    r = load_image(data)
    assert r.orientation == 1
    assert r.image.size == (120, 90)
    assert_upright(r.image)


# ---------------------------------------------------------------------------------------
# Metadata


def test_taken_at_and_camera() -> None:
    data = encode(upright_picture(64, 48), "JPEG", exif=exif_bytes(
        Make="Canon\x00", Model="  Canon EOS 80D\x00\x00", DateTimeOriginal="2021:07:04 12:34:56",
        DateTime="2022:01:01 00:00:00"))
    r = load_image(data)
    assert r.taken_at == "2021-07-04T12:34:56"
    assert r.camera == "Canon EOS 80D"


@pytest.mark.parametrize(("tags", "taken_at", "camera"), [
    ({"Make": "Apple", "Model": "iPhone 12"}, None, "Apple iPhone 12"),
    ({"Make": "NIKON CORPORATION", "Model": "NIKON D750"}, None, "NIKON D750"),
    ({"Model": "DSC-RX100"}, None, "DSC-RX100"),
    ({"Make": "  \x00 ", "Model": "\x00"}, None, None),
    ({"DateTimeOriginal": "0000:00:00 00:00:00", "DateTime": "2019:02:03 04:05:06"},
     "2019-02-03T04:05:06", None),
    ({"DateTimeOriginal": "    :  :     :  :  ", "DateTimeDigitized": "2018:12:31 23:59:59"},
     "2018-12-31T23:59:59", None),
    ({"DateTimeOriginal": "2020:02:30 10:00:00"}, None, None),  # no 30 February
    ({"DateTimeOriginal": "garbage"}, None, None),
])
def test_metadata_tidying(tags: dict, taken_at: str | None, camera: str | None) -> None:
    r = load_image(encode(upright_picture(64, 48), "JPEG", exif=exif_bytes(**tags)))
    assert r.taken_at == taken_at
    assert r.camera == camera


def test_no_exif_at_all() -> None:
    r = load_image(encode(upright_picture(64, 48), "PNG"))
    assert (r.taken_at, r.camera, r.orientation) == (None, None, 1)
    assert r.format == "PNG"


# ---------------------------------------------------------------------------------------
# Reduced decoding


@pytest.fixture(scope="module")
def big_jpeg() -> bytes:
    return encode(photo_like(4000, 3000), "JPEG", quality=90)


@pytest.fixture(scope="module")
def big_jpeg_full(big_jpeg: bytes) -> LoadedImage:
    return load_image(big_jpeg)


@pytest.mark.parametrize("target", [64, 100, 256, 300, 500, 501, 1000, 1999, 2000, 3999])
def test_draft_keeps_long_side_between_target_and_twice(
    big_jpeg: bytes, big_jpeg_full: LoadedImage, target: int
) -> None:
    r = load_image(big_jpeg, target=target)
    assert (r.width, r.height) == (4000, 3000)
    long_side = max(r.image.size)
    assert target <= long_side < 2 * target, r.image.size
    assert abs(r.image.width / r.image.height - 4 / 3) < 0.02
    reference = big_jpeg_full.image.resize(r.image.size, Image.Resampling.BOX)
    assert mean_abs_diff(r.image, reference) < 3.0


def test_full_size_when_no_target_or_big_target(big_jpeg: bytes, big_jpeg_full: LoadedImage) -> None:
    assert big_jpeg_full.image.size == (4000, 3000)
    assert load_image(big_jpeg, target=4000).image.size == (4000, 3000)
    assert load_image(big_jpeg, target=10000).image.size == (4000, 3000)  # never upscaled


def test_draft_uses_dct_scaling(big_jpeg: bytes) -> None:
    # 1/8 of 4000×3000 is exactly what libjpeg gives without any further shrinking.
    assert load_image(big_jpeg, target=256).image.size == (500, 375)
    assert load_image(big_jpeg, target=1000).image.size == (1000, 750)  # 1/4


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF", "BMP", "GIF"])
def test_other_formats_are_reduced_too(fmt: str) -> None:
    im = photo_like(1500, 1000, seed=1)
    data = encode(im, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    r = load_image(data, target=256)
    assert (r.width, r.height) == (1500, 1000)
    assert 256 <= max(r.image.size) < 512
    reference = load_image(data).image.resize(r.image.size, Image.Resampling.BOX)
    assert mean_abs_diff(r.image, reference) < 6.0


def test_small_pictures_are_not_upscaled() -> None:
    r = load_image(encode(upright_picture(100, 80), "PNG"), target=256)
    assert r.image.size == (100, 80)


def test_thin_panorama_with_draft() -> None:
    data = encode(Image.new("RGB", (6000, 40), (10, 200, 30)), "JPEG", quality=50)
    r = load_image(data, target=300)
    assert (r.width, r.height) == (6000, 40)
    assert 300 <= r.image.width < 600 and r.image.height >= 1


def test_target_must_be_positive() -> None:
    with pytest.raises(ValueError):
        load_image(encode(upright_picture(10, 10), "PNG"), target=0)


# ---------------------------------------------------------------------------------------
# Sources


def test_path_bytes_and_stream_give_the_same_picture(tmp_path: Path) -> None:
    data = encode(upright_picture(200, 150), "PNG")
    path = tmp_path / "x.png"
    path.write_bytes(data)
    results = [load_image(path), load_image(str(path)), load_image(data),
               load_image(bytearray(data)), load_image(io.BytesIO(data))]
    for r in results:
        assert r.image.size == (200, 150)
        assert r.image.tobytes() == results[0].image.tobytes()


def test_non_utf8_file_name(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9.jpg"
    try:
        with open(raw, "wb") as f:
            f.write(encode(upright_picture(80, 60), "JPEG"))
    except (OSError, UnicodeError):
        pytest.skip("this file system does not take non-UTF-8 names")
    assert is_supported(raw)
    r = load_image(Path(os.fsdecode(raw)))
    assert r.image.size == (80, 60)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(UnreadableImage, match="not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(UnreadableImage, match="folder"):
        load_image(tmp_path)


def test_fifo_named_like_a_photo_does_not_hang(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this system")
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    outcome: list[object] = []

    def attempt() -> None:
        try:
            load_image(fifo)
        except UnreadableImage as exc:
            outcome.append(str(exc))

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=5)
    if worker.is_alive():  # unblock it so the test run can end
        with open(fifo, "wb"):
            pass
        pytest.fail("load_image blocked on a FIFO")
    assert outcome == ["not a regular file"]


def test_no_file_handles_leak(tmp_path: Path) -> None:
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        pytest.skip("needs /proc to count open files")
    good = tmp_path / "good.jpg"
    good.write_bytes(encode(upright_picture(300, 200), "JPEG"))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    trunc = tmp_path / "trunc.jpg"
    trunc.write_bytes(good.read_bytes()[:2000])
    anim = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (40, 40), c) for c in ("red", "green", "blue")]
    frames[0].save(anim, save_all=True, append_images=frames[1:])
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    before = len(os.listdir(fd_dir))
    for _ in range(200):
        for p in (good, bad, trunc, anim, folder, tmp_path / "missing.jpg"):
            try:
                load_image(p, target=64)
            except UnreadableImage:
                pass
    assert len(os.listdir(fd_dir)) <= before


# ---------------------------------------------------------------------------------------
# Colour modes


def test_cmyk_jpeg() -> None:
    im = Image.new("CMYK", (64, 64), (0, 255, 255, 0))  # red
    im.paste((0, 0, 0, 255), (32, 0, 64, 64))  # black
    r = load_image(encode(im, "JPEG", quality=95))
    assert r.image.mode == "RGB"
    assert np.abs(np.asarray(r.image.getpixel((8, 32))) - RED).max() < 30
    assert max(r.image.getpixel((56, 32))) < 30


def test_cmyk_tiff() -> None:
    im = Image.new("CMYK", (16, 16), (255, 0, 255, 0))  # green
    r = load_image(encode(im, "TIFF"))
    assert r.image.getpixel((8, 8)) == (0, 255, 0)


def test_i16_png_is_scaled_not_clipped() -> None:
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (16, 1))
    im = Image.fromarray(ramp)
    assert im.mode.startswith("I;16")
    data = encode(im, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    r = load_image(data)
    a = np.asarray(r.image).astype(int)
    assert r.image.mode == "RGB"
    row = a[8, :, 0]
    assert row[0] <= 1 and row[-1] >= 254
    assert np.all(np.diff(row) >= 0)  # monotonic: a ramp, not clipped at 255 early
    assert 100 < row[128] < 156


def test_12_bit_samples_in_16_bit_container() -> None:
    ramp = np.tile(np.linspace(0, 4095, 256).astype(np.uint16), (4, 1))
    r = load_image(encode(Image.fromarray(ramp), "PNG"))
    row = np.asarray(r.image)[2, :, 0].astype(int)
    assert row[0] <= 1 and row[-1] >= 250  # stretched to the bits in use, not left dark


def test_float_tiff() -> None:
    ramp = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float32), (8, 1))
    ramp[0, 0] = np.nan
    r = load_image(encode(Image.fromarray(ramp, mode="F"), "TIFF"))
    row = np.asarray(r.image)[4, :, 1].astype(int)
    assert r.image.mode == "RGB"
    assert row[0] <= 1 and row[-1] >= 254 and np.all(np.diff(row) >= 0)


def test_float_tiff_outside_unit_range_is_stretched() -> None:
    ramp = np.tile(np.linspace(-500.0, 3000.0, 64, dtype=np.float32), (8, 1))
    r = load_image(encode(Image.fromarray(ramp, mode="F"), "TIFF"))
    row = np.asarray(r.image)[4, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255


def test_int32_tiff() -> None:
    ramp = np.tile(np.linspace(-1000, 100000, 64).astype(np.int32), (8, 1))
    r = load_image(encode(Image.fromarray(ramp, mode="I"), "TIFF"))
    row = np.asarray(r.image)[4, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row) >= 0)


def test_palette_png_with_transparency() -> None:
    im = Image.new("P", (40, 20), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(1, (20, 0, 40, 20))
    data = encode(im, "PNG", transparency=0)  # index 0 (black) is transparent
    r = load_image(data)
    assert r.image.getpixel((5, 10)) == (255, 255, 255)  # transparent -> white, not black
    assert r.image.getpixel((30, 10)) == RED


def test_rgba_composited_over_white() -> None:
    im = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    im.paste((255, 0, 0, 255), (0, 0, 10, 20))
    im.paste((255, 0, 0, 128), (10, 0, 20, 20))
    im.paste((0, 0, 255, 255), (20, 0, 40, 20))
    r = load_image(encode(im, "PNG"))
    assert r.image.mode == "RGB"
    assert r.image.getpixel((5, 5)) == RED
    assert np.abs(np.asarray(r.image.getpixel((15, 5))) - (255, 127, 127)).max() <= 2
    assert r.image.getpixel((30, 5)) == (0, 0, 255)
    im.paste((0, 0, 0, 0), (30, 0, 40, 20))
    assert load_image(encode(im, "PNG")).image.getpixel((35, 5)) == (255, 255, 255)


def test_white_on_transparent_gets_a_dark_background() -> None:
    im = Image.new("RGBA", (60, 20), (255, 255, 255, 0))
    im.paste((255, 255, 255, 255), (20, 5, 40, 15))  # a white logo
    img = load_image(encode(im, "PNG")).image
    assert img.getpixel((30, 10)) == (255, 255, 255)
    assert max(img.getpixel((5, 5))) < 100  # still visible


def test_la_png() -> None:
    im = Image.new("LA", (40, 20), (0, 0))
    im.paste((0, 255), (20, 0, 40, 20))
    r = load_image(encode(im, "PNG"))
    assert r.image.getpixel((5, 5)) == (255, 255, 255)
    assert r.image.getpixel((30, 5)) == (0, 0, 0)


def test_one_bit() -> None:
    im = Image.new("1", (32, 32), 0)
    im.paste(1, (0, 0, 16, 32))
    for fmt in ("PNG", "TIFF", "BMP", "GIF"):
        r = load_image(encode(im, fmt))
        assert r.image.mode == "RGB"
        assert r.image.getpixel((4, 4)) == (255, 255, 255)
        assert r.image.getpixel((24, 4)) == (0, 0, 0)


def test_one_bit_with_reduction() -> None:
    im = Image.new("1", (2000, 1000), 1)
    im.paste(0, (1000, 0, 2000, 1000))
    r = load_image(encode(im, "PNG"), target=200)
    assert 200 <= r.image.width < 400
    assert r.image.getpixel((5, 5)) == (255, 255, 255)
    assert r.image.getpixel((r.image.width - 5, 5)) == (0, 0, 0)


def test_grey_and_lab() -> None:
    r = load_image(encode(Image.new("L", (8, 8), 77), "PNG"))
    assert r.image.getpixel((1, 1)) == (77, 77, 77)
    lab = Image.new("LAB", (8, 8), (136, 208, 195))  # L*≈53 a*≈80 b*≈67: sRGB red
    r = load_image(encode(lab, "TIFF"))
    red, green, blue = r.image.getpixel((1, 1))
    assert red > 200 and green < 60 and blue < 60


# ---------------------------------------------------------------------------------------
# Animations, HEIC, AVIF


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animation_gives_its_first_frame(fmt: str) -> None:
    frames = [Image.new("RGB", (48, 32), c) for c in (RED, (0, 255, 0), (0, 0, 255))]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0,
                  **({"lossless": True} if fmt == "WEBP" else {}))
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    r = load_image(data)
    assert r.image.size == (48, 32)
    assert np.abs(np.asarray(r.image.getpixel((10, 10))) - RED).max() < 8


def test_multi_picture_jpeg_is_a_jpeg_showing_its_main_picture() -> None:
    main = upright_picture(800, 600)
    data = encode(main, "MPO", save_all=True, append_images=[Image.new("RGB", (800, 600), "green")])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    r = load_image(data, target=200)
    assert r.format == "JPEG"
    assert r.image.size == (200, 150)  # still decoded at 1/4 scale by libjpeg
    assert_upright(r.image)


def _have_heif() -> bool:
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_heic_made_with_pillow_heif_loads_upright(tmp_path: Path, orientation: int) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    if not pillow_heif.libheif_info().get("HEIF"):
        pytest.skip("this libheif has no HEVC encoder to make a fixture")
    upright = upright_picture(320, 240)
    path = tmp_path / "IMG_0001.HEIC"
    as_camera_stores(upright, orientation).save(
        path, format="HEIF", quality=90, exif=exif_bytes(orientation, Make="Apple", Model="iPhone 12"))
    r = load_image(path)
    assert r.format == "HEIF"
    assert (r.width, r.height) == (320, 240)
    assert r.image.size == (320, 240)
    assert r.camera == "Apple iPhone 12"
    assert r.orientation == orientation
    assert_upright(r.image)
    small = load_image(path, target=100)
    assert 100 <= max(small.image.size) < 200
    assert_upright(small.image)


@pytest.mark.parametrize("orientation", [1, 6])
def test_avif(orientation: int) -> None:
    if ".avif" not in SUPPORTED_EXTENSIONS:
        pytest.skip("no AVIF support in this installation")
    upright = upright_picture(160, 120)
    try:
        data = encode(as_camera_stores(upright, orientation), "AVIF", quality=90,
                      exif=exif_bytes(orientation))
    except (OSError, KeyError, ValueError) as exc:
        pytest.skip(f"cannot write AVIF here: {exc}")
    r = load_image(data)
    assert r.format == "AVIF"
    assert (r.width, r.height) == (160, 120)
    assert_upright(r.image)


# ---------------------------------------------------------------------------------------
# Broken files


def test_truncated_jpeg_is_salvaged(tmp_path: Path) -> None:
    im = photo_like(800, 600, seed=3)
    data = encode(im, "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) * 6 // 10])
    r = load_image(path)
    assert r.truncated
    assert r.image.size == (800, 600) and (r.width, r.height) == (800, 600)
    top = (0, 0, 800, 250)  # well inside the part that made it to disk
    assert mean_abs_diff(r.image.crop(top), im.crop(top)) < 6.0
    small = load_image(path, target=200)
    assert small.truncated and 200 <= max(small.image.size) < 400
    assert not load_image(data).truncated


def test_truncated_progressive_jpeg_is_salvaged() -> None:
    data = encode(photo_like(640, 480, seed=4), "JPEG", quality=90, progressive=True)
    try:
        r = load_image(data[: len(data) * 6 // 10])
    except UnreadableImage as exc:
        assert str(exc) == "truncated file"
    else:
        assert r.truncated and r.image.size == (640, 480)


def test_truncated_png_is_skipped_with_reason() -> None:
    data = encode(photo_like(300, 200, seed=5), "PNG")
    with pytest.raises(UnreadableImage, match="truncated"):
        load_image(data[: len(data) * 6 // 10])


def test_jpeg_cut_inside_its_header() -> None:
    data = encode(photo_like(300, 200, seed=6), "JPEG")
    with pytest.raises(UnreadableImage) as info:
        load_image(data[:300])
    assert str(info.value)


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("empty.jpg", b"", "empty file"),
    ("notes.jpg", b"Shopping list:\n- milk\n- bread\n" * 20, "not an image (looks like a text file)"),
    ("download.jpg", b"<!DOCTYPE html>\n<html><head><title>404</title></head></html>\n",
     "not an image (looks like a web page)"),
    ("doc.jpg", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "not an image (looks like a PDF document)"),
    ("noise.png", np.random.default_rng(7).bytes(5000), "unsupported format or not an image"),
    ("fake.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, "damaged"),
])
def test_junk_gets_a_reason(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UnreadableImage) as info:
        load_image(path)
    assert reason in str(info.value)
    with pytest.raises(UnreadableImage):
        load_image(content)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(width: int, height: int, bit_depth: int, colour_type: int, idat: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def _peak_rss_mb() -> float:
    resource = pytest.importorskip("resource")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def test_png_header_claiming_100000x100000() -> None:
    data = _png(100_000, 100_000, 8, 2, zlib.compress(b"\x00" * 100))
    rss = _peak_rss_mb()
    start = time.perf_counter()
    with pytest.raises(UnreadableImage) as info:
        load_image(data, target=256)
    assert time.perf_counter() - start < 5
    assert _peak_rss_mb() - rss < 200
    assert "too large" in str(info.value) and "100000×100000" in str(info.value)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_tiny_file_huge_png() -> None:
    # 20000×20000 1-bit, all zero: 400 MP that compress into a few tens of KB.
    w = h = 20_000
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + w // 8)
    idat = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()
    data = _png(w, h, 1, 0, idat)
    assert len(data) < 200_000
    rss = _peak_rss_mb()
    start = time.perf_counter()
    with pytest.raises(UnreadableImage, match="too large: 20000×20000 px exceeds the 250 MP limit"):
        load_image(data)
    assert time.perf_counter() - start < 5
    assert _peak_rss_mb() - rss < 200


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_just_over_the_limit_is_refused_before_decoding() -> None:
    w, h = 20_000, 15_000  # 300 MP: between our limit and Pillow's own hard stop
    assert w * h > MAX_PIXELS
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + w // 8)
    data = _png(w, h, 1, 0, b"".join(comp.compress(row) for _ in range(h)) + comp.flush())
    rss = _peak_rss_mb()
    with pytest.raises(UnreadableImage, match="20000×15000"):
        load_image(data)
    assert _peak_rss_mb() - rss < 200


def test_100_megapixel_panorama_loads_with_draft() -> None:
    im = Image.new("L", (20_000, 5_000), 200)
    data = encode(im, "JPEG", quality=20)
    del im
    r = load_image(data, target=512)
    assert (r.width, r.height) == (20_000, 5_000)
    assert 512 <= r.image.width < 1024
    assert r.image.mode == "RGB"
    assert np.abs(np.asarray(r.image).astype(int) - 200).max() <= 3


# ---------------------------------------------------------------------------------------
# Threads


def test_concurrent_loads_do_not_interfere(tmp_path: Path) -> None:
    good = encode(photo_like(600, 400, seed=8), "JPEG")
    cut = good[: len(good) // 2]
    png_cut = encode(photo_like(300, 200, seed=9), "PNG")[:3000]
    expected = load_image(good, target=128).image.tobytes()

    def work(i: int) -> str:
        kind = i % 3
        if kind == 0:
            assert load_image(good, target=128).image.tobytes() == expected
            return "good"
        if kind == 1:
            return "salvaged" if load_image(cut, target=128).truncated else "?"
        try:
            load_image(png_cut)
        except UnreadableImage as exc:
            return str(exc)
        return "png loaded?"

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = collections.Counter(pool.map(work, range(90)))
    assert results == {"good": 30, "salvaged": 30, "truncated file": 30}
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# ---------------------------------------------------------------------------------------
# Pillow's own collection of odd and broken files


@pytest.mark.filterwarnings("ignore")  # Pillow warns about the broken files, as it should
def test_pillow_test_images_load_or_give_a_reason() -> None:
    if not PILLOW_IMAGES.is_dir():
        pytest.skip(f"{PILLOW_IMAGES} is absent (it ships with the shared data, not the repo)")
    files = sorted(p for p in PILLOW_IMAGES.rglob("*") if p.is_file())
    assert len(files) > 700
    loaded: list[Path] = []
    reasons: collections.Counter[str] = collections.Counter()
    slowest = (0.0, "")
    start_all = time.perf_counter()
    for path in files:
        start = time.perf_counter()
        try:
            r = load_image(path, target=256)
        except UnreadableImage as exc:
            reason = str(exc)
            assert reason.strip() and len(reason) < 160, (path, reason)
            reasons[reason] += 1
        else:
            assert r.image.mode == "RGB", path
            assert r.image.width > 0 and r.image.height > 0, path
            assert r.width > 0 and r.height > 0, path
            assert 1 <= r.orientation <= 8, path
            assert max(r.image.size) < 512 or max(r.width, r.height) <= max(r.image.size), path
            loaded.append(path)
        elapsed = time.perf_counter() - start
        assert elapsed < 10, f"{path} took {elapsed:.1f} s"
        slowest = max(slowest, (elapsed, path.name))
    skipped = sum(reasons.values())
    print(f"\npillow-test-images: {len(files)} files, {len(loaded)} loaded, {skipped} skipped "
          f"in {time.perf_counter() - start_all:.1f} s (slowest {slowest[1]}: {slowest[0]:.2f} s)")
    for reason, n in reasons.most_common(12):
        print(f"  {n:4d}  {reason}")
    assert len(loaded) > len(files) * 0.8


def _pillow_images(*names: str) -> list[Path]:
    if not PILLOW_IMAGES.is_dir():
        pytest.skip(f"{PILLOW_IMAGES} is absent")
    return [PILLOW_IMAGES / n for n in names]


ORIENTATION_SAMPLES = (("hopper.jpg", "hopper_orientation_{}.jpg"), ("hopper.webp", "hopper_orientation_{}.webp"),
                       ("g4_orientation_1.tif", "g4_orientation_{}.tif"))


def test_pillow_orientation_samples_all_look_alike() -> None:
    """Each format's eight EXIF orientations of one picture turn upright to the same picture."""
    for reference, pattern in ORIENTATION_SAMPLES:
        paths = _pillow_images(reference, *(pattern.format(i) for i in range(2, 9)))
        ref = load_image(paths[0])
        for i, path in enumerate(paths[1:], start=2):
            r = load_image(path)
            assert r.orientation == i, path
            assert (r.width, r.height) == (ref.width, ref.height), path
            assert r.image.size == ref.image.size, path
            assert mean_abs_diff(r.image, ref.image) < 12, path
