"""Ranking metrics of `labeler bench rank`: average precision, recall at a share of the images reviewed, F1 of a
flagged set, and paired-bootstrap intervals of their ratio to a baseline ranking (numpy only)."""

from __future__ import annotations

import numpy as np


def average_precision(truth: np.ndarray, score: np.ndarray) -> float:
    """scikit-learn's ``average_precision_score`` (tied scores form one threshold), in numpy: the bootstraps
    call it tens of thousands of times, and scikit-learn's input checks dominate such calls (a test compares
    the two)."""
    order = np.argsort(-score, kind="mergesort")
    ranked, hits = score[order], np.cumsum(truth[order], dtype=np.float64)
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # the last row of each run of tied scores
    tp = hits[last]
    if len(tp) == 0 or tp[-1] == 0:
        return 0.0
    precision, recall = tp / (last + 1), tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def ranking_metrics(truth: np.ndarray, score: np.ndarray) -> dict:
    order = np.argsort(-score, kind="stable")
    n = len(truth)
    found = np.cumsum(truth[order])
    return {
        "ap": average_precision(truth, score),
        "recall_5": float(found[max(int(0.05 * n), 1) - 1] / truth.sum()),
        "recall_10": float(found[max(int(0.10 * n), 1) - 1] / truth.sum()),
    }


def f1(truth: np.ndarray, flags: np.ndarray) -> float:
    hits = (truth & flags).sum()
    return float(2 * hits / max(truth.sum() + flags.sum(), 1))


def bootstrap_ratios(truth, score, base, metrics, *, n: int = 300, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Paired bootstrap 95% intervals of metric(score) / metric(base) for each of ``metrics``."""
    rng = np.random.default_rng(seed)
    ratios: dict[str, list[float]] = {m: [] for m in metrics}
    for _ in range(n):
        pick = rng.integers(0, len(truth), len(truth))
        if not truth[pick].any():
            continue
        a, b = ranking_metrics(truth[pick], score[pick]), ranking_metrics(truth[pick], base[pick])
        for m in metrics:
            ratios[m].append(a[m] / max(b[m], 1e-9))
    return {m: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) for m, v in ratios.items()}


def bootstrap_f1_ratio(truth, flags, base, *, n: int = 300, seed: int = 0) -> tuple[float, float]:
    """Paired bootstrap 95% interval of F1(flags) / F1(base), resampling images."""
    return _paired_interval(truth, flags, base, lambda t, a, b: f1(t, a) / max(f1(t, b), 1e-9), n, seed)


def bootstrap_hits_ratio(truth, chosen, base, *, n: int = 300, seed: int = 0) -> tuple[float, float]:
    """Paired bootstrap 95% interval of hits(chosen) / hits(base), hits being the true rows among those chosen
    (flips fixed by two review orders at one budget), resampling rows."""
    return _paired_interval(truth, chosen, base, lambda t, a, b: (t & a).sum() / max((t & b).sum(), 1), n, seed)


def _paired_interval(truth, a, b, ratio, n: int, seed: int) -> tuple[float, float]:
    """2.5th and 97.5th percentiles of ``ratio(truth, a, b)`` over ``n`` resamples of the rows (the same rows
    for ``a`` and ``b``)."""
    rng = np.random.default_rng(seed)
    ratios = []
    for _ in range(n):
        pick = rng.integers(0, len(truth), len(truth))
        ratios.append(ratio(truth[pick], a[pick], b[pick]))
    return float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))
