"""Split leakage: test images that have a near-copy, or share a group, among the train/valid images.

DeepFashion's split is per image: photos of one product (one ``img/<Item>/`` folder) sit in train
and in test, with the same (right or wrong) label. A test score measured on them can be memory of
the product rather than skill, so every round also reports top-k on the *leak-free* test images.

A test image leaks when
  - it shares a group (``labeler.groups``: DeepFashion's item folder, ``--group-by``, or near-identical
    pixels) with a train/valid image, or
  - its nearest train/valid image is a near-copy: closer in embedding space than the near-duplicate
    radius (``neighbors.DUPLICATE_RADIUS`` x the median nearest-neighbour distance, cleanlab Datalab's
    rule, the one `flag` uses) and, where the files are given, within ``flag.pixels.MAX_BITS`` of pHash.
Plain data in and out; faiss through ``labeler.flag.neighbors``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeler.flag import neighbors


@dataclass
class Leaks:
    test_ids: np.ndarray  # (T,) item ids of the test images
    copy_of: np.ndarray  # (T,) item id of a train/valid near-copy, -1 if none
    copy_similarity: np.ndarray  # (T,) cosine similarity to that copy (0 where none)
    shares_group: np.ndarray  # (T,) bool: a train/valid image is in its group

    @property
    def leaky(self) -> np.ndarray:
        return (self.copy_of >= 0) | self.shares_group

    def as_arrays(self) -> dict[str, np.ndarray]:
        """The round arrays a round stores them as, by name."""
        return {
            "leak_test_ids": np.asarray(self.test_ids, dtype=np.int64),
            "leak_copy_of": np.asarray(self.copy_of, dtype=np.int64),
            "leak_shares_group": np.asarray(self.shares_group, dtype=bool),
        }

    @classmethod
    def load(cls, ws, round_id: int) -> Leaks | None:
        """A round's leaks (None when it had no test split). Reads ``as_arrays``'s names, and the one (T, 3)
        "leaks" table (test id, copy id, shares group) of rounds recorded by labeler 0.1."""
        have = ws.store.arrays(round_id)
        if "leak_test_ids" in have:
            ids, copy_of = ws.load_array(round_id, "leak_test_ids"), ws.load_array(round_id, "leak_copy_of")
            shares = ws.load_array(round_id, "leak_shares_group").astype(bool)
        elif "leaks" in have:
            rows = np.asarray(ws.load_array(round_id, "leaks"), dtype=np.int64).reshape(-1, 3)
            ids, copy_of, shares = rows[:, 0], rows[:, 1], rows[:, 2].astype(bool)
        else:
            return None
        return cls(ids, copy_of, np.zeros(len(ids), np.float32), shares)


def find_leaks(
    item_ids,
    is_test,
    embeddings,
    fold_groups=None,
    *,
    confirm=None,
    relative_radius: float = neighbors.DUPLICATE_RADIUS,
) -> Leaks:
    """Leaks of every test row. ``fold_groups``: a fold group id per row; ``confirm(i, j)``: a pixel check on rows."""
    item_ids, is_test = np.asarray(item_ids), np.asarray(is_test, dtype=bool)
    test_rows, fit_rows = np.flatnonzero(is_test), np.flatnonzero(~is_test)
    copy_of = np.full(len(test_rows), -1, dtype=np.int64)
    similarity = np.zeros(len(test_rows), dtype=np.float32)
    shares = np.zeros(len(test_rows), dtype=bool)
    if len(test_rows) == 0 or len(fit_rows) == 0:
        return Leaks(item_ids[test_rows], copy_of, similarity, shares)
    if fold_groups is not None:
        fold_groups = np.asarray(fold_groups)
        shares = np.isin(fold_groups[test_rows], fold_groups[fit_rows])
    x = np.asarray(embeddings, dtype=np.float32)
    radius = neighbors.duplicate_radius(neighbors.knn(x, k=1), relative_radius)
    index = neighbors.build_index(x[fit_rows])
    sims, nearest = index.search(np.ascontiguousarray(x[test_rows]), min(3, len(fit_rows)))
    for t, (row_sims, row_nearest) in enumerate(zip(sims, nearest)):
        for s, j in zip(row_sims, row_nearest):
            if j < 0 or 1 - s >= radius:
                break
            if confirm is None or confirm(int(test_rows[t]), int(fit_rows[j])):
                copy_of[t], similarity[t] = item_ids[fit_rows[j]], s
                break
    return Leaks(item_ids[test_rows], copy_of, similarity, shares)


def describe(leaks: Leaks, test_labels: list[str] | None = None) -> dict:
    """What `status` and the round report say: counts, and per class when the test labels are given."""
    out = {
        "test_images": int(len(leaks.test_ids)),
        "test_images_with_train_copy": int((leaks.copy_of >= 0).sum()),
        "test_images_sharing_group": int(leaks.shares_group.sum()),
        "test_images_leaky": int(leaks.leaky.sum()),
        "test_images_leak_free": int((~leaks.leaky).sum()),
    }
    if test_labels is not None:
        per_class: dict[str, int] = {}
        for label, leaky in zip(test_labels, leaks.leaky):
            per_class[label] = per_class.get(label, 0) + int(leaky)
        out["per_class"] = dict(sorted(per_class.items()))
    return out
