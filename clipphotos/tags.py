"""Auto-tagging with the user's own labels: one calibrated yes/no decision per label and photo.

A raw CLIP cosine means something different for every text (0.31 can be the best match for one
query and noise for another), so no single cutoff works across labels. Each label is instead
calibrated on its own, as its own yes/no question:

1. **Against generic prompts.** A photo's score for the label is compared with its best score
   for captions that fit any photo ("a photo", "an image", …). The difference, the margin,
   removes what every caption shares with that photo.
2. **Against rival labels, only where they are rivals.** Labels are not mutually exclusive ("red"
   and "star" both fit a red star), so another label competes only when the library shows that
   the two (almost) never apply together ("red" and "blue") and competing separates the label's
   photos better, or when the label merely echoes it (see `echo_sources`). Synonyms and
   independent labels never compete, and no softmax forces one winner.
3. **Against the library's own distribution** of that margin: a Gaussian mixture with as many
   components as the data supports (BIC, up to four: the photos a label does not describe need
   not be one population), whose top component is "the photos the label describes". The
   threshold is where that component becomes the likelier one, and a photo's confidence is its
   posterior. The top component must stand clear of the rest (Ashman's D ≥ 2) and beat the
   generic prompts and rivals on average; otherwise the library shows no such population (a
   label that fits nothing, a tiny library) and a prior rule decides: the label must beat them.

Reviews refine a label: the user's answers always stick, and they move the label's threshold
where they outweigh the mistakes the move risks on the rest of the library (`heed_answers`): an
answer at the border moves the cut past it, one deep inside the other side does not drag the
whole label along. Then the rest of the library is decided again. (Moving the label's text
vector towards accepted pictures, Rocchio-style, was tried and left out: with a few answers it
shifted which labels compete and made good labels worse.)

Decisions are stored per content (a moved or copied file keeps its tags), and new photos are
decided as they are indexed, with the calibration of the last full run.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clipphotos.catalog import encode_path
from clipphotos.embedder import SEARCH_TEMPLATES

if TYPE_CHECKING:
    from clipphotos.library import Library

#: Captions that fit any photo: what a label has to beat to say something about one.
BACKGROUND_PROMPTS: tuple[str, ...] = ("a photo", "a picture of something", "an image",
                                       "a photo of something", "a picture", "a snapshot")
LABEL_TEMPLATES = SEARCH_TEMPLATES

MIN_FIT = 24                # fewer photos than this: the prior rule decides
MIN_SEPARATION = 2.0        # Ashman's D below which the library shows no second population
MAX_COMPONENTS = 4          # Gaussians a label's margins may take ("yes" and up to 3 kinds of "no")
EXCLUSIVE_RATIO = 0.3       # labels sharing this share of chance's photos, or fewer, are rivals …
MISTAKE_SHARE = 0.05        # … or sharing no more than this share of the smaller label's photos
MIN_EXPECTED_OVERLAP = 2.0  # a label must have this many photos to be some other label's echo
EXCLUSIVE_SIGNIFICANCE = 0.01  # how unlikely by chance a label's few shared photos with all its rivals must be …
PAIR_SIGNIFICANCE = 0.05    # … and with each one of them
CORE_CONFIDENCE = 0.95      # exclusivity is judged on the photos each label is this sure of
KIN_SHARE = 0.5             # labels too rare to test that share this much of their rivals are kin
ECHO_COVER = 0.5            # a label firing on this share of another's photos may be its echo …
ECHO_GAP = 0.33             # … if it scores below it there by this share of that label's own rise
VETO_LIMIT = 0.5            # a rival outscoring a label on this share of its own photos is not comparable
PRIOR_SCALE = 0.02          # margin (cosine units) that makes the prior rule 73 % sure
REVIEW_COST = 3.0           # mistakes on unreviewed photos worth one reviewed photo on the right side
FIT_SAMPLE = 4000           # photos a mixture is fitted on in a big library (see _fit_rows)
RECALIBRATE_GROWTH = 0.25   # refit everything once the library grew or shrank by this share
CHUNK = 8192


class UnknownLabel(KeyError):
    """No label of that name."""

    def __str__(self) -> str:
        return f"no label named {self.args[0]!r}"


class UnknownPhoto(KeyError):
    """A path that is not a photo of the library."""

    def __str__(self) -> str:
        return f"{self.args[0]} is not a photo of the library (index its folder first)"


@dataclass(frozen=True)
class Label:
    """A user's tag: a name ("receipts") and optional describing prompts."""

    id: int
    name: str
    prompts: tuple[str, ...] = ()

    def phrases(self) -> list[str]:
        """What its prototype is made of: the name (in LABEL_TEMPLATES) and each prompt as written."""
        return [self.name, *self.prompts]


# -- the statistics --------------------------------------------------------------------------


def _log_normal(x: np.ndarray, means: np.ndarray, sds: np.ndarray) -> np.ndarray:
    """(n, k) log densities of each value under each Gaussian."""
    z = (x[:, None] - means[None, :]) / sds[None, :]
    return -0.5 * z ** 2 - np.log(sds)[None, :] - 0.5 * math.log(2 * math.pi)


def _log_joint(x: np.ndarray, weights: np.ndarray, means: np.ndarray, sds: np.ndarray) -> np.ndarray:
    return np.log(weights)[None, :] + _log_normal(x, means, sds)


