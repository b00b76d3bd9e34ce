"""What the review UI does on each event, without Gradio: plain values in, a ``View`` out.

Each handler takes the reviewer's name and the item on screen, calls ``labeler.review`` (which
commits the decision) and returns the next screen. One lock serialises the handlers, as the
store's SQLite connection is shared by Gradio's worker threads; each handler takes milliseconds.
"""

from __future__ import annotations

import html
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from labeler.review import REMOVE_REASONS, Filters, ReviewItem, ReviewSession
from labeler.workspace import Workspace

PICKS = 9  # number keys 1-9 pick from the top classes
REASON_CHOICES = [
    "label_issue",
    "duplicate_conflict",
    "neighbours_disagree",
    "outlier",
    "contradicts_review",
    "conflict",
]


@dataclass
class View:
    """Everything on the review screen for one item (or the empty-queue screen)."""

    item_id: int | None
    image_html: str
    prefetch_html: str
    info: str
    top: dict[str, float]
    picks: list[str]  # labels of the 1-9 buttons ("" = hidden)
    neighbours_html: str
    progress: str
    group_size: int = 0
    elapsed_ms: float = 0.0
    notes: list[str] = field(default_factory=list)


def file_url(path: str) -> str:
    """The URL Gradio serves a file under the dataset root at (refused outside it)."""
    return "/gradio_api/file=" + quote(path, safe="/")


