"""`labeler bench adapt`: does refitting the score on the reviewer's decisions (``flag.adapt``) find more wrong labels?

On `bench noise` runs (planted or real mistakes) a simulated reviewer works down the queue in batches of
``batch`` (a share of the images), each decision being the truth; after each batch the queue is ranked again,
by the cross-fitted evidence score (``bench rank``: weights that never saw the run or the photos) or by that
score refitted on every decision so far. With ``audit``, that many random images (as `labeler sample` draws) are
decided first and join the refit. Each photo half is its own dataset (its own cross-fitted weights). Reported:
wrong labels found within the ``budget`` share reviewed in queue order, without and with the refit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from labeler.bench import rank
from labeler.flag import adapt, scoring


def simulate(run: rank.Run, others: list[rank.Run], *, budget: float, batch: float, audit: int, prior: float, seed=0):
    """{"base": wrong labels found, "refit": found with the refit} over the run's two photo halves."""
    frozen = run.frozen is not None
    usable = [r for r in others if not frozen or r.frozen is not None]
    x_all = rank.evidence_features(run, frozen)
    found = {"base": 0, "refit": 0}
    rng = np.random.default_rng(seed)
    for h in (0, 1):
        rows = np.flatnonzero(run.half == h)
        x, truth = x_all[rows], run.truth[rows]
        coef, intercept = rank.fitted_weights(usable, [r.half != h for r in usable], frozen=frozen)
        audited = rng.choice(len(rows), size=min(audit // 2, len(rows)), replace=False)
        for arm in found:
            found[arm] += _review(
                x,
                truth,
                coef,
                intercept,
                budget=budget,
                batch=batch,
                audited=audited,
                refit=arm == "refit",
                prior=prior,
            )
    return found


def _review(x, truth, coef, intercept, *, budget: float, batch: float, audited, refit: bool, prior: float) -> int:
    """Wrong labels found reviewing ``budget`` of the rows in queue order, ``batch`` at a time."""
    decided = np.zeros(len(truth), dtype=bool)
    decided[audited] = True
    in_queue_order = np.zeros(len(truth), dtype=bool)
    weights, b = coef, intercept
    step = max(int(round(batch * len(truth))), 1)
    total = int(round(budget * len(truth)))
    while in_queue_order.sum() < total:
        score = scoring.mislabel_score(x, weights, b)
        score[decided] = -np.inf
        take = np.argsort(-score, kind="stable")[: min(step, total - int(in_queue_order.sum()))]
        decided[take] = in_queue_order[take] = True
        if refit:
            weights, b = adapt.refit(x[decided], truth[decided], coef, intercept, prior=prior)
    return int(truth[in_queue_order].sum())


def bench_adapt(folders, *, budget=0.10, batch=0.025, audits=(0, 100), priors=(adapt.PRIOR,), log=print) -> dict:
    """Every run x audit x prior: found without and with the refit (see the module docstring)."""
    runs = [rank.load_run(f) for f in folders]
    out = {}
    for run in runs:
        others = [r for r in runs if r is not run]
        for audit in audits:
            for prior in priors:
                found = simulate(run, others, budget=budget, batch=batch, audit=audit, prior=prior)
                out[f"{run.name}|audit={audit}|prior={prior:g}"] = {
                    "run": run.name,
                    "kind": run.kind,
                    "audit": audit,
                    "prior": prior,
                    "wrong": int(run.truth.sum()),
                    **found,
                }
                log(
                    f"{run.name} audit {audit} prior {prior:g}: found {found['base']} -> {found['refit']} with the refit"
                )
    return out


def summary_lines(results: dict, *, seed: int = 0) -> list[str]:
    """Per kind of noise, audit and prior: total found without / with the refit, the ratio, and a 95% interval
    of the ratio from a bootstrap over runs."""
    rng = np.random.default_rng(seed)
    groups: dict[tuple, list[dict]] = {}
    for r in results.values():
        groups.setdefault(("real" if r["kind"] == "real" else "planted", r["audit"], r["prior"]), []).append(r)
    lines = [f"{'noise':<9}{'audit':>6}{'prior':>7}{'runs':>5}{'found':>8}{'refit':>8}  ratio [95% interval over runs]"]
    for (kind, audit, prior), rows in sorted(groups.items()):
        base = np.array([r["base"] for r in rows], dtype=float)
        refit = np.array([r["refit"] for r in rows], dtype=float)
        boots = []
        for _ in range(2000):
            pick = rng.integers(0, len(rows), len(rows))
            boots.append(refit[pick].sum() / max(base[pick].sum(), 1))
        lo, hi = np.percentile(boots, [2.5, 97.5])
        lines.append(
            f"{kind:<9}{audit:>6}{prior:>7g}{len(rows):>5}{base.sum():>8.0f}{refit.sum():>8.0f}  "
            f"{refit.sum() / max(base.sum(), 1):.3f} [{lo:.3f}, {hi:.3f}]"
        )
    return lines


def write_json(results: dict, path: str | Path) -> None:

    Path(path).write_text(json.dumps(results, indent=1))
