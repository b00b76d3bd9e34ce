"""Evaluation of predicted probabilities: top-k accuracy, per-class accuracy, confusion, plots.

Arrays follow cleanlab's names and shapes: ``pred_probs`` (N, K), ``labels`` (N,) integer
codes into the pinned vocabulary. Only numpy here; matplotlib and PIL for the plots.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labeler_training.plots import pyplot


def _check(pred_probs, labels) -> tuple[np.ndarray, np.ndarray]:
    pred_probs, labels = np.asarray(pred_probs), np.asarray(labels)
    if pred_probs.ndim != 2 or len(pred_probs) != len(labels):
        raise ValueError(f"pred_probs has shape {pred_probs.shape} but labels has {len(labels)} rows")
    return pred_probs, labels


def topk_accuracy(pred_probs, labels, k: int = 1) -> float:
    """Share of rows whose label is among the ``k`` most probable classes (nan when there are no rows)."""
    pred_probs, labels = _check(pred_probs, labels)
    if len(labels) == 0:
        return float("nan")
    k = min(k, pred_probs.shape[1])
    top = np.argpartition(-pred_probs, k - 1, axis=1)[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def confusion_matrix(pred_probs, labels) -> np.ndarray:
    """(K, K) counts: row = given label, column = predicted class."""
    pred_probs, labels = _check(pred_probs, labels)
    k = pred_probs.shape[1]
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (labels, pred_probs.argmax(axis=1)), 1)
    return cm


def per_class_accuracy(cm: np.ndarray, vocab: list[str]) -> dict[str, float | None]:
    """Top-1 accuracy of each class (None for a class with no rows)."""
    totals = cm.sum(axis=1)
    return {name: (float(cm[i, i] / totals[i]) if totals[i] else None) for i, name in enumerate(vocab)}


def most_confused(cm: np.ndarray, vocab: list[str], top: int = 10) -> list[tuple[str, str, int]]:
    """The off-diagonal cells with the most rows: (given, predicted, count), largest first, ties in class order."""
    off = cm.copy()
    np.fill_diagonal(off, 0)
    rows, cols = np.nonzero(off)
    cells = sorted(zip(-off[rows, cols], rows, cols))[:top]  # ties in class order
    return [(vocab[i], vocab[j], int(-n)) for n, i, j in cells]


def summarize(pred_probs, labels, vocab: list[str], prefix: str) -> dict:
    """Metrics under ``prefix``: top1/top3/top5, n, per-class accuracy and most-confused pairs."""
    cm = confusion_matrix(pred_probs, labels)
    out = {f"{prefix}_top{k}": topk_accuracy(pred_probs, labels, k) if len(labels) else None for k in (1, 3, 5)}
    out[f"{prefix}_n"] = int(len(labels))
    out[f"{prefix}_per_class"] = per_class_accuracy(cm, vocab)
    out[f"{prefix}_most_confused"] = most_confused(cm, vocab)
    return out


def plot_confusion(cm: np.ndarray, vocab: list[str], path: Path, title: str = "") -> None:
    """Row-normalised confusion matrix heatmap (counts written in the cells when few classes)."""

    plt = pyplot()

    k = len(vocab)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    side = max(4.0, 0.32 * k + 2)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="label", title=title)
    ax.set_xticklabels(vocab, rotation=90, fontsize=8)
    ax.set_yticklabels(vocab, fontsize=8)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(
                        j,
                        i,
                        cm[i, j],
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the label's images")
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def plot_top_losses(files: list[str], pred_probs, labels, vocab: list[str], path: Path, n: int = 16) -> None:
    """Grid of the ``n`` images with the highest loss: label, prediction and its probability."""
    from PIL import Image

    plt = pyplot()

    pred_probs, labels = _check(pred_probs, labels)
    losses = -np.log(np.clip(pred_probs[np.arange(len(labels)), labels], 1e-12, 1))
    order = np.argsort(-losses)[:n]
    cols = 4
    rows = max(1, int(np.ceil(len(order) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.6, rows * 2.9))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, i in zip(np.atleast_1d(axes).ravel(), order):
        try:
            with Image.open(files[i]) as img:
                img.thumbnail((256, 256))
                ax.imshow(img.convert("RGB"))
        except OSError:
            ax.text(0.5, 0.5, "unreadable", ha="center")
        p = pred_probs[i].argmax()
        ax.set_title(
            f"label {vocab[labels[i]]}\npred {vocab[p]} {pred_probs[i, p]:.2f}\nloss {losses[i]:.2f}", fontsize=8
        )
    fig.suptitle("top losses")
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
