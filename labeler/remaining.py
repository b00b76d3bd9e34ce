"""The remaining-errors estimate and the review pace of a workspace: `status`, the review app and rounds.

Reads the flagged round's scores (written by `flag`), the queue and the decision log, and hands plain
arrays to ``labeler.estimate``. The random audit sample that measures the images the queue does not reach
is ``labeler.sample``.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from labeler import estimate
from labeler.labels import class_index
from labeler.workspace import Workspace
from labeler_training.plots import pyplot


def scored_arrays(item_ids: np.ndarray, score: np.ndarray, classes: np.ndarray) -> dict[str, np.ndarray]:
    """The round arrays `status` estimates the remaining errors from (``labeler.remaining``), by name: every
    scored image's id, the queue's score (how likely its label is wrong) and its current label when flagged
    (index in the workspace's classes, -1 for none)."""
    return {
        "scored_item_ids": np.asarray(item_ids, dtype=np.int64),
        "scored_score": np.asarray(score, dtype=np.float64),
        "scored_class": np.asarray(classes, dtype=np.int64),
    }


def load_scored(ws: Workspace, round_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """(item ids, scores, classes when flagged or None) of a flagged round, or None when it kept none. Reads the
    named arrays of ``scored_arrays``, and the one (N, 2 or 3) "scores" table of workspaces flagged by labeler
    0.1 before them (columns: id, score, class)."""
    have = ws.store.arrays(round_id)
    if "scored_item_ids" in have:
        ids, score = ws.load_array(round_id, "scored_item_ids"), ws.load_array(round_id, "scored_score")
        return ids, score, ws.load_array(round_id, "scored_class")
    if "scores" in have:
        table = ws.load_array(round_id, "scores")
        return table[:, 0].astype(np.int64), table[:, 1], table[:, 2].astype(np.int64) if table.shape[1] >= 3 else None
    return None


def workspace_estimate(ws: Workspace, *, stop_below: float | None = None) -> dict | None:
    """The estimate as a dict (``Estimate`` fields + pace), or None before the first `flag` that kept scores."""
    store = ws.store
    round_id = store.flagged_round()
    scored = load_scored(ws, round_id) if round_id is not None else None
    if scored is None:
        return None
    ids, score, flagged_classes = scored
    decisions = store.effective_decisions()
    since = int(store.get_meta("flagged_after_decision", 0) or 0)
    decided = np.fromiter(decisions, dtype=np.int64, count=len(decisions))
    reviewed = np.isin(ids, decided)
    wrong = np.isin(ids, [i for i, d in decisions.items() if _was_wrong(d)])
    earlier = np.isin(ids, [i for i, d in decisions.items() if d.id <= since])
    queue = np.asarray(store.flag_order(round_id), dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    position = np.searchsorted(ids[order], queue)  # queue item -> its row in the scores table
    known = (position < len(ids)) & (ids[order][np.minimum(position, len(ids) - 1)] == queue)
    queue_rows = order[position[known]]
    in_queue = np.zeros(len(ids), dtype=bool)
    in_queue[queue_rows] = True
    upcoming = queue_rows[~reviewed[queue_rows]]
    vocab = store.classes()
    classes = None
    if len(decisions) >= estimate.MIN_REVIEWS:  # per-class rates: the label each image had before review
        index = class_index(vocab)
        if flagged_classes is not None:  # the label each image had when flagged
            classes = flagged_classes.copy()
        else:  # scores kept by an older flag: the imported labels
            codes = np.array(store.label_codes(), dtype=np.int64).reshape(-1, 2)
            where = np.clip(np.searchsorted(codes[:, 0], ids), 0, max(len(codes) - 1, 0))
            classes = np.where(codes[where, 0] == ids, codes[where, 1], -1) if len(codes) else np.full(len(ids), -1)
        before = {i: index.get(d.old_label, -1) for i, d in decisions.items() if d.old_label}
        rows = np.flatnonzero(np.isin(ids, np.fromiter(before, dtype=np.int64, count=len(before))))
        classes[rows] = [before[int(i)] for i in ids[rows]]
    found = estimate.estimate_remaining(score, reviewed, wrong, in_queue, upcoming, earlier=earlier, classes=classes)
    est = found.as_dict()
    est["class_rates"] = {vocab[c]: v for c, v in found.class_rates.items() if c >= 0}
    pace = estimate.review_pace([_seconds(d.created_at) for d in store.decisions() if d.action != "undo"])
    est.update(
        round=round_id,
        queue_left=len(upcoming),
        pace_per_hour=pace,
        eta_hours=len(upcoming) / pace if pace else None,
        stop_below=stop_below,
    )
    hits = est.get("next_hits")
    est["below_stop"] = bool(stop_below is not None and hits and hits[0] / estimate.NEXT < stop_below)
    return est


def class_error_rates(ws: Workspace, est: dict | None) -> dict[str, dict]:
    """Per class (its label before review): cleanlab's estimated error rate ("estimate") and the one the
    reviews measure (``est["class_rates"]``: found errors plus unreviewed images at their bands' rates)."""
    store = ws.store
    round_id = store.flagged_round()
    metrics = next((r.metrics for r in store.rounds() if r.id == round_id), {}) if round_id else {}
    measured = (est or {}).get("class_rates") or {}
    out = {}
    for name in store.classes():
        rate = measured.get(name) if (est or {}).get("enough") else None
        out[name] = {
            "estimate": metrics.get("class_error_estimate", {}).get(name),
            "rate": rate[0] if rate else None,
            "low": rate[1] if rate else None,
            "high": rate[2] if rate else None,
        }
    return out


def plot_class_error_rates(rates: dict[str, dict], path) -> None:
    """Bars: cleanlab's estimate before review; points with 95% intervals: what the reviews measured."""

    plt = pyplot()

    names = list(rates)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.35 * len(names) + 2), 3.4))
    ax.bar(x, [rates[c]["estimate"] or 0 for c in names], color="#c8d6e5", label="cleanlab estimate (before review)")
    measured = [i for i, c in enumerate(names) if rates[c]["rate"] is not None]
    if measured:
        rate = np.array([rates[names[i]]["rate"] for i in measured])
        low = np.array([rates[names[i]]["low"] for i in measured])
        high = np.array([rates[names[i]]["high"] for i in measured])
        ax.errorbar(
            measured,
            rate,
            yerr=[rate - low, high - rate],
            fmt="o",
            color="#c0392b",
            capsize=3,
            label="from reviews (bands), 95% interval",
        )
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=90, fontsize=8)
    ax.set(ylabel="share of the class's labels wrong", ylim=(0, 1), title="Label-error rate per class")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def _was_wrong(decision) -> bool:
    if decision is None:
        return False
    return decision.action == "remove" or (decision.action == "relabel" and decision.label != decision.old_label)


