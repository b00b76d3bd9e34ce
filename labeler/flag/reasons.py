"""Why an image is in the review queue: each reason is one small registered check (doubtlab's shape).

A reason has a code (stored with the flag; a review-app filter), a sentence for reports and the filter,
whether it puts the image in tier 1 (ahead of every tier-0 image), and a check that, for one row of the
queue's ``Signals``, returns the line the reviewer reads, or None when it does not apply. Reasons are
listed in registration order; the first that applies is the entry's kind. A new signal is one function
here: its code, text and filter follow. numpy only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CONTRADICTION_PROB = 0.8  # a reviewed item comes back only when the blend gives another label this much
TYPE_NAMES = {1: "upper body", 2: "lower body", 3: "full body"}  # DeepFashion's category_type


@dataclass
class Signals:
    """What the checks read, row-aligned: the queue's evidence and what `build_queue` computed from it."""

    item_ids: np.ndarray
    vocab: list[str]
    labels: np.ndarray  # current label codes
    pred_probs: np.ndarray  # the CNN's out-of-sample probabilities
    suggested: np.ndarray  # the suggested label code (cleanlab on the blend)
    suggested_prob: np.ndarray
    votes: np.ndarray  # (N, K) the neighbour vote (similarity-weighted shares, same group left out)
    is_issue: np.ndarray  # the flagged set
    also_doubted: np.ndarray  # outside the flagged set, but in cleanlab's filter (on the CNN or the blend)
    duplicate_groups: np.ndarray  # near-duplicate group per row, -1 if none
    conflict: np.ndarray  # in a near-duplicate group with more than one label
    outlier: np.ndarray  # outlier score in [0, 1]
    is_outlier: np.ndarray
    neighbour_rows: np.ndarray  # (N, k) nearest rows, -1 where fewer
    reviewed: dict  # item_id -> (reviewer, action, label)
    class_types: list | None  # per class code: DeepFashion's category_type, or None


@dataclass(frozen=True)
class Reason:
    code: str
    summary: str  # what it means, for reports and the review app's filter
    tier: int  # 1: ahead of every tier-0 image
    check: Callable[[int, Signals], str | dict | None] | None  # None: added outside the queue (`labeler sample`)


REASONS: dict[str, Reason] = {}


def reason(code: str, summary: str, *, tier: int = 0):
    """Register the decorated ``check(row, signals)`` as reason ``code``."""

    def register(check):
        REASONS[code] = Reason(code, summary, tier, check)
        return check

    return register


def explain(row: int, s: Signals) -> list[dict]:
    """Every reason that applies to ``row``, in registration order: [{"code", "text", ...}]."""
    found = []
    for r in REASONS.values():
        line = r.check(row, s) if r.check is not None else None
        if line:
            found.append({"code": r.code, "text": line} if isinstance(line, str) else {"code": r.code, **line})
    return found


def tier(reasons: list[dict]) -> int:
    return max((REASONS[r["code"]].tier for r in reasons), default=0)


def contradicted(row: int, s: Signals) -> bool:
    """A reviewed item the new round flags with another label at least CONTRADICTION_PROB likely."""
    return bool(s.is_issue[row] and s.suggested_prob[row] >= CONTRADICTION_PROB and s.suggested[row] != s.labels[row])


@reason("contradicts_review", "reviewed, but the new round disagrees strongly", tier=1)
def _contradicts_review(row: int, s: Signals):
    item_id = int(s.item_ids[row])
    if item_id not in s.reviewed or not contradicted(row, s):
        return None
    reviewer, action, label = s.reviewed[item_id]
    return f"{reviewer} chose {label} ({action}); now {s.suggested_prob[row]:.2f} {s.vocab[s.suggested[row]]}"


@reason("duplicate_conflict", "near-duplicate with a conflicting label", tier=1)
def _duplicate_conflict(row: int, s: Signals):
    if not s.conflict[row]:
        return None
    mates = np.flatnonzero(s.duplicate_groups == s.duplicate_groups[row])
    other = next(m for m in mates if s.labels[m] != s.labels[row])
    other_id = int(s.item_ids[other])
    return {"text": f"near-duplicate of #{other_id} labelled {s.vocab[s.labels[other]]}", "item": other_id}


@reason("label_issue", "the model and the neighbours doubt the label", tier=1)
def _label_issue(row: int, s: Signals):
    return _model_says(row, s) if s.is_issue[row] else None


@reason("possible_label_issue", "cleanlab's filter doubts the label too; less likely wrong than the flagged set")
def _possible_label_issue(row: int, s: Signals):
    return _model_says(row, s) + " (below the flagged set)" if s.also_doubted[row] else None


def _model_says(row: int, s: Signals) -> str:
    """ "model and neighbours: 0.91 Dress; labelled Skirt": the suggestion with the probability the queue CSV's
    ``suggested_prob`` holds (the blend of the CNN and the neighbour vote), and the current label it doubts."""
    suggested = s.vocab[s.suggested[row]]
    return f"model and neighbours: {float(s.suggested_prob[row]):.2f} {suggested}; labelled {s.vocab[s.labels[row]]}"


def _types(row: int, s: Signals):
    """(given's type, suggestion's type) of a flagged row whose suggestion is another class, else None."""
    given, suggested = int(s.labels[row]), int(s.suggested[row])
    if not s.is_issue[row] or not s.class_types or given == suggested:
        return None
    a, b = s.class_types[given], s.class_types[suggested]
    return None if a is None or b is None else (a, b)


@reason("cross_type", "the suggestion is another kind of garment (e.g. upper vs lower body): almost surely wrong")
def _cross_type(row: int, s: Signals):
    types = _types(row, s)
    if types is None or types[0] == types[1]:
        return None
    given, suggested = s.vocab[s.labels[row]], s.vocab[s.suggested[row]]
    return f"{given} is {TYPE_NAMES.get(types[0], types[0])}, {suggested} is {TYPE_NAMES.get(types[1], types[1])}"


@reason("within_type", "the suggestion is the same kind of garment: a near-synonym, often a matter of policy")
def _within_type(row: int, s: Signals):
    types = _types(row, s)
    if types is None or types[0] != types[1]:
        return None
    given, suggested = s.vocab[s.labels[row]], s.vocab[s.suggested[row]]
    return f"{given} and {suggested} are both {TYPE_NAMES.get(types[0], types[0])}: a near-synonym?"


@reason("neighbours_disagree", "its nearest images carry another label")
def _neighbours_disagree(row: int, s: Signals):
    vote = s.votes[row]
    given = int(s.labels[row])
    if vote[given] >= 0.5:
        return None
    others = vote.copy()
    others[given] = -1.0
    best = int(others.argmax())  # the same vote the share comes from: never the given label
    return (
        f"{1 - vote[given]:.0%} of the neighbour vote is for other labels "
        f"(the largest: {s.vocab[best]} {vote[best]:.0%}; {s.vocab[given]} itself {vote[given]:.0%})"
    )


@reason("outlier", "unlike the other images (check it is usable)")
def _outlier(row: int, s: Signals):
    return f"among the {1 - s.outlier[row]:.1%} most isolated images" if s.is_outlier[row] else None


REASONS["audit"] = Reason("audit", "random audit sample: measures how many wrong labels the queue misses", 0, None)
