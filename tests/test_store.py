import sqlite3

import numpy as np
import pytest

from labeler.errors import ArrayError, WorkspaceError
from labeler.store import MIGRATIONS, Store
from labeler.workspace import Workspace


def _records(paths, label="a", split="train"):
    return [(i + 1, p, p, label, split, "ok", None, {}) for i, p in enumerate(paths)]


def test_migrations_apply_from_empty_file_and_reopen(tmp_path):
    db = tmp_path / "labeler.db"
    with Store.open(db, create=True) as store:
        assert store.migrations() == [name for name, _ in MIGRATIONS]
        store.import_items(_records(["x.jpg", "y.jpg"]), ["a"], {"format": "csv"})
    with Store.open(db) as store:
        assert store.migrate() == []  # nothing left to apply
        assert [i.path for i in store.items()] == ["x.jpg", "y.jpg"]
        assert store.get_meta("format") == "csv"
    mode = sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def _indexes(db):
    sql = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'items' AND sql IS NOT NULL"
    return sorted(sqlite3.connect(db).execute(sql).fetchall())


def test_a_bulk_import_keeps_every_index_and_a_failed_one_changes_nothing(tmp_path, monkeypatch):
    import labeler.store.core

    monkeypatch.setattr(labeler.store.core, "BULK_ROWS", 3)  # the path a large import takes, on a few rows
    db = tmp_path / "labeler.db"
    with Store.open(db, create=True) as store:
        before = _indexes(db)
        assert len(before) >= 4
        store.import_items(_records([f"{i}.jpg" for i in range(5)]), ["a"], {})
        assert _indexes(db) == before
        plan = store.conn.execute("EXPLAIN QUERY PLAN SELECT id FROM items WHERE path = '3.jpg'").fetchall()
        assert "items_path" in str(plan)
        bad = _records([f"new{i}.jpg" for i in range(5)]) + [(6, "z.jpg", "z.jpg", None, "train", "ok", None, {})]
        with pytest.raises(sqlite3.IntegrityError):  # NOT NULL refuses the last row's label, mid-insert
            store.import_items(bad, ["a"], {})
        assert _indexes(db) == before
        assert [i.path for i in store.items()] == [f"{i}.jpg" for i in range(5)]
        bad = _records([f"new{i}.jpg" for i in range(5)]) + [(6, "z.jpg", "z.jpg", "a", "bogus", "ok", None, {})]
        with pytest.raises(WorkspaceError, match="split"):  # the split CHECK, run before the insert
            store.import_items(bad, ["a"], {})
        assert [i.path for i in store.items()] == [f"{i}.jpg" for i in range(5)]
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):  # and SQLite's own checks are back on
            store.conn.execute("UPDATE items SET split = 'bogus'")


def test_open_missing_database_says_what_to_run(tmp_path):
    with pytest.raises(WorkspaceError, match="labeler import"):
        Store.open(tmp_path / "nope.db")


def test_database_from_a_newer_labeler_is_refused(tmp_path):
    db = tmp_path / "labeler.db"
    Store.open(db, create=True).close()
    sqlite3.connect(db, isolation_level=None).execute("INSERT INTO schema_migrations VALUES ('9999_future', 'x')")
    with pytest.raises(WorkspaceError, match="newer labeler"):
        Store.open(db)


def test_reimport_keeps_ids_and_decisions_and_marks_missing_items_gone(tmp_path):
    with Store.open(tmp_path / "labeler.db", create=True) as store:
        store.import_items(_records(["a.jpg", "b.jpg", "c.jpg"]), ["a"], {})
        b = next(i for i in store.items() if i.path == "b.jpg")
        c = next(i for i in store.items() if i.path == "c.jpg")
        store.add_decision(b.id, reviewer="ann", action="relabel", label="z", old_label="a")
        store.add_decision(c.id, reviewer="ann", action="remove", old_label="a")
        summary = store.import_items(_records(["b.jpg", "a.jpg", "d.jpg"]), ["a"], {})
        assert (summary.inserted, summary.updated, summary.gone, summary.decisions_on_gone) == (1, 2, 1, 1)
        assert next(i for i in store.items() if i.path == "b.jpg").id == b.id
        assert store.item(c.id).status == "gone"
        assert len(store.decisions()) == 2  # nothing dropped
        assert store.effective_decisions()[b.id].label == "z"


