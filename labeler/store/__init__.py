"""All SQL of the workspace store (SQLite, WAL).

The schema is a list of numbered migrations (``schema.py``) applied in order; each runs in one
transaction and is recorded in ``schema_migrations``. Reads return the records of
``records.py``, never cursors. Decisions are an append-only log: an undo is a new row that
names the decision it undoes (``undoes``); nothing is ever updated or deleted.
``core.py`` holds the store proper (items, decisions, rounds, arrays), ``review.py`` the
flag and review-queue queries. Nothing outside this package writes SQL.
"""

from labeler.store.core import Store
from labeler.store.records import ArrayRecord, Decision, Flag, ImportSummary, Item, Round
from labeler.store.schema import ITEM_COLUMNS, MIGRATIONS

__all__ = ["ITEM_COLUMNS", "MIGRATIONS", "ArrayRecord", "Decision", "Flag", "ImportSummary", "Item", "Round", "Store"]
