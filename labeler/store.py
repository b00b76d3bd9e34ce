"""All SQL of the workspace store (SQLite, WAL).

The schema is a list of numbered migrations applied in order; each runs in one
transaction and is recorded in ``schema_migrations``. Reads return dataclasses or
plain tuples, never cursors. Decisions are an append-only log: an undo is a new row
that names the decision it undoes (``undoes``), nothing is ever updated or deleted.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from labeler.errors import WorkspaceError

SCHEMA_0001 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE classes (idx INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    row INTEGER NOT NULL,               -- 1-based record number in the source
    path TEXT NOT NULL,                 -- the image path exactly as the source wrote it
    file TEXT NOT NULL,                 -- the image file, relative to the image root
    label TEXT NOT NULL,                -- the given label
    split TEXT NOT NULL CHECK (split IN ('train', 'valid', 'test')),
    status TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'quarantined', 'gone')),
    reason TEXT,                        -- why quarantined or gone
    extra TEXT                          -- JSON object: the source's other columns
);
CREATE INDEX items_path ON items (path);
CREATE INDEX items_status_split ON items (status, split);
CREATE INDEX items_label ON items (label);
CREATE TABLE decisions (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES items (id),
    reviewer TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('confirm', 'relabel', 'remove', 'skip', 'undo')),
    label TEXT,                         -- the item's label after this decision
    old_label TEXT,                     -- its label before
    reason TEXT,                        -- reason code (why removed, which flag it answered)
    undoes INTEGER REFERENCES decisions (id),
    created_at TEXT NOT NULL
);
CREATE INDEX decisions_item ON decisions (item_id, id);
CREATE INDEX decisions_undoes ON decisions (undoes);
CREATE TABLE rounds (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    metrics TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);
CREATE TABLE arrays (
    round_id INTEGER NOT NULL REFERENCES rounds (id),
    name TEXT NOT NULL,
    path TEXT NOT NULL,                 -- relative to the workspace folder
    shape TEXT NOT NULL,                -- JSON list
    dtype TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (round_id, name)
);
CREATE TABLE issues (
    id INTEGER PRIMARY KEY,
    round_id INTEGER NOT NULL REFERENCES rounds (id),
    item_id INTEGER NOT NULL REFERENCES items (id),
    kind TEXT NOT NULL,
    score REAL NOT NULL,
    suggested_label TEXT,
    reasons TEXT NOT NULL DEFAULT '[]'  -- JSON list of {"code", "text"}
);
CREATE INDEX issues_round ON issues (round_id, score DESC);
CREATE INDEX issues_item ON issues (item_id);
"""

# Flags carry what the review screen and the queue CSV show without recomputing; claims keep
# concurrent reviewers from being shown the same item.
SCHEMA_0002 = """
ALTER TABLE issues ADD COLUMN priority REAL NOT NULL DEFAULT 0;
ALTER TABLE issues ADD COLUMN quality REAL;
ALTER TABLE issues ADD COLUMN suggested_prob REAL;
ALTER TABLE issues ADD COLUMN top TEXT NOT NULL DEFAULT '[]';         -- JSON [[label, prob], ...], best first
ALTER TABLE issues ADD COLUMN group_id INTEGER NOT NULL DEFAULT -1;   -- near-duplicate group, -1 none
ALTER TABLE issues ADD COLUMN contradicts INTEGER NOT NULL DEFAULT 0; -- reviewed, but the round disagrees
ALTER TABLE issues ADD COLUMN neighbours TEXT NOT NULL DEFAULT '[]';  -- JSON [[item_id, similarity], ...]
ALTER TABLE issues ADD COLUMN active_score REAL;                      -- active-learning priority, if computed
CREATE INDEX issues_round_priority ON issues (round_id, priority DESC);
CREATE INDEX issues_round_group ON issues (round_id, group_id);
CREATE TABLE claims (
    item_id INTEGER PRIMARY KEY REFERENCES items (id),
    reviewer TEXT NOT NULL,
    claimed_at REAL NOT NULL                                          -- unix time
);
CREATE INDEX decisions_reviewer ON decisions (reviewer, id);
"""

MIGRATIONS: tuple[tuple[str, str], ...] = (("0001_initial", SCHEMA_0001), ("0002_flags_and_claims", SCHEMA_0002))

ITEM_COLUMNS = ("row", "path", "file", "label", "split", "status", "reason", "extra")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


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
    """One flagged item of a round (a row of the ``issues`` table)."""

    item_id: int
    kind: str
    score: float
    suggested_label: str | None
    reasons: list
    priority: float
    quality: float | None
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


