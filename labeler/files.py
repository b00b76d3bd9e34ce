"""Files written so that a crash never leaves a half-written one: temporary file, fsync, rename.

One implementation, in ``labeler_training.files`` (a light module: ``training`` imports nothing from
labeler, and both write their files through it)."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from labeler_training.files import atomic_open


def write_csv(
    path: str | Path,
    header: list[str],
    rows: Iterable[list],
    *,
    delimiter: str = ",",
    newline: str = "\r\n",
    bom: bool = False,
) -> None:
    """A CSV file (``header`` then ``rows``) written atomically; UTF-8, with a BOM when ``bom``."""
    with atomic_open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator=newline)
        writer.writerow(header)
        writer.writerows(rows)


__all__ = ["atomic_open", "write_csv"]
