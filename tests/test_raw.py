"""Camera RAW files: indexed through their embedded previews, paired with their JPEGs, contained.

The RAW files are real DNGs that the tests write themselves with tifffile (a maintained TIFF
library, https://pypi.org/project/tifffile/; imagecodecs gives it the JPEG codec), laid out
as Adobe's DNG Converter does: IFD0 holds the preview (a JPEG, or small uncompressed RGB)
and the DNG tags, SubIFD 0 the 12-bit RGGB Bayer mosaic of a drawn picture, with a colour
matrix that makes the camera's colours linear sRGB. LibRaw (rawpy) opens, previews and
demosaics them like a camera's files; the first tests check that it really does.
"""
from __future__ import annotations

import ctypes
import io
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipphotos.thumbnails import THUMB_SIZE
from clipphotos import raw
from clipphotos.loader import UnreadableImage, is_supported, load_image
from clipphotos.shapes import ShapeSpec, draw_shape

tifffile = pytest.importorskip("tifffile")      # both in the `test` extra
pytest.importorskip("imagecodecs")               # tifffile's JPEG codec, for the previews

TAKEN = "2021:06:05 14:03:02"
# XYZ (D65) -> linear sRGB: as a DNG ColorMatrix1 it says "this camera sees in linear sRGB".
_XYZ_TO_SRGB = (3.2406, -1.5372, -0.4986, -0.9689, 1.8758, 0.0415, 0.0557, -0.2040, 1.0570)
# How a camera held at EXIF orientation N stores an upright scene.
_STORED = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


# ---------------------------------------------------------------------------------------
# Writing DNG files


def _mosaic(picture: Image.Image) -> np.ndarray:
    """The 12-bit RGGB Bayer mosaic a linear-sRGB sensor would record of `picture`."""
    srgb = np.asarray(picture.convert("RGB"), dtype=np.float64) / 255.0
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    cfa = np.empty(srgb.shape[:2], dtype=np.uint16)
    for dy, dx, channel in ((0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 2)):
        cfa[dy::2, dx::2] = np.round(linear[dy::2, dx::2, channel] * 4095)
    return cfa


def _srational(values: tuple[float, ...], den: int = 10000) -> list[int]:
    return [x for v in values for x in (round(v * den), den)]


def _jpeg(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90)
    return out.getvalue()


def dng_bytes(stored: Image.Image, preview: str | None = "jpeg", *, preview_side: int | None = None,
              orientation: int = 1, make: str = "Canon", model: str = "Canon EOS 80D") -> bytes:
    """A DNG of `stored` (the picture as the sensor lies): preview "jpeg", "rgb" or None."""
    main_tags = [
        (50706, "B", 4, (1, 4, 0, 0), True),                       # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),                       # DNGBackwardVersion
        (50708, "s", 0, model, True),                              # UniqueCameraModel
        (271, "s", 0, make, True),
        (272, "s", 0, model, True),
        (274, "H", 1, orientation, True),
        (306, "s", 0, TAKEN, True),                                # DateTime
        (50721, "2i", 9, _srational(_XYZ_TO_SRGB), True),          # ColorMatrix1
        (50778, "H", 1, 21, True),                                 # CalibrationIlluminant1: D65
        (50728, "2I", 3, (1, 1, 1, 1, 1, 1), True),                # AsShotNeutral
    ]
    mosaic_tags = [
        (33421, "H", 2, (2, 2), True),                             # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),                       # CFAPattern: RGGB
        (50714, "H", 1, 0, True),                                  # BlackLevel
        (50717, "H", 1, 4095, True),                               # WhiteLevel
    ]
    cfa = _mosaic(stored)
    small = stored.copy()
    if preview_side:
        small.thumbnail((preview_side, preview_side))
    out = io.BytesIO()
    with tifffile.TiffWriter(out) as tif:
        if preview is None:
            tif.write(cfa, photometric=32803, subfiletype=0, extratags=main_tags + mosaic_tags, metadata=None)
            return out.getvalue()
        w, h = small.size
        if preview == "jpeg":  # compressed by Pillow, stored as it is
            tif.write(iter([_jpeg(small)]), shape=(h, w, 3), dtype=np.uint8, photometric="ycbcr",
                      compression=7, subsampling=(1, 1), rowsperstrip=h, subfiletype=1, subifds=1,
                      extratags=main_tags, metadata=None)
        else:
            tif.write(np.asarray(small), photometric="rgb", subfiletype=1, subifds=1, extratags=main_tags,
                      metadata=None)
        tif.write(cfa, photometric=32803, subfiletype=0, extratags=mosaic_tags, metadata=None)
    return out.getvalue()


