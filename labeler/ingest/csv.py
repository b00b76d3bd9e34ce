"""Reader for a labels CSV: ``image,label[,split]`` with configurable column names.

Covers fastai's ``train_labels.csv`` (``image_name,category_name``) and its ``is_valid``
flavour. Paths are relative to ``root`` (default: the CSV's folder). Accepts LF, CRLF and
CR line ends, UTF-8 with or without a BOM, and quoted fields.
"""

from __future__ import annotations

import io
from pathlib import Path

from labeler.errors import InputError
from labeler.ingest.table import RawTable, make_frame

IMAGE_COLUMNS = ("image", "image_name", "path", "file", "filename", "image_path", "fname")
LABEL_COLUMNS = ("label", "category_name", "class", "category", "labels")
SPLIT_COLUMNS = ("split", "evaluation_status", "is_valid", "subset", "set")


def looks_like(source: Path) -> bool:
    return source.is_file() and source.suffix.lower() in {".csv", ".tsv", ".txt"}


def read(
    source: Path,
    *,
    root: Path | None = None,
    image_col: str | None = None,
    label_col: str | None = None,
    split_col: str | None = None,
) -> RawTable:
    """Read a labels CSV; columns are found by name (or the given names)."""
    frame = _read_frame(source)
    image_col = _column(frame, source, image_col, IMAGE_COLUMNS, "--image-col")
    label_col = _column(frame, source, label_col, LABEL_COLUMNS, "--label-col")
    split_col = _column(frame, source, split_col, SPLIT_COLUMNS, "--split-col", required=False)
    others = [c for c in frame.columns if c not in (image_col, label_col)]  # the raw split value is kept for export
    splits = frame[split_col].map(_split_value) if split_col else [""] * len(frame)
    records = [
        (row, path, path.replace("\\", "/"), label, split, {c: extra[i] for i, c in enumerate(others)}, "")
        for row, path, label, split, *extra in zip(
            range(1, len(frame) + 1), frame[image_col], frame[label_col], splits, *(frame[c] for c in others)
        )
    ]
    columns = {"image": image_col, "label": label_col, "split": split_col, "order": list(frame.columns)}
    return RawTable(make_frame(records), Path(root or source.parent), "csv", source, columns)


def _read_frame(source: Path):
    import pandas as pd

    data = source.read_bytes()
    if not data.strip():
        raise InputError(f"{source} is empty; it needs a header line (e.g. image,label) and one row per image")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{source} is not UTF-8 ({exc.reason} at byte {exc.start}); re-save it as UTF-8") from exc
    sep = "\t" if source.suffix.lower() == ".tsv" else ","
    try:
        frame = pd.read_csv(io.StringIO(text, newline=None), sep=sep, dtype=str, keep_default_na=False)
    except pd.errors.ParserError as exc:
        raise InputError(f"{source} is not a well-formed CSV: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise InputError(f"{source} has a header ({', '.join(frame.columns)}) but no rows")
    return frame


def _column(frame, source: Path, name: str | None, candidates, option: str, *, required: bool = True) -> str | None:
    if name is not None:
        if name not in frame.columns:
            raise InputError(f"{source} has no column {name!r} (columns: {', '.join(frame.columns)})")
        return name
    for candidate in candidates:
        for column in frame.columns:
            if column.lower() == candidate:
                return column
    if required:
        raise InputError(
            f"{source} has none of the columns {', '.join(candidates)} (columns: {', '.join(frame.columns)}); "
            f"name the right one with {option} NAME"
        )
    return None


def _split_value(value: str) -> str:
    """fastai's boolean ``is_valid`` column maps to valid/train; other values pass through."""
    lowered = value.strip().lower()
    if lowered in {"true", "1", "yes"}:
        return "valid"
    if lowered in {"false", "0", "no"}:
        return "train"
    return value
