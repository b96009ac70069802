"""Calibration on its own: the statistics that decide a label, on simulated scores (no model, no database)."""
from __future__ import annotations

import numpy as np
import pytest

from clipphotos.calibration import (NO_REVIEWS, Calibration, Label, Mixture, Reviewed, Scores, best_mixture,
                                    calibrate_all, calibrate_margin, decide, exclusive_rivals, judge)
from clipphotos.shapes import COLOURS, SHAPES


# -- a simulated world: the calibration without a model ---------------------------------------

NEIGHBOURS = {("red", "orange"), ("orange", "yellow"), ("yellow", "green"), ("green", "blue"), ("blue", "purple"),
              ("purple", "red"), ("white", "yellow"), ("black", "purple"), ("black", "blue"),
              ("circle", "square"), ("triangle", "star")}


def simulated_world(seed: int, shape_scale: float, absent: str | None = None, n: int = 640):
    """Scores as a model that knows both kinds gives them: one colour and one shape per photo.

    A photo's own colour scores 0.75, a neighbouring colour 0.4, others -0.2; shapes score on
    a scale of their own (`shape_scale`): 1, 0.5 for a neighbour, 0.1. Every photo adds its own
    offset to every text, generic prompts included.
    """
    rng = np.random.default_rng(seed)
    colours, shapes = list(COLOURS), list(SHAPES)
    colour, shape = rng.integers(0, 8, n), rng.integers(0, 4, n)
    if absent is not None:
        keep = colour != colours.index(absent)
        colour, shape = colour[keep], shape[keep]

    def level(names: list[str], own: np.ndarray, values: tuple[float, float, float]) -> np.ndarray:
        near = np.array([[(a, b) in NEIGHBOURS or (b, a) in NEIGHBOURS for b in names] for a in names])
        return np.where(np.eye(len(names), dtype=bool)[own], values[0], np.where(near[own], values[1], values[2]))
    offset = rng.normal(0, 0.05, (len(colour), 1))
    labels = np.concatenate([level(colours, colour, (0.75, 0.4, -0.2)) + rng.normal(0, 0.07, (len(colour), 8)),
                             shape_scale * level(shapes, shape, (1.0, 0.5, 0.1)) + rng.normal(0, 0.04, (len(colour), 4))],
                            axis=1) + offset
    generic = rng.normal(0, 0.02, (len(colour), 6)) + offset
    truth = np.concatenate([np.eye(8, dtype=bool)[colour], np.eye(4, dtype=bool)[shape]], axis=1)
    return Scores(np.arange(len(colour)), labels.astype(np.float32), generic.max(axis=1), generic.argmax(axis=1)), truth


@pytest.mark.parametrize("shape_scale", [0.3, 1.2], ids=["shapes-score-low", "shapes-score-high"])
@pytest.mark.parametrize("seed", [0, 1])
def test_a_simulated_world_of_two_kinds(seed, shape_scale):
    """Close colours are told apart, a shape never takes a photo from a colour, an absent colour tags nothing."""
    labels = [Label(i + 1, name) for i, name in enumerate([*COLOURS, *SHAPES])]
    columns = {label.id: j for j, label in enumerate(labels)}
    names = {label.id: label.name for label in labels}
    for absent in (None, "red"):
        scores, truth = simulated_world(seed, shape_scale, absent)
        calibrations = calibrate_all(labels, scores, {})
        for j, (label, cal) in enumerate(zip(labels, calibrations)):
            verdicts = judge(cal, scores, j, columns)
            yes, kind = verdicts.applies, COLOURS if label.name in COLOURS else SHAPES
            taken = (verdicts.rival_score > scores.labels[:, j]) & (scores.margin(j) >= cal.threshold)
            assert all(labels[k].name in kind for k in verdicts.rival_column[taken])   # only its own kind competes
            if not truth[:, j].any():
                assert yes.sum() <= 2, (label.name, int(yes.sum()))
                continue
            tp, fp, fn = (yes & truth[:, j]).sum(), (yes & ~truth[:, j]).sum(), (~yes & truth[:, j]).sum()
            assert 2 * tp / (2 * tp + fp + fn) >= 0.95, (label.name, absent, tp, fp, fn)


