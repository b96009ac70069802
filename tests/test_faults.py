"""Faults a careful user's machine meets: unplugged drives, stale duplicates, damaged catalogs,
full disks, read-only libraries, permissions. Nothing may be lost, no fault may end in a traceback.

Permission tests run the command in a subprocess without root's read override
(`setpriv --bounding-set -dac_override,-dac_read_search`), so they mean the same as root or not.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MODEL_ARGS, REPO, point_an_index_entry_nowhere


def draw(folder: Path, count: int, seed: int) -> list[Path]:
    from clipphotos.shapes import write_library
    return [folder / t["path"] for t in write_library(folder, count, seed=seed)]


def bind_mount(source: Path, target: Path) -> bool:
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True).returncode == 0


# -- 1. repair never forgets an offline folder's photos ------------------------------------


def test_repair_keeps_photos_of_an_unmounted_drive(tmp_path, cli):
    photos, mnt, lib = tmp_path / "photos", tmp_path / "mnt", tmp_path / "lib"
    draw(photos, 6, seed=31)
    if not bind_mount(photos, mnt):
        pytest.skip("mount --bind needs root and a kernel that allows it (the renamed-drive test covers the rule)")
    try:
        assert cli("index", mnt, "--library", lib, *MODEL_ARGS, "--json").json["indexed"] == 6
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    r = cli("repair", "--yes", "--library", lib, *MODEL_ARGS, "--json")
    assert r.code == 0, r.err
    assert r.json["vanished"] == [] and r.json["forgotten"] == 0
    status = cli("status", "--library", lib, "--json").json
    assert status["photos"] == 6 and status["folder_details"][0]["online"] is False


def test_repair_keeps_photos_of_an_unplugged_or_unreadable_folder(tmp_path, cli):
    drive, lib = tmp_path / "drive", tmp_path / "lib"
    files = draw(drive, 5, seed=32)
    cli("index", drive, "--library", lib, *MODEL_ARGS)
    drive.rename(tmp_path / "away")                       # unplugged: the folder is gone
    r = cli("repair", "--yes", "--library", lib, *MODEL_ARGS, "--json").json
    assert r["forgotten"] == 0 and cli("status", "--library", lib, "--json").json["photos"] == 5
    (tmp_path / "away").rename(drive)
    files[0].unlink()                                     # back, and one photo really deleted
    r = cli("repair", "--yes", "--library", lib, *MODEL_ARGS, "--json").json
    assert r["vanished"] == [str(files[0])] and r["forgotten"] == 1


# -- 2. destructive duplicate actions re-verify the files at the moment they act -----------


def exact_pair(tmp_path: Path, cli) -> tuple[Path, Path, Path]:
    """Two byte-identical photos indexed in a library; returns (library, keep, copy)."""
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    (original,) = draw(photos / "camera", 1, seed=33)
    copy = photos / "Downloads" / original.name
    copy.parent.mkdir(parents=True)
    shutil.copy2(original, copy)
    assert cli("index", photos, "--library", lib, *MODEL_ARGS, "--json").json["indexed"] == 2
    from clipphotos.library import Library
    with Library(lib) as library:
        (group,) = [g for g in library.duplicates(("exact",))]
    assert group.keep == str(original)
    return lib, original, copy


def replace_keeping_size_and_time(path: Path) -> None:
    """What some sync and restore tools do: other bytes, same size, the old time put back."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_trash_others_rehashes_and_spares_the_last_copy(tmp_path, cli, tmp_trash):
    lib, keep, copy = exact_pair(tmp_path, cli)
    original_bytes = copy.read_bytes()
    replace_keeping_size_and_time(keep)       # the keep is no longer a copy of anything
    r = cli("dupes", "--trash-others", "--yes", "--library", lib, "--json")
    assert r.code == 1, r.err
    assert r.json["moved"] == [] and copy.read_bytes() == original_bytes
    (refused,) = r.json["failed"]
    assert refused["path"] == str(copy) and "left alone with its group" in refused["reason"]
    assert f"{keep} no longer holds the bytes" in refused["reason"]
    human = cli("dupes", "--move-others", tmp_path / "aside", "--yes", "--library", lib)
    assert human.code == 1 and "left alone with its group" in human.out and copy.exists()


