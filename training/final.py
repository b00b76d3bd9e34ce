"""One model on every train/valid image (``labeler retrain --folds 0``): test predictions and embeddings.

The test split is its validation set (losses only); without a test split it trains on 'train' and
validates on 'valid'. Written to ``run_dir/final.npz`` + ``final.pth``; an interrupted run resumes by
training it again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from labeler_training import runs
from labeler_training.inference import predict
from labeler_training.learner import TrainConfig


@dataclass
class FinalResult:
    """One model trained on every train/valid image (``--folds 0``): test predictions and embeddings."""

    test_ids: np.ndarray
    test_probs: np.ndarray  # (T, K) float32
    embed_ids: np.ndarray
    embeddings: np.ndarray
    lr: float
    summary: runs.FoldSummary
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
    """Train one model on all train/valid images; see the module docstring."""
    started = time.perf_counter()
    run_dir = Path(run_dir)
    has_test = bool((frame["split"] == "test").any())
    held_split = "test" if has_test else "valid"
    order = frame.sort_values("split", key=lambda s: s == held_split, kind="stable").reset_index(drop=True)
    held = np.flatnonzero(order["split"] == held_split)
    state = runs.open_state(run_dir, config, order, order.iloc[held], np.zeros(len(order), np.int16), resume)
    if not (run_dir / "final.npz").exists():
        _train(order, held, root, vocab, config, run_dir, state, log)
    with np.load(run_dir / "final.npz") as data:
        ids, probs = data["ids"], data["probs"]
        test = data["held"] if has_test else np.array([], dtype=np.int64)
        return FinalResult(
            test_ids=ids[test],
            test_probs=probs[test].astype(np.float32),
            embed_ids=ids,
            embeddings=data["embeddings"],
            lr=float(data["lr"]),
            summary=runs.FoldSummary(**json.loads(str(data["summary"]))),
            seconds=time.perf_counter() - started,
        )


def _train(order, held, root, vocab, config: TrainConfig, run_dir: Path, state: dict, log) -> None:
    """Train, predict every image and save ``final.npz``."""
    from fastai.torch_core import set_seed

    from labeler_training.learner import fit, plot_losses

    set_seed(config.seed)
    learn = runs.learner_for(order, root, vocab, held, config, config.seed, run_dir)
    lr = runs.learning_rate(learn, config, state, run_dir, lambda message: None)
    log(f"training one model on {len(order) - len(held)} images (learning rate {lr:.2e})")
    fit_started = time.perf_counter()
    fit(learn, config, lr)
    fit_seconds = time.perf_counter() - fit_started
    plot_losses(learn.loss_history, run_dir / "final-loss.png", "final model")
    probs, features = predict(learn, order, embed=True)
    accuracy = (
        float((probs[held].argmax(1) == runs.label_codes(order["label"].iloc[held], vocab)).mean())
        if len(held)
        else 0.0
    )
    summary = runs.fold_summary(-1, held, accuracy, len(order) - len(held), config, fit_started, fit_seconds)
    arrays = {
        "ids": order["id"].to_numpy(),
        "probs": probs,
        "embeddings": features,
        "held": held,
        "summary": np.array(json.dumps(asdict(summary))),
        "lr": np.array(lr),
    }
    runs.save_model(run_dir, "final", arrays, learn.model.state_dict())
