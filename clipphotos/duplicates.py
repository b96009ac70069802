"""Duplicates in three tiers the user sees apart, a file to keep per group, and a safe tidy-up.

- exact: byte-identical files (one content of the catalog held by several paths).
- near: the same picture saved again: re-encoded, resized, lightly cropped, re-exposed, turned
  through EXIF, converted to PNG, or a burst frame a hair apart. Decided from the signals the
  indexer kept from its one decode (the pHash and a 32×32 grey thumbnail), so nothing is
  decoded here. Candidates come from pHash bands, from bands of a layout signature (also of
  each picture's zoomed centre, which is what a crop of it looks like) and from identical
  capture times; each is confirmed by aligning the two thumbnails
  (`fingerprint.match_thumbnails`). CLIP is the second opinion on borderline scores.
- similar: shots of one scene taken moments apart (capture time + CLIP), stacked for the user
  to choose from. They are different photos: never proposed for deletion.

Each group suggests the file to keep and says why. Clean-ups (clipphotos.cleanup) move the other
files into a holding folder that undo empties back, or to a folder (nothing is ever deleted for
good) and the catalog follows. A group the
user marks "not duplicates" is remembered in the catalog and never comes back. A camera RAW
and its JPEG (one shot, `Catalog.companions`) count as one photo: never duplicates of each
other, and kept together.
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np

from clipphotos.catalog import Catalog, PhotoRecord, encode_path, file_content_hash
from clipphotos.fingerprint import (
    HASH_BITS, fingerprints, layout_vectors, match_thumbnails, thumbnails,
)

TIERS = ("exact", "near", "similar")
# Pictures whose read texts share less than this (Jaccard of their character trigrams) say
# different things: not near-duplicates (one misread letter in 20 leaves about 0.75).
SAME_WORDS = 0.6
ACTION_TIERS = ("exact", "near")  # similar shots are different photos: never moved away

# Near-duplicates. In the quality benchmark (bench/dupes_quality.py, every pair of 750 files)
# the aligned-thumbnail scores of copies stay above 0.62 (a burst of a brick wall; most are
# above 0.7) and those of different photos below 0.57 (a near-symmetric flower and its mirror).
NEAR_SCORE = 0.6
NEAR_SCORE_WITH_CLIP = 0.55     # between the two, CLIP must agree (it cannot tell a mirror, so no lower)
CLIP_AGREES = 0.95
PHASH_BANDS = 3                 # a pair within 2 bits always shares a band
LAYOUT_ZOOMS = (1.0, 1.1)       # also the centre: what a crop of the picture looks like
LAYOUT_MIN = 0.8                # candidates less alike in layout (copies: > 0.9)…
PHASH_NEAR = 16                 # …and in pHash (copies: < 20 bits, mostly < 12) are not aligned
NEAR_SECONDS = 10.0             # one capture: copies keep their EXIF time, burst frames are seconds apart
LSH_BANDS, LSH_BITS = 48, 24    # layout signature bands (see _layout_pairs)
EXACT_LAYOUTS = 2000            # up to this many pictures, every pair's layouts are compared
BUCKET_CAP = 40                 # a pHash band or capture second shared by more is no evidence
# Similar shots.
SIMILAR_SECONDS = 60.0
SIMILAR_CLIP = 0.85
SIMILAR_FOLLOWERS = 30          # shots compared after each one, at most
CROP_ZOOM = 1.03                # a copy magnified more than this on an axis shows less: a crop

# Folders (and file names) where copies land, whose files are not the originals to keep.
_COPY_FOLDER = re.compile(r"(?i)\b(downloads?|whats ?app|telegram|signal|messenger|edited|edits|backups?|copy|"
                          r"copies|exports?|shared|screenshots?|tmp|temp|old|duplicates?|trash)\b")
_COPY_NAME = re.compile(r"(?i)(\bcopy\b|\(\d+\)$|[-_ ](edited|copy)$)")
# Formats a camera never writes: a copy in one of them was converted (and is no better for it).
_CONVERSIONS = frozenset({"PNG", "BMP", "GIF", "WEBP"})


@dataclass(frozen=True)
class DuplicateFile:
    """One file of a group, with what a person compares to choose."""

    path: str
    content: str                    # content hash: files sharing it are byte-identical
    size: int
    width: int | None
    height: int | None
    format: str | None
    taken_at: str | None
    camera: str | None
    mtime_ns: int
    companions: tuple[str, ...] = ()    # other files of its RAW shot, kept or moved with it
    copy_place: bool = False            # in a Downloads/WhatsApp/Edited/Backup… folder, or named "x (1)"
    similarity: float | None = None     # to the keep's picture: 1 = the same, >= 0.6 a copy (near, similar)
    cropped: bool = False               # its picture shows noticeably less than the keep's

    @property
    def folder(self) -> str:
        return os.path.dirname(self.path)

    @property
    def pixels(self) -> int:
        return (self.width or 0) * (self.height or 0)

    def to_json(self) -> dict:
        return {"path": self.path, "folder": self.folder, "name": os.path.basename(self.path),
                "size": self.size, "width": self.width, "height": self.height, "format": self.format,
                "taken_at": self.taken_at, "camera": self.camera, "content": self.content,
                "companions": list(self.companions), "copy_place": self.copy_place, "cropped": self.cropped,
                "similarity": None if self.similarity is None else round(self.similarity, 3)}


@dataclass(frozen=True)
class DuplicateGroup:
    """Files showing one picture (exact, near) or one moment (similar), the keep first."""

    tier: str
    files: tuple[DuplicateFile, ...]
    reasons: tuple[str, ...]        # why the first file is the one to keep
    differences: tuple[str, ...]    # what differs between the files: what the choice is about

    @property
    def keep(self) -> str:
        return self.files[0].path

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.files]

    @property
    def key(self) -> str:
        """A stable id for the group (the same members give the same key)."""
        members = sorted({f.content for f in self.files}) if self.tier != "exact" else sorted(f.path for f in self.files)
        digest = hashlib.blake2b("\n".join(members).encode("utf-8", "surrogateescape"), digest_size=8)
        return f"{self.tier}-{digest.hexdigest()}"

    def with_keep(self, path: str) -> DuplicateGroup:
        """The group with the file a person chose to keep first, and the reasons said for it.

        (Each file's `similarity` stays measured against the suggested keep.)
        """
        chosen = next((f for f in self.files if f.path == path), None)
        if chosen is None:
            raise ValueError(f"{path} is not in this group")
        others = [f for f in self.files if f is not chosen]
        return DuplicateGroup(self.tier, (chosen, *others), tuple(keep_reasons(chosen, others)), self.differences)

    def kept(self) -> list[str]:
        """The keep and the files of its shot."""
        return [self.files[0].path, *self.files[0].companions]

    def others(self) -> list[str]:
        """The files an action moves away: all but the keep and its shot's other files."""
        kept = set(self.kept())
        return [p for f in self.files[1:] for p in (f.path, *f.companions) if p not in kept]

    @property
    def reclaimable(self) -> int:
        """Bytes a clean-up of the group frees: its others' sizes (0 for similar shots, never moved)."""
        if self.tier not in ACTION_TIERS:
            return 0
        sizes = {f.path: f.size for f in self.files}
        return sum(sizes[p] if p in sizes else _file_size(p) for p in self.others())

    def to_json(self) -> dict:
        return {"tier": self.tier, "key": self.key, "keep": self.keep, "files": self.paths,
                "reclaimable": self.reclaimable,
                "reasons": list(self.reasons), "differences": list(self.differences),
                "details": [f.to_json() for f in self.files]}


@dataclass
class MoveReport:
    """What an action did: every file it moved, and every one it could not (with the reason)."""

    moved: list[tuple[str, str]] = field(default_factory=list)   # (from, to); to = "trash" for the trash
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def to_json(self) -> dict:
        return {"moved": [{"from": a, "to": b} for a, b in self.moved],
                "failed": [{"path": p, "reason": r} for p, r in self.failed]}


# -- finding -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Signals:
    ids: np.ndarray                 # content ids
    hashes: list[str]
    phash: np.ndarray
    thumbs: np.ndarray              # (n, 32, 32)
    taken: list[str | None]
    position: dict[int, int]        # content id → row
    row_of_hash: dict[str, int]
    seconds: np.ndarray             # capture time (NaN: unknown)
    camera: np.ndarray              # camera code (-1: unknown)


def find_duplicates(catalog: Catalog, tiers: Iterable[str] = TIERS,
                    on_stage: Callable[[str], None] = lambda stage: None) -> list[DuplicateGroup]:
    """The groups of the tiers asked for, exact first, then near, then similar; biggest first.

    `on_stage` hears what is being done ("comparing 100,000 pictures"): in a big library the
    search takes a while, and a window should say why.
    """
    tiers = tuple(tiers)
    unknown = set(tiers) - set(TIERS)
    if unknown:
        raise ValueError(f"unknown tier(s) {sorted(unknown)}; choose from {TIERS}")
    on_stage("reading the library")
    view = _LibraryView(catalog, on_stage)
    groups: list[DuplicateGroup] = []
    if "exact" in tiers:
        on_stage(f"finding exact copies among {len(view.photos):,} pictures")
        groups += view.exact_groups()
    if "near" in tiers or "similar" in tiers:
        near = view.near_components()
        if "near" in tiers:
            groups += view.groups_of("near", near)
        if "similar" in tiers:
            on_stage("stacking shots taken moments apart")
            groups += view.similar_groups(near)
    return groups


class _LibraryView:
    """The catalog's photos, signals and "not duplicates" marks, loaded once for one search."""

    def __init__(self, catalog: Catalog, on_stage: Callable[[str], None] = lambda stage: None) -> None:
        self.catalog = catalog
        self.on_stage = on_stage
        self.photos: dict[int, list[PhotoRecord]] = {}
        for photo in catalog.iter_photos(order="path"):
            self.photos.setdefault(photo.content_id, []).append(photo)
        self.companions: dict[str, tuple[str, ...]] = {}
        self.primary: dict[str, str] = {}      # path → the file its RAW shot is shown as
        self.shot_of: dict[int, int] = {}      # content id → a content id standing for its RAW shot
        for shot in catalog.companions():
            paths = [f.path for f in shot]
            for f in shot:
                self.companions[f.path] = tuple(p for p in paths if p != f.path)
                self.primary[f.path] = shot[0].path
                self.shot_of[f.content_id] = shot[0].content_id
        self.distinct_contents, self.distinct_copies = catalog.distinct_pairs()
        self.roots = sorted((path for _, path, _ in catalog.folders()), key=len, reverse=True)
        self._vectors: dict[int, np.ndarray] = {}
        self._signals: _Signals | None = None
        self._aligned: dict[tuple[int, int], tuple[float, float, float]] = {}  # rows → (score, b's zoom on a)

    # -- exact ---------------------------------------------------------------------------

    def exact_groups(self) -> list[DuplicateGroup]:
        """Files sharing one content, less the pairs the user kept apart on purpose."""
        groups = []
        for photos in self.photos.values():
            if len(photos) < 2:
                continue
            keys = [encode_path(p.path) for p in photos]
            everyone = [(i, j) for i in range(len(keys)) for j in range(i + 1, len(keys))]
            cannot = [(i, j) for i, j in everyone if tuple(sorted((keys[i], keys[j]))) in self.distinct_copies]
            for members in _constrained_components(len(photos), [(i, j, 1.0) for i, j in everyone], cannot):
                if len(members) > 1:
                    files = [self._file(photos[i]) for i in members]
                    groups.append(self._ranked("exact", files))
        return sorted(groups, key=lambda g: (-len(g.files), g.keep))

    # -- near ----------------------------------------------------------------------------

    def near_components(self) -> list[list[int]]:
        """Content ids of each group of near-duplicates (a RAW shot counting as one photo)."""
        sig = self.signals()
        if len(sig.ids) < 2:
            return []
        self.on_stage(f"comparing {len(sig.ids):,} pictures")
        pairs = candidate_pairs(sig.phash, sig.thumbs, sig.taken)
        self.on_stage(f"checking {len(pairs):,} look-alike pairs")
        scores = self._verified(sig.ids, pairs)
        keep = scores > 0
        edges = [(int(i), int(j), float(s)) for (i, j), s in zip(pairs[keep], scores[keep])]
        edges += [(sig.position[c], sig.position[s], 2.0) for c, s in self.shot_of.items()
                  if c != s and c in sig.position and s in sig.position]
        groups = []
        for members in _constrained_components(len(sig.ids), edges, self._cannot_link(sig.hashes)):
            contents = [int(sig.ids[i]) for i in members]
            if len({self.shot_of.get(c, c) for c in contents}) > 1:
                groups.append(contents)
        return groups

    def signals(self) -> _Signals:
        """The stored pHash and thumbnail of every content that has them (loaded once)."""
        if self._signals is None:
            rows = [r for r in self.catalog.duplicate_signals() if r[2] is not None and r[3] is not None
                    and r[0] in self.photos]
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            seconds = np.array([_seconds(r[4]) for r in rows], dtype=np.float64)
            cameras = {c: n for n, c in enumerate(sorted({r[5] for r in rows if r[5]}))}
            self._signals = _Signals(ids, [r[1] for r in rows], np.array([r[2] for r in rows], dtype=np.int64),
                                     thumbnails([r[3] for r in rows]), [r[4] for r in rows],
                                     {int(c): n for n, c in enumerate(ids)}, {r[1]: n for n, r in enumerate(rows)},
                                     seconds, np.array([cameras.get(r[5], -1) for r in rows], dtype=np.int64))
        return self._signals

    def _verified(self, ids: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        """Each candidate pair's aligned-thumbnail score, or 0 where it is not a near-duplicate."""
        if len(pairs) == 0:
            return np.zeros(0, dtype=np.float32)
        scores = self._align(pairs) * self._one_capture(pairs) * self._same_words(ids, pairs)
        accepted = scores >= NEAR_SCORE
        borderline = np.flatnonzero((scores >= NEAR_SCORE_WITH_CLIP) & ~accepted)
        if len(borderline):
            clip = self._clip_similarity(ids[pairs[borderline, 0]], ids[pairs[borderline, 1]])
            accepted[borderline[clip >= CLIP_AGREES]] = True
        return np.where(accepted, scores, 0.0)

    def _one_capture(self, pairs: np.ndarray) -> np.ndarray:
        """Could the pairs be one capture? Not with other cameras, nor times further apart than a burst.

        Copies keep their EXIF (or lose it); two pictures that both say when and with what they
        were taken, and say it differently, are different photos, however alike: similar shots.
        """
        sig = self.signals()
        apart = np.abs(sig.seconds[pairs[:, 0]] - sig.seconds[pairs[:, 1]]) > NEAR_SECONDS   # NaN: False
        a, b = sig.camera[pairs[:, 0]], sig.camera[pairs[:, 1]]
        return ~(apart | ((a >= 0) & (b >= 0) & (a != b)))

    def _same_words(self, ids: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        """Could the pairs show one picture, by their text? Not two screenshots, receipts or pages
        that look alike but say different things: where both have text read, the words must agree.

        (Reading a smaller copy may misread a letter, so the texts are compared by their runs of
        three characters, most of which a misread letter leaves alone.)
        """
        grams = {cid: _trigrams(" ".join(folded for _text, folded, _score, _box in lines))
                 for cid, lines in self.catalog.text_lines(set(ids[pairs].ravel().tolist())).items()}
        same = np.ones(len(pairs), dtype=bool)
        for n, (i, j) in enumerate(pairs):
            a, b = grams.get(int(ids[i])), grams.get(int(ids[j]))
            if a and b and len(a & b) < SAME_WORDS * len(a | b):
                same[n] = False
        return same

    def _cannot_link(self, hashes: list[str]) -> list[tuple[int, int]]:
        if not self.distinct_contents:
            return []
        position = {h: n for n, h in enumerate(hashes)}
        return [(position[a], position[b]) for a, b in self.distinct_contents if a in position and b in position]

    # -- similar -------------------------------------------------------------------------

    def similar_groups(self, near: list[list[int]]) -> list[DuplicateGroup]:
        """Stacks of shots of one scene moments apart: at least two different photos each."""
        near_of = {c: n for n, members in enumerate(near) for c in members}

        def unit(c: int) -> tuple[str, int]:
            return ("near", near_of[c]) if c in near_of else ("shot", self.shot_of.get(c, c))
        moments = sorted((t, cid) for cid, t in ((cid, _seconds(ps[0].taken_at)) for cid, ps in self.photos.items())
                         if t is not None)
        times = np.array([t for t, _ in moments])
        order = np.array([c for _, c in moments], dtype=np.int64)
        pairs = [(int(a), int(b)) for d in range(1, SIMILAR_FOLLOWERS + 1)
                 for a, b in zip(order[:-d][times[d:] - times[:-d] <= SIMILAR_SECONDS],
                                 order[d:][times[d:] - times[:-d] <= SIMILAR_SECONDS])]
        pairs = [(a, b) for a, b in pairs if unit(a) != unit(b)]
        if not pairs:
            return []
        a, b = np.array(pairs).T
        clip = self._clip_similarity(a, b)
        cids = sorted(set(a.tolist()) | set(b.tolist()))
        position = {c: n for n, c in enumerate(cids)}
        edges = [(position[x], position[y], float(s)) for x, y, s in zip(a.tolist(), b.tolist(), clip)
                 if s >= SIMILAR_CLIP]
        hashes = [self.photos[c][0].hash for c in cids]
        stacks = [[cids[i] for i in members]
                  for members in _constrained_components(len(cids), edges, self._cannot_link(hashes))]
        return self.groups_of("similar", [s for s in stacks if len({unit(c) for c in s}) > 1])

    def _clip_similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Cosine similarity of the library model's vectors of content pairs (0 where one is missing)."""
        vectors = self._load_vectors(set(np.asarray(a).tolist()) | set(np.asarray(b).tolist()))
        out = np.zeros(len(a), dtype=np.float32)
        for n, (x, y) in enumerate(zip(np.asarray(a).tolist(), np.asarray(b).tolist())):
            if x in vectors and y in vectors:
                out[n] = float(vectors[x] @ vectors[y])
        return out

    def _load_vectors(self, wanted: set[int]) -> dict[int, np.ndarray]:
        missing = [c for c in wanted if c not in self._vectors]
        model = self.catalog.library_model_id()
        if missing and model is not None:
            ids, vecs = self.catalog.vectors(model, missing)
            self._vectors.update(zip(ids.tolist(), vecs))
        return self._vectors

    # -- groups --------------------------------------------------------------------------

    def groups_of(self, tier: str, components: list[list[int]]) -> list[DuplicateGroup]:
        """Groups of whole contents (every file of each, a RAW shot's files shown as one), biggest first."""
        groups = []
        for contents in components:
            photos = [p for c in contents for p in self.photos[c]]
            paths = {p.path for p in photos}
            shown = [p for p in photos if self.primary.get(p.path, p.path) == p.path
                     or self.primary[p.path] not in paths]
            groups.append(self._ranked(tier, [self._file(p) for p in shown]))
        return sorted(self._with_similarity(groups), key=lambda g: (-len(g.files), g.keep))

    def _file(self, photo: PhotoRecord) -> DuplicateFile:
        root = next((r for r in self.roots if photo.path.startswith(r.rstrip(os.sep) + os.sep)), None)
        return DuplicateFile(photo.path, photo.hash, photo.size, photo.width, photo.height, photo.format,
                             photo.taken_at, photo.camera, photo.mtime_ns, self.companions.get(photo.path, ()),
                             is_copy_place(photo.path, root))

    def _align(self, pairs: np.ndarray) -> np.ndarray:
        """Align pairs of signal rows (remembered for later questions); returns their scores."""
        thumbs = self.signals().thumbs
        scores, zooms = match_thumbnails(thumbs[pairs[:, 0]], thumbs[pairs[:, 1]])
        self._aligned.update(zip(map(tuple, pairs.tolist()), zip(scores.tolist(), *zooms.T.tolist())))
        return scores

    def _alignment(self, a: int, b: int) -> tuple[float, bool]:
        """(score, is b a crop of a) of two aligned signal rows."""
        if (a, b) in self._aligned:
            score, zx, zy = self._aligned[a, b]
            return score, max(zx, zy) > CROP_ZOOM
        score, zx, zy = self._aligned[b, a]
        return score, max(1 / zx, 1 / zy) > CROP_ZOOM

    def _ranked(self, tier: str, files: list[DuplicateFile]) -> DuplicateGroup:
        files = sorted(files, key=keep_rank)
        return DuplicateGroup(tier, tuple(files), tuple(keep_reasons(files[0], files[1:])), tuple(differences(files)))

    def _with_similarity(self, groups: list[DuplicateGroup]) -> list[DuplicateGroup]:
        """Each file's similarity to its keep's picture, and whether it is a crop of it."""
        row = self.signals().row_of_hash
        pairs = sorted({(g.files[0].content, f.content) for g in groups for f in g.files[1:]
                        if f.content != g.files[0].content and f.content in row and g.files[0].content in row})
        rows = [(row[a], row[b]) for a, b in pairs]
        self._align(np.array([(a, b) for a, b in rows if (a, b) not in self._aligned and (b, a) not in self._aligned],
                             dtype=np.int64).reshape(-1, 2))
        found = {pair: self._alignment(*rows_of) for pair, rows_of in zip(pairs, rows)}
        out = []
        for g in groups:
            keep = g.files[0].content
            files = [replace(f, similarity=1.0) if f.content == keep else
                     replace(f, similarity=found[keep, f.content][0], cropped=found[keep, f.content][1])
                     if (keep, f.content) in found else f for f in g.files]
            out.append(DuplicateGroup(g.tier, tuple(files), g.reasons, tuple(differences(files))))
        return out


def _trigrams(text: str) -> set[str]:
    return {text[i:i + 3] for i in range(len(text) - 2)}


def candidate_pairs(phash: np.ndarray, thumbs: np.ndarray, taken: Sequence[str | None]) -> np.ndarray:
    """Index pairs (i < j) worth aligning: never all pairs, so 100 000 photos take seconds.

    Three sources: a shared pHash band (re-encodes, resizes, exposure edits), a shared band of
    the layout vector's random-hyperplane signature, also from each picture's zoomed centre
    (crops, bursts), and one capture second (copies keep their EXIF). Of the pairs that do not
    share a capture second, those whose layouts and pHashes both differ more than a copy's do
    are dropped before the costly alignment.
    """
    n = len(thumbs)
    layouts = {zoom: layout_vectors(thumbs, zoom) for zoom in LAYOUT_ZOOMS}
    same_moment = _pair_codes(_same_moment_pairs(taken), n)
    codes = np.unique(np.concatenate([_pair_codes(_band_pairs(phash), n), _pair_codes(_layout_pairs(layouts), n),
                                      same_moment]))
    pairs = np.stack([codes // n, codes % n], axis=1)
    alike = ((_layout_similarity(layouts, pairs) >= LAYOUT_MIN) | np.isin(codes, same_moment)
             | (_hamming(phash[pairs[:, 0]], phash[pairs[:, 1]]) <= PHASH_NEAR))
    return pairs[alike]


def _pair_codes(pairs: np.ndarray, n: int) -> np.ndarray:
    """One int per unordered pair of distinct items (i < j ↦ i·n + j)."""
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.minimum(pairs[:, 0], pairs[:, 1]) * n + np.maximum(pairs[:, 0], pairs[:, 1])


def _hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(np.bitwise_xor(a, b).view(np.uint64))


def _layout_similarity(layouts: dict[float, np.ndarray], pairs: np.ndarray) -> np.ndarray:
    """Best cosine of the pairs' layouts, either picture possibly zoomed (a crop of the other)."""
    base = layouts[1.0]
    best = np.full(len(pairs), -1.0, dtype=np.float32)
    for vectors in layouts.values():
        for a, b in ((0, 1), (1, 0)):
            best = np.maximum(best, np.einsum("ij,ij->i", vectors[pairs[:, a]], base[pairs[:, b]]))
    return best


def _band_pairs(phash: np.ndarray) -> np.ndarray:
    width = -(-HASH_BITS // PHASH_BANDS)
    return np.concatenate([_bucket_pairs((phash >> (band * width)) & ((1 << width) - 1))
                           for band in range(PHASH_BANDS)])


def _layout_pairs(layouts: dict[float, np.ndarray]) -> np.ndarray:
    """Pictures whose layout signatures share a band, the zoomed centre's signature included.

    Random-hyperplane signatures (fixed hyperplanes: the same answer every run): two layouts
    at cosine c agree on a bit with odds 1 - arccos(c)/π, so a copy (c > 0.95) shares one of
    48 bands of 24 bits with odds > 0.98 (> 0.999 from c = 0.97), while pictures that merely
    look alike (c ~ 0.5) share one in ~1 pair of 350, and unrelated ones (c ~ 0) almost never.
    """
    base = layouts[1.0]
    if len(base) <= EXACT_LAYOUTS:     # few pictures: every pair, exactly
        i, j = np.triu_indices(len(base), 1)
        return np.stack([i, j], axis=1)
    planes = np.random.default_rng(20261129).normal(size=(base.shape[1], LSH_BANDS * LSH_BITS)).astype(np.float32)
    weights = 1 << np.arange(LSH_BITS, dtype=np.int64)

    def signature(vectors: np.ndarray) -> np.ndarray:
        return ((vectors @ planes) > 0).reshape(len(vectors), LSH_BANDS, LSH_BITS).astype(np.int64) @ weights

    plain = signature(base)
    zoomed = [signature(v) for zoom, v in layouts.items() if zoom != 1.0]
    return np.concatenate([_bucket_pairs(plain[:, band], *(z[:, band] for z in zoomed))
                           for band in range(LSH_BANDS)])


def _same_moment_pairs(taken: Sequence[str | None]) -> np.ndarray:
    known = np.array([i for i, t in enumerate(taken) if t], dtype=np.int64)
    if len(known) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    _, codes = np.unique(np.array([taken[i] for i in known]), return_inverse=True)
    return known[_bucket_pairs(codes)]


def _bucket_pairs(keys: np.ndarray, *zoomed: np.ndarray) -> np.ndarray:
    """Pairs of items sharing a key, in buckets of at most BUCKET_CAP (bigger ones say nothing).

    `zoomed` are more keys of the same items (their zoomed centres): those pair with the
    plain keys of the other items, not with each other.
    """
    n = len(keys)
    items = np.tile(np.arange(n), 1 + len(zoomed))
    extra = np.repeat(np.arange(1 + len(zoomed)) > 0, n)
    every = np.concatenate([keys, *zoomed])
    order = np.argsort(every, kind="stable")
    every, items, extra = every[order], items[order], extra[order]
    run = np.cumsum(np.r_[True, every[1:] != every[:-1]]) - 1
    small = np.bincount(run)[run] <= BUCKET_CAP
    found = [np.zeros((0, 2), dtype=np.int64)]
    for d in range(1, BUCKET_CAP):
        same = (every[d:] == every[:-d]) & small[d:] & small[:-d]
        if not same.any():
            break                       # runs are contiguous: no pair this far apart, none further
        same &= ~(extra[d:] & extra[:-d]) & (items[d:] != items[:-d])
        found.append(np.stack([items[:-d][same], items[d:][same]], axis=1))
    return np.concatenate(found)


def _constrained_components(n: int, edges: Iterable[tuple[int, int, float]],
                            cannot: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Connected components, strongest edges first, never joining two items the user set apart."""
    parent = list(range(n))
    members: dict[int, set[int]] = {i: {i} for i in range(n)}
    apart: dict[int, set[int]] = {}
    for a, b in cannot:
        apart.setdefault(a, set()).add(b)
        apart.setdefault(b, set()).add(a)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b, _ in sorted(edges, key=lambda e: -e[2]):
        ra, rb = root(a), root(b)
        if ra == rb:
            continue
        small, big = (ra, rb) if len(members[ra]) <= len(members[rb]) else (rb, ra)
        if apart and any(apart.get(m, set()) & members[big] for m in members[small]):
            continue
        parent[small] = big
        members[big] |= members.pop(small)
    return [sorted(m) for m in members.values()]


# -- choosing the file to keep -----------------------------------------------------------


def keep_rank(f: DuplicateFile) -> tuple:
    """Sort key putting the file to keep first.

    In order: part of a RAW shot, more pixels, not where copies land, not a conversion, fuller
    EXIF, a bigger file (less compressed), the earliest capture, the oldest file, the shortest path.
    """
    return (not f.companions, -f.pixels, f.copy_place, f.format in _CONVERSIONS, -_exif_richness(f),
            -f.size, f.taken_at or "9999", f.mtime_ns, len(f.path), f.path)


def is_copy_place(path: str, root: str | None = None) -> bool:
    """Does the path look like a copy: a Downloads/WhatsApp/Edited/Backup… folder, or "name (1)"?

    Only the folders from the library folder `root` down count (a library kept under /tmp is no copy).
    """
    folder = os.path.dirname(path)
    if root is not None and (folder + os.sep).startswith(root.rstrip(os.sep) + os.sep):
        parts = [os.path.basename(root.rstrip(os.sep))] + os.path.relpath(folder, root).split(os.sep)
    else:
        parts = folder.split(os.sep)[-3:]
    stem = os.path.splitext(os.path.basename(path))[0]
    return any(_COPY_FOLDER.search(part) for part in parts) or bool(_COPY_NAME.search(stem))


def _exif_richness(f: DuplicateFile) -> int:
    return (f.taken_at is not None) + (f.camera is not None)


def keep_reasons(keep: DuplicateFile, others: Sequence[DuplicateFile]) -> list[str]:
    """Why `keep` is suggested over the others, one phrase per criterion it wins on."""
    reasons = []
    if keep.companions and any(not o.companions for o in others):
        reasons.append(f"camera RAW shot, kept with {', '.join(os.path.basename(c) for c in keep.companions)}")
    smaller = sorted({(o.width, o.height) for o in others if o.pixels < keep.pixels}, key=lambda s: -s[0] * s[1])
    if smaller:
        reasons.append(f"more pixels: {_dims(keep)} vs {', '.join(f'{w}×{h}' for w, h in smaller[:3])}")
    copies = sorted({_place(o.path) for o in others if o.copy_place})
    if copies and not keep.copy_place:
        reasons.append(f"in an original folder ({_place(keep.path)}), not {', '.join(copies[:3])}")
    conversions = sorted({o.format or "?" for o in others if o.format in _CONVERSIONS})
    if conversions and keep.format not in _CONVERSIONS:
        reasons.append(f"camera format {keep.format}, not a conversion to {', '.join(conversions)}")
    poorer = [o for o in others if _exif_richness(o) < _exif_richness(keep)]
    if poorer:
        what = " and ".join(w for w, v in (("capture date", keep.taken_at), ("camera", keep.camera)) if v)
        reasons.append(f"fuller EXIF ({what})")
    lighter = [o for o in others if o.pixels == keep.pixels and o.format == keep.format and o.size < keep.size]
    if lighter:
        reasons.append(f"less compressed: {_bytes(keep.size)} vs {_bytes(max(o.size for o in lighter))}")
    later = [o for o in others if keep.taken_at and o.taken_at and o.taken_at > keep.taken_at]
    if later:
        reasons.append(f"earliest capture date ({keep.taken_at.replace('T', ' ')})")
    elif not reasons and any(o.mtime_ns > keep.mtime_ns for o in others):
        reasons.append("the oldest file")
    return reasons or ["the files are alike in every respect; the first by path is kept"]


def differences(files: Sequence[DuplicateFile]) -> list[str]:
    """What varies across a group's files: the things worth looking at before choosing."""
    checks = (("pixels", lambda f: f.content), ("resolution", lambda f: (f.width, f.height)),
              ("crop", lambda f: f.cropped), ("format", lambda f: f.format), ("file size", lambda f: f.size),
              ("capture date", lambda f: f.taken_at), ("camera", lambda f: f.camera),
              ("folder", lambda f: f.folder))
    return [name for name, value in checks if len({value(f) for f in files}) > 1]


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _place(path: str) -> str:
    return os.path.basename(os.path.dirname(path)) or os.path.dirname(path)


def _dims(f: DuplicateFile) -> str:
    return f"{f.width}×{f.height}"


def _bytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"


def _seconds(taken_at: str | None) -> float | None:
    """The capture time as seconds on the camera's own clock (no time zone), None if unknown."""
    if not taken_at:
        return None
    try:
        return (datetime.fromisoformat(taken_at) - _EPOCH).total_seconds()
    except (ValueError, TypeError):
        return None


_EPOCH = datetime(1970, 1, 1)


# -- acting ------------------------------------------------------------------------------
# Moving files away lives in clipphotos.cleanup (holding, undo, the system trash); every such
# move first checks its groups with `verify_group`.


def verify_group(group: DuplicateGroup) -> str | None:
    """Why acting on a group now would rest on stale evidence, or None when it is safe to act.

    Called by every destructive action at the moment it acts, because the catalog describes the
    files as they were when indexed: each file of the group must still have the size and time it
    was indexed with and still hold the same bytes (hashed again: a replaced file whose old time
    was restored, as sync and restore tools do, keeps its size and time). The file to keep must
    exist and be readable. A file to move that is already gone is no obstacle (there is nothing
    to move). Returns the first problem found, in words.
    """
    for n, f in enumerate(group.files):
        role = "the file to keep" if n == 0 else "the copy"
        try:
            st = os.stat(f.path)
        except (FileNotFoundError, NotADirectoryError):
            if n == 0:
                return f"{role} {f.path} no longer exists"
            continue
        except OSError as exc:
            return f"{role} {f.path} cannot be looked at ({exc.strerror or exc})"
        if not stat.S_ISREG(st.st_mode):
            return f"{role} {f.path} is no longer a regular file"
        if (st.st_size, st.st_mtime_ns) != (f.size, f.mtime_ns):
            return f"{role} {f.path} changed since it was indexed (size or time); index again first"
        try:
            digest = file_content_hash(f.path)
        except OSError as exc:
            return f"{role} {f.path} cannot be read ({exc.strerror or exc})"
        if digest != f.content:
            return (f"{role} {f.path} no longer holds the bytes it was indexed with (replaced, its old time "
                    f"restored?); index again first")
    return None


@dataclass(frozen=True)
class SetApart:
    """One "not duplicates": the files named, how many pairs they make, and the pairs that were
    new to the catalog (what undoing it forgets: pairs set apart before stay apart)."""
    paths: tuple[str, ...]
    pairs: int
    contents: tuple[tuple[str, str], ...]
    copies: tuple[tuple[bytes, bytes], ...]


def mark_not_duplicates(catalog: Catalog, paths: Sequence[str | os.PathLike[str]]) -> SetApart:
    """Remember that these files are not duplicates of each other.

    Byte-identical files are remembered by path (kept on purpose, e.g. in two albums), the
    others by content, so a moved file stays set apart.
    """
    contents, copies = _pairs_of(catalog, paths)
    new_contents, new_copies = catalog.mark_distinct(contents, copies)
    return SetApart(tuple(os.fspath(p) for p in paths), len(contents) + len(copies),
                    tuple(new_contents), tuple(new_copies))


def undo_not_duplicates(catalog: Catalog, set_apart: SetApart) -> SetApart:
    """Forget the pairs one "not duplicates" stored: its files are grouped again where they match."""
    catalog.unmark_distinct(set_apart.contents, set_apart.copies)
    return set_apart


def group_again(catalog: Catalog, paths: Sequence[str | os.PathLike[str]]) -> int:
    """Forget every "not duplicates" between these files, whenever it was said; returns how many."""
    return catalog.unmark_distinct(*_pairs_of(catalog, paths))


def _pairs_of(catalog: Catalog, paths: Sequence[str | os.PathLike[str]]
              ) -> tuple[list[tuple[str, str]], list[tuple[bytes, bytes]]]:
    """Every pair of the files: content-hash pairs, and path pairs of byte-identical files."""
    photos = []
    for path in paths:
        photo = catalog.photo_by_path(path)
        if photo is None:
            raise FileNotFoundError(f"{os.fspath(path)} is not in the library")
        photos.append(photo)
    if len({p.path for p in photos}) < 2:
        raise ValueError("name at least two different files of the library")
    contents, copies = [], []
    for i, a in enumerate(photos):
        for b in photos[i + 1:]:
            if a.path == b.path:
                continue
            if a.content_id == b.content_id:
                copies.append((encode_path(a.path), encode_path(b.path)))
            else:
                contents.append((a.hash, b.hash))
    return contents, copies


# -- signals of contents indexed before they were kept -----------------------------------


def fill_missing_signals(catalog: Catalog, on_progress: Callable[[int, int], None] = lambda done, total: None) -> int:
    """Decode, once, the contents indexed before thumbnails were kept; returns how many were filled.

    A file that cannot be read now is left for next time.
    """
    from clipphotos.loader import load_image
    todo = catalog.contents_without_thumb()
    filled: list[tuple[int, int, bytes]] = []
    for n, (cid, path) in enumerate(todo, start=1):
        try:
            image = load_image(path, target=64).image
        except Exception:  # noqa: BLE001 - unreadable now (or a decoder bug): costs this file, not the search
            continue
        filled.append((cid, *fingerprints(image)))
        if len(filled) >= 256:
            catalog.set_duplicate_signals(filled)
            filled = []
        on_progress(n, len(todo))
    catalog.set_duplicate_signals(filled)
    return len(todo)
