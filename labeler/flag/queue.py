"""The review queue: every signal combined into one ranked, explained list.

Four out-of-sample views judge each label: the cross-validated CNN (``pred_probs``), the CNN's
probabilities averaged over the image's nearest neighbours, the neighbours' given labels
(a k-nearest-neighbour vote; never the image's own label, nor its group's), and a logistic
regression on the embeddings cross-validated by group (``probe``). The default score
(``rank_by="evidence"``, ``labeler.flag.scoring``) combines the four with weights that `labeler
bench rank` fitted and measures cross-fitted against cleanlab alone. The other ``rank_by``
choices are cleanlab's rank methods on the *blend* ``(1 - vote_weight) x CNN + vote_weight x
vote`` (the previous default).

The flagged set ("label_issue"): with the evidence score, the top-scored rows, as many as give the set
its highest expected F1 (``scoring.expected_f1_count``: the score read as a probability), and at least
0.4 x as many as cleanlab's filter on the CNN flags (``FILTER_FLOOR``). cleanlab's confident learning
flagged 2.4-3.3x the planted flips on every `bench rank` run; rows its filter flags (on the CNN or on the
blend) beyond the set stay in the queue, in tier 0 ("possible_label_issue"). With another
``rank_by``, the flagged set is cleanlab's filter on the blend. Out-of-fold rows and test rows are
flagged and counted apart (the test rows' probabilities are the mean of the fold models, another
calibration).

Order (``priority = tier + score``, score in [0, 1), higher = more likely wrong):
  tier 1  the flagged set ("label_issue"), near-duplicates whose labels conflict
          ("duplicate_conflict": their own reason and filter, no tier above label errors, since at
          most half of a conflicting pair is wrong and `bench rank` found them no more often wrong
          than the flagged set), and reviewed items the new round contradicts strongly
  tier 0  the rest of cleanlab's filter ("possible_label_issue"), outliers (the most isolated
          ``outlier_share`` of images, "outlier"; 0 of 46 held a planted flip in `bench rank`) and
          rows only the neighbour vote doubts
Items with a reviewer decision are left out unless the blend gives another label at least
``CONTRADICTION_PROB`` probability and the row is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labeler.errors import InputError
from labeler.flag import detect, neighbors, probe, reasons, scoring
from labeler.flag.reasons import Signals
from labeler.flag.stages import Stages
from labeler.store.records import Flag

# Where the neighbour vote's neighbours come from: "oos", the space of the fold model that held the image
# out (kept by `train`); "shared", the fold-0 model's space, which trained on 2/3 of the labels.
VOTE_SPACES = ("oos", "shared")
# The neighbour vote's share in the blend (the CNN has the rest) and its space: chosen by
# `labeler bench rank` on the demo (3 planting seeds of pairs noise, clustered noise): a 0.7 / 0.3 blend with
# the shared-space vote ranked planted flips best of the blends; the cross-fitted weight was 0.7 on every run.
VOTE_WEIGHT = 0.3
RANKINGS = ("evidence", *detect.RANKINGS)
# The flagged set's floor, as a share of cleanlab's filter on the CNN alone: a guard against an evidence score far
# less sure than it should be on a model unlike the benchmarks' (its weights, so its calibration, come from them).
# On the current `bench rank` runs it changed no CIFAR-10N run's F1 and the demo's mean by 0.001
# (docs/benchmarks.md: the `no_floor` rows).
FILTER_FLOOR = 0.4


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
    fold_groups: np.ndarray | None = None  # (N,) fold group per row (labeler.groups): kept in one fold; no vote
    is_test: np.ndarray | None = None  # (N,) bool: test rows (mean of fold models) are scored apart
    oos_neighbours: neighbors.Neighbours | None = None  # (N, k) rows: out-of-sample lists (-1: none kept)
    class_types: list | None = None  # per class code: its type (DeepFashion's category_type) or None
    fold_embeddings: object | None = None  # (F, M, D) every fold model's embeddings (array or BlockReader): the probe's
    frozen_embeddings: object | None = None  # (M, D') the frozen ImageNet network's (labeler_training.frozen), likewise
    space_rows: np.ndarray | None = None  # (N,) row of each evidence row in those two (None: row-aligned)

    def probe(self, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The probe's out-of-sample probabilities (``flag.probe``) in every fold model's space (fold 0's for rounds
        that kept no others), and in the frozen view's (None when the round has none): (N, k) each."""
        options = {"fold_groups": self.fold_groups, "held_out": self.is_test}
        if self.fold_embeddings is None:
            fold_probs = probe.probe_probs(self.embeddings, labels, k, **options)
        else:
            fold_probs = probe.probe_probs(self.fold_embeddings, labels, k, rows=self.space_rows, **options)
        frozen = None
        if self.frozen_embeddings is not None:
            frozen = probe.probe_probs(self.frozen_embeddings, labels, k, rows=self.space_rows, **options)
        return fold_probs, frozen


