"""Active learning with cleanlab's ActiveLab: which items a new review helps most. cleanlab only here.

Each item's labels form one row of ``labels_multiannotator``: column ``given`` holds the
dataset's own label, then one column per reviewer with their latest decision (NaN where they
did not decide, or removed the item). ActiveLab weighs these annotations against the model's
``pred_probs`` and scores each item; a *low* score means another look is worth most. We return
``1 - score`` so that higher means "review sooner", like the queue's priority.

Out-of-fold rows have one out-of-sample model each, so they use the single-model form; test
rows were predicted by every fold model, so they use the ensemble form
(``get_active_learning_scores_ensemble``) when the round has two or more folds.
"""

from __future__ import annotations

import numpy as np


def annotation_table(given: np.ndarray, reviews: dict[str, dict[int, int]], rows: dict[int, int]):
    """labels_multiannotator (N, 1 + reviewers): given codes, then each reviewer's codes or NaN."""
    import pandas as pd

    table = pd.DataFrame({"given": np.asarray(given, dtype=float)})
    for reviewer, decided in sorted(reviews.items()):
        column = np.full(len(given), np.nan)
        for item_id, code in decided.items():
            if item_id in rows:
                column[rows[item_id]] = code
        if not np.isnan(column).all():  # cleanlab refuses an annotator who labelled none of these rows
            table[f"reviewer:{reviewer}"] = column
    return table


def review_priority(table, pred_probs: np.ndarray, *, ensemble: np.ndarray | None = None) -> np.ndarray:
    """1 - ActiveLab score per row (higher = review sooner); ``ensemble`` (P, N, K) uses the ensemble form."""
    from cleanlab.multiannotator import get_active_learning_scores, get_active_learning_scores_ensemble

    if len(table) == 0:
        return np.zeros(0, dtype=np.float32)
    if ensemble is not None and len(ensemble) > 1:
        scores, _ = get_active_learning_scores_ensemble(table, ensemble)
    else:
        scores, _ = get_active_learning_scores(table, pred_probs)
    return (1 - np.asarray(scores)).astype(np.float32)