def shape_dng(colour: str, shape: str, seed: int, size: tuple[int, int] = (480, 320), **kw) -> bytes:
    return dng_bytes(draw_shape(random.Random(seed), colour, shape, size), **kw)


def closest_orientation(got: Image.Image, upright: Image.Image) -> int:
    """Which EXIF orientation (1, 3, 6, 8) would have to be undone for `got` to match `upright`."""
    def distance(candidate: Image.Image) -> float:
        if candidate.size != got.size:
            candidate = candidate.resize(got.size)
        return float(np.abs(np.asarray(candidate, dtype=np.float32) - np.asarray(got, dtype=np.float32)).mean())
    turned = {1: upright, **{o: upright.transpose(t) for o, t in _STORED.items()}}
    same_shape = {o: im for o, im in turned.items() if (im.width > im.height) == (got.width > got.height)}
    return min(same_shape, key=lambda o: distance(same_shape[o]))


# ---------------------------------------------------------------------------------------
# LibRaw reads what we write


def test_libraw_opens_the_test_dngs():
    import rawpy

    data = shape_dng("red", "star", 1, orientation=6)
    with rawpy.RawPy() as r:
        r.open_buffer(io.BytesIO(data))
        assert (r.sizes.width, r.sizes.height, r.sizes.flip) == (480, 320, 6)
        assert r.extract_thumb().format == rawpy.ThumbFormat.JPEG
        assert r.raw_pattern.tolist() == [[0, 1], [3, 2]]   # R G / G2 B


def test_raw_extensions_are_supported_and_recognised_by_content():
    for name in ("IMG_0001.CR2", "a.cr3", "DSC_1.NEF", "x.ARW", "y.RAF", "z.ORF", "p.RW2", "d.dng"):
        assert is_supported(name), name
    assert raw.identify(shape_dng("red", "star", 1)) == "DNG"
    assert raw.identify(b"II*\x00\x10\x00\x00\x00CR\x02\x00" + bytes(64)) == "CR2"
    assert raw.identify(b"FUJIFILMCCD-RAW 0201" + bytes(64)) == "RAF"
    assert raw.identify(b"\x00\x00\x00\x18ftypcrx " + bytes(64)) == "CR3"
    plain = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(plain, "TIFF")
    assert raw.identify(plain.getvalue()) is None          # a scan or an export stays a TIFF
    assert load_image(plain.getvalue()).format == "TIFF"


def test_a_dng_whose_first_directory_follows_the_pixels_is_recognised():
    """libtiff-based writers put IFD0 after the image data, past the first megabyte."""
    ifd0 = 2 << 20
    entry = (50706).to_bytes(2, "little") + (1).to_bytes(2, "little") + (4).to_bytes(4, "little") + bytes([1, 4, 0, 0])
    data = b"II*\x00" + ifd0.to_bytes(4, "little") + bytes(ifd0 - 8) + (1).to_bytes(2, "little") + entry + bytes(4)
    assert raw.identify(raw.read_header(io.BytesIO(data))) == "DNG"


