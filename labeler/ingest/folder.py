"""Reader for class folders: ``split/class/*.jpg`` or ``class/*.jpg``.

A top level holding any of train/, valid/, validation/, val/, test/ is read as split folders;
otherwise every subfolder is a class. Files in a class folder (and its subfolders) with an
image extension are items; other files there are kept as quarantined items so the user
sees them; hidden files are ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

from labeler.errors import InputError, Problem
from labeler.ingest.table import IMAGE_EXTENSIONS, RawTable, make_frame

SPLIT_FOLDERS = ("train", "training", "valid", "validation", "val", "dev", "test", "testing")


def looks_like(source: Path) -> bool:
    return source.is_dir()


def read(source: Path) -> RawTable:
    """Read a folder of class folders (optionally inside split folders)."""
    if not source.is_dir():
        raise InputError(f"{source} is not a folder")
    subdirs = sorted(d.name for d in source.iterdir() if d.is_dir() and not d.name.startswith("."))
    split_dirs = [d for d in subdirs if d.lower() in SPLIT_FOLDERS]
    records: list[tuple] = []
    if split_dirs:
        for split in split_dirs:
            for label in _subdirs(source / split):
                _add_class(records, source, f"{split}/{label}", label, split)
        layout = "split/class"
    else:
        for label in subdirs:
            _add_class(records, source, label, label, "")
        layout = "class"
    if not records:
        raise InputError(f"{source} holds no class folders with images (expected class/*.jpg or train/class/*.jpg)")
    columns = {"image": "image", "label": "label", "split": "split", "layout": layout}
    return RawTable(make_frame(records), source, "folder", source, columns)


def _subdirs(folder: Path) -> list[str]:
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _add_class(records: list, root: Path, rel: str, label: str, split: str) -> None:
    for dirpath, dirnames, filenames in os.walk(root / rel):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath, name).relative_to(root).as_posix()
            ext = os.path.splitext(name)[1].lower()
            problem = (
                ""
                if ext in IMAGE_EXTENSIONS
                else Problem("not_an_image_file", f"not an image file (extension {ext or 'none'!r})")
            )
            records.append((len(records) + 1, path, path, label, split, {"split": split} if split else {}, problem))
