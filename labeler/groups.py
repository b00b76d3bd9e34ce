"""Groups of images that must stay together: in one cross-validation fold, out of each other's
neighbour vote, and (for leakage) on one side of the train/test line.

DeepFashion's labels come from product titles, so the photos of one product (one
``img/<Item>/`` folder) share their label, right or wrong; near-identical copies do too. If
such a group spans folds, a wrong label is "confirmed" by the model that trained on its copies.

``--group-by``: ``auto`` (DeepFashion: its item folder; other sources: pixel hash), ``folder``
(the image's folder), ``hash`` (pHash within ``flag.pixels.MAX_BITS`` bits), ``column:NAME``
(a column of the source CSV), ``none``.
"""

from __future__ import annotations

import posixpath

import numpy as np

CHOICES = ("auto", "folder", "hash", "none")


def resolve(by: str, fmt: str | None) -> str:
    """The grouping ``auto`` stands for with a source of format ``fmt``; others unchanged (checked)."""
    if by == "auto":
        return "folder" if fmt == "deepfashion" else "hash"
    if by not in CHOICES and not (by.startswith("column:") and len(by) > len("column:")):
        from labeler.errors import InputError

        raise InputError(f"--group-by {by!r}: use auto, folder, hash, none or column:NAME")
    return by


def group_ids(frame, root: str, by: str, *, extra: dict | None = None) -> np.ndarray:
    """A group id per row of ``frame`` (columns id, file), by ``by`` (already resolved)."""
    if by == "none":
        return np.arange(len(frame), dtype=np.int64)
    if by == "folder":
        keys = [posixpath.dirname(f) for f in frame["file"]]
    elif by.startswith("column:"):
        name = by.split(":", 1)[1]
        extra = extra or {}
        keys = [str((extra.get(int(i)) or {}).get(name, f"#{i}")) for i in frame["id"]]
    else:
        from tqdm import tqdm

        from labeler.flag.pixels import hash_groups, phash

        files = [posixpath.join(root, f) for f in frame["file"]]
        hashes = [phash(f) for f in tqdm(files, desc="hashing images for groups", unit="img", leave=False)]
        return hash_groups(hashes)
    _, codes = np.unique(np.asarray(keys, dtype=object), return_inverse=True)
    return codes.astype(np.int64)


def describe(groups: np.ndarray, by: str) -> dict:
    """How many groups, how many images share one, the largest: what `train` and `status` report."""
    _, counts = np.unique(groups, return_counts=True)
    return {
        "by": by,
        "groups": int(len(counts)),
        "images_sharing": int(counts[counts > 1].sum()),
        "largest": int(counts.max()) if len(counts) else 0,
    }
