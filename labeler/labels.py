"""An item's current label, in one place.

The decision log is append-only. A decision is *live* unless it is a skip, an undo, or undone by
a later undo. An item's *effective* decision is its latest live one; its current label is that
decision's label (None when it is a removal), else the label it was imported with. Items are
*in conflict* when their reviewers' latest live decisions give different results and nobody
adjudicated after them. Every module that needs any of this asks here (the store's
``effective_decisions`` is the same rule in SQL, for all items at once).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from labeler.store import Decision

ADJUDICATED = "adjudicated"  # the reason code of a decision that settles a conflict


def class_index(vocab) -> dict[str, int]:
    """{class: its column} in a round's class list (the column order of its arrays)."""
    return {name: i for i, name in enumerate(vocab)}


def label_codes(labels, vocab, *, missing: int | None = None) -> np.ndarray:
    """Each label's column in ``vocab``; a label not in it raises KeyError, or becomes ``missing`` when given."""
    index = class_index(vocab)
    if missing is None:
        return np.array([index[label] for label in labels], dtype=np.int64)
    return np.array([index.get(label, missing) for label in labels], dtype=np.int64)


def undone_ids(decisions: Iterable[Decision]) -> set[int]:
    """Ids of the decisions that a later undo reverted."""
    return {d.undoes for d in decisions if d.undoes is not None}


def live(decisions: list[Decision]) -> list[Decision]:
    """The decisions that count, in log order: no skips, no undos, none that an undo reverted."""
    undone = undone_ids(decisions)
    return [d for d in decisions if d.action not in ("skip", "undo") and d.id not in undone]


def effective(decisions: list[Decision]) -> Decision | None:
    """The latest live decision of one item's ``decisions`` (log order), or None."""
    found = live(decisions)
    return found[-1] if found else None


def current_label(given: str, decision: Decision | None) -> str | None:
    """The current label of an item imported as ``given`` whose effective decision is ``decision``
    (None: removed)."""
    if decision is None:
        return given
    if decision.action == "remove":
        return None
    return decision.label or given


def latest_per_reviewer(decisions: list[Decision]) -> list[Decision]:
    """Each reviewer's latest live decision on one item, oldest first."""
    latest: dict[str, Decision] = {}
    for d in live(decisions):
        latest[d.reviewer] = d
    return sorted(latest.values(), key=lambda d: d.id)


def in_conflict(decisions: list[Decision]) -> bool:
    """Reviewers' latest live decisions give different results, with no adjudication after them."""
    latest = latest_per_reviewer(decisions)
    if not latest or latest[-1].reason == ADJUDICATED:
        return False
    return len({None if d.action == "remove" else d.label for d in latest}) > 1


def conflicted_items(store) -> list[int]:
    """Items whose reviewers' latest decisions disagree and that nobody adjudicated since."""
    return [item for item in store.items_decided_by_several() if in_conflict(store.item_decisions(item))]


def live_labels_by_reviewer(decisions: list[Decision]) -> dict[str, dict[int, str]]:
    """{reviewer: {item id: the label their latest live confirm or relabel gave it}}."""
    out: dict[str, dict[int, str]] = {}
    for d in live(decisions):
        if d.action in ("confirm", "relabel") and d.label:
            out.setdefault(d.reviewer, {})[d.item_id] = d.label
    return out


def label_table(ws, *, exclude_conflicts: bool = False, keep_removed: bool = False):
    """Items (status ok) with ``label`` = current label and ``given`` = imported label (a DataFrame).

    Removed items are dropped (``keep_removed``: kept, with their given label, flagged in a
    ``removed`` column); with ``exclude_conflicts`` so are items whose reviewers disagree and
    that nobody adjudicated yet."""
    frame = ws.store.item_table()
    frame["given"] = frame["label"]
    decisions = ws.store.effective_decisions()
    removed = {i for i, d in decisions.items() if d.action == "remove"}
    # a removed item keeps its given label here (it is left out, or marked in ``removed``)
    frame["label"] = [current_label(label, decisions.get(i)) or label for i, label in zip(frame["id"], frame["label"])]
    frame["reviewed"] = frame["id"].isin(decisions.keys())
    frame["removed"] = frame["id"].isin(removed)
    if exclude_conflicts:
        frame["removed"] |= frame["id"].isin(conflicted_items(ws.store))
    return frame if keep_removed else frame[~frame["removed"]].reset_index(drop=True)


def current_class_counts(store) -> dict[str, dict[str, int]]:
    """{label: {split: n}} by current label (after review; removed items left out), from the counts by given
    label (``store.class_counts``) and the effective decisions."""
    counts = {label: dict(by_split) for label, by_split in store.class_counts().items()}
    decisions = store.effective_decisions()
    for item_id, item in store.items_by_id(decisions).items():
        if item.status != "ok":
            continue
        now = current_label(item.label, decisions[item_id])
        if now == item.label:
            continue
        counts[item.label][item.split] -= 1
        if now is not None:
            counts.setdefault(now, {"train": 0, "valid": 0, "test": 0})[item.split] += 1
    return counts