def test_verify_group_checks_time_size_bytes_and_the_keep(tmp_path, cli):
    from clipphotos.duplicates import verify_group
    from clipphotos.library import Library
    lib, keep, copy = exact_pair(tmp_path, cli)
    with Library(lib) as library:
        (group,) = library.duplicates(("exact",))
    assert verify_group(group) is None
    os.utime(copy, ns=(0, 10**18))
    assert "changed since it was indexed" in verify_group(group)
    copy.unlink()                                        # a copy already gone is nothing to move
    assert verify_group(group) is None
    keep.rename(keep.with_suffix(".bak"))
    assert "file to keep" in verify_group(group) and "no longer exists" in verify_group(group)
    keep.mkdir()
    assert "no longer a regular file" in verify_group(group)


# -- 3/4. damage, full disks, read-only libraries: one message, exit 4, never a traceback ----


@pytest.fixture
def indexed(tmp_path, cli) -> tuple[Path, Path, list[Path]]:
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    files = draw(photos, 8, seed=34)
    assert cli("index", photos, "--library", lib, *MODEL_ARGS).code == 0
    return photos, lib, files


def damage(catalog: Path, offset: int) -> None:
    import random
    with open(catalog, "r+b") as f:
        f.seek(offset)
        f.write(random.Random(offset).randbytes(4096))


COMMANDS = [("status",), ("search", "a red circle"), ("index",), ("repair", "--yes"), ("dupes",), ("tag", "list"),
            ("folders",), ("backup", "BACKUP")]


def test_a_damaged_catalog_header_gives_one_message_naming_doctor(indexed, cli, tmp_path):
    photos, lib, _ = indexed
    damage(lib / "catalog.sqlite3", 0)
    for command in COMMANDS:
        args = [str(tmp_path / "b.sqlite3") if a == "BACKUP" else a for a in command]
        r = cli(*args, "--library", lib, *MODEL_ARGS)
        assert r.code == 4, (command, r.err)
        assert "damaged" in r.err and "clipphotos doctor --library" in r.err, (command, r.err)
    doctor = cli("doctor", "--library", lib, "--json")
    assert doctor.code == 1
    catalog = next(c for c in doctor.json["checks"] if c["check"] == "catalog")
    assert not catalog["ok"] and "--rebuild-catalog" in catalog["fix"] and "backup" in catalog["fix"]
    assert all(p.exists() for p in photos.rglob("*.jpg"))


