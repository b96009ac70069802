"""The vector index on its own: answers, filters, deletions, atomic saves and what a damaged file gets."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import clipphotos.vector_index as vector_index
from clipphotos.vector_index import ExactIndex, VectorIndex, saved_stamp

DIM = 32


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    vectors = unit(rng.normal(size=(3000, DIM)))
    return np.arange(100, 3100, dtype=np.int64), vectors


def exact_top(ids: np.ndarray, vectors: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    return [int(ids[i]) for i in np.argsort(-(vectors @ query))[:k]]


def test_search_finds_the_exact_nearest_with_cosine_scores(data):
    ids, vectors = data
    index = VectorIndex.build(DIM, ids, vectors)
    assert len(index) == len(ids) and index.ids() == set(ids.tolist())
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(20):
        query = unit(rng.normal(size=(1, DIM)))[0]
        got = index.search(query, 10)
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
        first_id, first_score = got[0]
        assert abs(first_score - float(vectors[ids.tolist().index(first_id)] @ query)) < 1e-5
        hits += len({i for i, _ in got} & set(exact_top(ids, vectors, query, 10)))
    assert hits / 200 >= 0.98          # recall@10 of the graph against exact search


def test_a_vector_finds_itself_first_and_replacing_it_moves_it(data):
    ids, vectors = data
    index = VectorIndex.build(DIM, ids[:50], vectors[:50])
    assert index.search(vectors[3], 1)[0][0] == ids[3]
    index.add(ids[3:4], vectors[10:11])                 # the same id, a new vector
    assert len(index) == 50
    assert {i for i, _ in index.search(vectors[10], 2)} == {int(ids[3]), int(ids[10])}


def test_filters_small_and_large_sets(data, monkeypatch):
    ids, vectors = data
    monkeypatch.setattr(vector_index, "EXACT_LIMIT", 400)   # the graph's filter path, on a small index
    index = VectorIndex.build(DIM, ids, vectors)
    query = vectors[0]
    small = set(ids[1000:1200].tolist())
    got = index.search(query, 5, allowed=small)
    assert {i for i, _ in got} <= small
    assert [i for i, _ in got] == exact_top(ids[1000:1200], vectors[1000:1200], query, 5)
    large = set(ids[::2].tolist())
    assert len(large) > vector_index.EXACT_LIMIT
    got = index.search(query, 20, allowed=large)
    assert len(got) == 20 and {i for i, _ in got} <= large
    assert index.search(query, 5, allowed=set()) == []


def test_removed_ids_are_never_answered(data):
    ids, vectors = data
    index = VectorIndex.build(DIM, ids[:200], vectors[:200])
    gone = set(ids[:100].tolist())
    index.remove(gone)
    index.remove(gone)                                   # twice is harmless
    assert len(index) == 100 and not index.ids() & gone
    assert not {i for i, _ in index.search(vectors[0], 50)} & gone
    assert not {i for i, _ in index.search(vectors[0], 5, allowed=set(ids[:150].tolist()))} & gone


def test_grows_past_its_first_capacity_and_asks_for_more_than_it_has():
    rng = np.random.default_rng(3)
    index = VectorIndex(DIM)
    for start in range(0, 2500, 500):
        index.add(np.arange(start, start + 500), unit(rng.normal(size=(500, DIM))))
    assert len(index) == 2500
    small = VectorIndex.build(DIM, np.arange(3), unit(rng.normal(size=(3, DIM))))
    assert len(small.search(unit(rng.normal(size=(1, DIM)))[0], 10)) == 3
    assert VectorIndex(DIM).search(np.ones(DIM, np.float32) / DIM ** 0.5, 5) == []


def test_save_and_load_round_trip_with_deletions(tmp_path: Path, data):
    ids, vectors = data
    index = VectorIndex.build(DIM, ids[:500], vectors[:500])
    index.remove(ids[:10].tolist())
    path = tmp_path / "index" / "model-1.hnsw"
    checksum = index.save(path)
    assert not list(path.parent.glob("*.tmp"))           # written aside, then renamed into place
    loaded = VectorIndex.load(path, DIM, checksum)
    assert loaded is not None and loaded.ids() == index.ids()
    assert loaded.search(vectors[42], 3) == index.search(vectors[42], 3)


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "deletions lost", "other checksum", "other dim"])
def test_a_damaged_or_foreign_index_is_refused(tmp_path: Path, data, damage):
    ids, vectors = data
    path = tmp_path / "model-1.hnsw"
    checksum = VectorIndex.build(DIM, ids[:300], vectors[:300]).save(path)
    dim = DIM
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "flipped byte":
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
    elif damage == "deletions lost":
        path.with_name(path.name + ".deleted").unlink()
    elif damage == "other checksum":
        checksum = "0" * len(checksum)
    else:
        dim = DIM * 2
    assert VectorIndex.load(path, dim, checksum) is None
    # the in-place reader refuses it too (by checksum: the file is not the one saved)
    assert ExactIndex.read(path, dim, checksum, None) is None


def test_the_in_place_reader_answers_exactly_what_the_saved_index_holds(tmp_path: Path, data):
    """A CLI search reads the saved file's vectors in place: same ids, same vectors, exact answers,
    deletions honoured; the catalog's later changes kept beside (add, replace, remove)."""
    ids, vectors = data
    index = VectorIndex.build(DIM, ids[:2000], vectors[:2000])
    index.remove(ids[:10].tolist())
    path = tmp_path / "model-1.hnsw"
    checksum = index.save(path)
    read = ExactIndex.read(path, DIM, None, saved_stamp(path))   # trusted by its stamp, not hashed
    assert read is not None and read.ids() == index.ids() and len(read) == len(index) == 1990
    assert np.array_equal(read.id_array(), np.array(sorted(index.ids())))
    some = ids[[10, 500, 1999, 20]].tolist()
    assert np.array_equal(read.vectors(some), vectors[[10, 500, 1999, 20]])
    rng = np.random.default_rng(3)
    live_ids, live = ids[10:2000], vectors[10:2000]
    for query in unit(rng.normal(size=(10, DIM))):
        got = read.search(query, 8)
        assert [i for i, _ in got] == exact_top(live_ids, live, query, 8)
        assert [s for _, s in got] == pytest.approx(sorted((live @ query), reverse=True)[:8], abs=1e-6)
    allowed = set(ids[[5, 11, 12, 700]].tolist())    # 5 is deleted
    assert {i for i, _ in read.search(vectors[11], 10, allowed)} == set(ids[[11, 12, 700]].tolist())

    read.add(ids[[2500, 11]], np.stack([vectors[2500], vectors[2501]]))   # a new vector, a replaced one
    read.remove([int(ids[700])])
    assert len(read) == 1990 and int(ids[2500]) in read.ids() and int(ids[700]) not in read.ids()
    assert read.search(vectors[2500], 1)[0][0] == ids[2500]
    assert read.search(vectors[2501], 2)[0][0] in (ids[2500], ids[11])   # both now hold that vector
    assert np.array_equal(read.vectors([int(ids[11])])[0], vectors[2501])
    assert read.search(vectors[700], 1)[0][0] != ids[700]

    # a file changed since its stamp is hashed, and refused if it is not the one saved
    assert ExactIndex.read(path, DIM, checksum, [0, 0, 0, 0]) is not None
    raw = bytearray(path.read_bytes())
    raw[200] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert ExactIndex.read(path, DIM, checksum, [0, 0, 0, 0]) is None
    path.write_bytes(b"\xff" * 96 + bytes(raw[96:]))   # a header that describes no such file
    assert ExactIndex.read(path, DIM, None, saved_stamp(path)) is None
    assert ExactIndex.read(path, DIM + 1, checksum, None) is None


def test_an_empty_saved_index_reads_as_empty(tmp_path: Path):
    path = tmp_path / "model-1.hnsw"
    VectorIndex(DIM).save(path)
    read = ExactIndex.read(path, DIM, None, saved_stamp(path))
    assert read is not None and len(read) == 0 and read.search(np.ones(DIM, np.float32) / DIM ** 0.5, 5) == []


def test_where_a_mapped_file_could_not_be_replaced_the_file_is_read_whole(tmp_path: Path, data, monkeypatch):
    """On Windows a memory-mapped index would make a watcher's save fail while a search runs."""
    ids, vectors = data
    path = tmp_path / "model-1.hnsw"
    VectorIndex.build(DIM, ids[:100], vectors[:100]).save(path)
    monkeypatch.setattr(vector_index.os, "name", "nt")
    read = ExactIndex.read(path, DIM, None, saved_stamp(path))
    monkeypatch.undo()
    assert read is not None and np.array_equal(read.vectors(ids[:100].tolist()), vectors[:100])
    path.unlink()   # nothing holds the file