def _normalised(log_joint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(responsibilities, log-likelihood per value) from joint log densities."""
    top = log_joint.max(axis=1, keepdims=True)
    total = top + np.log(np.exp(log_joint - top).sum(axis=1, keepdims=True))
    return np.exp(log_joint - total), total[:, 0]


@dataclass(frozen=True)
class Mixture:
    """Gaussians over a label's margin, lowest mean first; those from `split` on are "yes".

    Neither side need be one population: for "orange", red photos score higher than blue ones,
    and a label's own photos may score in two clumps. The two sides are divided where
    neighbouring components stand furthest apart.
    """

    weights: tuple[float, ...]
    means: tuple[float, ...]
    sds: tuple[float, ...]
    split: int

    def divided(self, widest: bool) -> Mixture:
        """The same Gaussians with "yes" from the top one only, or from the widest gap between neighbours.

        The top alone is the careful reading: in the library at large, the photos of a close label
        ("orange" for "red") sit just below a label's own. Once rivals have taken those away, what
        stands above the widest gap is the label's own photos, even when they form two clumps.
        """
        split = len(self.means) - 1
        if widest:
            gaps = [_ashman(self.means[i], self.sds[i], self.means[i + 1], self.sds[i + 1])
                    for i in range(len(self.means) - 1)]
            split = int(np.argmax(gaps)) + 1
        return replace(self, split=split)

    @property
    def separation(self) -> float:
        """Ashman's D across the split: above 2 the two sides are cleanly apart."""
        i = self.split
        return _ashman(self.means[i - 1], self.sds[i - 1], self.means[i], self.sds[i])

    @property
    def yes_mean(self) -> float:
        w = np.asarray(self.weights[self.split:])
        return float(w @ np.asarray(self.means[self.split:]) / w.sum())

    def _curve(self) -> tuple[np.ndarray, np.ndarray]:
        """P(yes) on a grid from the lowest mean to the highest, made monotone (more margin, never less sure)."""
        grid = np.linspace(self.means[0], self.means[-1], 1025)
        resp, _ = _normalised(_log_joint(grid, *map(np.asarray, (self.weights, self.means, self.sds))))
        return grid, np.maximum.accumulate(resp[:, self.split:].sum(axis=1))

    def posterior(self, x: np.ndarray) -> np.ndarray:
        grid, p = self._curve()
        return np.interp(np.asarray(x, dtype=np.float64), grid, p)

    def threshold(self) -> float | None:
        """The margin from which "yes" is the likelier answer; None if it never is."""
        grid, p = self._curve()
        above = np.nonzero(p >= 0.5)[0]
        if not len(above):
            return None
        i = int(above[0])
        if i == 0:
            return float(grid[0])
        return float(np.interp(0.5, p[i - 1:i + 1], grid[i - 1:i + 1]))


def _ashman(mean_a: float, sd_a: float, mean_b: float, sd_b: float) -> float:
    return math.sqrt(2) * abs(mean_b - mean_a) / math.hypot(sd_a, sd_b)


def _kmeans_1d(x: np.ndarray, centres: np.ndarray, iterations: int = 30) -> np.ndarray | None:
    """Cluster labels of 1-D values from the given start, or None if a cluster empties."""
    k = len(centres)
    for _ in range(iterations):
        label = np.abs(x[:, None] - centres[None, :]).argmin(axis=1)
        if len(np.unique(label)) < k:
            return None
        new = np.array([x[label == j].mean() for j in range(k)])
        if np.allclose(new, centres):
            break
        centres = new
    return label


def fit_mixture(x: np.ndarray, start: np.ndarray, counts: np.ndarray | None = None, iterations: int = 200,
                tolerance: float = 1e-6) -> tuple[Mixture, float] | None:
    """EM for Gaussians over `x` started from 1-D k-means at `start`; (mixture, log-likelihood).

    `counts` says how many photos each value stands for (a sample of a big library). None when
    a component collapses.
    """
    x = np.asarray(x, dtype=np.float64)
    counts = np.ones(len(x)) if counts is None else np.asarray(counts, dtype=np.float64)
    floor = max(1e-4, 0.02 * float(x.std()))
    label = _kmeans_1d(x, start)
    if label is None:
        return None
    resp = np.eye(len(start))[label]
    previous = -np.inf
    for _ in range(iterations):
        w = counts[:, None] * resp
        mass = w.sum(axis=0)
        if mass.min() < 1.0:
            return None
        means = (w * x[:, None]).sum(axis=0) / mass
        sds = np.maximum(np.sqrt((w * (x[:, None] - means) ** 2).sum(axis=0) / mass), floor)
        order = np.argsort(means)
        weights, means, sds = (mass / mass.sum())[order], means[order], sds[order]
        resp, loglik = _normalised(_log_joint(x, weights, means, sds))
        total = float(counts @ loglik)
        if total - previous < tolerance * counts.sum():   # the log-likelihood has stopped rising
            break
        previous = total
    mixture = Mixture(tuple(map(float, weights)), tuple(map(float, means)), tuple(map(float, sds)), len(means) - 1)
    return mixture, total


def best_mixture(x: np.ndarray, counts: np.ndarray | None = None) -> Mixture | None:
    """The mixture with the number of components (1 … MAX_COMPONENTS) the data supports best (BIC).

    None when one Gaussian explains the margins as well: the library shows no second population.
    """
    counts = np.ones(len(x)) if counts is None else counts
    n = float(counts.sum())
    best, best_bic = None, -2 * fit_single(x, counts) + 2 * math.log(n)
    for k in range(2, MAX_COMPONENTS + 1):
        for start in _starts(x, k):
            fitted = fit_mixture(x, start, counts)
            if fitted is None:
                continue
            bic = -2 * fitted[1] + (3 * k - 1) * math.log(n)
            if bic < best_bic:
                best, best_bic = fitted[0], bic
    return best


def split_mixture(x: np.ndarray, counts: np.ndarray | None = None, bins: int = 128) -> Mixture | None:
    """`best_mixture`'s question answered fast enough to ask on every keystroke of a search.

    Instead of EM, the binned values are cut in two where the two sides are likeliest as two
    Gaussians (the classification likelihood, every cut at once from cumulative sums), and the
    upper side again while it splits, so the groups come out lowest first and the top one is
    what a query describes. A cut must pay for its three parameters (BIC): one Gaussian cut in
    two does not, as each half, weighted by its share, explains its values worse than the whole
    did. Microseconds where `best_mixture` takes a hundred milliseconds; None when nothing splits.
    """
    x = np.asarray(x, dtype=np.float64)
    counts = np.ones(len(x)) if counts is None else np.asarray(counts, dtype=np.float64)
    lo, hi = (float(x.min()), float(x.max())) if len(x) else (0.0, 0.0)
    if hi - lo < 1e-9:
        return None
    where = np.minimum(((x - lo) * (bins / (hi - lo))).astype(np.int64), bins - 1)
    hist = np.bincount(where, weights=counts, minlength=bins)
    keep = hist > 0
    centre, weight = (lo + (np.arange(bins) + 0.5) * ((hi - lo) / bins))[keep], hist[keep]
    floor = max(1e-4, 0.02 * float(x.std()))
    sheppard = ((hi - lo) / bins) ** 2 / 12          # the spread within a bin, which binning hides
    penalty = 1.5 * math.log(float(counts.sum()))     # BIC: three more parameters, for the whole library
    groups: list[tuple[float, float, float]] = []     # (weight, mean, sd) of the groups set aside below
    while True:
        cut = _likeliest_cut(centre, weight, floor, sheppard, penalty)
        if cut is None:
            break
        below = slice(0, cut)
        w = float(weight[below].sum())
        mean = float(weight[below] @ centre[below] / w)
        sd = max(math.sqrt(float(weight[below] @ (centre[below] - mean) ** 2) / w + sheppard), floor)
        groups.append((w, mean, sd))
        centre, weight = centre[cut:], weight[cut:]
    if not groups:
        return None
    w = float(weight.sum())
    mean = float(weight @ centre / w)
    groups.append((w, mean, max(math.sqrt(float(weight @ (centre - mean) ** 2) / w + sheppard), floor)))
    total = sum(g[0] for g in groups)
    return Mixture(tuple(g[0] / total for g in groups), tuple(g[1] for g in groups), tuple(g[2] for g in groups),
                   len(groups) - 1)


def _likeliest_cut(centre: np.ndarray, weight: np.ndarray, floor: float, sheppard: float,
                   penalty: float) -> int | None:
    """Where binned values are likeliest cut into two Gaussians, if the cut pays for itself (`penalty`)."""
    n = float(weight.sum())
    if len(centre) < 2 or n < 2:
        return None
    w, s, q = (np.cumsum(weight * centre ** p) for p in (0, 1, 2))
    lw, uw = w[:-1], n - w[:-1]
    lm, um = s[:-1] / lw, (s[-1] - s[:-1]) / np.maximum(uw, 1e-12)
    lv = np.maximum(q[:-1] / lw - lm ** 2 + sheppard, floor ** 2)
    uv = np.maximum((q[-1] - q[:-1]) / np.maximum(uw, 1e-12) - um ** 2 + sheppard, floor ** 2)
    whole = max(q[-1] / n - (s[-1] / n) ** 2 + sheppard, floor ** 2)
    gain = (lw * np.log(lw / n) - 0.5 * lw * np.log(lv) + uw * np.log(np.maximum(uw, 1e-12) / n)
            - 0.5 * uw * np.log(uv) + 0.5 * n * math.log(whole))
    gain = np.where((lw >= 1) & (uw >= 1), gain, -np.inf)
    best = int(np.argmax(gain))
    return best + 1 if gain[best] > penalty else None


def _starts(x: np.ndarray, k: int) -> list[np.ndarray]:
    """Two starts for k clusters: spread by count (quantiles) and spread by value (a small top group too)."""
    lo, hi = np.quantile(x, [0.005, 0.995])
    return [np.quantile(x, (np.arange(k) + 0.5) / k), lo + (hi - lo) * (np.arange(k) + 0.5) / k]


def fit_single(x: np.ndarray, counts: np.ndarray) -> float:
    """The log-likelihood of one Gaussian (the floor every mixture must beat)."""
    x = np.asarray(x, np.float64)
    mean = float(np.average(x, weights=counts))
    sd = max(math.sqrt(float(np.average((x - mean) ** 2, weights=counts))), 1e-4)
    return float(counts @ _log_normal(x, np.array([mean]), np.array([sd]))[:, 0])


@dataclass
class Calibration:
    """How one label decides, fitted on the library: stored per model, reused for new photos."""

    label_id: int
    phrases: list[str]          # what the prototype was made of: a change means a refit
    rivals: list[int]           # ids of the labels this one competes with
    mixture: Mixture | None     # None: the prior rule (the label must beat the generic prompts)
    threshold: float            # the margin from which the label applies
    mean: float                 # the library's mean and spread of the margin, for z-scores
    std: float
    size: int                   # photos in the library when fitted
    accepted: int = 0
    rejected: int = 0
    shift: float = 0.0          # how far the user's answers moved the threshold (see heed_answers)

    @property
    def method(self) -> str:
        return "prior rule" if self.mixture is None else "library mixture"

    def confidence(self, margin: np.ndarray) -> np.ndarray:
        """P(label applies | margin): the mixture's posterior, else a logistic around the prior cut.

        Both move with the threshold, so "applies" and a confidence of at least 50 % agree.
        """
        margin = np.asarray(margin, dtype=np.float64)
        if self.mixture is None:
            return 1.0 / (1.0 + np.exp(np.clip(-(margin - self.threshold) / PRIOR_SCALE, -50, 50)))
        return self.mixture.posterior(margin - self.shift)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        data = json.loads(text)
        mixture = data.pop("mixture")
        if mixture:
            mixture = Mixture(*(tuple(mixture[k]) for k in ("weights", "means", "sds")), mixture["split"])
        return cls(mixture=mixture, **data)


@dataclass
class Scores:
    """Every photo's cosine with each label and with its best generic prompt."""

    ids: np.ndarray              # (n,) content ids
    labels: np.ndarray           # (n, L) with each label's prototype
    background: np.ndarray       # (n,) best generic prompt
    background_arg: np.ndarray   # (n,) which generic prompt that was
    kinship: np.ndarray | None = None  # (L, L) cosine between the labels' prototypes: how alike in meaning

    def margin(self, j: int) -> np.ndarray:
        """Label j's score minus the best generic prompt's, per photo."""
        return self.labels[:, j] - self.background

    def best_rival(self, rivals: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(best rival label's score, its column; -inf and -1 without rivals) per photo."""
        if not len(rivals):
            return np.full(len(self.ids), -np.inf), np.full(len(self.ids), -1)
        columns = np.asarray(rivals)
        sub = self.labels[:, columns]
        return sub.max(axis=1), columns[sub.argmax(axis=1)]

    def contested(self, j: int, rivals: Sequence[int]) -> np.ndarray:
        """Label j's margin, where a rival fits a photo better replaced by how far it loses (< 0).

        The photos a rival takes become clear "no"s for the mixture, while the others keep their
        margin: a rival that comes close but loses does not lower it.
        """
        rival = self.best_rival(rivals)[0]
        gap = self.labels[:, j] - rival
        return np.where(gap < 0, np.minimum(gap, self.margin(j)), self.margin(j))


@dataclass(frozen=True)
class Reviewed:
    """A label's reviewed photos as row positions in a Scores."""

    accepted: np.ndarray
    rejected: np.ndarray

    def known(self, n: int) -> np.ndarray:
        out = np.full(n, np.nan)
        out[self.accepted], out[self.rejected] = 1.0, 0.0
        return out


NO_REVIEWS = Reviewed(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))


def _fit_rows(margin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, how many photos each stands for) to fit a mixture on, so a big library stays quick.

    Every photo of the top tail is kept (a rare label's photos are all there), and a fixed random
    sample of the rest, each standing for its share of it.
    """
    if len(margin) <= FIT_SAMPLE:
        return np.arange(len(margin)), np.ones(len(margin))
    order = np.argsort(margin, kind="stable")
    tail = FIT_SAMPLE // 4
    sample = np.random.default_rng(0).choice(order[:-tail], FIT_SAMPLE - tail, replace=False)
    counts = np.concatenate([np.ones(tail), np.full(len(sample), (len(order) - tail) / len(sample))])
    return np.concatenate([order[-tail:], sample]), counts


def calibrate_margin(label_id: int, phrases: list[str], rivals: list[int], margin: np.ndarray,
                     reviewed: Reviewed, prior: float = 0.0, *, counts: np.ndarray | None = None,
                     fit: Callable[[np.ndarray, np.ndarray], Mixture | None] = best_mixture) -> Calibration:
    """Fit one label's decision on its margins across the library (see `Mixture.divided` for the split).

    Where the library shows no population of its own, the prior rule applies the label from
    margin `prior` on (0: it must beat every generic prompt). `counts` says how many photos
    each margin stands for when the caller sampled the library itself (search does); `fit`
    is the mixture fitter (search passes the fast `split_mixture`).
    """
    rows, counts = _fit_rows(margin) if counts is None else (np.arange(len(margin)), np.asarray(counts, float))
    mixture = fit(margin[rows], counts) if counts.sum() >= MIN_FIT else None
    if mixture is not None:
        mixture = mixture.divided(widest=bool(rivals))
    clear = mixture is not None and mixture.separation >= MIN_SEPARATION and mixture.yes_mean > 0
    threshold = mixture.threshold() if clear else None
    if threshold is None:
        mixture, threshold = None, prior
    mean, std = (float(margin.mean()), float(margin.std()) or 1.0) if len(margin) else (0.0, 1.0)
    calibration = Calibration(label_id, phrases, rivals, mixture, threshold, mean, std, len(margin),
                              len(reviewed.accepted), len(reviewed.rejected))
    known = reviewed.known(len(margin))[rows]
    return heed_answers(calibration, margin[rows], counts, known) if (~np.isnan(known)).any() else calibration


def heed_answers(calibration: Calibration, margin: np.ndarray, counts: np.ndarray,
                 known: np.ndarray) -> Calibration:
    """Move the threshold where the user's answers outweigh the mistakes the move risks.

    Moving the cut away from where "yes" and "no" are equally likely costs, for every unreviewed
    photo it passes, the chance that photo was on the right side (|2p − 1|); every reviewed photo
    left on the wrong side costs REVIEW_COST. So an answer at the border moves the cut past it,
    and an answer deep inside the other side (an odd photo, or a slip of the key) does not drag
    the whole label along.
    """
    answered = ~np.isnan(known)
    p, unanswered = calibration.confidence(margin), ~answered
    candidates = np.unique(np.concatenate([[calibration.threshold], margin[answered],
                                           np.nextafter(margin[answered], np.inf)]))
    yes = margin[:, None] >= candidates[None, :]
    risked = (np.where(yes, 1 - p[:, None], p[:, None])[unanswered] * counts[unanswered, None]).sum(axis=0)
    wrong = (yes[answered] != (known[answered] == 1)[:, None]).sum(axis=0)
    cost = risked + REVIEW_COST * wrong
    best = candidates[np.lexsort((np.abs(candidates - calibration.threshold), cost))[0]]
    move = float(best) - calibration.threshold
    return replace(calibration, threshold=float(best), shift=calibration.shift + move)


def decide(calibration: Calibration, margin: np.ndarray, reviewed: Reviewed = NO_REVIEWS,
           vetoed: np.ndarray | None = None) -> np.ndarray:
    """Which photos the label applies to; reviewed photos keep the user's answer."""
    yes = margin >= calibration.threshold
    if vetoed is not None:
        yes &= ~vetoed
    yes[reviewed.accepted], yes[reviewed.rejected] = True, False
    return yes


def exclusive_rivals(decisions: np.ndarray) -> list[list[int]]:
    """For each label, the labels that (almost) never apply to the same photos as it does.

    Judged on the photos each label is sure of: the ones two close labels confuse lie at their
    borders, and would make them look independent. Exclusive means far fewer shared photos than
    chance would give (a few mistakes allowed), and too few to be chance: a Poisson test per pair,
    combined with the pair's common apart neighbours (Fisher). Where the library is too small to
    tell on its own, two labels that share no more than that still compete when they have mostly
    the same rivals (two colours: each competes with the others).
    """
    counts = decisions.sum(axis=0).astype(np.float64)
    overlap = decisions.T.astype(np.int64) @ decisions.astype(np.int64)
    expected = np.outer(counts, counts) / max(len(decisions), 1)
    apart = overlap <= np.maximum(EXCLUSIVE_RATIO * expected, MISTAKE_SHARE * np.minimum.outer(counts, counts))
    apart &= np.minimum.outer(counts, counts) > 0
    np.fill_diagonal(apart, False)
    # Only apart pairs are tested: their few shared photos keep the Poisson sum short.
    chance = np.where(apart, _poisson_cdf(np.where(apart, overlap, 0), expected), 1.0)
    apart &= chance <= PAIR_SIGNIFICANCE
    rival = np.zeros_like(apart)
    for j, k in zip(*np.nonzero(np.triu(apart))):
        # Evidence for the pair: it and both labels' apartness from the labels both are apart
        # from (the other colours, for two colours); a lone apart pair must stand on its own.
        common = apart[j] & apart[k]
        evidence = np.concatenate([[chance[j, k]], chance[j, common], chance[k, common]])
        rival[j, k] = rival[k, j] = _fisher(evidence) <= EXCLUSIVE_SIGNIFICANCE
    return [np.flatnonzero(row).tolist() for row in rival | (apart & (_shared_share(rival) >= KIN_SHARE))]


def _fisher(p: np.ndarray) -> float:
    """P-values combined (Fisher's method): how unlikely all of them at once are by chance.

    Eight colours in a small library share no photo, yet each pair alone could be chance; that
    they are all apart from each other is not.
    """
    half = -float(np.log(np.maximum(p, 1e-300)).sum())  # chi-square / 2, with 2·len(p) degrees
    terms = np.cumprod(np.concatenate([[1.0], half / np.arange(1, len(p))]))
    return min(1.0, math.exp(-half) * float(terms.sum()))


def _poisson_cdf(k: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """P(X ≤ k) for X ~ Poisson(mean), elementwise: how likely chance alone shares so few photos."""
    out = np.zeros(k.shape)
    term = np.exp(-mean)
    for i in range(int(k.max()) + 1 if k.size else 0):
        out += np.where(i <= k, term, 0.0)
        term = term * mean / (i + 1)
    return out


def _shared_share(rival: np.ndarray) -> np.ndarray:
    """How much two labels' rival sets agree (Jaccard), leaving the pair itself aside."""
    r = rival.astype(np.int64)
    both = r @ r.T
    either = r.sum(axis=1)[:, None] + r.sum(axis=1)[None, :] - both
    return np.where(either > 0, both / np.maximum(either, 1), 0.0)


def echo_sources(j: int, decisions: np.ndarray, scores: Scores, trusted: Sequence[bool]) -> list[int]:
    """Labels whose photos label j merely echoes: it fires on (nearly) all of them, scoring far below them.

    A label absent from the library still has a "top" of the library, often the photos of a
    close label ("red" in a library of orange things). There it covers that label's photos
    wholesale and stays far below that label's own score: such labels become its rivals, so
    it applies only where it beats them. A broader label ("animal" over "dog") also covers the
    narrower one but scores close to it there, so it is left alone.
    """
    mine = decisions[:, j]
    out = []
    for k, trust in enumerate(trusted):
        theirs = decisions[:, k]
        if k == j or not trust or theirs.sum() < MIN_EXPECTED_OVERLAP or theirs.all():
            continue
        shared = mine & theirs
        if shared.sum() < ECHO_COVER * theirs.sum():
            continue
        rise = scores.labels[theirs, k].mean() - scores.labels[~theirs, k].mean()
        gap = float(np.median(scores.labels[shared, k] - scores.labels[shared, j]))
        if gap > ECHO_GAP * rise:
            out.append(k)
    return out


def calibrate_all(labels: Sequence[Label], scores: Scores, reviews: dict[int, Reviewed],
                  only: Collection[int] | None = None) -> list[Calibration]:
    """Every label's calibration: against generic prompts, then with rivals where there are any.

    Rivals come from every label's first decisions, but only the labels in `only` (ids; all by
    default) are taken further: the others keep their first calibration, to be ignored.
    """
    def fit(j: int, rivals: list[int], prior: float = 0.0) -> Calibration:
        return calibrate_margin(labels[j].id, labels[j].phrases(), [labels[k].id for k in rivals],
                                scores.contested(j, rivals), reviews.get(labels[j].id, NO_REVIEWS), prior)

    plain = [fit(j, []) for j in range(len(labels))]
    priors = borrowed_cuts(plain, scores.kinship)
    plain = [fit(j, [], priors[j]) if priors[j] else c for j, c in enumerate(plain)]
    first = np.zeros((len(scores.ids), len(labels)), dtype=bool)
    core = np.zeros_like(first)
    for j, c in enumerate(plain):
        first[:, j] = decide(c, scores.margin(j), reviews.get(labels[j].id, NO_REVIEWS))
        core[:, j] = first[:, j] & (c.confidence(scores.margin(j)) >= CORE_CONFIDENCE)
    trusted = [c.mixture is not None for c in plain]
    out = []
    for j, exclusive in enumerate(exclusive_rivals(core)):
        if only is not None and labels[j].id not in only:
            out.append(plain[j])
            continue
        echoes = echo_sources(j, first, scores, trusted)
        fair = [k for k in exclusive if k not in echoes and comparable(j, k, first, scores)]
        out.append(fit(j, echoes + fair, priors[j]) if echoes or fair else plain[j])
    return out


def borrowed_cuts(plain: Sequence[Calibration], kinship: np.ndarray | None) -> list[float]:
    """The prior-rule cut of each label the library shows no population of: its nearest kin's.

    "red" in a library without red things has no "yes" photos to fit; beating the generic
    prompts says little (the top of its scores are orange and purple things). The label most
    like it in meaning that the library does show ("orange") tells what a "yes" scores.
    Labels with a population of their own, or no kin to go by, keep 0.
    """
    trusted = np.array([c.mixture is not None for c in plain])
    out = [0.0] * len(plain)
    if kinship is None or not trusted.any():
        return out
    for j, c in enumerate(plain):
        if c.mixture is None:
            kin = np.where(trusted, kinship[j], -np.inf)  # j itself is not trusted
            out[j] = max(0.0, plain[int(np.argmax(kin))].threshold)
    return out


def comparable(j: int, k: int, decisions: np.ndarray, scores: Scores) -> bool:
    """Whether label k's raw score can be set against label j's: it rarely beats j on j's own photos.

    Labels of one kind (colours) score on one scale; a label of another kind may score higher
    everywhere, and letting it veto would silence label j altogether.
    """
    mine = decisions[:, j]
    return not mine.any() or float((scores.labels[mine, k] > scores.labels[mine, j]).mean()) < VETO_LIMIT


@dataclass
class Verdicts:
    """One label's decisions on scored photos, with what they rest on."""

    margin: np.ndarray           # score minus the best generic prompt's (or the losing gap to a rival)
    rival_score: np.ndarray      # the best rival label's score (-inf without rivals)
    rival_column: np.ndarray     # its column (-1 without rivals)
    applies: np.ndarray
    confidence: np.ndarray


def judge(calibration: Calibration, scores: Scores, j: int, columns: dict[int, int],
          reviewed: Reviewed = NO_REVIEWS) -> Verdicts:
    """Label j's decisions with its calibration: the margin's threshold, rivals' vetoes, the user's answers."""
    rivals = [columns[r] for r in calibration.rivals if r in columns]
    margin = scores.contested(j, rivals)
    rival, column = scores.best_rival(rivals)
    vetoed = rival > scores.labels[:, j]
    confidence = calibration.confidence(margin)
    beaten = 1.0 / (1.0 + np.exp(np.clip((rival - scores.labels[:, j]) / PRIOR_SCALE, -50, 50)))
    confidence = np.where(vetoed, np.minimum(confidence, beaten), confidence)
    return Verdicts(margin, rival, column, decide(calibration, margin, reviewed, vetoed), confidence)


@dataclass(frozen=True)
class Decision:
    """One label's verdict on one photo, with what it rests on."""

    label: str
    path: str
    content_id: int
    applies: bool
    confidence: float           # P(label applies), calibrated for this label
    score: float                # cosine with the label's prototype
    background: str             # the generic prompt that fits the photo best
    background_score: float
    margin: float               # score − background_score
    threshold: float            # the margin from which the label applies
    z: float                    # the margin in standard deviations from the library's mean
    method: str                 # "library mixture" or "prior rule"
    rival: str | None = None    # the rival label that fits the photo best, if the label has rivals
    rival_score: float | None = None
    review: str | None = None   # "accepted" / "rejected" when the user has answered

    def explain(self) -> str:
        verdict = {"accepted": "accepted by you", "rejected": "rejected by you"}.get(
            self.review or "", "applies" if self.applies else "does not apply")
        if self.rival is not None and self.rival_score > self.score:
            why = f"{self.rival!r} fits it better ({self.rival_score:.3f} > score {self.score:.3f})"
        else:
            side = "≥" if self.margin >= self.threshold else "<"
            why = (f"score {self.score:.3f} − {self.background_score:.3f} ({self.background!r}) = margin "
                   f"{self.margin:+.3f} {side} threshold {self.threshold:+.3f} ({self.method})")
            if self.rival is not None:
                why += f"; beats {self.rival!r} ({self.rival_score:.3f})"
        return f"{verdict}: {why}; z {self.z:+.1f}; confidence {self.confidence:.0%}"

    def to_json(self) -> dict:
        data = asdict(self)
        for key in ("confidence", "score", "background_score", "margin", "threshold", "z", "rival_score"):
            data[key] = round(data[key], 4) if data[key] is not None else None
        data["explanation"] = self.explain()
        return data


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
        prompts: dict[int, list[str]] = {}
        for label_id, prompt in self.catalog.query(
                "SELECT label_id, prompt FROM label_prompts ORDER BY label_id, position"):
            prompts.setdefault(label_id, []).append(prompt)
        return [Label(i, name, tuple(prompts.get(i, ()))) for i, name in
                self.catalog.query("SELECT id, name FROM labels ORDER BY name COLLATE NOCASE")]

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
        with self.catalog.transaction() as db:
            db.execute("INSERT INTO labels(name, created_at) VALUES (?, ?) ON CONFLICT(name) DO NOTHING",
                       (name, time.time()))
            label_id = db.execute("SELECT id FROM labels WHERE name=?", (name,)).fetchone()[0]
            if prompts:
                db.execute("DELETE FROM label_prompts WHERE label_id=?", (label_id,))
                db.executemany("INSERT INTO label_prompts(label_id, position, prompt) VALUES (?, ?, ?)",
                               [(label_id, i, p) for i, p in enumerate(prompts)])
        return self.get(name)

    def remove(self, name: str) -> bool:
        """Forget a label with its tags and reviews (sidecars keep theirs until the next export)."""
        with self.catalog.transaction() as db:
            return db.execute("DELETE FROM labels WHERE name=?", (name.strip(),)).rowcount > 0

    def info(self) -> list[LabelInfo]:
        """Every label with its prompts, counts and the calibration it last decided with."""
        labels = self.all()
        names = {label.id: label.name for label in labels}
        tagged = self.catalog.tagged_photo_counts()   # photos, as browsing the tag lists them
        reviewed = {(i, a): c for i, a, c in self.catalog.query(
            "SELECT label_id, accepted, count(*) FROM tag_reviews GROUP BY label_id, accepted")}
        fitted = {i: Calibration.from_json(p) for i, p in self.catalog.query(
            "SELECT label_id, params FROM label_calibrations ORDER BY fitted_at")}
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
        for label_id, content_id, accepted in self.catalog.query(
                "SELECT label_id, content_id, accepted FROM tag_reviews ORDER BY label_id, content_id"):
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
                photo = self.catalog.photo_by_path(Path(path).expanduser().resolve())
                if photo is None:
                    raise UnknownPhoto(os.fspath(path))
                out.append((photo.path, photo.content_id))
            return out
        photos = self.catalog.iter_photos(order="path")
        if folder is not None:
            from clipphotos.catalog import folder_prefix
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
                if whole:
                    db.execute("DELETE FROM tags WHERE label_id=?", (label.id,))
                else:
                    for chunk in _chunks(scores.ids[rows].tolist()):
                        db.execute(f"DELETE FROM tags WHERE label_id=? AND content_id IN "
                                   f"({','.join('?' * len(chunk))})", [label.id, *chunk])
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
        db.execute("INSERT OR REPLACE INTO label_calibrations(label_id, model_id, params, fitted_at) "
                   "VALUES (?, ?, ?, ?)", (cal.label_id, self.library.model_id, cal.to_json(), time.time()))

    @staticmethod
    def _insert_tags(db, label_id: int, ids: np.ndarray, yes: np.ndarray, confidence: np.ndarray,
                     reviewed: Reviewed, all_ids: np.ndarray) -> None:
        """Tag rows for the photos the label applies to; an accepted photo is certain."""
        accepted = set(all_ids[reviewed.accepted].tolist())
        db.executemany("INSERT OR REPLACE INTO tags(content_id, label_id, confidence) VALUES (?, ?, ?)",
                       [(cid, label_id, 1.0 if cid in accepted else round(float(c), 4))
                        for cid, y, c in zip(ids.tolist(), yes.tolist(), confidence.tolist()) if y])

    def _mark_decided(self, db, ids: np.ndarray) -> None:
        db.executemany("INSERT OR IGNORE INTO tagged_contents(content_id, model_id) VALUES (?, ?)",
                       [(cid, self.library.model_id) for cid in ids.tolist()])

    def _stored_calibrations(self) -> dict[int, Calibration]:
        return {i: Calibration.from_json(p) for i, p in self.catalog.query(
            "SELECT label_id, params FROM label_calibrations WHERE model_id=?", (self.library.model_id,))}

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
        decided = {r[0] for r in self.catalog.query(
            "SELECT content_id FROM tagged_contents WHERE model_id=?", (model_id,))}
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
                    db.execute("DELETE FROM tag_reviews WHERE label_id=? AND content_id=?", (label.id, cid))
                else:
                    db.execute("INSERT OR REPLACE INTO tag_reviews(content_id, label_id, accepted, reviewed_at) "
                               "VALUES (?, ?, ?, ?)", (cid, label.id, int(accepted), time.time()))
        return self.run([label.name]) if refit else None

    def set_tag(self, name: str, path: str | os.PathLike[str], on: bool) -> None:
        """The user puts a tag on a photo or takes it off: an answer the label learns from, shown at once.

        The tag itself changes now (the preview's chips, the counts); the rest of the library is
        decided again only at the next run of the label.
        """
        label = self.get(name)
        [(_, cid)] = self._scope(paths=[path])
        with self.catalog.transaction() as db:
            db.execute("INSERT OR REPLACE INTO tag_reviews(content_id, label_id, accepted, reviewed_at) "
                       "VALUES (?, ?, ?, ?)", (cid, label.id, int(on), time.time()))
            if on:
                db.execute("INSERT OR REPLACE INTO tags(content_id, label_id, confidence) VALUES (?, ?, 1.0)",
                           (cid, label.id))
            else:
                db.execute("DELETE FROM tags WHERE content_id=? AND label_id=?", (cid, label.id))

    def is_applied(self, name: str) -> bool:
        """Whether the label has been decided on the library (run, or a tag given by hand)."""
        label = self.get(name)
        return bool(self.catalog.query(
            "SELECT 1 FROM label_calibrations WHERE label_id=? UNION SELECT 1 FROM tags WHERE label_id=? LIMIT 1",
            (label.id, label.id)))

    def apply(self, name: str) -> Applied:
        """Decide one label on the whole library, keeping what it replaces for `undo_apply`."""
        label = self.get(name)
        before = [(cid, conf) for cid, conf in self.catalog.query(
            "SELECT content_id, confidence FROM tags WHERE label_id=?", (label.id,))]
        rows = self.catalog.query("SELECT params FROM label_calibrations WHERE label_id=? AND model_id=?",
                                  (label.id, self.library.model_id))
        self.run([label.name])
        photos = self.catalog.tagged_photo_counts().get(label.id, 0)
        return Applied(label.name, photos, before, rows[0][0] if rows else None)

    def undo_apply(self, applied: Applied) -> None:
        """Put the label's tags and calibration back as they were before `apply` (answers stay)."""
        label = self.get(applied.label)
        with self.catalog.transaction() as db:
            db.execute("DELETE FROM tags WHERE label_id=?", (label.id,))
            db.executemany("INSERT INTO tags(content_id, label_id, confidence) VALUES (?, ?, ?)",
                           [(cid, label.id, conf) for cid, conf in applied.before_tags])
            db.execute("DELETE FROM label_calibrations WHERE label_id=? AND model_id=?",
                       (label.id, self.library.model_id))
            if applied.before_calibration is not None:
                db.execute("INSERT INTO label_calibrations(label_id, model_id, params, fitted_at) VALUES (?, ?, ?, ?)",
                           (label.id, self.library.model_id, applied.before_calibration, time.time()))

    # -- reading tags --------------------------------------------------------------------

    def _tags_by_path(self, scope: list[tuple[str, int]]) -> dict[str, list[str]]:
        by_content: dict[int, list[str]] = {}
        ids = sorted({cid for _, cid in scope})
        for chunk in _chunks(ids):
            for cid, name in self.catalog.query(
                    f"SELECT t.content_id, l.name FROM tags t JOIN labels l ON l.id=t.label_id "
                    f"WHERE t.content_id IN ({','.join('?' * len(chunk))})", chunk):
                by_content.setdefault(cid, []).append(name)
        return {path: sorted(by_content.get(cid, []), key=str.casefold) for path, cid in scope}

    def tags_of(self, paths: Iterable[str | os.PathLike[str]] | None = None, *,
                folder: str | os.PathLike[str] | None = None) -> dict[str, list[str]]:
        """path → the labels that apply to it (stored decisions), for some paths, a folder or all."""
        return self._tags_by_path(self._scope(folder, paths))

    def photo_tags(self, path: str | os.PathLike[str]) -> list[PhotoTag]:
        """A photo's tags, by name, with the confidence each was decided with and whether you gave it."""
        [(_, cid)] = self._scope(paths=[path])
        return [PhotoTag(name, conf, "accepted" if accepted else None) for name, conf, accepted in self.catalog.query(
            "SELECT l.name, t.confidence, r.accepted FROM tags t JOIN labels l ON l.id=t.label_id "
            "LEFT JOIN tag_reviews r ON r.label_id=t.label_id AND r.content_id=t.content_id "
            "WHERE t.content_id=? ORDER BY l.name COLLATE NOCASE", (cid,))]

    def photos(self, name: str) -> list[tuple[str, float]]:
        """(path, confidence) of the photos tagged with a label, most confident first."""
        label = self.get(name)
        rows = self.catalog.query("SELECT content_id, confidence FROM tags WHERE label_id=?", (label.id,))
        confidence = dict(rows)
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
