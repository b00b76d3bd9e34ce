"""The review app's Overview tab: counts, rounds, leakage, remaining errors and confused pairs, as Markdown."""

from __future__ import annotations

from labeler.app.render import pct
from labeler.remaining import format_estimate


def overview_markdown(status: dict) -> str:
    """Markdown of ``labeler.status.workspace_status``'s counts, rounds, leakage, estimate and confused pairs."""
    lines = [
        f"**{status['items']:,} images** (train {status['splits']['train']:,}, valid "
        f"{status['splits']['valid']:,}, test {status['splits']['test']:,}), "
        f"{len(status['quarantined']):,} quarantined, {status['queued']:,} queued ({status['likely_wrong']:,} likely wrong), "
        f"{status['reviewed']:,} reviewed",
        "",
        "| class | train | valid | test |",
        "|---|---:|---:|---:|",
    ]
    for name in status["classes"]:
        c = status["class_counts"].get(name, {})
        lines.append(f"| {name} | {c.get('train', 0):,} | {c.get('valid', 0):,} | {c.get('test', 0):,} |")
    lines += [
        "",
        "| round | kind | test top-1 | top-3 | top-5 | leak-free test top-1 | out-of-fold top-1 | cleaned test top-1 |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in status["rounds"]:
        m = r["metrics"]
        keys = ("test_top1", "test_top3", "test_top5", "test_leakfree_top1", "oof_top1", "test_cleaned_top1")
        lines.append(f"| {r['round']} | {r['kind']} | " + " | ".join(pct(m.get(k)) for k in keys) + " |")
    lines += _notes(status)
    return "\n".join(lines)


def _notes(status: dict) -> list[str]:
    """The paragraphs below the tables: split leakage, the remaining-errors estimate, most confused pairs."""
    lines: list[str] = []
    leak = status.get("leakage")
    if leak:
        lines += [
            "",
            f"**Split leakage:** {leak['test_images_leaky']:,} of {leak['test_images']:,} test images "
            f"have a near-copy ({leak['test_images_with_train_copy']:,}) or their group "
            f"({leak['test_images_sharing_group']:,}) among the train/valid images; the leak-free column "
            "scores the others (the flag report lists the pairs).",
        ]
    estimate_lines = format_estimate(status["estimate"])
    if estimate_lines:
        lines += [
            "",
            "**How many wrong labels remain** (from the reviews; see the README):",
            "",
            "```",
            *estimate_lines,
            "```",
        ]
    if status["rounds"]:
        pairs = status["rounds"][-1]["metrics"].get("oof_most_confused") or []
        if pairs:
            lines += [
                "",
                "**Most confused (label -> prediction, out-of-fold):** "
                + ", ".join(f"{a} -> {b} ({n})" for a, b, n in pairs[:8]),
            ]
    return lines
