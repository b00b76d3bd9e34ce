"""`labeler train`: build the training table from the store, run cross-validation, record a round.

The models train on each item's *current* label (its latest reviewer decision, else the
given label); removed items are left out. Test metrics are computed twice once reviews
exist: ``test_top*`` against the given test labels, ``test_top*_cleaned`` against the
current ones (removed test items excluded). ``oof_top*`` is against the labels the models
were trained with. `training` is imported lazily and fed plain data only.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from labeler.errors import LabelerError
from labeler.workspace import Workspace

PENDING = "models/pending"


def label_table(ws: Workspace):
    """Items (status ok) with ``label`` = current label, ``given`` = imported label; removed items dropped."""
    frame = ws.store.item_table()
    frame["given"] = frame["label"]
    decisions = ws.store.effective_decisions()
    removed = {i for i, d in decisions.items() if d.action == "remove"}
    relabelled = {i: d.label for i, d in decisions.items() if d.action != "remove" and d.label}
    frame["label"] = [relabelled.get(i, label) for i, label in zip(frame["id"], frame["label"])]
    frame["reviewed"] = frame["id"].isin(decisions.keys())
    return frame[~frame["id"].isin(removed)].reset_index(drop=True)


def train_round(
    ws: Workspace,
    config,
    *,
    resume: bool = False,
    restart: bool = False,
    only_fold: int | None = None,
    merge: bool = False,
    log: Callable[[str], None] = print,
) -> int | None:
    """Train ``config.folds`` fold models, evaluate, save arrays and reports; return the new round id.

    With ``only_fold`` one fold is trained and None returned; ``merge`` assembles the folds
    trained as separate jobs. Under torchrun only rank 0 records the round.
    """
    from training.crossval import run_crossval

    started = time.perf_counter()
    if int(os.environ.get("RANK", "0")) != 0:
        log = _quiet  # under torchrun, rank 0 speaks for all
    vocab = ws.store.classes()
    frame = _usable(ws, label_table(ws), config, log)
    _check_folds(frame, vocab, config.folds, log)
    run_dir = ws.path / PENDING
    if restart and run_dir.exists():
        shutil.rmtree(run_dir)
        log(f"discarded the interrupted run in {run_dir}")
    result = run_crossval(
        frame, ws.root, vocab, config, run_dir, resume=resume, only_fold=only_fold, merge=merge, log=log
    )
    if result is None:
        return None
    round_id = ws.store.next_round_id()
    model_dir = f"models/round-{round_id:03d}"
    run_dir.rename(ws.path / model_dir)
    metrics = _evaluate(ws, frame, vocab, result, round_id, log)
    metrics.update(seconds=time.perf_counter() - started, lr=result.lr, folds=[asdict(f) for f in result.folds])
    metrics["train_images_per_s"] = float(np.mean([f.images_per_s for f in result.folds if f.images_per_s]) or 0)
    params = {"config": asdict(config), "model_dir": model_dir, "vocab": vocab}
    codes = _codes(frame.set_index("id").loc[result.fit_ids, "label"], vocab)
    arrays = {
        "pred_probs": result.pred_probs, "pred_ids": result.fit_ids.astype(np.int64), "labels": codes,
        "folds": result.fold_of.astype(np.int16), "test_probs": result.test_probs,
        "test_ids": result.test_ids.astype(np.int64), "test_probs_folds": result.test_probs_folds,
        "embeddings": result.embeddings, "embed_ids": result.embed_ids.astype(np.int64),
    }  # fmt: skip
    recorded = ws.record_round("train", params, metrics, arrays)
    assert recorded == round_id, (recorded, round_id)
    return round_id


def _quiet(message: str) -> None:
    pass


def _usable(ws: Workspace, frame, config, log):
    """Drop images that became unreadable since import (reported), unless verification is off."""
    if not config.verify_images:
        return frame
    from labeler.ingest.validate import check_files

    root = str(ws.root)
    problems = check_files([str(Path(root) / f) for f in frame["file"]], root, workers=config.workers)
    bad = [(path, p) for path, p in zip(frame["path"], problems) if p]
    if bad:
        shown = "; ".join(f"{path}: {p}" for path, p in bad[:5])
        log(f"skipping {len(bad)} images that cannot be read now: {shown}" + (" ..." if len(bad) > 5 else ""))
    return frame[[not p for p in problems]].reset_index(drop=True)


def _check_folds(frame, vocab: list[str], folds: int, log) -> None:
    fit = frame[frame["split"] != "test"]
    if folds < 2:
        raise LabelerError(f"--folds {folds}: out-of-fold predictions need at least 2 folds")
    counts = fit["label"].value_counts()
    small = counts[counts < folds]
    if len(small):
        shown = ", ".join(f"{name} ({n})" for name, n in small.items())
        log(
            f"note: {len(small)} classes have fewer train/valid images than --folds {folds}: {shown}; "
            "some folds train without them (every image still gets an out-of-fold prediction)"
        )
    missing = sorted(set(vocab) - set(fit["label"]))
    if missing:
        log(f"note: no train/valid images left for {', '.join(missing)}; the columns stay (pinned vocabulary)")


def format_metrics(metrics: dict) -> str:
    """One line: out-of-fold top-1 and test top-1/3/5 (given, and cleaned when present)."""

    def topk(prefix: str) -> str:
        values = [metrics.get(f"{prefix}_top{k}") for k in (1, 3, 5)]
        return "/".join("-" if v is None else f"{v:.3f}" for v in values)

    text = f"out-of-fold top-1/3/5 {topk('oof')} (n={metrics.get('oof_n', 0)})"
    text += f"; test top-1/3/5 {topk('test')} (n={metrics.get('test_n', 0)}, given labels)"
    if "test_cleaned_top1" in metrics:
        text += f", {topk('test_cleaned')} (n={metrics['test_cleaned_n']}, cleaned labels)"
    return text


def _codes(labels, vocab: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(vocab)}
    return np.array([index[label] for label in labels], dtype=np.int64)


def _evaluate(ws: Workspace, frame, vocab: list[str], result, round_id: int, log) -> dict:
    """OOF and test metrics (given and, once reviewed, cleaned test labels) and report plots."""
    from training.evaluate import confusion_matrix, plot_confusion, plot_top_losses, summarize

    reports = ws.path / "reports" / f"round-{round_id:03d}"
    reports.mkdir(parents=True, exist_ok=True)
    by_id = frame.set_index("id")
    fit_labels = _codes(by_id.loc[result.fit_ids, "label"], vocab)
    metrics = summarize(result.pred_probs, fit_labels, vocab, "oof")
    test = by_id.loc[result.test_ids]
    metrics.update(summarize(result.test_probs, _codes(test["given"], vocab), vocab, "test"))
    if len(test) and test["reviewed"].any():
        metrics.update(summarize(result.test_probs, _codes(test["label"], vocab), vocab, "test_cleaned"))
    plot_confusion(confusion_matrix(result.pred_probs, fit_labels), vocab, reports / "confusion_oof.png",
                   f"round {round_id}: out-of-fold (train+valid)")  # fmt: skip
    if len(test):
        plot_confusion(confusion_matrix(result.test_probs, _codes(test["given"], vocab)), vocab,
                       reports / "confusion_test.png", f"round {round_id}: test split (given labels)")  # fmt: skip
    files = [str(ws.root / f) for f in by_id.loc[result.fit_ids, "file"]]
    plot_top_losses(files, result.pred_probs, fit_labels, vocab, reports / "top_losses_oof.png")
    log(f"round {round_id}: {format_metrics(metrics)}; reports in {reports}")
    return metrics
