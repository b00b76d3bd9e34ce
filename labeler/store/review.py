"""SQL of flagging and review: flags per round, the review queue, claims, conflicts, progress.

A mixin of ``Store`` (it uses ``self.conn`` and the store's meta and decision queries).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from labeler.store.records import (
    DECISION_COLUMNS,
    FLAG_COLUMNS,
    FLAG_FIELDS,
    Decision,
    Filters,
    Flag,
    decision_from_row,
    flag_from_row,
)

INSERT_FLAG = f"INSERT INTO flags (round_id, {FLAG_COLUMNS}) VALUES ({', '.join('?' * (1 + len(FLAG_FIELDS)))})"
AS_JSON = ("reasons", "top", "neighbours")
# An item's current label in SQL (``labels.current_label``): its latest live decision's (a removal: none), else
# the given label. ``it`` is the items row; live = neither a skip nor an undo, and not undone.
CURRENT_LABEL = (
    "COALESCE((SELECT CASE WHEN d.action = 'remove' THEN '' ELSE COALESCE(d.label, it.label) END"
    " FROM decisions d WHERE d.item_id = it.id AND d.action NOT IN ('skip', 'undo')"
    " AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = d.id) ORDER BY d.id DESC LIMIT 1), it.label)"
)


def _flag_rows(round_id: int, flags: Sequence[Flag]) -> list[tuple]:
    """Rows for ``INSERT_FLAG``: the round, then each field in ``FLAG_FIELDS`` order (lists as JSON)."""
    rows = []
    for f in flags:
        values = {name: getattr(f, name) for name in FLAG_FIELDS}
        values.update({name: json.dumps(values[name]) for name in AS_JSON}, contradicts=int(f.contradicts))
        rows.append((round_id, *(values[name] for name in FLAG_FIELDS)))
    return rows


class FlagQueries:
    def replace_flags(self, round_id: int, flags: Sequence[Flag]) -> None:
        """Store the flags of ``round_id`` (replacing earlier flags of that round) in one transaction."""
        with self.transaction():
            self.conn.execute("DELETE FROM flags WHERE round_id = ?", (round_id,))
            self.conn.executemany(INSERT_FLAG, _flag_rows(round_id, flags))
            self.set_meta("flagged_after_decision", self.last_decision_id())

    def add_flags(self, round_id: int, flags: Sequence[Flag]) -> None:
        """Add flags to ``round_id``'s queue (e.g. an audit sample) in one transaction, keeping the others."""
        with self.transaction():
            self.conn.executemany(INSERT_FLAG, _flag_rows(round_id, flags))

    def flag_order(self, round_id: int) -> list[int]:
        """The item ids of ``round_id``'s queue by priority, highest first (no flag objects built: cheap at scale)."""
        sql = "SELECT item_id FROM flags WHERE round_id = ? ORDER BY priority DESC, item_id"
        return [r[0] for r in self.conn.execute(sql, (round_id,))]

    def flagged_round(self) -> int | None:
        """The latest round that has flags."""
        return self.conn.execute("SELECT MAX(round_id) FROM flags").fetchone()[0]

    def flags(self, round_id: int, item_ids: Sequence[int] | None = None) -> list[Flag]:
        """Flags of ``round_id`` (or of just ``item_ids``) by priority, highest first."""
        where, args = "round_id = ?", [round_id]
        if item_ids is not None:
            # "+round_id" keeps SQLite off the (round_id, priority) index, which would walk the whole
            # round (28k flags at DeepFashion scale) to save a sort of a few rows: look up by item instead.
            where = f"+round_id = ? AND item_id IN ({','.join('?' * len(item_ids))})"
            args += list(item_ids)
        sql = f"SELECT {FLAG_COLUMNS} FROM flags WHERE {where} ORDER BY priority DESC, item_id"
        return [flag_from_row(r) for r in self.conn.execute(sql, args)]

    # -- review queue -------------------------------------------------------------------
    def next_flag(
        self,
        round_id: int,
        reviewer: str,
        *,
        after_decision: int,
        claim_seconds: float,
        now: float,
        exclude: Sequence[int] = (),
        filters: Filters | None = None,
    ) -> int | None:
        """The highest-ranked flagged item (by ``filters``) nobody decided since flagging, ``reviewer`` did not
        skip, and no other reviewer holds an unexpired claim on; None when the filtered queue is done."""
        f = filters or Filters()
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
        if f.reason:
            clauses.append(
                "EXISTS (SELECT 1 FROM json_each(i.reasons) r WHERE json_extract(r.value, '$.code') = :reason)"
            )
            args["reason"] = f.reason
        if f.current:
            clauses.append(f"{CURRENT_LABEL} = :current")
            args["current"] = f.current
        if f.suggested:
            clauses.append("i.suggested_label = :suggested")
            args["suggested"] = f.suggested
        if f.any_label:
            clauses.append(f"({CURRENT_LABEL} = :any OR i.suggested_label = :any)")
            args["any"] = f.any_label
        ordering = "i.active_score DESC, i.priority DESC" if f.order == "active" else "i.priority DESC"
        sql = (
            f"SELECT i.item_id FROM flags i JOIN items it ON it.id = i.item_id WHERE {' AND '.join(clauses)}"
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
        sql = f"SELECT {DECISION_COLUMNS} FROM decisions WHERE item_id = ? ORDER BY id"
        return [decision_from_row(r) for r in self.conn.execute(sql, (item_id,))]

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
            f"SELECT {DECISION_COLUMNS} FROM decisions d WHERE d.reviewer = ? AND d.action != 'undo'"
            " AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = d.id) ORDER BY d.id DESC LIMIT 1",
            (reviewer,),
        ).fetchone()
        return decision_from_row(row) if row else None

    def review_counts(self, round_id: int, after_decision: int) -> tuple[int, int, dict[str, int]]:
        """(flagged, decided since flagging, {reviewer: decisions since flagging}) for the progress line."""
        flagged = self.conn.execute("SELECT COUNT(*) FROM flags WHERE round_id = ?", (round_id,)).fetchone()[0]
        decided = self.conn.execute(  # driven by the decisions since flagging, not by the whole queue
            "SELECT COUNT(DISTINCT d.item_id) FROM decisions d WHERE d.id > ? AND d.action NOT IN ('skip', 'undo')"
            " AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = d.id)"
            " AND EXISTS (SELECT 1 FROM flags i WHERE i.item_id = d.item_id AND +i.round_id = ?)",
            (after_decision, round_id),
        ).fetchone()[0]
        per = self.conn.execute(
            "SELECT reviewer, COUNT(*) FROM decisions d WHERE id > ? AND action NOT IN ('skip', 'undo')"
            " AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = d.id) GROUP BY reviewer",
            (after_decision,),
        ).fetchall()
        return flagged, decided, dict(per)

    def flags_in_group(self, round_id: int, duplicate_group: int) -> list[Flag]:
        sql = f"SELECT {FLAG_COLUMNS} FROM flags WHERE round_id = ? AND group_id = ? ORDER BY item_id"
        return [flag_from_row(r) for r in self.conn.execute(sql, (round_id, duplicate_group))]

    def count_flagged(self) -> int:
        """Items queued in the latest round that has flags."""
        sql = "SELECT COUNT(DISTINCT item_id) FROM flags WHERE round_id = (SELECT MAX(round_id) FROM flags)"
        return self.conn.execute(sql).fetchone()[0]

    def count_likely_wrong(self) -> int:
        """Items of the latest round's flagged set (main reason ``label_issue``): the labels likely wrong."""
        sql = (
            "SELECT COUNT(DISTINCT item_id) FROM flags WHERE round_id = (SELECT MAX(round_id) FROM flags) "
            "AND kind = 'label_issue'"
        )
        return self.conn.execute(sql).fetchone()[0]

    def batch_decisions(self, batch: str) -> list[Decision]:
        """The decisions of one whole-group decision that are not undone yet."""
        rows = self.conn.execute(
            f"SELECT {DECISION_COLUMNS} FROM decisions d WHERE d.batch = ? AND d.action != 'undo'"
            " AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = d.id) ORDER BY d.id",
            (batch,),
        )
        return [decision_from_row(r) for r in rows]

    def has_active_scores(self, round_id: int) -> bool:
        """Whether any flag of ``round_id`` has an active-learning score (computed once decisions exist)."""
        sql = "SELECT 1 FROM flags WHERE round_id = ? AND active_score IS NOT NULL LIMIT 1"
        return self.conn.execute(sql, (round_id,)).fetchone() is not None

    def claim_of(self, item_id: int) -> tuple[str, float] | None:
        """(reviewer, claimed_at) of the claim on ``item_id``, expired or not; None when unclaimed."""
        row = self.conn.execute("SELECT reviewer, claimed_at FROM claims WHERE item_id = ?", (item_id,)).fetchone()
        return (row[0], row[1]) if row else None
