"""K-fold cross-validation: out-of-fold pred_probs for every train/valid image, plus embeddings.

The train and valid images are split into K stratified folds (near-duplicate groups kept
in one fold when ``groups`` is given). Model k trains on the other folds and predicts
fold k, which it never trained on; fold k also serves as its validation set, used only to
report a loss (no early stopping, no model selection), so the predictions stay out-of-fold.
Every fold model also predicts the test split; their mean is the round's test prediction.
Embeddings (input of the final linear layer: 512 numbers, L2-normalised) of every image
come from the fold-0 model.

Each finished fold is written to ``run_dir/fold-K.npz`` (+ ``fold-K.pth`` weights) through
a temporary file and a rename, so an interrupted run resumes from the last finished fold.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from training.errors import TrainingError
from training.learner import TrainConfig


@dataclass
class FoldSummary:
    fold: int
    held_out: int
    valid_accuracy: float  # against the labels it was trained with
    seconds: float
    images_per_s: float


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
    folds: list[FoldSummary] = field(default_factory=list)
    seconds: float = 0.0
    # out-of-sample neighbours: row i's nearest images (item ids, cosine similarity) in the embedding
    # space of the fold model that held row i out, i.e. of a model that never trained on its label
    neighbour_ids: np.ndarray | None = None  # (N, NEIGHBOURS) int64, -1 where fewer
    neighbour_sims: np.ndarray | None = None  # (N, NEIGHBOURS) float32
    # with test-time augmentation (config.tta), the probabilities without it, for comparison
    pred_probs_plain: np.ndarray | None = None  # (N, K)
    test_probs_plain: np.ndarray | None = None  # (T, K)


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
    import warnings

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
    if only_fold is not None and not 0 <= only_fold < config.folds:
        raise TrainingError(f"--fold {only_fold}: folds are numbered 0 to {config.folds - 1}")
    if config.weights:
        from training.learner import body_weights

        body_weights(config.arch, config.weights)  # fail before any state is written
    if world_size() > 1 and config.lr is None:
        raise TrainingError("distributed training needs a fixed --lr (run lr_find once without torchrun)")
    if only_fold is not None and config.lr is None:
        raise TrainingError(
            f"--fold {only_fold} needs a fixed --lr: separate fold jobs would each run lr_find and the merged "
            "round would mix their rates; pass the same --lr to every job (e.g. the rate a full `labeler train` "
            "printed)"
        )
    several_jobs = only_fold is not None or merge
    state = _open_state(run_dir, config, fit_frame, test_frame, fold_of, resume or several_jobs)
    folds = [only_fold] if only_fold is not None else [] if merge else range(config.folds)
    for fold in folds:
        if (run_dir / f"fold-{fold}.npz").exists():
            log(f"fold {fold + 1}/{config.folds}: finished earlier, kept (fold-{fold}.npz)")
            continue
        _train_fold(fold, fit_frame, test_frame, fold_of, root, vocab, config, run_dir, state, log)
    if only_fold is not None or rank() != 0:
        return None
    missing = [k for k in range(config.folds) if not (run_dir / f"fold-{k}.npz").exists()]
    if missing:
        raise TrainingError(
            f"cannot merge: folds {', '.join(map(str, missing))} are not in {run_dir} yet; "
            f"train them (--fold K) and copy their fold-K.npz and fold-K.pth there"
        )
    return _assemble(run_dir, config, fit_frame, test_frame, fold_of, state, time.perf_counter() - started)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _train_fold(fold, fit_frame, test_frame, fold_of, root, vocab, config, run_dir, state, log) -> None:
    """Train fold ``fold``; rank 0 predicts its held-out images and the test split and saves them."""
    from fastai.torch_core import set_seed

    from training.data import make_dataloaders
    from training.learner import build_learner, find_lr, fit, pick_device

    set_seed(config.seed + fold)
    valid_idx = np.flatnonzero(fold_of == fold)
    workers = config.workers if config.workers is not None else min(4, os.cpu_count() or 1)
    dls = make_dataloaders(
        fit_frame,
        root,
        vocab,
        valid_idx=valid_idx,
        size=config.size,
        presize=config.presize,
        bs=config.bs,
        workers=workers,
        device=pick_device(config.device),
        seed=config.seed + fold,
        crop_margin=config.crop_margin,
    )
    learn = build_learner(dls, config)
    learn.path, learn.model_dir = run_dir, "."
    if state.get("lr") is None:
        state["lr"] = config.lr or find_lr(learn, config.lr_find_iters, run_dir / "lr_find.png")
        log(f"learning rate {state['lr']:.2e}" + (" (lr_find suggestion, plot: lr_find.png)" if not config.lr else ""))
        _write_json(run_dir / "state.json", state)
    fit_started = time.perf_counter()
    if world_size() > 1:
        from training.distributed import distributed

        log(f"training fold {fold + 1} data-parallel on {world_size()} processes")
        with distributed(learn):
            fit(learn, config, state["lr"])
    else:
        fit(learn, config, state["lr"])
    fit_seconds = time.perf_counter() - fit_started
    if world_size() > 1:
        from training.distributed import rank0_alone

        with rank0_alone():  # the other ranks wait until rank 0 has predicted and saved this fold
            if rank() == 0:
                _finish_fold(
                    learn,
                    fold,
                    fit_frame,
                    test_frame,
                    valid_idx,
                    vocab,
                    config,
                    run_dir,
                    state,
                    fit_started,
                    fit_seconds,
                    log,
                )
    else:
        _finish_fold(
            learn, fold, fit_frame, test_frame, valid_idx, vocab, config, run_dir, state, fit_started, fit_seconds, log
        )


def _finish_fold(
    learn, fold, fit_frame, test_frame, valid_idx, vocab, config, run_dir, state, fit_started, fit_seconds, log
):
    """Predict the held-out fold and the test split (fold 0: embeddings too), then save the fold."""
    from training.learner import plot_losses

    plot_losses(learn.loss_history, run_dir / f"fold-{fold}-loss.png", f"fold {fold + 1}/{config.folds}")
    arrays = _predict_fold(learn, fit_frame, test_frame, valid_idx, embed=fold == 0, tta=config.tta)
    epochs = config.epochs + config.freeze_epochs
    summary = FoldSummary(
        fold=fold,
        held_out=len(valid_idx),
        valid_accuracy=float((arrays["probs"].argmax(1) == _codes(fit_frame["label"][valid_idx], vocab)).mean()),
        seconds=time.perf_counter() - fit_started,
        images_per_s=(len(fit_frame) - len(valid_idx)) * epochs / fit_seconds,
    )
    arrays["summary"] = np.array(json.dumps(asdict(summary)))
    arrays["lr"] = np.array(state["lr"], dtype=np.float64)
    _save_fold(run_dir, f"fold-{fold}", arrays, learn.model.state_dict())
    log(
        f"fold {fold + 1}/{config.folds}: {summary.held_out} held out, accuracy {summary.valid_accuracy:.3f} "
        f"on them (trained labels), {summary.seconds:.0f}s, {summary.images_per_s:.1f} train images/s"
    )


def _codes(labels, vocab: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(vocab)}
    return np.array([index[label] for label in labels], dtype=np.int64)


def _predict_fold(learn, fit_frame, test_frame, valid_idx, *, embed: bool, tta: int = 0) -> dict:
    """Held-out and test probabilities (+ which ids the model trained on and held out, for audit), and the
    held-out images' nearest neighbours in this model's embedding space (one pass over every image);
    with ``embed``, the embeddings of every image too. With ``tta`` > 0 the held-out and test
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
    if embed:
        out.update(embeddings=features, embed_ids=ids)
    return out


