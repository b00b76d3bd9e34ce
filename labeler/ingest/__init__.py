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
from labeler.store import ImportSummary, Store
from labeler.workspace import DB_NAME, Workspace

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
    if deepfashion.looks_like_without_eval(source):
        raise InputError(
            f"{source} has DeepFashion annotations but no Eval/list_eval_partition.txt; copy the Eval/ folder "
            "of the download beside Anno/ (or Anno_coarse/) and Img/"
        )
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
    if format == "csv" and source.is_dir():
        raise InputError(
            f"{source} is a folder; --format csv reads a CSV file (image,label[,split]). For class folders use "
            "--format folder, or leave --format out"
        )
    if format != "csv" and source.is_file():
        raise InputError(f"{source} is a file; --format {format} reads a folder (a CSV file: --format csv)")
    if format == "csv":
        return csv.read(source, **csv_options)
    if any(v is not None for v in csv_options.values()):
        raise InputError(f"--root/--image-col/--label-col/--split-col apply to CSV sources, not {format}")
    return deepfashion.read(source) if format == "deepfashion" else folder.read(source)


def _check_apart(workspace: Path, source: Path, format: str) -> None:
    """Refuse a source inside the workspace, or a workspace inside a source whose files are all taken in."""
    ws, src = workspace.resolve(), source.resolve()
    if src == ws or src.is_relative_to(ws):
        raise InputError(f"{source} is inside the workspace {workspace}; import from the dataset's own folder")
    if format != "csv" and ws.is_relative_to(src):
        raise InputError(
            f"the workspace {workspace} is inside the dataset folder {source}, whose files would be imported "
            "(its reports as a class); put the workspace outside the dataset"
        )


def _check_vocabulary(workspace: Path, classes: list[str], allow_new_classes: bool) -> None:
    """Refuse a re-import that changes the pinned class list, unless asked for."""

    if not (workspace / DB_NAME).exists():
        return

    with Store.open(workspace / DB_NAME, readonly=True) as store:
        old = store.classes() if store.get_meta("source") is not None else []
    if not old or old == list(classes) or allow_new_classes:
        return
    added, missing = sorted(set(classes) - set(old)), sorted(set(old) - set(classes))
    raise InputError(
        f"re-importing would change the pinned classes of {workspace} (new: {', '.join(added) or 'none'}; "
        f"no longer in the source: {', '.join(missing) or 'none'}). Every round's class order depends on them: "
        "pass --allow-new-classes to accept (earlier rounds keep their own class list), or import into a new "
        "workspace"
    )


def import_dataset(
    workspace: str | Path,
    source: str | Path,
    *,
    format: str | None = None,
    force: bool = False,
    allow_new_classes: bool = False,
    options: Options | None = None,
    **csv_options,
) -> ImportResult:
    """Read, validate and store ``source`` in ``workspace`` (created; refused if it holds data, unless force).

    A re-import that would change the pinned classes is refused unless ``allow_new_classes``."""
    started = time.perf_counter()
    options = options or Options()
    Workspace.check_creatable(workspace, force=force)
    format = format or detect_format(Path(source))
    _check_apart(Path(workspace), Path(source), format)
    table = read_source(source, format=format, **csv_options)
    checked = validate(table, options)
    _check_vocabulary(Path(workspace), checked.classes, allow_new_classes)
    meta = {
        "format": table.format,
        "source": str(Path(source).resolve()),
        "root": str(Path(table.root).resolve()),
        "columns": table.columns,
        "split_assigned": checked.split_assigned,
        "split_options": {"valid_pct": options.valid_pct, "test_pct": options.test_pct, "seed": options.seed},
        "imported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "class_types": table.class_types,
    }
    if any("x_1" in (r.extra or {}) for r in checked.records):
        from labeler.boxes import summarize

        meta["boxes"] = summarize([r.extra or {} for r in checked.records], [r.path for r in checked.records])
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
