"""Indexing a real folder: incremental runs, moves, deletes, copies, edits and odd files."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipphotos.library import Library
from conftest import MODEL_ARGS, another_drive, shapes_spec, sql


def count_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file())


@pytest.fixture
def photos(tmp_path, photo_library) -> Path:
    """A private copy of the generated camera library, free to change."""
    src, _ = photo_library
    dst = tmp_path / "Pictures"
    shutil.copytree(src, dst)
    return dst


def test_first_and_second_run(tmp_path, photos, cli):
    lib = tmp_path / "lib"
    first = cli("index", photos, "--library", lib, *MODEL_ARGS, "--json")
    assert first.code == 0, first.err
    r = first.json
    n = count_files(photos)
    assert r["indexed"] + len(r["skipped"]) == n and r["unchanged"] == 0
    assert r["skipped"] == []
    # the library holds byte-identical copies: each content is embedded once
    assert r["embedded"] < r["indexed"]
    second = cli("index", "--library", lib, *MODEL_ARGS, "--json").json
    assert second["indexed"] == 0 and second["embedded"] == 0 and second["unchanged"] == n
    status = cli("status", "--library", lib, "--json").json
    assert status["photos"] == n and status["skipped"] == 0
    assert status["folders"] == [str(photos.resolve())]
    assert "config.json" in status["model"]


def test_move_rename_delete_copy_edit(tmp_path, photos, cli):
    lib = tmp_path / "lib"
    assert cli("index", photos, "--library", lib, *MODEL_ARGS).code == 0
    files = sorted(p for p in photos.rglob("*.JPG"))
    # rename one file, move another to a new folder
    renamed = files[0].with_name("renamed holiday.JPG")
    files[0].rename(renamed)
    (photos / "Sorted" / "2024").mkdir(parents=True)
    moved = photos / "Sorted" / "2024" / files[1].name
    files[1].rename(moved)
    # delete two
    files[2].unlink()
    files[3].unlink()
    # copy one (byte-identical) and edit one in place
    copy = photos / "copy of a photo.JPG"
    shutil.copy2(files[4], copy)
    with Image.open(files[5]) as im:
        im.rotate(90, expand=True).save(files[5], quality=80)
    r = cli("index", "--library", lib, *MODEL_ARGS, "--json").json
    assert r["moved"] == 2
    assert r["removed"] == 2
    assert r["embedded"] == 1          # only the edited photo goes through the model again
    assert r["indexed"] == 2           # the copy and the edited photo
    with Library(lib) as library:
        paths = {p.path for p in library.catalog.iter_photos()}
        assert str(renamed) in paths and str(moved) in paths and str(copy) in paths
        assert str(files[0]) not in paths and str(files[2]) not in paths
        # the index holds exactly the contents the catalog holds
        contents = sql(library, "SELECT count(*) FROM contents")[0][0]
        assert len(library.index) == contents
        hits = {h.path for h in library.search("a photo", limit=1000)}
        assert str(files[2]) not in hits and str(copy) in hits


def test_search_filters_by_folder_and_date(tmp_path, photos, photo_library, cli):
    _, manifest = photo_library
    lib = tmp_path / "lib"
    cli("index", photos, "--library", lib, *MODEL_ARGS)
    folder = photos / "DCIM"
    r = cli("search", "a photo", "--library", lib, "--folder", folder, "--limit", "500", "--json").json
    expected = sum(1 for f in manifest["files"] if f["path"].startswith("DCIM/"))
    assert len(r["results"]) == expected
    assert all(x["path"].startswith(str(folder) + os.sep) for x in r["results"])
    r = cli("search", "a photo", "--library", lib, "--since", "2020-01-01", "--until", "2021-12-31",
            "--limit", "500", "--json").json
    expected = sum(1 for f in manifest["files"] if "2020:" <= f["datetime"][:5] <= "2021:")
    assert len(r["results"]) == expected
    assert all("2020-01-01" <= x["taken_at"] < "2022" for x in r["results"])


def test_empty_library_answers_cleanly(tmp_path, cli):
    missing = cli("search", "anything", "--library", tmp_path / "lib", *MODEL_ARGS, "--json")
    assert missing.code == 2 and "no ClipPhotos library" in missing.err and not (tmp_path / "lib").exists()
    assert cli("folders", "--library", tmp_path / "lib").code == 0      # a library with nothing in it
    r = cli("search", "anything", "--library", tmp_path / "lib", *MODEL_ARGS, "--json")
    assert r.code == 0 and r.json == {"matches": 0, "results": []}
    assert "empty" in r.err
    status = cli("status", "--library", tmp_path / "lib", "--json")
    assert status.json["photos"] == 0 and status.json["folders"] == []


def test_odd_files_are_safe(tmp_path, cli):
    """FIFOs, symlink loops, links out of the library, hidden and NAS cache files, odd names."""
    from clipphotos.shapes import write_library
    root = tmp_path / "photos"
    write_library(root, 6, seed=3)
    outside = tmp_path / "outside"
    write_library(outside, 2, seed=4)
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "elsewhere").symlink_to(outside, target_is_directory=True)
    (root / "@eaDir").mkdir()
    any_jpg = next(root.rglob("*.jpg"))
    os.mkfifo(root / "pipe.jpg")                        # opening it would block forever
    shutil.copy(any_jpg, root / "@eaDir" / "thumb.jpg")
    shutil.copy(any_jpg, root / "._resource.jpg")
    shutil.copy(any_jpg, root / ".hidden.jpg")
    odd = os.fsencode(str(root)) + b"/caf\xe9 latin-1 name.jpg"  # not valid UTF-8
    shutil.copy(any_jpg, os.fsdecode(odd))
    (root / "notes.jpg").write_text("this is not a picture")
    r = cli("index", root, "--library", tmp_path / "lib", *MODEL_ARGS, "--json")
    assert r.code == 0, r.err
    data = r.json
    assert data["indexed"] == 7                          # 6 drawn + the odd name
    assert [s["path"] for s in data["skipped"]] == [str(root / "notes.jpg")]
    assert data["skipped"][0]["reason"]
    with Library(tmp_path / "lib") as library:
        paths = {os.fsencode(p.path) for p in library.catalog.iter_photos()}
    assert odd in paths
    assert not any(b"outside" in p or b"@eaDir" in p or b"/." in p or b"pipe" in p for p in paths)
    # the link out of the library is followed only when the user allows it
    r = cli("index", root, "--follow-links", "--library", tmp_path / "lib", *MODEL_ARGS, "--json").json
    assert r["indexed"] == 2


def test_changing_model_reembeds(tmp_path, cli):
    from clipphotos.shapes import write_library
    root = tmp_path / "photos"
    write_library(root, 8, seed=5)
    lib = tmp_path / "lib"
    cli("index", root, "--library", lib, *MODEL_ARGS)
    # the library remembers its model: later commands need no model options
    assert cli("search", "a red circle", "--library", lib, "--json").code == 0
    other = tmp_path / "other.safetensors"
    shutil.copy(MODEL_ARGS[3], other)
    with open(other, "r+b") as f:  # other weights bytes → another model identity
        f.seek(-8, os.SEEK_END)
        f.write(b"\0" * 8)
    r = cli("index", "--library", lib, "--model", MODEL_ARGS[1], "--weights", other, "--json").json
    assert r["embedded"] == 8
    with Library(lib) as library:
        assert library.model_spec.weights == str(other)
        assert sql(library, "SELECT count(DISTINCT model_id) FROM vectors")[0][0] == 1


def test_unplugged_folder_keeps_its_photos(tmp_path, cli):
    from clipphotos.shapes import write_library
    root = tmp_path / "usb-drive"
    write_library(root, 5, seed=6)
    lib = tmp_path / "lib"
    cli("index", root, "--library", lib, *MODEL_ARGS)
    root.rename(tmp_path / "unmounted")
    r = cli("index", "--library", lib, *MODEL_ARGS, "--json").json
    assert r["removed"] == 0 and r["offline_folders"] == [str(root.resolve())]
    assert cli("status", "--library", lib, "--json").json["photos"] == 5


def test_library_api_reuses_model_across_calls(tmp_path):
    from clipphotos.shapes import write_library
    root = tmp_path / "photos"
    truth = write_library(root, 32, seed=7)
    with Library(tmp_path / "lib", model=shapes_spec()) as library:
        report = library.index_folders([root])
        assert report.indexed == 32
        top = library.search("a green triangle", limit=1)[0]
        record = next(t for t in truth if str(root / t["path"]) == top.path)
        assert (record["colour"], record["shape"]) == ("green", "triangle")


def test_library_inside_a_photo_folder_is_not_indexed(tmp_path, cli):
    from clipphotos.shapes import write_library
    photos = tmp_path / "Pictures"
    write_library(photos, 4, seed=8)
    lib = photos / "ClipPhotos library"
    assert cli("index", photos, "--library", lib, *MODEL_ARGS, "--json").json["indexed"] == 4
    (lib / "thumbnails" / "ab").mkdir(parents=True, exist_ok=True)   # as the app's thumbnails are
    shutil.copy(next(photos.rglob("*.jpg")), lib / "thumbnails" / "ab" / "abcdef.jpg")
    again = cli("index", "--library", lib, *MODEL_ARGS, "--json").json
    assert again["indexed"] == 0 and again["unchanged"] == 4


def test_empty_mount_point_is_offline_not_deleted(tmp_path, cli):
    from clipphotos.shapes import write_library
    card = tmp_path / "media" / "card"
    write_library(card, 3, seed=9)
    lib = tmp_path / "lib"
    cli("index", card, "--library", lib, *MODEL_ARGS)
    shutil.rmtree(card)
    card.mkdir()                                        # the card is out: its mount point stays, empty
    r = cli("index", "--library", lib, *MODEL_ARGS, "--json").json
    assert r["removed"] == 0 and r["offline_folders"] == [str(card.resolve())]
    assert cli("status", "--library", lib, "--json").json["photos"] == 3


@pytest.mark.parametrize("how", ["link", "mount"])
def test_a_drive_mounted_inside_a_folder_keeps_its_photos_while_away(tmp_path, cli, how, request):
    """The folder holding another drive's photos is remembered; while that drive is away (the
    folder empty, or the link dangling) its photos stay, the folder is named offline, and repair
    forgets nothing. Once the folder holds files of its own, it is trusted again."""
    from clipphotos.shapes import write_library
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    write_library(photos, 3, seed=21)
    card = another_drive(photos, how, request)
    target = card.resolve()
    try:
        write_library(target, 4, seed=22)
        r = cli("index", photos, "--library", lib, "--follow-links", *MODEL_ARGS, "--json").json
        assert r["indexed"] == 7, r
        with Library(lib) as library:
            assert library.catalog.mount_points(library.folders()[0][0]) == {os.fsencode(card)}
    finally:
        if how == "mount":
            subprocess.run(["umount", str(card)], check=True)      # the drive is away: an empty folder
        else:
            target.rename(target.with_name(target.name + "-away"))  # the drive is away: the link dangles
    r = cli("index", "--library", lib, *MODEL_ARGS, "--json").json
    assert r["removed"] == 0 and r["offline_folders"] == [str(card)], r
    repair = cli("repair", "--yes", "--library", lib, *MODEL_ARGS, "--json").json
    assert repair["vanished"] == [] and repair["forgotten"] == 0
    status = cli("status", "--library", lib, "--json").json
    assert status["photos"] == 7 and status["folder_details"][0]["away"] == [str(card)]
    assert f"{card}  (its drive is away" in cli("status", "--library", lib).out

    if how == "link":
        target.with_name(target.name + "-away").rename(target)    # back: nothing to do again
        r = cli("index", "--library", lib, *MODEL_ARGS, "--json").json
        assert r["indexed"] == 0 and r["unchanged"] == 7 and r["offline_folders"] == []
        card.unlink()
        shutil.rmtree(target)
        card.mkdir()
    write_library(card, 1, seed=23)      # a plain folder with a photo of its own: trusted again
    r = cli("index", "--library", lib, *MODEL_ARGS, "--json").json
    assert r["removed"] == 4 and r["indexed"] == 1 and r["offline_folders"] == [], r
    with Library(lib) as library:
        assert library.catalog.mount_points(library.folders()[0][0]) == set()


def test_a_drive_away_for_good_is_forgotten_by_folders_remove(tmp_path, cli, request):
    """`folders remove` on the away folder forgets the photos kept for it (the files untouched)."""
    from clipphotos.shapes import write_library
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    write_library(photos, 3, seed=24)
    card = another_drive(photos, "link", request)
    target = card.resolve()
    write_library(target, 4, seed=25)
    assert cli("index", photos, "--library", lib, "--follow-links", *MODEL_ARGS, "--json").json["indexed"] == 7
    target.rename(target.with_name(target.name + "-away"))
    assert cli("status", "--library", lib, "--json").json["photos"] == 7
    assert cli("folders", "remove", card, "--library", lib).code == 0
    status = cli("status", "--library", lib, "--json").json
    assert status["photos"] == 3 and status["folder_details"][0]["away"] == [] and len(status["folders"]) == 1
    assert len(list(target.with_name(target.name + "-away").rglob("*.*"))) == 4     # the files untouched
    assert "is not one of the library's folders" in cli("folders", "remove", card, "--library", lib).err


def test_a_missing_file_says_whether_its_drive_is_away_or_it_is_gone(tmp_path, cli, request):
    """Library.file_absence tells the app what to show for a photo whose file is not there: its
    drive is away (by the rule indexing follows), or the file is gone from a folder that is here.
    A photo reached through the link is found under the link's path, there or away (its tags
    were asked for by its resolved path, which the catalog does not hold)."""
    from clipphotos.shapes import write_library
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    write_library(photos, 3, seed=26)
    card = another_drive(photos, "link", request)
    write_library(card.resolve(), 2, seed=27)
    assert cli("index", photos, "--library", lib, "--follow-links", *MODEL_ARGS, "--json").json["indexed"] == 5
    with Library(lib) as library:
        paths = [p.path for p in library.catalog.photos_in_folder(library.folders()[0][0])]
        on_card = [p for p in paths if p.startswith(f"{card}{os.sep}")]
        assert [library.photo_tags(p) for p in on_card] == [[], []]
    card.resolve().rename(card.resolve().with_name(card.resolve().name + "-away"))
    with Library(lib) as library:
        here = sorted(set(paths) - set(on_card))
        assert len(on_card) == 2 and {library.file_absence(p) for p in on_card} == {"away"}
        assert [library.photo_tags(p) for p in on_card] == [[], []]
        assert [library.file_absence(p) for p in here] == [None, None, None]
        os.remove(here[0])                                   # deleted since the last scan
        assert library.file_absence(here[0]) == "gone"
        shutil.rmtree(photos)                                # the whole folder's drive is unplugged
        assert {library.file_absence(p) for p in paths} == {"away"}


# -- the pipeline: cores shared in turns, encodes side by side, nothing done twice ------------


def test_core_turns_never_give_out_more_cores_than_there_are_and_a_wide_turn_is_not_starved():
    import threading
    import time

    from clipphotos.indexer import CoreTurns
    turns = CoreTurns(2)
    busy, peak, guard, stop = [0], [0], threading.Lock(), threading.Event()

    def hold(n: int) -> None:
        with turns.hold(n):
            with guard:
                busy[0] += n
                peak[0] = max(peak[0], busy[0])
            time.sleep(0.002)
            with guard:
                busy[0] -= n

    def narrow_forever() -> None:
        while not stop.is_set():
            hold(1)
    loopers = [threading.Thread(target=narrow_forever) for _ in range(3)]
    for t in loopers:
        t.start()
    wide = threading.Thread(target=lambda: [hold(2) for _ in range(5)])
    wide.start()
    wide.join(timeout=20)
    stop.set()
    for t in loopers:
        t.join()
    assert not wide.is_alive(), "single-core turns kept an encode that needs both cores waiting"
    assert peak[0] == 2 and busy[0] == 0
    with turns.hold(0):   # a GPU encode holds no core
        assert turns._free == 2


def test_a_worker_waiting_for_the_catalog_holds_no_core(tmp_path, photo_library):
    """While the main thread commits a batch, a decoding worker that must look the photo up
    waits for the catalog: it must not keep a core turn meanwhile, or that core idles."""
    import threading
    import time

    from clipphotos.indexer import CoreTurns, Indexer
    from clipphotos.scanner import ScannedFile
    src, _ = photo_library
    photo = next(p for p in sorted(src.rglob("*.JPG")))
    with Library(tmp_path / "lib", model=shapes_spec()) as library:
        folder_id = library.add_folder(src)
        indexer = Indexer(library.catalog, library.embedder, library.index, library.model_id, cores=1)
        assert isinstance(indexer.turns, CoreTurns) and indexer.turns.cores == 1
        st = photo.stat()
        done: list = []
        with library.catalog.transaction():   # a commit in progress holds the catalog
            worker = threading.Thread(target=lambda: done.append(indexer._prepare(
                folder_id, ScannedFile(os.fsencode(photo), st.st_size, st.st_mtime_ns))))
            worker.start()
            time.sleep(0.5)   # read and hashed long since (a small JPEG): waiting for the catalog
            assert worker.is_alive() and not done
            assert indexer.turns._free == 1, "the worker kept its core while waiting for the catalog"
        worker.join(timeout=20)
        assert done and done[0].tensor is not None and done[0].error is None


def test_onnx_runtime_encodes_run_side_by_side_one_thread_each(tmp_path):
    from clipphotos.embedder import Embedder
    from clipphotos.indexer import EncoderPlan, plan_encoders
    from clipphotos.inference import open_model
    model = open_model(shapes_spec(), tmp_path)
    assert model.backend == "onnxruntime"
    assert plan_encoders(Embedder(model), 2) == EncoderPlan(2, 1, True) and model.image_threads == 1
    assert plan_encoders(Embedder(open_model(shapes_spec(), tmp_path)), 8) == EncoderPlan(4, 2, True)
    # An image session already open keeps its threads: then one encode at a time on all of them.
    opened = open_model(shapes_spec(), tmp_path)
    opened.use_image_threads(2)
    embedder = Embedder(opened)
    embedder.encode_batch(np.zeros((1, 3, opened.image_size, opened.image_size), dtype=np.float32))
    assert opened.use_image_threads(1) == 2
    assert plan_encoders(embedder, 2) == EncoderPlan(1, 2, False)


def test_vectors_from_encodes_side_by_side_are_each_photos_own(tmp_path, shapes_folder):
    """45 drawings (batches of 8 on two encodes at once, a tail split between them): every
    stored vector is its own picture's, as the model gives it for that picture alone."""
    from clipphotos.indexer import BATCH_SIZE, CoreTurns
    from clipphotos.loader import load_image
    src, _ = shapes_folder
    folder = tmp_path / "drawn"
    folder.mkdir()
    for p in sorted(src.rglob("*.png"))[:45]:
        shutil.copy(p, folder / p.name)
    assert 45 % BATCH_SIZE
    plans = []

    def on_two_cores(indexer) -> None:
        indexer.turns = CoreTurns(2)
        plans.append(indexer)
    with Library(tmp_path / "lib", model=shapes_spec()) as library:
        report = library.index_folders([folder], indexer_hook=on_two_cores, read_text=False)
        assert report.embedded == 45 and plans[0].plan.lanes == 2
        rows = sql(library, "SELECT p.path, v.vec FROM photos p JOIN vectors v ON v.content_id = p.content_id")
        paths = [Path(os.fsdecode(bytes(p))) for p, _ in rows]
        stored = np.stack([np.frombuffer(v, dtype=np.float16).astype(np.float32) for _, v in rows])
        embedder = library.embedder
        alone = np.concatenate([embedder.encode_batch(
            embedder.prepare(load_image(p, target=embedder.decode_size).image)[None]) for p in paths])
    stored /= np.linalg.norm(stored, axis=1, keepdims=True)
    similarity = stored @ alone.T
    assert np.array_equal(similarity.argmax(axis=1), np.arange(len(paths)))
    assert float(np.diag(similarity).min()) > 0.999


