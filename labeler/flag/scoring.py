"""The queue's default mislabel score: one number per image from three out-of-sample views of its label.

The views, each an (N, K) distribution over classes that never saw the image's own label:
  model     the CNN's out-of-fold probabilities (cleanlab's ``pred_probs``);
  smoothed  the same probabilities averaged over the image's nearest neighbours (same group left
            out): what the model thinks of images that look like this one. Unlike the vote it does
            not echo a wrong label that a cluster of look-alike images shares;
  vote      the neighbours' given labels (``neighbors.neighbour_votes``).
From each view two features: its doubt, ``-log(share of the given label)``, and its margin,
``log(top share) - log(share of the given label)`` (0 when the view's top class is the given
label). The score is a logistic model of "this label is wrong" on those six features,
``sigmoid(WEIGHTS . x + INTERCEPT)`` with every weight >= 0, so more doubt from any view never
lowers the score. The weights were fitted by `labeler bench rank` (non-negative logistic
regression over the planted flips of its runs; it prints them) and are benchmarked cross-fitted:
each run is scored with weights fitted on the other runs only. numpy only.
"""

from __future__ import annotations

import numpy as np

FEATURES = ("model_doubt", "model_margin", "smoothed_doubt", "smoothed_margin", "vote_doubt", "vote_margin")
# Fitted by `labeler bench rank` on the demo's bench noise runs (pairs seeds 0-2, clustered seeds 0-2).
WEIGHTS = (0.62, 0.26, 0.38, 0.73, 0.0, 0.41)
INTERCEPT = -4.69
EPS = 1e-4


def features(labels: np.ndarray, model: np.ndarray, smoothed: np.ndarray, vote: np.ndarray) -> np.ndarray:
    """(N, 6) features in ``FEATURES`` order, each >= 0 and higher where the view doubts the label more."""
    labels = np.asarray(labels)
    rows = np.arange(len(labels))
    cols = []
    for view in (model, smoothed, vote):
        view = np.asarray(view, dtype=np.float64)
        given, top = np.log(view[rows, labels] + EPS), np.log(view.max(axis=1) + EPS) if len(view) else np.zeros(0)
        cols += [-given, top - given]
    return np.column_stack(cols)


def mislabel_score(x: np.ndarray, weights=WEIGHTS, intercept: float = INTERCEPT) -> np.ndarray:
    """(N,) in (0, 1), higher = more likely a wrong label."""
    z = np.asarray(x, dtype=np.float64) @ np.asarray(weights, dtype=np.float64) + intercept
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
