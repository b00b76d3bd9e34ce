"""Classify images with an exported model, using torch, torchvision and PIL only (no fastai).

``Predictor(model_dir)`` reads what ``labeler_training.export.export_model`` wrote: ``model.pth`` (a
plain state_dict), ``vocab.json`` and ``preprocess.json``. The model is rebuilt with the same
layout fastai's ``vision_learner`` uses (torchvision body + concat-pool head), and images go
through the same steps as fastai's validation pipeline: centre crop to a square, resize to
``presize`` (bilinear), scale to [0, 1], resample to ``size`` with fastai's grid-sample resize,
normalise with ``mean``/``std``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from labeler_training import backbones
from labeler_training.files import HIGH_DEPTH_MODES

PRESIZE_RATIO = 460 / 224  # fastai's presizing recipe: resize to 460, augment down to 224


def default_presize(size: int) -> int:
    """The presize that goes with ``size`` (460 for 224; scaled with it)."""
    return int(round(size * PRESIZE_RATIO))


class ConcatPool(nn.Module):
    """Adaptive max pool and average pool, concatenated (fastai's AdaptiveConcatPool2d)."""

    def forward(self, x):
        return torch.cat([F.adaptive_max_pool2d(x, 1), F.adaptive_avg_pool2d(x, 1)], dim=1)


def build_model(arch: str, n_classes: int) -> nn.Sequential:
    """An ``arch`` body (``labeler_training.backbones``) with fastai's default head; state_dict keys match fastai's model."""
    body, features = backbones.body(arch)
    head = nn.Sequential(
        ConcatPool(),
        nn.Flatten(),
        nn.BatchNorm1d(2 * features),
        nn.Dropout(0.25),
        nn.Linear(2 * features, 512, bias=False),
        nn.ReLU(inplace=True),
        nn.BatchNorm1d(512),
        nn.Dropout(0.5),
        nn.Linear(512, n_classes, bias=False),
    )
    return nn.Sequential(body, head)


def load_square(path: str | Path, presize: int) -> torch.Tensor:
    """Centre-crop the largest square and resize it to ``presize`` (fastai's Resize on validation)."""
    with Image.open(path) as img:
        if img.mode in HIGH_DEPTH_MODES:
            raise ValueError(f"16-bit or floating-point image (mode {img.mode}); convert it to 8-bit RGB")
        img = img.convert("RGB")
        w, h = img.size
        side = min(w, h)
        left, top = int(0.5 * (w - side)), int(0.5 * (h - side))
        img = img.crop((left, top, left + side, top + side)).resize((presize, presize), Image.BILINEAR)
        array = np.asarray(img, dtype=np.uint8).copy()
    return torch.from_numpy(array).permute(2, 0, 1)


def resize_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    """fastai's validation resize of a float batch: identity affine grid + grid_sample (area pre-shrink)."""
    n = x.shape[0]
    theta = torch.eye(3, device=x.device)[:2].unsqueeze(0).expand(n, 2, 3)
    coords = F.affine_grid(theta, [n, x.shape[1], size, size], align_corners=True)
    zoom = 2 / (coords.max() - coords.min()).item()
    shrink = min(x.shape[-2] / size, x.shape[-1] / size) / 2
    if shrink > 1 and shrink > zoom:
        x = F.interpolate(x, scale_factor=1 / shrink, mode="area", recompute_scale_factor=True)
    return F.grid_sample(x, coords, mode="bilinear", padding_mode="reflection", align_corners=True)


class Predictor:
    """Top-k classes, probabilities and embeddings for image files, from an exported model folder."""

    def __init__(self, model_dir: str | Path, device: str = "cpu"):
        model_dir = Path(model_dir)
        vocab = json.loads((model_dir / "vocab.json").read_text())
        preprocess = json.loads((model_dir / "preprocess.json").read_text())
        self._setup(model_dir / "model.pth", vocab, preprocess, device)

    @classmethod
    def from_weights(cls, weights: str | Path, vocab: list[str], preprocess: dict, device: str = "cpu") -> Predictor:
        """A Predictor straight from a training checkpoint (a state_dict of the fastai model)."""
        predictor = cls.__new__(cls)
        predictor._setup(Path(weights), list(vocab), dict(preprocess), device)
        return predictor

    def _setup(self, weights: Path, vocab: list[str], preprocess: dict, device: str) -> None:
        self.vocab, self.preprocess = vocab, preprocess
        from labeler_training.device import pick_device

        self.device = pick_device(device)  # "auto", "cpu", "cuda", ...: checked as train checks it
        self.model = build_model(preprocess["arch"], len(vocab))
        self.model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.model.eval().to(self.device)

    def _batches(self, paths: list, bs: int):
        p = self.preprocess
        mean = torch.tensor(p["mean"], device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(p["std"], device=self.device).view(1, 3, 1, 1)
        for start in range(0, len(paths), bs):
            x = torch.stack([load_square(path, p["presize"]) for path in paths[start : start + bs]])
            x = x.to(self.device).float() / 255
            yield (resize_batch(x, p["size"]) - mean) / std

    @torch.no_grad()
    def predict_proba(self, paths: list, bs: int = 64) -> np.ndarray:
        """(N, K) float32 softmax probabilities, columns in ``self.vocab`` order."""
        out = [F.softmax(self.model(x).float(), dim=1).cpu() for x in self._batches(list(paths), bs)]
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.vocab)), np.float32)

    @torch.no_grad()
    def embed(self, paths: list, bs: int = 64) -> np.ndarray:
        """(N, 512) float32 L2-normalised embeddings (input of the final linear layer)."""
        features: list = []
        hook = self.model[-1][-1].register_forward_pre_hook(lambda m, inp: features.append(inp[0].float().cpu()))
        try:
            for x in self._batches(list(paths), bs):
                self.model(x)
        finally:
            hook.remove()
        return F.normalize(torch.cat(features), dim=1).numpy() if features else np.zeros((0, 512), np.float32)

    def predict(self, paths: list, k: int = 5, bs: int = 64) -> list[list[tuple[str, float]]]:
        """For each image, its ``k`` most probable classes as (name, probability), best first."""
        probs = self.predict_proba(paths, bs)
        top = np.argsort(-probs, axis=1)[:, :k]
        return [[(self.vocab[j], float(row[j])) for j in order] for row, order in zip(probs, top)]