class ReviewUI:
    """The review app's state and handlers for one workspace."""

    def __init__(self, workspace: str | Path, default_reviewer: str = "reviewer"):
        self.ws = Workspace.open(workspace)
        self.default_reviewer = default_reviewer
        self.lock = threading.Lock()
        self.sessions: dict[str, ReviewSession] = {}
        self.vocab = self.ws.store.classes()

    def session(self, reviewer: str | None) -> ReviewSession:
        name = (reviewer or self.default_reviewer).strip() or self.default_reviewer
        if name not in self.sessions:
            self.sessions[name] = ReviewSession(self.ws, name)
        return self.sessions[name]

    # -- handlers -----------------------------------------------------------------------
    def show(self, reviewer: str | None, filters: Filters | None = None, release: int | None = None) -> View:
        """The reviewer's next item (the one they hold, if any: a restart resumes there)."""
        started = time.perf_counter()
        with self.lock:
            s = self.session(reviewer)
            if release is not None:
                self.ws.store.release(release, s.reviewer)
            return self._view(s, s.next_item(filters), filters, started)

    def act(self, reviewer: str | None, item_id: int | None, action: str, *, label: str | None = None,
            reason: str | None = None, group: bool = False, filters: Filters | None = None) -> View:  # fmt: skip
        """Commit one decision on ``item_id`` (ignored if already made: a repeated key press), then the next view."""
        started = time.perf_counter()
        with self.lock:
            s = self.session(reviewer)
            if item_id is not None and not self._already_decided(s, item_id):
                if group:
                    s.decide_group(item_id, action, label, reason)
                else:
                    s.decide(item_id, action, label, reason)
            return self._view(s, s.next_item(filters), filters, started)

    def pick(
        self, reviewer: str | None, item_id: int | None, rank: int, filters: Filters | None = None, group: bool = False
    ) -> View:
        """Relabel to the ``rank``-th (1-based) most probable class."""
        with self.lock:
            top = self.session(reviewer).item(item_id, neighbours=False).top if item_id is not None else []
        if rank > len(top):
            return self.show(reviewer, filters)
        return self.act(reviewer, item_id, "relabel", label=top[rank - 1][0], group=group, filters=filters)

    def undo(self, reviewer: str | None, filters: Filters | None = None, release: int | None = None) -> View:
        """Undo the reviewer's last decision and show that item again."""
        started = time.perf_counter()
        with self.lock:
            s = self.session(reviewer)
            item_id = s.undo()
            if item_id is not None and release is not None and release != item_id:
                self.ws.store.release(release, s.reviewer)
            shown = s.item(item_id) if item_id is not None else s.next_item(filters)
            view = self._view(s, shown, filters, started)
            if item_id is None:
                view.notes.append("nothing to undo")
            return view

    def export(self, include_removed: bool = False) -> list[str]:
        """Write the corrected CSV and the audit to a temporary folder; return their paths."""
        from labeler.export import export_labels

        folder = Path(tempfile.mkdtemp(prefix="labeler-export-"))
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out, audit = folder / f"labels-corrected-{stamp}.csv", folder / f"audit-{stamp}.csv"
        with self.lock:
            export_labels(self.ws, out, audit=audit, include_removed=include_removed)
        return [str(out), str(audit)]

    def overview(self) -> tuple[str, str | None]:
        """Markdown of counts, rounds and confused pairs, and the noise-matrix image path (if any)."""
        from labeler.status import workspace_status

        with self.lock:
            status = workspace_status(self.ws)
            round_id = self.ws.store.flagged_round()
        lines = [f"**{status['items']:,} images** (train {status['splits']['train']:,}, valid "
                 f"{status['splits']['valid']:,}, test {status['splits']['test']:,}), "
                 f"{len(status['quarantined']):,} quarantined, {status['flagged']:,} flagged, "
                 f"{status['reviewed']:,} reviewed", "", "| class | train | valid | test |", "|---|---:|---:|---:|"]  # fmt: skip
        for name in status["classes"]:
            c = status["class_counts"].get(name, {})
            lines.append(f"| {name} | {c.get('train', 0):,} | {c.get('valid', 0):,} | {c.get('test', 0):,} |")
        lines += [
            "",
            "| round | kind | test top-1 | top-3 | top-5 | out-of-fold top-1 | cleaned test top-1 |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in status["rounds"]:
            m = r["metrics"]
            cells = [_pct(m.get(k)) for k in ("test_top1", "test_top3", "test_top5", "oof_top1", "test_cleaned_top1")]
            lines.append(f"| {r['round']} | {r['kind']} | " + " | ".join(cells) + " |")
        if status["rounds"]:
            pairs = status["rounds"][-1]["metrics"].get("oof_most_confused") or []
            if pairs:
                lines += ["", "**Most confused (label -> prediction, out-of-fold):** "
                          + ", ".join(f"{a} -> {b} ({n})" for a, b, n in pairs[:8])]  # fmt: skip
        heatmap = None
        if round_id is not None:
            path = self.ws.path / "reports" / f"round-{round_id:03d}" / "noise_matrix.png"
            heatmap = str(path) if path.exists() else None
        return "\n".join(lines), heatmap

    # -- rendering ----------------------------------------------------------------------
    def _already_decided(self, s: ReviewSession, item_id: int) -> bool:
        """True when the reviewer's latest live decision is on ``item_id``: a repeated trigger, not a new choice."""
        last = self.ws.store.last_undoable(s.reviewer)
        return last is not None and last.item_id == item_id and last.id > s.after

    def _view(self, s: ReviewSession, item: ReviewItem | None, filters: Filters | None, started: float) -> View:
        progress = self._progress(s)
        if item is None:
            done = (
                "<div id='current-item' data-item='' class='lab-done'>Nothing left to review with these filters.</div>"
            )
            return View(None, done, "", "", {}, [""] * PICKS, "", progress, elapsed_ms=_ms(started))
        after = s.peek_next(item.item_id, filters)
        prefetch = f"<img src='{file_url(after.file)}' alt='' loading='eager'>" if after else ""
        image = (
            f"<div id='current-item' data-item='{item.item_id}'>"
            f"<img class='lab-main' src='{file_url(item.file)}' alt='{html.escape(item.path)}'></div>"
        )
        picks = [label for label, _ in item.top[:PICKS]] + [""] * (PICKS - len(item.top[:PICKS]))
        return View(
            item_id=item.item_id, image_html=image, prefetch_html=prefetch, info=_info(item),
            top={label: float(p) for label, p in item.top[:5]}, picks=picks, neighbours_html=_neighbours(item),
            progress=progress, group_size=len(item.group) + 1 if item.group else 0, elapsed_ms=_ms(started),
        )  # fmt: skip

    def _progress(self, s: ReviewSession) -> str:
        p = s.progress()
        share = p["reviewed"] / p["flagged"] if p["flagged"] else 0
        people = ", ".join(f"{name} {n:,}" for name, n in sorted(p["per_reviewer"].items()))
        text = f"reviewed {p['reviewed']:,} / {p['flagged']:,} flagged ({share:.0%})"
        if people:
            text += f" · {people}"
        if p["conflicts"]:
            text += f" · {p['conflicts']} in conflict (filter: conflict)"
        return text


def _info(item: ReviewItem) -> str:
    current = item.current if item.current is not None else "removed"
    label_line = f"Given **{html.escape(item.given)}**"
    if current != item.given:
        label_line += f" · now **{html.escape(current)}**"
    lines = [
        f"#{item.item_id} · {item.split} · `{item.path}`",
        "",
        f"{label_line} · Suggested **{html.escape(item.suggested)}** ({item.suggested_prob:.2f})",
        "",
        *[f"- {html.escape(r['text'])}" for r in item.reasons],
    ]
    if item.group:
        lines += ["", f"Near-duplicate group of {len(item.group) + 1} images (tick *whole group* to decide for all)."]
    if item.contradicts:
        lines += ["", "**Reviewed before; the new round disagrees.**"]
    return "\n".join(lines)


def _neighbours(item: ReviewItem) -> str:
    def strip(title: str, neighbours) -> str:
        if not neighbours:
            return f"<div class='lab-strip'><div class='lab-strip-title'>{html.escape(title)}: none nearby</div></div>"
        cells = "".join(
            f"<figure><img src='{file_url(n.file)}' alt='#{n.item_id}'><figcaption>{html.escape(n.label)}"
            f" · {n.similarity:.2f}</figcaption></figure>"
            for n in neighbours[:6]
        )
        return f"<div class='lab-strip'><div class='lab-strip-title'>{html.escape(title)}</div>{cells}</div>"

    current = item.current or item.given
    return strip(f"nearest images labelled {current}", item.like_given) + strip(
        f"nearest images labelled {item.suggested}", item.like_suggested
    )


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


__all__ = ["ReviewUI", "View", "Filters", "REMOVE_REASONS", "REASON_CHOICES", "PICKS", "file_url"]