def test_thumbnail_comes_from_the_models_shrunk_picture_when_big_enough(tmp_path, photo_library):
    """One resize per photo: the picture shrunk for the model is the thumbnail when it is at
    least thumbnail-sized; a smaller one (a 224-px model's) leaves the thumbnail to the decode."""
    from clipphotos.loader import load_image
    from clipphotos.thumbnails import ThumbnailCache
    src, _ = photo_library
    photo = next(p for p in sorted(src.rglob("*.JPG")))
    loaded = load_image(photo, target=512)
    assert max(loaded.image.size) > 256
    cache = ThumbnailCache(tmp_path / "thumbnails")
    marked = Image.new("RGB", (256, 170), (250, 0, 250))   # stands out from any photo
    cache.from_decoded("ab12", loaded, marked)
    with Image.open(cache.lookup("ab12")) as thumb:
        assert thumb.size == (256, 170)
        assert np.abs(np.asarray(thumb.convert("RGB"), dtype=int) - (250, 0, 250)).mean() < 8
    cache.from_decoded("cd34", loaded, Image.new("RGB", (224, 149), (250, 0, 250)))
    with Image.open(cache.lookup("cd34")) as thumb:
        assert max(thumb.size) == 256
        expected = loaded.image.resize(thumb.size, Image.Resampling.LANCZOS)
        assert np.abs(np.asarray(thumb.convert("RGB"), dtype=int) - np.asarray(expected, dtype=int)).mean() < 8


def test_torch_on_a_cpu_encodes_on_all_cores_while_decodes_wait(shapes_model):
    import torch

    from clipphotos.embedder import Embedder
    from clipphotos.indexer import EncoderPlan, plan_encoders
    assert plan_encoders(Embedder(shapes_model), 2) == EncoderPlan(1, min(2, torch.get_num_threads()), False)
