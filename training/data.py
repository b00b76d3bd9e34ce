"""fastai DataLoaders from a plain table, with presizing and a pinned class vocabulary.

Presizing: every image is first resized (cropped to a square from the centre on validation,
at a random position on training) to ``presize`` on the CPU, then batch augmentation
(``aug_transforms(size=size, min_scale=0.75)``: random-resized crops of at least 75%) warps, flips, lights and resizes to ``size`` on the device,
then ImageNet normalisation. ``CategoryBlock(vocab=...)`` pins the class order so every
fold and round has the same pred_probs columns, even when a class is missing from a fold.
"""

from __future__ import annotations

from pathlib import Path

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

from training.predict import default_presize


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
):
    """DataLoaders over ``frame`` (columns ``file``, ``label``) with rows ``valid_idx`` as validation."""
    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock(vocab=list(vocab))),
        get_x=ColReader("file", pref=f"{Path(root)}/"),
        get_y=ColReader("label"),
        splitter=IndexSplitter(list(valid_idx)),
        item_tfms=Resize(presize or default_presize(size)),
        batch_tfms=[*aug_transforms(size=size, min_scale=0.75), Normalize.from_stats(*imagenet_stats)],
    )
    dls = block.dataloaders(frame, bs=bs, num_workers=workers, device=device, seed=seed)
    if list(dls.vocab) != list(vocab):
        raise ValueError(f"DataLoaders vocab {list(dls.vocab)} differs from the pinned vocab {list(vocab)}")
    return dls
