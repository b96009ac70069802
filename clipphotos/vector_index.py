"""The on-disk hnswlib index: a derived, rebuildable cache of the catalog's vectors.

The catalog is the truth. This module is the only place that talks to hnswlib. The index is
saved atomically (temporary file, fsync, rename) together with the list of labels it has
marked deleted, and the checksum of what was saved is recorded in the catalog. Before a load
the file is checked against that checksum, because hnswlib can abort the whole process on a
damaged header; a file that does not match is never handed to hnswlib, the index is rebuilt
from the catalog instead. After a load the index is reconciled with the catalog, so vectors
written after the last save (a crash between a commit and a save) are never lost.

A process that asks a question or two and exits (a CLI search) does not load the graph at all:
`ExactIndex` reads the saved file's vectors in place (memory-mapped) and scans them exactly,
which at 100 000 photos costs ~30 ms a query against ~1 s to verify and load the graph. It
trusts a file whose size and modification time are the ones recorded when it was saved
(`saved_stamp`), else the checksum; a numpy view of a damaged file can give a wrong score, never a
crash.
"""
from __future__ import annotations

import hashlib
import mmap
import os
import struct
import threading
from collections.abc import Collection
from pathlib import Path

import hnswlib
import numpy as np

from clipphotos.private import private_dir, private_file

M = 16
EF_CONSTRUCTION = 200
# Measured on 100 000 clustered vectors built in one pass (bench/search_latency.py): ef 96 finds
# 0.97 of the exact top 10 for a query aimed at a subject, ef 256 all of it, for 1.5 ms a query.
EF_SEARCH = 256
# Below this many candidates, an exact scan is both faster and exact.
EXACT_LIMIT = 20_000


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open folders; its rename is durable enough
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    private_file(tmp)
    os.replace(tmp, path)


def _stored_dim(path: Path) -> int | None:
    """The vector length an hnswlib file was saved with, from its header.

    hnswlib takes the length from the caller, not the file, and would read a file of another
    length as garbage: its header holds six size_t fields, the last two being where an element's
    label and its vector start, so their difference is the vector's bytes.
    """
    with open(path, "rb") as f:
        header = f.read(48)
    if len(header) < 48:
        return None
    *_, label_offset, offset_data = struct.unpack("<6Q", header)
    data_size = label_offset - offset_data
    return data_size // 4 if data_size > 0 and data_size % 4 == 0 else None


HEADER = struct.Struct("<6QiI3QdQ")   # hnswlib's saveIndex header, before the level-0 records


