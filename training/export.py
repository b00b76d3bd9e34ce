"""Export a trained model to plain PyTorch: ``model.pth`` + ``vocab.json`` + ``preprocess.json``.

The fold checkpoints that training writes are already plain state_dicts of the fastai model
(a torchvision body and fastai's head), so exporting needs no fastai: the weights are checked
against ``labeler_training.predict.build_model`` and written with the preprocessing that reproduces
fastai's validation pipeline (see ``labeler_training.predict``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from labeler_training.errors import TrainingError
from labeler_training.predict import build_model, default_presize

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def preprocess_spec(arch: str, size: int, presize: int | None = None) -> dict:
    """What ``labeler_training.predict`` needs to reproduce fastai's validation preprocessing."""
    presize = presize or default_presize(size)
    return {
        "arch": arch,
        "presize": presize,
        "size": size,
        "crop": "centre square, then resize to presize (bilinear), then grid-sample resize to size",
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "scale": "pixels / 255 before normalising",
    }


def export_model(
    weights: str | Path, out_dir: str | Path, *, arch: str, vocab: list[str], size: int, presize: int
) -> Path:
    """Write ``out_dir`` for ``labeler_training.predict.Predictor``; refuses a non-empty ``out_dir``."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise TrainingError(f"{out_dir} is not empty; choose a new folder for the exported model")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model = build_model(arch, len(vocab))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise TrainingError(f"{weights} does not fit {arch} with {len(vocab)} classes: {str(exc)[:300]}") from exc
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(model.state_dict(), tmp / "model.pth")
    (tmp / "vocab.json").write_text(json.dumps(list(vocab), indent=1))
    preprocess = preprocess_spec(arch, size, presize)
    (tmp / "preprocess.json").write_text(json.dumps(preprocess, indent=1))
    if out_dir.exists():
        out_dir.rmdir()
    tmp.rename(out_dir)
    return out_dir
