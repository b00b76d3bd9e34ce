"""What the review UI does on each event, without Gradio: plain values in, a ``View`` out.

Every action the browser sends names the item that was on screen when the key was pressed
(``Command.item``). The server remembers which item it last showed each reviewer and refuses an
action on any other (a key pressed before the next image was painted, a second browser, an
expired claim that another reviewer picked up): nothing is stored and the reviewer's current item
is shown again with a note. One lock serialises the handlers, as the store's SQLite connection is
shared by Gradio's worker threads; each handler takes milliseconds.
"""

from __future__ import annotations

import html
import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from labeler.app.render import (
    class_codes,
    describe,
    image_url,
    neighbours_html,
    notes_html,
    panel,
    pixel_size,
    render_view,
)
from labeler.boxes import item_box
from labeler.errors import LabelerError
from labeler.export import export_labels
from labeler.flag.reasons import REASONS
from labeler.remaining import class_error_rates, plot_class_error_rates, workspace_estimate
from labeler.review import CLAIM_SECONDS, REMOVE_REASONS, Filters, ReviewItem, ReviewSession, no_queue
from labeler.status import workspace_status
from labeler.workspace import Workspace

DECISIONS = ("accept", "keep", "relabel", "remove", "skip")
ESTIMATE_EVERY = 10  # decisions between two remaining-errors estimates on the review screen
REASON_CHOICES = [*REASONS, "conflict"]  # the queue's reasons, and items reviewers decided differently


@dataclass
class Command:
    """One action from the browser: what, on which item (the one on screen at the key press)."""

    action: str  # show | accept | keep | relabel | remove | skip | undo
    item: int | None = None
    label: str | None = None
    reason: str | None = None
    group: bool = False

    @classmethod
    def parse(cls, data: dict | None) -> Command:
        data = data or {}
        item = data.get("item")
        return cls(
            action=str(data.get("action") or "show"),
            item=int(item) if item not in (None, "", "null") else None,
            label=data.get("label") or None,
            reason=data.get("reason") or None,
            group=bool(data.get("group")),
        )


@dataclass
class View:
    """Everything on the review screen for one item (or the empty-queue / who-are-you screen)."""

    item_id: int | None
    seq: int
    image_html: str
    panel_html: str
    prefetch_html: str
    neighbours_html: str
    progress: str
    reviewer: str = ""
    elapsed_ms: float = 0.0
    notes: list[str] = field(default_factory=list)


