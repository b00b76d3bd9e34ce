"""fastai DataLoaders from a plain table, with presizing and a pinned class vocabulary.

Presizing: every image is first resized (cropped to a square from the centre on validation,
at a random position on training) to ``presize`` on the CPU, then batch augmentation
(``aug_transforms(size=size, min_scale=0.75)``: random-resized crops of at least 75%) warps, flips, lights and resizes to ``size`` on the device,
then ImageNet normalisation. ``CategoryBlock(vocab=...)`` pins the class order so every
fold and round has the same pred_probs columns, even when a class is missing from a fold.
When the table has ``box_x1, box_y1, box_x2, box_y2`` columns (`train --crop bbox`), each image
is first cropped to its box grown by ``crop_margin`` (rows with -1 keep the whole image), for
training and for every prediction made through these DataLoaders (``test_dl``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastai.vision.all import (
    CategoryBlock,
    ColReader,
    DataBlock,
    ImageBlock,
    IndexSplitter,
    Normalize,
    Resize,
    aug_transforms,
    imagenet_stats,
)

from labeler_training.crop import grown
from labeler_training.predict import default_presize

BOX_COLUMNS = ("box_x1", "box_y1", "box_x2", "box_y2")


class BoxCrop:
    """get_x for a table with box columns: the image cropped to its box (+ margin), as a PIL image."""

    def __init__(self, root: str | Path, margin: float = 0.1):
        self.root, self.margin = Path(root), margin

    def __call__(self, row):
        """An RGB uint8 array (fastai's PILImage.create takes arrays; a PIL image it would not copy)."""
        from PIL import Image

        with Image.open(self.root / row["file"]) as img:
            img = img.convert("RGB")
        box = [int(row[c]) for c in BOX_COLUMNS]
        if box[0] >= 0:
            img = img.crop(grown(box, img.size, self.margin))
        return np.asarray(img)


def make_dataloaders(
    frame,
    root: str | Path,
    vocab: list[str],
    *,
    valid_idx,
    size: int = 224,
    presize: int | None = None,
    bs: int = 64,
    workers: int = 0,
    device=None,
    seed: int | None = None,
    crop_margin: float = 0.1,
):
    """DataLoaders over ``frame`` (columns ``file``, ``label``; optional box columns) with rows ``valid_idx`` as
    validation."""
    boxed = all(c in frame.columns for c in BOX_COLUMNS)
    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock(vocab=list(vocab))),
        get_x=BoxCrop(root, crop_margin) if boxed else ColReader("file", pref=f"{Path(root)}/"),
        get_y=ColReader("label"),
        splitter=IndexSplitter(list(valid_idx)),
        item_tfms=Resize(presize or default_presize(size)),
        batch_tfms=[*aug_transforms(size=size, min_scale=0.75), Normalize.from_stats(*imagenet_stats)],
    )
    dls = block.dataloaders(frame, bs=bs, num_workers=workers, device=device, seed=seed)
    if list(dls.vocab) != list(vocab):
        raise ValueError(f"DataLoaders vocab {list(dls.vocab)} differs from the pinned vocab {list(vocab)}")
    return dls
