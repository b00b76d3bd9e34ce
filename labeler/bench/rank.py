"""`labeler bench rank`: which ranking of the same out-of-fold evidence finds the wrong labels best.

Reads folders written by `labeler bench noise` (each a workspace with a trained round, and ``flips.csv`` with
the true and the given label of every image: flips it planted, or with ``--kind real`` real human mistakes
measured against a truth file) and scores, on the train/valid images, every ranker below: average precision,
the share of wrong labels found when reviewing the top 5% / 10% of images, and (for the flagged sets) F1.
Intervals are paired bootstrap 95% intervals over images of the ratio to cleanlab's self-confidence rank on the
same CNN.

The evidence score (``labeler.flag.scoring``) is scored two ways: ``evidence`` with the weights `flag` ships,
and ``evidence_crossfit`` with weights that never saw the run or the photos scored: each run's photos are split
in two seeded halves (by file, so the same photo falls in the same half in every run, whatever its labels),
and each half is scored with weights fitted on the other half of every *other* run. ``--write-weights`` fits
the weights on every run given and writes them where `flag` reads them.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from labeler.bench.metrics import bootstrap_f1_ratio, bootstrap_ratios, f1, ranking_metrics
from labeler.errors import InputError
from labeler.flag import latest_round, load_evidence, neighbors, scoring
from labeler.flag.probe import FOLDS, assign_folds
from labeler.flag.queue import flagged_set
from labeler.workspace import Workspace

BASELINE = "self_confidence"
HALF_SEED = "labeler-bench-rank"  # the photo halves of the cross-fit


@dataclass
class Run:
    name: str
    kind: str  # how the wrong labels came: "real", or the planted kind ("pairs", ...)
    photos: np.ndarray  # (N,) image file of each train/valid row (the key of the cross-fit's photo halves)
    labels: np.ndarray  # (N,) given label codes
    truth: np.ndarray  # (N,) bool: the given label is wrong
    pred_probs: np.ndarray  # (N, K) the CNN, out-of-fold
    votes: np.ndarray  # (N, K) the neighbour vote as `flag` takes it
    smoothed: np.ndarray  # (N, K) neighbours' pred_probs as `flag` takes them
    probe: np.ndarray  # (N, K) the probe in every fold model's space (``flag.probe``)
    frozen: np.ndarray | None = None  # (N, K) the probe in the frozen view's space (rounds that have it)
    probe_logistic: np.ndarray | None = None  # (N, K) the previous probe (a logistic regression), --compare-probe

    def views(self, frozen: bool = True, logistic: bool = False) -> dict:
        probe = self.probe_logistic if logistic else self.probe
        return scoring.views(self.pred_probs, self.smoothed, self.votes, probe, self.frozen if frozen else None)

    @property
    def half(self) -> np.ndarray:
        """(N,) 0 or 1: the photo's half, the same in every run."""
        return np.array([hashlib.sha1(f"{HALF_SEED}{p}".encode()).digest()[0] & 1 for p in self.photos])


# the cross-fitted evidence scores: name -> ``Run.views`` options (each fitted on its own features)
CROSSFIT = {
    "evidence_crossfit": {},
    "evidence_without_frozen_crossfit": {"frozen": False},
}
COMPARE_PROBE = {"evidence_logistic_probe_crossfit": {"logistic": True}}


def load_truth(folder: str | Path):
    """(evidence of the latest round, train/valid mask, wrong-label mask) of one `bench noise` folder."""
    import pandas as pd

    folder = Path(folder)
    if not (folder / "flips.csv").exists():
        raise InputError(f"{folder} has no flips.csv; run `labeler bench noise ... --out {folder}` first")
    flips = pd.read_csv(folder / "flips.csv", dtype=str, keep_default_na=False)
    flipped = dict(zip(flips["file"], flips["true"] != flips["label"]))
    with Workspace.open(folder / "workspace", readonly=True) as ws:
        ev = load_evidence(ws, latest_round(ws).id, fold_spaces=True)  # as `flag` takes them
        items = {i.id: i for i in ws.store.items()}
    fit = np.array([items[int(i)].split != "test" for i in ev.item_ids])
    truth = np.array([bool(flipped.get(items[int(i)].file, False)) for i in ev.item_ids])
    files = np.array([items[int(i)].file for i in ev.item_ids])
    return ev, fit, truth, files