# -- the statistics on their own ---------------------------------------------------------------


def test_mixture_finds_the_valley_between_two_populations():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(-0.05, 0.02, 900), rng.normal(0.08, 0.02, 100)])
    m = best_mixture(x)
    assert m is not None and m.separation > 4
    assert 0.0 < m.threshold() < 0.05
    assert m.weights[-1] == pytest.approx(0.1, abs=0.02)
    p = m.posterior(np.linspace(-0.2, 0.3, 50))
    assert np.all(np.diff(p) >= 0)                      # more margin is never less confident


def test_one_population_falls_back_to_the_prior_rule():
    x = np.random.default_rng(2).normal(-0.06, 0.02, 500)
    cal = calibrate_margin(1, ["x"], [], x, NO_REVIEWS)
    assert cal.mixture is None and cal.threshold == 0.0 and cal.method == "prior rule"
    assert decide(cal, x).sum() == (x >= 0).sum() <= 2


def test_negatives_of_several_kinds_do_not_hide_the_label():
    """For "orange", red photos score higher than blue ones: the "no" side takes two components."""
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(-0.4, 0.05, 600), rng.normal(0.1, 0.05, 150), rng.normal(0.45, 0.04, 100)])
    m = best_mixture(x)
    assert m is not None and len(m.means) >= 3
    assert 0.2 < m.threshold() < 0.4


def test_a_top_that_loses_to_the_generic_prompts_is_no_population():
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.normal(-0.3, 0.03, 400), rng.normal(-0.1, 0.03, 100)])
    cal = calibrate_margin(1, ["x"], [], x, NO_REVIEWS)
    assert cal.mixture is None and not decide(cal, x).any()


def test_a_big_library_is_fitted_on_a_sample_that_keeps_a_rare_label():
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(-0.05, 0.03, 60000), rng.normal(0.1, 0.02, 120)])
    cal = calibrate_margin(1, ["x"], [], x, NO_REVIEWS)
    yes = decide(cal, x)
    assert yes[-120:].sum() >= 110 and yes[:-120].sum() <= 10


def test_answers_move_the_threshold_only_where_they_are_worth_it():
    rng = np.random.default_rng(3)
    x = np.sort(np.concatenate([rng.normal(0.0, 0.03, 300), rng.normal(0.1, 0.03, 60)]))
    plain = calibrate_margin(1, ["x"], [], x, NO_REVIEWS)
    border = int(np.searchsorted(x, plain.threshold)) + 1          # just above the cut: "yes" so far
    deep = len(x) - 5                                              # among the surest "yes" photos
    moved = calibrate_margin(1, ["x"], [], x, Reviewed(np.zeros(0, np.int64), np.array([border])))
    assert moved.threshold > x[border] and not decide(moved, x)[border]
    assert moved.confidence(np.array([moved.threshold]))[0] == pytest.approx(0.5, abs=0.02)
    kept = calibrate_margin(1, ["x"], [], x, Reviewed(np.zeros(0, np.int64), np.array([deep])))
    assert kept.threshold == pytest.approx(plain.threshold, abs=0.01)   # one odd answer does not drag the label
    yes = decide(kept, x, Reviewed(np.zeros(0, np.int64), np.array([deep])))
    assert not yes[deep] and yes[deep - 1]                             # … yet that photo keeps its answer


def test_rivals_are_labels_that_never_apply_together():
    rng = np.random.default_rng(4)
    colour = rng.integers(0, 2, 400)      # red or blue, never both
    shape = rng.integers(0, 2, 400)       # star or not, independent of colour
    decisions = np.stack([colour == 0, colour == 1, shape == 1], axis=1)
    assert exclusive_rivals(decisions) == [[1], [0], []]


def test_mixture_survives_json():
    cal = Calibration(3, ["red"], [4], Mixture((0.9, 0.1), (-0.05, 0.08), (0.02, 0.03), 1), 0.01, -0.03, 0.05, 500)
    assert Calibration.from_json(cal.to_json()) == cal