def test_undo_appends_and_the_current_decision_is_the_latest_not_undone(tmp_path):
    with Store.open(tmp_path / "labeler.db", create=True) as store:
        store.import_items(_records(["a.jpg"]), ["a", "b"], {})
        item = store.items()[0].id
        first = store.add_decision(item, reviewer="r", action="relabel", label="b", old_label="a")
        second = store.add_decision(item, reviewer="r", action="confirm", label="a", old_label="b")
        store.add_decision(item, reviewer="r", action="undo", undoes=second)
        store.add_decision(item, reviewer="r", action="skip")
        assert store.effective_decisions()[item].id == first
        assert [d.action for d in store.decisions()] == ["relabel", "confirm", "undo", "skip"]


def test_decision_action_is_checked_by_the_schema(tmp_path):
    with Store.open(tmp_path / "labeler.db", create=True) as store:
        store.import_items(_records(["a.jpg"]), ["a"], {})
        with pytest.raises(sqlite3.IntegrityError):
            store.add_decision(store.items()[0].id, reviewer="r", action="delete-everything")


def test_arrays_are_saved_atomically_and_a_changed_file_is_refused(tmp_path):
    with Workspace.create(tmp_path / "ws") as ws:
        probs = np.full((3, 2), 0.5, dtype=np.float32)
        round_id = ws.record_round("train", {"folds": 2}, {}, {"pred_probs": probs})
        rec = ws.store.arrays(round_id)["pred_probs"]
        assert rec.shape == (3, 2) and rec.dtype == "float32"
        assert np.array_equal(ws.load_array(round_id, "pred_probs"), probs)
        assert not list((tmp_path / "ws" / "arrays").glob("*.tmp"))
        np.save(ws.path / rec.path, probs * 2)
        with pytest.raises(ArrayError, match="changed since round"):
            ws.load_array(round_id, "pred_probs")
        with pytest.raises(ArrayError, match="no embeddings array"):
            ws.load_array(round_id, "embeddings")


def test_round_metrics_round_trip(tmp_path):
    with Store.open(tmp_path / "labeler.db", create=True) as store:
        rid = store.add_round("train", {"arch": "resnet18"})
        store.set_round_metrics(rid, {"test_top1": 0.5})
        assert store.rounds()[0].metrics == {"test_top1": 0.5}
        assert store.rounds()[0].params == {"arch": "resnet18"}


def _flag(item_id, priority):
    from labeler.store import Flag

    return Flag(
        item_id=item_id, kind="label_issue", score=priority, suggested_label="a", reasons=[], priority=priority,
        suggested_prob=0.9, top=[["a", 0.9]],
    )  # fmt: skip


def test_review_counts_and_flag_lookup_by_item_stay_within_the_round(tmp_path):
    with Store.open(tmp_path / "labeler.db", create=True) as store:
        store.import_items(_records([f"{n}.jpg" for n in "abcde"]), ["a"], {})
        a, b, c, d, e = (i.id for i in store.items())
        before = store.add_decision(e, reviewer="ann", action="confirm", label="a")  # before flagging: not counted
        r1, r2 = store.add_round("train", {}), store.add_round("train", {})
        store.replace_flags(r1, [_flag(d, 0.9)])
        store.replace_flags(r2, [_flag(a, 0.2), _flag(b, 0.8), _flag(c, 0.5), _flag(e, 0.1)])
        store.add_decision(a, reviewer="ann", action="relabel", label="b")
        store.add_decision(a, reviewer="bob", action="confirm", label="a")  # same item twice: counted once
        undone = store.add_decision(b, reviewer="ann", action="remove")
        store.add_decision(b, reviewer="ann", action="undo", undoes=undone)
        store.add_decision(c, reviewer="bob", action="skip")
        store.add_decision(d, reviewer="bob", action="confirm", label="a")  # flagged in round 1 only
        assert store.review_counts(r2, before) == (4, 1, {"ann": 1, "bob": 2})
        assert [f.item_id for f in store.flags(r2, [c, b, d])] == [b, c]  # by priority; d is round 1's
        assert [f.item_id for f in store.flags(r1, [a, d])] == [d]


def test_json_objects_match_json_dumps_even_where_a_value_holds_the_separator():
    import json

    from labeler.store.bulk import json_objects

    cases = [
        [{}],
        [{}, {}, {"a": "x"}],
        [{"a": "é", "b": 1, "c": None}, {"n": {"m": [1, 2]}}],
        [{"a": "}, {"}, {"b": "y"}],  # the cut would find one piece too many: encoded one by one
        [{"a": [{"b": 1}, {"c": 2}]}, {}],
    ]
    for objects in cases:
        assert json_objects(objects) == [json.dumps(o, ensure_ascii=False) for o in objects], objects
    assert json_objects([]) == []


