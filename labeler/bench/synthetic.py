"""Synthetic DeepFashion-shaped annotation sets, in the exact on-disk format of the real benchmark (for the
scale benchmarks and tests)."""

from __future__ import annotations

import random
from pathlib import Path

# DeepFashion's list_category_cloth.txt, in file order: (name, type); ids are 1-based positions.
_TYPES = {
    1: "Anorak Blazer Blouse Bomber Button-Down Cardigan Flannel Halter Henley Hoodie Jacket Jersey Parka "
    "Peacoat Poncho Sweater Tank Tee Top Turtleneck",
    2: "Capris Chinos Culottes Cutoffs Gauchos Jeans Jeggings Jodhpurs Joggers Leggings Sarong Shorts Skirt "
    "Sweatpants Sweatshorts Trunks",
    3: "Caftan Cape Coat Coverup Dress Jumpsuit Kaftan Kimono Nightdress Onesie Robe Romper Shirtdress Sundress",
}
DEEPFASHION_CATEGORIES = [(name, kind) for kind, names in _TYPES.items() for name in names.split()]  # noqa: SIM905
DEEPFASHION_EMPTY = ("Cape", "Nightdress", "Shirtdress", "Sundress")


def write_deepfashion(
    folder: str | Path,
    entries: list[tuple[str, int, str, tuple[int, int, int, int] | None]],
    *,
    anno: str = "Anno_coarse",
    newline: str = "\n",
) -> Path:
    """Write DeepFashion annotation files for ``entries`` = (image_name, category_id, split, bbox or None).

    Columns are padded exactly as in the real files (the label of list_category_img.txt starts
    at column 71); no images are written.
    """
    folder = Path(folder)
    (folder / anno).mkdir(parents=True, exist_ok=True)
    (folder / "Eval").mkdir(parents=True, exist_ok=True)

    def write(path: Path, header: str, lines: list[str]) -> None:
        path.write_text(newline.join([str(len(lines)), header, *lines]) + newline, encoding="utf-8", newline="")

    write(
        folder / anno / "list_category_cloth.txt",
        "category_name  category_type",
        [f"{name:<23}{kind}" for name, kind in DEEPFASHION_CATEGORIES],
    )
    write(
        folder / anno / "list_category_img.txt", "image_name  category_label", [f"{p:<70}{c}" for p, c, _, _ in entries]
    )
    write(
        folder / "Eval" / "list_eval_partition.txt",
        "image_name  evaluation_status",
        [f"{p:<70}{s}" for p, _, s, _ in entries],
    )
    boxes = [(p, b) for p, _, _, b in entries if b is not None]
    if boxes:
        write(
            folder / anno / "list_bbox.txt",
            "image_name  x_1  y_1  x_2  y_2",
            [f"{p:<70}{b[0]:03d} {b[1]:03d} {b[2]:03d} {b[3]:03d}" for p, b in boxes],
        )
    return folder


def synthetic_deepfashion(folder: str | Path, rows: int = 289_222, classes: int = 46, seed: int = 0) -> Path:
    """A DeepFashion-shaped annotation set: ``rows`` images over ``classes`` non-empty categories, skewed."""
    rng = random.Random(seed)
    usable = [i + 1 for i, (name, _) in enumerate(DEEPFASHION_CATEGORIES) if name not in DEEPFASHION_EMPTY]
    usable = usable[:classes]
    weights = [1.0 / (rank + 1) for rank in range(len(usable))]  # Zipf-like, as in the real data
    cats = rng.choices(usable, weights, k=rows)
    entries = []
    for i, cat in enumerate(cats):
        name = DEEPFASHION_CATEGORIES[cat - 1][0]
        path = f"img/Item_{i // 6:06d},_&_Co's_{name}/img_{i % 6 + 1:08d}.jpg"
        split = "train" if i % 29 < 21 else "val" if i % 29 < 25 else "test"
        entries.append((path, cat, split, (72, 79, 232, 273)))
    return write_deepfashion(folder, entries)
