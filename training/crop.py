"""Crop geometry shared by training (``labeler_training.data``) and the review app (``labeler.boxes``); no imports."""

from __future__ import annotations


def grown(box, size, margin: float) -> tuple[int, int, int, int]:
    """``box`` (x_1, y_1, x_2, y_2) grown by ``margin`` x its width/height on each side, clipped to the image
    (``size`` = width, height)."""
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    return (
        max(0, int(x1 - dx)),
        max(0, int(y1 - dy)),
        min(size[0], int(round(x2 + dx))),
        min(size[1], int(round(y2 + dy))),
    )
