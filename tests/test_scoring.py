"""The queue's default score (labeler.flag.scoring) and the neighbour-smoothed probabilities it reads."""

import numpy as np
from sklearn.metrics import average_precision_score

from labeler.flag import neighbors, scoring
from labeler.flag.queue import Evidence, build_queue


def test_features_and_score_move_the_right_way():
    labels = np.array([0, 0, 0])
    model = np.array([[0.9, 0.1], [0.5, 0.5], [0.1, 0.9]])
    x = scoring.features(labels, model, model, model, model)
    assert x.shape == (3, len(scoring.FEATURES)) and (x >= 0).all()
    assert all(w >= 0 for w in scoring.WEIGHTS)
    score = scoring.mislabel_score(x)
    assert ((score > 0) & (score < 1)).all()
    assert score[0] < score[1] < score[2]  # the less any view believes the given label, the higher the score
    weights = np.reshape(scoring.WEIGHTS, (len(scoring.VIEWS), -1))
    assert (weights.sum(axis=1) > 0).sum() >= 3  # the fit uses the CNN, the vote and the probe (not the smoothed view)
    for view in range(len(scoring.VIEWS)):  # each view on its own pushes the same way, or not at all
        views = [model[[0, 0, 0]]] * len(scoring.VIEWS)
        views[view] = model
        s = scoring.mislabel_score(scoring.features(labels, *views))
        if weights[view].sum() > 0:
            assert s[0] <= s[1] < s[2], view  # (a 50/50 view has no margin against the label; its doubt may weigh 0)
        else:
            assert np.allclose(s, s[0]), view


def test_smoothed_probs_never_read_the_row_itself_nor_its_group():
    probs = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], dtype=np.float32)
    idx = np.array([[1, 2], [0, 3], [3, 0], [2, 1]])
    sims = np.full((4, 2), 0.9, dtype=np.float32)
    nn = neighbors.Neighbours(idx, sims)
    plain = neighbors.smoothed_probs(nn, probs)
    assert np.allclose(plain[0], [0.5, 0.5])  # rows 1 and 2, never row 0
    grouped = neighbors.smoothed_probs(nn, probs, groups=np.array([5, 5, 6, 7]))
    assert np.allclose(grouped[0], [0.0, 1.0])  # row 1 is row 0's copy: left out
    alone = neighbors.smoothed_probs(neighbors.Neighbours(np.full((4, 2), -1), np.zeros((4, 2), np.float32)), probs)
    assert np.allclose(alone, probs)  # no neighbour at all: its own probabilities stand
    batched = neighbors.smoothed_probs(nn, probs, batch=1)
    assert np.allclose(batched, plain)


