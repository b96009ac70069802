#!/usr/bin/env python3
"""Indexing throughput: the app's real indexing path against a naive reference, in one run.

Generates a camera-size library with ../shared/bench/make_library.py, then measures
  (a) naive reference pipelines, one picture after another: full decode, fp32 torch, batch 8 —
      once with OpenCLIP's own preprocess (resize + centre crop), once with the app's letterbox
      view (the app deliberately keeps the whole photo, so the accuracy check compares like
      with like: what changes is decoding, threading and precision, not the view);
  (b) the app's real indexing path: `clipphotos index --no-text` in a child process, timed as a
      whole process (start-up, model load, indexing, saving the index: what a user waits for),
      its peak memory its own (the high-water mark of the child's own address space: a child's
      ru_maxrss would count the pages of this bench, which forked it). The text pass (#21), a
      separate pass after indexing, is then timed on its own by a second `clipphotos index` (every
      photo unchanged), and left out of the ratio: no stage below reads text.
Prints images/s of each, the ratios, the minimum cosine between the reference's and the app's
embeddings, and the app's peak RSS; then each stage's own cost on every one of the same files,
measured the way the app runs it: read + hash and draft decode + letterbox on one core and with
every core decoding at once, the image encoder the app chose here with its encodes side by side
as the indexer runs them (clipphotos.indexer.plan_encoders), and the app's own extra work per new
photo (thumbnail and fingerprints, from the same decode: not in the ceiling). The ceiling they
allow: 1 / (read + decode with all cores decoding + encoder with all its encodes running), next
to the app's figure: each core does one thing at a time, the photos' work simply adds up. The
stages and the app take turns (`--rounds`, 5), and the app's share of the ceiling is the median
of the rounds' shares: each round measures the stages and then runs the app within a minute,
so its pair shares that minute's speed on a machine whose speed moves by a sixth from minute to
minute, and the median is moved by no single fast or slow minute. Each round's pair is printed,
and the fastest app run against the highest ceiling too (minutes apart: a six-second stage
measurement in a fast moment lifts that ceiling above every round's).

No real weights can be downloaded here: without --weights the model gets random weights made in
this run (speed does not depend on the values; the cosine compares two pipelines on the same
weights).

  python bench/index_throughput.py --count 150
  python bench/index_throughput.py --model ViT-B-32-256 --weights open_clip_model.safetensors
  python bench/index_throughput.py --photos FOLDER --precision fp32   # the encoder as the larger stage

`--precision` holds the stages and the app to one number format: fp32 on a CPU with fast int8
makes the encoder the larger stage, as it is on CPUs without VNNI or bf16, so one machine can
check the pipeline under both balances. With $CLIPPHOTOS_MODEL_CACHE and --weights, the export
made by an earlier run is reused.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[1]
MAKE_LIBRARY = REPO.parent / "shared" / "bench" / "make_library.py"
sys.path.insert(0, str(REPO))

from clipphotos.loader import is_supported  # noqa: E402
from clipphotos.preprocess import to_array  # noqa: E402


def make_weights(model_name: str, out: Path) -> Path:
    import open_clip
    from safetensors.torch import save_file
    torch.manual_seed(0)
    model = open_clip.create_model(model_name, pretrained=None)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out))
    return out


def naive(paths: list[Path], model_name: str, weights: Path, view: str) -> tuple[float, dict[str, np.ndarray]]:
    """Full decode, fp32, batch 8, sequential: what a straightforward script does."""
    import open_clip
    model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=str(weights))
    model.eval()
    size = open_clip.get_model_preprocess_cfg(model)["size"]
    size = size[0] if isinstance(size, (tuple, list)) else size
    out: dict[str, np.ndarray] = {}
    started = time.perf_counter()
    for start in range(0, len(paths), 8):
        batch = []
        for p in paths[start:start + 8]:
            with Image.open(p) as im:
                img = ImageOps.exif_transpose(im).convert("RGB")
            batch.append(preprocess(img) if view == "openclip" else torch.from_numpy(to_array(img, size)))
        with torch.inference_mode():
            vecs = torch.nn.functional.normalize(model.encode_image(torch.stack(batch)), dim=-1).numpy()
        for p, v in zip(paths[start:start + 8], vecs):
            out[str(p)] = v
    return len(paths) / (time.perf_counter() - started), out


def peak_rss(pid: int) -> int | None:
    """The process's own peak resident memory so far (Linux: VmHWM), None where unknown."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def measured(cmd: list[str], cwd: Path = REPO, env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Run `cmd` to its end: its whole-process seconds, its own peak RSS in bytes, its stdout."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=cwd, env=env)
        peak = 0
        while proc.poll() is None:   # VmHWM only grows: the last reading is within 20 ms of the end
            peak = max(peak, peak_rss(proc.pid) or 0)
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        out.seek(0), err.seek(0)
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, cmd, out.read(), err.read()[-4000:])
        return seconds, peak, out.read()


