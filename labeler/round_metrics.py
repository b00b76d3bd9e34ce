"""What a training round measures: out-of-fold and test top-k (given, cleaned, leak-free, audited labels),
the split's leaks, cleanlab's noise-rate estimate, and the report plots. Called by ``labeler.train``."""

from __future__ import annotations

import numpy as np

from labeler.flag.detect import summarize_classes
from labeler.flag.pixels import pixel_match
from labeler.labels import label_codes
from labeler.leakage import describe, find_leaks
from labeler.workspace import Workspace
from labeler_training.evaluate import confusion_matrix, plot_confusion, plot_top_losses, summarize, topk_accuracy


def noise_rate(pred_probs, labels, vocab) -> float:
    """cleanlab's estimate of the share of wrong labels among the ones the round trained on."""

    return summarize_classes(labels, pred_probs, vocab).noise_rate


def format_metrics(metrics: dict) -> str:
    """One line: out-of-fold top-1 and test top-1/3/5 (given, and cleaned when present)."""

    def topk(prefix: str) -> str:
        values = [metrics.get(f"{prefix}_top{k}") for k in (1, 3, 5)]
        return "/".join("-" if v is None else f"{v:.3f}" for v in values)

    text = f"out-of-fold top-1/3/5 {topk('oof')} (n={metrics.get('oof_n', 0)})"
    text += f"; test top-1/3/5 {topk('test')} (n={metrics.get('test_n', 0)}, given labels)"
    if "test_cleaned_top1" in metrics:
        text += f", {topk('test_cleaned')} (n={metrics['test_cleaned_n']}, cleaned labels)"
    if "test_leakfree_n" in metrics:
        leak = metrics["leakage"]
        text += (
            f"; leak-free test images {topk('test_leakfree')} (n={metrics['test_leakfree_n']}; "
            f"{leak['test_images_leaky']} of {leak['test_images']} test images have a near-copy or their "
            "group in train/valid)"
        )
    return text


def audit_metrics(ws: Workspace, test, test_probs, kept, vocab: list[str]) -> dict:
    """test_audit_top1/3/5 with Jeffreys 95% intervals (``_low``/``_high``) on the test images of a random
    audit sample (`labeler sample --split test`) that were reviewed: cleaned test labels that do not
    depend on the model, unlike those of the test images the queue brought up."""
    from scipy.stats import beta

    audited = {i for i, d in ws.store.effective_decisions().items() if d.reason == "audit"}
    rows = test.index.isin(list(audited)) & kept
    if not rows.any():
        return {}
    codes, n = label_codes(test["label"][rows], vocab), int(rows.sum())
    out = {"test_audit_n": n}
    for k in (1, 3, 5):
        acc = topk_accuracy(test_probs[rows], codes, k)
        hits = acc * n
        out[f"test_audit_top{k}"] = acc
        out[f"test_audit_top{k}_low"] = float(beta.ppf(0.025, hits + 0.5, n - hits + 0.5))
        out[f"test_audit_top{k}_high"] = float(beta.ppf(0.975, hits + 0.5, n - hits + 0.5))
    return out


def find_split_leaks(ws: Workspace, frame, embed_ids, embeddings, groups):
    """The test images' near-copies and shared groups among train/valid images (None: no test split)."""

    is_test = (frame["split"] == "test").to_numpy()
    if not is_test.any():
        return None
    position = {int(i): r for r, i in enumerate(embed_ids)}
    rows = [position[int(i)] for i in frame["id"]]
    files = [str(ws.root / f) for f in frame["file"]]
    return find_leaks(frame["id"].to_numpy(), is_test, embeddings[rows], groups, confirm=pixel_match(files))


def evaluate_crossval(ws: Workspace, frame, vocab: list[str], result, round_id: int, log, leaks=None) -> dict:
    """OOF and test metrics (given and, once reviewed, cleaned test labels) and report plots."""

    by_id = frame.set_index("id")
    fit_labels = label_codes(by_id.loc[result.fit_ids, "label"], vocab)
    metrics = summarize(result.pred_probs, fit_labels, vocab, "oof")
    metrics.update(test_metrics(ws, frame, vocab, result.test_ids, result.test_probs, round_id, leaks))
    reports = ws.path / "reports" / f"round-{round_id:03d}"
    plot_confusion(
        confusion_matrix(result.pred_probs, fit_labels),
        vocab,
        reports / "confusion_oof.png",
        f"round {round_id}: out-of-fold (train+valid)",
    )
    files = [str(ws.root / f) for f in by_id.loc[result.fit_ids, "file"]]
    plot_top_losses(files, result.pred_probs, fit_labels, vocab, reports / "top_losses_oof.png")
    log(f"round {round_id}: {format_metrics(metrics)}; reports in {reports}")
    return metrics


def test_metrics(ws: Workspace, frame, vocab: list[str], test_ids, test_probs, round_id: int, leaks=None) -> dict:
    """test_* against the given test labels; test_cleaned_* against current labels once test items were
    reviewed; with ``leaks``, the same on the leak-free test images (test_leakfree_*, test_cleaned_leakfree_*)
    and the ``leakage`` counts. No test split: none of these keys."""

    reports = ws.path / "reports" / f"round-{round_id:03d}"
    reports.mkdir(parents=True, exist_ok=True)
    test = frame.set_index("id").loc[test_ids]
    metrics = summarize(test_probs, label_codes(test["given"], vocab), vocab, "test")
    kept = ~test["removed"].to_numpy()
    if len(test) and test["reviewed"].any():
        metrics.update(summarize(test_probs[kept], label_codes(test["label"][kept], vocab), vocab, "test_cleaned"))
    metrics.update(audit_metrics(ws, test, test_probs, kept, vocab))
    if leaks is not None and len(test):
        leaky_of = dict(zip(leaks.test_ids.tolist(), leaks.leaky.tolist()))
        free = np.array([not leaky_of.get(int(i), False) for i in test_ids], dtype=bool)
        metrics["leakage"] = describe(leaks, list(frame.set_index("id").loc[leaks.test_ids, "given"]))
        for prefix, rows, column in (("test_leakfree", free, "given"), ("test_cleaned_leakfree", free & kept, "label")):
            if prefix.startswith("test_cleaned") and not test["reviewed"].any():
                continue
            part = summarize(test_probs[rows], label_codes(test[column][rows], vocab), vocab, prefix)
            metrics.update({k: v for k, v in part.items() if not k.endswith(("_per_class", "_most_confused"))})
    if len(test):
        plot_confusion(
            confusion_matrix(test_probs, label_codes(test["given"], vocab)),
            vocab,
            reports / "confusion_test.png",
            f"round {round_id}: test split (given labels)",
        )
    return metrics
