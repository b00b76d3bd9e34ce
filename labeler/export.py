"""The corrected labels, in the shape of the input, and an audit of every change. csv module only.

The corrected CSV has one row per imported record, in source order, with the source's own
columns and path strings; only the label changes (the item's current label: its latest
reviewer decision that was not undone). Removed items are dropped, or kept with a
``labeler_removed`` column (``include_removed``). Quarantined records are written unchanged.
For a CSV source the columns are the CSV's; for DeepFashion ``image_name,category_name,
evaluation_status`` (+ bbox columns when present); for class folders ``image,label,split``.
Files are written through a temporary file and a rename; the source CSV is never overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labeler.errors import InputError
from labeler.files import write_csv
from labeler.labels import conflicted_items, current_label, undone_ids
from labeler.workspace import Workspace

AUDIT_COLUMNS = ("image", "split", "old_label", "new_label", "action", "reason", "reviewer", "time", "undone")


@dataclass
class ExportSummary:
    rows: int
    changed: int
    removed: int
    conflicts: int
    quarantined: int = 0  # rows kept unchanged, marked in labeler_quarantined
    audit_rows: int = 0


def export_labels(
    ws: Workspace,
    out: str | Path,
    *,
    audit: str | Path | None = None,
    include_removed: bool = False,
    force: bool = False,
) -> ExportSummary:
    """Write the corrected CSV to ``out`` (and the audit to ``audit``); see the module docstring."""
    out = Path(out)
    source = Path(ws.store.get_meta("source"))
    if audit and Path(audit).resolve() == out.resolve():
        raise InputError(f"the audit and the corrected CSV would be one file ({out}); give the audit another name")
    for target in [out] + ([Path(audit)] if audit else []):
        if target.resolve() == source.resolve():
            raise InputError(f"refusing to overwrite the source {source}; export to a new file")
        if target.exists() and not force:
            raise InputError(f"{target} exists; choose a new file or pass --force to replace it")
    records = ws.store.source_records()
    effective = ws.store.effective_decisions()
    columns, split_key = _columns(ws, [r.extra for r in records])
    quarantined = sum(bool(r.quarantined) for r in records)
    header = (
        columns + (["labeler_removed"] if include_removed else []) + (["labeler_quarantined"] if quarantined else [])
    )
    rows, changed, removed = [], 0, 0
    for r in records:
        decision = effective.get(r.id)
        label = current_label(r.label, decision)
        is_removed = label is None
        label = r.label if is_removed else label
        removed += is_removed
        changed += label != r.label and not is_removed
        if is_removed and not include_removed:
            continue
        values = {**r.extra, columns[0]: r.path, columns[1]: label}
        if split_key and split_key not in values:
            values[split_key] = r.split
        row = [values.get(c, "") for c in columns]
        if include_removed:
            row.append((decision.reason or "removed") if is_removed else "")
        if quarantined:
            row.append(r.quarantined)
        rows.append(row)
    write_csv(out, header, rows, **_style(ws))
    summary = ExportSummary(len(rows), changed, removed, len(conflicted_items(ws.store)), quarantined)
    if audit:
        summary.audit_rows = write_audit(ws, Path(audit))
    return summary


def write_audit(ws: Workspace, path: Path) -> int:
    """Every decision, skips included, in log order, with whether it was undone later (undo rows themselves
    are not listed: the ``undone`` column marks what they reverted)."""
    decisions = ws.store.decisions()
    items = ws.store.items_by_id({d.item_id for d in decisions})
    undone = undone_ids(decisions)
    rows = [
        [
            items[d.item_id].path,
            items[d.item_id].split,
            d.old_label or "",
            d.label or "",
            d.action,
            d.reason or "",
            d.reviewer,
            d.created_at,
            int(d.id in undone),
        ]
        for d in decisions
        if d.action != "undo"
    ]
    write_csv(path, list(AUDIT_COLUMNS), rows)
    return len(rows)


def _columns(ws: Workspace, extras: list[dict]) -> tuple[list[str], str | None]:
    """(column names with image and label first, name of the split column or None); ``extras``: the
    items' extra source columns."""
    fmt, spec = ws.store.get_meta("format"), ws.store.get_meta("columns", {})
    if fmt == "csv":
        order = list(spec.get("order") or [spec["image"], spec["label"]])
        first = [spec["image"], spec["label"]]
        split = spec.get("split") or _new_column("split", order)  # a split made at import is written too
        rest = [c for c in order if c not in first]
        return first + rest + ([split] if split not in rest else []), split
    if fmt == "deepfashion":
        bbox = ["x_1", "y_1", "x_2", "y_2"] if any("x_1" in e for e in extras) else []
        return ["image_name", "category_name", "evaluation_status", *bbox], "evaluation_status"
    return ["image", "label", "split"], "split"


def _new_column(name: str, taken: list[str]) -> str:
    """``name``, or ``labeler_NAME`` when the source already has a column of that name."""
    return name if name not in taken else f"labeler_{name}"


def _style(ws: Workspace) -> dict:
    """The source CSV's delimiter, line end and BOM (recorded at import), so the export has its shape."""
    spec = ws.store.get_meta("columns", {}) if ws.store.get_meta("format") == "csv" else {}
    return {
        "delimiter": spec.get("delimiter", ","),
        "newline": spec.get("newline", "\r\n"),
        "bom": spec.get("bom", False),
    }
