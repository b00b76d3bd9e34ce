"""`labeler train`: build the training table from the store, run cross-validation, record a round.

The models train on each item's *current* label (its latest reviewer decision, else the
given label); removed items are left out. Test metrics are computed twice once reviews
exist: ``test_top1/3/5`` against the given test labels, ``test_cleaned_top1/3/5`` against
the current ones (removed test items excluded), and ``test_leakfree_*`` on the test images with
no near-copy or group in train/valid. ``oof_top1/3/5`` is against the labels the models were
trained with. `training` is imported lazily and fed plain data only.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from labeler import groups
from labeler.boxes import parse_box
from labeler.errors import LabelerError
from labeler.groups import resolve
from labeler.ingest.validate import check_files
from labeler.labels import conflicted_items, label_codes, label_table
from labeler.remaining import workspace_estimate
from labeler.report import write_rounds_report
from labeler.round_metrics import evaluate_crossval, find_split_leaks, format_metrics, noise_rate, test_metrics
from labeler.workspace import Workspace
from labeler_training import frozen

PENDING = "models/pending"


def training_frame(ws: Workspace):
    """What a round trains and tests on: the cleaned train/valid items, and every test item.

    Every test item stays so that the given-label test metrics of all rounds use one test set;
    the cleaned-label test metrics leave out removed (and conflicted) test items."""
    frame = label_table(ws, exclude_conflicts=True, keep_removed=True)
    return frame[(frame["split"] == "test") | ~frame["removed"]].reset_index(drop=True)


def train_round(
    ws: Workspace,
    config,
    *,
    kind: str = "train",
    resume: bool = False,
    restart: bool = False,
    only_fold: int | None = None,
    merge: bool = False,
    group_by: str = "auto",
    log: Callable[[str], None] = print,
) -> int | None:
    """Train ``config.folds`` fold models, evaluate, save arrays and reports; return the new round id.
    Folds are stratified and group-aware (``group_by``, ``labeler.groups``: a group is held out together).
    ``only_fold``: train one fold, return None; ``merge``: assemble folds trained as separate jobs. Under
    torchrun only rank 0 records the round."""
    from labeler_training.crossval import run_crossval
    from labeler_training.learner import check_weights, pick_device

    started = time.perf_counter()
    log = _quiet if int(os.environ.get("RANK", "0")) != 0 else log  # under torchrun, rank 0 speaks for all

    resolve(group_by, ws.store.get_meta("format"))  # a bad option, device or missing weights are said first,
    pick_device(config.device)  # before the minutes of image checks
    check_weights(config)
    vocab, frame, run_dir = _prepare(ws, config, restart, log)
    if resume and not (run_dir / "state.json").exists():
        log(f"--resume: no interrupted run in {run_dir}; training from the start")
    if config.folds == 0:
        return _final_round(
            ws, frame, vocab, config, run_dir, kind=kind, resume=resume, started=started, group_by=group_by, log=log
        )
    _check_folds(frame, vocab, config.folds, log)
    groups, grouping = _groups(ws, frame, group_by, log)
    result = run_crossval(
        frame,
        ws.root,
        vocab,
        config,
        run_dir,
        resume=resume,
        only_fold=only_fold,
        merge=merge,
        groups=groups[(frame["split"] != "test").to_numpy()],
        log=log,
    )
    if result is None:
        return None
    frozen = _frozen_view(ws, frame, result.embed_ids, config, log)  # before the models move: a failure resumes
    round_id, model_dir = _claim_model_dir(ws, run_dir)
    leaks = find_split_leaks(ws, frame, result.embed_ids, result.embeddings, groups)
    codes = label_codes(frame.set_index("id").loc[result.fit_ids, "label"], vocab)
    metrics = _crossval_metrics(ws, frame, vocab, result, round_id, codes, leaks, started, log)
    params = {"config": asdict(config), "model_dir": model_dir, "vocab": vocab, "grouping": grouping}
    arrays = _crossval_arrays(result, codes, frame, groups)
    if frozen is not None:  # rows as embed_ids
        arrays["frozen_embeddings"] = frozen
    recorded = _record(ws, kind, params, metrics, arrays, leaks, log)
    assert recorded == round_id, (recorded, round_id)  # its models folder was named for this id
    return recorded


def _frozen_view(ws: Workspace, frame, embed_ids: np.ndarray, config, log) -> np.ndarray | None:
    """(len(embed_ids), D) float16: every image embedded by the frozen ImageNet network (``labeler_training.frozen``),
    None with ``--no-frozen-view``; cached by file, so a later round embeds only new images."""
    if not config.frozen_view:
        return None
    from tqdm.auto import tqdm

    from labeler_training.learner import pick_device

    why = frozen.available()
    if why:
        log(f"note: no frozen view this round ({why}); flag ranks without it")
        return None
    file_of = dict(zip(frame["id"].to_numpy(np.int64), frame["file"]))
    files = [str(ws.root / file_of[int(i)]) for i in embed_ids]
    computed = [0]  # images not in the cache: what embed_files reports progress on
    with tqdm(total=len(files), desc="frozen view (ImageNet embeddings)", unit="img", leave=False) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = computed[0] = total
            bar.update(done - bar.n)

        out = frozen.embed_files(
            files, device=str(pick_device(config.device)), workers=config.workers or 0, progress=progress
        )
    log(
        f"frozen view: {len(files):,} images by {frozen.BACKBONE}, {computed[0]:,} embedded now and "
        f"{len(files) - computed[0]:,} read from the cache ({frozen.cache_folder()})"
    )
    return out


def _crossval_metrics(ws: Workspace, frame, vocab, result, round_id: int, codes, leaks, started: float, log) -> dict:
    """The round's metrics: test top-k and out-of-fold accuracy, review counts, remaining errors, noise, time."""
    metrics = evaluate_crossval(ws, frame, vocab, result, round_id, log, leaks)
    metrics.update(_review_counts(ws))
    metrics.update(_remaining(ws))
    metrics["noise_rate"] = noise_rate(result.pred_probs, codes, vocab)
    metrics.update(seconds=time.perf_counter() - started, lr=result.lr, folds=[asdict(f) for f in result.folds])
    metrics["train_images_per_s"] = float(np.mean([f.images_per_s for f in result.folds if f.images_per_s]) or 0)
    return metrics


