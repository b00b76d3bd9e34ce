"""The reviewer's decisions as evidence: the score's weights refitted on this dataset's reviewed labels.

The shipped weights (``scoring``) were fitted on benchmark runs; a dataset's own mistakes may lean on other
views. Every reviewed item says whether the label it had was wrong (relabelled) or right (confirmed): a labelled
example of this dataset's errors. ``refit`` fits the score again on those items, as a non-negative logistic
regression pulled toward the shipped weights (a Gaussian prior of strength ``PRIOR``: a few reviews move it a
little, many reviews more). Removed and skipped items say nothing about the label and are not used; nor is any
item no reviewer decided. numpy and scipy only.
"""

from __future__ import annotations

import numpy as np

MIN_REVIEWS = 50  # fewer decided items than this (or no wrong and no right label among them): no refit
PRIOR = 10.0  # pull toward the shipped weights, in pseudo-observations per weight


def outcomes(item_ids: np.ndarray, reviewed: dict) -> tuple[np.ndarray, np.ndarray]:
    """(rows of ``item_ids`` a reviewer confirmed or relabelled, True where relabelled: the label was wrong).
    ``reviewed``: {item_id: (reviewer, action, label)}, the effective decisions."""
    rows, wrong = [], []
    for row, item in enumerate(np.asarray(item_ids).tolist()):
        decision = reviewed.get(item)
        if decision is None or decision[1] not in ("confirm", "relabel"):
            continue
        rows.append(row)
        wrong.append(decision[1] == "relabel")
    return np.array(rows, dtype=np.int64), np.array(wrong, dtype=bool)


def refit(
    x: np.ndarray, wrong: np.ndarray, weights: np.ndarray, intercept: float, *, prior: float = PRIOR
) -> tuple[np.ndarray, float]:
    """Weights (>= 0) and intercept of the score refitted on reviewed rows ``x`` (their features) and whether each
    label was ``wrong``, pulled toward ``weights`` / ``intercept``; the shipped ones unchanged when there are fewer
    than ``MIN_REVIEWS`` rows or only one outcome."""
    from scipy.optimize import minimize

    x, y = np.asarray(x, dtype=np.float64), np.asarray(wrong, dtype=np.float64)
    w0 = np.r_[np.asarray(weights, dtype=np.float64), intercept]
    if len(y) < MIN_REVIEWS or y.min() == y.max():
        return w0[:-1], float(w0[-1])

    def loss(p):  # negative log-likelihood + prior, and its gradient
        z = x @ p[:-1] + p[-1]
        residual = 1 / (1 + np.exp(-z)) - y
        pull = prior * (p - w0)
        value = np.sum(np.logaddexp(0, z) - y * z) + 0.5 * np.dot(pull, p - w0)
        return value, np.r_[x.T @ residual, residual.sum()] + pull

    bounds = [(0, None)] * x.shape[1] + [(None, None)]
    fit = minimize(loss, w0, jac=True, bounds=bounds, method="L-BFGS-B")
    return fit.x[:-1], float(fit.x[-1])
