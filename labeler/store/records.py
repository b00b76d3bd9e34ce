"""Plain records the store returns (never cursors), and the row -> record conversions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import NamedTuple


def now() -> str:
    """UTC timestamp as stored in ``created_at`` columns."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class ItemRecord(NamedTuple):
    """One source record as ``Store.import_items`` takes it (the items table's columns but the id)."""

    row: int  # 1-based record number in the source
    path: str  # the image path exactly as the source wrote it
    file: str  # relative to the image root
    label: str
    split: str  # train | valid | test
    status: str  # ok | quarantined
    reason: str | None  # why quarantined
    extra: dict | None  # the source's other columns


@dataclass
class Filters:
    """Which flags of the queue to show, and in which order (the review app's filters)."""

    reason: str | None = None
    given: str | None = None
    suggested: str | None = None
    any_label: str | None = None
    order: str = "priority"  # or "active" (active-learning score)

    def matches(self, given: str, suggested: str) -> bool:
        """Whether an item with these labels passes the label filters (used where SQL does not filter)."""
        return (
            (self.given is None or given == self.given)
            and (self.suggested is None or suggested == self.suggested)
            and (self.any_label is None or self.any_label in (given, suggested))
        )


@dataclass(frozen=True)
class Item:
    id: int
    row: int
    path: str
    file: str
    label: str
    split: str
    status: str
    reason: str | None
    extra: dict


@dataclass(frozen=True)
class Decision:
    id: int
    item_id: int
    reviewer: str
    action: str
    label: str | None
    old_label: str | None
    reason: str | None
    undoes: int | None
    created_at: str
    batch: str | None = None  # shared by the decisions of one whole-group decision


@dataclass(frozen=True)
class Round:
    id: int
    kind: str
    params: dict
    metrics: dict
    created_at: str


@dataclass(frozen=True)
class ArrayRecord:
    round_id: int
    name: str
    path: str
    shape: tuple[int, ...]
    dtype: str
    sha256: str


@dataclass(frozen=True)
class Flag:
    """One flagged item of a round (a row of the ``flags`` table)."""

    item_id: int
    kind: str
    score: float
    suggested_label: str | None
    reasons: list
    priority: float
    suggested_prob: float | None
    top: list
    group_id: int = -1
    contradicts: bool = False
    neighbours: list = field(default_factory=list)  # [[item_id, similarity], ...], nearest first
    active_score: float | None = None


@dataclass(frozen=True)
class ImportSummary:
    inserted: int
    updated: int
    gone: int
    decisions_on_gone: int


FLAG_COLUMNS = (
    "item_id, kind, score, suggested_label, reasons, priority, suggested_prob, top, group_id, contradicts,"
    " neighbours, active_score"
)


def flag_from_row(r) -> Flag:
    top = [tuple(t) for t in json.loads(r[7])]
    return Flag(*r[:4], json.loads(r[4]), r[5], r[6], top, r[8], bool(r[9]), json.loads(r[10]), r[11])


def item_from_row(row) -> Item:
    return Item(*row[:8], extra=json.loads(row[8]) if row[8] else {})


@dataclass(frozen=True)
class SourceRecord:
    """One imported record as export writes it back."""

    id: int
    path: str  # exactly as the source wrote it
    label: str  # the given label
    split: str
    quarantined: str  # why it was quarantined at import, "" when it was not
    extra: dict  # the source's other columns