TTA_PLAIN_SHARE = 0.25  # fastai's tta default (beta): the plain pass's share beside the augmented mean


def predict_tta(learn, frame, n: int, *, plain: np.ndarray) -> np.ndarray:
    """``TTA_PLAIN_SHARE`` x ``plain`` + the rest x the mean of ``n`` passes with the training augmentation."""
    import torch

    if len(frame) == 0:
        return plain
    dl = learn.dls.test_dl(frame)
    augmented = []
    with dl.dataset.set_split_idx(0):  # split 0: the training transforms (random crops, flips)
        for _ in range(n):
            augmented.append(learn.get_preds(dl=dl)[0].float())
    mean = torch.stack(augmented).mean(0).numpy()
    out = (1 - TTA_PLAIN_SHARE) * mean + TTA_PLAIN_SHARE * plain
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)


NEIGHBOURS = 10  # out-of-sample neighbours kept per image (flag's default -k)


def nearest(features: np.ndarray, rows: np.ndarray, k: int, *, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows most similar (cosine; features are L2-normalised) to each of ``rows``, itself excluded:
    (len(rows), k) row numbers (-1 where fewer) and similarities. Exact, chunked matrix products."""
    import torch

    x = torch.from_numpy(features)
    k_eff = min(k, len(features) - 1)
    out_i = np.full((len(rows), k), -1, dtype=np.int64)
    out_s = np.zeros((len(rows), k), dtype=np.float32)
    for start in range(0, len(rows), chunk):
        part = torch.as_tensor(np.asarray(rows[start : start + chunk]))
        sims = x[part] @ x.T
        sims[torch.arange(len(part)), part] = -float("inf")  # never its own neighbour
        if k_eff > 0:
            top = torch.topk(sims, k_eff, dim=1)
            out_i[start : start + len(part), :k_eff] = top.indices.numpy()
            out_s[start : start + len(part), :k_eff] = top.values.numpy()
    return out_i, out_s


def predict(learn, frame, *, embed: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Softmax probabilities (float32, rows sum to 1) for ``frame``'s files, and optionally embeddings."""
    import torch

    if len(frame) == 0:
        return np.zeros((0, len(learn.dls.vocab)), np.float32), None
    dl = learn.dls.test_dl(frame)
    features: list = []
    final = learn.model[-1][-1]
    hook = (
        final.register_forward_pre_hook(lambda m, inp: features.append(inp[0].detach().float().cpu()))
        if embed
        else None
    )
    try:
        probs, _ = learn.get_preds(dl=dl)
    finally:
        if hook is not None:
            hook.remove()
    probs = probs.float().numpy().astype(np.float32)
    probs /= probs.sum(axis=1, keepdims=True)
    if not embed:
        return probs, None
    emb = torch.nn.functional.normalize(torch.cat(features), dim=1).numpy().astype(np.float32)
    return probs, emb


def _open_state(run_dir: Path, config, fit_frame, test_frame, fold_of, resume: bool) -> dict:
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
    _write_json(path, state)
    return state


def _save_fold(run_dir: Path, name: str, arrays: dict, weights) -> None:
    """``name``.pth (weights) then ``name``.npz (predictions): the .npz marks the model finished."""
    import torch

    _atomic(run_dir / f"{name}.pth", lambda fh: torch.save(weights, fh))
    _atomic(run_dir / f"{name}.npz", lambda fh: np.savez(fh, **arrays))


def _assemble(run_dir, config, fit_frame, test_frame, fold_of, state, seconds) -> CrossvalResult:
    pred_probs, test_folds, summaries, lrs = None, [], [], []
    plain, test_plain = None, []  # without test-time augmentation, where the folds used it
    nbr_ids = np.full((len(fit_frame), NEIGHBOURS), -1, dtype=np.int64)
    nbr_sims = np.zeros((len(fit_frame), NEIGHBOURS), dtype=np.float32)
    have_neighbours = True
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
            test_folds.append(data["test_probs"])
            summaries.append(FoldSummary(**json.loads(str(data["summary"]))))
            lrs.append(float(data["lr"]))
            if fold == 0:
                embed = (data["embed_ids"], data["embeddings"])
    if np.isnan(pred_probs).any():
        raise TrainingError(f"some images got no out-of-fold prediction in {run_dir}; rerun with --restart")
    test_probs_folds = np.stack(test_folds).astype(np.float32)
    k = pred_probs.shape[1]
    test_probs = test_probs_folds.mean(axis=0) if len(test_frame) else np.zeros((0, k), np.float32)
    return CrossvalResult(
        fit_ids=fit_frame["id"].to_numpy(),
        pred_probs=pred_probs,
        fold_of=fold_of,
        test_ids=test_frame["id"].to_numpy(),
        test_probs=test_probs.astype(np.float32),
        test_probs_folds=test_probs_folds,
        embed_ids=embed[0],
        embeddings=embed[1],
        lr=float(np.mean(lrs)),
        folds=summaries,
        neighbour_ids=nbr_ids if have_neighbours else None,
        neighbour_sims=nbr_sims if have_neighbours else None,
        seconds=seconds,
        pred_probs_plain=plain if plain is not None and len(test_plain) == config.folds else None,
        test_probs_plain=np.mean(test_plain, axis=0).astype(np.float32)
        if len(test_plain) == config.folds and len(test_frame)
        else None,
    )


def _write_json(path: Path, data: dict) -> None:
    _atomic(path, lambda fh: fh.write(json.dumps(data, indent=2, default=str).encode()))


def _atomic(path: Path, write: Callable) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over ``path``."""
    from training.files import atomic_open

    with atomic_open(path) as fh:
        write(fh)


@dataclass
class FinalResult:
    """One model trained on every train/valid image (``--folds 0``): test predictions and embeddings."""

    test_ids: np.ndarray
    test_probs: np.ndarray  # (T, K) float32
    embed_ids: np.ndarray
    embeddings: np.ndarray
    lr: float
    summary: FoldSummary
    seconds: float = 0.0


def run_final(
    frame,
    root,
    vocab: list[str],
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    log: Callable[[str], None] = print,
) -> FinalResult:
    """Train one model on all train/valid images; the test split is its validation set (losses only).

    Without a test split the model trains on 'train' and validates on 'valid'. Written to
    ``run_dir/final.npz`` + ``final.pth``; an interrupted run resumes by retraining it.
    """
    from fastai.torch_core import set_seed

    from training.data import make_dataloaders
    from training.learner import build_learner, find_lr, fit, pick_device, plot_losses

    started = time.perf_counter()
    run_dir = Path(run_dir)
    has_test = bool((frame["split"] == "test").any())
    order = frame.sort_values("split", key=lambda s: s == ("test" if has_test else "valid"), kind="stable")
    order = order.reset_index(drop=True)
    held = np.flatnonzero(order["split"] == ("test" if has_test else "valid"))
    state = _open_state(run_dir, config, order, order.iloc[held], np.zeros(len(order), np.int16), resume)
    done = run_dir / "final.npz"
    if not done.exists():
        set_seed(config.seed)
        workers = config.workers if config.workers is not None else min(4, os.cpu_count() or 1)
        dls = make_dataloaders(
            order,
            root,
            vocab,
            valid_idx=held,
            size=config.size,
            presize=config.presize,
            bs=config.bs,
            workers=workers,
            device=pick_device(config.device),
            seed=config.seed,
            crop_margin=config.crop_margin,
        )
        learn = build_learner(dls, config)
        learn.path, learn.model_dir = run_dir, "."
        if state.get("lr") is None:
            state["lr"] = config.lr or find_lr(learn, config.lr_find_iters, run_dir / "lr_find.png")
            _write_json(run_dir / "state.json", state)
        log(f"training one model on {len(order) - len(held)} images (learning rate {state['lr']:.2e})")
        fit_started = time.perf_counter()
        fit(learn, config, state["lr"])
        fit_seconds = time.perf_counter() - fit_started
        plot_losses(learn.loss_history, run_dir / "final-loss.png", "final model")
        probs, features = predict(learn, order, embed=True)
        epochs = config.epochs + config.freeze_epochs
        summary = FoldSummary(
            -1,
            len(held),
            float((probs[held].argmax(1) == _codes(order["label"].iloc[held], vocab)).mean()) if len(held) else 0.0,
            time.perf_counter() - fit_started,
            (len(order) - len(held)) * epochs / fit_seconds,
        )
        arrays = {
            "ids": order["id"].to_numpy(),
            "probs": probs,
            "embeddings": features,
            "held": held,
            "summary": np.array(json.dumps(asdict(summary))),
            "lr": np.array(state["lr"]),
        }
        _save_fold(run_dir, "final", arrays, learn.model.state_dict())
    with np.load(done) as data:
        ids, probs, held = data["ids"], data["probs"], data["held"]
        test = held if has_test else np.array([], dtype=np.int64)
        return FinalResult(
            test_ids=ids[test],
            test_probs=probs[test].astype(np.float32),
            embed_ids=ids,
            embeddings=data["embeddings"],
            lr=float(data["lr"]),
            summary=FoldSummary(**json.loads(str(data["summary"]))),
            seconds=time.perf_counter() - started,
        )
