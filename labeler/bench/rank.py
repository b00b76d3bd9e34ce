"""`labeler bench rank`: which ranking of the same out-of-fold evidence finds planted flips best.

Reads folders written by `labeler bench noise` (each a workspace with a trained round, and
``flips.csv`` with the true and planted label of every image) and scores, on the train/valid
images, every ranker below against the planted flips: average precision, the share of flips
found when reviewing the top 5% / 10% of images, and (for the flagged sets) F1. Intervals are
paired bootstrap 95% intervals over images of the ratio to cleanlab's self-confidence rank.
The blend weight and the evidence score's weights (``labeler.flag.scoring``) are cross-fitted: for
each run they are the ones that did best on the *other* runs, never on the items they are scored
on. ``evidence`` (the default ranking of `flag`) uses the weights shipped in ``labeler.flag.scoring``;
``fitted_weights`` prints the weights fitted on all the runs given, which is how those were chosen.
``probe_only`` is the linear probe on the embeddings alone (``labeler.flag.probe``), and
``evidence_without_probe_crossfit`` the cross-fitted score on the other three views: what the probe adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeler.bench.metrics import bootstrap_f1_ratio, bootstrap_ratios, f1, ranking_metrics

BASELINE = "self_confidence"
BLEND_WEIGHTS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)  # share of the CNN in CNN + neighbour vote
CROSSFIT = {  # the evidence scores fitted on the other runs: name -> ``evidence_features`` options
    "evidence_crossfit": {"aum": False},  # the default's score (flag takes no AUM)
    "evidence_with_aum_crossfit": {"aum": True},  # what AUM adds (runs that recorded it, fitted on such runs)
    "evidence_without_probe_crossfit": {"aum": False, "probe": False},  # what the probe adds
}


@dataclass
class Run:
    name: str
    labels: np.ndarray  # (N,) planted label codes of the train/valid rows
    truth: np.ndarray  # (N,) bool: the label was flipped
    pred_probs: np.ndarray  # (N, K) out-of-fold
    votes: np.ndarray  # (N, K) neighbour vote as `flag` takes it (out-of-sample lists, same group left out)
    votes_before: np.ndarray  # (N, K) the vote before group-aware, out-of-sample neighbours (fold-0 space)
    votes_parts: dict  # the two changes one at a time: {"oos_only": ..., "groups_only": ...}
    smoothed: np.ndarray  # (N, K) neighbours' pred_probs as `flag` takes them (shared space, same group left out)
    plain: np.ndarray | None = None  # (N, K) pred_probs without test-time augmentation (rounds trained with --tta)
    smoothed_plain: np.ndarray | None = None
    aum: np.ndarray | None = None  # (N,) area under the margin (rounds that recorded it; NaN where none)
    probe: np.ndarray | None = None  # (N, K) the linear probe on the embeddings (``flag.probe``), as `flag` takes it


def load_truth(folder: str | Path, *, extras: bool = False):
    """(evidence of the latest round, train/valid mask, flipped mask) of one `bench noise` folder; with
    ``extras``, also the round's pred_probs without test-time augmentation, row-aligned (None without --tta),
    and its area under the margin (``flag.load_aum``; None where not recorded)."""
    import pandas as pd

    from labeler.errors import InputError
    from labeler.flag import latest_round, load_aum, load_evidence
    from labeler.workspace import Workspace

    folder = Path(folder)
    if not (folder / "flips.csv").exists():
        raise InputError(f"{folder} has no flips.csv; run `labeler bench noise ... --out {folder}` first")
    flips = pd.read_csv(folder / "flips.csv", dtype=str, keep_default_na=False)
    flipped = dict(zip(flips["file"], flips["true"] != flips["label"]))
    with Workspace.open(folder / "workspace", readonly=True) as ws:
        round_id = latest_round(ws).id
        ev = load_evidence(ws, round_id, fold_spaces=True)  # as `flag` takes them
        items = {i.id: i for i in ws.store.items()}
        untouched, aum = None, load_aum(ws, round_id, ev) if extras else None
        if extras and "pred_probs_plain" in ws.store.arrays(round_id):
            row_of = {int(i): r for r, i in enumerate(ws.load_array(round_id, "pred_ids"))}
            stored = ws.load_array(round_id, "pred_probs_plain")
            untouched = ev.pred_probs.copy()  # test rows keep theirs; only train/valid rows are scored
            for r, i in enumerate(ev.item_ids):
                if int(i) in row_of:
                    untouched[r] = stored[row_of[int(i)]]
    fit = np.array([items[int(i)].split != "test" for i in ev.item_ids])
    truth = np.array([bool(flipped.get(items[int(i)].file, False)) for i in ev.item_ids])
    return (ev, fit, truth, untouched, aum) if extras else (ev, fit, truth)


def load_run(folder: str | Path, *, k: int = 10) -> Run:
    """The evidence of one `bench noise` folder, row-aligned, and its planted flips."""
    from labeler.flag import neighbors, probe

    folder = Path(folder)
    ev, fit, truth, plain, aum = load_truth(folder, extras=True)
    from labeler.flag.queue import _out_of_sample

    nn = neighbors.knn(ev.embeddings, k=k)
    voters = nn if ev.oos_neighbours is None else _out_of_sample(nn, ev.oos_neighbours)
    votes = neighbors.neighbour_votes(voters, ev.labels, len(ev.vocab), groups=ev.groups)
    before = neighbors.neighbour_votes(nn, ev.labels, len(ev.vocab))
    parts = {
        "oos_only": neighbors.neighbour_votes(voters, ev.labels, len(ev.vocab))[fit],
        "groups_only": neighbors.neighbour_votes(nn, ev.labels, len(ev.vocab), groups=ev.groups)[fit],
    }
    smoothed = neighbors.smoothed_probs(nn, ev.pred_probs, groups=ev.groups)
    run = Run(
        folder.name, ev.labels[fit], truth[fit], ev.pred_probs[fit], votes[fit], before[fit], parts, smoothed[fit]
    )
    run.aum = None if aum is None else aum[fit]
    run.probe = probe.probe_probs(ev.probe_spaces, ev.labels, len(ev.vocab), groups=ev.groups, held_out=~fit)[fit]
    if plain is not None:
        run.plain = plain[fit]
        run.smoothed_plain = neighbors.smoothed_probs(nn, plain, groups=ev.groups)[fit]
    return run


def evidence_features(run: Run, aum: bool = True, probe: bool = True) -> np.ndarray:
    """The evidence score's features of ``run`` (with ``aum_doubt`` when the run has AUM and ``aum``; without the
    probe's four when not ``probe``: the score before the probe, to measure what it adds)."""
    from labeler.flag import scoring

    views = [run.pred_probs, run.smoothed, run.votes_parts["groups_only"]] + ([run.probe] if probe else [])
    return scoring.features(run.labels, *views, aum=run.aum if aum else None)