def load_run(folder: str | Path, *, k: int = 10, compare_probe: bool = False) -> Run:
    """The evidence of one `bench noise` folder as `flag` builds it, row-aligned, and its wrong labels."""

    folder = Path(folder)
    ev, fit, truth, files = load_truth(folder)
    nn = neighbors.knn(ev.embeddings, k=k)  # flag's default vote space ("shared")
    k_classes = len(ev.vocab)
    votes = neighbors.neighbour_votes(nn, ev.labels, k_classes, fold_groups=ev.fold_groups)
    smoothed = neighbors.smoothed_probs(nn, ev.pred_probs, fold_groups=ev.fold_groups)
    probe, frozen = ev.probe(ev.labels, k_classes)
    meta = folder / "bench-noise.json"
    kind = json.loads(meta.read_text()).get("kind", "planted") if meta.exists() else "planted"
    run = Run(
        name=folder.name,
        kind=kind,
        photos=files[fit],
        labels=ev.labels[fit],
        truth=truth[fit],
        pred_probs=ev.pred_probs[fit],
        votes=votes[fit],
        smoothed=smoothed[fit],
        probe=probe[fit],
        frozen=None if frozen is None else frozen[fit],
    )
    if compare_probe:
        run.probe_logistic = logistic_probe(ev)[fit]
    return run


def logistic_probe(ev) -> np.ndarray:
    """The probe `flag` used before the closed-form one: a logistic regression (C=10, at most 20,000 rows and 200
    lbfgs steps per fit) per fold model's space, cross-validated on the same folds, averaged. For comparison."""

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    k = len(ev.vocab)
    groups = np.arange(len(ev.labels)) if ev.fold_groups is None else ev.fold_groups
    fold_of = assign_folds(groups, ev.is_test, FOLDS, 0)
    if ev.fold_embeddings is None:
        spaces, rows = [ev.embeddings], np.arange(len(ev.labels))
    else:
        spaces, rows = [ev.fold_embeddings[i] for i in range(len(ev.fold_embeddings))], ev.space_rows
    rng = np.random.default_rng(0)
    out = np.zeros((len(ev.labels), k))
    for space in spaces:
        whole = space.block(0, len(space)) if hasattr(space, "block") else space
        x = np.asarray(whole[rows], dtype=np.float32)
        for f in range(fold_of.max() + 1):
            train = np.flatnonzero((fold_of >= 0) & (fold_of != f))
            train = rng.choice(train, size=min(20_000, len(train)), replace=False)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model = LogisticRegression(C=10.0, max_iter=200).fit(x[train], ev.labels[train])
            here = fold_of == f
            out[np.ix_(here, model.classes_)] += model.predict_proba(x[here])
    return (out / len(spaces)).astype(np.float32)


def fitted_weights(runs: list[Run], masks: list[np.ndarray] | None = None, **options) -> tuple[np.ndarray, float]:
    """Logistic regression of "wrong label" on the evidence features of ``runs`` (the rows in ``masks``), every
    weight >= 0 (more doubt from a view never lowers the score): (weights in ``names`` order, intercept)."""
    from scipy.optimize import minimize

    masks = masks or [np.ones(len(r.labels), bool) for r in runs]
    x = np.vstack([evidence_features(r, **options)[m] for r, m in zip(runs, masks)])
    y = np.concatenate([r.truth[m] for r, m in zip(runs, masks)]).astype(np.float64)

    def loss(p):  # mean negative log-likelihood and its gradient
        z = x @ p[:-1] + p[-1]
        residual = 1 / (1 + np.exp(-z)) - y
        return np.mean(np.logaddexp(0, z) - y * z), np.r_[x.T @ residual, residual.sum()] / len(y)

    start = np.r_[np.full(x.shape[1], 0.1), -2.0]
    bounds = [(0, None)] * x.shape[1] + [(None, None)]
    fit = minimize(loss, start, jac=True, bounds=bounds, method="L-BFGS-B")
    return fit.x[:-1], float(fit.x[-1])


def evidence_features(run: Run, frozen: bool = True, logistic: bool = False) -> np.ndarray:
    named = run.views(frozen=frozen, logistic=logistic)
    return scoring.features(run.labels, named, _names(named))


