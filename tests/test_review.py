"""Review logic without a browser: actions, undo, bulk, filters, claims, conflicts."""

import pytest

from labeler.errors import LabelerError
from labeler.review import CLAIM_SECONDS, Filters, ReviewSession
from labeler.workspace import Workspace


@pytest.fixture
def ws(cli, tmp_path):
    from tests.helpers import flagged_workspace

    counts = {"hat": 20, "shoe": 20, "skirt": 20}
    flagged_workspace(cli, tmp_path, train=counts, test={k: 4 for k in counts}, seed=2, doubt=0.25)
    with Workspace.open(tmp_path / "ws") as w:
        yield w


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def test_every_action_is_logged_with_old_and_new_label(ws):
    s = ReviewSession(ws, "ann")
    first = s.next_item()
    assert first is not None and first.reasons and first.top and first.file.startswith(str(ws.root))
    s.decide(first.item_id, "accept")
    d = ws.store.decisions()[-1]
    assert (d.reviewer, d.item_id, d.old_label) == ("ann", first.item_id, first.given)
    assert d.label == first.suggested and d.action in ("relabel", "confirm") and d.reason == first.reasons[0]["code"]
    second = s.next_item()
    assert second.item_id != first.item_id
    s.decide(second.item_id, "keep")
    assert ws.store.decisions()[-1].action == "confirm" and ws.store.decisions()[-1].label == second.given
    third = s.next_item()
    s.decide(third.item_id, "relabel", "shoe" if third.given != "shoe" else "hat")
    fourth = s.next_item()
    s.decide(fourth.item_id, "remove", reason="several_garments")
    assert ws.store.decisions()[-1].action == "remove" and s.current_label(fourth.item_id) is None
    fifth = s.next_item()
    s.decide(fifth.item_id, "skip")
    assert s.next_item().item_id not in {first.item_id, second.item_id, third.item_id, fourth.item_id, fifth.item_id}
    assert s.progress()["reviewed"] == 4 and s.progress()["per_reviewer"] == {"ann": 4}


def test_bad_decisions_are_refused(ws):
    s = ReviewSession(ws, "ann")
    item = s.next_item()
    with pytest.raises(LabelerError, match="not a class"):
        s.decide(item.item_id, "relabel", "sock")
    with pytest.raises(LabelerError, match="removal needs a reason"):
        s.decide(item.item_id, "remove")
    with pytest.raises(LabelerError, match="reviewer name"):
        ReviewSession(ws, "  ")


def test_undo_appends_a_row_and_shows_the_item_again(ws):
    s = ReviewSession(ws, "ann")
    item = s.next_item()
    s.decide(item.item_id, "remove", reason="unusable")
    assert s.undo().item_id == item.item_id
    assert [d.action for d in ws.store.decisions()] == ["remove", "undo"]
    assert s.current_label(item.item_id) == item.given
    assert s.next_item().item_id == item.item_id  # back in the queue, first
    assert s.undo() is None  # the remove is undone and an undo is not itself undoable


def test_filters_by_reason_and_labels(ws):
    s = ReviewSession(ws, "ann")
    item = s.next_item(Filters(current="hat"))
    assert item.current == "hat"
    skirts = {f.item_id for f in ws.store.flags(s.round_id) if f.suggested_label == "skirt"} - {item.item_id}
    assert skirts  # the fixture's doubted rows include suggested skirts
    item = s.next_item(Filters(suggested="skirt"), exclude=(item.item_id,))
    assert item.item_id in skirts and item.suggested == "skirt"
    item = s.next_item(Filters(reason="label_issue"))
    assert item is not None and "label_issue" in {r["code"] for r in item.reasons}
    assert s.next_item(Filters(reason="no_such_reason")) is None


def test_claims_keep_two_reviewers_apart_and_expire(ws):
    clock = Clock()
    ann, bob = ReviewSession(ws, "ann", clock=clock), ReviewSession(ws, "bob", clock=clock)
    a = ann.next_item()
    b = bob.next_item()
    assert a.item_id != b.item_id
    clock.now += CLAIM_SECONDS + 1  # ann walked away
    assert ReviewSession(ws, "cid", clock=clock).next_item().item_id in {a.item_id, b.item_id}


def test_conflicting_decisions_are_kept_and_marked_until_adjudicated(ws):
    clock = Clock()
    ann, bob = ReviewSession(ws, "ann", clock=clock), ReviewSession(ws, "bob", clock=clock)
    item = ann.next_item()
    clock.now += CLAIM_SECONDS + 1
    same = bob.next_item(exclude=())  # ann's claim expired before she decided
    assert same.item_id == item.item_id
    ann.decide(item.item_id, "keep")
    bob.decide(item.item_id, "remove", reason="not_garment")
    assert ann.conflicts() == [item.item_id] and ann.progress()["conflicts"] == 1
    assert len(ws.store.item_decisions(item.item_id)) == 2
    judge = ReviewSession(ws, "judge", clock=clock)
    shown = judge.next_item(Filters(reason="conflict"))
    assert shown.item_id == item.item_id
    judge.decide(item.item_id, "keep")
    assert ws.store.decisions()[-1].reason == "adjudicated" and judge.conflicts() == []


def test_group_decision_logs_each_member(cli, tmp_path):
    import numpy as np

    from tests.helpers import make_class_folders, record_synthetic_round

    make_class_folders(tmp_path / "ds", {"hat": 12, "shoe": 12}, split="train")
    cli("import", tmp_path / "ws", tmp_path / "ds")
    with Workspace.open(tmp_path / "ws") as w:
        rid = record_synthetic_round(w, seed=3, doubt=0.0)
        # make items 1 and 2 (a hat) and the first shoe near-identical: a conflicting duplicate group
        arrays = {name: w.load_array(rid, name) for name in w.store.arrays(rid)}
        emb = arrays["embeddings"]
        ids = arrays["embed_ids"].tolist()
        shoe = next(i.id for i in w.store.items() if i.label == "shoe")
        original = w.image_path(w.store.item(1).file).read_bytes()
        for member in (2, shoe):
            emb[ids.index(member)] = emb[ids.index(1)]
            w.image_path(w.store.item(member).file).write_bytes(original)  # the same photo, filed twice
        w.record_round("train", w.store.rounds()[0].params, {}, arrays)
    cli("flag", tmp_path / "ws")
    with Workspace.open(tmp_path / "ws") as w:
        s = ReviewSession(w, "ann")
        first = s.next_item()
        assert first.reasons[0]["code"] == "duplicate_conflict" and len(first.group) == 2
        outcome = s.decide_group(first.item_id, "relabel", "hat")
        assert len(outcome.decided) == 3 and not outcome.skipped
        decided = [d for d in w.store.decisions() if d.action in ("relabel", "confirm")]
        assert {d.item_id for d in decided} == {1, 2, shoe} and all(d.label == "hat" for d in decided)
        assert np.isfinite(first.priority)


def test_review_of_a_workspace_never_trained_says_to_train_first(cli, tmp_path):
    from tests.helpers import make_class_folders

    make_class_folders(tmp_path / "ds", {"a": 3, "b": 3})
    cli("import", tmp_path / "ws", tmp_path / "ds")
    out = cli("review", tmp_path / "ws", expect=2).output
    assert "labeler train" in out and "then `labeler flag" in out
