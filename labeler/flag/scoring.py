"""The queue's default mislabel score: one number per image from out-of-sample views of its label. numpy only.

The views, each an (N, K) distribution over classes that never saw the image's own label:
  model     the CNN's out-of-fold probabilities (cleanlab's ``pred_probs``);
  smoothed  the same probabilities averaged over the image's nearest neighbours (same group left out);
  vote      the neighbours' labels (``neighbors.neighbour_votes``);
  probe     a linear probe on every fold model's embeddings, cross-validated by group (``probe.probe_probs``);
  frozen    the same probe on a frozen ImageNet network's embeddings (``labeler_training.frozen``): no label of the
            dataset shaped that space, so a wrong label that look-alike images share cannot pull it;
  mean      the plain average of model, probe and frozen (of model and probe without the frozen view).
From each view four features, each higher where the view doubts the given label more:
  doubt      ``-log(share of the given label)``;
  margin     ``log(top share) - log(share of the given label)`` (0 when the given label is on top);
  doubt_p    ``1 - share of the given label`` (cleanlab's self-confidence, as a doubt);
  margin_p   ``1 + best other share - share of the given label`` (cleanlab's normalized margin, as a doubt).
The score is a logistic model of "this label is wrong", ``sigmoid(weights . features + intercept)`` with every
weight >= 0 (more doubt from any view never lowers the score). Its weights live in ``weights.json`` beside this
file, with the runs and the command that fitted them (`labeler bench rank RUNS --write-weights`): one score with
the frozen view, one for rounds without it.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

VIEWS = ("model", "smoothed", "vote", "probe", "frozen", "mean")
KINDS = ("doubt", "margin", "doubt_p", "margin_p")
FEATURES = tuple(f"{v}_{k}" for v in VIEWS for k in KINDS)
_VIEW_OF = {f"{v}_{k}": v for v in VIEWS for k in KINDS}
WEIGHTS_FILE = Path(__file__).with_name("weights.json")
EPS = 1e-4


def views(model, smoothed, vote, probe, frozen=None) -> dict[str, np.ndarray]:
    """The named views (``frozen`` None: a round without the frozen view), ``mean`` included."""
    out = {"model": model, "smoothed": smoothed, "vote": vote, "probe": probe}
    if frozen is not None:
        out["frozen"] = frozen
    out["mean"] = np.mean([out[v] for v in ("model", "probe", "frozen") if v in out], axis=0)
    return out


def variant(named: dict) -> str:
    """Which fitted score applies: "frozen" when the views include the frozen one, else "no_frozen"."""
    return "frozen" if "frozen" in named else "no_frozen"


def feature_names(variant_name: str) -> tuple[str, ...]:
    return FEATURES if variant_name == "frozen" else tuple(f for f in FEATURES if not f.startswith("frozen_"))


def features(labels: np.ndarray, named: dict, names: tuple[str, ...] | None = None) -> np.ndarray:
    """(N, len(names)) features of the ``named`` views (``views``), by name (default: the variant's)."""
    names = feature_names(variant(named)) if names is None else names
    labels = np.asarray(labels)
    rows = np.arange(len(labels))
    cols = {}
    for view in dict.fromkeys(_VIEW_OF[n] for n in names):
        p = np.array(named[view], dtype=np.float64)
        share, top = p[rows, labels], p.max(axis=1) if len(p) else np.zeros(0)
        p[rows, labels] = -np.inf
        other = p.max(axis=1) if p.shape[1] > 1 else np.zeros(len(p))
        cols[f"{view}_doubt"] = -np.log(share + EPS)
        cols[f"{view}_margin"] = np.log(top + EPS) - np.log(share + EPS)
        cols[f"{view}_doubt_p"] = 1 - share
        cols[f"{view}_margin_p"] = 1 + other - share
    return np.column_stack([cols[n] for n in names]) if names else np.zeros((len(labels), 0))


@cache
def fitted(variant_name: str) -> tuple[dict[str, float], float]:
    """({feature: weight}, intercept) of a score variant, from ``weights.json``."""
    score = json.loads(WEIGHTS_FILE.read_text())["scores"][variant_name]
    return dict(score["weights"]), float(score["intercept"])


def mislabel_score(x: np.ndarray, weights, intercept: float) -> np.ndarray:
    """(N,) in (0, 1), higher = more likely a wrong label."""
    z = np.asarray(x, dtype=np.float64) @ np.asarray(weights, dtype=np.float64) + intercept
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def evidence_score(labels: np.ndarray, named: dict) -> np.ndarray:
    """The default score of the ``named`` views with the shipped weights of its variant."""
    weights, intercept = fitted(variant(named))
    names = tuple(weights)
    return mislabel_score(features(labels, named, names), [weights[n] for n in names], intercept)


def expected_f1_count(score: np.ndarray) -> int:
    """How many top-``score`` rows to flag: the count whose flagged set has the highest expected F1 when each
    score is read as the probability that the label is wrong. Flagging the top k is expected to catch
    ``sum of their scores`` of the ``sum of all scores`` wrong labels, so its plug-in F1 is
    ``2 * that catch / (k + sum of all scores)`` (Lipton et al. 2014: the F1-optimal set is a top-k of
    calibrated scores). It is only as right as the score's calibration (`docs/benchmarks.md` measures it)."""
    p = np.sort(np.asarray(score, dtype=np.float64))[::-1]
    if not len(p) or p.sum() <= 0:
        return 0
    expected_f1 = 2 * np.cumsum(p) / (np.arange(1, len(p) + 1) + p.sum())
    return int(np.argmax(expected_f1)) + 1