def test_nikon_style_tiff_is_recognised_as_raw():
    """NEF/ARW: IFD0 a small stand-in thumbnail, the picture itself in sub-IFDs."""
    out = io.BytesIO()
    with tifffile.TiffWriter(out) as tif:
        tif.write(np.zeros((120, 160, 3), np.uint8), photometric="rgb", subfiletype=1, subifds=1,
                  extratags=[(271, "s", 0, "NIKON CORPORATION", True)], metadata=None)
        tif.write(np.zeros((64, 96), np.uint16), photometric=32803, metadata=None)
    assert raw.identify(out.getvalue()) == "NEF"


def test_a_tiff_layout_we_do_not_know_is_raw_by_its_name():
    plain = io.BytesIO()
    Image.new("RGB", (40, 30)).save(plain, "TIFF")
    assert raw.identify(plain.getvalue(), "/photos/IMG_1.ERF") == "ERF"
    assert raw.identify(plain.getvalue(), "/photos/IMG_1.tif") is None


# ---------------------------------------------------------------------------------------
# Preview or demosaic


def test_big_enough_preview_is_used_as_is():
    data = shape_dng("red", "star", 2)
    picture = raw.decode(data, 224)
    assert picture.source == "preview" and picture.jpeg is not None
    loaded = load_image(data, target=224)
    assert loaded.format == "DNG"
    assert (loaded.width, loaded.height) == (480, 320)
    assert 224 <= max(loaded.image.size) < 448


def test_small_preview_means_half_size_demosaic():
    data = shape_dng("red", "star", 3, preview="rgb", preview_side=64)
    assert raw.decode(data, 48).source == "preview"            # 64 px is enough for 48
    picture = raw.decode(data, 96)
    assert picture.source == "demosaic" and picture.upright
    assert 96 <= max(picture.pixels.shape[:2]) < 192
    full = load_image(data)                                    # "full size": a half-size demosaic
    assert full.image.size == (240, 160)


def test_demosaic_keeps_the_colours():
    spec = ShapeSpec.sample(random.Random(4), "red", "star", (480, 320))
    spec.diameter = 150
    data = dng_bytes(spec.render(), preview=None)
    loaded = load_image(data)
    assert raw.decode(data, None).source == "demosaic"
    x, y = (round(c / 2) for c in spec.centre)
    r, g, b = (int(v) for v in loaded.image.getpixel((x, y)))
    assert r > g + 60 and r > b + 60, (r, g, b)


@pytest.mark.parametrize("orientation", [3, 6, 8])
@pytest.mark.parametrize("preview", ["jpeg", "rgb", None])
def test_orientation_from_raw_metadata(orientation, preview):
    """Previews (JPEG or bitmap) are stored as the sensor lay; LibRaw turns its demosaic itself."""
    upright = draw_shape(random.Random(5), "blue", "triangle", (360, 240))
    data = dng_bytes(upright.transpose(_STORED[orientation]), preview=preview, orientation=orientation)
    loaded = load_image(data, target=96)
    assert loaded.orientation == orientation
    assert (loaded.width, loaded.height) == upright.size
    assert closest_orientation(loaded.image, upright) == 1


@pytest.mark.parametrize("preview", ["jpeg", None])
def test_date_and_camera_come_along(preview):
    """Through the preview (LibRaw gives it an EXIF block made from the RAW's metadata when it
    has none of its own) and through the demosaic (the RAW's own TIFF tags)."""
    loaded = load_image(shape_dng("green", "circle", 6, preview=preview), target=96)
    assert (loaded.taken_at, loaded.camera) == ("2021-06-05T14:03:02", "Canon EOS 80D")


@pytest.mark.skipif(sys.platform != "linux", reason="only Linux keeps file names that are not UTF-8")
def test_a_raw_file_by_path_even_with_a_name_that_is_not_utf8(tmp_path):
    """By path, the worker reads the file itself; the picture is the one its bytes give."""
    data = shape_dng("red", "star", 12)
    name = os.path.join(os.fsencode(tmp_path), b"caf\xe9.dng")
    with open(name, "wb") as f:
        f.write(data)
    by_path = load_image(os.fsdecode(name), target=96)
    assert by_path.format == "DNG"
    assert by_path.image.tobytes() == load_image(data, target=96).image.tobytes()


