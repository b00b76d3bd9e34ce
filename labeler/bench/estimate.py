"""`labeler bench estimate`: does the remaining-errors estimate hold its 95% interval?

Reads `bench noise` folders (a trained workspace and ``flips.csv``), builds the queue as `flag`
does, and simulates a reviewer who decides the first ``budget`` share of the train/valid images in
queue order (and, with ``audit``, that many random other images as `labeler sample` would add),
each decision being the truth. ``labeler.estimate`` then estimates how many planted flips remain
unreviewed; the benchmark compares that with the true number: inside the interval or not, and the
interval's width.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labeler.bench.rank import load_truth
from labeler.estimate import estimate_remaining
from labeler.flag.queue import build_queue


def simulate(folder: str | Path, budgets, audits, *, seed: int = 0) -> list[dict]:
    """One row per (budget, audit) for one run."""

    ev, fit, truth, _ = load_truth(folder)
    queue = build_queue(ev)
    row_of = {int(i): r for r, i in enumerate(ev.item_ids)}
    fit_rows = np.flatnonzero(fit)
    local = {int(r): j for j, r in enumerate(fit_rows)}  # row in ev -> row among train/valid
    score = queue.score[fit_rows]
    order = [local[row_of[e.item_id]] for e in queue.flags if row_of[e.item_id] in local]
    in_queue = np.zeros(len(fit_rows), dtype=bool)
    in_queue[order] = True
    rest = [int(j) for j in np.argsort(-score, kind="stable") if not in_queue[j]]
    full_order = order + rest  # a reviewer who outlasts the queue goes on by score
    flipped = truth[fit_rows]
    out = []
    for budget in budgets:
        for audit in audits:
            reviewed = np.zeros(len(fit_rows), dtype=bool)
            reviewed[full_order[: int(round(budget * len(fit_rows)))]] = True
            if audit:
                rng = np.random.default_rng(seed)
                pool = np.flatnonzero(~reviewed)
                reviewed[rng.choice(pool, size=min(audit, len(pool)), replace=False)] = True
            row = {"run": Path(folder).name, "budget": budget, "audit": audit}
            out.append(_scored(row, score, reviewed, flipped, in_queue, [j for j in full_order if not reviewed[j]]))
    return out


def _scored(row: dict, score, reviewed, flipped, in_queue, upcoming) -> dict:
    """``row`` with the estimate of the flips left after ``reviewed``, and whether its interval holds the truth."""

    est = estimate_remaining(score, reviewed, flipped, in_queue, upcoming)
    true_left = int((flipped & ~reviewed).sum())
    row.update(reviewed=int(reviewed.sum()), found=est.found, true_remaining=true_left, enough=est.enough)
    if est.enough:
        mean, lo, hi = est.remaining
        row.update(
            estimate=mean,
            low=lo,
            high=hi,
            inside=bool(lo <= true_left <= hi),
            width=hi - lo,
            tail_measured=est.tail_measured,
            true_next=int(flipped[upcoming[:100]].sum()),
            next_hits=est.next_hits,
        )
    return row


def bench_estimate(folders, budgets=(0.05, 0.10), audits=(0, 100), *, log=print) -> list[dict]:
    rows = []
    for i, folder in enumerate(folders):
        rows += simulate(folder, budgets, audits, seed=i)
        log(f"{Path(folder).name}: simulated")
    return rows
