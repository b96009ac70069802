"""The catalog on its own: schema, settings, folders, photos, vectors, filters, transactions, copies."""
from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from clipphotos.catalog import SCHEMA_VERSION, Catalog, ContentInfo, encode_path


@pytest.fixture
def catalog(tmp_path: Path):
    cat = Catalog(tmp_path / "catalog.sqlite3")
    yield cat
    cat.close()


def content(n: int, taken_at: str | None = None) -> ContentInfo:
    return ContentInfo(f"hash{n:04d}", 1000 + n, 640, 480, "JPEG", taken_at, "Canon EOS 80D", 1, n, None)


def add_photo(cat: Catalog, folder: Path, name: str, n: int, taken_at: str | None = None,
              vec: np.ndarray | None = None, model_id: int | None = None) -> int:
    folder_id = next((fid for fid, p, _ in cat.folders() if p == str(folder)), None) or cat.add_folder(folder)
    with cat.transaction() as db:
        cid = cat.upsert_content(db, content(n, taken_at))
        cat.put_photo(db, encode_path(folder / name), folder_id, cid, 1000 + n, 123 + n)
        if vec is not None:
            cat.put_vector(db, cid, model_id, vec)
    return cid


def test_a_new_catalog_has_the_current_schema_in_wal_mode(tmp_path, catalog):
    with sqlite3.connect(tmp_path / "catalog.sqlite3") as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert catalog.integrity() == "ok"
    catalog.close()
    again = Catalog(tmp_path / "catalog.sqlite3")        # reopening migrates nothing and loses nothing
    assert again.integrity() == "ok"
    again.close()


