"""`labeler sample`: random unreviewed images added to the queue as an audit, ahead of the rest.

The queue brings up the images most likely wrong; how many wrong labels the rest holds is then an assumption
of the remaining-errors estimate (``labeler.remaining``). An audit drawn at random, stratified by class,
measures it instead.
"""

from __future__ import annotations

import numpy as np

from labeler.errors import WorkspaceError
from labeler.flag.reasons import REASONS
from labeler.flag.stage import load_evidence
from labeler.store.records import Flag
from labeler.workspace import Workspace

AUDIT_PRIORITY = 3.0  # audit images come before every other queue entry (tiers are 0 and 1)


def sample(ws: Workspace, n: int, *, split: str | None = None, seed: int = 0) -> list[int]:
    """Add ``n`` random unreviewed images not already queued (of ``split``, stratified by class) to the flagged
    round's queue as "audit" entries ahead of the rest; return their item ids."""

    store = ws.store
    round_id = store.flagged_round()
    if round_id is None:
        raise WorkspaceError(f"{ws.path} has no flagged round; run `labeler flag {ws.path}` first")
    ev = load_evidence(ws, round_id)
    decisions = store.effective_decisions()
    queued = {f.item_id for f in store.flags(round_id)}
    split_of = {i.id: i.split for i in store.items()}
    pool = [
        r
        for r, i in enumerate(ev.item_ids)
        if int(i) not in decisions and int(i) not in queued and (split is None or split_of.get(int(i)) == split)
    ]
    rng = np.random.default_rng(seed)
    chosen = _stratified(rng, np.asarray(pool, dtype=np.int64), ev.labels, n)
    flags = []
    for r in chosen:
        top = np.argsort(-ev.pred_probs[r])[:9]
        reason = {"code": "audit", "text": REASONS["audit"].summary}
        flags.append(
            Flag(
                item_id=int(ev.item_ids[r]),
                kind="audit",
                score=1 - float(ev.pred_probs[r, ev.labels[r]]),  # the model's doubt; audits are drawn at random
                suggested_label=ev.vocab[top[0]],
                reasons=[reason],
                priority=AUDIT_PRIORITY + rng.random() * 1e-3,
                suggested_prob=float(ev.pred_probs[r, top[0]]),
                top=[[ev.vocab[j], float(ev.pred_probs[r, j])] for j in top],
            )
        )
    store.add_flags(round_id, flags)
    return [f.item_id for f in flags]


def _stratified(rng, pool: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """``n`` rows of ``pool``, each class getting its share (largest remainders), at random within a class."""
    if n >= len(pool):
        return rng.permutation(pool)
    classes, counts = np.unique(labels[pool], return_counts=True)
    want = counts / counts.sum() * n
    take = np.floor(want).astype(int)
    for j in np.argsort(-(want - take))[: n - take.sum()]:
        take[j] += 1
    out = [rng.choice(pool[labels[pool] == c], size=t, replace=False) for c, t in zip(classes, take) if t]
    return rng.permutation(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)
