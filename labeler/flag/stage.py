"""`labeler flag`: build the review queue of a round, store it, summarise it, report it.

Every item of the round gets an out-of-sample probability: train/valid items their
out-of-fold ``pred_probs``, test items the mean of the fold models (none trained on test),
so test labels are checked too. The labels judged are the ones the round trained on (the
current labels).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from labeler.errors import ArrayError, LabelerError, explain
from labeler.files import write_csv
from labeler.flag.active import annotation_table, review_priority
from labeler.flag.detect import NOISE_RATE_CAVEAT
from labeler.flag.neighbors import Neighbours
from labeler.flag.queue import Evidence, Queue, build_queue
from labeler.flag.reasons import TYPE_NAMES
from labeler.flag.stages import Stages
from labeler.labels import class_index, label_codes, label_table, live_labels_by_reviewer
from labeler.remaining import scored_arrays
from labeler.report import write_flag_report
from labeler.store import Flag
from labeler.workspace import Workspace

CALIBRATION_SAMPLE = 3_000  # rows outside the queue that ActiveLab also sees (see active_scores)
# queue entries ActiveLab scores, the top by priority: its per-row Python loops make scoring a whole DeepFashion
# queue take minutes (`labeler bench scale` times the ActiveLab stage); entries past it have
# no ActiveLab score and follow the scored ones in priority order in the app's "active" order (a flag after
# the next reviews scores the next top entries)
ACTIVE_FOCUS = 2_000
QUEUE_CSV_COLUMNS = (
    "rank",
    "image",
    "split",
    "given_label",
    "current_label",
    "suggested_label",
    "suggested_prob",
    "label_quality",
    "priority",
    "reasons",
    "explanation",
)


@dataclass
class FlagResult:
    round_id: int
    queue: Queue
    evidence: Evidence
    report: Path


def latest_round(ws: Workspace, round_id: int | None = None):
    """The round to flag: the latest (or ``round_id``) with pred_probs and embeddings; clear errors otherwise."""
    chosen = ws.pick_round(round_id)
    have = ws.store.arrays(chosen.id)
    for name in ("pred_probs", "embeddings"):
        if name not in have:
            raise ArrayError(
                f"round {chosen.id} has no {name}; run `labeler train {ws.path}` to make a round with them"
            )
    return chosen


def load_evidence(ws: Workspace, round_id: int, *, fold_spaces: bool = False) -> Evidence:
    """Row-aligned labels, probabilities and embeddings of every item the round predicted; with ``fold_spaces``,
    the probe's spaces too: every fold model's embeddings and the frozen view's, as ``BlockReader``s (2.2 GB of
    float16 at DeepFashion's size: read a block of rows at a time by the probe, and only when asked)."""
    params = next(r.params for r in ws.store.rounds() if r.id == round_id)
    vocab = params.get("vocab") or ws.store.classes()
    pred_ids, test_ids = ws.load_array(round_id, "pred_ids"), ws.load_array(round_id, "test_ids")
    ids = np.concatenate([pred_ids, test_ids])
    is_test = np.concatenate([np.zeros(len(pred_ids), bool), np.ones(len(test_ids), bool)])
    probs = np.concatenate([ws.load_array(round_id, "pred_probs"), ws.load_array(round_id, "test_probs")])
    bad = ~np.isfinite(probs).all(axis=1)
    if bad.any():
        raise ArrayError(
            f"round {round_id} pred_probs/test_probs have NaN or inf in {int(bad.sum())} rows; retrain the round"
        )
    embed_ids, embeddings = ws.load_array(round_id, "embed_ids"), ws.load_array(round_id, "embeddings")
    position = _lookup(np.asarray(embed_ids, dtype=np.int64), ids.astype(np.int64))
    if (position < 0).any():
        missing = ids[position < 0]
        raise ArrayError(
            f"round {round_id} has no embedding for {len(missing)} items (e.g. #{int(missing[0])}); retrain the round"
        )
    table = label_table(ws)  # current labels; removed items are not in it
    table_ids = table["id"].to_numpy(dtype=np.int64)
    codes = label_codes(table["label"], vocab, missing=-1)
    row = _lookup(table_ids, ids.astype(np.int64))
    # items removed since the round are not flagged, nor items whose label the round has no column for
    # (a class added by a later import: the round's own class list is used by name)
    keep = (row >= 0) & (codes[np.maximum(row, 0)] >= 0)
    ids, probs, is_test, row, position = ids[keep], probs[keep], is_test[keep], row[keep], position[keep]
    labels = codes[row]
    reviewed = {i: (d.reviewer, d.action, d.label) for i, d in ws.store.effective_decisions().items()}
    root = str(ws.root)
    files = [os.path.join(root, f) for f in table["file"].to_numpy()[row]]
    groups, have = None, ws.store.arrays(round_id)
    fold_groups = _fold_groups(ws, round_id, have)
    if fold_groups is not None:  # rounds before group-aware folds have none
        group_ids, group_of = fold_groups
        at = _lookup(group_ids, ids.astype(np.int64))
        groups = np.where(at >= 0, group_of[np.maximum(at, 0)], -1 - np.arange(len(ids))).astype(np.int64)
    embedded = embeddings[position]
    oos = _oos_neighbours(ws, round_id, pred_ids, ids)
    types = ws.store.get_meta("class_types") or {}
    class_types = [types.get(name) for name in vocab] if types else None
    spaces = frozen = None
    if fold_spaces and "fold_embeddings" in have:  # rounds before it: the probe fits fold 0's space only
        spaces = ws.load_array(round_id, "fold_embeddings", blocks=True)
    if fold_spaces and "frozen_embeddings" in have:  # rows as embed_ids; rounds before it, or --no-frozen-view: none
        frozen = ws.load_array(round_id, "frozen_embeddings", blocks=True)
    return Evidence(
        item_ids=ids,
        labels=labels,
        pred_probs=probs,
        embeddings=embedded,
        vocab=list(vocab),
        reviewed=reviewed,
        files=files,
        fold_groups=groups,
        is_test=is_test,
        oos_neighbours=oos,
        class_types=class_types,
        fold_embeddings=spaces,
        frozen_embeddings=frozen,
        space_rows=position if spaces is not None or frozen is not None else None,
    )


