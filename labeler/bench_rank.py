"""`labeler bench rank`: which ranking of the same out-of-fold evidence finds planted flips best.

Reads folders written by `labeler bench noise` (each a workspace with a trained round, and
``flips.csv`` with the true and planted label of every image) and scores, on the train/valid
images, every ranker below against the planted flips: average precision, the share of flips
found when reviewing the top 5% / 10% of images, and (for the flagged sets) F1. Intervals are
paired bootstrap 95% intervals over images of the ratio to cleanlab's self-confidence rank.
The blend weight is cross-fitted: for each run it is the weight that did best on the *other*
runs, never on the items it is scored on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

BASELINE = "self_confidence"
BLEND_WEIGHTS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)  # share of the CNN in CNN + neighbour vote


@dataclass
class Run:
    name: str
    labels: np.ndarray  # (N,) planted label codes of the train/valid rows
    truth: np.ndarray  # (N,) bool: the label was flipped
    pred_probs: np.ndarray  # (N, K) out-of-fold
    votes: np.ndarray  # (N, K) neighbour vote as `flag` takes it (out-of-sample lists, same group left out)
    votes_before: np.ndarray  # (N, K) the vote before group-aware, out-of-sample neighbours (fold-0 space)
    votes_parts: dict  # the two changes one at a time: {"oos_only": ..., "groups_only": ...}


def load_run(folder: str | Path, *, k: int = 10) -> Run:
    """The evidence of one `bench noise` folder, row-aligned, and its planted flips."""
    import pandas as pd

    from labeler import neighbors
    from labeler.errors import InputError
    from labeler.flag import latest_round, load_evidence
    from labeler.workspace import Workspace

    folder = Path(folder)
    if not (folder / "flips.csv").exists():
        raise InputError(f"{folder} has no flips.csv; run `labeler bench noise ... --out {folder}` first")
    flips = pd.read_csv(folder / "flips.csv", dtype=str, keep_default_na=False)
    flipped = dict(zip(flips["file"], flips["true"] != flips["label"]))
    with Workspace.open(folder / "workspace", readonly=True) as ws:
        ev = load_evidence(ws, latest_round(ws).id)
        file_of = {i.id: i.file for i in ws.store.items()}
        split_of = {i.id: i.split for i in ws.store.items()}
    fit = np.array([split_of[int(i)] != "test" for i in ev.item_ids])
    from labeler.queue import _out_of_sample

    nn = neighbors.knn(ev.embeddings, k=k)
    voters = nn if ev.oos_neighbours is None else _out_of_sample(nn, ev.oos_neighbours)
    votes = neighbors.neighbour_votes(voters, ev.labels, len(ev.vocab), groups=ev.groups)
    before = neighbors.neighbour_votes(nn, ev.labels, len(ev.vocab))
    parts = {
        "oos_only": neighbors.neighbour_votes(voters, ev.labels, len(ev.vocab))[fit],
        "groups_only": neighbors.neighbour_votes(nn, ev.labels, len(ev.vocab), groups=ev.groups)[fit],
    }
    truth = np.array([bool(flipped.get(file_of[int(i)], False)) for i in ev.item_ids])
    return Run(folder.name, ev.labels[fit], truth[fit], ev.pred_probs[fit], votes[fit], before[fit], parts)


def scores(run: Run, weight: float, weight_shared: float) -> dict[str, np.ndarray]:
    """Each ranker's mislabel score per row (higher = more likely wrong)."""
    from cleanlab.rank import get_label_quality_scores

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
    return out


def flagged(run: Run, weight: float) -> dict[str, np.ndarray]:
    """cleanlab's default flagged set on the CNN alone, and on the cross-fitted blend."""
    from cleanlab.filter import find_label_issues

    blend = weight * run.pred_probs + (1 - weight) * run.votes
    return {
        "cleanlab_filter": find_label_issues(run.labels, run.pred_probs),
        "blend_filter": find_label_issues(run.labels, blend),
    }


def ranking_metrics(truth: np.ndarray, score: np.ndarray) -> dict:
    from sklearn.metrics import average_precision_score

    order = np.argsort(-score, kind="stable")
    n = len(truth)
    found = np.cumsum(truth[order])
    return {
        "ap": float(average_precision_score(truth, score)),
        "recall_5": float(found[max(int(0.05 * n), 1) - 1] / truth.sum()),
        "recall_10": float(found[max(int(0.10 * n), 1) - 1] / truth.sum()),
    }


def f1(truth: np.ndarray, flags: np.ndarray) -> float:
    hits = (truth & flags).sum()
    return float(2 * hits / max(truth.sum() + flags.sum(), 1))


def bootstrap_ratio(truth, score, base, metric: str, *, n: int = 300, seed: int = 0) -> tuple[float, float]:
    """Paired bootstrap 95% interval of metric(score) / metric(base), resampling images."""
    rng = np.random.default_rng(seed)
    ratios = []
    for _ in range(n):
        pick = rng.integers(0, len(truth), len(truth))
        if not truth[pick].any():
            continue
        ratios.append(ranking_metrics(truth[pick], score[pick])[metric] /
                      max(ranking_metrics(truth[pick], base[pick])[metric], 1e-9))  # fmt: skip
    return float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))


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
        for f in ws.store.issues(ws.store.flagged_round()):
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
        ranked = scores(run, weight, weight_shared)
        base = ranked[BASELINE]
        rows = {}
        for name, score in ranked.items():
            m = ranking_metrics(run.truth, score)
            if name != BASELINE:
                m["ap_ratio_ci"] = bootstrap_ratio(run.truth, score, base, "ap")
            rows[name] = m
        sets = flagged(run, weight)
        results[run.name] = {"weight": weight, "weight_shared": weight_shared, "flips": int(run.truth.sum()), "images": len(run.truth),
                             "rankers": rows, "f1": {k: f1(run.truth, v) for k, v in sets.items()},
                             "queue_kinds": queue_kinds(folders[i])}  # fmt: skip
        log(
            f"{run.name}: {int(run.truth.sum())} flips in {len(run.truth)} images, CNN share of the blend "
            f"{weight} (out-of-sample vote), {weight_shared} (shared-space vote), chosen on the other runs"
        )
    return results
