"""Neighbours in embedding space with faiss. faiss is imported here only.

Embeddings are L2-normalised, so inner product = cosine similarity. Up to ``EXACT_MAX``
items the k-NN graph is exact (``IndexFlatIP``). Past it, the graph of every item is built
list by list (``blocked_knn``): faiss k-means splits the items into ``2 * sqrt(N)`` lists, and
the items of each list are compared, as one matrix product, with the items of the ``nprobe``
lists nearest to it (``faiss.knn``: matrix products and top-k selection in blocks). On the synthetic
DeepFashion-size workspace of `labeler bench scale` this was faster than faiss's own inverted-file
search (``IndexIVFFlat``) at a higher recall against exact search (`docs/benchmarks.md`), because that
reads every candidate once per query (memory-bound) where the blocked search reads it once per list.
Queries for a few rows (``similar``, leak checks) still use a faiss index (``build_index``).
Near-duplicates follow cleanlab Datalab's rule:
a pair is a near-duplicate when its cosine distance is below ``DUPLICATE_RADIUS`` (0.13) times
the median distance of every image to its nearest neighbour. The radius is relative because
how tightly a model packs its embeddings varies (a fixed similarity such as 0.97 joins
merely similar red garments under a weak model, and misses copies under a strong one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EXACT_MAX = 50_000
DUPLICATE_RADIUS = 0.13
DEFAULT_NPROBE = 8


@dataclass
class Neighbours:
    indices: np.ndarray  # (N, k) row numbers of each row's nearest other rows, nearest first (-1: none)
    similarities: np.ndarray  # (N, k) their cosine similarities


def build_index(embeddings: np.ndarray, *, exact: bool | None = None, nprobe: int = DEFAULT_NPROBE, seed: int = 0):
    """A faiss inner-product index over ``embeddings`` (N, D) float32, exact up to EXACT_MAX rows."""
    import faiss

    x = _as_float32(embeddings)
    n, d = x.shape
    if exact is None:
        exact = n <= EXACT_MAX
    if exact:
        index = faiss.IndexFlatIP(d)
    else:
        nlist = max(1, int(4 * np.sqrt(n)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10  # k-means on a sample dominates the build; 10 iterations keep recall (bench flag)
        rng = np.random.default_rng(seed)
        sample = x[rng.choice(n, size=min(n, 32 * nlist), replace=False)]
        index.train(sample)
        index.nprobe = nprobe
    index.add(x)
    return index


def knn(embeddings: np.ndarray, k: int = 10, *, index=None, batch: int = 16_384) -> Neighbours:
    """The ``k`` nearest other rows of every row (self excluded): exact up to EXACT_MAX rows, past it
    ``blocked_knn``; with ``index``, that faiss index is searched (in batches, no N x N matrix)."""
    x = _as_float32(embeddings)
    if index is None and len(x) > EXACT_MAX:
        return blocked_knn(x, k)
    index = index if index is not None else build_index(x, exact=True)
    k_search = min(k + 1, len(x))
    out_i = np.full((len(x), k), -1, dtype=np.int64)
    out_s = np.zeros((len(x), k), dtype=np.float32)
    for start in range(0, len(x), batch):
        sims, idx = index.search(x[start : start + batch], k_search)
        is_self = idx == np.arange(start, start + len(idx))[:, None]
        order = np.argsort(is_self, axis=1, kind="stable")[:, :k]  # self (if found) moves past the first k
        out_i[start : start + len(idx), : order.shape[1]] = np.take_along_axis(idx, order, axis=1)
        out_s[start : start + len(idx), : order.shape[1]] = np.take_along_axis(sims, order, axis=1)
    return Neighbours(out_i, out_s)


def blocked_knn(
    embeddings: np.ndarray, k: int = 10, *, nlist: int | None = None, nprobe: int = DEFAULT_NPROBE, seed: int = 0
) -> Neighbours:
    """Approximate k-NN graph of all rows: each k-means list against its ``nprobe`` nearest lists.

    A row's candidates are the rows of the lists nearest to its own list's centroid (the
    centroid probes, not the row), so one matrix product serves every row of a list."""
    import faiss

    x = _as_float32(embeddings)
    n, d = x.shape
    nlist = nlist or max(1, int(2 * np.sqrt(n)))
    rng = np.random.default_rng(seed)
    kmeans = faiss.Kmeans(d, nlist, niter=10, spherical=True, seed=seed, max_points_per_centroid=32)
    kmeans.train(x[rng.choice(n, size=min(n, 32 * nlist), replace=False)])
    _, assign = kmeans.index.search(x, 1)
    _, probes = kmeans.index.search(kmeans.centroids, min(nprobe, nlist))
    order = np.argsort(assign[:, 0], kind="stable")
    bounds = np.searchsorted(assign[order, 0], np.arange(nlist + 1))
    members = [order[bounds[c] : bounds[c + 1]] for c in range(nlist)]
    out_i = np.full((n, k), -1, dtype=np.int64)
    out_s = np.zeros((n, k), dtype=np.float32)
    for c in range(nlist):
        rows = members[c]
        if not len(rows):
            continue
        cand = np.concatenate([rows] + [members[p] for p in probes[c] if p >= 0 and p != c])
        kk = min(k + 1, len(cand))
        # faiss's brute-force search: matrix products and top-k selection in blocks (bounded memory)
        sims, found = faiss.knn(x[rows], x[cand], kk, metric=faiss.METRIC_INNER_PRODUCT)
        is_self = found == np.arange(len(rows))[:, None]  # a list's own rows come first among its candidates
        order = np.argsort(is_self, axis=1, kind="stable")[:, : min(k, kk - 1)]  # self moves past the first k
        found, sims = np.take_along_axis(found, order, axis=1), np.take_along_axis(sims, order, axis=1)
        out_i[rows, : order.shape[1]] = np.where(found >= 0, cand[np.maximum(found, 0)], -1)
        out_s[rows, : order.shape[1]] = np.where(found >= 0, sims, 0)
    return Neighbours(out_i, out_s)


def knn_graph(neighbours: Neighbours, n: int | None = None):
    """The k-NN graph as scipy CSR of cosine distances, the form cleanlab's Datalab takes as ``knn_graph``."""
    from scipy.sparse import csr_matrix

    idx, sims = neighbours.indices, neighbours.similarities
    n = n or len(idx)
    k = idx.shape[1]
    distances = np.clip(1 - sims, 0, None).astype(np.float32)
    indptr = np.arange(0, n * k + 1, k)
    return csr_matrix((distances.ravel(), idx.ravel(), indptr), shape=(n, n))


