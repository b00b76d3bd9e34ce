"""K-fold cross-validation: out-of-fold pred_probs for every train/valid image, plus embeddings.

The train and valid images are split into K stratified folds (near-duplicate groups kept
in one fold when ``groups`` is given). Model k trains on the other folds and predicts
fold k, which it never trained on; fold k also serves as its validation set, used only to
report a loss (no early stopping, no model selection), so the predictions stay out-of-fold.
Every fold model also predicts the test split; their mean is the round's test prediction.
Embeddings (input of the final linear layer: 512 numbers, L2-normalised) of every image
come from the fold-0 model; every fold model's embeddings of every image are kept too (float16,
``fold_embeddings``): the linear probe of `labeler flag` is fitted in each model's space and averaged.

Each finished fold is written to ``run_dir/fold-K.npz`` (+ ``fold-K.pth`` weights) through
a temporary file and a rename (``labeler_training.runs``), so an interrupted run resumes from the last
finished fold. One model on every image instead: ``labeler_training.final``.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from labeler_training.errors import TrainingError
from labeler_training.inference import NEIGHBOURS, nearest, predict, predict_tta
from labeler_training.learner import TrainConfig
from labeler_training.margins import MarginHistory
from labeler_training.runs import (
    FoldSummary,
    fold_summary,
    label_codes,
    learner_for,
    learning_rate,
    open_state,
    save_model,
)


@dataclass
class CrossvalResult:
    fit_ids: np.ndarray  # (N,) item ids of the train/valid images, in the order of pred_probs rows
    pred_probs: np.ndarray  # (N, K) float32, out-of-fold
    fold_of: np.ndarray  # (N,) the fold each row was held out in
    test_ids: np.ndarray  # (T,)
    test_probs: np.ndarray  # (T, K) float32, mean over fold models
    test_probs_folds: np.ndarray  # (F, T, K) float32, one slice per fold model
    embed_ids: np.ndarray  # (M,) every image
    embeddings: np.ndarray  # (M, D) float32, L2-normalised, from the fold-0 model
    lr: float
    # every fold model's embeddings of the same M images (float16; None when a fold was saved by an older labeler)
    fold_embeddings: np.ndarray | None = None  # (F, M, D)
    folds: list[FoldSummary] = field(default_factory=list)
    seconds: float = 0.0
    # out-of-sample neighbours: row i's nearest images (item ids, cosine similarity) in the embedding
    # space of the fold model that held row i out, i.e. of a model that never trained on its label
    neighbour_ids: np.ndarray | None = None  # (N, NEIGHBOURS) int64, -1 where fewer
    neighbour_sims: np.ndarray | None = None  # (N, NEIGHBOURS) float32
    # with test-time augmentation (config.tta), the probabilities without it, for comparison
    pred_probs_plain: np.ndarray | None = None  # (N, K)
    test_probs_plain: np.ndarray | None = None  # (T, K)
    # training's margins (labeler_training.margins): per row and epoch, the mean over the fold models that trained on
    # the row (NaN where none did); their mean over epochs is its area under the margin. None unless every
    # fold recorded them
    margins: np.ndarray | None = None  # (N, epochs) float32


def assign_folds(labels, k: int, seed: int, groups=None) -> np.ndarray:
    """Fold index per row: stratified by label, groups (if given) never split across folds."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    labels = np.asarray(labels)
    if k < 2:
        raise TrainingError(f"--folds {k}: out-of-fold predictions need at least 2 folds")
    if k > len(labels):
        raise TrainingError(f"--folds {k} is more than the {len(labels)} train/valid images")
    folds = np.full(len(labels), -1, dtype=np.int16)
    if groups is None:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(labels)), labels)
    else:
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(labels)), labels, groups)

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")  # reported by the caller instead
        for fold, (_, held_out) in enumerate(splits):
            folds[held_out] = fold
    return folds


