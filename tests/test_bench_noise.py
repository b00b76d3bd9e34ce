"""`labeler bench noise` (labeler.bench.noise): how flips are planted."""

from __future__ import annotations

import numpy as np


def test_clustered_noise_flips_look_alikes_and_whole_groups_together():
    from labeler.bench.noise import plant_flips

    rng = np.random.default_rng(0)
    n = 400
    labels = np.repeat([0, 1], n // 2)
    features = rng.normal(size=(n, 2))
    groups_ = np.arange(n) // 2  # pairs of photos of one product
    new, flipped = plant_flips(
        labels,
        np.array(["train"] * n),
        2,
        rate=0.15,
        kind="clustered",
        seed=1,
        partners={0: [1], 1: [0]},
        features=features,
        groups=groups_,
    )
    assert abs(flipped[labels == 0].mean() - 0.15) < 0.02 and (new[flipped] != labels[flipped]).all()
    assert all(flipped[groups_ == g].all() or not flipped[groups_ == g].any() for g in np.unique(groups_)[:-1])
    # a flipped image's nearest same-class look-alike is flipped far more often than the 15% base rate
    others = groups_[:, None] != groups_[None, :]  # the nearest look-alike that is not its own group mate
    nearest = [
        np.argmin(np.where(others[i] & (labels == labels[i]), ((features - features[i]) ** 2).sum(1), np.inf))
        for i in np.flatnonzero(flipped)
    ]
    assert np.mean(flipped[nearest]) > 0.3  # uniform planting would give about 0.15


def test_clustered_noise_keeps_its_rate_when_a_group_is_large():
    from labeler.bench.noise import plant_flips

    labels = np.repeat([0, 1], 100)
    features = np.random.default_rng(0).normal(size=(200, 2))
    _, flipped = plant_flips(
        labels,
        np.array(["train"] * 200),
        2,
        rate=0.15,
        kind="clustered",
        seed=0,
        partners={0: [1], 1: [0]},
        features=features,
        groups=np.zeros(200, int),
    )
    assert flipped.sum() == 30  # one group holding everything does not flip everything