def _prepare(ws: Workspace, config, restart: bool, log) -> tuple[list[str], object, Path]:
    """The class list, the frame to train on (usable images, garment boxes with --crop) and the run folder
    (an interrupted run there discarded with ``restart``)."""
    frame = _with_boxes(ws, _usable(ws, training_frame(ws), config, log), config, log)
    run_dir = ws.path / PENDING
    if restart and run_dir.exists():
        shutil.rmtree(run_dir)
        log(f"discarded the interrupted run in {run_dir}")
    return ws.store.classes(), frame, run_dir


def _crossval_arrays(result, codes, frame, groups) -> dict:
    """What a K-fold round keeps: out-of-fold and test probabilities, embeddings, folds, groups, neighbours."""
    arrays = {
        "pred_probs": result.pred_probs,
        "pred_ids": result.fit_ids.astype(np.int64),
        "labels": codes,
        "folds": result.fold_of.astype(np.int16),
        "test_probs": result.test_probs,
        "test_ids": result.test_ids.astype(np.int64),
        "test_probs_folds": result.test_probs_folds,
        "embeddings": result.embeddings,
        "embed_ids": result.embed_ids.astype(np.int64),
        "fold_group_item_ids": frame["id"].to_numpy(np.int64),  # every image, and its fold group
        "fold_groups": np.asarray(groups, dtype=np.int64),
    }
    if result.fold_embeddings is not None:  # rows as embed_ids: every fold model's space, for the probe (flag)
        arrays["fold_embeddings"] = result.fold_embeddings
    if result.pred_probs_plain is not None:  # --tta: the probabilities without it, for `bench rank`
        arrays["pred_probs_plain"] = result.pred_probs_plain
        if result.test_probs_plain is not None:
            arrays["test_probs_plain"] = result.test_probs_plain
    if result.margins is not None:  # rows as pred_ids: training's margins per epoch (labeler_training.margins)
        arrays["margins_by_epoch"] = result.margins
    if result.neighbour_ids is not None:  # rows as pred_ids: neighbours in the space of the model that held it out
        arrays.update(oos_neighbour_ids=result.neighbour_ids, oos_neighbour_sims=result.neighbour_sims)
    return arrays


def _claim_model_dir(ws: Workspace, run_dir: Path) -> tuple[int, str]:
    """The new round's id, and its models folder: the finished run moved there."""
    round_id = ws.store.next_round_id()
    model_dir = f"models/round-{round_id:03d}"
    run_dir.rename(ws.path / model_dir)
    return round_id, model_dir


def _record(ws: Workspace, kind: str, params: dict, metrics: dict, arrays: dict, leaks, log) -> int:
    """Record the round (its arrays, and the leak pairs when there is a test split) and rewrite the rounds report."""
    if leaks is not None:
        arrays.update(leaks.as_arrays())
    round_id = ws.record_round(kind, params, metrics, arrays)
    _rounds_report(ws, log)
    return round_id


def retrain_round(
    ws: Workspace, overrides: dict, *, resume: bool = False, restart: bool = False, log: Callable[[str], None] = print
) -> int:
    """Train a new round on the cleaned labels, with the previous round's options unless overridden."""
    from labeler_training.learner import make_config

    previous = [r for r in ws.store.rounds() if r.params.get("config")]
    if not previous:
        raise LabelerError(f"{ws.path} has no trained round to start from; run `labeler train {ws.path}` first")
    base = {
        k: v for k, v in previous[-1].params["config"].items() if k != "extra"
    }  # older rounds kept an unused "extra"
    if base.get("lr") is None and previous[-1].metrics.get("lr"):
        base["lr"] = previous[-1].metrics["lr"]  # the rate lr_find chose last round: rounds stay comparable
    overrides = dict(overrides)
    group_by = overrides.pop("group_by", None) or previous[-1].params.get("grouping", {}).get("by", "auto")
    config = make_config(None, **{**base, **{k: v for k, v in overrides.items() if v is not None}})
    counts = _review_counts(ws)
    if not ws.store.effective_decisions():
        log("no reviewer decisions yet: retraining on the given labels")
    else:
        log(
            f"cleaned labels: {counts['labels_changed']} changed, {counts['items_removed']} removed, "
            f"{counts['conflicts_excluded']} in unresolved conflict (left out)"
        )
    frame = label_table(ws, exclude_conflicts=True)
    emptied = sorted(set(ws.store.classes()) - set(frame.loc[frame["split"] != "test", "label"]))
    if emptied:
        log(
            f"warning: no train/valid images left for {', '.join(emptied)}; the class keeps its column "
            "(pinned vocabulary) but the model cannot learn it"
        )
    return train_round(ws, config, kind="retrain", resume=resume, restart=restart, group_by=group_by, log=log)