def run_crossval(
    frame,
    root: str | Path,
    vocab: list[str],
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    only_fold: int | None = None,
    merge: bool = False,
    groups=None,
    log: Callable[[str], None] = print,
) -> CrossvalResult | None:
    """Train ``config.folds`` models over ``frame`` (columns id, file, label, split); see the module doc.

    ``only_fold=k`` trains fold k alone and returns None (folds as separate jobs); ``merge``
    trains nothing and assembles the folds already in ``run_dir``. Under torchrun (WORLD_SIZE
    > 1) every process trains each fold in data-parallel; only rank 0 predicts, writes, and
    gets a result (the others get None).
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    fit_frame = frame[frame["split"] != "test"].reset_index(drop=True)
    test_frame = frame[frame["split"] == "test"].reset_index(drop=True)
    fold_of = assign_folds(fit_frame["label"], config.folds, config.seed, groups)
    _check_options(config, only_fold)
    several_jobs = only_fold is not None or merge
    state = open_state(run_dir, config, fit_frame, test_frame, fold_of, resume or several_jobs)
    job = FoldJob(fit_frame, test_frame, fold_of, root, vocab, config, run_dir, state, log)
    folds = [only_fold] if only_fold is not None else [] if merge else range(config.folds)
    for fold in folds:
        if (run_dir / f"fold-{fold}.npz").exists():
            log(f"fold {fold + 1}/{config.folds}: finished earlier, kept (fold-{fold}.npz)")
            continue
        _train_fold(job, fold)
    if only_fold is not None or rank() != 0:
        return None
    missing = [k for k in range(config.folds) if not (run_dir / f"fold-{k}.npz").exists()]
    if missing:
        raise TrainingError(
            f"cannot merge: folds {', '.join(map(str, missing))} are not in {run_dir} yet; "
            f"train them (--fold K) and copy their fold-K.npz and fold-K.pth there"
        )
    return _assemble(run_dir, config, fit_frame, test_frame, fold_of, state, time.perf_counter() - started)


def _check_options(config: TrainConfig, only_fold: int | None) -> None:
    """Refuse, before any state is written, what would fail or mix runs later."""
    if only_fold is not None and not 0 <= only_fold < config.folds:
        raise TrainingError(f"--fold {only_fold}: folds are numbered 0 to {config.folds - 1}")
    if config.weights:
        from labeler_training.learner import body_weights

        body_weights(config.arch, config.weights)
    if world_size() > 1 and config.lr is None:
        raise TrainingError("distributed training needs a fixed --lr (run lr_find once without torchrun)")
    if only_fold is not None and config.lr is None:
        raise TrainingError(
            f"--fold {only_fold} needs a fixed --lr: separate fold jobs would each run lr_find and the merged "
            "round would mix their rates; pass the same --lr to every job (e.g. the rate a full `labeler train` "
            "printed)"
        )


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


@dataclass
class FoldJob:
    """What every fold model of one cross-validation run shares."""

    fit_frame: object  # pandas.DataFrame of the train/valid images (id, file, label, split)
    test_frame: object  # the test images
    fold_of: np.ndarray  # (N,) the fold each train/valid row is held out in
    root: str | Path
    vocab: list[str]
    config: TrainConfig
    run_dir: Path
    state: dict  # the run's state.json
    log: Callable[[str], None]


def _train_fold(job: FoldJob, fold: int) -> None:
    """Train fold ``fold``; rank 0 predicts its held-out images and the test split and saves them."""
    from fastai.torch_core import set_seed

    from labeler_training.learner import fit

    config = job.config
    set_seed(config.seed + fold)
    valid_idx = np.flatnonzero(job.fold_of == fold)
    learn = learner_for(job.fit_frame, job.root, job.vocab, valid_idx, config, config.seed + fold, job.run_dir)
    lr = learning_rate(learn, config, job.state, job.run_dir, job.log)
    fit_started = time.perf_counter()
    if world_size() > 1:  # each process sees part of every epoch: no margins (labeler_training.margins)
        from labeler_training.distributed import distributed, rank0_alone

        job.log(f"training fold {fold + 1} data-parallel on {world_size()} processes")
        with distributed(learn):
            fit(learn, config, lr)
        fit_seconds = time.perf_counter() - fit_started
        with rank0_alone():  # the other ranks wait until rank 0 has predicted and saved this fold
            if rank() == 0:
                _finish_fold(job, learn, fold, valid_idx, fit_started, fit_seconds)
    else:
        trained_on = np.setdiff1d(np.arange(len(job.fit_frame)), valid_idx)  # the training dataset's order
        margins = MarginHistory(label_codes(job.fit_frame["label"].iloc[trained_on], job.vocab))
        with learn.added_cbs(margins):
            fit(learn, config, lr)
        _finish_fold(job, learn, fold, valid_idx, fit_started, time.perf_counter() - fit_started, margins)


def _finish_fold(job: FoldJob, learn, fold: int, valid_idx, fit_started, fit_seconds, margins=None) -> None:
    """Predict the held-out fold and the test split, embed every image, then save the fold (with the
    training images' area under the margin when ``margins`` recorded it)."""
    from labeler_training.learner import plot_losses

    config = job.config
    plot_losses(learn.loss_history, job.run_dir / f"fold-{fold}-loss.png", f"fold {fold + 1}/{config.folds}")
    arrays = _predict_fold(learn, job.fit_frame, job.test_frame, valid_idx, tta=config.tta)
    if fold:  # fold 0's are the round's embeddings (float32); the others serve the probe only
        arrays["embeddings"] = arrays["embeddings"].astype(np.float16)
    given = label_codes(job.fit_frame["label"][valid_idx], job.vocab)
    accuracy = float((arrays["probs"].argmax(1) == given).mean())
    trained = len(job.fit_frame) - len(valid_idx)
    summary = fold_summary(fold, valid_idx, accuracy, trained, config, fit_started, fit_seconds)
    arrays["summary"] = np.array(json.dumps(asdict(summary)))
    arrays["lr"] = np.array(job.state["lr"], dtype=np.float64)
    by_epoch = margins.by_epoch() if margins is not None else None
    if by_epoch is not None:
        arrays["train_margins"] = by_epoch  # rows as train_ids
    elif margins is not None:
        job.log(f"fold {fold + 1}: no area under the margin recorded ({margins.broken})")
    save_model(job.run_dir, f"fold-{fold}", arrays, learn.model.state_dict())
    job.log(
        f"fold {fold + 1}/{config.folds}: {summary.held_out} held out, accuracy {summary.valid_accuracy:.3f} "
        f"on them (trained labels), {summary.seconds:.0f}s, {summary.images_per_s:.1f} train images/s"
    )


def _predict_fold(learn, fit_frame, test_frame, valid_idx, *, tta: int = 0) -> dict:
    """Held-out and test probabilities (+ which ids the model trained on and held out, for audit), the
    held-out images' nearest neighbours in this model's embedding space and the embeddings of every image
    (one pass over every image). With ``tta`` > 0 the held-out and test
    probabilities average ``tta`` augmented passes in (fastai's ``tta``), and the plain ones are kept
    as ``probs_plain`` / ``test_probs_plain`` so the two can be compared on the same models."""
    import pandas as pd

    trained_on = np.setdiff1d(np.arange(len(fit_frame)), valid_idx)
    audit = {"held_out_ids": fit_frame["id"].to_numpy()[valid_idx], "train_ids": fit_frame["id"].to_numpy()[trained_on]}
    both = pd.concat([fit_frame, test_frame], ignore_index=True)
    probs, features = predict(learn, both, embed=True)
    ids = both["id"].to_numpy()
    nbr, sims = nearest(features, valid_idx, NEIGHBOURS)
    out = {
        **audit,
        "probs": probs[valid_idx],
        "test_probs": probs[len(fit_frame) :],
        "neighbour_ids": np.where(nbr >= 0, ids[np.maximum(nbr, 0)], -1),
        "neighbour_sims": sims,
    }
    if tta > 0:
        rows = np.concatenate([valid_idx, np.arange(len(fit_frame), len(both))])
        augmented = predict_tta(learn, both.iloc[rows], tta, plain=probs[rows])
        out.update(probs_plain=out["probs"], test_probs_plain=out["test_probs"])
        out.update(probs=augmented[: len(valid_idx)], test_probs=augmented[len(valid_idx) :])
    out.update(embeddings=features, embed_ids=ids)
    return out


def _assemble(run_dir, config, fit_frame, test_frame, fold_of, state, seconds) -> CrossvalResult:
    pred_probs, plain, test_folds, test_plain, summaries, lrs = None, None, [], [], [], []  # plain: without TTA
    nbr_ids = np.full((len(fit_frame), NEIGHBOURS), -1, dtype=np.int64)
    nbr_sims = np.zeros((len(fit_frame), NEIGHBOURS), dtype=np.float32)
    have_neighbours = True
    margins, spaces = _FoldMargins(fit_frame["id"].to_numpy()), _FoldSpaces(config.folds)
    for fold in range(config.folds):
        with np.load(run_dir / f"fold-{fold}.npz") as data:
            if not np.array_equal(data["held_out_ids"], fit_frame["id"].to_numpy()[fold_of == fold]):
                raise TrainingError(f"{run_dir}/fold-{fold}.npz was trained on other folds or data; retrain that fold")
            if pred_probs is None:
                pred_probs = np.full((len(fit_frame), data["probs"].shape[1]), np.nan, dtype=np.float32)
            pred_probs[fold_of == fold] = data["probs"]
            if "probs_plain" in data.files:
                plain = np.full(pred_probs.shape, np.nan, dtype=np.float32) if plain is None else plain
                plain[fold_of == fold] = data["probs_plain"]
                test_plain.append(data["test_probs_plain"])
            if "neighbour_ids" in data.files:
                nbr_ids[fold_of == fold], nbr_sims[fold_of == fold] = data["neighbour_ids"], data["neighbour_sims"]
            else:  # a fold saved by an older labeler
                have_neighbours = False
            margins.add(data)
            test_folds.append(data["test_probs"])
            summaries.append(FoldSummary(**json.loads(str(data["summary"]))))
            lrs.append(float(data["lr"]))
            spaces.add(fold, data)
    if np.isnan(pred_probs).any():
        raise TrainingError(f"some images got no out-of-fold prediction in {run_dir}; rerun with --restart")
    test_probs_folds = np.stack(test_folds).astype(np.float32)  # (F, T, K), T may be 0
    return CrossvalResult(
        fit_ids=fit_frame["id"].to_numpy(),
        pred_probs=pred_probs,
        fold_of=fold_of,
        test_ids=test_frame["id"].to_numpy(),
        test_probs=test_probs_folds.mean(axis=0).astype(np.float32),
        test_probs_folds=test_probs_folds,
        embed_ids=spaces.ids,
        embeddings=spaces.first,
        fold_embeddings=spaces.stacked(),
        lr=float(np.mean(lrs)),
        folds=summaries,
        margins=margins.by_epoch() if margins.folds == config.folds else None,
        neighbour_ids=nbr_ids if have_neighbours else None,
        neighbour_sims=nbr_sims if have_neighbours else None,
        seconds=seconds,
        pred_probs_plain=plain if plain is not None and len(test_plain) == config.folds else None,
        test_probs_plain=np.mean(test_plain, axis=0).astype(np.float32)
        if len(test_plain) == config.folds and len(test_frame)
        else None,
    )


class _FoldMargins:
    """The fold models' margins (labeler_training.margins) of the rows they trained on, merged per row."""

    def __init__(self, fit_ids: np.ndarray):
        self.row_of = {int(i): r for r, i in enumerate(fit_ids)}
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []  # (rows, (n, epochs) margins) per fold
        self.folds = 0  # folds that recorded margins

    def add(self, data) -> None:
        """One fold's npz: its ``train_margins`` (per epoch) of its ``train_ids``, if it recorded them."""
        if "train_margins" in data.files:
            rows = np.array([self.row_of[int(i)] for i in data["train_ids"]], dtype=np.int64)
            self.parts.append((rows, data["train_margins"].astype(np.float64)))
            self.folds += 1

    def by_epoch(self) -> np.ndarray:
        """(N, epochs): each row's mean margin per epoch over the fold models that trained on it (NaN: none)."""
        n, epochs = len(self.row_of), max(m.shape[1] for _, m in self.parts)
        total, count = np.zeros((n, epochs)), np.zeros((n, epochs))
        for rows, margins in self.parts:
            seen = ~np.isnan(margins)
            np.add.at(total[:, : margins.shape[1]], rows, np.where(seen, margins, 0.0))
            np.add.at(count[:, : margins.shape[1]], rows, seen)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)


class _FoldSpaces:
    """Every fold model's embeddings of every image: fold 0's as they are, all of them stacked (float16)."""

    def __init__(self, folds: int):
        self.folds, self.ids, self.first, self.parts = folds, None, None, []

    def add(self, fold: int, data) -> None:
        """One fold's npz; folds saved by an older labeler kept embeddings in fold 0 only."""
        if fold == 0:
            self.ids, self.first = data["embed_ids"], data["embeddings"]
        if "embeddings" in data.files and np.array_equal(data["embed_ids"], self.ids):
            self.parts.append(data["embeddings"].astype(np.float16))

    def stacked(self) -> np.ndarray | None:
        """(F, M, D) float16, or None unless every fold embedded the same images."""
        return np.stack(self.parts) if self.parts and len(self.parts) == self.folds else None