def fitted_weights(runs: list[Run], aum: bool = True, probe: bool = True) -> tuple[np.ndarray, float]:
    """Logistic regression of "flipped" on the evidence features of ``runs`` (with AUM when every run has it and
    ``aum``; with the probe's unless not ``probe``), every weight >= 0 (more doubt from a view never lowers the
    score): (weights, intercept)."""
    from scipy.optimize import minimize

    aum = aum and all(r.aum is not None for r in runs)
    x = np.vstack([evidence_features(r, aum, probe) for r in runs])
    y = np.concatenate([r.truth for r in runs]).astype(np.float64)

    def loss(p):  # mean negative log-likelihood and its gradient
        z = x @ p[:-1] + p[-1]
        residual = 1 / (1 + np.exp(-z)) - y
        return np.mean(np.logaddexp(0, z) - y * z), np.r_[x.T @ residual, residual.sum()] / len(y)

    start = np.r_[np.full(x.shape[1], 0.1), -2.0]
    bounds = [(0, None)] * x.shape[1] + [(None, None)]
    fit = minimize(loss, start, jac=True, bounds=bounds, method="L-BFGS-B")
    return fit.x[:-1], float(fit.x[-1])


def scores(run: Run, weight: float, weight_shared: float, fits: dict | None = None) -> dict[str, np.ndarray]:
    """Each ranker's mislabel score per row (higher = more likely wrong); ``fits``: name -> (weights, intercept,
    ``evidence_features`` options) of the evidence scores fitted on the other runs (``crossfits``)."""
    from cleanlab.rank import get_label_quality_scores

    from labeler.flag import scoring

    rows = np.arange(len(run.labels))
    out = {}
    for method in ("self_confidence", "normalized_margin", "confidence_weighted_entropy"):
        for adjust in (False, True) if method != "confidence_weighted_entropy" else (False,):  # cleanlab: no adjust
            name = method + ("_adjusted" if adjust else "")
            quality = get_label_quality_scores(run.labels, run.pred_probs, method=method, adjust_pred_probs=adjust)
            out[name] = 1 - quality
    prior = np.bincount(run.labels, minlength=run.votes.shape[1]) / len(run.labels)
    out["neighbours"] = 1 - run.votes[rows, run.labels]
    corrected = run.votes / np.maximum(prior, 1e-6)  # a vote relative to how common the class is
    corrected /= corrected.sum(axis=1, keepdims=True)
    out["neighbours_class_corrected"] = 1 - corrected[rows, run.labels]
    out["neighbours_before"] = 1 - run.votes_before[rows, run.labels]
    for name, votes in run.votes_parts.items():
        out[f"neighbours_{name}"] = 1 - votes[rows, run.labels]
    out["merged_equal_before"] = 1 - get_label_quality_scores(run.labels, (run.pred_probs + run.votes_before) / 2)
    out["merged_equal"] = 1 - get_label_quality_scores(run.labels, (run.pred_probs + run.votes) / 2)
    blend = weight * run.pred_probs + (1 - weight) * run.votes
    out["blend_crossfit"] = 1 - get_label_quality_scores(run.labels, blend)
    shared = weight_shared * run.pred_probs + (1 - weight_shared) * run.votes_parts["groups_only"]
    out["blend_shared_crossfit"] = 1 - get_label_quality_scores(run.labels, shared)  # flag --vote-space shared
    out["smoothed_only"] = 1 - run.smoothed[rows, run.labels]
    out["probe_only"] = 1 - run.probe[rows, run.labels]
    out["evidence"] = scoring.mislabel_score(evidence_features(run, aum=False))  # flag's default, shipped weights
    for name, (coef, intercept, options) in (fits or {}).items():
        out[name] = scoring.mislabel_score(evidence_features(run, **options), coef, intercept)
    if run.aum is not None:
        out["aum"] = scoring.aum_doubt(run.aum)  # training's area under the margin alone
    if run.plain is not None:  # the same models without test-time augmentation
        out["self_confidence_no_tta"] = 1 - run.plain[rows, run.labels]
        x_plain = scoring.features(run.labels, run.plain, run.smoothed_plain, run.votes_parts["groups_only"], run.probe)
        out["evidence_no_tta"] = scoring.mislabel_score(x_plain)
    return out