# ---------------------------------------------------------------------------------------
# Broken files


def test_corrupt_raw_files_are_refused_with_a_reason(tmp_path):
    junk = tmp_path / "DSC_0001.NEF"
    junk.write_bytes(os.urandom(20000))
    cr2 = tmp_path / "IMG_0002.CR2"
    cr2.write_bytes(b"II*\x00\x10\x00\x00\x00CR\x02\x00" + os.urandom(20000))
    cut = tmp_path / "cut.dng"
    cut.write_bytes(shape_dng("red", "star", 7, preview=None)[:40000])
    reasons = {}
    for path in (junk, cr2, cut):
        with pytest.raises(UnreadableImage) as err:
            load_image(path, target=96)
        reasons[path.name] = str(err.value)
    assert reasons == {"DSC_0001.NEF": "unsupported format or not an image",
                       "IMG_0002.CR2": "unsupported or damaged camera RAW file",
                       "cut.dng": "damaged or truncated camera RAW file"}


class _CrashingPool:
    def call(self, fn, *args, timeout=None):
        raise raw.WorkerCrashed("the worker process died (exit code -11)")


def test_a_decoder_crash_skips_the_file(monkeypatch):
    monkeypatch.setattr(raw, "_shared_pool", lambda: _CrashingPool())
    with pytest.raises(UnreadableImage, match="^the RAW decoder crashed on this file$"):
        load_image(shape_dng("red", "star", 8), target=96)


# ---------------------------------------------------------------------------------------
# Containment: the pool itself, given functions that crash, hang or fail


def _segfault() -> bytes:
    return ctypes.string_at(0)


def _exit_at_once() -> None:
    os._exit(3)


def _sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "awake"


def _fail() -> None:
    raise ValueError("no good")


@pytest.fixture
def pool():
    p = raw.ContainedPool(2)
    yield p
    p.close()


def test_segfault_costs_one_call_and_the_next_call_works(pool):
    with pytest.raises(raw.WorkerCrashed):
        pool.call(_segfault, timeout=30)
    with pytest.raises(raw.WorkerCrashed):
        pool.call(_exit_at_once, timeout=30)
    assert pool.call(os.getpid, timeout=30) != os.getpid()


def test_hang_is_cut_at_the_deadline(pool):
    started = time.monotonic()
    with pytest.raises(raw.WorkerTimedOut):
        pool.call(_sleep, 30, timeout=1)
    assert time.monotonic() - started < 10
    assert pool.call(_sleep, 0, timeout=30) == "awake"


def test_an_exception_is_raised_and_the_worker_kept(pool):
    pid = pool.call(os.getpid, timeout=30)
    with pytest.raises(ValueError, match="no good"):
        pool.call(_fail, timeout=30)
    assert pool.call(os.getpid, timeout=30) == pid


def test_a_crash_blames_only_its_own_call(pool):
    answers: dict[str, object] = {}

    def slow() -> None:
        answers["slow"] = pool.call(_sleep, 2, timeout=30)

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.5)
    with pytest.raises(raw.WorkerCrashed):
        pool.call(_segfault, timeout=30)
    thread.join()
    assert answers == {"slow": "awake"}


def test_a_worker_that_cannot_start_is_reported_as_such():
    pool = raw.ContainedPool(1, initializer=_exit_at_once)
    try:
        with pytest.raises(raw.WorkerUnavailable):
            pool.call(os.getpid, timeout=30)
    finally:
        pool.close()


UNGUARDED_SCRIPT = """
import os
from clipphotos import raw
pool = raw.ContainedPool(1)
print(pool.call(os.getpid, timeout=60) != os.getpid())
pool.close()
"""


