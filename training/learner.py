"""The fastai Learner: vision_learner(resnet), lr_find, fine_tune with discriminative rates.

Transfer learning (the default): ``fine_tune`` trains the new head for ``freeze_epochs`` with
the body frozen at ``lr``, then unfreezes and trains ``epochs`` more with discriminative learning
rates: fastai halves the rate on unfreezing, ``slice(lr / 200, lr / 2)``, so early layers move 100x
slower than the head. With ``freeze_epochs`` 0 the body is unfrozen at once, at ``slice(lr / 100,
lr)``. From scratch
(``pretrained=False`` and no ``weights`` file) there is nothing to protect, so all layers
train at ``lr`` for ``freeze_epochs + epochs`` one-cycle epochs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torchvision
from fastai.callback.core import Callback
from fastai.vision.all import Learner, accuracy, add_head, default_split, get_c, vision_learner

from labeler_training import backbones
from labeler_training.device import pick_device  # noqa: F401  (re-exported)
from labeler_training.errors import TrainingError, load_problem
from labeler_training.plots import pyplot
from labeler_training.presets import (  # noqa: F401  (re-exported: callers import them from here too)
    ARCHS,
    PACKAGED_WEIGHTS,
    PRESETS,
    SCRATCH,
    TrainConfig,
    make_config,
    preset_values,
)


def check_weights(config: TrainConfig) -> None:
    """Before any other work: the ImageNet weights ``config`` starts from can be had (downloaded now, or already in
    torchvision's cache), else a TrainingError naming the fixes. Nothing to check with ``--weights`` or from
    scratch."""
    if not config.pretrained or config.weights or config.arch in PACKAGED_WEIGHTS:
        return
    weights = torchvision.models.get_model_weights(config.arch).DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if cached.exists():
        return
    try:
        weights.get_state_dict(progress=True)  # what fastai would download at the first fold: fetched now, cached
    except Exception as exc:  # urllib's URLError, an SSL or HTTP error, a half-written file: all mean "not here"
        raise TrainingError(
            f"cannot get the ImageNet weights of {config.arch} ({weights.url}): {exc}. Fixes: copy that file to "
            f"{cached} (torchvision reads it from there), or pass --weights FILE (a torchvision {config.arch} "
            "state_dict), or train from scratch with --no-pretrained (on a laptop: --preset cpu --no-pretrained)"
        ) from None


class LossHistory(Callback):
    """Training loss per batch and validation loss per epoch, across every fit of the learner."""

    order = 60

    def __init__(self):
        self.train, self.valid = [], []

    def after_batch(self):
        if self.training:
            self.train.append(float(self.learn.loss.detach()))

    def after_epoch(self):
        names, log = list(self.learn.recorder.metric_names), self.learn.recorder.log
        if "valid_loss" in names and len(log) == len(names) and log[names.index("valid_loss")] is not None:
            self.valid.append((len(self.train), float(log[names.index("valid_loss")])))


def build_learner(dls, config: TrainConfig):
    """vision_learner for ``config.arch``; with ``config.weights``, body weights from a torchvision state_dict."""
    pretrained = config.pretrained and config.weights is None
    if config.arch in PACKAGED_WEIGHTS:  # what vision_learner does, with a body it cannot cut or size itself
        model = add_head(backbones.Lite0Body(pretrained), backbones.Lite0Body.features, get_c(dls))
        learn = Learner(dls, model, splitter=default_split, metrics=accuracy, cbs=LossHistory())
        if pretrained:
            learn.freeze()
    else:
        arch = getattr(torchvision.models, config.arch)
        learn = vision_learner(dls, arch, pretrained=pretrained, normalize=False, metrics=accuracy, cbs=LossHistory())
    if config.weights:
        load_body_weights(learn.model, config.arch, config.weights)
        learn.freeze()  # as with downloaded weights: lr_find and the first epochs train the head only
    if pick_device(config.device).type == "cuda":
        learn = learn.to_fp16()
    if not sys.stdout.isatty():  # in logs and CI: one plain line per epoch instead of redrawn bars
        from fastai.callback.progress import ProgressCallback

        learn.remove_cb(ProgressCallback)
        learn.logger = _epoch_line(learn)
    return learn


def _epoch_line(learn):
    def log(values):
        names = list(learn.recorder.metric_names)[: len(values)]
        if names and names[0] == "epoch":
            shown = ", ".join(
                f"{n} {v:.4f}" if isinstance(v, float) else f"{n} {v}" for n, v in zip(names[1:], values[1:])
            )
            print(f"  epoch {int(values[0]) + 1}: {shown}", flush=True)

    return log


def load_body_weights(model, arch: str, path: str | Path) -> None:
    """Copy a torchvision ``arch`` state_dict file into the body (model[0]) of a fastai model."""
    model[0].load_state_dict(body_weights(arch, path))


def body_weights(arch: str, path: str | Path) -> dict:
    """The body part of a torchvision ``arch`` state_dict file, checked; clear errors when it does not fit."""
    path = Path(path)
    if arch in PACKAGED_WEIGHTS:
        raise TrainingError(f"--weights is for the ResNets; {arch} starts from the ImageNet weights it installs with")
    if not path.is_file():
        raise TrainingError(f"--weights {path}: no such file (a torchvision {arch} state_dict saved with torch.save)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise TrainingError(
            f"--weights {path}: cannot be read as a state_dict: {load_problem(exc)} (a torchvision {arch} "
            "state_dict saved with torch.save)"
        ) from None
    reference = getattr(torchvision.models, arch)(weights=None)
    try:
        reference.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise TrainingError(f"--weights {path} does not fit torchvision's {arch}: {str(exc)[:300]}") from exc
    return torch.nn.Sequential(*list(reference.children())[:-2]).state_dict()


def find_lr(learn, iters: int, plot: Path | None = None) -> float:
    """Run lr_find; return its 'valley' suggestion and save the plot to ``plot``."""

    plt = pyplot()

    suggestion = learn.lr_find(num_it=iters, show_plot=plot is not None)
    if plot is not None:
        plt.savefig(plot, dpi=90, bbox_inches="tight")
        plt.close("all")
    return float(suggestion.valley)


def fit(learn, config: TrainConfig, lr: float) -> None:
    """fine_tune with discriminative rates, or plain one-cycle training from scratch; out of memory: a hint."""
    try:
        _fit(learn, config, lr)
    except torch.OutOfMemoryError as exc:
        raise TrainingError(
            f"out of memory at --bs {config.bs} ({config.arch}, {config.size} px); try --bs {max(1, config.bs // 2)}"
            " or a smaller --size; finished folds are kept, continue with --resume"
        ) from exc


def _fit(learn, config: TrainConfig, lr: float) -> None:
    from_scratch = not config.pretrained and config.weights is None
    if from_scratch:
        learn.unfreeze()
        learn.fit_one_cycle(config.freeze_epochs + config.epochs, lr)
    elif config.freeze_epochs == 0:
        learn.unfreeze()
        learn.fit_one_cycle(config.epochs, slice(lr / 100, lr))
    else:
        learn.fine_tune(
            config.epochs, base_lr=lr, freeze_epochs=config.freeze_epochs
        )  # fastai halves the rate on unfreezing: slice(lr/200, lr/2)


def plot_losses(history: LossHistory, path: Path, title: str = "") -> None:
    """Training loss per batch and validation loss per epoch, as a PNG."""

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(1, len(history.train) + 1), history.train, label="train (per batch)", alpha=0.7)
    if history.valid:
        steps, losses = zip(*history.valid)
        ax.plot(steps, losses, "o-", label="valid (per epoch)")
    ax.set(xlabel="batch", ylabel="loss", title=title)
    ax.legend()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