@dataclass
class Queue:
    """The queue and the row-aligned results it was built from (row = a row of the ``Evidence``)."""

    flags: list[Flag]  # ranked, highest priority first (the store's records, active scores not yet set)
    score: np.ndarray  # (N,) the ranking's score (``rank_by``): how likely each label is wrong, in [0, 1]
    likely_wrong: np.ndarray  # (N,) bool: tier 1 before reviewed rows are left out: the flagged set and conflicts
    cnn: detect.LabelIssues  # cleanlab on the CNN alone: self-confidence and its filter
    blend: detect.LabelIssues  # cleanlab on the blend of the CNN and the neighbour vote: the suggestions
    votes: np.ndarray  # (N, K) the neighbour vote
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
    stages: Stages | None = None,
) -> Queue:
    """Rank every row by the ``rank_by`` score; see the module docstring for the order. ``stages`` times each step."""
    stage = stages or Stages()
    labels, pred_probs = detect.check_inputs(ev.labels, ev.pred_probs)
    _check_options(rank_by, vote_space, vote_weight)
    if not 1 <= k < len(labels):
        raise InputError(
            f"-k {k}: each of the round's {len(labels):,} images has at most {len(labels) - 1:,} neighbours"
        )
    with stage("k-NN graph"):
        nn = neighbors.knn(ev.embeddings, k=k)
    voters = nn if ev.oos_neighbours is None or vote_space == "shared" else _out_of_sample(nn, ev.oos_neighbours)
    views = _views(
        ev, labels, pred_probs, voters, filter_by=filter_by, rank_by=rank_by, vote_weight=vote_weight, stage=stage
    )
    if rank_by == "evidence":
        score, is_issue = views.evidence, views.evidence_flagged
    else:
        score, is_issue = 1 - views.blend.quality, views.blend.is_issue
    with stage("near-duplicates"):
        groups = _duplicate_groups(ev, nn, duplicate_radius)
    conflict = _conflicting_groups(groups, labels)
    outlier = neighbors.outlier_scores(nn)
    is_outlier = outlier >= 1 - outlier_share
    signals = Signals(
        item_ids=ev.item_ids,
        vocab=ev.vocab,
        labels=labels,
        pred_probs=pred_probs,
        suggested=views.blend.suggested,
        suggested_prob=views.blend.suggested_prob,
        votes=views.votes,
        is_issue=is_issue,
        also_doubted=views.doubted & ~is_issue,
        duplicate_groups=groups,
        conflict=conflict,
        outlier=outlier,
        is_outlier=is_outlier,
        neighbour_rows=nn.indices,
        reviewed=ev.reviewed,
        class_types=ev.class_types,
    )
    context = (views.blend.top, views.blend_probs, score, nn)
    candidates = is_issue | conflict | views.doubted | is_outlier
    with stage("reasons"):
        flags = [f for row in np.flatnonzero(candidates) if (f := _flag(int(row), signals, *context))]
        flags.sort(key=lambda f: -f.priority)
        summary = detect.summarize_classes(labels, pred_probs, ev.vocab)
    return Queue(
        flags=flags,
        score=score,
        likely_wrong=is_issue | conflict,
        cnn=views.cnn,
        blend=views.blend,
        votes=views.votes,
        summary=summary,
        neighbours=nn,
    )


@dataclass
class _Views:
    """The views of each label and cleanlab's verdicts on them (row-aligned)."""

    votes: np.ndarray  # (N, K) the neighbour vote
    blend_probs: np.ndarray  # (N, K) the blend: (1 - vote_weight) x CNN + vote_weight x vote
    cnn: detect.LabelIssues  # cleanlab on the CNN alone
    blend: detect.LabelIssues  # cleanlab on the blend
    evidence: np.ndarray | None  # (N,) the evidence score (None unless ranking by it)
    evidence_flagged: np.ndarray | None  # (N,) bool: the top-evidence rows with the best expected F1 (floored)

    @property
    def doubted(self) -> np.ndarray:
        """(N,) bool: in cleanlab's filter on the CNN or on the blend."""
        return self.cnn.is_issue | self.blend.is_issue


