"""Near-identical images by their pixels (perceptual hashes, the ImageHash library).

faiss finds pairs that a model embeds close together; a weak model also embeds merely similar
images (two red skirts) that close. A pair is near-identical only when the images' perceptual
hashes (pHash, 64 bits) differ in at most ``MAX_BITS`` bits.

Measured on clothing-small (3,781 photos of garments on plain backgrounds; all pairs): pHash
distances of 0 / 4 / 6 / 8 / 10 bits between 1 / 4 / 38 / 147 / 603 pairs; the pair at 0 is one
photo filed twice, every pair looked at from 4 bits up shows two different garments (two
dresses, two pairs of pants, a sweater and a hat). Copies of 60 of those photos resized to half,
re-saved as JPEG quality 60, or brightened 15% differ by 0-2 bits (brightened: at most 4);
cropped or shifted copies by 6-14 bits, so crops are not caught by pixels (the embedding
radius of ``neighbors.duplicate_groups`` still proposes them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

MAX_BITS = 2
_BLOCKS = ((0, 13), (13, 26), (26, 39), (39, 52), (52, 64))  # any two hashes within 4 bits share a block


def pixel_match(files: Sequence[str], max_bits: int = MAX_BITS) -> Callable[[int, int], bool]:
    """A ``same(i, j)`` test on rows of ``files``; hashes are computed on first use and cached."""
    cache: dict[int, int | None] = {}

    def digest(i: int):
        if i not in cache:
            cache[i] = phash(files[i])
        return cache[i]

    def same(i: int, j: int) -> bool:
        a, b = digest(i), digest(j)
        return a is not None and b is not None and (a ^ b).bit_count() <= max_bits

    return same


def phash(file: str) -> int | None:
    """The 64-bit pHash of an image file as an int; None when it cannot be read."""
    import imagehash
    from PIL import Image

    try:
        with Image.open(file) as img:
            bits = imagehash.phash(img).hash.flatten()
    except (OSError, ValueError):
        return None
    return int("".join("1" if b else "0" for b in bits), 2)


def hash_groups(hashes: Sequence[int | None], max_bits: int = MAX_BITS) -> np.ndarray:
    """Connected groups of near-identical hashes (distance <= ``max_bits`` <= 4): a group id per row.

    Candidates come from exact matches of 13-bit blocks (two hashes within 4 bits agree on at least
    one of the five blocks), so this stays near-linear on DeepFashion-sized sets."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if max_bits > len(_BLOCKS) - 1:
        raise ValueError(f"max_bits {max_bits} > {len(_BLOCKS) - 1}: block candidates would miss pairs")
    n = len(hashes)
    known = [i for i, h in enumerate(hashes) if h is not None]
    pairs: set[tuple[int, int]] = set()
    for lo, hi in _BLOCKS:
        buckets: dict[int, list[int]] = {}
        for i in known:
            buckets.setdefault((hashes[i] >> lo) & ((1 << (hi - lo)) - 1), []).append(i)
        for members in buckets.values():
            for a in range(len(members)):
                for b in range(a + 1, len(members)):
                    i, j = members[a], members[b]
                    if (hashes[i] ^ hashes[j]).bit_count() <= max_bits:
                        pairs.add((i, j))
    rows = np.array([p[0] for p in pairs], dtype=np.int64)
    cols = np.array([p[1] for p in pairs], dtype=np.int64)
    graph = coo_matrix((np.ones(len(pairs)), (rows, cols)), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)