@pytest.mark.parametrize("how", ["file", "stdin"])
def test_workers_do_not_run_the_main_script_again(tmp_path, how):
    """'spawn' would: an unguarded script would start over in the worker, stdin cannot be read."""
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT)
    argv, stdin = ([sys.executable, str(script)], None) if how == "file" else ([sys.executable, "-"], UNGUARDED_SCRIPT)
    out = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert (out.returncode, out.stdout.strip()) == (0, "True"), out.stderr


# ---------------------------------------------------------------------------------------
# Through the library: indexed, found, thumbnailed, paired, skipped


DISTRACTORS = [("red", "circle"), ("red", "square"), ("orange", "star"), ("purple", "star"),
               ("blue", "circle"), ("blue", "triangle"), ("green", "square"), ("yellow", "square"),
               ("green", "triangle"), ("yellow", "circle")]


@pytest.fixture(scope="module")
def raw_library(tmp_path_factory):
    from clipphotos.library import Library
    from conftest import shapes_spec

    root = tmp_path_factory.mktemp("raw") / "photos"
    root.mkdir()
    (root / "star.dng").write_bytes(shape_dng("red", "star", 10))
    square = draw_shape(random.Random(11), "blue", "square", (480, 320))
    (root / "IMG_0001.DNG").write_bytes(dng_bytes(square))
    square.save(root / "IMG_0001.JPG", quality=92)            # the camera's JPEG of the same shot
    for n, (colour, shape) in enumerate(DISTRACTORS):
        draw_shape(random.Random(100 + n), colour, shape, (400, 300)).save(root / f"other_{n}.jpg")
    (root / "DSC_0001.NEF").write_bytes(os.urandom(30000))
    (root / "IMG_0002.CR2").write_bytes(b"II*\x00\x10\x00\x00\x00CR\x02\x00" + os.urandom(30000))
    lib = Library(tmp_path_factory.mktemp("lib"), model=shapes_spec())
    report = lib.index_folders([root])
    yield lib, root, report
    lib.close()


def test_dng_is_indexed_searched_and_thumbnailed(raw_library):
    lib, root, _ = raw_library
    top = lib.search("a red star", limit=3)[0]
    assert top.path == str(root / "star.dng")
    photo = top.photo
    assert (photo.format, photo.width, photo.height) == ("DNG", 480, 320)
    assert (photo.taken_at, photo.camera) == ("2021-06-05T14:03:02", "Canon EOS 80D")
    with Image.open(lib.thumbnails.ensure(photo.hash, photo.path)) as thumb:
        # from the indexer's own decode when that is sharp enough for a 256-px thumbnail
        assert 0.85 * THUMB_SIZE <= max(thumb.size) <= THUMB_SIZE


@pytest.mark.model_quality
def test_raw_and_its_jpeg_are_one_result_listing_both_files(raw_library):
    lib, root, _ = raw_library
    results = lib.search("a blue square", limit=6)
    shot = [r for r in results if "IMG_0001" in r.path or any("IMG_0001" in c for c in r.companions)]
    assert len(shot) == 1 and shot[0] is results[0]
    assert shot[0].path == str(root / "IMG_0001.JPG")
    assert shot[0].companions == (str(root / "IMG_0001.DNG"),)
    assert shot[0].to_json()["companions"] == [str(root / "IMG_0001.DNG")]
    groups = [[p.path for p in group] for group in lib.catalog.companions()]
    assert groups == [[str(root / "IMG_0001.JPG"), str(root / "IMG_0001.DNG")]]


def test_more_like_a_jpeg_leaves_out_its_raw(raw_library):
    lib, root, _ = raw_library
    results = lib.search(image=root / "IMG_0001.JPG", limit=5)
    assert not [r for r in results if "IMG_0001" in r.path or r.companions]


def test_broken_raw_files_are_skipped_with_reasons(raw_library):
    _, root, report = raw_library
    assert sorted(report.skipped) == [(str(root / "DSC_0001.NEF"), "unsupported format or not an image"),
                                      (str(root / "IMG_0002.CR2"), "unsupported or damaged camera RAW file")]
    assert report.indexed == 2 + 1 + len(DISTRACTORS)
