"""Confirm near-duplicate candidates by their pixels (perceptual hashes, the ImageHash library).

faiss finds pairs that a model embeds close together; a weak model also embeds merely similar
images (two red skirts) that close. A candidate pair is confirmed as a near-duplicate only when
the images' perceptual hashes (pHash, 64 bits) differ in at most ``MAX_BITS`` bits: resized,
recompressed, slightly shifted or re-exposed copies stay within it, different photos do not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

MAX_BITS = 10


def pixel_match(files: Sequence[str], max_bits: int = MAX_BITS) -> Callable[[int, int], bool]:
    """A ``same(i, j)`` test on rows of ``files``; hashes are computed on first use and cached."""
    import imagehash
    from PIL import Image

    cache: dict[int, object] = {}

    def digest(i: int):
        if i not in cache:
            try:
                with Image.open(files[i]) as img:
                    cache[i] = imagehash.phash(img)
            except OSError:
                cache[i] = None  # unreadable now: never a confirmed duplicate
        return cache[i]

    def same(i: int, j: int) -> bool:
        a, b = digest(i), digest(j)
        return a is not None and b is not None and a - b <= max_bits

    return same