def test_a_catalog_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "catalog.sqlite3"
    Catalog(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer ClipPhotos"):
        Catalog(path)


def test_settings_round_trip_and_none_forgets(catalog):
    assert catalog.get_setting("k") is None and catalog.get_setting("k", "d") == "d"
    catalog.set_setting("k", "one")
    catalog.set_setting("k", "two")
    assert catalog.get_setting("k") == "two"
    catalog.set_setting("k", None)
    assert catalog.get_setting("k") is None


def test_folders_and_their_photos(tmp_path, catalog):
    a, b = tmp_path / "a", tmp_path / "ab"
    fid = catalog.add_folder(a)
    assert catalog.add_folder(a, follow_links=True) == fid          # added twice: one folder
    add_photo(catalog, a, "x.jpg", 1)
    add_photo(catalog, a, "y.jpg", 2)
    add_photo(catalog, b, "z.jpg", 3)
    assert [(p, fl) for _, p, fl in catalog.folders()] == [(str(a), True), (str(b), False)]
    assert catalog.photo_count() == 3 and catalog.folder_counts()[fid] == 2
    assert catalog.remove_folder(a) and not catalog.remove_folder(a)
    assert catalog.photo_count() == 1
    assert catalog.drop_orphan_contents() == []                    # removing the folder dropped its contents


def test_vectors_are_stored_and_read_back_per_model(tmp_path, catalog):
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(3, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    first = catalog.model_id("model-a", 16)
    assert catalog.model_id("model-a", 16) == first and catalog.model_id("model-b", 16) != first
    ids = [add_photo(catalog, tmp_path, f"{i}.jpg", i, vec=vecs[i], model_id=first) for i in range(3)]
    keys, got = catalog.vectors(first)
    order = np.argsort(keys)
    assert keys[order].tolist() == sorted(ids)
    assert np.abs(got[order] - vecs).max() < 1e-3                 # kept as float16: half the bytes
    assert catalog.vectors(first, [ids[1]])[0].tolist() == [ids[1]]
    assert catalog.vector_ids(first) == set(ids)
    assert catalog.contents_without_vector(first) == 0
    assert catalog.contents_without_vector(catalog.model_id("model-b", 16)) == 3
    catalog.drop_other_models(first)
    assert catalog.vector_ids(first) == set(ids)


def test_every_change_to_the_stored_vectors_is_counted(tmp_path, catalog):
    """What lets a saved index know in one read that the catalog moved on since its save."""
    model = catalog.model_id("model-a", 4)
    seen = [catalog.vector_changes()]

    def changed() -> bool:
        seen.append(catalog.vector_changes())
        return seen[-1] != seen[-2]
    cid = add_photo(catalog, tmp_path, "a.jpg", 1, vec=np.ones(4), model_id=model)
    assert changed()                                                   # added
    with catalog.transaction() as db:
        catalog.put_vector(db, cid, model, np.zeros(4))
    assert changed()                                                   # replaced
    catalog.set_setting("unrelated", "x")
    add_photo(catalog, tmp_path, "b.jpg", 2)                           # a photo without a vector
    assert not changed()
    other = catalog.model_id("model-b", 4)
    add_photo(catalog, tmp_path, "c.jpg", 3, vec=np.ones(4), model_id=other)
    assert changed()
    catalog.drop_other_models(model)                                   # dropped by a cascade
    assert changed() and catalog.vector_ids(other) == set()


def test_photos_by_path_content_and_date_order(tmp_path, catalog):
    old = add_photo(catalog, tmp_path, "old.jpg", 1, "2019-05-01T10:00:00")
    new = add_photo(catalog, tmp_path, "new.jpg", 2, "2024-05-01T10:00:00")
    add_photo(catalog, tmp_path, "copy of new.jpg", 2, "2024-05-01T10:00:00")   # the same bytes
    add_photo(catalog, tmp_path, "undated.jpg", 3)
    assert [Path(p.path).name for p in catalog.iter_photos()] == ["copy of new.jpg", "new.jpg", "old.jpg",
                                                                   "undated.jpg"]
    record = catalog.photo_by_path(tmp_path / "old.jpg")
    assert record is not None and record.content_id == old and record.camera == "Canon EOS 80D"
    assert catalog.photo_by_path(tmp_path / "absent.jpg") is None
    assert len(catalog.photos_by_content([new])[new]) == 2


def test_filters_by_folder_prefix_and_dates(tmp_path, catalog):
    a = add_photo(catalog, tmp_path / "2023", "a.jpg", 1, "2023-06-01T12:00:00")
    b = add_photo(catalog, tmp_path / "2023-extra", "b.jpg", 2, "2023-07-01T12:00:00")
    c = add_photo(catalog, tmp_path / "2023" / "june", "c.jpg", 3, "2024-01-01T12:00:00")
    assert catalog.filtered_content_ids(folder=str(tmp_path / "2023")) == {a, c}   # not the sibling "2023-extra"
    assert catalog.filtered_content_ids(since="2023-06-15", until="2024-01-01") == {b}
    assert catalog.filtered_content_ids() == {a, b, c}


def test_skips_forgetting_and_orphans(tmp_path, catalog):
    fid = catalog.add_folder(tmp_path)
    cid = add_photo(catalog, tmp_path, "a.jpg", 1)
    with catalog.transaction() as db:
        catalog.put_skip(db, encode_path(tmp_path / "bad.jpg"), fid, 10, 20, "not a picture")
    assert catalog.skipped() == [(str(tmp_path / "bad.jpg"), "not a picture")]
    assert catalog.known_skips(fid) == {encode_path(tmp_path / "bad.jpg"): (10, 20, "not a picture")}
    with catalog.transaction() as db:
        catalog.forget_paths(db, [encode_path(tmp_path / "a.jpg"), encode_path(tmp_path / "bad.jpg")])
    assert catalog.photo_count() == 0 and catalog.skipped() == []
    assert catalog.drop_orphan_contents() == [cid]


def test_a_failed_transaction_leaves_nothing(tmp_path, catalog):
    catalog.add_folder(tmp_path)
    with pytest.raises(ZeroDivisionError):
        with catalog.transaction() as db:
            catalog.upsert_content(db, content(1))
            1 / 0
    assert catalog.drop_orphan_contents() == []
    assert catalog.photo_count() == 0


def test_names_that_are_not_utf8_round_trip(tmp_path, catalog):
    odd = os.fsencode(tmp_path) + b"/caf\xe9.jpg"
    fid = catalog.add_folder(tmp_path)
    with catalog.transaction() as db:
        cid = catalog.upsert_content(db, content(1))
        catalog.put_photo(db, odd, fid, cid, 1, 1)
    record = catalog.photo_by_path(odd)
    assert record is not None and os.fsencode(record.path) == odd


def test_backup_is_a_consistent_copy_while_another_thread_writes(tmp_path, catalog):
    catalog.add_folder(tmp_path)
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set() and n < 2000:
            add_photo(catalog, tmp_path, f"{n}.jpg", n)
            n += 1
    writer = threading.Thread(target=write)
    writer.start()
    try:
        catalog.backup(tmp_path / "backup" / "catalog.sqlite3")
    finally:
        stop.set()
        writer.join()
    copy = Catalog(tmp_path / "backup" / "catalog.sqlite3")
    try:
        assert copy.integrity() == "ok"
        assert copy.drop_orphan_contents() == []          # every content copied with its photo
        assert len(copy.folders()) == 1
    finally:
        copy.close()
