"""The SQLite catalog: the one source of truth of a library, and the one owner of its schema.

Everything the app knows lives here, vectors included; the hnswlib index and the thumbnail
cache are derived from it and can be rebuilt at any time. The schema is versioned with
`PRAGMA user_version` and upgraded by the ordered MIGRATIONS list, each step in its own
transaction, so an old library opens in a new app and a crash mid-upgrade leaves the old one.

Paths are stored as BLOBs of the file system's own bytes (`os.fsencode`): names that are not
valid UTF-8 survive the round trip. Content (the bytes of a file, by hash) is kept apart from
the paths that hold it, so a moved file or a byte-identical copy keeps its vector.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipphotos.private import private_dir, private_file

MIGRATIONS: list[str] = [
    # 1: folders, contents, photos, vectors, skip reasons, settings.
    """
    CREATE TABLE folders (
        id INTEGER PRIMARY KEY,
        path BLOB NOT NULL UNIQUE,
        follow_links INTEGER NOT NULL DEFAULT 0,
        added_at REAL NOT NULL
    );
    CREATE TABLE contents (
        id INTEGER PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        width INTEGER,
        height INTEGER,
        format TEXT,
        taken_at TEXT,
        camera TEXT,
        orientation INTEGER,
        phash INTEGER
    );
    CREATE TABLE photos (
        id INTEGER PRIMARY KEY,
        path BLOB NOT NULL UNIQUE,
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        content_id INTEGER NOT NULL REFERENCES contents(id),
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        added_at REAL NOT NULL
    );
    CREATE INDEX photos_content ON photos(content_id);
    CREATE INDEX photos_folder ON photos(folder_id);
    CREATE INDEX contents_taken ON contents(taken_at);
    CREATE TABLE models (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        dim INTEGER NOT NULL
    );
    CREATE TABLE vectors (
        content_id INTEGER NOT NULL REFERENCES contents(id) ON DELETE CASCADE,
        model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
        vec BLOB NOT NULL,
        PRIMARY KEY (content_id, model_id)
    ) WITHOUT ROWID;
    CREATE TABLE skipped (
        path BLOB PRIMARY KEY,
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        reason TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 2: auto-tagging (clipphotos.tags): the user's labels and prompts, tag decisions, reviews,
    # each label's calibration per model, and which contents the labels have been decided for.
    """
    CREATE TABLE labels (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        created_at REAL NOT NULL
    );
    CREATE TABLE label_prompts (
        label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        prompt TEXT NOT NULL,
        PRIMARY KEY (label_id, position)
    ) WITHOUT ROWID;
    CREATE TABLE tags (
        content_id INTEGER NOT NULL REFERENCES contents(id) ON DELETE CASCADE,
        label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
        confidence REAL NOT NULL,
        PRIMARY KEY (content_id, label_id)
    ) WITHOUT ROWID;
    CREATE INDEX tags_label ON tags(label_id);
    CREATE TABLE tag_reviews (
        content_id INTEGER NOT NULL REFERENCES contents(id) ON DELETE CASCADE,
        label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
        accepted INTEGER NOT NULL,
        reviewed_at REAL NOT NULL,
        PRIMARY KEY (label_id, content_id)
    ) WITHOUT ROWID;
    CREATE TABLE label_calibrations (
        label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
        model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
        params TEXT NOT NULL,
        fitted_at REAL NOT NULL,
        PRIMARY KEY (label_id, model_id)
    ) WITHOUT ROWID;
    CREATE TABLE tagged_contents (
        content_id INTEGER NOT NULL REFERENCES contents(id) ON DELETE CASCADE,
        model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
        PRIMARY KEY (model_id, content_id)
    ) WITHOUT ROWID;
    """,
    # 3: a camera RAW and its sidecar JPEG (IMG_0001.CR2 + IMG_0001.JPG) are one shot: the
    # files of one folder named alike but for the extension share a `shot` key (`shot_key`).
    """
    ALTER TABLE photos ADD COLUMN shot BLOB;
    UPDATE photos SET shot = clipphotos_shot_key(path);
    CREATE INDEX photos_shot ON photos(shot);
    """,
    # 4: duplicates (clipphotos.duplicates): each content's 32×32 grey thumbnail
    # (fingerprint.grey_thumbnail) confirms near-duplicates without decoding again. What the
    # user called "not duplicates" never comes back: pairs of contents (by hash, a < b) never
    # grouped again, and pairs of byte-identical files (by path, a < b) kept on purpose.
    """
    ALTER TABLE contents ADD COLUMN thumb BLOB;
    CREATE TABLE distinct_contents (
        a TEXT NOT NULL,
        b TEXT NOT NULL,
        PRIMARY KEY (a, b)
    ) WITHOUT ROWID;
    CREATE TABLE distinct_copies (
        a BLOB NOT NULL,
        b BLOB NOT NULL,
        PRIMARY KEY (a, b)
    ) WITHOUT ROWID;
    """,
    # 5: clean-ups that can be undone (clipphotos.cleanup). A clean-up moves files into a
    # holding folder; each file's photo row moves into `held_files` unchanged (its id, content,
    # size, mtime), so its content, vector and tags stay and undo puts the very row back. Held
    # rows are no photos: browsing, search and the indexer never see them.
    """
    CREATE TABLE cleanups (
        id INTEGER PRIMARY KEY,
        made_at REAL NOT NULL,
        source TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'held'
    );
    CREATE TABLE held_files (
        cleanup_id INTEGER NOT NULL REFERENCES cleanups(id) ON DELETE CASCADE,
        path BLOB NOT NULL,
        holding BLOB NOT NULL,
        photo_id INTEGER NOT NULL,
        folder_id INTEGER NOT NULL,
        content_id INTEGER NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        added_at REAL NOT NULL,
        PRIMARY KEY (cleanup_id, path)
    ) WITHOUT ROWID;
    CREATE INDEX held_content ON held_files(content_id);
    """,
    # 6: words in photos (clipphotos.text_reader): the lines read in each content, with their
    # boxes (JSON, 4 corners as fractions of the upright picture) and an accent- and case-folded
    # copy that an FTS5 trigram index (substrings, case-insensitive) searches; the triggers keep
    # the index in step, also when a content leaves (ON DELETE CASCADE). `text_read` says which
    # contents the text pass is done with (lines = 0: no text), so it is incremental and a kill
    # loses at most the photo in flight. Lines belong to a content: moves and copies keep them.
    """
    CREATE TABLE text_lines (
        id INTEGER PRIMARY KEY,
        content_id INTEGER NOT NULL REFERENCES contents(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        text TEXT NOT NULL,
        folded TEXT NOT NULL,
        score REAL NOT NULL,
        box TEXT NOT NULL
    );
    CREATE INDEX text_lines_content ON text_lines(content_id, position);
    CREATE VIRTUAL TABLE text_fts USING fts5(folded, content='text_lines', content_rowid='id',
                                             tokenize='trigram');
    CREATE TRIGGER text_lines_added AFTER INSERT ON text_lines BEGIN
        INSERT INTO text_fts(rowid, folded) VALUES (new.id, new.folded);
    END;
    CREATE TRIGGER text_lines_dropped AFTER DELETE ON text_lines BEGIN
        INSERT INTO text_fts(text_fts, rowid, folded) VALUES ('delete', old.id, old.folded);
    END;
    CREATE TABLE text_read (
        content_id INTEGER PRIMARY KEY REFERENCES contents(id) ON DELETE CASCADE,
        lines INTEGER NOT NULL,
        reader TEXT NOT NULL,
        read_at REAL NOT NULL
    );
    """,
    # 7: a count of the changes made to stored vectors (any model), kept by triggers, so that a
    # saved index can tell in one read whether the catalog has moved on since it was saved; and
    # the vector ids of a model readable without reading the vectors (comparing them with an
    # index's once read a whole table of blobs).
    """
    CREATE TABLE vector_changes (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        count INTEGER NOT NULL
    );
    INSERT INTO vector_changes(id, count) VALUES (0, 0);
    CREATE TRIGGER vectors_added AFTER INSERT ON vectors BEGIN
        UPDATE vector_changes SET count = count + 1;
    END;
    CREATE TRIGGER vectors_replaced AFTER UPDATE ON vectors BEGIN
        UPDATE vector_changes SET count = count + 1;
    END;
    CREATE TRIGGER vectors_dropped AFTER DELETE ON vectors BEGIN
        UPDATE vector_changes SET count = count + 1;
    END;
    CREATE INDEX vectors_by_model ON vectors(model_id, content_id);
    """,
    # 8: folders inside a library folder where another drive was mounted (or a followed link led
    # to one): while that drive is away, its photos are kept (scanner.mount_away).
    """
    CREATE TABLE mount_points (
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        path BLOB NOT NULL,
        PRIMARY KEY (folder_id, path)
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def _statements(script: str) -> Iterator[str]:
    """The SQL statements of a script, one by one (a trigger's body keeps its own semicolons)."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""
    if pending.strip(" \n;"):
        yield pending


def content_hash(data: bytes) -> str:
    """The key of a content (`contents.hash`): a hash of the file's bytes."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def file_content_hash(path: str | bytes | os.PathLike[str]) -> str:
    """`content_hash` of a file, read in chunks (the same digest as hashing its bytes whole)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def encode_path(path: str | os.PathLike[str] | bytes) -> bytes:
    """The path as the file system's bytes: the catalog's key for a file."""
    return os.fsencode(os.path.abspath(path if isinstance(path, bytes) else os.fspath(path)))


def decode_path(raw: bytes) -> str:
    """A str path that opens the same file (undecodable bytes become surrogate escapes)."""
    return os.fsdecode(bytes(raw))


def shot_key(path: bytes) -> bytes:
    """The key the files of one shot share: the path without its extension, ASCII case aside."""
    return os.path.splitext(bytes(path))[0].lower()


def _shot_order(photo: PhotoRecord) -> tuple[bool, bool, str]:
    """Sort key putting a shot's primary file first: a rendered picture (JPEG first), not the RAW."""
    from clipphotos.raw import is_raw_path   # here: the RAW module is heavy, and most catalog readers need none of it
    return is_raw_path(photo.path), photo.format != "JPEG", photo.path


def _is_raw_shot(files: list[PhotoRecord]) -> bool:
    if len(files) < 2:
        return False
    from clipphotos.raw import is_raw_path
    return any(is_raw_path(f.path) for f in files)


def folder_prefix(folder: bytes) -> bytes:
    """The byte prefix that every path inside `folder` starts with."""
    return folder if folder.endswith(os.sep.encode()) else folder + os.sep.encode()


class CatalogDamaged(Exception):
    """The catalog file is not a readable SQLite database (or fails its integrity check)."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"the catalog {path} is damaged ({problem})")
        self.path, self.problem = path, problem


def is_damage(exc: BaseException) -> bool:
    """Whether an error means a damaged catalog: CatalogDamaged, or an SQLite error that says the
    file is damaged (not a full disk, a lock or a read-only folder)."""
    if isinstance(exc, CatalogDamaged):
        return True
    text = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and any(
        s in text for s in ("not a database", "malformed", "corrupt", "database disk image"))


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """Open a catalog that cannot be written (a read-only folder, mount or file) for reading.

    SQLite needs the WAL's shared-memory file to read a WAL database; where it cannot make one
    (the folder is read-only and the last writer closed cleanly, removing it), the catalog is
    opened as immutable: nobody can be writing a catalog in a folder nobody may write.
    """
    if not path.is_file():
        raise FileNotFoundError(f"no catalog at {path}")
    uri = path.resolve().as_uri()
    db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30.0, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA user_version").fetchone()
        return db
    except sqlite3.OperationalError:
        db.close()
    return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None, check_same_thread=False)


# What a rebuilt catalog keeps of a damaged one: what the user made or decided, which indexing
# cannot find again. (Photos, contents and vectors come back by indexing the folders.)
_SALVAGED = {
    "folders": "SELECT path, follow_links, added_at FROM folders",
    "settings": "SELECT key, value FROM settings WHERE key IN ('model', 'model.key', 'excluded_folders')",
    "labels": "SELECT id, name, created_at FROM labels",
    "label_prompts": "SELECT label_id, position, prompt FROM label_prompts",
    "reviews": "SELECT c.hash, r.label_id, r.accepted, r.reviewed_at FROM tag_reviews r "
               "JOIN contents c ON c.id = r.content_id",
    "distinct_contents": "SELECT a, b FROM distinct_contents",
    "distinct_copies": "SELECT a, b FROM distinct_copies",
}


def salvage_catalog(path: Path) -> dict[str, list[tuple]]:
    """The rows of `_SALVAGED` that can still be read from a damaged catalog (best effort: a table
    that breaks midway keeps the rows read before the break; one that cannot be read at all, none)."""
    found: dict[str, list[tuple]] = {name: [] for name in _SALVAGED}
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return found
    try:
        for name, sql in _SALVAGED.items():
            try:
                for row in db.execute(sql):
                    found[name].append(tuple(row))
            except sqlite3.Error:
                continue
    finally:
        db.close()
    return found


@dataclass(frozen=True)
class PhotoRecord:
    """One file of the library as the catalog knows it."""

    id: int
    path: str
    content_id: int
    size: int
    mtime_ns: int
    width: int | None
    height: int | None
    format: str | None
    taken_at: str | None
    camera: str | None
    hash: str
    phash: int | None


@dataclass(frozen=True)
class ContentInfo:
    """What the indexer learned from decoding one distinct file content."""

    hash: str
    size: int
    width: int
    height: int
    format: str
    taken_at: str | None
    camera: str | None
    orientation: int
    phash: int | None
    thumb: bytes | None = None      # fingerprint.grey_thumbnail: confirms near-duplicates


_PHOTO_COLUMNS = ("p.id, p.path, p.content_id, p.size, p.mtime_ns, c.width, c.height, c.format, "
                  "c.taken_at, c.camera, c.hash, c.phash")


def _photo(row: tuple) -> PhotoRecord:
    return PhotoRecord(row[0], decode_path(row[1]), *row[2:])


class Catalog:
    """A connection to one library's catalog.

    One connection is shared by the threads of a process; a lock serialises its use, and
    `transaction()` makes a batch of writes atomic. Other processes can read while one writes
    (WAL), and a second writer waits for the first (busy timeout) instead of failing.
    """

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._lock = threading.RLock()
        if read_only:
            self._db = _connect_read_only(path)
        else:
            private_dir(path.parent)
            new = not path.exists()
            self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            if new:
                private_file(path)   # SQLite gives the -wal and -shm files the catalog's permissions
        try:
            if not read_only:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.create_function("clipphotos_shot_key", 1, shot_key, deterministic=True)
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            if is_damage(exc):
                raise CatalogDamaged(path, str(exc)) from exc
            raise

    # -- plumbing ------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path} was written by a newer ClipPhotos "
                                   f"(schema {version}, this one knows {SCHEMA_VERSION}); please upgrade")
            if version < SCHEMA_VERSION and self.read_only:
                raise sqlite3.OperationalError(f"{self.path} needs an upgrade of its schema (from {version} to "
                                               f"{SCHEMA_VERSION}), which a read-only library cannot take: "
                                               f"attempt to write a readonly database")
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _statements(script):
                        self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version={number}")
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All writes inside happen together or not at all."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                # SQLite may have rolled back already (a full disk does): the first error is the one to tell.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: Iterable = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def backup(self, dest: Path) -> None:
        """A consistent copy of the catalog while it stays in use (SQLite's online backup).

        A catalog that fails SQLite's quick check is not copied (raises CatalogDamaged): a
        backup of a damaged catalog would only replace a good older one.
        """
        self.ensure_intact()
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        tmp.unlink(missing_ok=True)
        tmp.touch(mode=0o600)   # the copy is as private as the catalog
        target = sqlite3.connect(tmp)
        try:
            with self._lock:
                self._db.backup(target)
        finally:
            target.close()
        os.replace(tmp, dest)

    def ensure_intact(self) -> None:
        """Raise CatalogDamaged when SQLite's quick check fails: what is about to copy or change the
        catalog (backup, index, repair) must not build on a damaged one."""
        problem = self.quick_check()
        if problem != "ok":
            raise CatalogDamaged(self.path, problem)

    def integrity(self) -> str:
        """'ok', or what SQLite found wrong (the full check: reads every page and index)."""
        return self._check("integrity_check")

    def quick_check(self) -> str:
        """'ok', or what SQLite found wrong (the cheap check: pages and records, not index contents)."""
        problem = self._check("quick_check")
        if problem != "ok" and all(line.startswith("NULL value in ") for line in problem.split("; ")):
            # SQLite 3.40's quick_check sees NULLs that are not there in WITHOUT ROWID tables whose
            # key reorders the columns (its integrity_check does not): the full check decides.
            problem = self._check("integrity_check")
        return problem

    def _check(self, pragma: str) -> str:
        try:
            lines = list(dict.fromkeys(r[0] for r in self._query(f"PRAGMA {pragma}")))
        except sqlite3.DatabaseError as exc:   # damaged beyond what the check can walk
            return str(exc)
        return "; ".join(lines[:5]) + ("; …" if len(lines) > 5 else "")

    def restore_salvage(self, found: dict[str, list[tuple]]) -> None:
        """Put what `salvage_catalog` read into this (fresh) catalog, except the tag answers,
        which name photos by content: `restore_reviews` once the folders are indexed again."""
        with self.transaction() as db:
            db.executemany("INSERT OR IGNORE INTO folders(path, follow_links, added_at) VALUES (?,?,?)",
                           found["folders"])
            db.executemany("INSERT OR REPLACE INTO settings(key, value) VALUES (?,?)", found["settings"])
            db.executemany("INSERT OR IGNORE INTO labels(id, name, created_at) VALUES (?,?,?)", found["labels"])
            db.executemany("INSERT OR IGNORE INTO label_prompts(label_id, position, prompt) "
                           "SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM labels WHERE id=?)",
                           [(*row, row[0]) for row in found["label_prompts"]])
            db.executemany("INSERT OR IGNORE INTO distinct_contents(a, b) VALUES (?,?)", found["distinct_contents"])
            db.executemany("INSERT OR IGNORE INTO distinct_copies(a, b) VALUES (?,?)", found["distinct_copies"])

    def restore_reviews(self, reviews: list[tuple]) -> int:
        """Put back tag answers (content hash, label id, accepted, when) whose photo is indexed again;
        returns how many came back."""
        with self.transaction() as db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO tag_reviews(content_id, label_id, accepted, reviewed_at) "
                           "SELECT c.id, l.id, ?, ? FROM contents c JOIN labels l ON l.id = ? WHERE c.hash = ?",
                           [(accepted, when, label, digest) for digest, label, accepted, when in reviews])
            return db.total_changes - before

    # -- settings ------------------------------------------------------------------------

    def get_setting(self, key: str, default: str | None = None) -> str | None:
        rows = self._query("SELECT value FROM settings WHERE key=?", (key,))
        return rows[0][0] if rows else default

    def set_setting(self, key: str, value: str | None) -> None:
        with self.transaction() as db:
            if value is None:
                db.execute("DELETE FROM settings WHERE key=?", (key,))
            else:
                db.execute("INSERT INTO settings(key, value) VALUES (?, ?) "
                           "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))

    # -- folders -------------------------------------------------------------------------

    def add_folder(self, path: str | os.PathLike[str] | bytes, follow_links: bool = False) -> int:
        raw = encode_path(path)
        with self.transaction() as db:
            db.execute("INSERT INTO folders(path, follow_links, added_at) VALUES (?, ?, ?) "
                       "ON CONFLICT(path) DO UPDATE SET follow_links=excluded.follow_links",
                       (raw, int(follow_links), time.time()))
            return db.execute("SELECT id FROM folders WHERE path=?", (raw,)).fetchone()[0]

    def remove_folder(self, path: str | os.PathLike[str] | bytes) -> bool:
        """Forget a folder and every photo in it (the files themselves are untouched)."""
        with self.transaction() as db:
            cur = db.execute("DELETE FROM folders WHERE path=?", (encode_path(path),))
            removed = cur.rowcount > 0
            if removed:
                self._drop_orphan_contents(db)
            return removed

    def folders(self) -> list[tuple[int, str, bool]]:
        """(id, path, follow_links) of every library folder."""
        return [(fid, decode_path(p), bool(fl))
                for fid, p, fl in self._query("SELECT id, path, follow_links FROM folders ORDER BY path")]

    def folder_counts(self) -> dict[int, int]:
        return dict(self._query("SELECT folder_id, count(*) FROM photos GROUP BY folder_id"))

    # -- models and vectors --------------------------------------------------------------

    def find_model_id(self, key: str) -> int | None:
        """The id of a model the catalog knows (by its identity key), else None; never writes."""
        rows = self._query("SELECT id FROM models WHERE key=?", (key,))
        return rows[0][0] if rows else None

    def model_id(self, key: str, dim: int) -> int:
        """The id of a model (by its identity key), registering it on first use."""
        known = self.find_model_id(key)
        if known is not None:
            return known   # the read path writes nothing
        with self.transaction() as db:
            db.execute("INSERT INTO models(key, dim) VALUES (?, ?) ON CONFLICT(key) DO NOTHING", (key, dim))
            return db.execute("SELECT id FROM models WHERE key=?", (key,)).fetchone()[0]

    def vectors(self, model_id: int, content_ids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(content ids, float32 unit vectors) stored for a model, all or the ones asked for."""
        if content_ids is None:
            rows = self._query("SELECT content_id, vec FROM vectors WHERE model_id=?", (model_id,))
        else:
            ids = list(content_ids)
            rows = []
            for start in range(0, len(ids), 900):
                chunk = ids[start:start + 900]
                rows += self._query(f"SELECT content_id, vec FROM vectors WHERE model_id=? AND content_id IN "
                                   f"({','.join('?' * len(chunk))})", [model_id, *chunk])
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.stack([np.frombuffer(r[1], dtype=np.float16) for r in rows]).astype(np.float32)
        return keys, vecs

    def library_model_id(self) -> int | None:
        """The id of the model the whole library is indexed with, if any."""
        key = self.get_setting("model.key")   # settings.MODEL_KEY
        return self.find_model_id(key) if key else None

    def vector_ids(self, model_id: int) -> set[int]:
        return {r[0] for r in self._query("SELECT content_id FROM vectors INDEXED BY vectors_by_model "
                                          "WHERE model_id=?", (model_id,))}

    def vector_changes(self) -> int:
        """How many times stored vectors were added, replaced or dropped (any model), ever:
        equal counts mean nothing changed in between."""
        return self._query("SELECT count FROM vector_changes")[0][0]

    def contents_without_vector(self, model_id: int) -> int:
        """Contents of photos still to embed (a clean-up's held files wait for their undo)."""
        return self._query("SELECT count(*) FROM contents c WHERE NOT EXISTS (SELECT 1 FROM vectors v "
                          "WHERE v.content_id=c.id AND v.model_id=?) "
                          "AND EXISTS (SELECT 1 FROM photos p WHERE p.content_id=c.id)", (model_id,))[0][0]

    # -- photos --------------------------------------------------------------------------

    def known_files(self, folder_id: int, model_id: int) -> dict[bytes, tuple[int, int, bool]]:
        """path → (size, mtime_ns, has a vector for the model) of a folder's photos, to diff a scan against."""
        return {bytes(p): (s, m, bool(v)) for p, s, m, v in self._query(
            "SELECT p.path, p.size, p.mtime_ns, EXISTS(SELECT 1 FROM vectors v WHERE v.content_id=p.content_id "
            "AND v.model_id=?) FROM photos p WHERE p.folder_id=?", (model_id, folder_id))}

    def mount_points(self, folder_id: int) -> set[bytes]:
        """The folders inside this library folder where another drive was seen mounted."""
        return {bytes(p) for (p,) in self._query("SELECT path FROM mount_points WHERE folder_id=?", (folder_id,))}

    def remember_mount_points(self, folder_id: int, seen: Iterable[bytes], dropped: Iterable[bytes] = ()) -> None:
        """Add the mount points a scan saw; forget those it found holding files of their own drive no more."""
        with self.transaction() as db:
            db.executemany("INSERT OR IGNORE INTO mount_points(folder_id, path) VALUES (?, ?)",
                           [(folder_id, p) for p in seen])
            db.executemany("DELETE FROM mount_points WHERE folder_id=? AND path=?", [(folder_id, p) for p in dropped])

    def known_skips(self, folder_id: int) -> dict[bytes, tuple[int, int, str]]:
        """path → (size, mtime_ns, reason) of a folder's skipped files."""
        return {bytes(p): (s, m, r) for p, s, m, r in
                self._query("SELECT path, size, mtime_ns, reason FROM skipped WHERE folder_id=?", (folder_id,))}

    def content_by_hash(self, hashes: Iterable[str], model_id: int) -> dict[str, tuple[int, bool]]:
        """hash → (content id, has a vector for the model) for the hashes already known."""
        found: dict[str, tuple[int, bool]] = {}
        hashes = list(hashes)
        for start in range(0, len(hashes), 900):
            chunk = hashes[start:start + 900]
            for h, cid, has in self._query(
                    f"SELECT c.hash, c.id, EXISTS(SELECT 1 FROM vectors v WHERE v.content_id=c.id AND v.model_id=?) "
                    f"FROM contents c WHERE c.hash IN ({','.join('?' * len(chunk))})", [model_id, *chunk]):
                found[h] = (cid, bool(has))
        return found

    def content_counts_of_paths(self, paths: list[bytes]) -> dict[int, int]:
        """content id → how many of these paths hold it."""
        counts: dict[int, int] = {}
        for start in range(0, len(paths), 900):
            chunk = paths[start:start + 900]
            for (cid,) in self._query(f"SELECT content_id FROM photos WHERE path IN ({','.join('?' * len(chunk))})",
                                     chunk):
                counts[cid] = counts.get(cid, 0) + 1
        return counts

    def photo_paths_among(self, paths: list[bytes]) -> set[bytes]:
        """Those of `paths` that are photos of the library."""
        found: set[bytes] = set()
        for start in range(0, len(paths), 900):
            chunk = paths[start:start + 900]
            found.update(bytes(p) for (p,) in self._query(
                f"SELECT path FROM photos WHERE path IN ({','.join('?' * len(chunk))})", chunk))
        return found

    def photo_count(self) -> int:
        return self._query("SELECT count(*) FROM photos")[0][0]

    def photos_by_content(self, content_ids: Iterable[int]) -> dict[int, list[PhotoRecord]]:
        ids = list(dict.fromkeys(content_ids))
        out: dict[int, list[PhotoRecord]] = {}
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            for row in self._query(f"SELECT {_PHOTO_COLUMNS} FROM photos p JOIN contents c ON c.id=p.content_id "
                                  f"WHERE p.content_id IN ({','.join('?' * len(chunk))}) ORDER BY p.path", chunk):
                out.setdefault(row[2], []).append(_photo(row))
        return out

    def shot_files(self, photo_ids: Iterable[int]) -> dict[int, list[PhotoRecord]]:
        """photo id → every file of its shot (itself included), primary first, for RAW shots.

        Only photos whose shot holds a camera RAW and at least one other file are answered.
        """
        ids = list(dict.fromkeys(photo_ids))
        shots: dict[int, list[PhotoRecord]] = {}
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            for row in self._query(f"SELECT q.id, {_PHOTO_COLUMNS} FROM photos q JOIN photos p ON p.shot=q.shot "
                                  f"JOIN contents c ON c.id=p.content_id WHERE q.id IN ({','.join('?' * len(chunk))})",
                                  chunk):
                shots.setdefault(row[0], []).append(_photo(row[1:]))
        return {pid: sorted(files, key=_shot_order) for pid, files in shots.items() if _is_raw_shot(files)}

    def companions(self) -> list[list[PhotoRecord]]:
        """Every shot kept as a camera RAW plus other files (e.g. its JPEG), primary file first.

        These files show one picture on purpose: they are companions, never duplicates to delete.
        """
        groups: dict[bytes, list[PhotoRecord]] = {}
        for row in self._query(f"SELECT p.shot, {_PHOTO_COLUMNS} FROM photos p JOIN contents c ON c.id=p.content_id "
                              "WHERE p.shot IN (SELECT shot FROM photos GROUP BY shot HAVING count(*) > 1)"):
            groups.setdefault(bytes(row[0]), []).append(_photo(row[1:]))
        return [sorted(files, key=_shot_order) for _, files in sorted(groups.items()) if _is_raw_shot(files)]

    def photo_by_path(self, path: str | os.PathLike[str] | bytes) -> PhotoRecord | None:
        rows = self._query(f"SELECT {_PHOTO_COLUMNS} FROM photos p JOIN contents c ON c.id=p.content_id "
                          "WHERE p.path=?", (encode_path(path),))
        return _photo(rows[0]) if rows else None

    def photos_in_folder(self, folder_id: int) -> list[PhotoRecord]:
        return [_photo(r) for r in self._query(
            f"SELECT {_PHOTO_COLUMNS} FROM photos p JOIN contents c ON c.id=p.content_id "
            "WHERE p.folder_id=? ORDER BY p.path", (folder_id,))]

    def iter_photos(self, order: str = "taken") -> list[PhotoRecord]:
        """Every photo, newest first by capture date (then path), for browsing."""
        sort = "coalesce(c.taken_at, '') DESC, p.path" if order == "taken" else "p.path"
        return [_photo(r) for r in self._query(
            f"SELECT {_PHOTO_COLUMNS} FROM photos p JOIN contents c ON c.id=p.content_id ORDER BY {sort}")]

    @staticmethod
    def _filters(folder: str | None, since: str | None, until: str | None,
                 tag: str | None = None) -> tuple[str, list]:
        """The WHERE clause (or "") and its parameters for photos `p` joined to contents `c`."""
        where, params = [], []
        if folder is not None:
            prefix = folder_prefix(encode_path(folder))
            where.append("substr(p.path, 1, ?) = ?")
            params += [len(prefix), prefix]
        if since is not None:
            where.append("c.taken_at >= ?")
            params.append(since)
        if until is not None:
            where.append("c.taken_at < ?")
            params.append(until)
        if tag is not None:
            where.append("p.content_id IN (SELECT t.content_id FROM tags t JOIN labels l ON l.id=t.label_id "
                         "WHERE l.name=?)")
            params.append(tag.strip())
        return (" WHERE " + " AND ".join(where)) if where else "", params

    def filtered_content_ids(self, folder: str | None = None, since: str | None = None,
                             until: str | None = None) -> set[int]:
        """Content ids of the photos inside a folder and/or taken within a date range."""
        where, params = self._filters(folder, since, until)
        return {r[0] for r in self._query(
            f"SELECT DISTINCT p.content_id FROM photos p JOIN contents c ON c.id=p.content_id{where}", params)}

    def browse(self, folder: str | None = None, since: str | None = None, until: str | None = None,
               tag: str | None = None) -> list[PhotoRecord]:
        """The photos inside a folder, taken within dates, with a tag (each if given), newest first."""
        where, params = self._filters(folder, since, until, tag)
        return [_photo(r) for r in self._query(
            f"SELECT {_PHOTO_COLUMNS} FROM photos p JOIN contents c ON c.id=p.content_id{where} "
            "ORDER BY coalesce(c.taken_at, '') DESC, p.path", params)]

    def content_ids_with_tag(self, label: str) -> set[int]:
        """Content ids a label (by name, any case) applies to: the search filter by tag."""
        return {r[0] for r in self._query("SELECT t.content_id FROM tags t JOIN labels l ON l.id=t.label_id "
                                         "WHERE l.name=?", (label.strip(),))}

    def tagged_photo_counts(self) -> dict[int, int]:
        """label id → how many photos (files) it applies to: what browsing a tag shows."""
        return dict(self._query("SELECT t.label_id, count(*) FROM tags t JOIN photos p ON p.content_id=t.content_id "
                               "GROUP BY t.label_id"))

    # -- labels and tags (clipphotos.tags) ----------------------------------------------

    def labels(self) -> list[tuple[int, str]]:
        """(id, name) of every label, by name in any case."""
        return self._query("SELECT id, name FROM labels ORDER BY name COLLATE NOCASE")

    def label_prompts(self) -> dict[int, list[str]]:
        """label id → its prompts, in the order given."""
        prompts: dict[int, list[str]] = {}
        for label_id, prompt in self._query("SELECT label_id, prompt FROM label_prompts ORDER BY label_id, position"):
            prompts.setdefault(label_id, []).append(prompt)
        return prompts

    def put_label(self, name: str, prompts: list[str]) -> int:
        """Create a label if new; given prompts replace its own (none given: keep them). Returns its id."""
        with self.transaction() as db:
            db.execute("INSERT INTO labels(name, created_at) VALUES (?, ?) ON CONFLICT(name) DO NOTHING",
                       (name, time.time()))
            label_id = db.execute("SELECT id FROM labels WHERE name=?", (name,)).fetchone()[0]
            if prompts:
                db.execute("DELETE FROM label_prompts WHERE label_id=?", (label_id,))
                db.executemany("INSERT INTO label_prompts(label_id, position, prompt) VALUES (?, ?, ?)",
                               [(label_id, i, p) for i, p in enumerate(prompts)])
            return label_id

    def remove_label(self, name: str) -> bool:
        """Forget a label by its exact name, with its prompts, tags, reviews and calibrations (cascade)."""
        with self.transaction() as db:
            return db.execute("DELETE FROM labels WHERE name=?", (name,)).rowcount > 0

    def review_counts(self) -> dict[tuple[int, int], int]:
        """(label id, accepted 1/0) → how many photos the user answered so."""
        return {(i, a): c for i, a, c in self._query(
            "SELECT label_id, accepted, count(*) FROM tag_reviews GROUP BY label_id, accepted")}

    def tag_reviews(self) -> list[tuple[int, int, int]]:
        """Every answer: (label id, content id, accepted 1/0)."""
        return self._query("SELECT label_id, content_id, accepted FROM tag_reviews ORDER BY label_id, content_id")

    @staticmethod
    def put_review(db: sqlite3.Connection, content_id: int, label_id: int, accepted: bool) -> None:
        db.execute("INSERT OR REPLACE INTO tag_reviews(content_id, label_id, accepted, reviewed_at) "
                   "VALUES (?, ?, ?, ?)", (content_id, label_id, int(accepted), time.time()))

    @staticmethod
    def forget_review(db: sqlite3.Connection, content_id: int, label_id: int) -> None:
        db.execute("DELETE FROM tag_reviews WHERE label_id=? AND content_id=?", (label_id, content_id))

    def latest_calibrations(self) -> dict[int, str]:
        """label id → the parameters it was last fitted with, whatever the model."""
        return dict(self._query("SELECT label_id, params FROM label_calibrations ORDER BY fitted_at"))

    def label_calibrations(self, model_id: int) -> dict[int, str]:
        """label id → its stored calibration parameters for the model."""
        return dict(self._query("SELECT label_id, params FROM label_calibrations WHERE model_id=?", (model_id,)))

    def label_calibration(self, label_id: int, model_id: int) -> str | None:
        rows = self._query("SELECT params FROM label_calibrations WHERE label_id=? AND model_id=?", (label_id, model_id))
        return rows[0][0] if rows else None

    @staticmethod
    def put_calibration(db: sqlite3.Connection, label_id: int, model_id: int, params: str) -> None:
        db.execute("INSERT OR REPLACE INTO label_calibrations(label_id, model_id, params, fitted_at) "
                   "VALUES (?, ?, ?, ?)", (label_id, model_id, params, time.time()))

    @staticmethod
    def drop_calibration(db: sqlite3.Connection, label_id: int, model_id: int) -> None:
        db.execute("DELETE FROM label_calibrations WHERE label_id=? AND model_id=?", (label_id, model_id))

    def label_is_decided(self, label_id: int) -> bool:
        """Whether the label has a calibration or a tag."""
        return bool(self._query("SELECT 1 FROM label_calibrations WHERE label_id=? UNION "
                               "SELECT 1 FROM tags WHERE label_id=? LIMIT 1", (label_id, label_id)))

    def label_tags(self, label_id: int) -> list[tuple[int, float]]:
        """(content id, confidence) of the contents the label applies to."""
        return self._query("SELECT content_id, confidence FROM tags WHERE label_id=?", (label_id,))

    @staticmethod
    def put_tags(db: sqlite3.Connection, label_id: int, tags: Iterable[tuple[int, float]]) -> None:
        """The label applies to these (content id, confidence)."""
        db.executemany("INSERT OR REPLACE INTO tags(content_id, label_id, confidence) VALUES (?, ?, ?)",
                       [(cid, label_id, conf) for cid, conf in tags])

    @staticmethod
    def clear_tags(db: sqlite3.Connection, label_id: int, content_ids: list[int] | None = None) -> None:
        """Take the label off these contents (None: off every content)."""
        if content_ids is None:
            db.execute("DELETE FROM tags WHERE label_id=?", (label_id,))
            return
        for start in range(0, len(content_ids), 900):
            chunk = content_ids[start:start + 900]
            db.execute(f"DELETE FROM tags WHERE label_id=? AND content_id IN ({','.join('?' * len(chunk))})",
                       [label_id, *chunk])

    def decided_content_ids(self, model_id: int) -> set[int]:
        """Contents every label has been decided for with the model."""
        return {r[0] for r in self._query("SELECT content_id FROM tagged_contents WHERE model_id=?", (model_id,))}

    @staticmethod
    def mark_decided(db: sqlite3.Connection, model_id: int, content_ids: Iterable[int]) -> None:
        db.executemany("INSERT OR IGNORE INTO tagged_contents(content_id, model_id) VALUES (?, ?)",
                       [(cid, model_id) for cid in content_ids])

    def tag_names(self, content_ids: list[int]) -> list[tuple[int, str]]:
        """(content id, label name) of every tag of these contents."""
        found: list[tuple[int, str]] = []
        for start in range(0, len(content_ids), 900):
            chunk = content_ids[start:start + 900]
            found += self._query(f"SELECT t.content_id, l.name FROM tags t JOIN labels l ON l.id=t.label_id "
                                f"WHERE t.content_id IN ({','.join('?' * len(chunk))})", chunk)
        return found

    def content_tags(self, content_id: int) -> list[tuple[str, float, int | None]]:
        """(label name, confidence, accepted 1/0 or None) of a content's tags, by name."""
        return self._query("SELECT l.name, t.confidence, r.accepted FROM tags t JOIN labels l ON l.id=t.label_id "
                          "LEFT JOIN tag_reviews r ON r.label_id=t.label_id AND r.content_id=t.content_id "
                          "WHERE t.content_id=? ORDER BY l.name COLLATE NOCASE", (content_id,))

    # -- writes of the indexer -----------------------------------------------------------

    def upsert_content(self, db: sqlite3.Connection, info: ContentInfo) -> int:
        db.execute("INSERT INTO contents(hash, size, width, height, format, taken_at, camera, orientation, phash, "
                   "thumb) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(hash) DO UPDATE SET width=excluded.width, "
                   "height=excluded.height, format=excluded.format, taken_at=excluded.taken_at, "
                   "camera=excluded.camera, orientation=excluded.orientation, phash=excluded.phash, "
                   "thumb=excluded.thumb",
                   (info.hash, info.size, info.width, info.height, info.format, info.taken_at, info.camera,
                    info.orientation, info.phash, info.thumb))
        return db.execute("SELECT id FROM contents WHERE hash=?", (info.hash,)).fetchone()[0]

    @staticmethod
    def put_vector(db: sqlite3.Connection, content_id: int, model_id: int, vec: np.ndarray) -> None:
        db.execute("INSERT OR REPLACE INTO vectors(content_id, model_id, vec) VALUES (?, ?, ?)",
                   (content_id, model_id, np.asarray(vec, dtype=np.float16).tobytes()))

    @staticmethod
    def put_photo(db: sqlite3.Connection, path: bytes, folder_id: int, content_id: int,
                  size: int, mtime_ns: int) -> None:
        db.execute("DELETE FROM skipped WHERE path=?", (path,))
        db.execute("INSERT INTO photos(path, folder_id, content_id, size, mtime_ns, added_at, shot) "
                   "VALUES (?,?,?,?,?,?,?) ON CONFLICT(path) DO UPDATE SET folder_id=excluded.folder_id, "
                   "content_id=excluded.content_id, size=excluded.size, mtime_ns=excluded.mtime_ns",
                   (path, folder_id, content_id, size, mtime_ns, time.time(), shot_key(path)))

    @staticmethod
    def put_skip(db: sqlite3.Connection, path: bytes, folder_id: int, size: int, mtime_ns: int,
                 reason: str) -> None:
        db.execute("DELETE FROM photos WHERE path=?", (path,))
        db.execute("INSERT OR REPLACE INTO skipped(path, folder_id, size, mtime_ns, reason) VALUES (?,?,?,?,?)",
                   (path, folder_id, size, mtime_ns, reason))

    @staticmethod
    def put_unreadable(db: sqlite3.Connection, path: bytes, folder_id: int, reason: str) -> None:
        """A folder (or entry) that could not be read: listed as skipped, its photos left alone."""
        db.execute("INSERT OR REPLACE INTO skipped(path, folder_id, size, mtime_ns, reason) VALUES (?,?,0,0,?)",
                   (path, folder_id, reason))

    @staticmethod
    def drop_skips(db: sqlite3.Connection, paths: Iterable[bytes]) -> None:
        db.executemany("DELETE FROM skipped WHERE path=?", [(p,) for p in paths])

    def forget_paths(self, db: sqlite3.Connection, paths: Iterable[bytes]) -> None:
        """Drop vanished files (photos or skips); their contents stay until `drop_orphan_contents`."""
        for path in paths:
            db.execute("DELETE FROM photos WHERE path=?", (path,))
            db.execute("DELETE FROM skipped WHERE path=?", (path,))

    # A content no photo holds is an orphan, unless a clean-up holds a file of it (undo brings it back).
    _ORPHAN = ("NOT EXISTS (SELECT 1 FROM photos p WHERE p.content_id=contents.id) "
               "AND NOT EXISTS (SELECT 1 FROM held_files h WHERE h.content_id=contents.id)")

    @staticmethod
    def _drop_orphan_contents(db: sqlite3.Connection) -> None:
        db.execute(f"DELETE FROM contents WHERE {Catalog._ORPHAN}")

    def orphan_hashes(self) -> dict[int, str]:
        """content id → hash of the contents `drop_orphan_contents` would drop now."""
        return dict(self._query(f"SELECT id, hash FROM contents WHERE {Catalog._ORPHAN}"))

    def drop_orphan_contents(self) -> list[int]:
        """Forget contents that no file holds any more; returns their ids (to drop from the index)."""
        with self.transaction() as db:
            ids = [r[0] for r in db.execute(f"SELECT id FROM contents WHERE {Catalog._ORPHAN}")]
            self._drop_orphan_contents(db)
            return ids

    def drop_other_models(self, keep_model_id: int) -> None:
        """Vectors of models the library no longer uses are dead weight: free them."""
        with self.transaction() as db:
            db.execute("DELETE FROM models WHERE id != ?", (keep_model_id,))

    # -- duplicates ----------------------------------------------------------------------

    def duplicate_signals(self) -> list[tuple[int, str, int | None, bytes | None, str | None, str | None]]:
        """(content id, hash, pHash, grey thumbnail, taken_at, camera) of every content, for grouping."""
        return self._query("SELECT id, hash, phash, thumb, taken_at, camera FROM contents ORDER BY id")

    def contents_without_thumb(self) -> list[tuple[int, str]]:
        """(content id, one of its paths) of contents indexed before thumbnails were kept."""
        return [(cid, decode_path(p)) for cid, p in self._query(
            "SELECT c.id, min(p.path) FROM contents c JOIN photos p ON p.content_id=c.id "
            "WHERE c.thumb IS NULL GROUP BY c.id")]

    def set_duplicate_signals(self, signals: Iterable[tuple[int, int, bytes]]) -> None:
        """Store (content id, pHash, thumbnail) computed after the fact."""
        with self.transaction() as db:
            db.executemany("UPDATE contents SET phash=?, thumb=? WHERE id=?", [(h, t, c) for c, h, t in signals])

    def distinct_pairs(self) -> tuple[set[tuple[str, str]], set[tuple[bytes, bytes]]]:
        """What the user marked "not duplicates": content-hash pairs, and byte-identical path pairs."""
        contents = {(a, b) for a, b in self._query("SELECT a, b FROM distinct_contents")}
        copies = {(bytes(a), bytes(b)) for a, b in self._query("SELECT a, b FROM distinct_copies")}
        return contents, copies

    def mark_distinct(self, contents: Iterable[tuple[str, str]], copies: Iterable[tuple[bytes, bytes]]
                      ) -> tuple[list[tuple[str, str]], list[tuple[bytes, bytes]]]:
        """Remember pairs never to group again (each pair in either order); returns the pairs
        that were new (those set apart before are not stored twice)."""
        added: tuple[list, list] = ([], [])
        with self.transaction() as db:
            for table, pairs, new in (("distinct_contents", contents, added[0]), ("distinct_copies", copies, added[1])):
                for pair in {tuple(sorted(pair)) for pair in pairs}:
                    if db.execute(f"INSERT OR IGNORE INTO {table}(a, b) VALUES (?, ?)", pair).rowcount:
                        new.append(pair)
        return added

    def unmark_distinct(self, contents: Iterable[tuple[str, str]], copies: Iterable[tuple[bytes, bytes]]) -> int:
        """Forget pairs set apart (in either order); returns how many were stored."""
        forgotten = 0
        with self.transaction() as db:
            for table, pairs in (("distinct_contents", contents), ("distinct_copies", copies)):
                for pair in {tuple(sorted(pair)) for pair in pairs}:
                    forgotten += db.execute(f"DELETE FROM {table} WHERE a=? AND b=?", pair).rowcount
        return forgotten

    # -- clean-ups (clipphotos.cleanup) -------------------------------------------------

    def begin_cleanup(self, source: str, moves: Iterable[tuple[bytes, bytes]]) -> int:
        """Journal a clean-up before any file moves: each (path, holding path) with its photo row.

        Returns the clean-up's id. The photo rows stay until `finish_cleanup`, so a crash while
        the files move leaves a journal that undo can still follow.
        """
        with self.transaction() as db:
            cleanup = db.execute("INSERT INTO cleanups(made_at, source) VALUES (?, ?)",
                                 (time.time(), source)).lastrowid
            db.executemany("INSERT INTO held_files(cleanup_id, path, holding, photo_id, folder_id, content_id, size, "
                           "mtime_ns, added_at) SELECT ?, path, ?, id, folder_id, content_id, size, mtime_ns, added_at "
                           "FROM photos WHERE path=?", [(cleanup, holding, path) for path, holding in moves])
            return cleanup

    def finish_cleanup(self, cleanup: int, moved: Iterable[bytes], not_moved: Iterable[bytes]) -> None:
        """The moved files leave the photos (held now); the ones that stayed leave the journal."""
        with self.transaction() as db:
            self.forget_paths(db, moved)
            db.executemany("DELETE FROM held_files WHERE cleanup_id=? AND path=?", [(cleanup, p) for p in not_moved])
            self._close_cleanups(db, "undone")

    def cleanups(self, source: str | None = None) -> list[tuple[int, float, str, int, int]]:
        """(id, made_at, source, files, bytes) of the clean-ups still held, newest first."""
        where, params = ("AND c.source=?", (source,)) if source else ("", ())
        return self._query("SELECT c.id, c.made_at, c.source, count(h.path), coalesce(sum(h.size), 0) "
                          "FROM cleanups c JOIN held_files h ON h.cleanup_id=c.id "
                          f"WHERE c.state='held' {where} GROUP BY c.id ORDER BY c.id DESC", params)

    def held_files(self, cleanup: int) -> list[tuple[str, str, int]]:
        """(original path, holding path, size) of each file a clean-up holds."""
        return [(decode_path(p), decode_path(h), s) for p, h, s in self._query(
            "SELECT path, holding, size FROM held_files WHERE cleanup_id=? ORDER BY path", (cleanup,))]

    def restore_held(self, cleanup: int, paths: Iterable[bytes]) -> None:
        """Held files back in place: their very photo rows return (same id where it is still free).

        A file whose library folder was removed meanwhile comes back on disk but not as a photo.
        """
        with self.transaction() as db:
            for path in paths:
                db.execute("INSERT INTO photos(id, path, folder_id, content_id, size, mtime_ns, added_at, shot) "
                           "SELECT CASE WHEN EXISTS (SELECT 1 FROM photos q WHERE q.id=h.photo_id) THEN NULL "
                           "ELSE h.photo_id END, h.path, h.folder_id, h.content_id, h.size, h.mtime_ns, h.added_at, ? "
                           "FROM held_files h WHERE h.cleanup_id=? AND h.path=? "
                           "AND EXISTS (SELECT 1 FROM folders f WHERE f.id=h.folder_id) "
                           "ON CONFLICT(path) DO NOTHING", (shot_key(path), cleanup, path))
                db.execute("DELETE FROM held_files WHERE cleanup_id=? AND path=?", (cleanup, path))
            self._close_cleanups(db, "undone")

    def release_held(self, cleanup: int, paths: Iterable[bytes]) -> None:
        """Held files that went on to the system trash: the journal forgets them."""
        with self.transaction() as db:
            db.executemany("DELETE FROM held_files WHERE cleanup_id=? AND path=?", [(cleanup, p) for p in paths])
            self._close_cleanups(db, "emptied")

    @staticmethod
    def _close_cleanups(db: sqlite3.Connection, state: str) -> None:
        db.execute("UPDATE cleanups SET state=? WHERE state='held' AND NOT EXISTS "
                   "(SELECT 1 FROM held_files h WHERE h.cleanup_id=cleanups.id)", (state,))

    # -- words in photos (clipphotos.text_reader) ----------------------------------------

    def contents_without_text(self, limit: int, after: int = 0) -> list[tuple[int, str, str]]:
        """(content id, hash, one of its paths) of up to `limit` contents the text pass has not read,
        by id from `after` on (those with a vector only: the text pass comes after the model's)."""
        return [(cid, h, decode_path(p)) for cid, h, p in self._query(
            "SELECT c.id, c.hash, min(p.path) FROM contents c JOIN photos p ON p.content_id=c.id "
            "WHERE c.id > ? AND NOT EXISTS (SELECT 1 FROM text_read t WHERE t.content_id=c.id) "
            "AND EXISTS (SELECT 1 FROM vectors v WHERE v.content_id=c.id) "
            "GROUP BY c.id ORDER BY c.id LIMIT ?", (after, limit))]

    def text_counts(self) -> tuple[int, int, int]:
        """(contents read, contents with text, contents still to read) for progress and status."""
        read, with_text = self._query("SELECT count(*), coalesce(sum(lines > 0), 0) FROM text_read")[0]
        left = self._query("SELECT count(*) FROM contents c WHERE NOT EXISTS (SELECT 1 FROM text_read t "
                          "WHERE t.content_id=c.id) AND EXISTS (SELECT 1 FROM vectors v "
                          "WHERE v.content_id=c.id)")[0][0]
        return read, with_text, left

    def put_text(self, content_id: int, lines: Iterable[tuple[str, str, float, str]], reader: str) -> None:
        """Store what was read in a content, (text, folded text, confidence, box JSON) per line,
        and mark it read; reading it again replaces its lines. A content gone meanwhile is ignored."""
        lines = list(lines)
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM contents WHERE id=?", (content_id,)).fetchone() is None:
                return
            db.execute("DELETE FROM text_lines WHERE content_id=?", (content_id,))
            db.executemany("INSERT INTO text_lines(content_id, position, text, folded, score, box) "
                           "VALUES (?,?,?,?,?,?)",
                           [(content_id, n, *line) for n, line in enumerate(lines)])
            db.execute("INSERT OR REPLACE INTO text_read(content_id, lines, reader, read_at) VALUES (?,?,?,?)",
                       (content_id, len(lines), reader, time.time()))

    def text_lines(self, content_ids: Iterable[int]) -> dict[int, list[tuple[str, str, float, str]]]:
        """content id → its lines (text, folded text, confidence, box JSON), in reading order."""
        ids = list(dict.fromkeys(content_ids))
        out: dict[int, list[tuple[str, str, float, str]]] = {}
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            for cid, *line in self._query(f"SELECT content_id, text, folded, score, box FROM text_lines "
                                         f"WHERE content_id IN ({','.join('?' * len(chunk))}) "
                                         f"ORDER BY content_id, position", chunk):
                out.setdefault(cid, []).append(tuple(line))  # type: ignore[arg-type]
        return out

    def contents_with_text(self, folded_term: str) -> dict[int, list[str]]:
        """content id → the lines (as read) whose folded text contains `folded_term` anywhere.

        Terms of 3 characters or more go through the trigram index; shorter ones scan the lines.
        """
        if len(folded_term) >= 3:
            rows = self._query("SELECT l.content_id, l.text FROM text_fts f JOIN text_lines l ON l.id=f.rowid "
                              "WHERE text_fts MATCH ? ORDER BY l.content_id, l.position",
                              ('"' + folded_term.replace('"', '""') + '"',))
        else:
            rows = self._query("SELECT content_id, text FROM text_lines WHERE instr(folded, ?) > 0 "
                              "ORDER BY content_id, position", (folded_term,))
        out: dict[int, list[str]] = {}
        for cid, text in rows:
            out.setdefault(cid, []).append(text)
        return out

    # -- reporting -----------------------------------------------------------------------

    def skipped(self, folder_ids: Iterable[int] | None = None) -> list[tuple[str, str]]:
        """(path, reason) of the files indexing could not read, all or those of some folders."""
        if folder_ids is None:
            rows = self._query("SELECT path, reason FROM skipped ORDER BY path")
        else:
            ids = list(folder_ids)
            rows = self._query(f"SELECT path, reason FROM skipped WHERE folder_id IN ({','.join('?' * len(ids))}) "
                              f"ORDER BY path", ids) if ids else []
        return [(decode_path(p), r) for p, r in rows]

    def data_version(self) -> int:
        """A number that changes whenever another connection commits (to notice their writes)."""
        return self._query("PRAGMA data_version")[0][0]