def crossfits(run: Run, others: list[Run]) -> dict[str, tuple]:
    """``CROSSFIT``'s scores for ``run``, each fitted on ``others`` (none when no other run has a flip; the AUM
    one only when ``run`` and every other run recorded AUM): name -> (weights, intercept, options)."""
    if not others or not any(r.truth.any() for r in others):
        return {}
    with_aum = run.aum is not None and all(r.aum is not None for r in others)
    return {
        name: (*fitted_weights(others, **options), options)
        for name, options in CROSSFIT.items()
        if with_aum or not options["aum"]
    }


def flagged(run: Run, weight: float, ranked: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """cleanlab's default flagged set on the CNN alone and on the cross-fitted blend; the set `flag` takes by
    default (``queue.flagged_set`` of ``evidence``) and the same rule on the cross-fitted score."""
    from cleanlab.filter import find_label_issues

    from labeler.flag.queue import flagged_set

    blend = weight * run.pred_probs + (1 - weight) * run.votes
    sets = {
        "cleanlab_filter": find_label_issues(run.labels, run.pred_probs),
        "blend_filter": find_label_issues(run.labels, blend),
    }
    for name in ("evidence", "evidence_crossfit", "evidence_without_probe_crossfit"):
        if name in ranked:
            sets[f"{name}_filter"] = flagged_set(ranked[name], sets["cleanlab_filter"])
    return sets


def best_weight(runs: list[Run], space: str = "oos") -> float:
    """The blend weight with the best mean AP over ``runs`` (``space``: the vote flag uses, or "shared")."""
    from cleanlab.rank import get_label_quality_scores
    from sklearn.metrics import average_precision_score

    def ap(run, w):
        votes = run.votes if space == "oos" else run.votes_parts["groups_only"]
        blend = w * run.pred_probs + (1 - w) * votes
        return average_precision_score(run.truth, 1 - get_label_quality_scores(run.labels, blend))

    return max(BLEND_WEIGHTS, key=lambda w: np.mean([ap(r, w) for r in runs]))


def queue_kinds(folder: str | Path) -> dict[str, dict]:
    """For the queue `flag` stored: per main reason, how many train/valid entries and how many hold a flip."""
    import pandas as pd

    from labeler.workspace import Workspace

    folder = Path(folder)
    flips = pd.read_csv(folder / "flips.csv", dtype=str, keep_default_na=False)
    flipped = dict(zip(flips["file"], flips["true"] != flips["label"]))
    out: dict[str, dict] = {}
    with Workspace.open(folder / "workspace", readonly=True) as ws:
        items = {i.id: i for i in ws.store.items()}
        for f in ws.store.flags(ws.store.flagged_round()):
            item = items[f.item_id]
            if item.split == "test":
                continue
            row = out.setdefault(f.kind, {"entries": 0, "wrong": 0})
            row["entries"] += 1
            row["wrong"] += bool(flipped.get(item.file, False))
    return out


def bench_rank(folders: list[str | Path], *, log=print) -> dict:
    """Score every ranker on every run; see the module docstring."""
    runs = [load_run(f) for f in folders]
    results = {}
    for i, run in enumerate(runs):
        others = [r for j, r in enumerate(runs) if j != i]
        weight = best_weight(others) if others else 0.5
        weight_shared = best_weight(others, "shared") if others else 0.5
        fits = crossfits(run, others)
        ranked = scores(run, weight, weight_shared, fits)
        base = ranked[BASELINE]
        rows = {}
        for name, score in ranked.items():
            m = ranking_metrics(run.truth, score)
            if name != BASELINE:
                ci = bootstrap_ratios(run.truth, score, base, ("ap", "recall_5", "recall_10"))
                m.update({f"{metric}_ratio_ci": v for metric, v in ci.items()})
            rows[name] = m
        sets = flagged(run, weight, ranked)
        f1s = {k: f1(run.truth, v) for k, v in sets.items()}
        f1_ci = {
            k: bootstrap_f1_ratio(run.truth, v, sets["cleanlab_filter"])
            for k, v in sets.items()
            if k != "cleanlab_filter"
        }
        results[run.name] = {
            "weight": weight,
            "weight_shared": weight_shared,
            "flips": int(run.truth.sum()),
            "images": len(run.truth),
            "rankers": rows,
            "f1": f1s,
            "f1_ratio_ci": f1_ci,
            "evidence_fit": [list(map(float, fits["evidence_crossfit"][0])), fits["evidence_crossfit"][1]]
            if fits
            else None,
            "queue_kinds": queue_kinds(folders[i]),
        }
        log(
            f"{run.name}: {int(run.truth.sum())} flips in {len(run.truth)} images, CNN share of the blend "
            f"{weight} (out-of-sample vote), {weight_shared} (shared-space vote), chosen on the other runs"
        )
    if any(r.truth.any() for r in runs):
        _log_fitted(runs, log)
    return results


def _log_fitted(runs: list[Run], log) -> None:
    """The evidence weights fitted on all ``runs`` (without AUM, and with it when every run has it)."""
    from labeler.flag.scoring import FEATURES, FEATURES_AUM

    with_aum = (False, True) if all(r.aum is not None for r in runs) else (False,)
    for aum in with_aum:
        coef, intercept = fitted_weights(runs, aum=aum)
        names = FEATURES_AUM if aum else FEATURES
        source = "(not in flag's score; measured here)" if aum else "(labeler.flag.scoring takes them from here)"
        log(
            f"evidence weights {'with' if aum else 'without'} AUM fitted on all these runs {source}: "
            + ", ".join(f"{n} {c:.3f}" for n, c in zip(names, coef))
            + f", intercept {intercept:.3f}"
        )


def _ratio(value: float, base: float, ci) -> str:
    return f"{value / max(base, 1e-9):.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"


def summary_lines(results: dict) -> list[str]:
    """`bench rank`'s printed table: each ranker's mean (sd) over the runs that have it (``*_no_tta`` only on
    runs trained with --tta), each run's ratio to the baseline, the flagged sets' F1 and the stored queue."""
    runs = list(results.values())
    names = list(dict.fromkeys(name for run in runs for name in run["rankers"]))
    lines = [
        f"mean over {len(runs)} run(s) (sd between runs); AP ratio to {BASELINE} with the paired-bootstrap "
        "95% interval of each run",
        f"{'ranker':<34}{'AP':>13}{'recall@5%':>15}{'recall@10%':>15}  AP / {BASELINE} [95% interval]",
    ]
    for name in names:
        having = [run for run in runs if name in run["rankers"]]
        cells = []
        for metric in ("ap", "recall_5", "recall_10"):
            values = [run["rankers"][name][metric] for run in having]
            cells.append(f"{np.mean(values):.3f} ({np.std(values):.3f})")
        ratios = "; ".join(
            _ratio(run["rankers"][name]["ap"], run["rankers"][BASELINE]["ap"], run["rankers"][name]["ap_ratio_ci"])
            for run in having
            if "ap_ratio_ci" in run["rankers"][name]
        )
        lines.append(f"{name:<34}{cells[0]:>13}{cells[1]:>15}{cells[2]:>15}  {ratios}")
    for name in runs[0]["f1"]:
        values = [run["f1"][name] for run in runs]
        ratios = "; ".join(
            _ratio(run["f1"][name], run["f1"]["cleanlab_filter"], run["f1_ratio_ci"][name])
            for run in runs
            if name in run["f1_ratio_ci"]
        )
        lines.append(f"flagged set F1 {name:<25}{np.mean(values):>13.3f} ({np.std(values):.3f})  {ratios}")
    for metric in ("recall_5", "recall_10"):
        ratios = "; ".join(
            _ratio(
                run["rankers"]["evidence"][metric],
                run["rankers"][BASELINE][metric],
                run["rankers"]["evidence"][metric + "_ratio_ci"],
            )
            for run in runs
        )
        lines.append(f"evidence {metric} / {BASELINE} [95% interval]: {ratios}")
    lines.append(_queue_line(runs))
    return lines


def _queue_line(runs: list[dict]) -> str:
    """The stored queues' items by main reason, and how many of them held a planted flip, over all runs."""
    kinds: dict[str, list[int]] = {}
    for run in runs:
        for kind, c in run["queue_kinds"].items():
            kinds.setdefault(kind, [0, 0])
            kinds[kind][0] += c["entries"]
            kinds[kind][1] += c["wrong"]
    return "the stored queue by main reason (all runs): " + "; ".join(
        f"{kind} {wrong}/{n} wrong ({wrong / max(n, 1):.0%})" for kind, (n, wrong) in kinds.items()
    )
