"""Honest folds: groups (same product, near-identical pixels) stay in one fold and out of each other's vote."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from labeler import groups
from labeler.flag.neighbors import Neighbours, neighbour_votes
from labeler.flag.pixels import MAX_BITS, hash_groups, phash
from labeler_training.crossval import assign_folds


def _garment(path, shape: str, colour=(30, 60, 160), seed: int = 0) -> None:
    """A flat garment photo on a plain background (clothing-small's style)."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (160, 200), (235, 232, 228))
    d = ImageDraw.Draw(img)
    if shape == "dress":
        d.polygon([(60, 20), (100, 20), (135, 185), (25, 185)], fill=colour)
    elif shape == "sheath":  # another dress: narrow, with sleeves
        d.polygon([(55, 15), (105, 15), (130, 50), (112, 60), (110, 190), (50, 190), (48, 60), (30, 50)], fill=colour)
    elif shape == "pants":
        d.polygon([(45, 15), (115, 15), (120, 190), (88, 190), (80, 80), (72, 190), (40, 190)], fill=colour)
    else:  # sweater
        d.polygon(
            [(30, 30), (130, 30), (155, 110), (130, 115), (125, 185), (35, 185), (30, 115), (5, 110)], fill=colour
        )
    noise = rng.integers(-6, 7, size=(200, 160, 3))
    img = Image.fromarray(np.clip(np.asarray(img, dtype=np.int16) + noise, 0, 255).astype(np.uint8))
    img.save(path, quality=92)


def test_a_resized_recompressed_copy_joins_and_different_garments_do_not(tmp_path):
    _garment(tmp_path / "dress.jpg", "dress")
    with Image.open(tmp_path / "dress.jpg") as img:
        buf = io.BytesIO()
        img.resize((80, 100)).save(buf, "JPEG", quality=60)
    (tmp_path / "copy.jpg").write_bytes(buf.getvalue())
    _garment(tmp_path / "pants.jpg", "pants", seed=1)
    _garment(tmp_path / "sweater.jpg", "sweater", colour=(120, 30, 30), seed=2)
    _garment(tmp_path / "dress2.jpg", "sheath", colour=(10, 10, 10), seed=3)  # another dress
    hashes = [phash(str(tmp_path / f"{n}.jpg")) for n in ("dress", "copy", "pants", "sweater", "dress2")]
    assert (hashes[0] ^ hashes[1]).bit_count() <= MAX_BITS
    ids = hash_groups(hashes)
    assert ids[0] == ids[1] and len({ids[0], ids[2], ids[3], ids[4]}) == 4


def test_hash_groups_find_every_pair_within_the_bound():
    rng = np.random.default_rng(0)
    base = [int(rng.integers(0, 2**63)) for _ in range(200)]
    flipped = [h ^ (1 << int(rng.integers(0, 64))) ^ (1 << int(rng.integers(0, 64))) for h in base]  # <= 2 bits
    ids = hash_groups(base + flipped + [None])
    assert all(ids[i] == ids[200 + i] for i in range(200))
    assert len(set(ids[:200].tolist())) == 200  # random hashes are far apart


def test_no_group_spans_two_folds():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"id": np.arange(300), "file": [f"img/Item_{i // 4}/img_{i}.jpg" for i in range(300)]})
    labels = rng.integers(0, 3, 300)
    ids = groups.group_ids(frame, "/data", "folder")
    assert len(set(ids.tolist())) == 75
    folds = assign_folds(labels, 5, seed=0, groups=ids)
    for g in np.unique(ids):
        assert len(set(folds[ids == g].tolist())) == 1
    assert groups.describe(ids, "folder") == {"by": "folder", "groups": 75, "images_sharing": 300, "largest": 4}


