"""The queue's default mislabel score: one number per image from four out-of-sample views of its label.

The views, each an (N, K) distribution over classes that never saw the image's own label:
  model     the CNN's out-of-fold probabilities (cleanlab's ``pred_probs``);
  smoothed  the same probabilities averaged over the image's nearest neighbours (same group left
            out): what the model thinks of images that look like this one. Unlike the vote it does
            not echo a wrong label that a cluster of look-alike images shares;
  vote      the neighbours' given labels (``neighbors.neighbour_votes``);
  probe     a logistic regression on the embeddings, cross-validated by group (``probe.probe_probs``): a
            second, linear classifier that sees more of the labels per fit than a fold's CNN head.
From each view four features, two on a log scale and two on the probability scale:
  doubt      ``-log(share of the given label)``;
  margin     ``log(top share) - log(share of the given label)`` (0 when the given label is on top);
  doubt_p    ``1 - share of the given label`` (cleanlab's self-confidence, as a doubt);
  margin_p   ``1 + best other share - share of the given label`` (cleanlab's normalized margin, as a
             doubt, shifted to be >= 0): unlike the margin it still orders images whose given label
             is on top, by how narrowly.
Training's area under the margin (``aum``, ``training.margins``: how readily the fold models that
trained on the image fitted its given label) gives one more feature, ``aum_doubt`` (``softplus(-aum)``:
near 0 for a label learnt at once, about ``-aum`` for one fitted late or never). `labeler bench rank`
measures it (``FEATURES_AUM``); it is not in the default score, which it did not improve (README). The
log features separate confident models' doubts; the probability features matter where the model
is weak and its probabilities flat (clothing-small from scratch: normalized margin alone beats
self-confidence by 1.25-1.38x there, while the log-only score reached 1.03-1.17x). The score is a
logistic model of "this label is wrong" on those sixteen features (four views x four),
``sigmoid(WEIGHTS . x + INTERCEPT)`` with every weight >= 0, so more doubt from any view never
lowers the score. The weights were fitted by `labeler bench rank` (non-negative logistic
regression over the planted flips of its runs; it prints them) and are benchmarked cross-fitted:
each run is scored with weights fitted on the other runs only. numpy only.
"""

from __future__ import annotations

import numpy as np

VIEWS = ("model", "smoothed", "vote", "probe")
FEATURES = tuple(f"{v}_{f}" for v in VIEWS for f in ("doubt", "margin", "doubt_p", "margin_p"))
FEATURES_AUM = (*FEATURES, "aum_doubt")
# Fitted by `labeler bench rank` on 13 bench noise runs (README): the demo (pairs seeds 0-5, clustered seeds 0-2,
# `--truth ... --preset demo`) and clothing-small (pairs seeds 1-2, clustered seeds 0 and 3; `--preset cpu
# --no-pretrained --folds 3`), the probe fitted in every fold model's space and averaged (``flag.probe``). The
# README's ranking table scores each run with weights fitted on the other runs only. On these weak from-scratch
# models the weight goes to the normalized margin of the CNN, the vote and, most, the probe; the smoothed view gets
# none. Models that train longer may want the log-scale features back (refit with `bench rank` on such runs).
WEIGHTS = (0.0, 0.002, 0.0, 0.791) + (0.0, 0.0, 0.0, 0.0) + (0.0, 0.0, 0.0, 0.668) + (0.0, 0.0, 0.0, 5.030)
INTERCEPT = -8.982  # model, smoothed, vote, probe: doubt, margin, doubt_p, margin_p each
EPS = 1e-4


def features(labels: np.ndarray, *views: np.ndarray, aum=None) -> np.ndarray:
    """(N, 4 x views) features, each >= 0 and higher where the view doubts the label more: ``FEATURES`` order
    for the four ``VIEWS`` (model, smoothed, vote, probe), or the first of them; with
    ``aum`` ((N,), NaN where a row has none: test images, labels changed since training), one more column, in
    ``FEATURES_AUM`` order, a row without AUM taking the median of the others' ``aum_doubt`` (no evidence either
    way)."""
    labels = np.asarray(labels)
    rows = np.arange(len(labels))
    cols = []
    for view in views:
        view = np.array(view, dtype=np.float64)
        if not len(view):
            cols += [np.zeros(0)] * 4
            continue
        share, top = view[rows, labels], view.max(axis=1)
        view[rows, labels] = -np.inf
        other = view.max(axis=1) if view.shape[1] > 1 else np.zeros(len(view))
        cols += [-np.log(share + EPS), np.log(top + EPS) - np.log(share + EPS), 1 - share, 1 + other - share]
    if aum is not None:
        cols.append(aum_doubt(aum))
    return np.column_stack(cols)


def aum_doubt(aum) -> np.ndarray:
    """``softplus(-aum)`` per row, NaN (no AUM) replaced by the median of the rest (0 when none has one)."""
    aum = np.asarray(aum, dtype=np.float64)
    known = np.isfinite(aum)
    doubt = np.zeros(len(aum))
    doubt[known] = np.logaddexp(0.0, -aum[known])
    doubt[~known] = np.median(doubt[known]) if known.any() else 0.0
    return doubt


def mislabel_score(x: np.ndarray, weights=WEIGHTS, intercept: float = INTERCEPT) -> np.ndarray:
    """(N,) in (0, 1), higher = more likely a wrong label."""
    z = np.asarray(x, dtype=np.float64) @ np.asarray(weights, dtype=np.float64) + intercept
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def expected_f1_count(score: np.ndarray) -> int:
    """How many top-``score`` rows to flag: the count whose flagged set has the highest expected F1 when each
    score is read as the probability that the label is wrong. Flagging the top k is expected to catch
    ``sum of their scores`` of the ``sum of all scores`` wrong labels, so its plug-in F1 is
    ``2 * that catch / (k + sum of all scores)`` (Lipton et al. 2014: the F1-optimal set is a top-k of
    calibrated scores). The score is fitted on planted flips at about 11-13% noise; at a much lower or higher
    rate it, and so this count, is off in the same direction."""
    p = np.sort(np.asarray(score, dtype=np.float64))[::-1]
    if not len(p) or p.sum() <= 0:
        return 0
    expected_f1 = 2 * np.cumsum(p) / (np.arange(1, len(p) + 1) + p.sum())
    return int(np.argmax(expected_f1)) + 1
