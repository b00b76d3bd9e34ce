"""A linear probe on the embeddings: a second, out-of-sample opinion of every label. scikit-learn only.

A logistic regression on the embeddings, cross-validated over the train/valid rows (same group in
the same fold, so neither an image's own label nor a copy's reaches its prediction), is a cheap
second classifier beside the CNN's out-of-fold head: fitted on 4/5 of the rows rather than (K-1)/K,
on a shared embedding space, its mistakes differ from the CNN's. Fitted in each fold model's space
(every model of a K-fold round embeds every image) and averaged, it is an ensemble that alone ranks
wrong labels better than the CNN (mean AP 0.615 against self-confidence's 0.512 on the 13 `labeler
bench rank` runs; one space 0.506), and it carries most of the evidence score's weight
(``labeler.flag.scoring``). In K-1 of the K spaces the model trained on the image's label: a network
that memorises its training labels would pull a wrong label's image toward its given class there and
blunt the probe's doubt (README: the runs behind the weights trained briefly). Like the neighbour
vote, it learns a wrong label that a tight cluster of look-alike images shares when they are not one
group. Test rows (scored apart by the queue) get a model fitted on every train/valid row.
"""

from __future__ import annotations

import numpy as np

FOLDS = 5
C = 10.0  # inverse regularisation: the best of 0.1, 1, 10 and 100 on the bench runs, left-one-run-out (README)
MAX_FIT_ROWS = 20_000  # each fit sees at most this many rows (a seeded sample): one space at 289k x 512 x 46 took
# 117 s with 50,000, 52 s with 20,000 (`labeler bench flag`, two cores); five spaces fit five times. The
# benchmarks' sets (<= 3,409 rows) never reach it.
MAX_ITER = 200


def probe_probs(
    embeddings: np.ndarray,
    labels: np.ndarray,
    k_classes: int,
    *,
    groups: np.ndarray | None = None,
    held_out: np.ndarray | None = None,
    folds: int = FOLDS,
    c: float = C,
    seed: int = 0,
) -> np.ndarray:
    """(N, k_classes) float32: each row's class probabilities from a logistic regression that never saw its label.

    Rows not ``held_out`` (train/valid) are predicted by ``folds``-fold cross-validation among themselves, a
    ``groups`` id never split across folds; ``held_out`` rows (test) by a model fitted on all the others.
    ``embeddings`` (N, D), or (F, N, D): one space per fold model, a probe fitted in each and their
    probabilities averaged (what `labeler train` keeps: on the 13 `bench rank` runs this ensemble took the
    cross-fitted mean AP from 0.683, one space, to 0.758)."""
    if np.ndim(embeddings) == 3:
        spaces = [
            probe_probs(space, labels, k_classes, groups=groups, held_out=held_out, folds=folds, c=c, seed=seed)
            for space in embeddings
        ]
        return np.mean(spaces, axis=0, dtype=np.float32)
    x = np.asarray(embeddings, dtype=np.float32)
    labels = np.asarray(labels)
    held_out = np.zeros(len(labels), bool) if held_out is None else np.asarray(held_out, bool)
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    out = np.full((len(labels), k_classes), 1.0 / k_classes, dtype=np.float32)
    fit_rows, test_rows = np.flatnonzero(~held_out), np.flatnonzero(held_out)
    rng = np.random.default_rng(seed)
    for train, predict in _splits(fit_rows, groups, folds, seed):
        out[predict] = _fit_predict(x, labels, train, predict, k_classes, c, rng)
    if len(test_rows) and len(fit_rows):
        out[test_rows] = _fit_predict(x, labels, fit_rows, test_rows, k_classes, c, rng)
    return out


def _splits(rows: np.ndarray, groups: np.ndarray, folds: int, seed: int):
    """(train rows, predicted rows) per fold of scikit-learn's shuffled GroupKFold over ``rows``."""
    from sklearn.model_selection import GroupKFold

    n_groups = len(np.unique(groups[rows]))
    if n_groups < 2:
        return
    split = GroupKFold(n_splits=min(folds, n_groups), shuffle=True, random_state=seed)
    for train, predict in split.split(rows, groups=groups[rows]):
        yield rows[train], rows[predict]


def _fit_predict(x, labels, train, predict, k_classes: int, c: float, rng: np.random.Generator) -> np.ndarray:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    if len(train) > MAX_FIT_ROWS:
        train = rng.choice(train, size=MAX_FIT_ROWS, replace=False)
    present = np.unique(labels[train])
    out = np.zeros((len(predict), k_classes), dtype=np.float32)
    if len(present) < 2:  # one class only: it gets all the probability
        out[:, present] = 1.0
        return out
    with warnings.catch_warnings():  # a few hundred lbfgs steps rank as well as full convergence
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(C=c, max_iter=MAX_ITER).fit(x[train], labels[train])
    out[:, model.classes_] = model.predict_proba(x[predict])
    return out
