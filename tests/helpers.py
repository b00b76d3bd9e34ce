"""Helpers for tests: seeded tiny images and dataset layouts written on the fly."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "clothing-small"


def make_image(path: Path, *, seed: int = 0, size: int = 16, fmt: str | None = None) -> Path:
    """Write a small seeded RGB image (JPEG or PNG by extension) and return its path."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (size, size), tuple(rng.randint(0, 255) for _ in range(3)))
    for _ in range(4):
        x, y = rng.randrange(size), rng.randrange(size)
        image.putpixel((x, y), tuple(rng.randint(0, 255) for _ in range(3)))
    image.save(path, format=fmt)
    return path


def make_class_folders(root: Path, counts: dict[str, int], *, split: str | None = None, seed: int = 0) -> Path:
    """root/[split/]class/NNN.jpg with ``counts[class]`` images each."""
    for c, (label, n) in enumerate(sorted(counts.items())):
        for i in range(n):
            base = root / split if split else root
            make_image(base / label / f"{i:03d}.jpg", seed=seed * 10_000 + c * 1000 + i)
    return root


def write_labels_csv(folder: Path, rows: list[tuple], header: str = "image,label,split", **image_options) -> Path:
    """Write images for ``rows`` (path, label[, split]) under ``folder`` and a labels.csv listing them."""
    lines = [header]
    for i, row in enumerate(rows):
        make_image(folder / row[0], seed=i, **image_options)
        lines.append(",".join(row))
    target = folder / "labels.csv"
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target
