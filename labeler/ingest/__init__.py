"""Import a dataset into a workspace: read the source, validate it, store it.

One reader per layout (``deepfashion``, ``csv``, ``folder``), each returning a RawTable;
``validate`` turns it into store records; ``import_dataset`` ties them to a workspace.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from labeler.errors import InputError
from labeler.ingest import csv, deepfashion, folder
from labeler.ingest.table import RawTable
from labeler.ingest.validate import Options, validate
from labeler.store import ImportSummary
from labeler.workspace import Workspace

FORMATS = ("deepfashion", "csv", "folder")


@dataclass
class ImportResult:
    workspace: Path
    format: str
    items: int
    quarantined: Counter
    classes: list[str]
    splits: dict[str, int]
    summary: ImportSummary
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


def detect_format(source: Path) -> str:
    """deepfashion, csv or folder, from what ``source`` looks like."""
    if not source.exists():
        raise InputError(f"{source} does not exist")
    if deepfashion.looks_like(source):
        return "deepfashion"
    if csv.looks_like(source):
        return "csv"
    if folder.looks_like(source):
        return "folder"
    raise InputError(f"cannot tell the format of {source}; pass --format deepfashion, csv or folder")


def read_source(source: str | Path, *, format: str | None = None, **csv_options) -> RawTable:
    """Read ``source`` with the reader for ``format`` (detected when None)."""
    source = Path(source)
    format = format or detect_format(source)
    if format not in FORMATS:
        raise InputError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    if not source.exists():
        raise InputError(f"{source} does not exist")
    if format == "csv":
        return csv.read(source, **csv_options)
    if any(v is not None for v in csv_options.values()):
        raise InputError(f"--root/--image-col/--label-col/--split-col apply to CSV sources, not {format}")
    return deepfashion.read(source) if format == "deepfashion" else folder.read(source)


def import_dataset(
    workspace: str | Path,
    source: str | Path,
    *,
    format: str | None = None,
    force: bool = False,
    options: Options | None = None,
    **csv_options,
) -> ImportResult:
    """Read, validate and store ``source`` in ``workspace`` (created; refused if it holds data, unless force)."""
    started = time.perf_counter()
    options = options or Options()
    Workspace.check_creatable(workspace, force=force)
    table = read_source(source, format=format, **csv_options)
    checked = validate(table, options)
    meta = {
        "format": table.format,
        "source": str(Path(source).resolve()),
        "root": str(Path(table.root).resolve()),
        "columns": table.columns,
        "split_assigned": checked.split_assigned,
        "split_options": {"valid_pct": options.valid_pct, "test_pct": options.test_pct, "seed": options.seed},
        "imported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with Workspace.create(workspace, force=force) as ws:
        summary = ws.store.import_items(checked.records, checked.classes, meta)
        splits = ws.store.split_counts()
    quarantined = checked.quarantine_counts()
    return ImportResult(
        workspace=Path(workspace),
        format=table.format,
        items=sum(splits.values()),
        quarantined=quarantined,
        classes=checked.classes,
        splits=splits,
        summary=summary,
        warnings=checked.warnings,
        seconds=time.perf_counter() - started,
    )