def _clustered_flips(seed: int, n: int = 900, k: int = 6, whole: bool = False):
    """Images in tight look-alike clusters, a weak model that never saw the labels, and 10% of the images
    mislabelled one by one; with ``whole``, 10% of the clusters mislabelled whole instead (a person labelling
    a batch of similar photos at once)."""
    rng = np.random.default_rng(seed)
    clusters = n // 10
    cluster_class = rng.integers(0, k, clusters)
    centres = rng.normal(size=(clusters, 32))
    cluster = np.repeat(np.arange(clusters), 10)
    true = cluster_class[cluster]
    emb = centres[cluster] + rng.normal(scale=0.3, size=(n, 32))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    logits = rng.normal(scale=1.0, size=(n, k))
    logits[np.arange(n), true] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    given = true.copy()
    if whole:
        for c in rng.choice(clusters, size=clusters // 10, replace=False):  # 10% of the clusters, whole
            given[cluster == c] = (cluster_class[c] + 1) % k
    else:
        rows = rng.choice(n, size=n // 10, replace=False)
        given[rows] = (true[rows] + 1) % k
    return given, probs.astype(np.float32), emb.astype(np.float32), given != true


def _gains(whole: bool) -> list[float]:
    """The default queue's AP over cleanlab's self-confidence rank on three seeds of ``_clustered_flips``."""
    gains = []
    for seed in range(3):
        given, probs, emb, flipped = _clustered_flips(seed, whole=whole)
        ev = Evidence(np.arange(len(given)), given, probs, emb, [str(c) for c in range(6)])
        queue = build_queue(ev)
        gains.append(
            average_precision_score(flipped, queue.scores["merged"])
            / average_precision_score(flipped, queue.scores["self_confidence"])
        )
    return gains


def test_the_default_queue_ranks_flips_among_look_alikes_above_cleanlab_alone():
    # a weak model; each wrong label sits among look-alikes that carry the right one: the vote and the probe see it.
    # One embedding space (a round trained before fold spaces were kept): 1.24-1.41x with today's weights, which
    # lean on the probe fitted in every fold model's space (1.62-1.76x with the previous weights).
    assert min(_gains(whole=False)) > 1.15


def test_a_narrow_lead_for_the_given_label_is_doubted_more_than_a_wide_one():
    # Both images give their label 0.40 and it is the model's top class; one runner-up is at 0.39, the other
    # at 0.30. A weak model's probabilities are this flat (clothing-small from scratch), and there the narrow
    # lead is the likelier wrong label (cleanlab's normalized margin beat self-confidence 1.25-1.38x).
    labels = np.array([0, 0])
    model = np.array([[0.40, 0.39, 0.21], [0.40, 0.30, 0.30]])
    x = scoring.features(labels, model, model, model, model)
    score = scoring.mislabel_score(x)
    assert score[0] > score[1], score


def test_aum_feature_rises_as_the_margin_falls_and_rows_without_one_take_the_median():
    labels = np.array([0, 0, 0, 0])
    model = np.array([[0.6, 0.4]] * 4)
    aum = np.array([3.0, 0.0, -3.0, np.nan])
    x = scoring.features(labels, model, model, model, model, aum=aum)
    assert x.shape == (4, len(scoring.FEATURES_AUM)) and (x >= 0).all()
    doubt = x[:, -1]
    assert doubt[0] < doubt[1] < doubt[2] and doubt[3] == np.median(doubt[:3])
    assert np.allclose(x[:, :-1], scoring.features(labels, model, model, model, model))  # the sixteen are unchanged
    score = scoring.mislabel_score(x, np.r_[scoring.WEIGHTS, 0.5], scoring.INTERCEPT)  # weights as bench rank fits
    assert score[0] < score[1] < score[2]


def test_the_rounds_aum_is_read_only_for_train_rows_whose_label_is_unchanged(tmp_path):
    from labeler.flag import load_aum, load_evidence
    from labeler.workspace import Workspace
    from tests.helpers import make_class_folders, record_synthetic_round

    make_class_folders(tmp_path / "ds", {"a": 6, "b": 6}, split="train")
    make_class_folders(tmp_path / "ds", {"a": 2, "b": 2}, split="test")
    from click.testing import CliRunner

    from labeler.cli import main

    assert CliRunner().invoke(main, ["import", str(tmp_path / "ws"), str(tmp_path / "ds")]).exit_code == 0
    with Workspace.open(tmp_path / "ws") as ws:
        round_id = record_synthetic_round(ws, seed=1)
        pred_ids = ws.load_array(round_id, "pred_ids")
        assert load_aum(ws, round_id, load_evidence(ws, round_id)) is None  # a round without AUM
        margins = np.arange(len(pred_ids), dtype=np.float32)[:, None] + np.array([[-1.0, 1.0]], dtype=np.float32)
        ws.add_arrays(round_id, {"margins_by_epoch": margins})  # two epochs; their mean is the AUM
        relabelled = int(pred_ids[3])
        old = next(i.label for i in ws.store.items() if i.id == relabelled)
        new = "b" if old == "a" else "a"
        ws.store.add_decision(relabelled, reviewer="ann", action="relabel", label=new, old_label=old)
        ev = load_evidence(ws, round_id)
        aum = load_aum(ws, round_id, ev)
    expected = {int(i): float(r) for r, i in enumerate(pred_ids)}
    for item, value, test in zip(ev.item_ids, aum, ev.is_test):
        if test or int(item) == relabelled:
            assert np.isnan(value), item  # no AUM: a test image, or AUM of a label it no longer has
        else:
            assert value == expected[int(item)]


def test_the_flagged_count_is_near_the_best_f1_when_the_score_is_a_probability():
    rng = np.random.default_rng(0)
    assert scoring.expected_f1_count(np.r_[np.full(100, 0.95), np.full(900, 0.02)]) == 100
    assert scoring.expected_f1_count(np.zeros(5)) == 0 and scoring.expected_f1_count(np.zeros(0)) == 0
    for a, b in ((0.5, 4), (0.3, 6), (2, 2)):  # few, rare and many wrong labels
        p = np.sort(rng.beta(a, b, 20_000))[::-1]
        wrong = rng.random(len(p)) < p  # the score is the probability of a wrong label
        f1 = 2 * np.cumsum(wrong) / (np.arange(1, len(p) + 1) + wrong.sum())
        chosen = scoring.expected_f1_count(p)
        assert f1[chosen - 1] >= 0.98 * f1.max(), (a, b, chosen, f1.argmax() + 1)


def test_the_flagged_set_beats_cleanlabs_filter_and_the_rest_of_the_filter_stays_queued_below_it():
    # the shipped score is far less sure here than on the benchmarks' CNNs (about 8 expected of 90 flips):
    # the floor keeps the set near the flips' number; what cleanlab's filters flag beyond it stays queued
    from labeler.bench.metrics import f1

    for seed in range(3):
        given, probs, emb, flipped = _clustered_flips(seed)
        ev = Evidence(np.arange(len(given)), given, probs, emb, [str(c) for c in range(6)])
        queue = build_queue(ev)
        flagged, cleanlab = queue.flagged["merged"], queue.flagged["cleanlab"]
        assert f1(flipped, flagged) > f1(flipped, cleanlab), seed
        kinds = {e.item_id: e.kind for e in queue.flags}
        rest = np.flatnonzero((cleanlab | queue.flagged["blend"]) & ~flagged)
        assert len(rest) and all(kinds.get(int(r)) in {"possible_label_issue", "outlier"} for r in rest), seed
        lowest_flagged = min(e.priority for e in queue.flags if e.kind == "label_issue")
        assert all(e.priority < lowest_flagged for e in queue.flags if e.kind == "possible_label_issue")