def _names(named: dict) -> tuple[str, ...]:
    return scoring.feature_names(scoring.variant(named))


def crossfit_score(run: Run, others: list[Run], frozen: bool = True, logistic: bool = False) -> np.ndarray | None:
    """``run``'s evidence score (the frozen view's features only when ``frozen`` and the run has it; the logistic
    probe with ``logistic``), each photo half scored with weights fitted on the other half of ``others`` (those that
    have the same views); None when none of them holds a wrong label."""
    frozen = frozen and run.frozen is not None
    usable = [
        r for r in others if (not frozen or r.frozen is not None) and (not logistic or r.probe_logistic is not None)
    ]
    if (logistic and run.probe_logistic is None) or not any(r.truth.any() for r in usable):
        return None
    score = np.zeros(len(run.labels))
    x = evidence_features(run, frozen, logistic)
    half = run.half
    for h in (0, 1):
        coef, intercept = fitted_weights(usable, [r.half != h for r in usable], frozen=frozen, logistic=logistic)
        score[half == h] = scoring.mislabel_score(x[half == h], coef, intercept)
    return score


def scores(run: Run, others: list[Run]) -> dict[str, np.ndarray]:
    """Each ranker's mislabel score per row (higher = more likely wrong)."""
    from cleanlab.rank import get_label_quality_scores

    rows = np.arange(len(run.labels))
    out = {}
    for method in ("self_confidence", "normalized_margin", "confidence_weighted_entropy"):
        out[method] = 1 - get_label_quality_scores(run.labels, run.pred_probs, method=method)
    named = run.views()
    for view in ("vote", "smoothed", "probe", "frozen", "mean"):
        if view in named:
            out[f"{view}_only"] = 1 - named[view][rows, run.labels]
    if run.probe_logistic is not None:
        out["probe_logistic_only"] = 1 - run.probe_logistic[rows, run.labels]
    out["evidence"] = scoring.evidence_score(run.labels, named)  # flag's default, shipped weights
    crossfits = {**CROSSFIT, **(COMPARE_PROBE if run.probe_logistic is not None else {})}
    for name, options in crossfits.items():
        fitted = crossfit_score(run, others, **options)
        if fitted is not None:
            out[name] = fitted
    return out