class ReviewUI:
    """The review app's state and handlers for one workspace."""

    def __init__(self, workspace: str | Path, default_reviewer: str | None = None, stop_below: float | None = None):
        self.ws = Workspace.open(workspace)
        self.stop_below = stop_below
        self._estimate: tuple[int, float, dict | None] = (-1, 0.0, None)  # (decision id, time, estimate)
        self.default_reviewer = (default_reviewer or "").strip()
        self.lock = threading.Lock()
        self.sessions: dict[str, ReviewSession] = {}
        self.on_screen: dict[str, int | None] = {}  # reviewer -> the item last shown to them
        self.vocab = self.ws.store.classes()
        self.codes = class_codes(self.vocab)
        self._seq = itertools.count(1)
        if self.ws.store.flagged_round() is None:
            raise LabelerError(no_queue(self.ws))

    def session(self, reviewer: str) -> ReviewSession:
        if reviewer not in self.sessions:
            self.sessions[reviewer] = ReviewSession(self.ws, reviewer)
        return self.sessions[reviewer]

    # -- handlers -----------------------------------------------------------------------
    def handle(self, reviewer: str | None, command: Command, filters: Filters | None = None) -> View:
        """Run one command from the browser and return the next screen."""
        started = time.perf_counter()
        name = (reviewer or "").strip()
        if not name:
            return self._ask_name(started)
        with self.lock:
            s = self.session(name)
            if command.action == "show":
                if command.item is not None and command.item == self.on_screen.get(name):
                    # a stale page's item keeps its claim; the item the server showed last is let go
                    self.ws.store.release(command.item, name)
                    self.on_screen.pop(name, None)
                return self._next(s, filters, started)
            if command.action == "undo":
                return self._undo(s, filters, started, shown=command.item)
            if command.action not in DECISIONS:
                raise LabelerError(f"unknown action {command.action!r}")
            refusal = self._refusal(s, command)
            if refusal:
                current = self.on_screen.get(name)
                item = s.item(current) if current is not None else s.next_item(filters)
                return self._view(s, item, filters, started, notes=[refusal])
            notes = self._decide(s, command)
            return self._next(s, filters, started, notes=notes)

    def show(self, reviewer: str | None, filters: Filters | None = None) -> View:
        return self.handle(reviewer, Command("show"), filters)

    def act(
        self,
        reviewer: str | None,
        item_id: int | None,
        action: str,
        *,
        label: str | None = None,
        reason: str | None = None,
        group: bool = False,
        filters: Filters | None = None,
    ) -> View:
        """Commit one decision on ``item_id`` (the item on screen), then the next view."""
        return self.handle(reviewer, Command(action, item_id, label, reason, group), filters)

    def undo(self, reviewer: str | None, filters: Filters | None = None, item_id: int | None = None) -> View:
        return self.handle(reviewer, Command("undo", item_id), filters)

    def export(self, include_removed: bool = False) -> list[str]:
        """Write the corrected CSV and the audit to the workspace's exports/ folder; return their paths."""

        folder = self.ws.path / "exports"
        folder.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out, audit = folder / f"labels-corrected-{stamp}.csv", folder / f"audit-{stamp}.csv"
        with self.lock:
            export_labels(self.ws, out, audit=audit, include_removed=include_removed, force=True)
        return [str(out), str(audit)]

    def image_file(self, item_id: int) -> Path | None:
        """The image file of a workspace item (None for anything else): the only files the app serves."""
        with self.lock:
            try:
                item = self.ws.store.item(int(item_id))
            except (LabelerError, ValueError):
                return None
        if item is None or item.status == "quarantined":
            return None
        path = self.ws.image_path(item.file)
        root = self.ws.root.resolve()
        try:
            resolved = path.resolve(strict=True)
        except OSError:
            return None
        return resolved if resolved.is_relative_to(root) and resolved.is_file() else None

    def image_view(self, item_id: int, view: str) -> tuple[Path | None, bytes | None]:
        """(file, None) to serve the image as is, (None, JPEG bytes) for its box drawn or its crop, (None, None)
        for anything that is not a workspace item. Items without a usable box are served as is in every view."""
        path = self.image_file(item_id)
        if path is None or view not in ("box", "crop"):
            return path, None

        with self.lock:
            extra = self.ws.store.item(int(item_id)).extra
        box, _problem = item_box(extra, path)
        if box is None:
            return path, None
        return None, render_view(path, box, view)

    # -- decisions ----------------------------------------------------------------------
    def _refusal(self, s: ReviewSession, command: Command) -> str | None:
        """Why ``command`` must not be stored; None when it may."""
        item, name = command.item, s.reviewer
        if item is None:
            return "no image was on screen; nothing stored"
        if name in self.on_screen:
            if self.on_screen[name] != item:
                return f"ignored a key pressed for #{item}, which is no longer on screen; nothing stored"
        elif (last := self.ws.store.last_undoable(name)) is not None and last.item_id == item:
            return f"#{item} was decided already; nothing stored"
        holder = s.claim_state(item)
        if holder not in ("held", "expired"):
            self.on_screen.pop(name, None)
            return (
                f"your claim on #{item} expired after {CLAIM_SECONDS // 60} minutes idle and {holder} has it "
                "on screen now; nothing stored"
            )
        if command.action == "relabel" and command.label not in self.vocab:
            return f"choose a class first ({command.label!r} is not one); nothing stored"
        if command.action == "remove" and command.reason not in REMOVE_REASONS:
            return "a removal needs a reason; nothing stored"
        return None

    def _decide(self, s: ReviewSession, command: Command) -> list[str]:
        notes = []
        if s.claim_state(command.item) == "expired":
            notes.append(f"your claim on #{command.item} had expired ({CLAIM_SECONDS // 60} min idle); decision stored")
        if command.group and command.action != "skip":
            outcome = s.decide_group(command.item, command.action, command.label, command.reason)
            notes.append(f"decided {len(outcome.decided)} images of the near-duplicate group")
            notes += [f"left #{member} alone: {why}" for member, why in outcome.skipped]
        else:
            s.decide(command.item, command.action, command.label, command.reason)
        self.on_screen.pop(s.reviewer, None)
        return notes

    def _undo(self, s: ReviewSession, filters: Filters | None, started: float, shown: int | None) -> View:
        undone = s.undo()
        if undone is None:
            current = self.on_screen.get(s.reviewer)
            item = s.item(current) if current is not None else s.next_item(filters)
            return self._view(s, item, filters, started, notes=["nothing to undo"])
        if shown is not None and shown != undone.item_id:
            self.ws.store.release(shown, s.reviewer)
        last = undone.decisions[-1]
        what = describe(last)
        note = f"undone: {what}" if len(undone.decisions) == 1 else f"undone: {what} on {len(undone.decisions)} images"
        return self._view(s, s.item(undone.item_id), filters, started, notes=[note])

    def _next(self, s: ReviewSession, filters: Filters | None, started: float, notes: list[str] | None = None) -> View:
        notes = list(notes or [])
        if filters and filters.order == "active" and not self.ws.store.has_active_scores(s.round_id):
            notes.append(
                "no active-learning scores in this round yet: run `labeler flag` again once decisions exist; "
                "showing priority order"
            )
        return self._view(s, s.next_item(filters), filters, started, notes=notes)

    # -- rendering ----------------------------------------------------------------------
    def _ask_name(self, started: float) -> View:
        text = "<div id='current-item' data-item='' data-seq='0' class='lab-done'>Type your name above and press Enter to start reviewing.</div>"
        return View(None, 0, text, "", "", "", "", elapsed_ms=_ms(started))

    def _view(
        self,
        s: ReviewSession,
        item: ReviewItem | None,
        filters: Filters | None,
        started: float,
        notes: list[str] | None = None,
    ) -> View:
        seq = next(self._seq)
        self.on_screen[s.reviewer] = item.item_id if item else None
        progress = self._progress(s)
        notes = list(notes or [])
        if item is None:
            done = (
                f"<div id='current-item' data-item='' data-seq='{seq}' class='lab-done'>"
                "Nothing left to review with these filters.</div>"
            )
            return View(None, seq, done, notes_html(notes), "", "", progress, s.reviewer, _ms(started), notes)
        after = s.peek_next(item.item_id, filters)
        prefetch = (
            f"<img data-lab-img='{after.item_id}' src='{image_url(after.item_id)}' alt='' loading='eager'>"
            if after
            else ""
        )
        image = (
            f"<div id='current-item' data-item='{item.item_id}' data-seq='{seq}'>"
            f"<img class='lab-main' data-lab-img='{item.item_id}' src='{image_url(item.item_id)}' "
            f"alt='{html.escape(item.path)}'></div>"
        )
        side = notes_html(notes) + panel(item, self.codes, pixel_size(item.file))
        return View(
            item.item_id, seq, image, side, prefetch, neighbours_html(item), progress, s.reviewer, _ms(started), notes
        )

    def _progress(self, s: ReviewSession) -> str:
        p = s.progress()
        share = p["reviewed"] / p["flagged"] if p["flagged"] else 0
        people = ", ".join(f"{html.escape(name)} {n:,}" for name, n in sorted(p["per_reviewer"].items()))
        text = f"reviewed {p['reviewed']:,} / {p['flagged']:,} queued ({share:.0%})"
        if people:
            text += f" · {people}"
        if p["conflicts"]:
            text += f" · {p['conflicts']} in conflict (filter: conflict)"
        est = self.estimate()
        if est and est.get("next_hits"):
            text += f" · the next 100 should find ~{est['next_hits'][0]:.0f} wrong labels"
            if est.get("below_stop"):
                text += f" <b>(below your --stop-below {self.stop_below}: reviewing has stopped paying)</b>"
        return text

    def estimate(self, *, fresh: bool = False) -> dict | None:
        """The remaining-errors estimate, recomputed after every ESTIMATE_EVERY decisions (or on ``fresh``)."""

        last = self.ws.store.last_decision_id()
        seen, _, cached = self._estimate
        if fresh or seen < 0 or last - seen >= ESTIMATE_EVERY or (last < seen):
            cached = workspace_estimate(self.ws, stop_below=self.stop_below)
            self._estimate = (last, time.time(), cached)
        return cached

    def overview(self) -> tuple[str, str | None, str | None]:
        """Markdown of counts, rounds, leakage, remaining errors and confused pairs; the noise-matrix image
        path and the per-class error-rate plot path (each None when there is none)."""
        from labeler.app.overview import overview_markdown

        with self.lock:
            status = workspace_status(self.ws, stop_below=self.stop_below)
            round_id = self.ws.store.flagged_round()
            rates = class_error_rates(self.ws, status["estimate"])
        heatmap = plot = None
        if round_id is not None:
            folder = self.ws.path / "reports" / f"round-{round_id:03d}"
            heatmap = str(folder / "noise_matrix.png") if (folder / "noise_matrix.png").exists() else None
            if any(r["estimate"] is not None or r["rate"] is not None for r in rates.values()):
                plot = str(folder / "class_error_rates.png")
                plot_class_error_rates(rates, plot)
        return overview_markdown(status), heatmap, plot


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


__all__ = ["ReviewUI", "View", "Command", "Filters", "REMOVE_REASONS", "REASON_CHOICES", "image_url"]
