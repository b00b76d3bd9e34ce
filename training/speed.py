"""Training throughput of the fastai path against a minimal plain-PyTorch loop, same settings.

Both train the same network (torchvision body + fastai's head), from scratch, on the same
images, with the same batch size, image sizes, worker count and one-cycle Adam schedule.
The plain loop does what fastai's pipeline does per batch at minimum: decode, random crop
to ``presize`` (CPU workers), then on the device a random flip + affine resample to
``size`` and ImageNet normalisation. Reported: training images per second of each.
"""

from __future__ import annotations

import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from labeler_training.learner import TrainConfig
from labeler_training.predict import build_model, default_presize

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class _Images(torch.utils.data.Dataset):
    """Decode + random square crop + resize to presize, as fastai's Resize does on training."""

    def __init__(self, files: list[str], labels: list[int], presize: int):
        self.files, self.labels, self.presize = files, labels, presize

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        with Image.open(self.files[i]) as img:
            img = img.convert("RGB")
            w, h = img.size
            side = min(w, h)
            left, top = int(random.random() * (w - side)), int(random.random() * (h - side))
            img = img.crop((left, top, left + side, top + side)).resize((self.presize, self.presize), Image.BILINEAR)
            x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
        return x, self.labels[i]


def _augment(x: torch.Tensor, size: int) -> torch.Tensor:
    """Random horizontal flip and resample to ``size`` in one grid_sample, then normalise."""
    n = x.shape[0]
    theta = torch.eye(3)[:2].unsqueeze(0).repeat(n, 1, 1)
    theta[:, 0, 0] = torch.where(torch.rand(n) < 0.5, -1.0, 1.0)
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=True)
    x = F.grid_sample(x.float() / 255, grid, mode="bilinear", padding_mode="reflection", align_corners=True)
    return (x - MEAN) / STD


def plain_torch(files: list[str], labels: list[int], n_classes: int, config: TrainConfig, lr: float) -> float:
    """Train ``config.epochs`` epochs with a plain loop; return training images per second."""
    presize = config.presize or default_presize(config.size)
    loader = torch.utils.data.DataLoader(
        _Images(files, labels, presize),
        batch_size=config.bs,
        shuffle=True,
        drop_last=True,
        num_workers=config.workers or 0,
        persistent_workers=bool(config.workers),
    )
    model = build_model(config.arch, n_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=config.epochs * len(loader))
    model.train()
    started, seen = time.perf_counter(), 0
    for _ in range(config.epochs):
        for x, y in loader:
            loss = F.cross_entropy(model(_augment(x, config.size)), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            seen += len(y)
    return seen / (time.perf_counter() - started)


def fastai(frame, root: str | Path, vocab: list[str], config: TrainConfig, lr: float) -> float:
    """Train ``config.epochs`` epochs through labeler's fastai path (from scratch); images per second."""

    from labeler_training.runs import learner_for

    valid_idx = [len(frame) - 1]  # fastai needs a validation set; one image keeps its cost negligible
    config = replace(config, workers=config.workers or 0)  # in-process loading unless asked (as before)
    learn = learner_for(frame, root, vocab, valid_idx, config, config.seed, Path(tempfile.gettempdir()))
    learn.unfreeze()
    started = time.perf_counter()
    with learn.no_logging(), learn.no_bar():
        learn.fit_one_cycle(config.epochs, lr)
    return len(learn.dls.train) * config.bs * config.epochs / (time.perf_counter() - started)
