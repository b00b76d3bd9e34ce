"""labeler.labels: the one rule for an item's current label, live decisions and conflicts."""

from labeler import labels
from labeler.store import Decision


def _d(id_, action, label=None, reviewer="ann", undoes=None, reason=None, item=1):
    return Decision(id_, item, reviewer, action, label, None, reason, undoes, "t", None)


def test_current_label_follows_the_latest_live_decision():
    log = [_d(1, "relabel", "dress"), _d(2, "skip"), _d(3, "relabel", "skirt"), _d(4, "undo", undoes=3)]
    assert [d.id for d in labels.live(log)] == [1]  # no skip, no undo, nothing undone
    assert labels.current_label("top", labels.effective(log)) == "dress"
    assert labels.current_label("top", labels.effective(log[:1] + [_d(5, "remove")])) is None
    assert labels.current_label("top", labels.effective([_d(6, "skip")])) == "top"  # a skip changes nothing


def test_conflicts_need_disagreeing_latest_decisions_and_no_adjudication():
    agree = [_d(1, "relabel", "dress"), _d(2, "confirm", "dress", reviewer="bob")]
    disagree = [_d(1, "relabel", "dress"), _d(2, "relabel", "skirt", reviewer="bob")]
    settled = disagree + [_d(3, "relabel", "skirt", reason=labels.ADJUDICATED)]
    undone = disagree + [_d(3, "undo", reviewer="bob", undoes=2)]
    assert [labels.in_conflict(log) for log in (agree, disagree, settled, undone)] == [False, True, False, False]
    assert [d.reviewer for d in labels.latest_per_reviewer(disagree)] == ["ann", "bob"]
    assert labels.live_labels_by_reviewer(disagree + [_d(4, "remove", reviewer="ann")]) == {
        "ann": {1: "dress"},
        "bob": {1: "skirt"},
    }
