"""Where a search's matches end: each query's results split into matches and "more, less likely".

A CLIP search ranks the whole library, and a raw cosine says little on its own: 0.31 is the
best match for one query and noise for another, and the level moves from model to model (the
bundled shapes model scores a match near 0.9, OpenCLIP's ViT-B-32 near 0.3). So no constant
decides; the cut is learned per query from the library, in three steps that each compare the
query only with things measured by the same model on the same photos:

1. **Against generic captions, per photo.** A photo's score for the query minus its best score
   for captions that fit any photo ("a photo", "an image", …; the tags' `BACKGROUND_PROMPTS`).
   This margin removes what every text shares with that photo: some photos score high for
   anything (CLIP's hubs), and a raw ranking lets them in everywhere.
2. **Against the library's own distribution of that margin.** Photos a query describes form a
   population of their own at the top of its margins: a group that stands clear of the rest
   (Ashman's D ≥ 2, as in tag calibration). `calibration.split_mixture` finds it in
   microseconds on the query's top results plus a fixed random sample of the library (each
   sampled photo standing for its share of the rest); `calibration.calibrate_margin` decides
   where that group begins. No such group: nothing clearly matches.
3. **Against what else the top group could be.** A query about something absent still has a
   top: "a red square" in a library without one tops out on red things and squares, and they
   form a clear group too. So the group is checked against a bank of everyday concepts (colours,
   shapes, people, animals, places, …; `CONCEPTS`) fitted on the same library sample: when the
   group takes in most photos of a concept the library shows (`tags.ECHO_COVER`), and that
   concept describes those photos better than the query does (its score there is higher), the
   query merely echoes it. Then a photo matches only where the query beats the echoed concepts,
   and only if those photos again stand clear as a group of their own; usually none do, and
   the answer is "nothing matches". A query never echoes a concept of the same words ("star"
   and "a star").

Why it should hold for a real CLIP model: every step compares scores of one model on one
photo or one library, never a score with a number fixed beforehand. Contrastive training
makes the right caption of a photo outscore wrong ones, and a more specific right caption
outscore a vaguer one ("a red star" beats "red" on a red star) while a half-wrong one loses
to the right half ("red" beats "a red star" on a red circle): that is what step 3 reads, in
ViT-B-32 as in the toy model. The photos of a described thing forming a separate population
of scores is what tag calibration already relies on. What remains model-specific is only
which concepts the model knows, and a concept the library does not show is never used.

The cost per query is a few small matrix products and one mixture on ~2 300 values: the bank's
scores on the library sample are computed once per library (and again when it grew or shrank
by a quarter, `tags.RECALIBRATE_GROWTH`), the bank's text vectors once per model.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipphotos.calibration import (ECHO_COVER, NO_REVIEWS, RECALIBRATE_GROWTH, calibrate_margin,
                                    split_mixture)
from clipphotos.private import write_privately

#: Everyday things a photo may show: what a query's top group is checked against (step 3).
CONCEPTS: tuple[str, ...] = (
    "red", "green", "blue", "yellow", "purple", "orange", "white", "black", "brown", "pink", "grey",
    "a circle", "a square", "a triangle", "a star", "a heart", "a line",
    "a person", "a face", "a group of people", "a child", "a dog", "a cat", "a bird", "a horse",
    "a car", "a bicycle", "a boat", "a house", "a building", "a room", "a city street",
    "a tree", "a flower", "a mountain", "the sea", "a beach", "the sky", "snow", "food",
    "text", "a document", "a screenshot",
)
SAMPLE = 2048        # photos of the library the distribution is estimated on (a fixed random draw)
TAIL = 256           # a query's best photos, always fitted on: a rare subject's photos are all there
_STOP_WORDS = frozenset({"a", "an", "the", "of", "photo", "picture", "image", "some"})


def content_words(text: str) -> frozenset[str]:
    """The words that say what a text is about ("a photo of a star" → {"star"})."""
    return frozenset(w for w in re.findall(r"\w+", text.casefold()) if w not in _STOP_WORDS)


@dataclass(frozen=True)
class Bank:
    """The texts the cut compares a query with, as unit vectors of one model."""

    background: np.ndarray       # (len(BACKGROUND_PROMPTS), d) captions that fit any photo
    concepts: np.ndarray         # (len(CONCEPTS), d) everyday concepts, in the search's templates
    words: tuple[frozenset[str], ...]

    @classmethod
    def of(cls, background: np.ndarray, concepts: np.ndarray, texts: Sequence[str] = CONCEPTS) -> Bank:
        return cls(np.asarray(background, np.float32), np.asarray(concepts, np.float32),
                   tuple(content_words(t) for t in texts))


@dataclass(frozen=True)
class PhotoScores:
    """What the cut reads about some photos: the query's score, the best generic caption's, the concepts'."""

    query: np.ndarray            # (n,)
    background: np.ndarray       # (n,)
    concepts: np.ndarray         # (n, K)

    def __len__(self) -> int:
        return len(self.query)

    def take(self, rows: np.ndarray) -> PhotoScores:
        return PhotoScores(self.query[rows], self.background[rows], self.concepts[rows])

    @staticmethod
    def join(a: PhotoScores, b: PhotoScores) -> PhotoScores:
        return PhotoScores(np.concatenate([a.query, b.query]), np.concatenate([a.background, b.background]),
                           np.concatenate([a.concepts, b.concepts]))


