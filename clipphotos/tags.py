"""The library's labels: the store side of auto-tagging (labels, prompts, tags, reviews, export).

How a label decides is `clipphotos.calibration` (pure statistics); this module scores the
library's vectors for the labels, stores the decisions through the catalog and reads them back.

Decisions are stored per content (a moved or copied file keeps its tags), and new photos are
decided as they are indexed, with the calibration of the last full run.
"""
from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from clipphotos.calibration import (
    NO_REVIEWS, RECALIBRATE_GROWTH, Calibration, Decision, Label, Reviewed, Scores, calibrate_all, judge,
)
from clipphotos.catalog import Catalog, encode_path, folder_prefix
from clipphotos.embedder import SEARCH_TEMPLATES, Embedder

#: Captions that fit any photo: what a label has to beat to say something about one.
BACKGROUND_PROMPTS: tuple[str, ...] = ("a photo", "a picture of something", "an image",
                                       "a photo of something", "a picture", "a snapshot")
LABEL_TEMPLATES = SEARCH_TEMPLATES

CHUNK = 8192   # content ids scored at a time


class Library(Protocol):
    """What the labels need of the library (the facade passes itself; this module never imports it)."""

    catalog: Catalog

    @property
    def embedder(self) -> Embedder: ...

    @property
    def model_id(self) -> int: ...


class UnknownLabel(KeyError):
    """No label of that name."""

    def __str__(self) -> str:
        return f"no label named {self.args[0]!r}"


class UnknownPhoto(KeyError):
    """A path that is not a photo of the library."""

    def __str__(self) -> str:
        return f"{self.args[0]} is not a photo of the library (index its folder first)"


@dataclass
class TagRun:
    """What a run decided: the tags of every photo in its scope, and how each label decided."""

    tags: dict[str, list[str]] = field(default_factory=dict)
    labels: dict[str, dict] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"tags": self.tags, "labels": self.labels, "photos": len(self.tags),
                "tagged": sum(bool(t) for t in self.tags.values())}


@dataclass
class LabelInfo:
    """A label as the label list shows it."""

    name: str
    prompts: list[str]
    tagged: int
    accepted: int
    rejected: int
    threshold: float | None
    method: str | None
    rivals: list[str]

    def to_json(self) -> dict:
        data = asdict(self)
        if self.threshold is not None:
            data["threshold"] = round(self.threshold, 4)
        return data


@dataclass
class ExportReport:
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)   # (path, reason)

    def to_json(self) -> dict:
        return {"written": self.written, "unchanged": self.unchanged,
                "failed": [{"path": p, "reason": r} for p, r in self.failed]}


@dataclass(frozen=True)
class PhotoTag:
    """One tag of one photo, as the preview shows it."""

    label: str
    confidence: float
    review: str | None = None   # "accepted" when the user gave it


@dataclass
class Applied:
    """A label just applied to the library, with what it replaced (so it can be undone)."""

    label: str
    photos: int                               # photos the label applies to now
    before_tags: list[tuple[int, float]]      # (content id, confidence) before the run
    before_calibration: str | None            # the calibration it had, if any