def _groups(ws: Workspace, frame, group_by: str, log) -> tuple[np.ndarray, dict]:
    """Group ids of ``frame``'s rows and their description (logged and kept in the round's params)."""

    by = groups.resolve(group_by, ws.store.get_meta("format"))
    extra = {i.id: i.extra for i in ws.store.items()} if by.startswith("column:") else None
    ids = groups.group_ids(frame, str(ws.root), by, extra=extra)
    info = groups.describe(ids, by)
    log(
        f"groups ({by}): {info['groups']:,} groups; {info['images_sharing']:,} images share a group with another "
        f"(largest {info['largest']}); a group is never split across folds"
    )
    return ids, info


def _remaining(ws: Workspace) -> dict:
    """The remaining-errors estimate when the round starts (from the previous flagged round and the reviews)."""

    est = workspace_estimate(ws)
    if not est or not est["enough"]:
        return {}
    return {"remaining_errors": est["remaining"], "label_error_rate": est["error_rate"], "errors_found": est["found"]}


def _review_counts(ws: Workspace) -> dict:
    decisions = ws.store.effective_decisions()
    items = {i.id: i.label for i in ws.store.items()}
    return {
        "labels_changed": sum(1 for i, d in decisions.items() if d.action != "remove" and d.label != items.get(i)),
        "items_removed": sum(1 for d in decisions.values() if d.action == "remove"),
        "conflicts_excluded": len(conflicted_items(ws.store)),
    }


def _final_round(ws, frame, vocab, config, run_dir, *, kind, resume, started, group_by="auto", log) -> int:
    """``--folds 0``: one model on every train/valid image; test metrics and embeddings, no pred_probs."""
    from labeler_training.final import run_final

    result = run_final(frame, ws.root, vocab, config, run_dir, resume=resume, log=log)
    round_id, model_dir = _claim_model_dir(ws, run_dir)
    groups, _ = _groups(ws, frame, group_by, log)  # for the leakage report
    leaks = find_split_leaks(ws, frame, result.embed_ids, result.embeddings, groups)
    metrics = test_metrics(ws, frame, vocab, result.test_ids, result.test_probs, round_id, leaks)
    metrics.update(_review_counts(ws))
    metrics.update(seconds=time.perf_counter() - started, lr=result.lr, train_images_per_s=result.summary.images_per_s)
    log(f"round {round_id}: {format_metrics(metrics)}")
    params = {"config": asdict(config), "model_dir": model_dir, "vocab": vocab, "weights": "final"}
    arrays = {
        "test_probs": result.test_probs,
        "test_ids": result.test_ids.astype(np.int64),
        "embeddings": result.embeddings,
        "embed_ids": result.embed_ids.astype(np.int64),
    }
    return _record(ws, kind, params, metrics, arrays, leaks, log)


def _rounds_report(ws: Workspace, log) -> None:

    log(f"rounds so far: {write_rounds_report(ws)}")


def _quiet(message: str) -> None:
    pass


def _with_boxes(ws: Workspace, frame, config, log):
    """With ``config.crop == "bbox"``: the frame with box_x1..box_y2 columns (-1: no usable box, whole image)."""
    if config.crop != "bbox":
        return frame

    extras = {i.id: i.extra for i in ws.store.items()}
    boxes = []
    for item_id in frame["id"]:
        extra = extras.get(int(item_id)) or {}
        box, _ = parse_box(extra) if not extra.get("bbox_problem") else (None, None)
        boxes.append(box or (-1, -1, -1, -1))
    have = sum(b[0] >= 0 for b in boxes)
    if have == 0:
        raise LabelerError(
            "--crop bbox: this workspace has no garment boxes (DeepFashion's Anno/list_bbox.txt, or x_1,y_1,x_2,y_2 "
            "columns in the CSV); train without --crop"
        )
    log(
        f"--crop bbox: {have:,} of {len(frame):,} images cropped to their garment box (margin {config.crop_margin}); "
        "the others whole"
    )
    frame = frame.copy()
    for k, name in enumerate(("box_x1", "box_y1", "box_x2", "box_y2")):
        frame[name] = [b[k] for b in boxes]
    return frame


def _usable(ws: Workspace, frame, config, log):
    """Drop images that became unreadable since import (reported), unless verification is off."""
    if not config.verify_images:
        return frame

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