def _store_before_0005(db, monkeypatch) -> int:
    """A store as the release before 0005 wrote it (flags in ``issues``, with ``quality``) holding one flag."""
    import labeler.store.core

    monkeypatch.setattr(labeler.store.core, "MIGRATIONS", MIGRATIONS[:4])
    with Store.open(db, create=True) as store:
        store.import_items(_records(["x.jpg", "y.jpg"]), ["a"], {"format": "csv"})
        rid = store.add_round("train", {})
        sql = (
            "INSERT INTO issues (round_id, item_id, kind, score, suggested_label, reasons, priority, quality,"
            " suggested_prob, top) VALUES (?, 1, 'label_issue', 0.8, 'a', '[]', 1.8, 0.2, 0.9, '[[\"a\", 0.9]]')"
        )
        store.conn.execute(sql, (rid,))
    monkeypatch.undo()
    return rid


@pytest.mark.parametrize("readonly", [False, True])
def test_a_workspace_from_before_0005_keeps_its_flags(tmp_path, monkeypatch, readonly):
    """A store written when flags kept both score and quality in ``issues`` reads its flags back: migrated
    when opened to write, as it is (nothing written) when opened read-only, as `status` does."""
    db = tmp_path / "labeler.db"
    rid = _store_before_0005(db, monkeypatch)
    before = db.read_bytes()
    with Store.open(db, readonly=readonly) as store:
        assert store.flagged_round() == rid and store.count_flagged() == 1
        (flag,) = store.flags(rid)
        assert (flag.item_id, flag.kind, flag.score, flag.priority, flag.suggested_prob) == (
            1,
            "label_issue",
            0.8,
            1.8,
            0.9,
        )
        assert flag.top == [("a", 0.9)]
    if readonly:
        assert db.read_bytes() == before  # nothing written: no migration
    else:
        with Store.open(db) as store:
            assert store.migrations() == [name for name, _ in MIGRATIONS]


def test_a_full_disk_in_a_transaction_says_so_with_the_database_named(tmp_path):
    """SQLite may roll a transaction back itself on SQLITE_FULL: the error the user sees is the full disk,
    naming the database, never "cannot rollback - no transaction is active" hiding it."""
    from labeler.errors import LabelerError

    with Store.open(tmp_path / "labeler.db", create=True) as store:
        with pytest.raises(LabelerError) as raised, store.transaction():
            store.conn.execute("INSERT INTO classes (idx, name) VALUES (0, 'a')")
            store.conn.execute("ROLLBACK")  # what SQLite does on some SQLITE_FULL errors
            raise sqlite3.OperationalError("database or disk is full")
        message = str(raised.value)
        assert "full" in message and str(tmp_path / "labeler.db") in message and "cannot rollback" not in message
        assert store.conn.execute("SELECT COUNT(*) FROM classes").fetchone()[0] == 0


def test_rows_become_records_by_column_name_whatever_the_table_order(tmp_path):
    """A column a later release adds (or a table whose columns come in another order) does not shift a record's
    fields: decisions, flags and arrays are read by name."""
    from labeler.store import Flag

    with Store.open(tmp_path / "labeler.db", create=True) as store:
        store.import_items(_records(["x.jpg", "y.jpg"]), ["a", "b"], {"format": "csv"})
        item = store.items()[0].id
        store.add_decision(item, reviewer="ann", action="relabel", label="b", reason="typo")
        flag = Flag(
            item_id=item, kind="label_issue", score=0.9, suggested_label="b", reasons=[{"code": "label_issue"}],
            priority=1.9, suggested_prob=0.8, top=[("b", 0.8)], duplicate_group=4, neighbours=[[2, 0.5]],
        )  # fmt: skip
        store.conn.execute("INSERT INTO rounds (kind, params, metrics, created_at) VALUES ('train', '{}', '{}', 'now')")
        round_id = store.conn.execute("SELECT MAX(id) FROM rounds").fetchone()[0]
        store.replace_flags(round_id, [flag])
        for table in ("decisions", "flags"):
            store.conn.execute(f"ALTER TABLE {table} ADD COLUMN added_later TEXT DEFAULT 'x'")
        decision = store.decisions()[0]
        assert (decision.item_id, decision.reviewer, decision.action, decision.label) == (item, "ann", "relabel", "b")
        assert decision.reason == "typo" and decision.batch is None
        assert store.flags(round_id) == [flag]
