"""Label-issue detection with cleanlab (confident learning). cleanlab is imported here and in active.py only.

Arrays follow cleanlab: ``labels`` (N,) integer codes, ``pred_probs`` (N, K) out-of-sample
probabilities whose columns are the pinned vocabulary. Classes that no item is labelled
with are left out of the computation (cleanlab needs every class present) and mapped back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given")
RANKINGS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")


# How `flag` and its report qualify ClassSummary.noise_rate: on four `bench noise` runs of weak CPU models the
# confident joint counted 3.1-3.5x the planted flips (README, `labeler flag`).
NOISE_RATE_CAVEAT = (
    "confident joint on the model alone; it overstates on weak models; `labeler status` estimates from reviews"
)


@dataclass
class LabelIssues:
    is_issue: np.ndarray  # (N,) bool: cleanlab's flagged set
    quality: np.ndarray  # (N,) label quality score in [0, 1]; low = likely wrong
    suggested: np.ndarray  # (N,) argmax class
    suggested_prob: np.ndarray  # (N,) its probability
    top: np.ndarray  # (N, min(9, K)) the most probable classes, best first


@dataclass
class ClassSummary:
    noise_matrix: np.ndarray  # (K, K) estimated P(given label = i | true label = j)
    confident_joint: np.ndarray  # (K, K) counts: rows given label, columns likely true label
    error_rate: dict[str, float]  # per class: estimated share of its labels that are wrong
    noise_rate: float  # estimated share of all labels that are wrong
    overlapping: list[tuple[str, str, float]]  # class pairs often mixed up (candidates to merge), worst first


def check_inputs(labels, pred_probs) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return (labels as int64, pred_probs as float32); ValueError names the numbers."""
    labels, pred_probs = np.asarray(labels), np.asarray(pred_probs)
    if pred_probs.ndim != 2:
        raise ValueError(f"pred_probs must be (N, K); it has shape {pred_probs.shape}")
    n, k = pred_probs.shape
    if labels.shape != (n,):
        raise ValueError(f"pred_probs has {n} rows but labels has shape {labels.shape}")
    bad = ~np.isfinite(pred_probs).all(axis=1)
    if bad.any():
        raise ValueError(
            f"pred_probs has NaN or inf in {int(bad.sum())} rows (first: row {int(np.flatnonzero(bad)[0])})"
        )
    sums = pred_probs.sum(axis=1)
    off = np.abs(sums - 1) > 1e-3
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise ValueError(f"pred_probs rows must sum to 1; {int(off.sum())} do not (row {i} sums to {sums[i]:.4f})")
    if n and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(
            f"labels must be in 0..{k - 1} (pred_probs has {k} columns); found {labels.min()}..{labels.max()}"
        )
    return labels.astype(np.int64), pred_probs.astype(np.float32)


def find_issues_by_part(labels, pred_probs, parts=None, **options) -> LabelIssues:
    """``find_issues`` run separately on each part (e.g. out-of-fold rows and test rows, whose
    probabilities come from differently calibrated models), stitched back in row order."""
    if parts is None or len(np.unique(parts)) < 2:
        return find_issues(labels, pred_probs, **options)
    labels, pred_probs = np.asarray(labels), np.asarray(pred_probs)
    out = None
    for part in np.unique(parts):
        rows = np.flatnonzero(parts == part)
        found = find_issues(labels[rows], pred_probs[rows], **options)
        if out is None:
            out = LabelIssues(
                np.zeros(len(labels), bool),
                np.ones(len(labels), np.float32),
                np.zeros(len(labels), found.suggested.dtype),
                np.zeros(len(labels), np.float32),
                np.zeros((len(labels), found.top.shape[1]), found.top.dtype),
            )
        for name in ("is_issue", "quality", "suggested", "suggested_prob", "top"):
            getattr(out, name)[rows] = getattr(found, name)
    return out


def find_issues(
    labels,
    pred_probs,
    *,
    filter_by: str = "prune_by_noise_rate",
    rank_by: str = "self_confidence",
    n_jobs: int | None = 1,
) -> LabelIssues:
    """cleanlab's flagged set (``filter_by``) and label quality scores (``rank_by``) for every item."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    if filter_by not in FILTERS:
        raise ValueError(f"filter_by {filter_by!r} is not one of {', '.join(FILTERS)}")
    if rank_by not in RANKINGS:
        raise ValueError(f"rank_by {rank_by!r} is not one of {', '.join(RANKINGS)}")
    labels, pred_probs = check_inputs(labels, pred_probs)
    present, local, probs = _present(labels, pred_probs)
    is_issue = (
        find_label_issues(local, probs, filter_by=filter_by, n_jobs=n_jobs)
        if len(present) > 1
        else np.zeros(len(labels), bool)
    )
    quality = get_label_quality_scores(local, probs, method=rank_by) if len(present) > 1 else np.ones(len(labels))
    top = np.argsort(-pred_probs, axis=1)[:, :9]
    return LabelIssues(
        is_issue=np.asarray(is_issue, dtype=bool),
        quality=np.asarray(quality, dtype=np.float32),
        suggested=top[:, 0],
        suggested_prob=pred_probs[np.arange(len(labels)), top[:, 0]],
        top=top,
    )


def summarize_classes(labels, pred_probs, vocab: list[str], *, top: int = 10) -> ClassSummary:
    """Class-level view: noise matrix, confident joint, per-class error rates, overlapping pairs."""
    from cleanlab.count import compute_confident_joint, estimate_latent
    from cleanlab.dataset import find_overlapping_classes

    labels, pred_probs = check_inputs(labels, pred_probs)
    k = len(vocab)
    present, local, probs = _present(labels, pred_probs)
    names = [vocab[i] for i in present]
    noise = np.eye(k)
    joint = np.zeros((k, k), dtype=np.int64)
    rates = {name: 0.0 for name in vocab}
    overlapping: list[tuple[str, str, float]] = []
    if len(present) > 1:
        cj = compute_confident_joint(local, probs)
        _, nm, _ = estimate_latent(cj, local)
        joint[np.ix_(present, present)] = cj
        noise[np.ix_(present, present)] = nm
        totals = cj.sum(axis=1)
        for i, name in enumerate(names):
            rates[name] = float(1 - cj[i, i] / totals[i]) if totals[i] else 0.0
        df = find_overlapping_classes(local, probs, class_names=names)
        overlapping = [
            (str(r["Class Name A"]), str(r["Class Name B"]), float(r["Joint Probability"]))
            for _, r in df.head(top).iterrows()
        ]
    noise_rate = float(1 - np.trace(joint) / joint.sum()) if joint.sum() else 0.0
    return ClassSummary(noise, joint, rates, noise_rate, overlapping)


def _present(labels: np.ndarray, pred_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classes that occur in ``labels``; labels re-coded to them; pred_probs restricted and renormalised."""
    present = np.unique(labels)
    if len(present) == pred_probs.shape[1]:
        return present, labels, pred_probs
    local = np.searchsorted(present, labels)
    probs = pred_probs[:, present]
    probs = probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)
    return present, local, probs.astype(np.float32)
