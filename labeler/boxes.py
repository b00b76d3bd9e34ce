"""The labelled garment's box (DeepFashion's ``list_bbox.txt``, or ``x_1,y_1,x_2,y_2`` CSV columns).

A box is four whole pixel coordinates, ``x_1 < x_2`` and ``y_1 < y_2``, left/top inclusive, inside the
image. A box that is not is ignored (the image still imports) and the reason is kept in the item's
``bbox_problem`` and counted by `labeler status`. Pure Python; PIL only to read an image's size.
"""

from __future__ import annotations

from collections import Counter

from labeler.errors import Problem
from labeler_training.crop import grown

BOX_COLUMNS = ("x_1", "y_1", "x_2", "y_2")
# Why a box is ignored: code -> what `status` counts it as (the stored text names the values).
BOX_PROBLEMS = {
    "box_not_numbers": "box is not four whole numbers",
    "box_negative": "box has a negative coordinate",
    "box_inverted": "zero-area or inverted box",
    "box_outside": "box outside the image",
}


def parse_box(extra: dict, size: tuple[int, int] | None = None) -> tuple[tuple[int, int, int, int] | None, str | None]:
    """(box, None), (None, reason) for a bad box (a ``Problem``: its ``code`` a key of BOX_PROBLEMS), or
    (None, None) when the item has no box columns."""
    values = [extra.get(c) for c in BOX_COLUMNS]
    try:
        x1, y1, x2, y2 = map(int, map(str, values))  # int() takes surrounding spaces, never "12.5" or "None"
    except ValueError:
        if all(v is None or str(v).strip() == "" for v in values):
            return None, None
        return None, Problem("box_not_numbers", f"box is not four whole numbers: {' '.join(map(str, values))}")
    if min(x1, y1, x2, y2) < 0:
        return None, Problem("box_negative", f"box has a negative coordinate: {x1} {y1} {x2} {y2}")
    if x2 <= x1 or y2 <= y1:
        return None, Problem("box_inverted", f"zero-area or inverted box: {x1} {y1} {x2} {y2}")
    if size is not None and (x2 > size[0] or y2 > size[1]):
        return None, Problem("box_outside", f"box {x1} {y1} {x2} {y2} is outside the {size[0]}x{size[1]} image")
    return (x1, y1, x2, y2), None


def item_box(extra: dict, image_path=None) -> tuple[tuple[int, int, int, int] | None, str | None]:
    """The usable box of an item: its import-time problem, else parsed and checked against the image's size."""
    if extra.get("bbox_problem"):
        return None, extra["bbox_problem"]
    if "x_1" not in extra:  # no box columns: nothing to open the image for
        return None, None
    size = None
    if image_path is not None:
        from PIL import Image

        try:
            with Image.open(image_path) as img:
                size = img.size
        except OSError:
            size = None
    return parse_box(extra, size)


def with_margin(box, size: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """``box`` grown by ``margin`` x its width/height on each side, clipped to the image (the training crop's)."""

    return grown(box, size, margin)


def summarize(extras: list[dict], paths: list[str]) -> dict:
    """What import records and `status` shows: boxes usable, ignored by reason, a few examples. ``extras`` as
    validated: a box that did not parse carries its ``bbox_problem``, so one without it and with a value
    in ``x_1`` parsed (nothing is parsed again)."""
    reasons: Counter = Counter()
    examples = []
    valid = 0
    for extra, path in zip(extras, paths):
        problem = extra.get("bbox_problem")
        if problem:  # a workspace imported before codes were kept counts its problems as "unusable box"
            reasons[BOX_PROBLEMS.get(extra.get("bbox_problem_code"), "unusable box")] += 1
            if len(examples) < 20:
                examples.append({"path": path, "reason": problem})
        elif extra.get("x_1") is not None and str(extra["x_1"]).strip():
            valid += 1
    return {"valid": valid, "ignored": dict(reasons), "examples": examples}
