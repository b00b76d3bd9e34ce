"""Remaining wrong labels with 95% intervals (labeler.estimate), the audit sample and the review pace."""

import json

import numpy as np

from labeler.estimate import MIN_REVIEWS, estimate_remaining, review_pace


def _population(seed: int, n: int = 3000):
    """Scores that are calibrated probabilities of a wrong label (about 10% wrong overall)."""
    rng = np.random.default_rng(seed)
    score = rng.beta(0.35, 3.0, n)
    wrong = rng.random(n) < score
    return rng, score, wrong


def _review(rng, score, top: int, audit: int):
    order = np.argsort(-score)
    reviewed = np.zeros(len(score), bool)
    reviewed[order[:top]] = True
    in_queue = np.zeros(len(score), bool)
    in_queue[order[: 3 * top]] = True
    reviewed[rng.choice(np.flatnonzero(~reviewed), audit, replace=False)] = True
    return reviewed, in_queue, [int(r) for r in order if not reviewed[r]]


def test_the_true_number_left_is_inside_the_interval_nearly_always():
    inside, widths = [], []
    for seed in range(20):
        rng, score, wrong = _population(seed)
        for top, audit in ((150, 0), (300, 100)):
            reviewed, in_queue, upcoming = _review(rng, score, top, audit)
            est = estimate_remaining(score, reviewed, wrong, in_queue, upcoming, seed=seed)
            mean, lo, hi = est.remaining
            truth = int((wrong & ~reviewed).sum())
            inside.append(lo <= truth <= hi)
            widths.append((hi - lo, audit))
            assert est.found == int((wrong & reviewed).sum())
            assert 0 <= est.error_rate[1] <= est.error_rate[0] <= est.error_rate[2] <= 1
    assert np.mean(inside) >= 0.9, np.mean(inside)
    # an audit sample measures the tail: narrower intervals than the model's calibration alone
    assert np.mean([w for w, a in widths if a]) < np.mean([w for w, a in widths if not a])


def test_bands_say_whether_they_are_measured_or_rest_on_the_model():
    rng, score, wrong = _population(1)
    reviewed, in_queue, upcoming = _review(rng, score, 150, 0)
    est = estimate_remaining(score, reviewed, wrong, in_queue, upcoming, classes=np.arange(len(score)) % 3)
    top = est.bands[0]
    assert set(est.class_rates) == {0, 1, 2} and all(lo <= m <= hi for m, lo, hi in est.class_rates.values())
    assert (
        top.basis == "measured"
        and top.reviewed == 30
        and top.wrong == int(wrong[reviewed & (score >= np.sort(score)[-30])].sum())
    )
    assert est.bands[-1].basis == "model" and not est.tail_measured
    for band in est.bands:
        assert (
            band.rate_low <= band.rate <= band.rate_high and band.remaining_low <= band.remaining <= band.remaining_high
        )
    assert any("labeler sample" in note for note in est.notes)
    assert est.next_hits is not None and 0 <= est.next_hits[1] <= est.next_hits[0] <= est.next_hits[2] <= 100


def test_too_few_reviews_give_no_number():
    rng, score, wrong = _population(2)
    reviewed = np.zeros(len(score), bool)
    reviewed[: MIN_REVIEWS - 1] = True
    est = estimate_remaining(score, reviewed, wrong, np.zeros(len(score), bool))
    assert not est.enough and est.remaining is None and "not enough reviews yet" in est.notes[0]


def test_reviews_made_before_the_scores_count_as_found_but_do_not_measure_a_band():
    rng, score, wrong = _population(3)
    reviewed, in_queue, upcoming = _review(rng, score, 150, 100)
    earlier = np.zeros(len(score), bool)
    earlier[np.flatnonzero(reviewed)[:40]] = True
    est = estimate_remaining(score, reviewed, wrong, in_queue, upcoming, earlier=earlier)
    assert est.found == int((wrong & reviewed).sum()) and est.reviewed == int(reviewed.sum()) - 40


def test_review_pace_leaves_out_pauses():
    steps = [0, 10, 20, 30, 30 + 3600, 30 + 3610]  # 4 steps of 10 s and a one-hour lunch
    assert abs(review_pace(steps) - 360.0) < 1e-6
    assert review_pace([5.0]) is None