def _map_saved(path: Path, dim: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(labels, vectors) of an hnswlib file read in place, or None if its header does not
    describe a file of this size and vector length.

    After the header come `count` level-0 records of `size` bytes: links, then the vector at
    `offset_data`, then the 8-byte label at `label_offset`. The vectors are a strided view of
    the map (no copy); the labels are copied (8 bytes each).
    """
    with open(path, "rb") as f:
        length = os.fstat(f.fileno()).st_size
        if length < HEADER.size:
            return None
        offset0, capacity, count, size, label_offset, offset_data, _, _, _, max_m0, _, _, _ = \
            HEADER.unpack(f.read(HEADER.size))
        if (offset0 != 0 or count > capacity or offset_data != max_m0 * 4 + 4 or label_offset != offset_data + 4 * dim
                or size != label_offset + 8 or HEADER.size + count * size > length):
            return None
        if count == 0:
            return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
        if os.name == "nt":   # a mapped file cannot be replaced there: a watcher's save would fail meanwhile
            f.seek(0)
            data = f.read()
        else:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    labels = np.ndarray((count,), np.uint64, data, HEADER.size + label_offset, (size,)).astype(np.int64)
    vectors = np.ndarray((count, dim), np.float32, data, HEADER.size + offset_data, (size, 4))
    return labels, vectors


def deletions_path(path: Path) -> Path:
    """Where the ids an index saved at `path` has marked deleted are kept."""
    return path.with_name(path.name + ".deleted")


def _read_deletions(path: Path) -> list[int]:
    return np.frombuffer(deletions_path(path).read_bytes(), dtype=np.int64).tolist()


def saved_stamp(path: Path) -> list[int]:
    """What identifies a saved index's files without reading them: sizes and modification times."""
    return [s for p in (path, deletions_path(path)) for st in [p.stat()] for s in (st.st_size, st.st_mtime_ns)]


def file_checksum(*paths: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for path in paths:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


class VectorIndex:
    """Approximate nearest-neighbour search over unit vectors keyed by content id."""

    def __init__(self, dim: int, saved: Path | None = None) -> None:
        """An empty index, or the one saved at `saved` (which the caller has verified)."""
        self.dim = dim
        self._index = hnswlib.Index(space="ip", dim=dim)
        if saved is None:
            self._index.init_index(max_elements=1024, M=M, ef_construction=EF_CONSTRUCTION)
        else:
            self._index.load_index(str(saved))
        self._index.set_ef(EF_SEARCH)
        self._deleted: set[int] = set()
        self._lock = threading.RLock()

    # -- contents ------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._index.get_current_count() - len(self._deleted)

    def ids(self) -> set[int]:
        with self._lock:
            return set(self._index.get_ids_list()) - self._deleted

    def id_array(self) -> np.ndarray:
        """The ids, sorted (cheaper than `ids` for a whole library)."""
        return np.array(sorted(self.ids()), dtype=np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert or replace vectors (rows must be unit length)."""
        if len(ids) == 0:
            return
        with self._lock:
            needed = self._index.get_current_count() + len(ids)
            if needed > self._index.get_max_elements():
                self._index.resize_index(max(needed, 2 * self._index.get_max_elements()))
            self._index.add_items(np.asarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
            self._deleted.difference_update(int(i) for i in ids)

    def remove(self, ids: Collection[int]) -> None:
        with self._lock:
            present = set(self._index.get_ids_list())
            for i in ids:
                if i in present and i not in self._deleted:
                    self._index.mark_deleted(int(i))
                    self._deleted.add(int(i))

    def search(self, query: np.ndarray, k: int, allowed: Collection[int] | None = None) -> list[tuple[int, float]]:
        """The k nearest content ids to a unit query vector with their cosine similarity, best first.

        `allowed` restricts the answer to those ids (filters by folder, date, tag): small sets are
        scanned exactly, large ones go through the graph with a filter.
        """
        query = np.asarray(query, dtype=np.float32).reshape(1, -1)
        with self._lock:
            live = len(self)
            if live == 0 or k <= 0:
                return []
            if allowed is not None:
                candidates = [i for i in allowed if i not in self._deleted]
                if len(candidates) <= EXACT_LIMIT:
                    return self._exact(query, candidates, k)
                predicate = allowed.__contains__
            else:
                predicate = None
            k = min(k, live)
            self._index.set_ef(max(EF_SEARCH, k))
            try:
                labels, dists = self._index.knn_query(query, k=k, filter=predicate)
            except RuntimeError:  # fewer reachable than k: fall back to an exact answer
                return self._exact(query, list(self.ids() if allowed is None else
                                               [i for i in allowed if i not in self._deleted]), k)
            return [(int(lab), float(1.0 - d)) for lab, d in zip(labels[0], dists[0])]

    def _exact(self, query: np.ndarray, candidates: list[int], k: int) -> list[tuple[int, float]]:
        present = set(self._index.get_ids_list())
        candidates = [i for i in candidates if i in present]
        if not candidates:
            return []
        vecs = np.asarray(self._index.get_items(candidates), dtype=np.float32)
        scores = vecs @ query[0]
        top = np.argsort(-scores)[:k]
        return [(candidates[i], float(scores[i])) for i in top]

    def vectors(self, ids: list[int]) -> np.ndarray:
        with self._lock:
            return np.asarray(self._index.get_items(ids), dtype=np.float32)

    # -- persistence ---------------------------------------------------------------------

    def save(self, path: Path) -> str:
        """Write the index atomically and return the checksum to record in the catalog."""
        private_dir(path.parent)
        tmp = path.with_name(path.name + ".tmp")
        with self._lock:
            self._index.save_index(str(tmp))
            deleted = np.asarray(sorted(self._deleted), dtype=np.int64).tobytes()
        private_file(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _atomic_write(deletions_path(path), deleted)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        return file_checksum(path, deletions_path(path))

    @classmethod
    def load(cls, path: Path, dim: int, checksum: str | None) -> VectorIndex | None:
        """The saved index if it is intact and matches `checksum`, else None (rebuild it)."""
        if checksum is None or not path.is_file() or not deletions_path(path).is_file():
            return None
        try:
            if file_checksum(path, deletions_path(path)) != checksum or _stored_dim(path) != dim:
                return None
            index = cls(dim, saved=path)
            index._deleted = set(_read_deletions(path))
            return index
        except (OSError, RuntimeError, ValueError):
            return None

    @classmethod
    def build(cls, dim: int, ids: np.ndarray, vectors: np.ndarray) -> VectorIndex:
        index = cls(dim)
        if len(ids):
            index._index.resize_index(max(1024, len(ids)))
            index.add(ids, vectors)
        return index


class ExactIndex:
    """Exact search over a saved index's vectors read in place, with changes kept beside them.

    Quacks like VectorIndex for a process that asks a question or two (see the module doc):
    `add` and `remove` (the catalog's changes since the save) go to a small overlay; nothing is
    ever saved from here.
    """

    def __init__(self, dim: int, ids: np.ndarray, vectors: np.ndarray, deleted: Collection[int] = ()) -> None:
        self.dim = dim
        self._ids = np.asarray(ids, np.int64)
        self._vectors = vectors
        self._live = ~np.isin(self._ids, np.fromiter(deleted, np.int64, len(deleted)))
        self._order = np.argsort(self._ids, kind="stable")
        self._extra: dict[int, np.ndarray] = {}
        self._last: tuple[bytes, np.ndarray] | None = None   # a query's scores: a search asks again for more

    @classmethod
    def read(cls, path: Path, dim: int, checksum: str | None, recorded: list[int] | None) -> ExactIndex | None:
        """The index saved at `path`, if it is the file recorded (by stamp, else by checksum)."""
        try:
            if recorded is None or saved_stamp(path) != list(recorded):
                if checksum is None or file_checksum(path, deletions_path(path)) != checksum:
                    return None
            mapped = _map_saved(path, dim)
            if mapped is None:
                return None
            deleted = _read_deletions(path)
        except (OSError, ValueError):
            return None
        return cls(dim, *mapped, deleted)

    @classmethod
    def build(cls, dim: int, ids: np.ndarray, vectors: np.ndarray) -> ExactIndex:
        return cls(dim, ids, np.asarray(vectors, np.float32).reshape(len(ids), dim))

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id in the saved vectors, -1 where absent."""
        if not len(self._ids):
            return np.full(len(ids), -1)
        at = np.minimum(np.searchsorted(self._ids, ids, sorter=self._order), len(self._ids) - 1)
        rows = self._order[at]
        return np.where(self._ids[rows] == ids, rows, -1)

    def __len__(self) -> int:
        return int(self._live.sum()) + len(self._extra)

    def ids(self) -> set[int]:
        return set(self._ids[self._live].tolist()) | set(self._extra)

    def id_array(self) -> np.ndarray:
        """The ids, sorted (cheaper than `ids` for a whole library)."""
        # no id is in both: adding an id to the overlay takes it out of the saved ones
        return np.sort(np.concatenate([self._ids[self._live], np.fromiter(self._extra, np.int64, len(self._extra))]))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.remove(ids)
        for i, vec in zip(np.asarray(ids, np.int64).tolist(), np.asarray(vectors, np.float32)):
            self._extra[i] = vec

    def remove(self, ids: Collection[int]) -> None:
        ids = np.fromiter(ids, np.int64, len(ids))
        rows = self._rows(ids)
        self._live[rows[rows >= 0]] = False
        for i in ids.tolist():
            self._extra.pop(i, None)

    def search(self, query: np.ndarray, k: int, allowed: Collection[int] | None = None) -> list[tuple[int, float]]:
        """The k nearest ids to a unit query with their cosine similarity, best first: exact."""
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        keep = self._live
        if allowed is not None:
            keep = keep & np.isin(self._ids, np.fromiter(allowed, np.int64, len(allowed)))
        key = query.tobytes()
        if self._last is None or self._last[0] != key:
            self._last = key, self._vectors @ query if len(self._ids) else np.zeros(0, np.float32)
        scores = np.where(keep, self._last[1], -np.inf)
        ids = self._ids
        extra = [i for i in self._extra if allowed is None or i in allowed]
        if extra:
            ids = np.concatenate([ids, np.array(extra, np.int64)])
            scores = np.concatenate([scores, np.stack([self._extra[i] for i in extra]) @ query])
        k = min(k, int(np.isfinite(scores).sum()))
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(ids[i]), float(scores[i])) for i in top]

    def vectors(self, ids: list[int]) -> np.ndarray:
        """The vectors of these ids (all present), in order."""
        wanted = np.asarray(ids, np.int64)
        rows = self._rows(wanted)
        out = np.empty((len(wanted), self.dim), np.float32)
        saved = rows >= 0
        saved[saved] = self._live[rows[saved]]   # a replaced vector lives in the overlay
        out[saved] = self._vectors[rows[saved]]
        for n in np.flatnonzero(~saved).tolist():
            out[n] = self._extra[int(wanted[n])]
        return out
