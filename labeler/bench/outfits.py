"""`labeler bench outfits`: a DeepFashion-layout set of outfit photos built from real garment photos.

DeepFashion's photos often show a whole outfit while the label (and ``list_bbox.txt``'s box) names one
garment. To measure `labeler train --crop bbox` on real pixels without DeepFashion itself, each photo
of a single-garment dataset (class folders or a labels CSV, e.g. clothing-small) becomes an outfit:

  upper-body label   the garment on top, a random lower-body garment of the source below it
  lower-body label   a random upper-body garment on top, the garment below
  full-body label    the garment beside a random upper-body garment (a jacket over a dress)

on a white canvas whose long side is 300 px (DeepFashion's), each garment fitted into its half with its
aspect kept. The box is the labelled garment's pasted rectangle (exact, so this checks the crop path,
not a detector). Classes map onto DeepFashion categories (``CATEGORIES``); classes with no DeepFashion
category (hats, shoes) are left out. Splits follow the source (valid -> val). One item folder per photo,
named like DeepFashion's (its last word is the category). PIL only.
"""

from __future__ import annotations

import random
from pathlib import Path

from labeler.bench.synthetic import DEEPFASHION_CATEGORIES, write_deepfashion
from labeler.errors import InputError
from labeler.ingest import read_source
from labeler.ingest.validate import SPLIT_ALIASES

# source class (lower case) -> DeepFashion category; DeepFashion's own names map to themselves
CATEGORIES = {
    "dress": "Dress",
    "longsleeve": "Top",
    "outwear": "Jacket",
    "pants": "Chinos",
    "shirt": "Button-Down",
    "shorts": "Shorts",
    "skirt": "Skirt",
    "t-shirt": "Tee",
    **{name.lower(): name for name, _ in DEEPFASHION_CATEGORIES},
}
TYPE_OF = dict(DEEPFASHION_CATEGORIES)  # category -> 1 upper, 2 lower, 3 full body
ID_OF = {name: i + 1 for i, (name, _) in enumerate(DEEPFASHION_CATEGORIES)}
LONG_SIDE = 300
SPLITS = {"train": "train", "valid": "val", "test": "test"}


def write_outfits(source, out, *, seed: int = 0, limit: int | None = None, progress: bool = True) -> dict:
    """Write the outfit set of ``source`` into ``out`` (DeepFashion layout); return counts per split and class."""
    from tqdm import tqdm

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out} exists and is not empty; give a new folder")
    rng = random.Random(seed)
    rows, root = _garments(source, rng)
    if limit is not None and limit < len(rows):
        rows = rng.sample(rows, limit)
    uppers = [r for r in rows if TYPE_OF[r[1]] == 1]
    lowers = [r for r in rows if TYPE_OF[r[1]] == 2]
    if not uppers or not lowers:
        raise InputError(f"{source} needs both upper-body and lower-body garments to build outfits")
    entries, counts = [], {}
    for n, (file, category, split) in enumerate(tqdm(rows, desc="building outfits", disable=not progress), 1):
        kind = TYPE_OF[category]
        other = rng.choice(lowers if kind == 1 else uppers)
        name = f"img/Outfit_{n:05d}_{category}/img_00000001.jpg"
        box = _compose(root / file, root / other[0], out / name, kind)
        entries.append((name, ID_OF[category], SPLITS[split], box))
        counts.setdefault(SPLITS[split], {}).setdefault(category, 0)
        counts[SPLITS[split]][category] += 1
    write_deepfashion(out, entries)
    return counts


def _garments(source, rng: random.Random) -> tuple[list[tuple[str, str, str]], Path]:
    """(file, DeepFashion category, split) of every usable photo of ``source``, and its image root. A source
    without splits gets a seeded one: 70% train, 15% valid, 15% test."""

    table = read_source(source)
    frame = table.frame
    rows = []
    for file, label, split, problem in zip(frame["file"], frame["label"], frame["split"], frame["problem"]):
        category = CATEGORIES.get(str(label).lower())
        split = SPLIT_ALIASES.get(str(split).lower()) or rng.choices(list(SPLITS), (0.70, 0.15, 0.15))[0]
        if category and split in SPLITS and not problem:
            rows.append((file, category, split))
    if not rows:
        raise InputError(f"{source} has no photos of classes with a DeepFashion category ({', '.join(CATEGORIES)})")
    return rows, Path(table.root)


def _compose(garment: Path, other: Path, dest: Path, kind: int) -> tuple[int, int, int, int]:
    """Paste ``garment`` and ``other`` into one outfit photo at ``dest``; return the garment's box."""
    from PIL import Image

    short = LONG_SIDE * 2 // 3
    vertical = kind in (1, 2)  # upper over lower; a dress beside a jacket
    size = (short, LONG_SIDE) if vertical else (LONG_SIDE, short)
    cell = (short, LONG_SIDE // 2) if vertical else (LONG_SIDE // 2, short)
    canvas = Image.new("RGB", size, "white")
    first, second = (other, garment) if kind == 2 else (garment, other)
    boxes = []
    for i, path in enumerate((first, second)):
        with Image.open(path) as img:
            img = img.convert("RGB")
            img.thumbnail(cell)
        x0 = (0 if vertical else i * cell[0]) + (cell[0] - img.width) // 2
        y0 = (i * cell[1] if vertical else 0) + (cell[1] - img.height) // 2
        canvas.paste(img, (x0, y0))
        boxes.append((x0, y0, x0 + img.width, y0 + img.height))
    dest.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(dest, quality=90)
    return boxes[1] if kind == 2 else boxes[0]