def _views(
    ev: Evidence, labels, pred_probs, voters, *, filter_by: str, rank_by: str, vote_weight: float, stage: Stages
) -> _Views:
    with stage("neighbour vote"):
        votes = neighbors.neighbour_votes(voters, labels, pred_probs.shape[1], fold_groups=ev.fold_groups)
        smoothed = neighbors.smoothed_probs(voters, pred_probs, fold_groups=ev.fold_groups)
        blend_probs = (1 - vote_weight) * pred_probs + vote_weight * votes
    cleanlab_rank = "self_confidence" if rank_by == "evidence" else rank_by
    with stage("cleanlab filters"):
        model = detect.find_issues_by_part(labels, pred_probs, ev.is_test, filter_by=filter_by, rank_by=cleanlab_rank)
        blend = detect.find_issues_by_part(labels, blend_probs, ev.is_test, filter_by=filter_by, rank_by=cleanlab_rank)
    evidence = evidence_flagged = None  # the probe is only for the ranking that reads it
    if rank_by == "evidence":
        with stage("probe"):
            probed, frozen = ev.probe(labels, pred_probs.shape[1])
        with stage("score"):
            evidence = scoring.evidence_score(labels, scoring.views(pred_probs, smoothed, votes, probed, frozen))
            evidence_flagged = flagged_set(evidence, model.is_issue, ev.is_test)
    return _Views(votes, blend_probs, model, blend, evidence, evidence_flagged)


def _check_options(rank_by: str, vote_space: str, vote_weight: float) -> None:
    if rank_by not in RANKINGS:
        raise ValueError(f"rank_by {rank_by!r} is not one of {', '.join(RANKINGS)}")
    if vote_space not in VOTE_SPACES:
        raise ValueError(f"vote_space {vote_space!r} is not one of {', '.join(VOTE_SPACES)}")
    if not 0 <= vote_weight <= 1:
        raise ValueError(f"vote_weight {vote_weight} must be in [0, 1]")


def _duplicate_groups(ev: Evidence, nn: neighbors.Neighbours, radius: float) -> np.ndarray:
    """Near-duplicate groups: neighbours within ``radius``, confirmed by their pixels when the files are known."""
    confirm = None
    if ev.files is not None:
        from labeler.flag.pixels import pixel_match

        confirm = pixel_match(ev.files)
    return neighbors.duplicate_groups(nn, radius, confirm)


def flagged_set(
    score: np.ndarray, cleanlab_flagged: np.ndarray, parts=None, *, floor: float = FILTER_FLOOR
) -> np.ndarray:
    """The flagged set of the evidence ``score``: in each part, the top-``score`` rows of that part, as many as
    ``scoring.expected_f1_count`` says and at least ``FILTER_FLOOR`` x as many as cleanlab's filter on the CNN
    (``cleanlab_flagged``) flags there. `bench rank` measures this very set."""
    out = np.zeros(len(score), dtype=bool)
    for part in [None] if parts is None else np.unique(parts):
        rows = np.arange(len(score)) if part is None else np.flatnonzero(parts == part)
        least = int(floor * cleanlab_flagged[rows].sum())
        out[rows] = _top_n(score[rows], max(scoring.expected_f1_count(score[rows]), least))
    return out


def _flag(row: int, s: Signals, top, blend_probs, score, nn: neighbors.Neighbours) -> Flag | None:
    """The flag of one row with its reasons (``labeler.flag.reasons``); None when no reason applies
    or the item was reviewed and the new round does not contradict it."""
    item_id = int(s.item_ids[row])
    if item_id in s.reviewed and not reasons.contradicted(row, s):
        return None
    found = reasons.explain(row, s)
    if not found:
        return None
    vocab = s.vocab
    return Flag(
        item_id=item_id,
        kind=found[0]["code"],
        score=float(score[row]),
        suggested_label=vocab[s.suggested[row]],
        reasons=found,
        priority=reasons.tier(found) + float(np.clip(score[row], 0, 0.999999)),
        suggested_prob=float(s.suggested_prob[row]),
        top=[(vocab[j], float(blend_probs[row, j])) for j in top[row]],
        duplicate_group=int(s.duplicate_groups[row]),
        contradicts=item_id in s.reviewed,
        neighbours=[
            (int(s.item_ids[j]), round(float(v), 4)) for j, v in zip(nn.indices[row], nn.similarities[row]) if j >= 0
        ],
    )


def _out_of_sample(nn: neighbors.Neighbours, oos: neighbors.Neighbours) -> neighbors.Neighbours:
    """The voters: each row's out-of-sample neighbours where the round kept them (train/valid rows), else
    its neighbours in the shared embedding space (test rows, whose labels no fold model trained on)."""
    k = min(nn.indices.shape[1], oos.indices.shape[1])
    has = (oos.indices >= 0).any(axis=1)
    idx = np.where(has[:, None], oos.indices[:, :k], nn.indices[:, :k])
    sims = np.where(has[:, None], oos.similarities[:, :k], nn.similarities[:, :k])
    return neighbors.Neighbours(idx, sims)


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