def run_index(photos: Path, model_name: str, weights: Path, lib: Path, *flags: str,
              precision: str = "auto") -> tuple[dict, float, int]:
    """`clipphotos index` in a child process: its JSON report, its whole-process seconds, its peak RSS."""
    seconds, peak, out = measured([sys.executable, "-m", "clipphotos", "index", str(photos), "--library", str(lib),
                                   "--model", model_name, "--weights", str(weights), "--precision", precision,
                                   "--json", *flags])
    return json.loads(out), seconds, peak


def app(photos: Path, model_name: str, weights: Path, lib: Path,
        precision: str = "auto") -> tuple[float, dict[str, np.ndarray], int, float]:
    """The real indexing run, text pass off: img/s of the whole process, vectors, peak RSS, and
    img/s of the indexing itself (report["seconds"]: no start-up, no model load)."""
    report, seconds, peak = run_index(photos, model_name, weights, lib, "--no-text", precision=precision)
    with closing(sqlite3.connect(lib / "catalog.sqlite3")) as db:   # the bench reads the rows themselves
        rows = db.execute("SELECT p.path, v.vec FROM photos p JOIN vectors v ON v.content_id=p.content_id").fetchall()
    vecs = {bytes(p).decode(): np.frombuffer(v, dtype=np.float16).astype(np.float32) for p, v in rows}
    files = report["indexed"] + report["unchanged"] + report["moved"]
    return files / seconds, vecs, peak, files / report["seconds"]


