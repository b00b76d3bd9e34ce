"""The store: opening and migrating the database, meta, items, decisions, rounds and arrays."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

from labeler.errors import LabelerError, WorkspaceError
from labeler.store.bulk import check_items, json_objects, occurrence
from labeler.store.records import (
    ARRAY_COLUMNS,
    DECISION_COLUMNS,
    ArrayRecord,
    Decision,
    ImportSummary,
    Item,
    ItemRecord,
    Round,
    SourceRecord,
    array_from_row,
    decision_from_row,
    item_from_row,
    now,
)
from labeler.store.review import FlagQueries
from labeler.store.schema import ITEM_COLUMNS, MIGRATIONS, READ_AS_MIGRATED

BULK_ROWS = 10_000  # an import inserting more items than this builds the items' indexes after the rows


class Store(FlagQueries):
    """One workspace database. Use ``Store.open(path)``; close with ``close()`` or ``with``."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: str | Path, *, create: bool = False, readonly: bool = False) -> Store:
        """Open (and with ``create=True`` make) the database at ``path``, migrated to the latest schema.

        ``readonly`` opens without writing anything (no migration, no WAL set-up), which also works
        on a read-only folder or mount. A damaged file is refused with a message, never rewritten."""
        path = Path(path)
        if not create and not path.exists():
            raise WorkspaceError(f"no workspace database at {path}; run `labeler import` first")
        if path.exists():
            check_database_file(path)
        if readonly:
            conn = _connect_readonly(path)
        else:
            if not _writable(path):
                raise WorkspaceError(
                    f"{path.parent} is not writable (read-only folder, file or mount); this command writes to the "
                    "workspace. Commands that only read it (status, export, export-model, predict, evaluate) work"
                )
            conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        store = cls(conn, path)
        try:
            if not readonly:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA foreign_keys=ON")
                store.migrate()
            else:
                store._read_older_schema()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise damaged(path, exc) from exc
        return store

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- schema -------------------------------------------------------------------------
    def _read_older_schema(self) -> None:
        """A read-only open applies no migration: for each migration the file lacks, ``READ_AS_MIGRATED``'s
        temporary objects (e.g. a ``flags`` view over the ``issues`` table of before 0005) read it as migrated."""
        names = {n for (n,) in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        done = set(self.migrations()) if "schema_migrations" in names else set()
        for name, sql in READ_AS_MIGRATED.items():
            if name not in done:
                self.conn.execute(sql)

    def migrate(self) -> list[str]:
        """Apply the migrations not yet applied; return their names."""
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        done = {name for (name,) in self.conn.execute("SELECT name FROM schema_migrations")}
        unknown = done - {name for name, _ in MIGRATIONS}
        if unknown:
            raise WorkspaceError(
                f"{self.path} was written by a newer labeler (migrations {sorted(unknown)}); upgrade labeler"
            )
        applied = []
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            self.conn.executescript(
                f"BEGIN;\n{sql}\nINSERT INTO schema_migrations VALUES ('{name}', '{now()}');\nCOMMIT;"
            )
            applied.append(name)
        return applied

    def migrations(self) -> list[str]:
        return [n for (n,) in self.conn.execute("SELECT name FROM schema_migrations ORDER BY name")]

    # -- meta and classes ---------------------------------------------------------------
    def get_meta(self, key: str, default=None):
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def classes(self) -> list[str]:
        """The pinned class vocabulary, in order (column order of every pred_probs array)."""
        return [n for (n,) in self.conn.execute("SELECT name FROM classes ORDER BY idx")]

    # -- items --------------------------------------------------------------------------
    def import_items(self, records: Iterable[Sequence], classes: Sequence[str], meta: dict) -> ImportSummary:
        """Replace the dataset with ``records`` (``ItemRecord``s, or tuples in its order) in one transaction.

        Items are matched to existing ones by (path, occurrence of that path), so item ids,
        and the decisions and arrays that point at them, survive a re-import. Items no longer
        in the source are kept with status 'gone'; nothing is deleted.
        """
        conn = self.conn
        existing: dict[tuple[str, int], int] = {}
        for item_id, path in conn.execute("SELECT id, path FROM items ORDER BY id"):
            existing[(path, occurrence(existing, path))] = item_id
        seen: dict[tuple[str, int], int] = {}
        inserts, updates = [], []
        records = [rec if isinstance(rec, ItemRecord) else ItemRecord(*rec) for rec in records]
        for rec, extra in zip(records, json_objects([rec.extra or {} for rec in records])):
            key = (rec.path, occurrence(seen, rec.path))
            seen[key] = 1
            row = (*rec[:7], extra)  # the columns in ITEM_COLUMNS order, extra as JSON
            if key in existing:
                updates.append((*row, existing[key]))
            else:
                inserts.append(row)
        gone_ids = [item_id for key, item_id in existing.items() if key not in seen]
        check_items(inserts)
        check_items(updates)
        with self.transaction():
            conn.executemany(
                "UPDATE items SET row=?, path=?, file=?, label=?, split=?, status=?, reason=?, extra=? WHERE id=?",
                updates,
            )
            with self._indexes_rebuilt("items", len(inserts) > BULK_ROWS), self._checks_done_before():
                conn.executemany(
                    "INSERT INTO items (row, path, file, label, split, status, reason, extra)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    inserts,
                )
            conn.executemany(
                "UPDATE items SET status='gone', reason='not in the source at the last import' WHERE id=?",
                [(i,) for i in gone_ids],
            )
            conn.execute("DELETE FROM classes")
            conn.executemany("INSERT INTO classes (idx, name) VALUES (?, ?)", list(enumerate(classes)))
            for key, value in meta.items():
                self.set_meta(key, value)
        on_gone = 0
        if gone_ids:
            on_gone = conn.execute(
                "SELECT COUNT(*) FROM decisions WHERE item_id IN (SELECT id FROM items WHERE status='gone')"
            ).fetchone()[0]
        return ImportSummary(len(inserts), len(updates), len(gone_ids), on_gone)

    @contextmanager
    def _indexes_rebuilt(self, table: str, bulk: bool):
        """Inside a transaction: drop ``table``'s indexes for the block and build them again after it when
        ``bulk`` (sorting once is faster than updating four b-trees row by row; `labeler bench import` measures it).
        A rollback restores them."""
        indexes = []
        if bulk:
            sql = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL"
            indexes = self.conn.execute(sql, (table,)).fetchall()
            for name, _ in indexes:
                self.conn.execute(f'DROP INDEX "{name}"')
        yield
        for _, create in indexes:
            self.conn.execute(create)

    @contextmanager
    def _checks_done_before(self):
        """SQLite's CHECK constraints off for the block (their callers ran ``_check_items``): on the items
        table they were most of a large insert's time (`labeler bench import`). NOT NULL and the types stay enforced."""
        self.conn.execute("PRAGMA ignore_check_constraints = ON")
        try:
            yield
        finally:
            self.conn.execute("PRAGMA ignore_check_constraints = OFF")

    def count_items(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]

    def item(self, item_id: int) -> Item:
        row = self.conn.execute(f"SELECT id, {', '.join(ITEM_COLUMNS)} FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise WorkspaceError(f"no item with id {item_id}")
        return item_from_row(row)

    def items(self, *, status: str | None = "ok", split: str | None = None) -> list[Item]:
        where, args = _item_filter(status, split)
        sql = f"SELECT id, {', '.join(ITEM_COLUMNS)} FROM items{where} ORDER BY id"
        return [item_from_row(r) for r in self.conn.execute(sql, args)]

    def items_by_id(self, ids) -> dict[int, Item]:
        """{id: Item} of just these ids, whatever their status (a few queries, not one per item)."""
        ids = sorted({int(i) for i in ids})
        out: dict[int, Item] = {}
        for start in range(0, len(ids), 900):  # SQLite's bound-parameter limit
            chunk = ids[start : start + 900]
            sql = f"SELECT id, {', '.join(ITEM_COLUMNS)} FROM items WHERE id IN ({', '.join('?' * len(chunk))})"
            out.update((r[0], item_from_row(r)) for r in self.conn.execute(sql, chunk))
        return out

    def source_records(self) -> list[SourceRecord]:
        """Every item still in the source, in source order (what export reads; extras decoded in one JSON call,
        which is much faster than one per row at DeepFashion's size: `labeler bench scale` times export)."""
        sql = "SELECT id, path, label, split, status, reason, extra FROM items WHERE status != 'gone' ORDER BY row, id"
        rows = self.conn.execute(sql).fetchall()
        extras = json.loads("[" + ",".join(r[6] or "{}" for r in rows) + "]")
        return [
            SourceRecord(
                id=r[0],
                path=r[1],
                label=r[2],
                split=r[3],
                quarantined=r[5] or "" if r[4] == "quarantined" else "",
                extra=e,
            )
            for r, e in zip(rows, extras)
        ]

    def item_table(self, *, status: str | None = "ok", split: str | None = None):
        """Items as a pandas DataFrame (columns: id, row, path, file, label, split, status, reason)."""
        import pandas as pd

        where, args = _item_filter(status, split)
        sql = f"SELECT id, row, path, file, label, split, status, reason FROM items{where} ORDER BY id"
        return pd.read_sql_query(sql, self.conn, params=args)

    def split_counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT split, COUNT(*) FROM items WHERE status='ok' GROUP BY split")
        counts = {"train": 0, "valid": 0, "test": 0}
        counts.update(dict(rows.fetchall()))
        return counts

    def class_counts(self) -> dict[str, dict[str, int]]:
        """{label: {split: n}} over importable (status 'ok') items (an index-only scan, migration 0004)."""
        out: dict[str, dict[str, int]] = {}
        sql = "SELECT label, split, COUNT(*) FROM items WHERE status='ok' GROUP BY label, split"
        for label, split, n in self.conn.execute(sql):
            out.setdefault(label, {"train": 0, "valid": 0, "test": 0})[split] = n
        return out

    def label_codes(self) -> list[tuple[int, int]]:
        """(item id, index of its imported label in the classes, -1 if none) of every item, by id."""
        sql = "SELECT i.id, COALESCE(c.idx, -1) FROM items i LEFT JOIN classes c ON c.name = i.label ORDER BY i.id"
        return self.conn.execute(sql).fetchall()

    def quarantined(self) -> list[tuple[str, str]]:
        sql = "SELECT path, reason FROM items WHERE status='quarantined' ORDER BY id"
        return self.conn.execute(sql).fetchall()

    # -- decisions ----------------------------------------------------------------------
    def add_decision(
        self,
        item_id: int,
        *,
        reviewer: str,
        action: str,
        label: str | None = None,
        old_label: str | None = None,
        reason: str | None = None,
        undoes: int | None = None,
        batch: str | None = None,
    ) -> int:
        """Append one decision and commit it before returning its id."""
        cur = self.conn.execute(
            "INSERT INTO decisions (item_id, reviewer, action, label, old_label, reason, undoes, created_at, batch)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (item_id, reviewer, action, label, old_label, reason, undoes, now(), batch),
        )
        return cur.lastrowid

    def transaction(self):
        """``with store.transaction():`` runs the block's writes as one transaction (all or none)."""
        return _Transaction(self.conn, self.path)

    def last_decision_id(self) -> int:
        return self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM decisions").fetchone()[0]

    def decisions(self) -> list[Decision]:
        return [
            decision_from_row(r) for r in self.conn.execute(f"SELECT {DECISION_COLUMNS} FROM decisions ORDER BY id")
        ]

    def effective_decisions(self) -> dict[int, Decision]:
        """{item_id: its latest decision that is neither undone, a skip nor an undo}."""
        sql = (
            f"SELECT {DECISION_COLUMNS} FROM decisions WHERE action NOT IN ('skip', 'undo')"
            " AND id NOT IN (SELECT undoes FROM decisions WHERE undoes IS NOT NULL) ORDER BY id"
        )
        return {d.item_id: d for d in (decision_from_row(r) for r in self.conn.execute(sql))}

    # -- rounds and arrays --------------------------------------------------------------
    def next_round_id(self) -> int:
        return self.conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM rounds").fetchone()[0]

    def add_round(
        self, kind: str, params: dict, metrics: dict | None = None, arrays: Sequence[ArrayRecord] = ()
    ) -> int:
        """Record a round and its arrays in one transaction (a round is never half recorded)."""
        conn = self.conn
        with self.transaction():
            round_id = self.next_round_id()
            conn.execute(
                "INSERT INTO rounds (id, kind, params, metrics, created_at) VALUES (?, ?, ?, ?, ?)",
                (round_id, kind, json.dumps(params), json.dumps(metrics or {}), now()),
            )
            for rec in arrays:
                if rec.round_id != round_id:
                    raise WorkspaceError(f"array {rec.name} was written for round {rec.round_id}, not {round_id}")
                conn.execute(
                    "INSERT INTO arrays VALUES (?, ?, ?, ?, ?, ?)",
                    (round_id, rec.name, rec.path, json.dumps(list(rec.shape)), rec.dtype, rec.sha256),
                )
        return round_id

    def put_arrays(self, records: Sequence[ArrayRecord]) -> None:
        """Record (or replace) arrays of existing rounds, in one transaction."""
        with self.transaction():
            for rec in records:
                self.conn.execute(
                    "INSERT OR REPLACE INTO arrays VALUES (?, ?, ?, ?, ?, ?)",
                    (rec.round_id, rec.name, rec.path, json.dumps(list(rec.shape)), rec.dtype, rec.sha256),
                )

    def set_round_metrics(self, round_id: int, metrics: dict) -> None:
        self.conn.execute("UPDATE rounds SET metrics = ? WHERE id = ?", (json.dumps(metrics), round_id))

    def rounds(self) -> list[Round]:
        rows = self.conn.execute("SELECT id, kind, params, metrics, created_at FROM rounds ORDER BY id")
        return [Round(i, k, json.loads(p), json.loads(m), c) for i, k, p, m, c in rows]

    def arrays(self, round_id: int) -> dict[str, ArrayRecord]:
        rows = self.conn.execute(f"SELECT {ARRAY_COLUMNS} FROM arrays WHERE round_id = ? ORDER BY name", (round_id,))
        return {record.name: record for record in map(array_from_row, rows)}


def _item_filter(status: str | None, split: str | None) -> tuple[str, list]:
    clauses, args = [], []
    if status is not None:
        clauses.append("status = ?")
        args.append(status)
    if split is not None:
        clauses.append("split = ?")
        args.append(split)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


SQLITE_HEADER = b"SQLite format 3\x00"


def check_database_file(path: Path) -> None:
    """Refuse an empty or non-SQLite ``labeler.db`` before SQLite touches (and rewrites) it."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise WorkspaceError(f"cannot read {path}: {exc.strerror}") from exc
    if header != SQLITE_HEADER:
        what = "is empty (0 bytes)" if not header else "is not an SQLite database"
        raise damaged(path, what)


def damaged(path: Path, what) -> WorkspaceError:
    """The error for a damaged workspace database: which file, and what to do."""
    wal = path.with_name(path.name + "-wal")
    hint = f"; keep {wal} beside it (it holds the latest writes)" if wal.exists() else ""
    return WorkspaceError(
        f"the workspace database {path} is damaged ({what}); nothing was changed. Restore it from a backup{hint}, "
        "or re-import into a new workspace"
    )


def _writable(path: Path) -> bool:
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection; on a folder nobody can write, SQLite's immutable mode (no -shm file needed)."""
    mode = "ro" if _writable(path) else "ro&immutable=1"
    uri = f"{path.resolve().as_uri()}?mode={mode}"
    return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30, check_same_thread=False)


class _Transaction:
    def __init__(self, conn: sqlite3.Connection, path: Path):
        self.conn, self.path = conn, path

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not exc_type:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.OperationalError as failed:
                self._rollback()
                self._raise_if_full(failed)
                raise
            return
        self._rollback()
        if isinstance(exc, sqlite3.OperationalError):
            self._raise_if_full(exc)

    def _rollback(self) -> None:
        """Roll back what is left: on SQLITE_FULL, SQLite may have rolled the transaction back itself, and a
        second ROLLBACK would fail with "no transaction is active", hiding the first error."""
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def _raise_if_full(self, exc: sqlite3.OperationalError) -> None:
        if "disk is full" in str(exc) or "database or disk is full" in str(exc):
            raise LabelerError(
                f"the disk holding {self.path} is full; nothing of this step was written (SQLite rolled it "
                "back). Free some space and run the command again"
            ) from exc