def test_an_images_own_label_cannot_reach_its_vote_through_a_copy():
    # row 0 (labelled 1, wrongly) has a near-copy, row 1, with the same wrong label, as its nearest neighbour;
    # its other neighbours are labelled 0
    idx = np.array([[1, 2, 3, 4], [0, 2, 3, 4], [3, 4, 0, 1], [2, 4, 0, 1], [2, 3, 0, 1]])
    sims = np.array([[0.99, 0.6, 0.6, 0.6]] * 2 + [[0.9, 0.9, 0.6, 0.6]] * 3, dtype=np.float32)
    labels = np.array([1, 1, 0, 0, 0])
    nn = Neighbours(idx, sims)
    echoed = neighbour_votes(nn, labels, 2)[0, 1]
    honest = neighbour_votes(nn, labels, 2, fold_groups=np.array([7, 7, 1, 2, 3]))[0, 1]
    assert echoed > 0.3 and honest < 0.2


@pytest.mark.parametrize("by", ["auto", "folder", "hash", "none", "column:item"])
def test_every_grouping_is_accepted(by):
    assert groups.resolve(by, "csv") in ("hash", "folder", "none", "column:item")


def test_an_unknown_grouping_is_refused(cli, tmp_path):
    from tests.helpers import flagged_workspace

    ws = flagged_workspace(cli, tmp_path, train={"a": 6, "b": 6}, test={"a": 1, "b": 1}, flag=False)
    assert "--group-by 'colour'" in cli("train", ws, "--group-by", "colour", "--device", "cpu", expect=2).output


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


@pytest.mark.parametrize("rank_by", ["evidence", "self_confidence", "normalized_margin", "confidence_weighted_entropy"])
def test_every_rank_by_option_runs(cli, tmp_path, rank_by):
    from tests.helpers import flagged_workspace

    ws = flagged_workspace(cli, tmp_path, train={"a": 12, "b": 12}, test={"a": 2, "b": 2}, doubt=0.2, flag=False)
    assert "queued" in cli("flag", ws, "--rank-by", rank_by).output


def test_test_rows_are_scored_apart_from_out_of_fold_rows():
    from labeler.flag.detect import find_issues, find_issues_by_part
    from tests.helpers import synthetic_evidence

    _, given, probs, _, _, _ = synthetic_evidence(n=400, k=4, seed=3)
    parts = np.arange(400) >= 300
    both = find_issues_by_part(given, probs, parts)
    alone = find_issues(given[parts], probs[parts])
    assert np.array_equal(both.is_issue[parts], alone.is_issue)
    assert np.allclose(both.quality[parts], alone.quality)


def test_nearest_is_exact_and_never_the_image_itself():
    from labeler_training.inference import nearest

    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rows = np.array([0, 7, 49])
    idx, sims = nearest(x, rows, 5, chunk=2)
    for r, row in enumerate(rows):
        brute = x @ x[row]
        brute[row] = -np.inf
        assert idx[r].tolist() == np.argsort(-brute)[:5].tolist() and np.allclose(sims[r], np.sort(brute)[::-1][:5])


def test_the_vote_uses_out_of_sample_lists_where_the_round_kept_them():
    from labeler.flag.queue import _out_of_sample

    shared = Neighbours(np.array([[1, 2], [0, 2], [0, 1]]), np.full((3, 2), 0.9, np.float32))
    oos = Neighbours(np.array([[2, -1], [-1, -1], [-1, -1]]), np.array([[0.5, 0], [0, 0], [0, 0]], np.float32))
    voters = _out_of_sample(shared, oos)
    assert voters.indices.tolist() == [[2, -1], [0, 2], [0, 1]]  # row 0 out-of-sample; rows 1-2 (test) shared


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


def test_average_precision_matches_scikit_learn_with_ties():
    from sklearn.metrics import average_precision_score

    from labeler.bench.metrics import average_precision

    rng = np.random.default_rng(3)
    for n, levels in ((50, 5), (300, 1000), (1000, 20)):
        truth = rng.random(n) < 0.2
        score = rng.integers(0, levels, n) / levels  # many tied scores
        assert abs(average_precision(truth, score) - average_precision_score(truth, score)) < 1e-12