def _seconds(created_at: str) -> float:
    return datetime.fromisoformat(created_at).timestamp()


def format_estimate(est: dict | None) -> list[str]:
    """Lines for `status`: the estimate, the bands, the pace, and the notes."""
    if est is None:
        return []
    if not est["enough"]:
        return [f"remaining  {est['notes'][0]}"]
    mean, lo, hi = est["remaining"]
    qm, ql, qh = est["remaining_in_queue"]
    om, ol, oh = est["remaining_outside_queue"]
    rm, rl, rh = est["error_rate"]
    lines = [
        f"remaining  about {mean:.0f} wrong labels left [95% interval {lo:.0f}-{hi:.0f}]: {qm:.0f} [{ql:.0f}-{qh:.0f}] "
        f"in the queue, {om:.0f} [{ol:.0f}-{oh:.0f}] outside it; {est['found']} found so far",
        f"           label-error rate before review {rm:.1%} [{rl:.1%}-{rh:.1%}]",
        f"  {'band (by score)':<18}{'images':>8}{'queued':>8}{'reviewed':>9}{'wrong':>7}  {'rate [95%]':<20}{'left':>6}  basis",
    ]
    for b in est["bands"]:
        rate = f"{b['rate']:.2f} [{b['rate_low']:.2f}-{b['rate_high']:.2f}]"
        lines.append(
            f"  {b['name']:<18}{b['images']:>8,}{b['in_queue']:>8,}{b['reviewed']:>9,}{b['wrong']:>7,}  "
            f"{rate:<20}{b['remaining']:>6.0f}  {b['basis']}"
        )
    pace = est.get("pace_per_hour")
    text = f"pace       {pace:.0f} decisions/hour" if pace else "pace       not measured yet"
    text += f"; {est['queue_left']:,} queue images left"
    if est.get("eta_hours") is not None:
        eta = est["eta_hours"]
        text += f", about {eta:.1f} h at this pace" if eta >= 1 else f", about {eta * 60:.0f} min at this pace"
    if est.get("next_hits"):
        m, low, high = est["next_hits"]
        text += f"; the next {estimate.NEXT} reviews should find about {m:.0f} [{low:.0f}-{high:.0f}] wrong labels"
    lines.append(text)
    if est.get("below_stop"):
        lines.append(f"           below --stop-below {est['stop_below']}: reviewing the queue has stopped paying")
    lines += [f"note       {n}" for n in est["notes"]]
    return lines
