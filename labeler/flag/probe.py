"""A linear probe on embeddings: a second, out-of-sample opinion of every label from each embedding space.

The probe is a ridge regression of the one-hot labels on the embeddings (with an intercept), its outputs turned
into probabilities by a softmax with a fitted temperature. It is closed-form: one pass over a space accumulates
each fold's Gram matrix ``X'X`` and ``X'Y``; the model that predicts fold f is solved from the totals minus fold
f's share. Up to ``MAX_FIT_ROWS`` every train/valid row is summed (past it, a seeded sample; every row is still
predicted), and a 289,222 x 512 space costs seconds, not the minutes of a logistic regression fitted per fold (`labeler bench flag`; `docs/benchmarks.md` compares the two).

Out of sample, strictly: train/valid rows are predicted by ``folds``-fold cross-validation among themselves, a
``fold_groups`` id never split across folds, so neither a row's own label nor a near-copy's reaches its prediction.
The ridge strength (one of ``ALPHAS``) and the temperature predicting fold f are chosen on another fold's
rows, from models that never saw fold f either (nested). ``held_out`` rows (test) are predicted by a model
fitted on every train/valid row; their labels reach no model.

Spaces: every fold model's embeddings (each trained on (K-1)/K of the labels: a memorising network would pull
a wrong label's image toward its given class there) and the frozen ImageNet network's (``labeler_training.frozen``),
which no label of the dataset shaped. Spaces are read a block of rows at a time (arrays, or a
``workspace.BlockReader`` that reads them from disk), never cast whole to float32. numpy (and scikit-learn's GroupKFold).
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

FOLDS = 5
ALPHAS = (0.01, 0.1, 1.0, 10.0)  # ridge strength, in units of the Gram matrix's mean diagonal / 100
CALIBRATION_ROWS = 3000  # rows of a fold that choose the ridge strength and the temperature
CHUNK = 16384  # rows read (and cast to float32) at a time
MAX_FIT_ROWS = 100_000  # X'X and X'Y sum at most this many train/valid rows (a seeded sample; every row is still
# predicted): the sums cost N x D^2, and 100,000 rows are ~80 per weight of the widest space (1,281); at
# DeepFashion's 289,222 rows this cuts the probe's cost about 3x. The benchmarks' sets (<= 7,000 rows) never reach it


def probe_probs(
    spaces,
    labels: np.ndarray,
    k_classes: int,
    *,
    rows: np.ndarray | None = None,
    fold_groups: np.ndarray | None = None,
    held_out: np.ndarray | None = None,
    folds: int = FOLDS,
    seed: int = 0,
) -> np.ndarray:
    """(N, k_classes) float32: each row's class probabilities from a probe that never saw its label.

    ``spaces``: one (M, D) array, or several ((F, M, D) or a list), or a ``workspace.BlockReader`` of either (read
    a block at a time): a probe in each, probabilities averaged.
    Row i of ``labels`` is row ``rows[i]`` of each space (default: row i)."""
    labels = np.asarray(labels, dtype=np.int64)
    ndim = spaces.ndim if hasattr(spaces, "ndim") else np.ndim(spaces[0]) + 1  # an array, a BlockReader, a list
    spaces = [spaces] if ndim == 2 else [spaces[i] for i in range(len(spaces))]
    rows = np.arange(len(labels)) if rows is None else np.asarray(rows, dtype=np.int64)
    held_out = np.zeros(len(labels), bool) if held_out is None else np.asarray(held_out, bool)
    groups = np.arange(len(labels)) if fold_groups is None else np.asarray(fold_groups)
    fold_of = assign_folds(groups, held_out, folds, seed)
    out = np.zeros((len(labels), k_classes), dtype=np.float64)
    for space in spaces:
        out += _ridge_probe(space, rows, labels, k_classes, fold_of, seed)
    return (out / len(spaces)).astype(np.float32)


def assign_folds(groups: np.ndarray, held_out: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """(N,) fold of each train/valid row (scikit-learn's shuffled GroupKFold), -1 for ``held_out`` rows, -2 for
    all rows when there are fewer than two groups to cross-validate over."""
    from sklearn.model_selection import GroupKFold

    fold_of = np.full(len(groups), -1, dtype=np.int64)
    fit = np.flatnonzero(~held_out)
    n_groups = len(np.unique(groups[fit]))
    if n_groups < 2:
        fold_of[fit] = -2
        return fold_of
    split = GroupKFold(n_splits=min(folds, n_groups), shuffle=True, random_state=seed)
    for f, (_, predict) in enumerate(split.split(fit, groups=groups[fit])):
        fold_of[fit[predict]] = f
    return fold_of


def _ridge_probe(space, rows, labels, k, fold_of, seed) -> np.ndarray:
    """One space's out-of-sample probabilities (float64, N x k); rows no model can predict are uniform."""
    n_folds = int(fold_of.max()) + 1
    out = np.full((len(labels), k), 1.0 / k)
    if n_folds < 2 or len(np.unique(labels[fold_of >= 0])) < 2:
        if (fold_of >= 0).any() and n_folds >= 1:  # one class only: it gets all the probability
            out[:] = 0.0
            out[:, labels[fold_of >= 0][0]] = 1.0
        return out
    gram, cross, calibration = _accumulate(space, rows, labels, k, fold_of, n_folds, seed)
    with threadpool_limits(1, user_api="blas"):  # ~35 small solves: one thread is up to 10x faster on busy cores
        scale = np.trace(gram.sum(axis=0)[:-1, :-1]) / max(gram.shape[1] - 1, 1) / 100  # mean diagonal / 100
        choices, weights = _models(gram, cross, calibration, n_folds, scale)
    for at, x in _blocks(space, rows):
        for f, w in weights.items():
            here = fold_of[at] == f
            if here.any():
                out[at[here]] = _softmax(x[here] @ w, choices[f][1])
    return out


def _blocks(space, rows: np.ndarray):
    """(evidence rows, their float32 embeddings with a column of ones) per block of ``space``'s stored rows,
    read in storage order (a ``workspace.BlockReader`` reads each block from disk, nothing else stays)."""
    where = np.full(len(space), -1, dtype=np.int64)
    where[rows] = np.arange(len(rows))
    if len(np.unique(rows)) != len(rows):
        raise ValueError("two evidence rows read the same embedding row")
    for start in range(0, len(space), CHUNK):
        at = where[start : start + CHUNK]
        keep = at >= 0
        if not keep.any():
            continue
        raw = space.block(start, start + CHUNK) if hasattr(space, "block") else space[start : start + CHUNK]
        x = np.asarray(raw[keep], dtype=np.float32)
        yield at[keep], np.hstack([x, np.ones((len(x), 1), dtype=np.float32)])


def _models(gram, cross, calibration, n_folds: int, scale: float) -> tuple[dict, dict]:
    """Per fold f (and -1: the test rows): the (alpha, temperature) chosen without fold f, and its ridge weights."""
    total_gram, total_cross = gram.sum(axis=0), cross.sum(axis=0)
    choices = {}
    for f in range(n_folds):  # the model for fold f: its strength and temperature chosen on the next fold's rows,
        # predicted by models that saw neither fold (one fold's calibration rows are enough to choose two numbers)
        choices[f] = _choose(gram, cross, calibration, [(f + 1) % n_folds], exclude=[f], scale=scale)
    choices[-1] = _choose(gram, cross, calibration, [0], exclude=[], scale=scale)  # test rows: from fold 0's
    weights = {}
    for f, (alpha, _) in choices.items():
        drop = [f] if f >= 0 else []
        weights[f] = _solve(total_gram - gram[drop].sum(axis=0), total_cross - cross[drop].sum(axis=0), alpha * scale)
    return choices, weights


def _accumulate(space, rows, labels, k, fold_of, n_folds, seed):
    """Per fold: X'X and X'Y (float64) over its rows, and a seeded calibration sample (its x and labels)."""
    from scipy.linalg.blas import ssyrk

    d = np.shape(space)[-1] + 1
    gram = np.zeros((n_folds, d, d))
    cross = np.zeros((n_folds, d, k))
    rng = np.random.default_rng(seed)
    fit = np.flatnonzero(fold_of >= 0)
    summed = np.zeros(len(labels), dtype=bool)
    summed[rng.choice(fit, size=MAX_FIT_ROWS, replace=False) if len(fit) > MAX_FIT_ROWS else fit] = True
    picked = np.zeros(len(labels), dtype=bool)
    for f in range(n_folds):
        members = np.flatnonzero(fold_of == f)
        picked[rng.choice(members, size=min(CALIBRATION_ROWS, len(members)), replace=False)] = True
    calibration = {f: ([], []) for f in range(n_folds)}
    for at, x in _blocks(space, rows):
        fold, y = fold_of[at], labels[at]
        for f in range(n_folds):
            here = (fold == f) & summed[at]
            if here.any():
                xf = np.ascontiguousarray(x[here])
                gram[f] += ssyrk(1.0, xf, trans=1)  # X'X, upper triangle (half the work of a product)
                onehot = np.zeros((len(xf), k), dtype=np.float32)
                onehot[np.arange(len(xf)), y[here]] = 1
                cross[f] += xf.T @ onehot
            chosen = picked[at] & (fold == f)
            calibration[f][0].append(x[chosen])
            calibration[f][1].append(y[chosen])
    gram = np.triu(gram) + np.triu(gram, 1).transpose(0, 2, 1)  # the lower triangle from the upper
    calibration = {
        f: (np.concatenate(xs) if xs else np.zeros((0, d), np.float32), np.concatenate(ys) if ys else np.zeros(0, int))
        for f, (xs, ys) in calibration.items()
    }
    return gram, cross, calibration


def _choose(gram, cross, calibration, predicted: list[int], *, exclude: list[int], scale: float):
    """(alpha, temperature) with the lowest log-loss on ``predicted`` folds' calibration rows, each predicted by
    a model fitted on the folds neither in ``exclude`` nor itself."""
    total_gram, total_cross = gram.sum(axis=0), cross.sum(axis=0)
    best = None
    for alpha in ALPHAS:
        scores, ys = [], []
        for g in predicted:
            drop = [*exclude, g]
            w = _solve(total_gram - gram[drop].sum(axis=0), total_cross - cross[drop].sum(axis=0), alpha * scale)
            x, y = calibration[g]
            scores.append(x @ w)
            ys.append(y)
        s, y = np.concatenate(scores), np.concatenate(ys)
        temperature, loss = _fit_temperature(s, y)
        if best is None or loss < best[2]:
            best = (alpha, temperature, loss)
    return best[0], best[1]


def _solve(gram: np.ndarray, cross: np.ndarray, ridge: float) -> np.ndarray:
    """Ridge weights (D+1, k): the intercept (last row) unpenalised (a Cholesky solve; least squares if singular)."""
    from scipy.linalg import LinAlgError, cho_factor, cho_solve

    a = gram.copy()
    idx = np.arange(a.shape[0] - 1)
    a[idx, idx] += max(ridge, 1e-9)
    try:
        return cho_solve(cho_factor(a, check_finite=False), cross, check_finite=False)
    except LinAlgError:
        return np.linalg.lstsq(a, cross, rcond=None)[0]


def _fit_temperature(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The softmax temperature (scale of the ridge outputs) with the lowest mean log-loss, and that loss."""
    from scipy.optimize import minimize_scalar

    rows = np.arange(len(labels))

    def loss(log_t: float) -> float:
        z = scores * np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[rows, labels]))

    fit = minimize_scalar(loss, bounds=(-3.0, 6.0), method="bounded")
    return float(np.exp(fit.x)), float(fit.fun)


def _softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    z = scores * temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)
