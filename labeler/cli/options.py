"""Option groups shared by several `labeler` commands (click only)."""

from __future__ import annotations

import click

from labeler.bench.noise import KINDS
from labeler_training.presets import PRESETS, per_preset

POSITIVE = click.IntRange(1)  # sizes and counts: a 0 or a negative value is refused before any work
SHARE = click.FloatRange(0, 1, max_open=True)  # a share of the images, in [0, 1)


GROUP_BY = click.option(  # train and retrain
    "--group-by",
    default=None,
    metavar="auto|folder|hash|none|column:NAME",
    help="Keep these groups in one fold [auto: DeepFashion's item folder, else near-identical pixels].",
)


class CommaList(click.ParamType):
    """A comma-separated list ("0.05,0.10"), each item converted and checked by ``item`` (a click type)
    when the command line is parsed, so a bad value is refused before any work."""

    name = "list"

    def __init__(self, item: click.ParamType):
        self.item = item

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        parts = [p.strip() for p in str(value).split(",")]
        if not all(parts):
            self.fail(f"{value!r} has an empty item; give comma-separated values", param, ctx)
        return [self.item.convert(p, param, ctx) for p in parts]


class PairList(click.ParamType):
    """Class pairs "a:b,c:d" -> [("a", "b"), ("c", "d")], checked when the command line is parsed."""

    name = "pairs"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        pairs = []
        for part in str(value).split(","):
            a, sep, b = part.partition(":")
            if not sep or not a.strip() or not b.strip():
                self.fail(f"{part.strip()!r} is not a pair of classes; write them as a:b,c:d", param, ctx)
            pairs.append((a.strip(), b.strip()))
        return pairs


class Credentials(click.ParamType):
    """A login "USER:PASS" -> (user, password), checked when the command line is parsed."""

    name = "user:pass"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        user, _, password = str(value).partition(":")
        if not user or not password:
            self.fail("must be USER:PASS, both parts non-empty", param, ctx)
        return user, password


def train_options(func):
    """Options shared by `train` , `retrain` and the training benchmarks; None means: the preset's value."""
    options = [
        click.option(
            "--preset",
            type=click.Choice(list(PRESETS)),
            help="gpu: ResNet34 at 224 px (default); cpu: ResNet18 at 96 px; demo: ResNet18 at 64 px, 3 folds.",
        ),
        click.option(
            "--arch",
            help="torchvision resnet18|34|50|101|152 (ImageNet weights downloaded), or efficientnet_lite0 (ImageNet "
            f"weights installed with labeler: pretrained offline) [{per_preset('arch')}].",
        ),
        click.option("--size", type=POSITIVE, help=f"Training image size [{per_preset('size')}]."),
        click.option("--presize", type=POSITIVE, help="Resize before batch augmentation [size x 460/224]."),
        click.option(
            "--epochs",
            type=click.IntRange(0),
            help=f"Epochs after unfreezing [{per_preset('epochs')}; cpu --no-pretrained 8].",
        ),
        click.option(
            "--freeze-epochs",
            type=click.IntRange(0),
            help=f"Epochs training the head only [{per_preset('freeze_epochs')}; cpu --no-pretrained 0].",
        ),
        click.option(
            "--lr",
            type=click.FloatRange(0, min_open=True),
            help="Learning rate [lr_find's suggestion; 2e-3 for demo and cpu --no-pretrained].",
        ),
        click.option("--bs", type=POSITIVE, help=f"Batch size [{per_preset('bs')}]; lower it if memory runs out."),
        click.option("--folds", type=click.IntRange(0), help=f"Cross-validation folds [{per_preset('folds')}]."),
        click.option("--pretrained/--no-pretrained", default=None, help="Start from ImageNet weights [pretrained]."),
        click.option(
            "--weights", type=click.Path(), help="torchvision state_dict file to start from (offline machines)."
        ),
        click.option("--device", help="auto|cpu|cuda|cuda:N|mps [auto]."),
        click.option("--seed", type=int, help="Seed of folds and training [42]."),
        click.option("--workers", type=click.IntRange(0), help="DataLoader worker processes [min(4, cores)]."),
        click.option("--verify-images/--no-verify-images", default=None, help="Check images before training [verify]."),
        click.option(
            "--frozen-view/--no-frozen-view",
            default=None,
            help="Also embed every image with a frozen ImageNet network (EfficientNet-Lite0, offline, cached): "
            "flag's label-free view [on].",
        ),
        click.option(
            "--tta",
            type=click.IntRange(0),
            help="Test-time augmentation: augmented passes averaged into the out-of-fold and test "
            "predictions [0: none].",
        ),
        click.option(
            "--crop",
            type=click.Choice(["bbox"]),
            help="Train and predict on each image's garment box (DeepFashion's list_bbox.txt or x_1,y_1,x_2,y_2 "
            "CSV columns) [whole images].",
        ),
        click.option(
            "--crop-margin",
            type=click.FloatRange(0, 1),
            help="With --crop bbox: keep this share of the box around it [0.1].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def noise_options(func):
    """The planted-noise options of `bench noise` and `bench loop`."""
    options = [
        click.option(
            "--noise",
            "rate",
            default=0.15,
            show_default=True,
            type=SHARE,
            help="Share of (eligible) train/valid labels to flip.",
        ),
        click.option(
            "--kind",
            default="pairs",
            show_default=True,
            type=click.Choice(KINDS),
            help="How flips are planted; real: none, the source's own labels are measured against --truth.",
        ),
        click.option(
            "--pairs",
            type=PairList(),
            help="Confusable classes for --kind pairs, e.g. 'dress:skirt,pants:shorts' [known pairs].",
        ),
        click.option(
            "--truth",
            type=click.Path(exists=True, dir_okay=False),
            help="CSV image,true_label: start from clean labels (with --kind real: the answer key).",
        ),
        click.option("--noise-seed", default=0, show_default=True, help="Seed of the planted flips."),
    ]
    for option in reversed(options):
        func = option(func)
    return func
