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
