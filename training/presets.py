"""The training options and presets (no torch: the CLI reads them for its help and checks)."""

from __future__ import annotations

from dataclasses import dataclass

from labeler_training.errors import TrainingError

LITE0 = "efficientnet_lite0"  # the network whose ImageNet weights install with labeler (backbones, frozen)
ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", LITE0)
PACKAGED_WEIGHTS = (LITE0,)  # ImageNet weights installed with the package: nothing to download


@dataclass
class TrainConfig:
    """Options of one training run; ``preset`` fills what is not given."""

    arch: str = "resnet34"
    size: int = 224
    presize: int | None = None
    epochs: int = 3
    freeze_epochs: int = 1
    lr: float | None = None
    bs: int = 64
    folds: int = 5
    pretrained: bool = True
    weights: str | None = None
    device: str = "auto"
    seed: int = 42
    workers: int | None = None
    lr_find_iters: int = 100
    verify_images: bool = True
    tta: int = 0  # augmented passes averaged into the held-out and test predictions (0: none)
    crop: str | None = None  # "bbox": train and predict on each image's garment box (+ crop_margin)
    crop_margin: float = 0.1
    frozen_view: bool = (
        True  # also embed every image with a frozen ImageNet network (labeler_training.frozen), for flag
    )


# The GPU recipe is the default; the CPU preset gives a useful model in minutes on a few thousand images.
PRESETS = {
    "gpu": {},
    "cpu": {"arch": "resnet18", "size": 96, "epochs": 3, "freeze_epochs": 1, "bs": 64, "lr_find_iters": 60},
    # the embedded demo: small drawn images, from scratch, a few minutes on two cores
    "demo": {
        "arch": "resnet18",
        "size": 64,
        "epochs": 4,
        "freeze_epochs": 0,
        "bs": 32,
        "folds": 3,
        "pretrained": False,
        "lr": 2e-3,  # from scratch on drawn images lr_find wanders; 2e-3 measured well
    },
}


# From scratch (``--no-pretrained``, no ``--weights``) nothing is frozen and lr_find's suggestion is too timid;
# the cpu preset then trains longer at a fixed rate. Measured (`labeler train` on clothing-small, resnet18 at
# 96 px, 3 folds, 3,409 train+valid photos, two cores): the preset's transfer recipe from scratch (4 one-cycle
# epochs at lr_find's 5.4e-4) out-of-fold top-1 0.454, test top-1 0.409; 8 epochs at 2e-3: 0.645 and 0.669.
SCRATCH = {"cpu": {"epochs": 8, "freeze_epochs": 0, "lr": 2e-3}}


def preset_values(preset: str | None, options: dict) -> dict:
    """The options a run trains with: the preset's, its from-scratch variant (``SCRATCH``) when neither
    ImageNet weights nor a ``weights`` file are used, then every option given (None: not given)."""
    if preset is not None and preset not in PRESETS:
        raise TrainingError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    values = dict(PRESETS.get(preset or "gpu", {}))
    given = {k: v for k, v in options.items() if v is not None}
    if not given.get("pretrained", values.get("pretrained", True)) and not given.get("weights"):
        values.update(SCRATCH.get(preset or "gpu", {}))
    return {**values, **given}


def make_config(preset: str | None = None, **options) -> TrainConfig:
    """A TrainConfig from a preset plus explicit options (None means: keep the preset's value)."""
    values = preset_values(preset, options)
    config = TrainConfig(**values)
    if config.arch not in ARCHS:
        raise TrainingError(f"unknown architecture {config.arch!r}; use one of {', '.join(ARCHS)}")
    if config.epochs < 1 or config.freeze_epochs < 0:
        raise TrainingError(
            f"--epochs must be >= 1 and --freeze-epochs >= 0 (got {config.epochs}, {config.freeze_epochs})"
        )
    return config


def per_preset(option: str) -> str:
    """ "gpu 224, cpu 96, demo 64": an option's value under each preset, for help texts."""
    default = getattr(TrainConfig(), option)
    values = {name: values.get(option, default) for name, values in PRESETS.items()}
    return ", ".join(f"{name} {value}" for name, value in values.items())