def test_damage_inside_the_catalog_is_noticed_before_backup_index_and_repair(indexed, cli, tmp_path):
    photos, lib, _ = indexed
    catalog = lib / "catalog.sqlite3"
    size = catalog.stat().st_size
    damage(catalog, (size // 4096 // 2) * 4096)            # a page in the middle: the header stays good
    doctor = cli("doctor", "--library", lib, "--json")
    assert doctor.code == 1
    assert not next(c for c in doctor.json["checks"] if c["check"] == "catalog")["ok"]
    for command in (("backup", tmp_path / "copy.sqlite3"), ("index",), ("repair", "--yes")):
        r = cli(*command, "--library", lib, *MODEL_ARGS)
        assert r.code == 4 and "damaged" in r.err and "doctor" in r.err, (command, r.err)
    assert not (tmp_path / "copy.sqlite3").exists()


def test_watch_stops_on_damage_the_quick_check_missed_and_says_how_to_recover(tmp_path):
    """Waiting does not mend a damaged catalog: `watch` meets it in its first scan (past the quick
    check at start) and exits with the damage message instead of retrying for ever."""
    import subprocess
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    draw(photos, 6, seed=45)
    subprocess.run([sys.executable, "-m", "clipphotos", "index", str(photos), "--library", str(lib), *MODEL_ARGS,
                    "--no-text"], cwd=REPO, check=True, capture_output=True)
    point_an_index_entry_nowhere(lib / "catalog.sqlite3", "photos_folder")   # the scan reads it
    (photos / "new").mkdir()
    draw(photos / "new", 2, seed=46)                  # work for the first scan
    done = subprocess.run([sys.executable, "-m", "clipphotos", "watch", "--library", str(lib), "--no-text"],
                          cwd=REPO, capture_output=True, text=True, timeout=90)
    assert done.returncode == 4, done.stderr
    assert "damaged" in done.stderr and "doctor" in done.stderr and "Traceback" not in done.stderr


def test_an_emptied_catalog_beside_its_index_is_damage_not_a_new_library(indexed, cli):
    photos, lib, _ = indexed
    (lib / "catalog.sqlite3").write_bytes(b"")
    for command in (("status",), ("index",), ("search", "a circle")):
        r = cli(*command, "--library", lib, *MODEL_ARGS)
        assert r.code == 4 and "emptied" in r.err and "doctor" in r.err, (command, r.err)
    assert (lib / "catalog.sqlite3").stat().st_size == 0     # nothing was written over it
    doctor = cli("doctor", "--library", lib, "--json")
    assert doctor.code == 1 and "emptied" in next(c for c in doctor.json["checks"] if c["check"] == "catalog")["detail"]


def test_output_whose_reader_went_away_ends_quietly(indexed):
    """`clipphotos status --json | head`: a reader that stops reading is no fault of the library's."""
    _, lib, _ = indexed
    read_end, write_end = os.pipe()
    os.close(read_end)                           # nobody will read: every write meets a broken pipe
    try:
        done = subprocess.run([sys.executable, "-m", "clipphotos", "status", "--json", "--library", str(lib)],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 141 and done.stderr == ""


def test_library_that_is_a_file_or_mistyped(tmp_path, cli):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a library")
    r = cli("index", tmp_path, "--library", a_file, *MODEL_ARGS)
    assert r.code == 4 and "is a file, not a library folder" in r.err
    typo = tmp_path / "Librray"
    for command in (("status",), ("search", "a dog"), ("backup", tmp_path / "b")):
        r = cli(*command, "--library", typo)
        assert r.code == 2 and "no ClipPhotos library at" in r.err, r.err
    assert not typo.exists()


def test_negative_limit_is_refused(indexed, cli, capsys):
    _, lib, _ = indexed
    for bad in ("-1", "0"):
        with pytest.raises(SystemExit) as exit_:
            cli("search", "a circle", "--limit", bad, "--library", lib)
        assert exit_.value.code == 2
    assert "give 1 or more" in capsys.readouterr().err


def ro_bind(source: Path, target: Path) -> bool:
    if not bind_mount(source, target):
        return False
    if subprocess.run(["mount", "-o", "remount,ro,bind", str(target)], capture_output=True).returncode != 0:
        subprocess.run(["umount", str(target)])
        return False
    return True


def test_read_only_library_reads_and_refuses_writes_in_words(indexed, cli, tmp_path):
    photos, lib, _ = indexed
    ro = tmp_path / "ro"
    if not ro_bind(lib, ro):
        pytest.skip("a read-only bind mount needs root (mount --bind, then remount,ro)")
    try:
        status = cli("status", "--library", ro, "--json")
        assert status.code == 0 and status.json["photos"] == 8, status.err
        search = cli("search", "a red circle", "--library", ro, "--json")
        assert search.code == 0 and len(search.json["results"]) == 8, search.err
        assert cli("doctor", "--library", ro, "--json").code in (0, 1)
        backup = cli("backup", tmp_path / "copy.sqlite3", "--library", ro, "--json")
        assert backup.code == 0 and (tmp_path / "copy.sqlite3").stat().st_size > 0
        for command in (("index",), ("repair", "--yes"), ("tag", "add", "cats")):
            r = cli(*command, "--library", ro, *MODEL_ARGS)
            assert r.code == 4 and "read-only" in r.err, (command, r.err)
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def tmpfs(target: Path, size: str) -> bool:
    target.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
                          capture_output=True).returncode == 0


def test_full_disk_gives_one_message_and_loses_nothing(tmp_path, cli):
    photos, disk = tmp_path / "photos", tmp_path / "disk"
    draw(photos, 60, seed=35)
    if not tmpfs(disk, "400k"):
        pytest.skip("a small tmpfs (a full disk) needs root")
    try:
        lib = disk / "lib"
        r = cli("index", photos, "--library", lib, *MODEL_ARGS, "--json")
        assert r.code == 4 and "out of disk space" in r.err, r.err
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)   # room again
        midway = cli("status", "--library", lib, "--json").json
        assert midway["folders"] == [str(photos)] and midway["photos"] < 60   # it filled up while indexing
        again = cli("index", photos, "--library", lib, *MODEL_ARGS, "--json")   # the same command again
        assert again.code == 0, again.err
        assert cli("status", "--library", lib, "--json").json["photos"] == 60
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_thumbnails_not_written_are_counted(tmp_path, cli):
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    draw(photos, 12, seed=36)
    if not tmpfs(lib / "thumbnails", "8k"):
        pytest.skip("a small tmpfs (a full disk) needs root")
    try:
        r = cli("index", photos, "--library", lib, *MODEL_ARGS, "--json")
        assert r.code == 0, r.err
        assert r.json["indexed"] == 12 and r.json["thumbnails_failed"] > 0
        assert r.json["thumbnail_error"] == os.strerror(28)
    finally:
        subprocess.run(["umount", str(lib / "thumbnails")], check=True)


# -- 6. the model is named as soon as the first index starts ----------------------------------


def test_a_stopped_first_index_remembers_its_model(tmp_path, cli):
    from clipphotos.library import Library
    from conftest import shapes_spec
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    draw(photos, 40, seed=37)
    with Library(lib, model=shapes_spec()) as library:
        report = library.index_folders([photos], indexer_hook=lambda indexer: indexer.stop.set())
    assert report.stopped and report.indexed < 40
    # offline (HF_HUB_OFFLINE) the default model cannot load: these work only with the remembered one
    assert cli("search", "a red circle", "--library", lib, "--json").code == 0
    r = cli("index", "--library", lib, "--json")
    assert r.code == 0, r.err
    assert cli("status", "--library", lib, "--json").json["photos"] == 40


# -- 5. permissions: retried when readable again; an unreadable subfolder loses nothing -------


def unprivileged(*args: str | Path) -> subprocess.CompletedProcess:
    """`clipphotos ARGS` without root's read override, as any user meets permissions."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is absent: permissions cannot be tested as root")
    command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search",
               sys.executable, "-m", "clipphotos", *map(str, args)]
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_a_file_skipped_for_permission_is_retried_when_readable(tmp_path, cli):
    import json
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    files = draw(photos, 4, seed=38)
    files[0].chmod(0o000)
    r = unprivileged("index", photos, "--library", lib, *MODEL_ARGS, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["indexed"] == 3 and report["skipped"] == [{"path": str(files[0]),
                                                            "reason": "cannot read: Permission denied"}]
    files[0].chmod(0o644)                                  # neither its size nor its time changes
    again = json.loads(unprivileged("index", "--library", lib, *MODEL_ARGS, "--json").stdout)
    assert again["indexed"] == 1 and again["skipped"] == []


def test_an_unreadable_subfolder_is_skipped_and_keeps_its_photos(tmp_path, cli):
    import json
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    draw(photos / "open", 3, seed=39)
    draw(photos / "private", 3, seed=40)
    assert cli("index", photos, "--library", lib, *MODEL_ARGS, "--json").json["indexed"] == 6
    (photos / "private").chmod(0o000)
    try:
        r = unprivileged("index", "--library", lib, *MODEL_ARGS, "--json")
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["removed"] == 0
        assert report["skipped"] == [{"path": str(photos / "private"), "reason": "cannot read: Permission denied"}]
        repair = json.loads(unprivileged("repair", "--yes", "--library", lib, *MODEL_ARGS, "--json").stdout)
        assert repair["forgotten"] == 0 and repair["vanished"] == []
        status = json.loads(unprivileged("status", "--library", lib, "--json").stdout)
        assert status["photos"] == 6 and status["skipped"] == 1
    finally:
        (photos / "private").chmod(0o755)
    back = cli("index", "--library", lib, *MODEL_ARGS, "--json").json
    assert back["removed"] == 0 and back["skipped"] == [] and back["unchanged"] == 6


def test_an_unreadable_library_folder_is_offline(tmp_path, cli):
    import json
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    draw(photos, 3, seed=41)
    cli("index", photos, "--library", lib, *MODEL_ARGS)
    photos.chmod(0o000)
    try:
        report = json.loads(unprivileged("index", "--library", lib, *MODEL_ARGS, "--json").stdout)
        assert report["removed"] == 0 and report["offline_folders"] == [str(photos)]
    finally:
        photos.chmod(0o755)
    assert cli("status", "--library", lib, "--json").json["photos"] == 3


# -- 7. privacy: a library is its owner's alone ---------------------------------------------------


def modes(root: Path) -> dict[str, int]:
    import stat
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def test_a_new_library_is_readable_by_its_owner_alone(tmp_path, cli):
    from clipphotos.library import Library
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    draw(photos, 6, seed=42)
    old = os.umask(0o022)          # the usual umask: new files would be 0644
    try:
        assert cli("index", photos, "--library", lib, *MODEL_ARGS).code == 0
        with Library(lib) as library:   # while open, the WAL and its shared memory exist
            library.catalog.photo_count()
            with library.writing():
                found = modes(lib)
        (tmp_path / "backups").mkdir()
        cli("backup", tmp_path / "backups", "--library", lib)
    finally:
        os.umask(old)
    names = set(found)
    assert {".", "catalog.sqlite3", "catalog.sqlite3-wal", "catalog.sqlite3-shm", "index", "thumbnails",
            "writer.lock"} <= names, names
    assert any(n.startswith("index/") for n in names) and any(n.endswith(".jpg") for n in names)
    loose = {n: oct(m) for n, m in found.items() if m & 0o077}
    assert loose == {}, loose
    assert all(m == 0o700 for n, m in found.items() if (lib / n).is_dir())
    (backup,) = (tmp_path / "backups").iterdir()
    assert backup.stat().st_mode & 0o777 == 0o600


def test_an_old_library_is_tightened_once_and_says_so(tmp_path, cli, caplog):
    import logging
    from clipphotos.library import Library
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    draw(photos, 3, seed=43)
    cli("index", photos, "--library", lib, *MODEL_ARGS)
    for path in [lib, *lib.rglob("*")]:             # as an older version left it
        path.chmod(0o755 if path.is_dir() else 0o644)
    (lib / "notes.txt").write_text("not the app's")  # the user's own file: not ours to change
    (lib / "notes.txt").chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="clipphotos"):
        Library(lib).close()
        Library(lib).close()
    said = [r.getMessage() for r in caplog.records if "readable by other accounts" in r.getMessage()]
    assert len(said) == 1 and "it and what it holds" in said[0], said
    assert {n: oct(m) for n, m in modes(lib).items() if m & 0o077} == {"notes.txt": "0o644"}
    fresh = tmp_path / "made-by-hand"              # an empty folder the user made for a new library
    fresh.mkdir(mode=0o755)
    fresh.chmod(0o755)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="clipphotos"):
        Library(fresh).close()
    assert not [r for r in caplog.records if "readable by other accounts" in r.getMessage()]
    assert fresh.stat().st_mode & 0o777 == 0o700


def test_xmp_sidecars_keep_the_photo_permissions(tmp_path):
    import stat
    from clipphotos.xmp import sidecar_path, write_tags
    (photo,) = draw(tmp_path / "photos", 1, seed=44)
    photo.chmod(0o640)
    old = os.umask(0o022)
    try:
        write_tags(photo, ["beach"])
    finally:
        os.umask(old)
    assert stat.S_IMODE(sidecar_path(photo).stat().st_mode) == 0o640


# -- 8. JSON paths of names that are not UTF-8: valid and lossless ----------------------------------


def test_json_paths_of_undecodable_names_are_valid_and_lossless(tmp_path, cli):
    import base64
    import json
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    (drawn,) = draw(photos, 1, seed=45)
    odd = os.path.join(os.fsencode(photos), b"caf\xe9 \xff.jpg")     # Latin-1 bytes: not UTF-8
    os.rename(drawn, odd)
    assert cli("index", photos, "--library", lib, *MODEL_ARGS).code == 0
    r = cli("search", "a shape", "--library", lib, "--json")
    out = r.out.encode("ascii")                              # JSON text, all ASCII

    def strict(value):                                       # every string is real Unicode (no lone surrogates)
        if isinstance(value, str):
            value.encode("utf-8")
        elif isinstance(value, dict):
            [strict(v) for v in value.values()]
        elif isinstance(value, list):
            [strict(v) for v in value]
    doc = json.loads(out)
    strict(doc)
    (hit,) = doc["results"]
    assert hit["path"] == str(photos) + "/caf\\xe9 \\xff.jpg"
    raw = base64.b64decode(hit["path_bytes"])
    assert raw == odd and os.path.isfile(raw)
    status = cli("status", "--library", lib, "--json").json
    assert "folders_bytes" not in status                     # plain names get no twin


def test_rebuild_catalog_keeps_what_can_be_read_and_indexes_again(indexed, cli, tmp_path):
    import sqlite3
    photos, lib, files = indexed
    assert cli("tag", "add", "circles", "--prompt", "a photo of a circle", "--library", lib).code == 0
    assert cli("tag", "accept", "circles", files[0], "--library", lib, *MODEL_ARGS).code == 0
    catalog = lib / "catalog.sqlite3"
    with sqlite3.connect(catalog) as con:                       # find a page of vectors, far from the labels
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        root = con.execute("SELECT rootpage FROM sqlite_master WHERE name='vectors'").fetchone()[0]
    with open(catalog, "r+b") as f:
        f.seek((root - 1) * 4096)
        f.write(b"\xff" * 4096)
    assert cli("status", "--library", lib, *MODEL_ARGS).code in (0, 4)
    r = cli("repair", "--rebuild-catalog", "--library", lib, *MODEL_ARGS, "--json")
    assert r.code == 0, r.err
    done = r.json
    assert done["salvaged"]["folders"] == 1 and done["salvaged"]["labels"] == 1 and done["salvaged"]["model"] == 1
    assert done["reviews_restored"] == 1 and done["index"]["indexed"] == 8
    assert any(".damaged-" in p for p in done["set_aside"]) and all(Path(p).exists() for p in done["set_aside"])
    doctor = cli("doctor", "--library", lib, "--json").json
    assert next(c for c in doctor["checks"] if c["check"] == "catalog")["ok"]
    assert cli("search", "a circle", "--library", lib, "--json").code == 0    # the model came back too
    assert cli("status", "--library", lib, "--json").json["photos"] == 8


def test_offline_rule(tmp_path):
    from clipphotos.scanner import offline_reason
    assert "not found" in offline_reason(tmp_path / "gone", holds_photos=True)
    (tmp_path / "empty").mkdir()
    assert "empty" in offline_reason(tmp_path / "empty", holds_photos=True)
    assert offline_reason(tmp_path / "empty", holds_photos=False) is None    # a new, empty folder is fine
    (tmp_path / "a file").write_text("x")
    assert offline_reason(tmp_path / "a file", holds_photos=False) is not None
    assert offline_reason(tmp_path, holds_photos=True) is None


def test_quick_check_sees_no_damage_in_a_healthy_without_rowid_table(tmp_path):
    """SQLite 3.40's quick_check reports NULLs that are not there (tagged_contents' reordered key)."""
    from clipphotos.catalog import Catalog
    catalog = Catalog(tmp_path / "catalog.sqlite3")
    with catalog.transaction() as db:
        db.execute("INSERT INTO models(id, key, dim) VALUES (1, 'm', 2)")
        db.execute("INSERT INTO contents(id, hash, size) VALUES (7, 'h', 1)")
        db.execute("INSERT INTO tagged_contents(content_id, model_id) VALUES (7, 1)")
    assert catalog.quick_check() == "ok"
    catalog.ensure_intact()
    catalog.close()