def test_status_sample_and_review_update_the_estimate(cli, tmp_path):
    from labeler.review import ReviewSession
    from labeler.workspace import Workspace
    from tests.helpers import flagged_workspace

    counts = {"hat": 40, "shoe": 40, "skirt": 40}
    ws_path = flagged_workspace(cli, tmp_path, train=counts, test={k: 5 for k in counts}, seed=5, doubt=0.2)
    status = json.loads(cli("status", ws_path, "--json").output)
    assert status["estimate"]["enough"] is False and "not enough reviews yet" in cli("status", ws_path).output
    assert "added 20 random images" in cli("sample", ws_path, "20", "--seed", "1").output
    with Workspace.open(ws_path) as ws:
        session = ReviewSession(ws, "ann")
        first = session.next_item()
        assert first.reasons[0]["code"] == "audit"  # the audit sample comes first
        for _ in range(40):
            item = session.next_item()
            if item is None:
                break
            session.decide(item.item_id, "keep")
    status = json.loads(cli("status", ws_path, "--json", "--stop-below", "0.9").output)
    est = status["estimate"]
    assert est["enough"] and est["reviewed"] == 40 and est["found"] == 0
    mean, lo, hi = est["remaining"]
    assert 0 <= lo <= mean <= hi and est["below_stop"] is True and est["queue_left"] >= 0
    text = cli("status", ws_path, "--stop-below", "0.9").output
    assert "wrong labels left [95% interval" in text and "stopped paying" in text


def test_sample_needs_a_flagged_round(cli, tmp_path):
    from tests.helpers import make_class_folders

    make_class_folders(tmp_path / "ds", {"hat": 3, "shoe": 3})
    cli("import", tmp_path / "ws", tmp_path / "ds", "--min-per-class", "1")
    assert "run `labeler flag" in cli("sample", tmp_path / "ws", "5", expect=2).output


def test_a_test_audit_sample_gives_cleaned_topk_with_an_interval(cli, tmp_path):
    from labeler.review import ReviewSession
    from labeler.round_metrics import audit_metrics as _audit_metrics
    from labeler.train import training_frame
    from labeler.workspace import Workspace
    from tests.helpers import flagged_workspace

    counts = {"hat": 20, "shoe": 20, "skirt": 20}
    ws_path = flagged_workspace(cli, tmp_path, train=counts, test={k: 8 for k in counts}, seed=6, doubt=0.2)
    assert "added 12 random test images" in cli("sample", ws_path, "12", "--split", "test").output
    with Workspace.open(ws_path) as ws:
        session = ReviewSession(ws, "ann")
        audited = []
        for _ in range(12):
            item = session.next_item()
            assert item.reasons[0]["code"] == "audit" and ws.store.item(item.item_id).split == "test"
            session.decide(item.item_id, "relabel", "hat")  # the reviewer says: every one is a hat
            audited.append(item.item_id)
        frame = training_frame(ws)
        test = frame.set_index("id").loc[frame[frame["split"] == "test"]["id"]]
        vocab = ws.store.classes()
        probs = np.tile(np.array([0.6, 0.3, 0.1], dtype=np.float32), (len(test), 1))  # always "hat" first
        m = _audit_metrics(ws, test, probs, ~test["removed"].to_numpy(), vocab)
    assert m["test_audit_n"] == 12 and m["test_audit_top1"] == 1.0 and m["test_audit_top1_low"] < 1.0
    assert 0.75 < m["test_audit_top1_low"] < 0.85 and m["test_audit_top1_high"] > 0.999  # Jeffreys, 12 of 12


def test_the_estimate_reads_the_named_score_arrays_and_a_previous_releases_scores_table(cli, tmp_path):
    """flag keeps the scores as named arrays; a workspace flagged by labeler 0.1 kept one (N, 3) "scores" table
    (id, score, class) and still gives the same estimate."""
    import numpy as np

    from labeler.remaining import load_scored, workspace_estimate
    from labeler.review import ReviewSession
    from labeler.workspace import Workspace
    from tests.helpers import flagged_workspace

    counts = {"hat": 30, "shoe": 30, "skirt": 30}
    ws_path = flagged_workspace(cli, tmp_path, train=counts, test={k: 4 for k in counts}, seed=6, doubt=0.2)
    cli("sample", ws_path, "30")
    with Workspace.open(ws_path) as ws:
        session = ReviewSession(ws, "ann")
        for n in range(35):
            item = session.next_item()
            session.decide(item.item_id, "keep" if n % 3 else "relabel", label=None if n % 3 else "shoe")
        round_id = ws.store.flagged_round()
        assert {"scored_item_ids", "scored_score", "scored_class"} <= set(ws.store.arrays(round_id))
        ids, score, classes = load_scored(ws, round_id)
        now = workspace_estimate(ws)
        assert now["enough"] and len(ids) == len(score) == len(classes)
        table = np.stack([ids.astype(np.float64), score, classes.astype(np.float64)], axis=1)
        ws.add_arrays(round_id, {"scores": table})  # as labeler 0.1 wrote it
        ws.store.conn.execute("DELETE FROM arrays WHERE name LIKE 'scored_%'")
        before = workspace_estimate(ws)
    assert before["remaining"] == now["remaining"] and before["class_rates"] == now["class_rates"]
