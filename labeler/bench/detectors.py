"""What each detector the benchmarks compare says of every row, from a flag's public results.

The queue (``labeler.flag.queue.Queue``) keeps what `flag` itself uses: its score, its flagged set, cleanlab's
verdicts on the CNN and on the blend, the neighbour vote. The benchmarks compare these views as rankings and
flagged sets:

    cleanlab         cleanlab on the CNN: its label-quality rank and its filter (cleanlab alone)
    self_confidence  the CNN's probability of the label (cleanlab's default rank), as many flagged as cleanlab's filter
    neighbours       the neighbour vote: its share for the label; flagged where another label wins the vote
    blend            cleanlab on the blend of the CNN and the neighbour vote
    evidence         the queue: `flag`'s default ranking (the evidence score) and its flagged set
"""

from __future__ import annotations

import numpy as np

DETECTORS = ("cleanlab", "self_confidence", "neighbours", "blend", "evidence")  # evidence: `flag`'s default


def detector_scores(queue, labels: np.ndarray, pred_probs: np.ndarray) -> dict[str, np.ndarray]:
    """{detector: (N,) how likely each label is wrong, in [0, 1]}."""
    rows = np.arange(len(labels))
    return {
        "cleanlab": 1 - queue.cnn.quality,
        "self_confidence": 1 - pred_probs[rows, labels],
        "neighbours": 1 - queue.votes[rows, labels],
        "blend": 1 - queue.blend.quality,
        "evidence": queue.score,
    }


def detector_sets(queue, labels: np.ndarray, pred_probs: np.ndarray) -> dict[str, np.ndarray]:
    """{detector: (N,) bool, the rows it flags}."""
    rows = np.arange(len(labels))
    confidence = 1 - pred_probs[rows, labels]
    top = np.zeros(len(labels), dtype=bool)
    top[np.argsort(-confidence, kind="stable")[: int(queue.cnn.is_issue.sum())]] = True
    return {
        "cleanlab": queue.cnn.is_issue,
        "self_confidence": top,
        "neighbours": queue.votes.argmax(axis=1) != labels,
        "blend": queue.blend.is_issue,
        "evidence": queue.likely_wrong,
    }