def duplicate_radius(neighbours: Neighbours, relative: float = DUPLICATE_RADIUS) -> float:
    """The cosine distance below which two rows are near-duplicates: ``relative`` x median nearest distance."""
    nearest = 1 - neighbours.similarities[:, 0][neighbours.indices[:, 0] >= 0]
    return float(relative * np.median(nearest)) if len(nearest) else 0.0


def duplicate_groups(neighbours: Neighbours, relative: float = DUPLICATE_RADIUS, confirm=None) -> np.ndarray:
    """Group id per row (-1: no near-duplicate); rows closer than ``duplicate_radius`` share a group.

    ``confirm(i, j) -> bool``, if given, must also accept a pair (e.g. a pixel check)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(neighbours.indices)
    radius = duplicate_radius(neighbours, relative)
    rows, cols = np.nonzero((1 - neighbours.similarities <= radius) & (neighbours.indices >= 0))
    if confirm is not None and len(rows):
        keep = np.array([confirm(int(r), int(neighbours.indices[r, c])) for r, c in zip(rows, cols)])
        rows, cols = rows[keep], cols[keep]
    graph = coo_matrix((np.ones(len(rows)), (rows, neighbours.indices[rows, cols])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    sizes = np.bincount(component)
    return np.where(sizes[component] > 1, component, -1)


def outlier_scores(neighbours: Neighbours) -> np.ndarray:
    """1 - mean cosine similarity to the k neighbours, scaled to [0, 1] by rank (1 = most isolated)."""
    valid = neighbours.indices >= 0
    mean = np.where(valid, neighbours.similarities, 0).sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
    order = np.argsort(np.argsort(-mean))  # 0 for the least isolated
    return (order / max(len(mean) - 1, 1)).astype(np.float32)


def neighbour_votes(
    neighbours: Neighbours, labels: np.ndarray, k_classes: int, *, smoothing: float = 1.0, fold_groups=None
) -> np.ndarray:
    """(N, K) label distribution of each row's neighbours, similarity-weighted, add-``smoothing`` prior.

    Read as a kNN classifier's pred_probs: row i's neighbours' labels (never its own) vote for
    what its label should be. With ``fold_groups`` (a fold group id per row) neighbours of the row's own
    group do not vote either: a copy of an image, or another photo of the same product, carries
    the same label, right or wrong, and would only echo it.
    """
    idx, sims = neighbours.indices, neighbours.similarities
    weights = np.where(idx >= 0, np.clip(sims, 0, None), 0).astype(np.float64)
    if fold_groups is not None:
        fold_groups = np.asarray(fold_groups)
        same = fold_groups[np.where(idx >= 0, idx, 0)] == fold_groups[:, None]
        weights[same & (idx >= 0)] = 0
    votes = np.full((len(idx), k_classes), smoothing / k_classes)
    rows = np.repeat(np.arange(len(idx)), idx.shape[1])
    np.add.at(votes, (rows, labels[np.where(idx >= 0, idx, 0)].ravel()), weights.ravel())
    return (votes / votes.sum(axis=1, keepdims=True)).astype(np.float32)


def similar(embeddings: np.ndarray, row: int, k: int = 8, *, index=None) -> list[tuple[int, float]]:
    """The ``k`` rows most similar to ``row``: (row number, cosine similarity), best first."""
    x = _as_float32(embeddings)
    index = index if index is not None else build_index(x)
    sims, idx = index.search(x[row : row + 1], min(k + 1, len(x)))
    return [(int(i), float(s)) for i, s in zip(idx[0], sims[0]) if i != row and i >= 0][:k]


def recall_at_k(approx: Neighbours, exact: Neighbours) -> float:
    """Share of the exact k nearest neighbours that the approximate search also found."""
    hits = [len(set(a[a >= 0]) & set(e[e >= 0])) for a, e in zip(approx.indices, exact.indices)]
    return float(np.sum(hits) / max((exact.indices >= 0).sum(), 1))


def _as_float32(embeddings: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be (N, D); got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"embeddings have NaN or inf in {int((~np.isfinite(x)).any(axis=1).sum())} rows")
    return x


def smoothed_probs(
    neighbours: Neighbours, pred_probs: np.ndarray, *, fold_groups=None, batch: int = 8192
) -> np.ndarray:
    """(N, K) each row's neighbours' pred_probs, similarity-weighted (never its own; same group left out).

    A row without any voting neighbour keeps its own pred_probs."""
    idx, sims = neighbours.indices, neighbours.similarities
    pred_probs = np.asarray(pred_probs, dtype=np.float64)
    weights = np.where(idx >= 0, np.clip(sims, 0, None), 0).astype(np.float64)
    safe = np.where(idx >= 0, idx, 0)
    if fold_groups is not None:
        fold_groups = np.asarray(fold_groups)
        weights[fold_groups[safe] == fold_groups[:, None]] = 0
    total = weights.sum(axis=1, keepdims=True)
    weights /= np.maximum(total, 1e-12)
    out = np.empty(pred_probs.shape, dtype=np.float32)
    for start in range(0, len(idx), batch):  # (batch, k, K) at a time, not (N, k, K)
        rows = slice(start, start + batch)
        out[rows] = np.einsum("nk,nkc->nc", weights[rows], pred_probs[safe[rows]])
    return np.where(total > 0, out, pred_probs).astype(np.float32)