class Store:
    """One workspace database. Use ``Store.open(path)``; close with ``close()`` or ``with``."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: str | Path, *, create: bool = False) -> Store:
        """Open (and with ``create=True`` make) the database at ``path``, migrated to the latest schema."""
        path = Path(path)
        if not create and not path.exists():
            raise WorkspaceError(f"no workspace database at {path}; run `labeler import` first")
        conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        store = cls(conn, path)
        store.migrate()
        return store

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- schema -------------------------------------------------------------------------
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
                f"BEGIN;\n{sql}\nINSERT INTO schema_migrations VALUES ('{name}', '{_now()}');\nCOMMIT;"
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
        """Replace the dataset with ``records`` (tuples in ``ITEM_COLUMNS`` order) in one transaction.

        Items are matched to existing ones by (path, occurrence of that path), so item ids,
        and the decisions and arrays that point at them, survive a re-import. Items no longer
        in the source are kept with status 'gone'; nothing is deleted.
        """
        conn = self.conn
        existing: dict[tuple[str, int], int] = {}
        for item_id, path in conn.execute("SELECT id, path FROM items ORDER BY id"):
            existing[(path, _occurrence(existing, path))] = item_id
        seen: dict[tuple[str, int], int] = {}
        inserts, updates = [], []
        for rec in records:
            rec = tuple(rec[:7]) + (json.dumps(rec[7] or {}, ensure_ascii=False),)
            key = (rec[1], _occurrence(seen, rec[1]))
            seen[key] = 1
            if key in existing:
                updates.append(rec + (existing[key],))
            else:
                inserts.append(rec)
        gone_ids = [item_id for key, item_id in existing.items() if key not in seen]
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "UPDATE items SET row=?, path=?, file=?, label=?, split=?, status=?, reason=?, extra=? WHERE id=?",
                updates,
            )
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
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        on_gone = 0
        if gone_ids:
            on_gone = conn.execute(
                "SELECT COUNT(*) FROM decisions WHERE item_id IN (SELECT id FROM items WHERE status='gone')"
            ).fetchone()[0]
        return ImportSummary(len(inserts), len(updates), len(gone_ids), on_gone)

    def count_items(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]

    def item(self, item_id: int) -> Item:
        row = self.conn.execute(f"SELECT id, {', '.join(ITEM_COLUMNS)} FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise WorkspaceError(f"no item with id {item_id}")
        return _item(row)

    def items(self, *, status: str | None = "ok", split: str | None = None) -> list[Item]:
        where, args = _item_filter(status, split)
        sql = f"SELECT id, {', '.join(ITEM_COLUMNS)} FROM items{where} ORDER BY id"
        return [_item(r) for r in self.conn.execute(sql, args)]

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
        """{label: {split: n}} over importable (status 'ok') items."""
        out: dict[str, dict[str, int]] = {}
        sql = "SELECT label, split, COUNT(*) FROM items WHERE status='ok' GROUP BY label, split"
        for label, split, n in self.conn.execute(sql):
            out.setdefault(label, {"train": 0, "valid": 0, "test": 0})[split] = n
        return out

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
    ) -> int:
        """Append one decision and commit it before returning its id."""
        cur = self.conn.execute(
            "INSERT INTO decisions (item_id, reviewer, action, label, old_label, reason, undoes, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (item_id, reviewer, action, label, old_label, reason, undoes, _now()),
        )
        return cur.lastrowid

    def last_decision_id(self) -> int:
        return self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM decisions").fetchone()[0]

    def decisions(self) -> list[Decision]:
        return [Decision(*r) for r in self.conn.execute("SELECT * FROM decisions ORDER BY id")]

    def effective_decisions(self) -> dict[int, Decision]:
        """{item_id: its latest decision that is neither undone, a skip nor an undo}."""
        sql = (
            "SELECT * FROM decisions WHERE action NOT IN ('skip', 'undo')"
            " AND id NOT IN (SELECT undoes FROM decisions WHERE undoes IS NOT NULL) ORDER BY id"
        )
        return {d.item_id: d for d in (Decision(*r) for r in self.conn.execute(sql))}

    # -- rounds and arrays --------------------------------------------------------------
    def next_round_id(self) -> int:
        return self.conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM rounds").fetchone()[0]

    def add_round(
        self, kind: str, params: dict, metrics: dict | None = None, arrays: Sequence[ArrayRecord] = ()
    ) -> int:
        """Record a round and its arrays in one transaction (a round is never half recorded)."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            round_id = self.next_round_id()
            conn.execute(
                "INSERT INTO rounds (id, kind, params, metrics, created_at) VALUES (?, ?, ?, ?, ?)",
                (round_id, kind, json.dumps(params), json.dumps(metrics or {}), _now()),
            )
            for rec in arrays:
                if rec.round_id != round_id:
                    raise WorkspaceError(f"array {rec.name} was written for round {rec.round_id}, not {round_id}")
                conn.execute(
                    "INSERT INTO arrays VALUES (?, ?, ?, ?, ?, ?)",
                    (round_id, rec.name, rec.path, json.dumps(list(rec.shape)), rec.dtype, rec.sha256),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return round_id

    def set_round_metrics(self, round_id: int, metrics: dict) -> None:
        self.conn.execute("UPDATE rounds SET metrics = ? WHERE id = ?", (json.dumps(metrics), round_id))

    def rounds(self) -> list[Round]:
        rows = self.conn.execute("SELECT id, kind, params, metrics, created_at FROM rounds ORDER BY id")
        return [Round(i, k, json.loads(p), json.loads(m), c) for i, k, p, m, c in rows]

    def arrays(self, round_id: int) -> dict[str, ArrayRecord]:
        rows = self.conn.execute("SELECT * FROM arrays WHERE round_id = ? ORDER BY name", (round_id,))
        return {r[1]: ArrayRecord(r[0], r[1], r[2], tuple(json.loads(r[3])), r[4], r[5]) for r in rows}

    # -- issues (flags) -----------------------------------------------------------------
    def replace_issues(self, round_id: int, flags: Sequence[Flag]) -> None:
        """Store the flags of ``round_id`` (replacing earlier flags of that round) in one transaction."""
        rows = [
            (round_id, f.item_id, f.kind, f.score, f.suggested_label, json.dumps(f.reasons), f.priority, f.quality,
             f.suggested_prob, json.dumps(f.top), f.group_id, int(f.contradicts), json.dumps(f.neighbours),
             f.active_score)
            for f in flags
        ]  # fmt: skip
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute("DELETE FROM issues WHERE round_id = ?", (round_id,))
            self.conn.executemany(
                "INSERT INTO issues (round_id, item_id, kind, score, suggested_label, reasons, priority, quality,"
                " suggested_prob, top, group_id, contradicts, neighbours, active_score)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self.set_meta("flagged_after_decision", self.last_decision_id())
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def flagged_round(self) -> int | None:
        """The latest round that has flags."""
        return self.conn.execute("SELECT MAX(round_id) FROM issues").fetchone()[0]

    def issues(self, round_id: int, item_ids: Sequence[int] | None = None) -> list[Flag]:
        """Flags of ``round_id`` (or of just ``item_ids``) by priority, highest first."""
        where, args = "round_id = ?", [round_id]
        if item_ids is not None:
            where += f" AND item_id IN ({','.join('?' * len(item_ids))})"
            args += list(item_ids)
        sql = f"SELECT {_FLAG_COLUMNS} FROM issues WHERE {where} ORDER BY priority DESC, item_id"
        return [_flag(r) for r in self.conn.execute(sql, args)]

    # -- review queue -------------------------------------------------------------------
    def next_flag(
        self, round_id: int, reviewer: str, *, after_decision: int, claim_seconds: float, now: float,
        exclude: Sequence[int] = (), reason: str | None = None, given: str | None = None,
        suggested: str | None = None, any_label: str | None = None, order: str = "priority",
    ) -> int | None:  # fmt: skip
        """The highest-ranked flagged item nobody decided since flagging, ``reviewer`` did not skip, and no
        other reviewer holds an unexpired claim on; None when the filtered queue is done."""
        clauses = [
            "i.round_id = :round",
            "NOT EXISTS (SELECT 1 FROM decisions d WHERE d.item_id = i.item_id AND d.id > :after"
            " AND (d.action NOT IN ('skip', 'undo') OR d.reviewer = :reviewer AND d.action = 'skip')"
            " AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = d.id))",
            "NOT EXISTS (SELECT 1 FROM claims c WHERE c.item_id = i.item_id AND c.reviewer != :reviewer"
            " AND c.claimed_at > :fresh)",
        ]
        args = {"round": round_id, "after": after_decision, "reviewer": reviewer, "fresh": now - claim_seconds}
        if exclude:
            clauses.append(f"i.item_id NOT IN ({','.join(str(int(e)) for e in exclude)})")
        if reason:
            clauses.append(
                "EXISTS (SELECT 1 FROM json_each(i.reasons) r WHERE json_extract(r.value, '$.code') = :reason)"
            )
            args["reason"] = reason
        if given:
            clauses.append("it.label = :given")
            args["given"] = given
        if suggested:
            clauses.append("i.suggested_label = :suggested")
            args["suggested"] = suggested
        if any_label:
            clauses.append("(it.label = :any OR i.suggested_label = :any)")
            args["any"] = any_label
        ordering = "i.active_score DESC, i.priority DESC" if order == "active" else "i.priority DESC"
        sql = (
            f"SELECT i.item_id FROM issues i JOIN items it ON it.id = i.item_id WHERE {' AND '.join(clauses)}"
            f" ORDER BY {ordering}, i.item_id LIMIT 1"
        )
        row = self.conn.execute(sql, args).fetchone()
        return row[0] if row else None

    def claim(self, item_id: int, reviewer: str, now: float) -> None:
        self.conn.execute(
            "INSERT INTO claims (item_id, reviewer, claimed_at) VALUES (?, ?, ?)"
            " ON CONFLICT (item_id) DO UPDATE SET reviewer = excluded.reviewer, claimed_at = excluded.claimed_at",
            (item_id, reviewer, now),
        )

    def release(self, item_id: int, reviewer: str) -> None:
        self.conn.execute("DELETE FROM claims WHERE item_id = ? AND reviewer = ?", (item_id, reviewer))

    def item_decisions(self, item_id: int) -> list[Decision]:
        rows = self.conn.execute("SELECT * FROM decisions WHERE item_id = ? ORDER BY id", (item_id,))
        return [Decision(*r) for r in rows]

    def items_decided_by_several(self) -> list[int]:
        """Items that two or more reviewers decided (the only ones that can be in conflict)."""
        sql = (
            "SELECT item_id FROM decisions WHERE action NOT IN ('skip', 'undo')"
            " GROUP BY item_id HAVING COUNT(DISTINCT reviewer) > 1 ORDER BY item_id"
        )
        return [item for (item,) in self.conn.execute(sql)]

    def last_undoable(self, reviewer: str) -> Decision | None:
        """``reviewer``'s latest decision that is not an undo and not undone yet."""
        row = self.conn.execute(
            "SELECT * FROM decisions d WHERE d.reviewer = ? AND d.action != 'undo'"
            " AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = d.id) ORDER BY d.id DESC LIMIT 1",
            (reviewer,),
        ).fetchone()
        return Decision(*row) if row else None

    def review_counts(self, round_id: int, after_decision: int) -> tuple[int, int, dict[str, int]]:
        """(flagged, decided since flagging, {reviewer: decisions since flagging}) for the progress line."""
        flagged = self.conn.execute("SELECT COUNT(*) FROM issues WHERE round_id = ?", (round_id,)).fetchone()[0]
        decided = self.conn.execute(
            "SELECT COUNT(DISTINCT d.item_id) FROM decisions d JOIN issues i ON i.item_id = d.item_id AND i.round_id = ?"
            " WHERE d.id > ? AND d.action NOT IN ('skip', 'undo')"
            " AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = d.id)",
            (round_id, after_decision),
        ).fetchone()[0]
        per = self.conn.execute(
            "SELECT reviewer, COUNT(*) FROM decisions d WHERE id > ? AND action NOT IN ('skip', 'undo')"
            " AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = d.id) GROUP BY reviewer",
            (after_decision,),
        ).fetchall()
        return flagged, decided, dict(per)

    def issues_in_group(self, round_id: int, group_id: int) -> list[Flag]:
        sql = f"SELECT {_FLAG_COLUMNS} FROM issues WHERE round_id = ? AND group_id = ? ORDER BY item_id"
        return [_flag(r) for r in self.conn.execute(sql, (round_id, group_id))]

    def count_flagged(self) -> int:
        """Items flagged in the latest round that has flags."""
        sql = "SELECT COUNT(DISTINCT item_id) FROM issues WHERE round_id = (SELECT MAX(round_id) FROM issues)"
        return self.conn.execute(sql).fetchone()[0]


_FLAG_COLUMNS = (
    "item_id, kind, score, suggested_label, reasons, priority, quality, suggested_prob, top, group_id, contradicts,"
    " neighbours, active_score"
)


def _flag(r) -> Flag:
    top = [tuple(t) for t in json.loads(r[8])]
    return Flag(
        r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7], top, r[9], bool(r[10]), json.loads(r[11]), r[12]
    )


def _occurrence(counter: dict, path: str) -> int:
    """How many keys (path, n) ``counter`` already holds for ``path``."""
    n = 0
    while (path, n) in counter:
        n += 1
    return n


def _item(row) -> Item:
    return Item(*row[:8], extra=json.loads(row[8]) if row[8] else {})


def _item_filter(status: str | None, split: str | None) -> tuple[str, list]:
    clauses, args = [], []
    if status is not None:
        clauses.append("status = ?")
        args.append(status)
    if split is not None:
        clauses.append("split = ?")
        args.append(split)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args