def _fold_groups(ws: Workspace, round_id: int, have) -> tuple[np.ndarray, np.ndarray] | None:
    """(item ids, their fold groups) of a round, by name; rounds recorded by labeler 0.1 kept one (N, 2) "groups"
    table (item id, group)."""
    if "fold_groups" in have:
        return ws.load_array(round_id, "fold_group_item_ids"), ws.load_array(round_id, "fold_groups").astype(np.int64)
    if "groups" in have:
        pairs = ws.load_array(round_id, "groups").astype(np.int64)
        return pairs[:, 0], pairs[:, 1]
    return None


def _lookup(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Position of each of ``values`` in ``keys`` (unique ids), -1 where absent or negative."""
    if len(keys) == 0:
        return np.full(np.shape(values), -1, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    pos = np.clip(np.searchsorted(keys[order], values), 0, len(keys) - 1)
    return np.where((values >= 0) & (keys[order][pos] == values), order[pos], -1)


def _oos_neighbours(ws: Workspace, round_id: int, pred_ids: np.ndarray, ids: np.ndarray):
    """The round's out-of-sample neighbour lists as evidence rows (None for rounds that have none)."""

    if "oos_neighbour_ids" not in ws.store.arrays(round_id):
        return None
    nbr, sims = ws.load_array(round_id, "oos_neighbour_ids"), ws.load_array(round_id, "oos_neighbour_sims")
    rows = _lookup(ids, nbr)  # neighbour item ids -> evidence rows (-1: not in the evidence)
    source = _lookup(pred_ids, ids)  # evidence rows -> rows of the stored lists (-1: a test row)
    has = source >= 0
    out_i = np.full((len(ids), nbr.shape[1]), -1, dtype=np.int64)
    out_s = np.zeros((len(ids), nbr.shape[1]), dtype=np.float32)
    out_i[has] = rows[source[has]]
    out_s[has] = np.where(out_i[has] >= 0, sims[source[has]], 0)
    return Neighbours(out_i, out_s)


def flag_round(
    ws: Workspace,
    *,
    round_id: int | None = None,
    csv_path: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    **options,
) -> FlagResult:
    """Build, store and report the queue of a round (the latest by default); ``log`` hears each stage's time."""
    stage = Stages(log)
    chosen = latest_round(ws, round_id)
    with stage("load"):
        evidence = load_evidence(ws, chosen.id, fold_spaces=options.get("rank_by", "evidence") == "evidence")
    queue = build_queue(evidence, stages=stage, **options)
    row_of = {int(i): r for r, i in enumerate(evidence.item_ids)}
    active = None
    if evidence.reviewed:  # the effective decisions, read once by load_evidence
        top = queue.flags[:ACTIVE_FOCUS]  # flags are in priority order
        with stage("ActiveLab"):
            active = active_scores(ws, chosen.id, evidence, focus=[row_of[f.item_id] for f in top])
    flags = queue.flags
    if active is not None:
        flags = [replace(f, active_score=float(active[row_of[f.item_id]])) for f in flags]
    if csv_path is not None:  # written before the queue is stored: a failed write leaves the workspace as it was
        label_of = dict(zip(evidence.item_ids.tolist(), evidence.labels.tolist()))
        write_queue_csv(ws, flags, Path(csv_path), {i: evidence.vocab[c] for i, c in label_of.items()})
    classes = {name: c for c, name in enumerate(ws.store.classes())}
    codes = np.array([classes.get(name, -1) for name in evidence.vocab], dtype=np.int64)[evidence.labels]
    with stage("store"):
        ws.add_arrays(chosen.id, scored_arrays(evidence.item_ids, queue.score, codes))
        ws.store.replace_flags(chosen.id, flags)
        # cleanlab's per-class error rates before review, beside which the Overview plots what reviews measured
        metrics = dict(chosen.metrics, class_error_estimate=queue.summary.error_rate)
        ws.store.set_round_metrics(chosen.id, metrics)

    try:
        with stage("report"):
            report = write_flag_report(ws, chosen.id, queue, evidence)
    except OSError as exc:
        why = explain(exc) or exc
        raise LabelerError(
            f"the queue of round {chosen.id} is stored ({len(flags):,} images; `labeler review {ws.path}` works), "
            f"but its report could not be written: {why}"
        ) from exc
    return FlagResult(chosen.id, queue, evidence, report)


def active_scores(
    ws: Workspace, round_id: int, ev: Evidence, focus=None, *, sample: int = CALIBRATION_SAMPLE, seed: int = 0
) -> np.ndarray:
    """ActiveLab review priority of evidence rows, from the given labels and every reviewer's decisions.

    With ``focus`` (row numbers) only those rows are scored (NaN elsewhere): ActiveLab runs on them,
    the reviewed rows (a seeded sample of ``sample`` past that) and a seeded sample of ``sample`` other
    rows, which is enough for its estimates of annotator quality and model calibration; cleanlab's
    per-row Python loop over all 289k DeepFashion rows took minutes."""

    index = class_index(ev.vocab)
    # each row's imported label as a column of this round (-1: a class the round has no column for)
    to_round = np.array([index.get(name, -1) for name in ws.store.classes()] + [-1], dtype=np.int64)
    codes = np.array(ws.store.label_codes(), dtype=np.int64).reshape(-1, 2)
    at = _lookup(codes[:, 0], ev.item_ids.astype(np.int64))
    given_rows = np.where(at >= 0, to_round[codes[np.maximum(at, 0), 1]], -1)
    reviews = {
        reviewer: {i: index[label] for i, label in labelled.items() if label in index}
        for reviewer, labelled in live_labels_by_reviewer(ws.store.decisions()).items()
    }
    chosen = _rows_to_score(ev, focus, {i for r in reviews.values() for i in r}, sample, seed)
    scores = np.full(len(ev.item_ids), np.nan, dtype=np.float32)
    test_ids = ws.load_array(round_id, "test_ids")
    folds = ws.load_array(round_id, "test_probs_folds") if "test_probs_folds" in ws.store.arrays(round_id) else None
    test_col = {int(i): c for c, i in enumerate(test_ids)}
    for is_test in (False, True):
        rows = chosen[(ev.is_test[chosen] == is_test) & (given_rows[chosen] >= 0)]  # others' labels: unscored
        if not len(rows):
            continue
        ids = ev.item_ids[rows]
        table = annotation_table(given_rows[rows], reviews, {int(i): r for r, i in enumerate(ids)})
        ensemble = folds[:, [test_col[int(i)] for i in ids]] if is_test and folds is not None else None
        scores[rows] = review_priority(table, ev.pred_probs[rows], ensemble=ensemble)
    return scores


def _rows_to_score(ev: Evidence, focus, reviewed_ids: set, sample: int, seed: int) -> np.ndarray:
    """Sorted row numbers ActiveLab runs on: all rows, or ``focus`` + reviewed rows + a seeded sample."""
    n = len(ev.item_ids)
    if focus is None:
        return np.arange(n)
    keep = np.zeros(n, dtype=bool)
    keep[np.asarray(list(focus), dtype=np.int64)] = True
    reviewed = np.flatnonzero(~keep & np.isin(ev.item_ids, np.fromiter(reviewed_ids, dtype=np.int64)))
    if len(reviewed) > sample:  # enough reviews to estimate the reviewers' weights and the model's temperature
        reviewed = np.random.default_rng(seed + 1).choice(reviewed, size=sample, replace=False)
    keep[reviewed] = True
    others = np.flatnonzero(~keep)
    if len(others) > sample:
        others = np.random.default_rng(seed).choice(others, size=sample, replace=False)
    keep[others] = True
    return np.flatnonzero(keep)


def write_queue_csv(ws: Workspace, flags: list[Flag], path: Path, current: dict[int, str]) -> None:
    """The ranked queue, one row per flagged item, image path exactly as imported; written atomically.
    ``given_label`` is the label as imported; ``current``: {item id: the label flag judged (its current label,
    after review)}."""
    items = ws.store.items_by_id(f.item_id for f in flags)
    rows = []
    for rank, f in enumerate(flags, start=1):
        item = items[f.item_id]
        rows.append(
            [
                rank,
                item.path,
                item.split,
                item.label,
                current.get(f.item_id, item.label),
                f.suggested_label,
                f"{f.suggested_prob:.4f}",
                f"{1 - f.score:.4f}",  # label_quality: 1 - the queue's score (higher = more likely right)
                f"{f.priority:.4f}",
                ";".join(r["code"] for r in f.reasons),
                " | ".join(r["text"] for r in f.reasons),
            ]
        )
    write_csv(path, QUEUE_CSV_COLUMNS, rows)


def format_summary(result: FlagResult, *, top: int = 8) -> str:
    """What `labeler flag` prints: flagged per reason and class, noise rate, confused pairs."""
    queue, ev = result.queue, result.evidence
    entries = queue.flags
    s = queue.summary
    n = len(ev.item_ids)
    likely = sum(e.kind == "label_issue" for e in entries)
    lines = [
        f"round {result.round_id}: {likely:,} of {n:,} labels are likely wrong (the flagged set, "
        f"{likely / max(n, 1):.1%}); {len(entries) - likely:,} more images worth a look; {len(entries):,} queued in all"
    ]
    reasons = Counter(r["code"] for e in entries for r in e.reasons)
    lines.append("  by reason: " + ", ".join(f"{code} {count:,}" for code, count in reasons.most_common()))
    label_of = dict(zip(ev.item_ids.tolist(), ev.labels.tolist()))
    by_class = Counter(ev.vocab[label_of[e.item_id]] for e in entries)
    lines.append("  by given label: " + ", ".join(f"{name} {count}" for name, count in by_class.most_common(top)))
    lines.append(f"  cleanlab's label-noise estimate: {s.noise_rate:.1%} of labels ({NOISE_RATE_CAVEAT})")
    worst = sorted(s.error_rate.items(), key=lambda kv: -kv[1])[:5]
    lines.append("  classes cleanlab doubts most: " + ", ".join(f"{k} {v:.0%}" for k, v in worst))
    cj = s.confident_joint.copy()
    np.fill_diagonal(cj, 0)
    pairs = sorted(((cj[i, j], ev.vocab[i], ev.vocab[j]) for i, j in zip(*np.nonzero(cj))), reverse=True)[:5]
    if pairs:
        lines.append("  most confused (given -> likely): " + ", ".join(f"{a} -> {b} {c}" for c, a, b in pairs))
    if s.overlapping:
        lines.append(
            "  overlapping classes (merge?): " + ", ".join(f"{a}/{b} {p:.3f}" for a, b, p in s.overlapping[:3])
        )
    lines += _type_lines(s.confident_joint, ev.vocab, ev.class_types)
    lines.append(f"  report: {result.report}")
    return "\n".join(lines)


# a pair is a merge candidate when each class has at least this share of its labels doubted toward the other
MERGE_RATE = 0.1


def _type_lines(joint: np.ndarray, vocab: list[str], types) -> list[str]:
    """Confusions split into cross-type (upper vs lower body: almost surely wrong) and within-type
    (near-synonyms: often policy), and class pairs confused both ways at a high rate (merge? a report only)."""

    cj = np.asarray(joint, dtype=np.float64)
    totals = np.maximum(cj.sum(axis=1), 1)
    off = cj.copy()
    np.fill_diagonal(off, 0)
    lines = []
    if types:
        known = [t is not None for t in types]
        cross = within = 0.0
        for i, j in zip(*np.nonzero(off)):
            if known[i] and known[j]:
                cross += off[i, j] * (types[i] != types[j])
                within += off[i, j] * (types[i] == types[j])
        lines.append(
            f"  doubts by category type: {within:.0f} within a type (near-synonyms, often policy), "
            f"{cross:.0f} across types (e.g. upper vs lower body: almost surely wrong); filter: cross_type"
        )
        by_type = {}
        for i, j in zip(*np.nonzero(off)):
            if known[i] and known[j] and types[i] == types[j]:
                by_type.setdefault(types[i], []).append((off[i, j], vocab[i], vocab[j]))
        for t, pairs in sorted(by_type.items()):
            shown = ", ".join(f"{a} -> {b} {c:.0f}" for c, a, b in sorted(pairs, reverse=True)[:3])
            lines.append(f"    {TYPE_NAMES.get(t, t)}: {shown}")
    merges = []
    for i, j in zip(*np.triu_indices(len(vocab), 1)):
        a, b = off[i, j] / totals[i], off[j, i] / totals[j]
        if a >= MERGE_RATE and b >= MERGE_RATE:
            merges.append((min(a, b), vocab[i], vocab[j], a, b))
    if merges:
        lines.append(
            "  confused both ways (merge the classes? a report, never automatic): "
            + ", ".join(f"{x}/{y} ({a:.0%} and {b:.0%})" for _, x, y, a, b in sorted(merges, reverse=True)[:5])
        )
    return lines