def dot(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Each row's dot product with the query, on one thread: for a product this small, BLAS's
    threads cost more than they save (20 ms instead of 0.5 on a busy two-core machine)."""
    return np.einsum("ij,j->i", np.asarray(vectors, np.float32), np.asarray(query, np.float32))


@dataclass
class PhotoStats:
    """Every photo's best generic-caption score and concept scores, by content id: no query recomputes them.

    Derived from the vectors alone: computed once per photo, kept beside the index by the
    library (a lost or stale file is only computed again), a photo missing from it scored when
    first met.
    """

    ids: np.ndarray              # (n,) sorted content ids
    background: np.ndarray       # (n,)
    concepts: np.ndarray         # (n, K)

    @classmethod
    def of(cls, ids: np.ndarray, vectors: np.ndarray, bank: Bank) -> PhotoStats:
        ids = np.asarray(ids, np.int64)
        vectors = np.asarray(vectors, np.float32).reshape(len(ids), bank.concepts.shape[1])
        order = np.argsort(ids, kind="stable")
        background = (vectors @ bank.background.T).max(axis=1) if len(ids) else np.zeros(0, np.float32)
        return cls(ids[order], background[order].astype(np.float32),
                   (vectors @ bank.concepts.T)[order].astype(np.float32))

    def missing(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, np.int64)
        return ids[~_contains(self.ids, ids)]

    def merged(self, other: PhotoStats) -> PhotoStats:
        ids = np.concatenate([self.ids, other.ids])
        order = np.argsort(ids, kind="stable")
        return PhotoStats(ids[order], np.concatenate([self.background, other.background])[order],
                          np.concatenate([self.concepts, other.concepts])[order])

    def scores(self, ids: np.ndarray, query_scores: np.ndarray) -> PhotoScores:
        """The cut's view of these photos (all in the table), given their scores for the query."""
        rows = np.searchsorted(self.ids, np.asarray(ids, np.int64))
        return PhotoScores(np.asarray(query_scores, np.float32), self.background[rows], self.concepts[rows])

    def save(self, path: Path) -> None:
        """One .npy file of records, written whole or not at all (see `load`)."""
        k = self.concepts.shape[1]
        table = np.empty(len(self.ids), dtype=[("id", "<i8"), ("background", "<f4"), ("concepts", "<f4", (k,))])
        table["id"], table["background"], table["concepts"] = self.ids, self.background, self.concepts
        write_privately(path, lambda tmp: np.save(tmp, table))

    @classmethod
    def load(cls, path: Path, concepts: int) -> PhotoStats | None:
        """The table `save` wrote, memory-mapped: a query reads only its photos' rows (at 100 000
        photos, reading it all took a quarter of a second of a CLI search)."""
        try:
            table = np.load(path, mmap_mode="r")
            if table.dtype.names != ("id", "background", "concepts") or table["concepts"].shape[1:] != (concepts,):
                return None
        except (OSError, ValueError, IndexError):
            return None
        return cls(np.ascontiguousarray(table["id"]), table["background"], table["concepts"])


@dataclass
class LibrarySample:
    """A fixed random sample of the library with its bank scores, and where each concept applies.

    Built once per library (see `stale`); each query then only scores the sample for itself.
    """

    size: int                    # photos in the library when drawn
    ids: np.ndarray              # (n,) content ids of the sample
    vectors: np.ndarray          # (n, d)
    background: np.ndarray       # (n,)
    concepts: np.ndarray         # (n, K)
    concept_cut: np.ndarray      # (K,) margin from which each concept applies; inf: the library shows no such population
    applies: np.ndarray          # (n, K) whether each concept applies to each sampled photo

    @classmethod
    def draw(cls, ids: np.ndarray, vectors_of, size: int, stats: PhotoStats, seed: int = 0) -> LibrarySample:
        """Sample up to SAMPLE of `ids` (all in `stats`); `vectors_of(ids)` reads their vectors."""
        ids = np.sort(np.asarray(ids, np.int64))
        if len(ids) > SAMPLE:
            ids = np.sort(np.random.default_rng(seed).choice(ids, SAMPLE, replace=False))
        k = stats.concepts.shape[1]
        vectors = np.asarray(vectors_of(ids.tolist()), np.float32).reshape(len(ids), -1)
        scores = stats.scores(ids, np.zeros(len(ids), np.float32))
        weight = np.full(len(ids), size / max(len(ids), 1))
        cuts = np.array([calibrate_margin(-1, [], [], scores.concepts[:, j] - scores.background, NO_REVIEWS,
                                          prior=np.inf, counts=weight, fit=split_mixture).threshold
                         for j in range(k)]) if len(ids) else np.full(k, np.inf)
        applies = (scores.concepts - scores.background[:, None]) >= cuts[None, :]
        return cls(size, ids, vectors, scores.background, scores.concepts, cuts, applies)

    def stale(self, size: int) -> bool:
        return abs(size - self.size) > RECALIBRATE_GROWTH * max(self.size, 1)

    def save(self, path: Path) -> None:
        """What `draw` chose and fitted (ids and concept cuts); the rest is read again on load."""
        write_privately(path, lambda tmp: np.savez(tmp, size=self.size, ids=self.ids, concept_cut=self.concept_cut))

    @classmethod
    def load(cls, path: Path, vectors_of, present: Callable[[np.ndarray], np.ndarray],
             stats: PhotoStats) -> LibrarySample | None:
        """The sample `save` kept, less the photos gone since (`present` says which ids still
        are); its vectors and scores read again. Fitting the concept cuts again (what `draw`
        spends its time on) would give the same cuts: the same photos, drawn with the same seed."""
        try:
            with np.load(path) as saved:
                size, ids, cuts = int(saved["size"]), saved["ids"].astype(np.int64), saved["concept_cut"]
        except (OSError, KeyError, ValueError):
            return None
        if cuts.shape != (stats.concepts.shape[1],):
            return None
        ids = ids[present(ids)]
        vectors = np.asarray(vectors_of(ids.tolist()), np.float32).reshape(len(ids), -1)
        scores = stats.scores(ids, np.zeros(len(ids), np.float32))
        applies = (scores.concepts - scores.background[:, None]) >= cuts[None, :]
        return cls(size, ids, vectors, scores.background, scores.concepts, cuts, applies)

    def scores(self, query: np.ndarray) -> PhotoScores:
        return PhotoScores(dot(self.vectors, query), self.background, self.concepts)

@dataclass(frozen=True)
class Cut:
    """One query's cut: which photos are its matches, and why."""

    threshold: float             # margin (score − best generic caption) from which a photo matches
    echoes: tuple[int, ...] = () # concepts the query's top group merely echoed (indices in CONCEPTS)
    contest: float = -np.inf     # with echoes: by how much the query must beat them on a photo
    reason: str = ""

    @property
    def matches_nothing(self) -> bool:
        return not np.isfinite(self.threshold) or not np.isfinite(self.contest) and bool(self.echoes)

    def matches(self, scores: PhotoScores, by_margin: bool = True) -> np.ndarray:
        """Which of these photos match."""
        yes = _margin(scores, by_margin) >= self.threshold
        if self.echoes:
            yes &= scores.query - scores.concepts[:, list(self.echoes)].max(axis=1) >= self.contest
        return yes


def _margin(scores: PhotoScores, by_margin: bool) -> np.ndarray:
    return scores.query - scores.background if by_margin else scores.query


def cut_for(sample: LibrarySample, sample_scores: PhotoScores, tail_ids: np.ndarray, tail: PhotoScores,
            bank: Bank, query_text: str | None, *, by_text: bool = True) -> Cut:
    """Fit a query's cut on its best photos (`tail`, scored) and the library sample (scored for it).

    `by_text` False is a search by picture: its scores are image-to-image, so neither the
    generic captions nor the concepts apply; only the library's distribution of its scores does.
    Only the top group's rows are ever gathered across concepts: a query costs a few 1-D passes.
    """
    fresh = np.flatnonzero(~_contains(np.sort(np.asarray(tail_ids, np.int64)), sample.ids))
    share = max(sample.size - len(tail_ids), 0) / max(len(fresh), 1)
    weight = np.concatenate([np.ones(len(tail_ids)), np.full(len(fresh), share)])
    margin = np.concatenate([_margin(tail, by_text), _margin(sample_scores, by_text)[fresh]])
    first = calibrate_margin(-1, [], [], margin, NO_REVIEWS, prior=np.inf, counts=weight, fit=split_mixture)
    if first.mixture is None:
        return Cut(np.inf, reason="no group of photos stands out for it")
    if not by_text:
        return Cut(first.threshold, reason="a group of photos stands out")
    top = np.flatnonzero(margin >= first.threshold)
    in_tail, in_sample = top[top < len(tail_ids)], fresh[top[top >= len(tail_ids)] - len(tail_ids)]
    group = PhotoScores.join(tail.take(in_tail), sample_scores.take(in_sample))
    # Each concept's photos in the library: the sample's, less those the tail holds, plus the tail's.
    applies_tail = (tail.concepts - tail.background[:, None]) >= sample.concept_cut[None, :]
    theirs = share * sample.applies[fresh].sum(axis=0) + applies_tail.sum(axis=0)
    echoes = _echoed(group, weight[top], theirs, sample.concept_cut, bank, content_words(query_text or ""))
    if not echoes:
        return Cut(first.threshold, reason="a group of photos stands out, and no other concept explains it better")
    lead = group.query - group.concepts[:, echoes].max(axis=1)
    again = calibrate_margin(-1, [], [], lead, NO_REVIEWS, prior=np.inf, counts=weight[top], fit=split_mixture)
    names = ", ".join(repr(CONCEPTS[k]) for k in echoes)
    return Cut(first.threshold, tuple(echoes), again.threshold,
               f"its best photos are better described as {names}" if not np.isfinite(again.threshold)
               else f"photos where it beats {names}")


def _echoed(group: PhotoScores, weight: np.ndarray, theirs: np.ndarray, concept_cut: np.ndarray, bank: Bank,
            words: frozenset[str]) -> list[int]:
    """Concepts whose photos the top `group` takes in wholesale while describing them worse (step 3).

    `theirs` is how many photos of the library each concept applies to.
    """
    applies = (group.concepts - group.background[:, None]) >= concept_cut[None, :]     # (n, K)
    shared = weight @ applies
    out = []
    for k in np.flatnonzero((shared >= ECHO_COVER * theirs) & (shared > 0)):
        if bank.words[k] == words:
            continue
        rows = applies[:, k]
        if _weighted_median(group.concepts[rows, k] - group.query[rows], weight[rows]) > 0:
            out.append(int(k))
    return out


def _weighted_median(values: np.ndarray, weight: np.ndarray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weight[order])
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def _contains(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Which of `ids` are in `sorted_ids`."""
    if not len(sorted_ids):
        return np.zeros(len(ids), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return sorted_ids[at] == ids


@dataclass(frozen=True)
class QueryCut:
    """A whole query's cut: a photo matches its description (or picture) and none of its `--not` terms.

    Each part is cut on its own vector: "a star --not red" matches the stars that are not red
    things, while the results are still ranked by the combined vector.
    """

    include: Cut
    vector: np.ndarray
    by_text: bool
    exclude: tuple[tuple[Cut, np.ndarray], ...] = ()

    @property
    def reason(self) -> str:
        return self.include.reason

    @property
    def matches_nothing(self) -> bool:
        return self.include.matches_nothing

    def matches(self, ids: np.ndarray, stats: PhotoStats, query_scores: np.ndarray | None = None,
                vectors: np.ndarray | None = None) -> np.ndarray:
        """Which photos match: their scores for the included vector, or their vectors (needed with `--not` terms)."""
        if query_scores is None:
            query_scores = dot(vectors, self.vector)
        yes = self.include.matches(stats.scores(ids, query_scores), by_margin=self.by_text)
        for cut, vector in self.exclude:
            if yes.any() and not cut.matches_nothing:
                yes &= ~cut.matches(stats.scores(ids, dot(vectors, vector)))
        return yes
