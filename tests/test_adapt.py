"""Refitting the score on the reviewer's decisions (labeler.flag.adapt) and its benchmark."""

from __future__ import annotations

import numpy as np

from labeler.flag import adapt


def test_only_confirmed_and_relabelled_items_are_evidence():
    ids = np.array([10, 11, 12, 13, 14])
    reviewed = {
        11: ("ann", "confirm", "a"),
        12: ("ann", "relabel", "b"),
        13: ("bob", "remove", None),
        14: ("bob", "skip", "a"),
    }  # item 10: undecided
    rows, wrong = adapt.outcomes(ids, reviewed)
    assert rows.tolist() == [1, 2] and wrong.tolist() == [False, True]


def test_the_refit_learns_which_view_this_datasets_mistakes_show_in():
    rng = np.random.default_rng(0)
    n = 400
    wrong = rng.random(n) < 0.3
    x = np.column_stack([rng.random(n), wrong + rng.normal(scale=0.3, size=n).clip(-1, 1) + 1])  # feature 1 tells
    shipped, intercept = np.array([2.0, 0.0]), -1.0  # shipped weights trust feature 0, which says nothing here
    weights, b = adapt.refit(x, wrong, shipped, intercept)
    assert weights[1] > 1.0 and weights[0] < shipped[0] and (weights >= 0).all()
    few = adapt.refit(x[: adapt.MIN_REVIEWS - 1], wrong[: adapt.MIN_REVIEWS - 1], shipped, intercept)
    assert np.array_equal(few[0], shipped) and few[1] == intercept  # too few decisions: the shipped score stands
    stronger = adapt.refit(x, wrong, shipped, intercept, prior=1e6)
    assert np.allclose(stronger[0], shipped, atol=1e-2)  # a strong prior keeps the shipped weights


def test_an_undecided_items_label_never_reaches_the_refit(monkeypatch):
    """The simulated reviewer refits on decided rows only: the truth of rows never reviewed changes nothing."""
    from labeler.bench import adapt as bench_adapt

    rng = np.random.default_rng(1)
    n = 300
    x = np.column_stack([np.arange(n) / n, rng.random((n, 2))])  # column 0 names the row
    truth = rng.random(n) < 0.2
    fits = []
    real = adapt.refit

    def spy(xs, ys, *args, **kwargs):
        fits.append((np.rint(xs[:, 0] * n).astype(int), ys.copy()))
        return real(xs, ys, *args, **kwargs)

    monkeypatch.setattr(adapt, "refit", spy)
    options = dict(budget=0.3, batch=0.1, audited=np.array([], int), refit=True, prior=10.0)
    found = bench_adapt._review(x, truth, np.ones(3), -2.0, **options)
    decided = fits[-1][0]
    assert 0 < len(decided) < n and all(np.array_equal(ys, truth[rows]) for rows, ys in fits)
    first = fits[:]
    flipped = truth.copy()
    undecided = np.setdiff1d(np.arange(n), decided)
    flipped[undecided] = ~flipped[undecided]
    fits.clear()
    assert bench_adapt._review(x, flipped, np.ones(3), -2.0, **options) == found
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first, fits))
