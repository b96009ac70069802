#!/usr/bin/env python3
"""Words in photos: how well the text pass reads and finds them, and what it costs, in one run.

Generates
  (a) pictures with text: signs, notes and labels with 1 to 3 lines of made-up words, in the
      system's TrueType fonts (`fc-list`) and Pillow's own, several sizes and colours, turned by
      0/90/180/270 degrees, some in perspective, pasted on photo backgrounds cut from the
      generated camera library (drawn gradients if ../shared is missing);
  (b) a camera library with no text (../shared/bench/make_library.py, camera-size JPEGs).
Indexes each with the app's real path (`Library.index_folders`), first the CLIP pass alone, then
the text pass, and reports
  - word recall: the share of the pictures' words (3+ characters) found in what was read;
  - hit@3: the share of queries for one word of a picture whose picture comes in the top 3 of
    the app's search (text fused with CLIP);
  - false hits: the share of made-up words that appear in no picture (nor inside a word of one)
    for which search --text still answers something, and photos of the no-text library in which
    text was "read";
  - the text pass's cost per photo with and without text, next to the CLIP pass's in the same run.
Targets: word recall >= 0.9, hit@3 >= 0.95, text pass <= 25 % of the CLIP pass on the camera library.

No real CLIP weights can be downloaded here: the default model gets random weights made in this
run (the cost does not depend on the values; search then ranks on the text alone, which is what
this measures). --model shapes uses the bundled toy model instead (a much cheaper CLIP pass).

  python bench/text_search.py                    # 48 text pictures, 24 camera photos
  python bench/text_search.py --text 24 --photos 12 --model shapes
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
MAKE_LIBRARY = REPO.parent / "shared" / "bench" / "make_library.py"
sys.path.insert(0, str(REPO))

from clipphotos.library import Library  # noqa: E402
from clipphotos.models import ModelSpec  # noqa: E402
from clipphotos.text_reader import fold  # noqa: E402

SYLLABLES = "ka lo mi re su ven tor bal nix qua der fol gri mun sap tel wex yor zan pim cob rud hek lav".split()
INK = [((20, 20, 30), (245, 240, 225)), ((250, 250, 250), (30, 60, 140)), ((200, 20, 20), (250, 250, 245)),
       ((255, 220, 0), (20, 20, 20)), ((15, 90, 40), (235, 245, 235)), ((255, 255, 255), (180, 30, 40))]


def made_up_words(rng: random.Random, count: int) -> list[str]:
    """Distinct pronounceable words no dictionary holds, some with digits (receipts, passwords)."""
    words: set[str] = set()
    while len(words) < count:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))
        if rng.random() < 0.25:
            word += str(rng.randint(2, 99))
        words.add(word)
    ordered = sorted(words)
    rng.shuffle(ordered)
    return ordered


def fonts() -> list[str | None]:
    """The system's TrueType fonts (one per family style), and None for Pillow's built-in one."""
    try:
        listed = subprocess.run(["fc-list", "--format", "%{file}\n"], capture_output=True, text=True,
                                timeout=20).stdout.split()
    except (OSError, subprocess.SubprocessError):
        listed = []
    ttf = sorted(f for f in listed if f.lower().endswith((".ttf", ".otf")) and "math" not in f.lower())
    return [*ttf[:12], None]


def font(path: str | None, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size=size)


def backgrounds(photos: Path, rng: random.Random) -> list[Image.Image]:
    files = sorted(p for p in photos.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    out = []
    for f in files[:12]:
        with Image.open(f) as im:
            im.draft("RGB", (1600, 1200))
            out.append(im.convert("RGB"))
    if not out:  # no generated library: drawn gradients with noise
        for _ in range(6):
            a, b = np.array([rng.randint(0, 255) for _ in range(3)]), np.array([rng.randint(0, 255) for _ in range(3)])
            t = np.linspace(0, 1, 1200)[:, None, None]
            grad = (a * (1 - t) + b * t)[:, :, :] * np.ones((1, 1600, 1))
            grad += np.random.default_rng(rng.randint(0, 9999)).normal(0, 12, grad.shape)
            out.append(Image.fromarray(np.clip(grad, 0, 255).astype(np.uint8)))
    return out


def draw_sign(rng: random.Random, words: list[str], font_path: str | None, bg: Image.Image) -> Image.Image:
    """A picture 1600×1200 of a photo with a sign/note of `words` on it (turned, in perspective)."""
    w, h = 1600, 1200
    x0, y0 = rng.randint(0, max(0, bg.width - w)), rng.randint(0, max(0, bg.height - h))
    picture = bg.crop((x0, y0, x0 + w, y0 + h)).resize((w, h))
    ink, paper = rng.choice(INK)
    size = rng.choice([44, 60, 80, 110])           # text 4 % to 9 % of the picture's height
    face = font(font_path, size)
    lines, line = [], []
    for word in words:
        line.append(word)
        if len(line) == 2 or rng.random() < 0.4:
            lines.append(" ".join(line))
            line = []
    if line:
        lines.append(" ".join(line))
    widths = [face.getbbox(t)[2] for t in lines]
    pad = size // 2
    sign = Image.new("RGBA", (max(widths) + 2 * pad, len(lines) * int(size * 1.4) + 2 * pad), paper + (255,))
    draw = ImageDraw.Draw(sign)
    for n, text in enumerate(lines):
        draw.text((pad, pad + n * int(size * 1.4)), text, fill=ink, font=face)
    if rng.random() < 0.35:  # seen at an angle: one side nearer than the other
        sw, sh = sign.size
        k = rng.uniform(0.06, 0.15) * sh
        sign = sign.transform(sign.size, Image.Transform.QUAD, (0, 0, 0, sh, sw, sh - k, sw, k),
                              Image.Resampling.BICUBIC)
    turn = rng.choice([0, 0, 90, 180, 270])
    sign = sign.rotate(turn, expand=True)
    scale = min(1.0, 0.9 * w / sign.width, 0.9 * h / sign.height)
    if scale < 1:
        sign = sign.resize((int(sign.width * scale), int(sign.height * scale)), Image.Resampling.LANCZOS)
    picture.paste(sign, (rng.randint(0, w - sign.width), rng.randint(0, h - sign.height)), sign)
    return picture


def make_text_pictures(out: Path, count: int, rng: random.Random, bgs: list[Image.Image],
                       vocabulary: list[str]) -> dict[str, list[str]]:
    out.mkdir(parents=True, exist_ok=True)
    faces = fonts()
    truth = {}
    pool = iter(vocabulary)
    for n in range(count):
        words = [next(pool) for _ in range(rng.randint(1, 4))]
        picture = draw_sign(rng, words, faces[n % len(faces)], rng.choice(bgs))
        path = out / f"IMG_{n:04d}.jpg"
        picture.save(path, quality=88)
        truth[str(path)] = words
    return truth


def model_spec(name: str, work: Path) -> ModelSpec:
    if name == "shapes":
        shapes = REPO / "clipphotos" / "models" / "shapes-clip"
        return ModelSpec(str(shapes / "config.json"), None, str(shapes / "shapes-clip.safetensors"), "cpu")
    sys.path.insert(0, str(REPO / "bench"))
    from index_throughput import make_weights
    return ModelSpec(name, None, str(make_weights(name, work / "weights.safetensors")), "cpu")


def index_twice(lib: Library, folder: Path) -> tuple[float, float, int, int]:
    """(CLIP pass seconds, text pass seconds, photos, photos where text was found)."""
    _ = lib.index                  # the model loads before the clock starts
    started = time.perf_counter()
    report = lib.index_folders([folder], read_text=False)
    clip = time.perf_counter() - started
    started = time.perf_counter()
    text = lib.index_folders(read_text=True).text
    return clip, time.perf_counter() - started, report.embedded, text.with_text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--text", type=int, default=48, help="pictures with text (default 48)")
    ap.add_argument("--photos", type=int, default=24, help="camera photos without text (default 24)")
    ap.add_argument("--model", default="ViT-B-32-256", help="CLIP architecture (random weights), or 'shapes'")
    ap.add_argument("--seed", type=int, default=2112)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="text-bench-"))
    camera = work / "camera"
    if MAKE_LIBRARY.exists():
        subprocess.run([sys.executable, str(MAKE_LIBRARY), "--out", str(camera), "--count", str(args.photos),
                        "--seed", str(args.seed), "--workers", "2"], check=True, capture_output=True)
    else:
        print(f"{MAKE_LIBRARY} is missing: drawn backgrounds, and no camera library to time", file=sys.stderr)
    vocabulary = made_up_words(rng, args.text * 4 + 400)
    truth = make_text_pictures(work / "text", args.text, rng, backgrounds(camera, rng), vocabulary[:-300])
    # Words in no picture, nor inside a word of one (search finds substrings: "kalo" is in "kalomi").
    shown = [w for words in truth.values() for w in words]
    absent = [w for w in vocabulary[-300:] if not any(w in s or s in w for s in shown)][:150]
    spec = model_spec(args.model, work)

    results: dict = {"model": args.model, "text_pictures": args.text, "camera_photos": args.photos,
                     "cpu": _cpu(), "cores": os.cpu_count()}
    with Library(work / "lib-text", model=spec) as lib:
        clip_t, text_t, n, found = index_twice(lib, work / "text")
        results["with_text"] = {"clip_s_per_photo": clip_t / n, "text_s_per_photo": text_t / n,
                                "photos": n, "text_found_in": found}
        words = hits = 0
        for path, expected in truth.items():
            read = " ".join(fold(line.text) for line in lib.photo_text(path))
            for word in expected:
                words += 1
                hits += fold(word) in read
        results["word_recall"] = hits / words
        queries = top3 = 0
        for path, expected in truth.items():
            for word in expected[:2]:
                queries += 1
                top3 += path in [r.path for r in lib.search(word, limit=3)]
        results["hit_at_3"] = top3 / queries
        false = sum(bool(lib.search_text(word)) for word in absent)
        results["false_hits"] = false / len(absent)
        results["words"] = words
        results["queries"] = queries
    if MAKE_LIBRARY.exists():
        with Library(work / "lib-camera", model=spec) as lib:
            clip_t, text_t, n, found = index_twice(lib, camera)
            results["no_text"] = {"clip_s_per_photo": clip_t / n, "text_s_per_photo": text_t / n,
                                  "photos": n, "text_found_in": found, "text_share_of_clip": text_t / clip_t}
    print(json.dumps(results, indent=1, default=lambda v: round(v, 4)))
    nt = results.get("no_text", {})
    print(f"\nword recall {results['word_recall']:.3f} (target 0.9) · hit@3 {results['hit_at_3']:.3f} (target 0.95) · "
          f"false hits {results['false_hits']:.3f}")
    wt = results["with_text"]
    print(f"pictures with text: CLIP pass {wt['clip_s_per_photo']:.3f} s/photo, text pass "
          f"{wt['text_s_per_photo']:.3f} s/photo")
    if nt:
        print(f"camera photos without text: CLIP pass {nt['clip_s_per_photo']:.3f} s/photo, text pass "
              f"{nt['text_s_per_photo']:.3f} s/photo = {nt['text_share_of_clip']:.0%} of the CLIP pass (target 25 %); "
              f"text 'found' in {nt['text_found_in']} of {nt['photos']}")


def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


if __name__ == "__main__":
    main()
