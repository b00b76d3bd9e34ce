"""The linear probe on the embeddings (labeler.flag.probe): out-of-sample by row and by group."""

import numpy as np

from labeler.flag.probe import probe_probs


def _blobs(seed: int = 0, n: int = 300, k: int = 3):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    centres = rng.normal(size=(k, 16)) * 3
    emb = (centres[true] + rng.normal(size=(n, 16))).astype(np.float32)
    return true, emb


def test_no_row_and_no_copy_of_it_reaches_its_own_prediction():
    labels, emb = _blobs()
    groups = np.arange(len(labels))
    groups[1] = groups[0]  # row 1 is row 0's copy
    before = probe_probs(emb, labels, 3, fold_groups=groups)
    changed = labels.copy()
    changed[[0, 1]] = (labels[0] + 1) % 3  # the pair relabelled together
    after = probe_probs(emb, changed, 3, fold_groups=groups)
    assert np.allclose(before[[0, 1]], after[[0, 1]])  # neither its own label nor its copy's was seen
    assert not np.allclose(before, after)  # (other rows' models did see them)


def test_held_out_rows_are_predicted_and_their_labels_reach_no_model():
    labels, emb = _blobs(1)
    test = np.zeros(len(labels), bool)
    test[-40:] = True
    before = probe_probs(emb, labels, 3, held_out=test)
    scrambled = labels.copy()
    scrambled[test] = (labels[test] + 1) % 3
    after = probe_probs(emb, scrambled, 3, held_out=test)
    assert np.allclose(before, after)
    assert (before[test].argmax(axis=1) == labels[test]).mean() > 0.9  # a model fitted on the others predicts them
    assert np.allclose(before.sum(axis=1), 1, atol=1e-5)


def test_the_probe_doubts_flipped_labels():
    true, emb = _blobs(2)
    given = true.copy()
    flipped = np.random.default_rng(0).random(len(true)) < 0.1
    given[flipped] = (true[flipped] + 1) % 3
    probs = probe_probs(emb, given, 3)
    own = probs[np.arange(len(given)), given]
    assert own[flipped].mean() < 0.2 < 0.8 < own[~flipped].mean()


def test_a_single_class_or_a_single_group_does_not_fail():
    labels, emb = _blobs(3, n=20)
    one_class = probe_probs(emb, np.zeros(20, dtype=np.int64), 3)
    assert np.allclose(one_class[:, 0], 1)
    one_group = probe_probs(emb, labels, 3, fold_groups=np.zeros(20))  # nothing to cross-validate over: uniform
    assert np.allclose(one_group, 1 / 3)


def test_the_probe_is_fitted_only_for_the_evidence_ranking(monkeypatch):
    """`flag --rank-by self_confidence` (etc.) never reads the probe: it must not pay for its fits (2 min at 289k)."""
    from labeler.flag import probe
    from labeler.flag.queue import Evidence, build_queue
    from tests.helpers import synthetic_evidence

    _, given, probs, emb, _, _ = synthetic_evidence(n=200, k=4, seed=2)
    ev = Evidence(np.arange(len(given)), given, probs, emb, [str(c) for c in range(4)])
    calls = []
    real = probe.probe_probs
    monkeypatch.setattr(probe, "probe_probs", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    for rank_by in ("self_confidence", "normalized_margin", "confidence_weighted_entropy"):
        assert build_queue(ev, rank_by=rank_by).flags
    assert calls == []
    assert len(build_queue(ev).score) == len(given) and calls == [1]


def test_several_spaces_are_one_probe_each_averaged_and_stay_out_of_sample():
    labels, a = _blobs(3)
    b = a + np.random.default_rng(4).normal(size=a.shape).astype(np.float32)  # a second, noisier space
    groups = np.arange(len(labels))
    groups[1] = groups[0]
    both = probe_probs(np.stack([a, b]), labels, 3, fold_groups=groups)
    assert np.allclose(
        both, (probe_probs(a, labels, 3, fold_groups=groups) + probe_probs(b, labels, 3, fold_groups=groups)) / 2
    )
    assert np.allclose(both.sum(axis=1), 1, atol=1e-5)
    changed = labels.copy()
    changed[[0, 1]] = (labels[0] + 1) % 3
    after = probe_probs(np.stack([a, b]), changed, 3, fold_groups=groups)
    assert np.allclose(both[[0, 1]], after[[0, 1]])  # in no space does a row's own (or its copy's) label reach it


def test_spaces_read_from_disk_a_block_at_a_time_give_the_same_probabilities(tmp_path, monkeypatch):
    from labeler.flag import probe as module
    from labeler.workspace import BlockReader

    labels, a = _blobs(5)
    b = np.ascontiguousarray(a[:, ::-1])
    order = np.random.default_rng(0).permutation(len(labels))  # evidence row i is stored row order[i]
    stored = np.zeros((2, len(labels), a.shape[1]), np.float16)
    stored[0][order], stored[1][order] = a, b
    np.save(tmp_path / "spaces.npy", stored)
    monkeypatch.setattr(module, "CHUNK", 64)  # several blocks
    reader = BlockReader(tmp_path / "spaces.npy")
    from_disk = probe_probs(reader, labels, 3, rows=order)
    in_memory = probe_probs(stored.astype(np.float32)[:, order], labels, 3)
    assert np.allclose(from_disk, in_memory, atol=1e-4)
    assert np.allclose(
        probe_probs(reader[1], labels, 3, rows=order), probe_probs(b.astype(np.float16), labels, 3), atol=1e-4
    )


def test_past_max_fit_rows_the_sums_take_a_sample_and_every_row_is_still_predicted_out_of_sample(monkeypatch):
    from labeler.flag import probe as module

    labels, emb = _blobs(6, n=400)
    monkeypatch.setattr(module, "MAX_FIT_ROWS", 150)
    groups = np.arange(len(labels))
    before = probe_probs(emb, labels, 3, fold_groups=groups)
    assert (before.argmax(axis=1) == labels).mean() > 0.9  # every row predicted, well
    changed = labels.copy()
    changed[7] = (labels[7] + 1) % 3
    after = probe_probs(emb, changed, 3, fold_groups=groups)
    assert np.allclose(before[7], after[7])  # its own label still never reaches it
