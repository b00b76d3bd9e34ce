"""The review queue: every signal merged into one ranked, explained list.

Three out-of-sample views judge each label: the cross-validated CNN (``pred_probs``), the CNN's
probabilities averaged over the image's nearest neighbours, and the neighbours' given labels
(a k-nearest-neighbour vote; never the image's own label, nor its group's). The default score
(``rank_by="evidence"``, ``labeler.flag.scoring``) combines the three with weights that `labeler
bench rank` fitted and measures cross-fitted against cleanlab alone. The other ``rank_by``
choices are cleanlab's rank methods on the *blend* ``(1 - vote_weight) x CNN + vote_weight x
vote`` (the previous default).

The flagged set: cleanlab's confident learning estimates how many labels are wrong (its filter
on the blend); with the evidence score, that many top-scored rows are flagged. Out-of-fold rows
and test rows are flagged and counted apart (the test rows' probabilities are the mean of the
fold models, another calibration).

Order (``priority = tier + score``, score in [0, 1), higher = more likely wrong):
  tier 1  the flagged set ("label_issue"), near-duplicates whose labels conflict
          ("duplicate_conflict": their own reason and filter, no tier above label errors, since at
          most half of a conflicting pair is wrong and `bench rank` found them no more often wrong
          than the flagged set), and reviewed items the new round contradicts strongly
  tier 0  outliers (the most isolated ``outlier_share`` of images, "outlier"; 0 of 29 held a
          planted flip in `bench rank`) and rows only the neighbour vote doubts
Items with a reviewer decision are left out unless the blend gives another label at least
``CONTRADICTION_PROB`` probability and the row is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labeler.flag import detect, neighbors, scoring

CONTRADICTION_PROB = 0.8
# Where the neighbour vote's neighbours come from: "oos", the space of the fold model that held the image
# out (kept by `train`); "shared", the fold-0 model's space, which trained on 2/3 of the labels.
VOTE_SPACES = ("oos", "shared")
# The neighbour vote's share in the merged probabilities (the CNN has the rest) and its space: chosen by
# `labeler bench rank` on the demo (3 planting seeds of pairs noise, clustered noise): a 0.7 / 0.3 blend with
# the shared-space vote ranked planted flips best of the blends; the cross-fitted weight was 0.7 on every run.
VOTE_WEIGHT = 0.3
RANKINGS = ("evidence", *detect.RANKINGS)
REASON_TEXT = {
    "duplicate_conflict": "near-duplicate with a conflicting label",
    "label_issue": "the model and the neighbours doubt the label",
    "neighbours_disagree": "its nearest images carry another label",
    "outlier": "unlike the other images (check it is usable)",
    "contradicts_review": "reviewed, but the new round disagrees strongly",
    "cross_type": "the suggestion is another kind of garment (e.g. upper vs lower body): almost surely wrong",
    "within_type": "the suggestion is the same kind of garment: a near-synonym, often a matter of policy",
    "audit": "random audit sample: measures how many wrong labels the queue misses",
}
TYPE_NAMES = {1: "upper body", 2: "lower body", 3: "full body"}  # DeepFashion's category_type


@dataclass
class Evidence:
    """Everything the queue is built from, row-aligned (plain arrays)."""

    item_ids: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) current label codes
    pred_probs: np.ndarray  # (N, K) out-of-sample model probabilities
    embeddings: np.ndarray  # (N, D) L2-normalised
    vocab: list[str]
    reviewed: dict = field(default_factory=dict)  # item_id -> (reviewer, action, label)
    files: list[str] | None = None  # image files, to confirm near-duplicates by their pixels
    groups: np.ndarray | None = None  # (N,) group per row (labeler.groups): same-group rows do not vote
    is_test: np.ndarray | None = None  # (N,) bool: test rows (mean of fold models) are scored apart
    oos_neighbours: neighbors.Neighbours | None = None  # (N, k) rows: out-of-sample lists (-1: none kept)
    class_types: list | None = None  # per class code: its type (DeepFashion's category_type) or None


@dataclass
class Entry:
    item_id: int
    priority: float
    kind: str  # the main reason code
    suggested: str
    suggested_prob: float
    quality: float  # 1 - the queue's score (low = likely wrong)
    top: list[tuple[str, float]]
    reasons: list[dict]  # [{"code", "text"}]
    group: int = -1  # near-duplicate group (row number of its representative), -1 if none
    contradicts: bool = False
    neighbours: list = field(default_factory=list)  # [(item_id, cosine similarity)], nearest first


@dataclass
class Queue:
    entries: list[Entry]  # ranked, highest priority first
    scores: dict[str, np.ndarray]  # per row: each detector's mislabel score in [0, 1] (for benchmarks)
    flagged: dict[str, np.ndarray]  # per row: each detector's flagged set (bool)
    summary: detect.ClassSummary
    neighbours: neighbors.Neighbours


def build_queue(
    ev: Evidence,
    *,
    k: int = 10,
    filter_by: str = "prune_by_noise_rate",
    rank_by: str = "evidence",
    duplicate_radius: float = neighbors.DUPLICATE_RADIUS,
    outlier_share: float = 0.01,
    vote_space: str = "shared",
    vote_weight: float = VOTE_WEIGHT,
) -> Queue:
    """Rank every row by the merged evidence; see the module docstring for the order."""
    labels, pred_probs = detect.check_inputs(ev.labels, ev.pred_probs)
    n_classes = pred_probs.shape[1]
    if rank_by not in RANKINGS:
        raise ValueError(f"rank_by {rank_by!r} is not one of {', '.join(RANKINGS)}")
    if vote_space not in VOTE_SPACES:
        raise ValueError(f"vote_space {vote_space!r} is not one of {', '.join(VOTE_SPACES)}")
    if not 0 <= vote_weight <= 1:
        raise ValueError(f"vote_weight {vote_weight} must be in [0, 1]")
    nn = neighbors.knn(ev.embeddings, k=k)
    voters = nn if ev.oos_neighbours is None or vote_space == "shared" else _out_of_sample(nn, ev.oos_neighbours)
    votes = neighbors.neighbour_votes(voters, labels, n_classes, groups=ev.groups)
    smoothed = neighbors.smoothed_probs(voters, pred_probs, groups=ev.groups)
    merged_probs = (1 - vote_weight) * pred_probs + vote_weight * votes
    cleanlab_rank = "self_confidence" if rank_by == "evidence" else rank_by
    model = detect.find_issues_by_part(labels, pred_probs, ev.is_test, filter_by=filter_by, rank_by=cleanlab_rank)
    merged = detect.find_issues_by_part(labels, merged_probs, ev.is_test, filter_by=filter_by, rank_by=cleanlab_rank)
    evidence = scoring.mislabel_score(scoring.features(labels, pred_probs, smoothed, votes))
    evidence_flagged = _top_n_by_part(evidence, merged.is_issue, ev.is_test)
    if rank_by == "evidence":
        score, is_issue = evidence, evidence_flagged
    else:
        score, is_issue = 1 - merged.quality, merged.is_issue
    confirm = None
    if ev.files is not None:
        from labeler.flag.pixels import pixel_match

        confirm = pixel_match(ev.files)
    groups = neighbors.duplicate_groups(nn, duplicate_radius, confirm)
    conflict = _conflicting_groups(groups, labels)
    outlier = neighbors.outlier_scores(nn)
    is_outlier = outlier >= 1 - outlier_share
    rows = np.arange(len(labels))
    vote_given = votes[rows, labels]
    scores = {
        "cleanlab": 1 - model.quality,
        "self_confidence": 1 - pred_probs[rows, labels],
        "neighbours": 1 - vote_given,
        "blend": 1 - merged.quality,
        "evidence": evidence,
        "merged": score,  # the queue's own score (rank_by)
    }
    flagged = {
        "cleanlab": model.is_issue,
        "self_confidence": _top_n(scores["self_confidence"], int(model.is_issue.sum())),
        "neighbours": votes.argmax(axis=1) != labels,
        "blend": merged.is_issue,
        "evidence": evidence_flagged,
        "merged": is_issue | conflict,
    }
    ctx = _Context(
        labels, pred_probs, merged_probs, vote_given, merged, score, is_issue, groups, conflict, outlier, is_outlier, nn
    )
    entries = [e for row in np.flatnonzero(flagged["merged"] | is_outlier) if (e := _entry(int(row), ev, ctx))]
    entries.sort(key=lambda e: -e.priority)
    summary = detect.summarize_classes(labels, pred_probs, ev.vocab)
    return Queue(entries, scores, flagged, summary, nn)


def _top_n_by_part(score: np.ndarray, counted: np.ndarray, parts=None) -> np.ndarray:
    """In each part, the ``counted.sum()`` rows of that part with the highest ``score``."""
    if parts is None:
        return _top_n(score, int(counted.sum()))
    out = np.zeros(len(score), dtype=bool)
    for part in np.unique(parts):
        rows = np.flatnonzero(parts == part)
        out[rows] = _top_n(score[rows], int(counted[rows].sum()))
    return out


@dataclass
class _Context:
    labels: np.ndarray
    pred_probs: np.ndarray
    merged_probs: np.ndarray
    vote_given: np.ndarray
    merged: detect.LabelIssues  # cleanlab on the blend: suggested label and its probability
    score: np.ndarray  # the queue's score (higher = more likely wrong)
    is_issue: np.ndarray  # the flagged set
    groups: np.ndarray
    conflict: np.ndarray
    outlier: np.ndarray
    is_outlier: np.ndarray
    nn: neighbors.Neighbours


def _entry(row: int, ev: Evidence, c: _Context) -> Entry | None:
    """The queue entry of one row with its reasons; None when a reviewed item is not contradicted."""
    vocab, labels = ev.vocab, c.labels
    given, suggested = vocab[labels[row]], vocab[c.merged.suggested[row]]
    item_id = int(ev.item_ids[row])
    reasons = []
    contradicts = item_id in ev.reviewed
    if contradicts:
        reviewer, action, label = ev.reviewed[item_id]
        p = c.merged.suggested_prob[row]
        if not (c.is_issue[row] and p >= CONTRADICTION_PROB and suggested != given):
            return None
        reasons.append(_reason("contradicts_review", f"{reviewer} chose {label} ({action}); now {p:.2f} {suggested}"))
    if c.conflict[row]:
        mates = np.flatnonzero(c.groups == c.groups[row])
        other = next(m for m in mates if labels[m] != labels[row])
        text = f"near-duplicate of #{int(ev.item_ids[other])} labelled {vocab[labels[other]]}"
        reasons.append(_reason("duplicate_conflict", text, item=int(ev.item_ids[other])))
    if c.is_issue[row]:
        p_model = float(c.pred_probs[row, c.merged.suggested[row]])
        reasons.append(_reason("label_issue", f"model: {p_model:.2f} {suggested}; given {given}"))
        kinds = _type_reason(ev.class_types, int(labels[row]), int(c.merged.suggested[row]), given, suggested)
        if kinds:
            reasons.append(kinds)
    if c.vote_given[row] < 0.5:
        near = c.nn.indices[row][c.nn.indices[row] >= 0]
        majority = vocab[int(np.bincount(labels[near], minlength=len(vocab)).argmax())] if len(near) else "?"
        text = f"{1 - c.vote_given[row]:.0%} of the neighbour vote is not {given} (mostly {majority})"
        reasons.append(_reason("neighbours_disagree", text))
    if c.is_outlier[row]:
        reasons.append(_reason("outlier", f"among the {1 - c.outlier[row]:.1%} most isolated images"))
    if not reasons:
        return None
    tier = 1 if (c.is_issue[row] or c.conflict[row] or contradicts) else 0
    return Entry(
        item_id=item_id,
        priority=tier + float(np.clip(c.score[row], 0, 0.999999)),
        kind=reasons[0]["code"],
        suggested=suggested,
        suggested_prob=float(c.merged.suggested_prob[row]),
        quality=float(1 - c.score[row]),
        top=[(vocab[j], float(c.merged_probs[row, j])) for j in c.merged.top[row]],
        reasons=reasons,
        group=int(c.groups[row]),
        contradicts=contradicts,
        neighbours=[
            (int(ev.item_ids[j]), round(float(s), 4))
            for j, s in zip(c.nn.indices[row], c.nn.similarities[row])
            if j >= 0
        ],
    )


def _type_reason(types, given_code: int, suggested_code: int, given: str, suggested: str) -> dict | None:
    """Cross-type (upper vs lower body: almost surely wrong) or within-type (near-synonyms) doubt; None when
    the types are unknown or the suggestion is the given label."""
    if not types or given_code == suggested_code:
        return None
    a, b = types[given_code], types[suggested_code]
    if a is None or b is None:
        return None
    if a != b:
        return _reason("cross_type", f"{given} is {TYPE_NAMES.get(a, a)}, {suggested} is {TYPE_NAMES.get(b, b)}")
    return _reason("within_type", f"{given} and {suggested} are both {TYPE_NAMES.get(a, a)}: a near-synonym?")


def _out_of_sample(nn: neighbors.Neighbours, oos: neighbors.Neighbours) -> neighbors.Neighbours:
    """The voters: each row's out-of-sample neighbours where the round kept them (train/valid rows), else
    its neighbours in the shared embedding space (test rows, whose labels no fold model trained on)."""
    k = min(nn.indices.shape[1], oos.indices.shape[1])
    has = (oos.indices >= 0).any(axis=1)
    idx = np.where(has[:, None], oos.indices[:, :k], nn.indices[:, :k])
    sims = np.where(has[:, None], oos.similarities[:, :k], nn.similarities[:, :k])
    return neighbors.Neighbours(idx, sims)


def _reason(code: str, text: str, **extra) -> dict:
    return {"code": code, "text": text, **extra}


def _conflicting_groups(groups: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """True for rows in a near-duplicate group whose members carry more than one label."""
    out = np.zeros(len(groups), dtype=bool)
    members = groups >= 0
    if members.any():
        pairs = np.unique(np.stack([groups[members], labels[members]], axis=1), axis=0)
        multi = np.unique(pairs[:, 0])[np.bincount(np.searchsorted(np.unique(pairs[:, 0]), pairs[:, 0])) > 1]
        out[members] = np.isin(groups[members], multi)
    return out


def _top_n(scores: np.ndarray, n: int) -> np.ndarray:
    flags = np.zeros(len(scores), dtype=bool)
    if n > 0:
        flags[np.argsort(-scores, kind="stable")[:n]] = True
    return flags
