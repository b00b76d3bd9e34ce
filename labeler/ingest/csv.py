"""Reader for a labels CSV: ``image,label[,split]`` with configurable column names.

Covers fastai's ``train_labels.csv`` (``image_name,category_name``) and its ``is_valid``
flavour. Paths are relative to ``root`` (default: the CSV's folder). Accepts LF, CRLF and
CR line ends, UTF-8 with or without a BOM, and quoted fields.
"""

from __future__ import annotations

import csv
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
    frame, style = _read_frame(source)
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
    columns = {"image": image_col, "label": label_col, "split": split_col, "order": list(frame.columns), **style}
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
    header = text.splitlines()[0] if text.splitlines() else ""
    sep = _delimiter(header, source)
    names = [c.strip() for c in next(csv.reader([header], delimiter=sep))]
    repeated = sorted({c for c in names if names.count(c) > 1})
    if repeated:
        raise InputError(
            f"{source}: the header names the column(s) {', '.join(repeated)} more than once; "
            "rename them so that each column has one name"
        )
    try:
        frame = pd.read_csv(io.StringIO(text, newline=None), sep=sep, dtype=str, keep_default_na=False)
    except pd.errors.ParserError as exc:
        raise InputError(f"{source} is not a well-formed CSV: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise InputError(f"{source} has a header ({', '.join(frame.columns)}) but no rows")
    newline = "\r\n" if "\r\n" in text[:65536] else "\r" if "\r" in text[:65536] else "\n"
    style = {"delimiter": sep, "bom": data.startswith(b"\xef\xbb\xbf"), "newline": newline}  # export writes the same
    return frame, style


def _delimiter(header: str, source: Path) -> str:
    """The field separator: a tab for .tsv, else the one of , ; tab | that the header uses (comma first)."""
    if source.suffix.lower() == ".tsv":
        return "\t"
    counts = {sep: header.count(sep) for sep in (",", ";", "\t", "|")}
    return "," if counts[","] else max(counts, key=lambda sep: counts[sep]) if any(counts.values()) else ","


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