def stage_costs(paths: list[Path], model_name: str, weights: Path, lib: Path, batch_sizes: list[int],
                precision: str = "auto") -> dict:
    """Seconds per photo of each indexing stage, over every photo the app indexes (a sample's
    mean missed the library's by up to a tenth: file sizes, and so decode times, vary 2-24 MP):
    read + hash and decode + prepare on one core, and with every core doing it at once (the
    indexer's decoders); the encoder the app chose here as the indexer runs it (its plan's
    encodes side by side, batch BATCH_SIZE, all cores busy); and the app's extra work on a new
    photo's decode (thumbnail and fingerprints from the same decode).

    Each photo's stages are timed call by call, as the app's workers run them (with every core
    busy, a call's time is one core's share), so no photo waits in memory for the next stage."""
    from concurrent.futures import ThreadPoolExecutor

    from clipphotos.embedder import Embedder
    from clipphotos.fingerprint import fingerprints
    from clipphotos.indexer import BATCH_SIZE, content_hash, plan_encoders, usable_cores
    from clipphotos.inference import open_model
    from clipphotos.loader import load_image
    from clipphotos.models import ModelSpec
    from clipphotos.preprocess import fit
    from clipphotos.thumbnails import ThumbnailCache
    embedder = Embedder(open_model(ModelSpec(model_name, None, str(weights), "cpu", precision), lib))
    cores = usable_cores()
    lib.mkdir(parents=True, exist_ok=True)   # with $CLIPPHOTOS_MODEL_CACHE the export lives elsewhere
    thumbs = ThumbnailCache(Path(tempfile.mkdtemp(prefix="bench-thumbnails-", dir=lib)))   # new each time: all written
    inputs: list[np.ndarray] = []

    def photo(n: int, with_extra: bool) -> tuple[float, float, float]:   # as Indexer._prepare and _decode do
        t0 = time.perf_counter()
        blob = paths[n].read_bytes()
        content_hash(blob)
        t1 = time.perf_counter()
        loaded = load_image(blob, target=embedder.decode_size)
        reduced = fit(loaded.image, embedder.loaded.image_size)
        tensor = embedder.prepare(reduced)
        t2 = time.perf_counter()
        if with_extra:
            fingerprints(loaded.image, reduced)
            thumbs.from_decoded(f"{n:032x}", loaded, reduced)
        if len(inputs) < BATCH_SIZE:
            inputs.append(tensor)
        return t1 - t0, t2 - t1, time.perf_counter() - t2

    def each(threads: int, with_extra: bool) -> np.ndarray:
        """Mean seconds a photo of each stage holds one core, `threads` photos at a time."""
        with ThreadPoolExecutor(threads) as pool:
            times = list(pool.map(lambda n: photo(n, with_extra), range(len(paths))))
        return np.mean(np.array(times), axis=0)

    read_one, decode_one, extra_one = each(1, True)
    read_all, decode_all, _ = each(cores, False) / cores

    plan = plan_encoders(embedder, cores)
    encode = embedder.encode_side_by_side if plan.side_by_side else embedder.encode_batch

    def encoder(size: int, repeats: int) -> float:   # all the plan's encodes at once, best of `repeats`
        batch = np.stack((inputs * size)[:size])
        with ThreadPoolExecutor(plan.lanes) as pool:
            list(pool.map(encode, [batch] * plan.lanes))  # warm-up
            runs = [time.perf_counter()]
            for _ in range(repeats):
                list(pool.map(encode, [batch] * plan.lanes))
                runs.append(time.perf_counter())
        return min(b - a for a, b in zip(runs, runs[1:])) / (size * plan.lanes)
    by_size = {size: encoder(size, 3 if size == BATCH_SIZE else 2) for size in sorted({*batch_sizes, BATCH_SIZE})}
    loaded = embedder.loaded
    return {"read": read_one, "decode": decode_one, "read_all": read_all, "decode_all": decode_all,
            "extra": extra_one, "encode": by_size[BATCH_SIZE], "by_size": by_size, "batch": BATCH_SIZE,
            "cores": cores, "plan": plan.describe(),
            "backend": loaded.backend, "precision": loaded.precision}  # type: ignore[attr-defined]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=150)
    ap.add_argument("--max-side", type=int, default=6016, help="long side of the generated photos")
    ap.add_argument("--model", default="ViT-B-32-256")
    ap.add_argument("--weights", type=Path, help="a real checkpoint; default: random weights made here")
    ap.add_argument("--photos", type=Path, help="an existing folder instead of a generated library")
    ap.add_argument("--skip-openclip-view", action="store_true", help="skip the centre-crop reference run")
    ap.add_argument("--batch-sizes", type=int, nargs="*", default=[4, 8, 16, 32],
                    help="batch sizes to time the encoder at (the app's is always timed)")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "int8", "bf16"],
                    help="the model's number format for the stages and the app alike (default: the app's own "
                         "choice; fp32 makes the encoder the larger stage, as on CPUs without VNNI or bf16)")
    ap.add_argument("--skip-text-pass", action="store_true", help="skip timing the text pass after indexing")
    ap.add_argument("--rounds", type=int, default=5,
                    help="runs of the app, each after a measurement of the stages (each side counts at its fastest)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="clipphotos-bench-"))
    photos = args.photos
    if photos is None:
        if not MAKE_LIBRARY.exists():
            sys.exit(f"{MAKE_LIBRARY} is missing; pass --photos FOLDER")
        photos = work / "photos"
        subprocess.run([sys.executable, str(MAKE_LIBRARY), "--out", str(photos), "--count", str(args.count),
                        "--max-side", str(args.max_side), "--dup-rate", "0"], check=True, capture_output=True)
    paths = sorted(p for p in photos.rglob("*") if p.is_file() and is_supported(p.name))
    weights = args.weights or make_weights(args.model, work / "weights.safetensors")
    print(f"{len(paths)} photos, model {args.model}, {'given' if args.weights else 'random'} weights, "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")

    # The first round's stage measurement makes the one-time export and measurement on this CPU
    # (kept in the library folder): the app's runs then start as any later run does. The app runs as
    # installed for a user: its bytecode compiled (pip compiles at install, a first run caches
    # it), even where PYTHONDONTWRITEBYTECODE would have every run compile the package again.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "clipphotos")], check=True)
    load = os.getloadavg()[0]
    # The stages and the app take turns, `--rounds` times: on a shared machine the speed moves
    # by a sixth from minute to minute, and a round's pair shares its minute (see the docstring).
    # Every app run indexes into a new library that keeps the first one's export, as any later
    # run would.
    costs: list[dict] = []
    runs: list[tuple[float, float]] = []
    peak = 0
    app_vecs: dict[str, np.ndarray] = {}
    for n in range(args.rounds):
        lib = work / ("lib" if n == 0 else f"lib-again-{n}")
        if n and (work / "lib" / "models").is_dir():
            shutil.copytree(work / "lib" / "models", lib / "models")
        costs.append(stage_costs(paths, args.model, weights, work / "lib", sorted({*args.batch_sizes}) if n == 0 else [],
                                 args.precision))
        rate, vecs, run_peak, inner = app(photos, args.model, weights, lib, args.precision)
        runs.append((rate, inner))
        peak = max(peak, run_peak)
        app_vecs = app_vecs or vecs
    app_rate, inner_rate = max(runs)
    print(f"app indexing path            {app_rate:6.2f} img/s   whole process, text pass off "
          f"(indexing alone {inner_rate:.2f} img/s; the fastest of {len(runs)} runs: "
          f"{', '.join(f'{r:.2f}' for r, _ in runs)}); peak RSS {peak / 2**30:.2f} GiB; load before {load:.2f}")
    if not args.skip_text_pass:
        text, seconds, text_peak = run_index(photos, args.model, weights, work / "lib")
        if text.get("text") is not None:
            print(f"text pass (#21) after it     {text['text']['read']} photos read in {text['text']['seconds']:.1f} s "
                  f"(whole process {seconds:.1f} s, peak RSS {text_peak / 2**30:.2f} GiB): not in the ratio")
        else:
            print("text pass (#21) after it     cannot read text on this installation")
    ref_rate, ref_vecs = naive(paths, args.model, weights, "letterbox")
    print(f"naive, letterbox view        {ref_rate:6.2f} img/s   ratio app/naive {app_rate / ref_rate:5.2f}")
    if not args.skip_openclip_view:
        oc_rate, _ = naive(paths, args.model, weights, "openclip")
        print(f"naive, OpenCLIP centre crop  {oc_rate:6.2f} img/s   ratio app/naive {app_rate / oc_rate:5.2f}")
    ceilings = [1 / (c["read_all"] + c["decode_all"] + c["encode"]) for c in costs]
    shares = [rate / c for c, (rate, _) in zip(ceilings, runs)]
    middle = sorted(range(len(shares)), key=shares.__getitem__)[len(shares) // 2]   # the median round
    cost, ceiling, round_rate = costs[middle], ceilings[middle], runs[middle][0]
    cores = cost["cores"]
    print(f"stage costs per photo on {cores} cores (round {middle + 1}, the median share): read + hash {cost['read'] * 1e3:.1f} ms on one core, "
          f"{cost['read_all'] * 1e3:.1f} ms with all decoding; draft decode + letterbox {cost['decode'] * 1e3:.1f} ms "
          f"on one core, {cost['decode_all'] * 1e3:.1f} ms with all decoding "
          f"({cost['decode'] / cost['decode_all']:.2f}x from {cores} cores)")
    print(f"  image encoder {cost['encode'] * 1e3:.1f} ms with all cores ({cost['precision']} through "
          f"{cost['backend']}; {cost['plan']}; batch {cost['batch']}; {1 / cost['encode']:.1f} img/s alone)")
    print("  encoder by batch size: " + ", ".join(f"{size}: {sec * 1e3:.1f} ms{' (the app)' if size == cost['batch'] else ''}"
                                                 for size, sec in sorted(costs[0]["by_size"].items())))
    print(f"  app's own extra work on a new photo's decode (thumbnail, fingerprints): {cost['extra'] * 1e3:.1f} ms "
          f"on one core, not in the ceiling")
    print(f"ceiling they allow           {ceiling:6.2f} img/s   app reaches {shares[middle]:.1%} of it, the median of "
          f"{len(shares)} rounds (goal >= 90%); load now {os.getloadavg()[0]:.2f}")
    print("  round by round (stages, then the app): " + "; ".join(
        f"ceiling {c:.2f}, app {r:.2f} ({share:.1%})" for c, (r, _), share in zip(ceilings, runs, shares)))
    print(f"  the fastest app run against the highest ceiling, measured minutes apart: {app_rate / max(ceilings):.1%}")
    perfect = 1 / ((cost["read"] + cost["decode"]) / cores + cost["encode"])
    print(f"  (were decoding {cores}x as fast on {cores} cores: {perfect:.2f} img/s, app {round_rate / perfect:.1%} of it)")
    cos = [float(ref_vecs[k] @ app_vecs[k] / np.linalg.norm(app_vecs[k])) for k in ref_vecs if k in app_vecs]
    print(f"embeddings compared: {len(cos)}; min cosine app vs naive (same view) {min(cos):.5f}")
    print(f"issue 8's goal: ratio >= 6.0 with min cosine >= 0.999 (bounded by the CPU where the naive run's "
          f"decode or encoder alone allows less; issue 19's is the ceiling's share above); work folder {work}")


if __name__ == "__main__":
    main()