def flagged(run: Run, ranked: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """cleanlab's default flagged set on the CNN, and the set `flag` takes (``queue.flagged_set``) of each
    evidence score."""
    from cleanlab.filter import find_label_issues

    sets = {"cleanlab_filter": find_label_issues(run.labels, run.pred_probs)}
    for name, score in ranked.items():
        if name.startswith("evidence"):
            sets[f"{name}_filter"] = flagged_set(score, sets["cleanlab_filter"])
    if "evidence_crossfit" in ranked:  # what the floor on the set's size does
        sets["evidence_crossfit_no_floor_filter"] = flagged_set(
            ranked["evidence_crossfit"], sets["cleanlab_filter"], floor=0
        )
    return sets


def bench_rank(folders: list[str | Path], *, compare_probe: bool = False, log=print) -> dict:
    """Score every ranker on every run; see the module docstring."""
    from tqdm.auto import tqdm

    runs = [load_run(f, compare_probe=compare_probe) for f in tqdm(folders, desc="loading runs", unit="run")]
    results = {}
    for run in tqdm(runs, desc="scoring runs", unit="run"):
        others = [r for r in runs if r is not run]
        ranked = scores(run, others)
        base = ranked[BASELINE]
        rows = {}
        for name, score in ranked.items():
            m = ranking_metrics(run.truth, score)
            if name != BASELINE:
                ci = bootstrap_ratios(run.truth, score, base, ("ap", "recall_5", "recall_10"))
                m.update({f"{metric}_ratio_ci": v for metric, v in ci.items()})
            rows[name] = m
        sets = flagged(run, ranked)
        results[run.name] = {
            "kind": run.kind,
            "wrong": int(run.truth.sum()),
            "images": len(run.truth),
            "rankers": rows,
            "f1": {name: f1(run.truth, s) for name, s in sets.items()},
            "flagged": {name: int(s.sum()) for name, s in sets.items()},
            "f1_ratio_ci": {
                name: bootstrap_f1_ratio(run.truth, s, sets["cleanlab_filter"])
                for name, s in sets.items()
                if name != "cleanlab_filter"
            },
        }
        log(f"{run.name}: {int(run.truth.sum())} wrong labels in {len(run.truth)} train/valid images ({run.kind})")
    return results


def write_weights(folders: list[str | Path], path: str | Path, *, log=print) -> dict:
    """Fit each score variant on every run of ``folders`` and write them (with their provenance) to ``path``."""
    runs = [load_run(f) for f in folders]
    scores_out = {}
    for variant, options in (("frozen", {}), ("no_frozen", {"frozen": False})):
        usable = [r for r in runs if variant == "no_frozen" or r.frozen is not None]
        if not usable:
            continue
        coef, intercept = fitted_weights(usable, **options)
        names = _names(usable[0].views(**options))
        scores_out[variant] = {
            "weights": {n: round(float(c), 4) for n, c in zip(names, coef)},
            "intercept": round(intercept, 4),
            "runs": [r.name for r in usable],
        }
        shown = ", ".join(f"{n} {c:.3f}" for n, c in zip(names, coef) if c > 1e-3)
        log(f"{variant}: {shown}, intercept {intercept:.3f} ({len(usable)} runs)")
    out = {
        "fitted_by": "labeler bench rank RUNS --write-weights " + str(path),
        "date": date.today().isoformat(),
        "runs": {r.name: r.kind for r in runs},
        "scores": scores_out,
    }
    Path(path).write_text(json.dumps(out, indent=1) + "\n")
    return out


def _ratio(value: float, base: float, ci) -> str:
    return f"{value / max(base, 1e-9):.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"


def summary_lines(results: dict) -> list[str]:
    """`bench rank`'s printed tables, one per kind of noise (real, planted): each ranker's mean (sd) over the
    runs, each run's ratio to the baseline with its interval, the flagged sets' F1."""
    lines = []
    for label, runs in _by_kind(results).items():
        names = list(dict.fromkeys(name for run in runs for name in run["rankers"]))
        lines += [
            f"{label}: mean over {len(runs)} run(s) (sd between runs); each run's ratio to {BASELINE} "
            "[paired-bootstrap 95% interval]",
            f"{'ranker':<36}{'AP':>13}{'recall@5%':>15}{'recall@10%':>15}  AP / {BASELINE}",
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
            lines.append(f"{name:<36}{cells[0]:>13}{cells[1]:>15}{cells[2]:>15}  {ratios}")
        for name in runs[0]["f1"]:
            having = [run for run in runs if name in run["f1"]]
            values = [run["f1"][name] for run in having]
            ratios = "; ".join(
                _ratio(run["f1"][name], run["f1"]["cleanlab_filter"], run["f1_ratio_ci"][name])
                for run in having
                if name in run["f1_ratio_ci"]
            )
            lines.append(f"{'F1 ' + name:<36}{np.mean(values):>13.3f} ({np.std(values):.3f})  {ratios}")
        sizes = "; ".join(
            f"{run_name} {run['flagged'].get('evidence_crossfit_filter', run['flagged']['evidence_filter'])}/"
            f"{run['wrong']}"
            for run_name, run in _named(results, runs)
        )
        lines.append(f"flagged set size / wrong labels (evidence_crossfit): {sizes}")
        for metric in ("recall_10",):
            for name in ("evidence", "evidence_crossfit"):
                having = [run for run in runs if name in run["rankers"]]
                ratios = "; ".join(
                    _ratio(
                        run["rankers"][name][metric],
                        run["rankers"][BASELINE][metric],
                        run["rankers"][name][metric + "_ratio_ci"],
                    )
                    for run in having
                )
                if ratios:
                    lines.append(f"{name} {metric} / {BASELINE}: {ratios}")
        lines.append("")
    return lines


def _named(results: dict, runs: list[dict]) -> list[tuple[str, dict]]:
    return [(name, run) for name, run in results.items() if any(run is r for r in runs)]


def _by_kind(results: dict) -> dict[str, list[dict]]:
    real = [r for r in results.values() if r["kind"] == "real"]
    planted = [r for r in results.values() if r["kind"] != "real"]
    return {k: v for k, v in (("real mistakes", real), ("planted flips", planted)) if v}
