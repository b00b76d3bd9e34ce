"""Reviewing the queue: what a reviewer sees next, and every decision they make.

A ``ReviewSession`` is one reviewer working the latest flagged round. Each decision is one
committed row of the append-only log before the next item is chosen; an undo is a new row.
Items are claimed while shown, so concurrent reviewers are not shown the same item; a claim
expires after ``CLAIM_SECONDS`` of inactivity. When two reviewers' latest decisions on an
item disagree, both stay in the log and the item is in conflict until someone adjudicates
(decides it again with the conflicts filter on).
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field

from labeler.errors import LabelerError, WorkspaceError
from labeler.labels import ADJUDICATED, conflicted_items, current_label, effective, in_conflict, latest_per_reviewer
from labeler.store import Decision
from labeler.store.records import Filters
from labeler.workspace import Workspace

CLAIM_SECONDS = 600
REMOVE_REASONS = {"not_garment": "not a garment", "several_garments": "several garments", "unusable": "unusable image"}
_DUPLICATE_TEXT = re.compile(r"near-duplicate of #(\d+) ")


@dataclass
class Neighbour:
    item_id: int
    file: str  # absolute path under the dataset root
    label: str  # current label
    similarity: float


@dataclass
class ReviewItem:
    item_id: int
    path: str  # as imported
    file: str  # absolute path under the dataset root
    split: str
    given: str
    current: str | None  # None when removed
    suggested: str
    suggested_prob: float
    top: list[tuple[str, float]]
    reasons: list[dict]
    priority: float
    group: list[int] = field(default_factory=list)  # other members of its near-duplicate group
    like_current: list[Neighbour] = field(default_factory=list)
    like_suggested: list[Neighbour] = field(default_factory=list)
    others: list[Neighbour] = field(default_factory=list)
    contradicts: bool = False
    competing: list[Decision] = field(default_factory=list)  # in conflict: each reviewer's latest decision


@dataclass
class GroupOutcome:
    """What a whole-group decision did: the items decided, and the members left alone with why."""

    decided: list[int]
    skipped: list[tuple[int, str]]


@dataclass
class Undone:
    """What an undo reverted: the item shown again and the decisions undone (several for a group)."""

    item_id: int
    decisions: list[Decision]


class ReviewSession:
    """One reviewer on the latest flagged round (see the module docstring)."""

    def __init__(self, ws: Workspace, reviewer: str, *, clock=time.time):
        if not reviewer or not reviewer.strip():
            raise LabelerError("a reviewer name is needed (--reviewer NAME)")
        self.ws, self.store, self.reviewer, self.clock = ws, ws.store, reviewer.strip(), clock
        self.round_id = self.store.flagged_round()
        if self.round_id is None:
            raise WorkspaceError(no_queue(ws))
        self.after = self.store.get_meta("flagged_after_decision", 0)
        self.vocab = self.store.classes()

    # -- what to show -------------------------------------------------------------------
    def next_item(self, filters: Filters | None = None, *, exclude: tuple[int, ...] = ()) -> ReviewItem | None:
        """Claim and return the next item of the (filtered) queue; None when it is done."""
        f = filters or Filters()
        if f.reason == "conflict":
            return self._next_conflict(exclude, f)
        now = self.clock()
        item_id = self._next_flag(f, exclude, now)
        if item_id is None:
            return None
        self.store.claim(item_id, self.reviewer, now)
        return self.item(item_id)

    def _next_flag(self, filters: Filters, exclude, now: float) -> int | None:
        store, after = self.store, self.after
        return store.next_flag(
            self.round_id,
            self.reviewer,
            after_decision=after,
            claim_seconds=CLAIM_SECONDS,
            now=now,
            exclude=exclude,
            filters=filters,
        )

    def peek_next(self, current: int, filters: Filters | None = None) -> ReviewItem | None:
        """The item after ``current`` without claiming it (for prefetching its image)."""
        f = filters or Filters()
        if f.reason == "conflict":
            return None
        item_id = self._next_flag(f, (current,), self.clock())
        return None if item_id is None else self.item(item_id, neighbours=False)

    def item(self, item_id: int, *, neighbours: bool = True) -> ReviewItem:
        """Everything the review screen shows for ``item_id``."""
        it = self.store.item(item_id)
        flags = self.store.flags(self.round_id, [item_id])
        if not flags:
            raise WorkspaceError(f"item #{item_id} is not flagged in round {self.round_id}")
        flag = flags[0]
        shown = ReviewItem(
            item_id=item_id,
            path=it.path,
            file=str(self.ws.image_path(it.file)),
            split=it.split,
            given=it.label,
            current=self.current_label(item_id),
            suggested=flag.suggested_label,
            suggested_prob=flag.suggested_prob,
            top=[(str(a), float(b)) for a, b in flag.top],
            reasons=self._fresh(flag.reasons),
            priority=flag.priority,
            contradicts=flag.contradicts,
        )
        if self.is_conflicted(item_id):
            shown.competing = latest_per_reviewer(self.store.item_decisions(item_id))
        if flag.duplicate_group >= 0:
            shown.group = [
                f.item_id
                for f in self.store.flags_in_group(self.round_id, flag.duplicate_group)
                if f.item_id != item_id
            ]
        if neighbours:
            self._add_neighbours(shown, flag.neighbours)
        return shown

    def _fresh(self, reasons: list[dict]) -> list[dict]:
        """Reasons as of now: a near-duplicate's label is its current one, not the one at flagging time."""
        out = []
        for r in reasons:
            other = r.get("item")
            if other is None and r["code"] == "duplicate_conflict":  # flags stored before the item was kept
                match = _DUPLICATE_TEXT.match(r["text"])
                other = int(match.group(1)) if match else None
            if other is not None:
                label = self.current_label(int(other))
                now = f"labelled {label}" if label is not None else "since removed"
                r = {**r, "item": int(other), "text": f"near-duplicate of #{other} {now}"}
            out.append(r)
        return out

    def _add_neighbours(self, shown: ReviewItem, neighbours: list) -> None:
        for other_id, similarity in neighbours:
            other = self.store.item(int(other_id))
            n = Neighbour(
                int(other_id),
                str(self.ws.image_path(other.file)),
                self.current_label(other_id) or "removed",
                similarity,
            )
            if n.label == shown.current:
                shown.like_current.append(n)
            elif n.label == shown.suggested:
                shown.like_suggested.append(n)
            else:
                shown.others.append(n)

    def current_label(self, item_id: int) -> str | None:
        """The label after the latest effective decision (None if removed), else the given label."""
        return current_label(self.store.item(item_id).label, effective(self.store.item_decisions(item_id)))

    # -- decisions ----------------------------------------------------------------------
    def decide(
        self,
        item_id: int,
        action: str,
        label: str | None = None,
        reason: str | None = None,
        *,
        batch: str | None = None,
    ) -> int:
        """Log one decision (committed before returning) and release the claim. Actions:
        accept (the suggestion), keep (the current label), relabel (to ``label``), remove (``reason``), skip."""
        current = self.current_label(item_id)
        if action == "accept":
            label = self.store.flags(self.round_id, [item_id])[0].suggested_label
            action = "relabel"
        elif action == "keep":
            label, action = current, "confirm"
        if action == "relabel":
            if label not in self.vocab:
                raise LabelerError(f"{label!r} is not a class of this workspace ({', '.join(self.vocab)})")
            action = "confirm" if label == current else "relabel"
        elif action == "remove":
            if reason not in REMOVE_REASONS:
                raise LabelerError(f"removal needs a reason: {', '.join(REMOVE_REASONS)}")
            label = None
        elif action not in ("confirm", "skip"):
            raise LabelerError(f"unknown action {action!r}")
        if action == "skip":
            label = None
        if reason is None and action != "skip":
            reason = self._flag_kind(item_id)
        if self.is_conflicted(item_id):
            reason = ADJUDICATED
        decision = self.store.add_decision(
            item_id, reviewer=self.reviewer, action=action, label=label, old_label=current, reason=reason, batch=batch
        )
        self.store.release(item_id, self.reviewer)
        return decision

    def decide_group(
        self, item_id: int, action: str, label: str | None = None, reason: str | None = None
    ) -> GroupOutcome:
        """Apply one decision to ``item_id`` and the members of its near-duplicate group, one row each, in
        one transaction sharing a batch token (an undo reverts them together). Members that another
        reviewer decided since flagging, or has on screen, are left alone and listed as skipped."""
        if action == "accept":
            label = self.store.flags(self.round_id, [item_id])[0].suggested_label
            action = "relabel"
        batch = uuid.uuid4().hex
        outcome = GroupOutcome([], [])
        with self.store.transaction():
            for member in [item_id, *self.item(item_id, neighbours=False).group]:
                why = None if member == item_id else self._held_elsewhere(member)
                if why:
                    outcome.skipped.append((member, why))
                    continue
                self.decide(member, action, label, reason, batch=batch)
                outcome.decided.append(member)
        return outcome

    def _held_elsewhere(self, item_id: int) -> str | None:
        """Why another reviewer's work on ``item_id`` keeps a group decision off it; None when free."""
        for d in reversed(self.store.item_decisions(item_id)):
            if d.id > self.after and d.reviewer != self.reviewer and d.action not in ("skip", "undo"):
                return f"decided by {d.reviewer}"
        claim = self.store.claim_of(item_id)
        if claim and claim[0] != self.reviewer and claim[1] > self.clock() - CLAIM_SECONDS:
            return f"on {claim[0]}'s screen"
        return None

    def claim_state(self, item_id: int) -> str:
        """'held' (this reviewer's unexpired claim), 'expired' (theirs, or nobody's), or another reviewer's name."""
        claim = self.store.claim_of(item_id)
        if claim is None or claim[1] <= self.clock() - CLAIM_SECONDS:
            return "expired"
        return "held" if claim[0] == self.reviewer else claim[0]

    def undo(self) -> Undone | None:
        """Undo this reviewer's latest decision (new 'undo' rows; a group decision as a whole) and claim
        its item again, to be shown; None when there is nothing to undo."""
        last = self.store.last_undoable(self.reviewer)
        if last is None:
            return None
        targets = self.store.batch_decisions(last.batch) if last.batch else [last]
        targets = [d for d in targets if d.reviewer == self.reviewer] or [last]
        with self.store.transaction():
            for d in targets:
                self.store.add_decision(d.item_id, reviewer=self.reviewer, action="undo", undoes=d.id, batch=d.batch)
        shown = targets[0].item_id
        self.store.claim(shown, self.reviewer, self.clock())
        return Undone(shown, targets)

    def _flag_kind(self, item_id: int) -> str | None:
        flags = self.store.flags(self.round_id, [item_id])
        return flags[0].kind if flags else None

    # -- conflicts and progress ---------------------------------------------------------
    def is_conflicted(self, item_id: int) -> bool:
        return in_conflict(self.store.item_decisions(item_id))

    def conflicts(self) -> list[int]:
        return conflicted_items(self.store)

    def _next_conflict(self, exclude, filters: Filters) -> ReviewItem | None:
        for item_id in self.conflicts():
            if item_id in exclude:
                continue
            flags = self.store.flags(self.round_id, [item_id])
            if not flags or not filters.matches(self.current_label(item_id), flags[0].suggested_label):
                continue
            self.store.claim(item_id, self.reviewer, self.clock())
            return self.item(item_id)
        return None

    def progress(self) -> dict:
        flagged, decided, per_reviewer = self.store.review_counts(self.round_id, self.after)
        return {
            "flagged": flagged,
            "reviewed": decided,
            "per_reviewer": per_reviewer,
            "conflicts": len(self.conflicts()),
        }


def no_queue(ws: Workspace) -> str:
    """What to run before reviewing a workspace that has no flagged round: train first, or only flag."""
    if not ws.store.rounds():
        return f"{ws.path} has no queue yet: run `labeler train {ws.path}`, then `labeler flag {ws.path}`"
    return f"{ws.path} has no flagged round; run `labeler flag {ws.path}` first"