@dataclass
class ExportPlan:
    """What `export_xmp` would write: the sidecars that would change, new ones among them."""

    sidecars: list[str] = field(default_factory=list)
    new: int = 0

    def folders(self) -> dict[str, int]:
        """folder → sidecars written there, most first."""
        counts: dict[str, int] = {}
        for path in self.sidecars:
            folder = os.path.dirname(path)
            counts[folder] = counts.get(folder, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def useful_order(found: list[Decision]) -> list[Decision]:
    """Most useful to review first: what the label would tag, least sure first (the wrong tags
    that would go out), then what it would leave out, closest calls first (the tags it misses)."""
    return sorted(found, key=lambda d: (not d.applies, d.confidence if d.applies else -d.confidence, d.path))


def _chunks(items: Sequence, size: int = 900) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def _rows_of(ids: np.ndarray, wanted: Iterable[int]) -> np.ndarray:
    """Row positions in sorted `ids` of the wanted content ids that are there."""
    wanted = np.fromiter(wanted, dtype=np.int64)
    pos = np.searchsorted(ids, wanted)
    ok = (pos < len(ids)) & (ids[np.minimum(pos, len(ids) - 1)] == wanted) if len(ids) else pos < 0
    return np.sort(pos[ok])


class Labels:
    """The library's labels: define them, decide them, review them, export them.

    Reached as `Library.labels`; Qt-free, so the CLI and the GUI (from worker threads) share it.
    """

    def __init__(self, library: Library) -> None:
        self.library = library
        self.catalog = library.catalog

    # -- defining labels -----------------------------------------------------------------

    def all(self) -> list[Label]:
        prompts = self.catalog.label_prompts()
        return [Label(i, name, tuple(prompts.get(i, ()))) for i, name in self.catalog.labels()]

    def get(self, name: str) -> Label:
        for label in self.all():
            if label.name.casefold() == name.strip().casefold():
                return label
        raise UnknownLabel(name)

    def add(self, name: str, prompts: Sequence[str] = ()) -> Label:
        """Create a label, or give an existing one new prompts (none given: keep its own)."""
        name = " ".join(name.split())
        if not name:
            raise ValueError("a label needs a name")
        prompts = [" ".join(p.split()) for p in prompts if p.strip()]
        self.catalog.put_label(name, prompts)
        return self.get(name)

    def remove(self, name: str) -> bool:
        """Forget a label with its tags and reviews (sidecars keep theirs until the next export)."""
        return self.catalog.remove_label(name.strip())

    def info(self) -> list[LabelInfo]:
        """Every label with its prompts, counts and the calibration it last decided with."""
        labels = self.all()
        names = {label.id: label.name for label in labels}
        tagged = self.catalog.tagged_photo_counts()   # photos, as browsing the tag lists them
        reviewed = self.catalog.review_counts()
        fitted = {i: Calibration.from_json(p) for i, p in self.catalog.latest_calibrations().items()}
        out = []
        for label in labels:
            cal = fitted.get(label.id)
            out.append(LabelInfo(label.name, list(label.prompts), tagged.get(label.id, 0),
                                 reviewed.get((label.id, 1), 0), reviewed.get((label.id, 0), 0),
                                 cal.threshold if cal else None, cal.method if cal else None,
                                 [names[r] for r in cal.rivals if r in names] if cal else []))
        return out

    # -- scoring -------------------------------------------------------------------------

    def _words(self, label: Label) -> np.ndarray:
        """The label's text prototype: its templated name and its prompts, averaged."""
        embedder = self.library.embedder
        parts = [embedder.encode_query(label.name, LABEL_TEMPLATES)]
        parts += [embedder.encode_query(p, ("{}",)) for p in label.prompts]
        return _unit(np.mean(parts, axis=0))

    def _background(self) -> np.ndarray:
        return np.stack([self.library.embedder.encode_query(p, ("{}",)) for p in BACKGROUND_PROMPTS])

    def _reviews(self) -> dict[int, tuple[list[int], list[int]]]:
        """label id → (accepted content ids, rejected content ids)."""
        out: dict[int, tuple[list[int], list[int]]] = {}
        for label_id, content_id, accepted in self.catalog.tag_reviews():
            out.setdefault(label_id, ([], []))[0 if accepted else 1].append(content_id)
        return out

    def _score(self, ids: np.ndarray, words: np.ndarray) -> Scores:
        """Scores of the given content ids (sorted) against the labels and the generic prompts."""
        background = self._background()
        model_id = self.library.model_id
        keys, label_s, bg_s = [], [], []
        for chunk in _chunks(ids.tolist(), CHUNK):
            k, vecs = self.catalog.vectors(model_id, chunk)
            if not len(k):
                continue
            order = np.argsort(k)
            keys.append(k[order])
            label_s.append(vecs[order] @ words.T)
            bg_s.append(vecs[order] @ background.T)
        if not keys:
            return Scores(np.zeros(0, np.int64), np.zeros((0, len(words)), np.float32),
                          np.zeros(0, np.float32), np.zeros(0, np.int64))
        bg = np.concatenate(bg_s)
        return Scores(np.concatenate(keys), np.concatenate(label_s), bg.max(axis=1), bg.argmax(axis=1),
                      words @ words.T)

    def _prototypes(self, labels: list[Label]) -> np.ndarray:
        if not labels:
            return np.zeros((0, self.library.embedder.dim), np.float32)
        return np.stack([self._words(label) for label in labels])

    def _calibrate(self, labels: list[Label], only: Collection[int] | None = None
                   ) -> tuple[Scores, dict[int, Reviewed], list[Calibration]]:
        """The whole library scored for the labels, their reviews as rows, and their calibrations."""
        ids = np.array(sorted(self.catalog.vector_ids(self.library.model_id)), dtype=np.int64)
        scores = self._score(ids, self._prototypes(labels))
        reviews = {label_id: Reviewed(_rows_of(scores.ids, acc), _rows_of(scores.ids, rej))
                   for label_id, (acc, rej) in self._reviews().items()}
        return scores, reviews, calibrate_all(labels, scores, reviews, only)

    # -- deciding ------------------------------------------------------------------------

    def _scope(self, folder: str | os.PathLike[str] | None = None,
               paths: Iterable[str | os.PathLike[str]] | None = None) -> list[tuple[str, int]]:
        """(path, content id) of the photos asked for: some paths, a folder, or the whole library."""
        if paths is not None:
            out = []
            for path in paths:
                # As given first: a photo reached through a followed link (another drive inside a
                # library folder) is catalogued under the link's path, which resolving would leave.
                given = Path(os.path.abspath(Path(path).expanduser()))
                photo = self.catalog.photo_by_path(given) or self.catalog.photo_by_path(given.resolve())
                if photo is None:
                    raise UnknownPhoto(os.fspath(path))
                out.append((photo.path, photo.content_id))
            return out
        photos = self.catalog.iter_photos(order="path")
        if folder is not None:
            prefix = folder_prefix(encode_path(Path(folder).expanduser().resolve()))
            photos = [p for p in photos if encode_path(p.path).startswith(prefix)]
        return [(p.path, p.content_id) for p in photos]

    def run(self, names: Sequence[str] | None = None, *, folder: str | os.PathLike[str] | None = None,
            paths: Iterable[str | os.PathLike[str]] | None = None) -> TagRun:
        """Calibrate every label on the whole library, then decide the photos in scope.

        `names` limits which labels are decided (all by default); `folder` or `paths` limit
        which photos. Calibration always looks at the whole library: its distribution is what
        makes a decision trustworthy, whatever part of it is tagged.
        """
        labels = self.all()
        chosen = {self.get(n).id for n in names} if names is not None else {label.id for label in labels}
        scope = self._scope(folder, paths)
        whole = folder is None and paths is None
        scores, reviews, calibrations = self._calibrate(labels, chosen)
        rows = _rows_of(scores.ids, {cid for _, cid in scope})
        columns = {label.id: j for j, label in enumerate(labels)}
        with self.catalog.transaction() as db:
            for j, (label, cal) in enumerate(zip(labels, calibrations)):
                if label.id not in chosen:
                    continue
                self._store_calibration(db, cal)
                verdicts = judge(cal, scores, j, columns, reviews.get(label.id, NO_REVIEWS))
                self.catalog.clear_tags(db, label.id, None if whole else scores.ids[rows].tolist())
                self._insert_tags(db, label.id, scores.ids[rows], verdicts.applies[rows], verdicts.confidence[rows],
                                  reviews.get(label.id, NO_REVIEWS), scores.ids)
            if len(chosen) == len(labels):
                self._mark_decided(db, scores.ids[rows])
        return TagRun(self._tags_by_path(scope), {label.name: self._summary(cal, labels)
                                                  for label, cal in zip(labels, calibrations)
                                                  if label.id in chosen})

    def _summary(self, cal: Calibration, labels: list[Label]) -> dict:
        names = {label.id: label.name for label in labels}
        return {"threshold": round(cal.threshold, 4), "method": cal.method,
                "rivals": [names[r] for r in cal.rivals],
                "separation": round(cal.mixture.separation, 2) if cal.mixture else None,
                "accepted": cal.accepted, "rejected": cal.rejected}

    def _store_calibration(self, db, cal: Calibration) -> None:
        self.catalog.put_calibration(db, cal.label_id, self.library.model_id, cal.to_json())

    def _insert_tags(self, db, label_id: int, ids: np.ndarray, yes: np.ndarray, confidence: np.ndarray,
                     reviewed: Reviewed, all_ids: np.ndarray) -> None:
        """Tag rows for the photos the label applies to; an accepted photo is certain."""
        accepted = set(all_ids[reviewed.accepted].tolist())
        rows = zip(ids.tolist(), yes.tolist(), confidence.tolist())
        self.catalog.put_tags(db, label_id, [(cid, 1.0 if cid in accepted else round(float(c), 4))
                                             for cid, y, c in rows if y])

    def _mark_decided(self, db, ids: np.ndarray) -> None:
        self.catalog.mark_decided(db, self.library.model_id, ids.tolist())

    def _stored_calibrations(self) -> dict[int, Calibration]:
        return {i: Calibration.from_json(p) for i, p in self.catalog.label_calibrations(self.library.model_id).items()}

    def _is_stale(self, labels: list[Label], stored: dict[int, Calibration], size: int) -> bool:
        """Whether the stored calibrations no longer describe these labels or this library."""
        ids = {label.id for label in labels}
        for label in labels:
            cal = stored.get(label.id)
            if cal is None or cal.phrases != label.phrases() or not set(cal.rivals) <= ids:
                return True
            if abs(size - cal.size) > RECALIBRATE_GROWTH * max(cal.size, 1):
                return True
        return False

    def tag_new_contents(self) -> int:
        """Decide every label for photos indexed since the last run; returns how many were decided.

        Called after each indexing run. New photos are decided with the stored calibrations, so
        the library's other tags stay put; when labels changed or the library grew a lot since,
        everything is calibrated and decided again.
        """
        labels = self.all()
        if not labels:
            return 0
        model_id = self.library.model_id
        known = self.catalog.vector_ids(model_id)
        decided = self.catalog.decided_content_ids(model_id)
        new = np.array(sorted(known - decided), dtype=np.int64)
        if not len(new):
            return 0
        stored = self._stored_calibrations()
        if self._is_stale(labels, stored, len(known)):
            self.run()
            return len(new)
        scores = self._score(new, self._prototypes(labels))
        columns = {label.id: j for j, label in enumerate(labels)}
        reviews = self._reviews()
        with self.catalog.transaction() as db:
            for j, label in enumerate(labels):
                acc, rej = reviews.get(label.id, ([], []))
                reviewed = Reviewed(_rows_of(scores.ids, acc), _rows_of(scores.ids, rej))
                verdicts = judge(stored[label.id], scores, j, columns, reviewed)
                self._insert_tags(db, label.id, scores.ids, verdicts.applies, verdicts.confidence, reviewed,
                                  scores.ids)
            self._mark_decided(db, scores.ids)
        return len(scores.ids)

    # -- reviewing -----------------------------------------------------------------------

    def decisions(self, name: str, *, folder: str | os.PathLike[str] | None = None,
                  paths: Iterable[str | os.PathLike[str]] | None = None) -> list[Decision]:
        """The label's verdict on every photo in scope, most confident first, with its reasons."""
        labels = self.all()
        label = self.get(name)
        scope = self._scope(folder, paths)
        scores, reviews, calibrations = self._calibrate(labels, {label.id})
        j = next(i for i, lab in enumerate(labels) if lab.id == label.id)
        cal = calibrations[j]
        columns = {lab.id: i for i, lab in enumerate(labels)}
        reviewed = reviews.get(label.id, NO_REVIEWS)
        v = judge(cal, scores, j, columns, reviewed)
        answer = {int(r): "accepted" for r in reviewed.accepted} | {int(r): "rejected" for r in reviewed.rejected}
        row_of = {int(cid): r for r, cid in enumerate(scores.ids.tolist())}
        out = []
        for path, cid in scope:
            r = row_of.get(cid)
            if r is None:
                continue  # not embedded yet
            rival = labels[v.rival_column[r]].name if v.rival_column[r] >= 0 else None
            out.append(Decision(
                label.name, path, cid, bool(v.applies[r]), float(v.confidence[r]), float(scores.labels[r, j]),
                BACKGROUND_PROMPTS[scores.background_arg[r]], float(scores.background[r]), float(v.margin[r]),
                cal.threshold, (float(v.margin[r]) - cal.mean) / cal.std, cal.method, rival,
                float(v.rival_score[r]) if rival is not None else None, answer.get(r)))
        out.sort(key=lambda d: (-d.confidence, -d.margin, d.path))
        return out

    def suggestions(self, name: str, *, limit: int | None = 100, uncertain_first: bool = False,
                    include_reviewed: bool = False, folder: str | os.PathLike[str] | None = None) -> list[Decision]:
        """Photos to show for review: most confident first, or the ones the label is least sure of."""
        found = [d for d in self.decisions(name, folder=folder) if include_reviewed or d.review is None]
        if uncertain_first:
            found.sort(key=lambda d: (abs(d.confidence - 0.5), -d.margin, d.path))
        return found[:limit] if limit is not None else found

    def review(self, name: str, paths: Iterable[str | os.PathLike[str]], accepted: bool | None,
               refit: bool = True) -> TagRun | None:
        """Record the user's answer for photos (None forgets it), then decide the label again.

        With `refit=False` the answers are only stored (the GUI batches keystrokes and refits once).
        """
        label = self.get(name)
        contents = [cid for _, cid in self._scope(paths=paths)]
        with self.catalog.transaction() as db:
            for cid in contents:
                if accepted is None:
                    self.catalog.forget_review(db, cid, label.id)
                else:
                    self.catalog.put_review(db, cid, label.id, accepted)
        return self.run([label.name]) if refit else None

    def set_tag(self, name: str, path: str | os.PathLike[str], on: bool) -> None:
        """The user puts a tag on a photo or takes it off: an answer the label learns from, shown at once.

        The tag itself changes now (the preview's chips, the counts); the rest of the library is
        decided again only at the next run of the label.
        """
        label = self.get(name)
        [(_, cid)] = self._scope(paths=[path])
        with self.catalog.transaction() as db:
            self.catalog.put_review(db, cid, label.id, on)
            if on:
                self.catalog.put_tags(db, label.id, [(cid, 1.0)])
            else:
                self.catalog.clear_tags(db, label.id, [cid])

    def is_applied(self, name: str) -> bool:
        """Whether the label has been decided on the library (run, or a tag given by hand)."""
        label = self.get(name)
        return self.catalog.label_is_decided(label.id)

    def apply(self, name: str) -> Applied:
        """Decide one label on the whole library, keeping what it replaces for `undo_apply`."""
        label = self.get(name)
        before = [(cid, conf) for cid, conf in self.catalog.label_tags(label.id)]
        calibration = self.catalog.label_calibration(label.id, self.library.model_id)
        self.run([label.name])
        photos = self.catalog.tagged_photo_counts().get(label.id, 0)
        return Applied(label.name, photos, before, calibration)

    def undo_apply(self, applied: Applied) -> None:
        """Put the label's tags and calibration back as they were before `apply` (answers stay)."""
        label = self.get(applied.label)
        with self.catalog.transaction() as db:
            self.catalog.clear_tags(db, label.id)
            self.catalog.put_tags(db, label.id, applied.before_tags)
            self.catalog.drop_calibration(db, label.id, self.library.model_id)
            if applied.before_calibration is not None:
                self.catalog.put_calibration(db, label.id, self.library.model_id, applied.before_calibration)

    # -- reading tags --------------------------------------------------------------------

    def _tags_by_path(self, scope: list[tuple[str, int]]) -> dict[str, list[str]]:
        by_content: dict[int, list[str]] = {}
        ids = sorted({cid for _, cid in scope})
        for cid, name in self.catalog.tag_names(ids):
            by_content.setdefault(cid, []).append(name)
        return {path: sorted(by_content.get(cid, []), key=str.casefold) for path, cid in scope}

    def tags_of(self, paths: Iterable[str | os.PathLike[str]] | None = None, *,
                folder: str | os.PathLike[str] | None = None) -> dict[str, list[str]]:
        """path → the labels that apply to it (stored decisions), for some paths, a folder or all."""
        return self._tags_by_path(self._scope(folder, paths))

    def photo_tags(self, path: str | os.PathLike[str]) -> list[PhotoTag]:
        """A photo's tags, by name, with the confidence each was decided with and whether you gave it."""
        [(_, cid)] = self._scope(paths=[path])
        return [PhotoTag(name, conf, "accepted" if accepted else None)
                for name, conf, accepted in self.catalog.content_tags(cid)]

    def photos(self, name: str) -> list[tuple[str, float]]:
        """(path, confidence) of the photos tagged with a label, most confident first."""
        label = self.get(name)
        confidence = dict(self.catalog.label_tags(label.id))
        photos = self.catalog.photos_by_content(confidence)
        found = [(p.path, confidence[cid]) for cid, ps in photos.items() for p in ps]
        return sorted(found, key=lambda x: (-x[1], x[0]))

    # -- exporting -----------------------------------------------------------------------

    def export_plan(self, *, folder: str | os.PathLike[str] | None = None) -> ExportPlan:
        """The sidecars `export_xmp` would write (new or changed), without writing any."""
        from clipphotos.xmp import XmpError, merge_tags, sidecar_path
        plan = ExportPlan()
        for path, tags in self.tags_of(folder=folder).items():
            target = sidecar_path(path)
            exists = target.exists()
            if not tags and not exists:
                continue
            try:
                existing = target.read_bytes() if exists else None
                changed = merge_tags(existing, tags) != existing
            except (OSError, XmpError):
                changed = True    # export will try, and report why it could not
            if changed:
                plan.sidecars.append(os.fspath(target))
                plan.new += not exists
        return plan

    def export_xmp(self, *, folder: str | os.PathLike[str] | None = None,
                   paths: Iterable[str | os.PathLike[str]] | None = None) -> ExportReport:
        """Write the tags into XMP sidecars beside the photos (the photos themselves are never touched).

        A photo without tags gets no new sidecar; an existing one is still updated, so tags
        that no longer apply leave it.
        """
        from clipphotos.xmp import XmpError, sidecar_path, write_tags
        report = ExportReport()
        for path, tags in self.tags_of(paths, folder=folder).items():
            if not tags and not sidecar_path(path).exists():
                continue
            try:
                changed = write_tags(path, tags)
            except (OSError, XmpError) as exc:
                report.failed.append((path, str(exc)))
                continue
            if changed:
                report.written.append(os.fspath(sidecar_path(path)))
            else:
                report.unchanged += 1
        return report
