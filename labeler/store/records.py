"""Plain records the store returns (never cursors), and the row -> record conversions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
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
    current: str | None = None  # the current label (after review), as the review screen shows it
    suggested: str | None = None
    any_label: str | None = None  # the current label or the suggestion
    order: str = "priority"  # or "active" (active-learning score)

    def matches(self, current: str | None, suggested: str) -> bool:
        """Whether an item with these labels passes the label filters (used where SQL does not filter)."""
        return (
            (self.current is None or current == self.current)
            and (self.suggested is None or suggested == self.suggested)
            and (self.any_label is None or self.any_label in (current, suggested))
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
    duplicate_group: int = -1  # near-duplicate group (stored in the flags table's group_id column), -1 none
    contradicts: bool = False
    neighbours: list = field(default_factory=list)  # [[item_id, similarity], ...], nearest first
    active_score: float | None = None


@dataclass(frozen=True)
class ImportSummary:
    inserted: int
    updated: int
    gone: int
    decisions_on_gone: int


# Rows become records by column name: each SELECT names the record's fields, and the row is zipped with them.
FLAG_FIELDS = tuple(f.name for f in fields(Flag))
FLAG_SQL_NAMES = {"duplicate_group": "group_id"}  # fields whose column in the flags table has another name
FLAG_COLUMNS = ", ".join(FLAG_SQL_NAMES.get(name, name) for name in FLAG_FIELDS)  # SELECT them in field order
DECISION_FIELDS = tuple(f.name for f in fields(Decision))
DECISION_COLUMNS = ", ".join(DECISION_FIELDS)
ARRAY_FIELDS = tuple(f.name for f in fields(ArrayRecord))
ARRAY_COLUMNS = ", ".join(ARRAY_FIELDS)
ITEM_FIELDS = tuple(f.name for f in fields(Item))


def flag_from_row(row) -> Flag:
    r = dict(zip(FLAG_FIELDS, row))
    r.update(
        reasons=json.loads(r["reasons"]),
        top=[tuple(t) for t in json.loads(r["top"])],
        contradicts=bool(r["contradicts"]),
        neighbours=json.loads(r["neighbours"]),
    )
    return Flag(**r)


def item_from_row(row) -> Item:
    """A row of ``SELECT id, {ITEM_COLUMNS}`` (``ITEM_FIELDS`` order), extra as JSON."""
    r = dict(zip(ITEM_FIELDS, row))
    r["extra"] = json.loads(r["extra"]) if r["extra"] else {}
    return Item(**r)


def decision_from_row(row) -> Decision:
    return Decision(**dict(zip(DECISION_FIELDS, row)))


def array_from_row(row) -> ArrayRecord:
    r = dict(zip(ARRAY_FIELDS, row))
    r["shape"] = tuple(json.loads(r["shape"]))
    return ArrayRecord(**r)


@dataclass(frozen=True)
class SourceRecord:
    """One imported record as export writes it back."""

    id: int
    path: str  # exactly as the source wrote it
    label: str  # the given label
    split: str
    quarantined: str  # why it was quarantined at import, "" when it was not
    extra: dict  # the source's other columns
