"""A training run's folder and the steps every model of a run shares.

``state.json`` holds the run's options, a digest of its data and the learning rate, so an interrupted
run resumes only with the same options and labels. Each finished model is written as ``NAME.pth``
(weights) then ``NAME.npz`` (its predictions: the marker that it finished), through a temporary file
and a rename.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from labeler_training.errors import TrainingError
from labeler_training.files import atomic_open
from labeler_training.learner import TrainConfig


@dataclass
class FoldSummary:
    fold: int  # -1 for the final model
    held_out: int
    valid_accuracy: float  # against the labels it was trained with
    seconds: float
    images_per_s: float


def learner_for(frame, root, vocab: list[str], valid_idx, config: TrainConfig, seed: int, run_dir: Path):
    """The fastai Learner of one model of the run: ``frame``'s rows in ``valid_idx`` validate, the rest train."""
    from labeler_training.data import make_dataloaders
    from labeler_training.learner import build_learner, pick_device

    workers = config.workers if config.workers is not None else min(4, os.cpu_count() or 1)
    dls = make_dataloaders(
        frame,
        root,
        vocab,
        valid_idx=valid_idx,
        size=config.size,
        presize=config.presize,
        bs=config.bs,
        workers=workers,
        device=pick_device(config.device),
        seed=seed,
        crop_margin=config.crop_margin,
    )
    learn = build_learner(dls, config)
    learn.path, learn.model_dir = run_dir, "."
    return learn


def learning_rate(learn, config: TrainConfig, state: dict, run_dir: Path, log: Callable[[str], None]) -> float:
    """The run's learning rate: ``--lr``, else lr_find's suggestion on the first model (kept in state.json)."""
    from labeler_training.learner import find_lr

    if state.get("lr") is None:
        state["lr"] = config.lr or find_lr(learn, config.lr_find_iters, run_dir / "lr_find.png")
        log(f"learning rate {state['lr']:.2e}" + (" (lr_find suggestion, plot: lr_find.png)" if not config.lr else ""))
        write_json(run_dir / "state.json", state)
    return state["lr"]


def fold_summary(fold: int, held_out, accuracy: float, trained: int, config, started: float, fit_seconds: float):
    """What the log and the round's metrics say about one model."""
    return FoldSummary(
        fold=fold,
        held_out=len(held_out),
        valid_accuracy=accuracy,
        seconds=time.perf_counter() - started,
        images_per_s=trained * (config.epochs + config.freeze_epochs) / fit_seconds,
    )


def label_codes(labels, vocab: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(vocab)}
    return np.array([index[label] for label in labels], dtype=np.int64)


def open_state(run_dir: Path, config, fit_frame, test_frame, fold_of, resume: bool) -> dict:
    """The run's state.json: refuse to mix runs, start fresh, or continue one (``resume``)."""
    digest = hashlib.sha256()
    digest.update(json.dumps(asdict(config), sort_keys=True, default=str).encode())
    for part in (fit_frame["id"], fit_frame["label"], test_frame["id"], fold_of):
        digest.update(np.asarray(part).astype(str).tobytes())
    key = digest.hexdigest()[:16]
    path = run_dir / "state.json"
    if path.exists():
        state = json.loads(path.read_text())
        finished = len(list(run_dir.glob("fold-*.npz"))) + len(list(run_dir.glob("final.npz")))
        if not resume and finished == 0:
            state = None  # nothing finished: nothing to lose, start over
        elif not resume:
            raise TrainingError(
                f"an interrupted training run is in {run_dir} ({finished} of {state['config']['folds']} folds finished); "
                "pass --resume to continue it, or --restart to discard it"
            )
        elif state["key"] != key:
            raise TrainingError(
                f"the interrupted run in {run_dir} used other options or labels; "
                "run with the same options to --resume it, or pass --restart to discard it"
            )
        if state is not None:
            return state
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*run_dir.glob("fold-*"), *run_dir.glob("final*")]:
        stale.unlink(missing_ok=True)
    state = {"key": key, "config": asdict(config), "lr": None}
    write_json(path, state)
    return state


def save_model(run_dir: Path, name: str, arrays: dict, weights) -> None:
    """``name``.pth (weights) then ``name``.npz (predictions): the .npz marks the model finished."""
    import torch

    _atomic(run_dir / f"{name}.pth", lambda fh: torch.save(weights, fh))
    _atomic(run_dir / f"{name}.npz", lambda fh: np.savez(fh, **arrays))


def write_json(path: Path, data: dict) -> None:
    _atomic(path, lambda fh: fh.write(json.dumps(data, indent=2, default=str).encode()))


LOW_SPACE = 256 * 2**20  # bytes: a write that fails with less free than this failed for want of space


def _atomic(path: Path, write: Callable) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over ``path``. A write that fails
    on a full disk (torch says only "unexpected pos" or "failed writing") is a TrainingError naming the file."""

    try:
        with atomic_open(path) as fh:
            write(fh)
    except (OSError, RuntimeError) as exc:
        full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
        if not full:
            try:
                full = shutil.disk_usage(path.parent).free < LOW_SPACE
            except OSError:
                full = False
        if not full:
            raise
        raise TrainingError(
            f"could not write {path}: the disk holding it is full ({str(exc).splitlines()[0][:120]}). "
            "Free some space, then rerun the same command with --resume (finished folds are kept)"
        ) from exc
