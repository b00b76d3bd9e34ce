"""Which torch device to train or predict on (torch only: `labeler_training.predict` needs no fastai)."""

from __future__ import annotations

import torch

from labeler_training.errors import TrainingError


def pick_device(name: str = "auto") -> torch.device:
    """cuda, then mps, then cpu for "auto"; otherwise the named device, checked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TrainingError(f"--device {name}: not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"--device {name} asked for, but torch sees no CUDA GPU; use --device cpu (or auto)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise TrainingError(f"--device {name}: torch sees {torch.cuda.device_count()} CUDA GPU(s), numbered from 0")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise TrainingError(f"--device {name} asked for, but this machine has no Apple MPS device; use --device cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise TrainingError(f"--device {name}: labeler trains on cpu, cuda or mps")
    return device
