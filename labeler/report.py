"""Plots and an HTML page for a flagged round (matplotlib and PIL only)."""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

import numpy as np

from labeler.boxes import parse_box
from labeler.flag.detect import NOISE_RATE_CAVEAT
from labeler.flag.queue import Evidence, Queue
from labeler.flag.reasons import REASONS
from labeler.leakage import Leaks
from labeler.workspace import Workspace
from labeler_training.plots import pyplot


def write_flag_report(ws: Workspace, round_id: int, queue: Queue, ev: Evidence) -> Path:
    """reports/round-NNN/flag.html with a noise-matrix heatmap, a quality histogram and examples per reason."""
    out = ws.path / "reports" / f"round-{round_id:03d}"
    out.mkdir(parents=True, exist_ok=True)
    _noise_heatmap(queue.summary.noise_matrix, ev.vocab, out / "noise_matrix.png")
    _quality_histogram(queue, out / "label_quality.png")
    by_kind: dict[str, list] = {}
    for e in queue.flags:
        by_kind.setdefault(e.kind, []).append(e)
    shown = [e.item_id for e in queue.flags[:100]] + [e.item_id for k in by_kind.values() for e in k[:12]]
    items = ws.store.items_by_id(shown)  # only the items the page shows, never every item
    grids = []
    for code in REASONS:
        if by_kind.get(code):
            name = f"examples_{code}.png"
            _example_grid(ws, by_kind[code][:12], items, ev, out / name, REASONS[code].summary)
            grids.append((code, name, len(by_kind[code])))
    leaks = _leak_section(ws, round_id, out)
    thumbs = {e.item_id: _thumbnail_uri(ws.image_path(items[e.item_id].file)) for e in queue.flags[:100]}
    page = out / "flag.html"
    text = _html(round_id, queue, ev, items, grids, thumbs) + leaks
    page.write_text(_inline_images(text, out), encoding="utf-8")  # one file: it can be moved or mailed alone
    return page


THUMBNAIL = 64  # px, the long side of the table's thumbnails


def _thumbnail_uri(path: Path) -> str:
    """A small JPEG of the image as a data URI ("" when it cannot be read)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            img.thumbnail((THUMBNAIL, THUMBNAIL))
            buffer = io.BytesIO()
            img.save(buffer, format="JPEG", quality=80)
    except OSError:
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _inline_images(text: str, folder: Path) -> str:
    """Every <img src='NAME.png'> of the page's folder replaced by the picture itself (a data URI)."""

    def inline(match: re.Match) -> str:
        target = folder / match.group(2)
        if not target.exists():
            return match.group(0)
        return f"src={match.group(1)}data:image/png;base64,{base64.b64encode(target.read_bytes()).decode()}{match.group(1)}"

    return re.sub(r"src=(['\"])([\w.-]+\.png)\1", inline, text)


def _leak_section(ws: Workspace, round_id: int, out: Path) -> str:
    """The test images with a near-copy or a group in train/valid: their pairs side by side, then a table."""

    leaks = Leaks.load(ws, round_id)
    if leaks is None:
        return ""
    rows = [
        (int(t), int(c), bool(g)) for t, c, g in zip(leaks.test_ids, leaks.copy_of, leaks.shares_group) if c >= 0 or g
    ]
    shown = rows[:500]
    items = ws.store.items_by_id([t for t, _, _ in shown] + [c for _, c, _ in shown if c >= 0])
    head = (
        f"<h2>Split leakage: {len(rows)} of {len(leaks.test_ids)} test images have a near-copy or their "
        "group among the train/valid images</h2><p>Round metrics test_leakfree_* leave them out.</p>"
    )
    if not rows:
        return head
    pairs = [(t, c) for t, c, _ in shown if c >= 0 and c in items and t in items][:12]
    if pairs:
        _pair_grid(ws, pairs, items, out / "leak_pairs.png")
        head += "<img src='leak_pairs.png'>"
    table = "".join(
        f"<tr><td>{html.escape(items[t].path)}</td><td>{html.escape(items[t].label)}</td>"
        f"<td>{html.escape(items[c].path) if c in items else '-'}</td>"
        f"<td>{html.escape(items[c].label) if c in items else '-'}</td><td>{'yes' if g else 'no'}</td></tr>"
        for t, c, g in shown
        if t in items
    )
    return (
        head + "<table><tr><th>test image</th><th>label</th><th>train/valid near-copy</th><th>its label</th>"
        f"<th>shares a group</th></tr>{table}</table>"
    )


def _pair_grid(ws: Workspace, pairs, items, path: Path) -> None:
    """Each leaking test image beside its train/valid near-copy."""
    plt = pyplot()
    fig, axes = plt.subplots(len(pairs), 2, figsize=(4.4, 2.3 * len(pairs)), squeeze=False)
    for (test_id, copy_id), (left, right) in zip(pairs, axes):
        for ax, item_id, role in ((left, test_id, "test"), (right, copy_id, items[copy_id].split)):
            ax.axis("off")
            _thumbnail(ax, ws.image_path(items[item_id].file), items[item_id].extra)
            ax.set_title(f"{role} #{item_id} {items[item_id].label}", fontsize=8)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def _thumbnail(ax, file, extra: dict | None = None) -> None:
    """The image, small, with the labelled garment's box drawn where the item has a usable one."""
    from PIL import Image

    try:
        with Image.open(file) as img:
            size = img.size
            img.thumbnail((200, 200))
            ax.imshow(img.convert("RGB"))
            scale = img.width / size[0]
    except Exception:  # an unreadable image must not stop the report
        ax.text(0.5, 0.5, "unreadable", ha="center")
        return
    box, _ = parse_box(extra or {}, size) if extra and not extra.get("bbox_problem") else (None, None)
    if box is not None:
        from matplotlib.patches import Rectangle

        x1, y1, x2, y2 = (v * scale for v in box)
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="#ff4020", linewidth=1.5))


def _noise_heatmap(matrix: np.ndarray, vocab: list[str], path: Path) -> None:
    plt = pyplot()
    k = len(vocab)
    side = max(4.0, 0.32 * k + 2)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    image = ax.imshow(
        matrix, cmap="magma_r", vmin=0, vmax=min(1.0, max(0.05, float(matrix[~np.eye(k, dtype=bool)].max(initial=0))))
    )
    ax.set(
        xticks=range(k),
        yticks=range(k),
        xlabel="true label (estimated)",
        ylabel="given label",
        title="estimated noise matrix P(given | true), off-diagonal scale",
    )
    ax.set_xticklabels(vocab, rotation=90, fontsize=8)
    ax.set_yticklabels(vocab, fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def _quality_histogram(queue: Queue, path: Path) -> None:
    plt = pyplot()
    quality = 1 - queue.score
    fig, ax = plt.subplots(figsize=(6, 3.2))
    bins = np.linspace(0, 1, 41)
    ax.hist(quality[~queue.likely_wrong], bins=bins, alpha=0.7, label="not flagged")
    ax.hist(quality[queue.likely_wrong], bins=bins, alpha=0.8, label="flagged")
    ax.set(xlabel="label quality (1 - the queue's score: model + neighbours)", ylabel="images", yscale="log")
    ax.legend()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def _example_grid(ws: Workspace, entries, items, ev: Evidence, path: Path, title: str) -> None:
    plt = pyplot()
    label_of = dict(zip(ev.item_ids.tolist(), ev.labels.tolist()))
    cols = 6
    rows = int(np.ceil(len(entries) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.2, rows * 2.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, e in zip(axes.ravel(), entries):
        _thumbnail(ax, ws.image_path(items[e.item_id].file), items[e.item_id].extra)
        ax.set_title(
            f"#{e.item_id} {ev.vocab[label_of[e.item_id]]}\n-> {e.suggested_label} {e.suggested_prob:.2f}", fontsize=8
        )
    fig.suptitle(title)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def _html(round_id: int, queue: Queue, ev: Evidence, items, grids, thumbs: dict) -> str:
    label_of = dict(zip(ev.item_ids.tolist(), ev.labels.tolist()))
    flagged = sum(e.kind == "label_issue" for e in queue.flags)
    rows = "".join(
        f"<tr><td>{rank}</td><td><img src='{thumbs.get(e.item_id, '')}' alt=''></td>"
        f"<td>{html.escape(items[e.item_id].path)}</td><td>{html.escape(ev.vocab[label_of[e.item_id]])}</td>"
        f"<td>{html.escape(e.suggested_label)} ({e.suggested_prob:.2f})</td><td>{e.priority:.3f}</td>"
        f"<td>{html.escape(' | '.join(r['text'] for r in e.reasons))}</td></tr>"
        for rank, e in enumerate(queue.flags[:100], start=1)
    )
    sections = "".join(f"<h3>{html.escape(REASONS[c].summary)} ({n})</h3><img src='{name}'>" for c, name, n in grids)
    return f"""<!doctype html><meta charset="utf-8"><title>labeler: round {round_id} flags</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:2px 8px;font-size:13px}} tr:nth-child(even){{background:#f4f4f4}}</style>
<h1>Round {round_id}: {flagged:,} of {len(ev.item_ids):,} labels are likely wrong (the flagged set)</h1>
<p>{len(queue.flags) - flagged:,} more images are worth a look (cleanlab's filter, near-duplicates, outliers, the
neighbour vote): {len(queue.flags):,} queued in all. `labeler status` estimates how many wrong labels remain once
30 images are reviewed.</p>
<h2>Top of the queue</h2><table><tr><th>#</th><th></th><th>image</th><th>current label</th><th>suggested</th><th>priority</th><th>why</th></tr>{rows}</table>
{sections}
<h2>Where cleanlab sees the noise</h2><img src="noise_matrix.png"> <img src="label_quality.png">
<p>cleanlab's label-noise estimate {queue.summary.noise_rate:.1%} ({html.escape(NOISE_RATE_CAVEAT)}).</p>
"""


def write_rounds_report(ws: Workspace) -> Path:
    """reports/rounds.html: top-k by round (PNG) and the test confusion matrices of the first and latest rounds."""
    rounds = [r for r in ws.store.rounds() if "test_top1" in r.metrics]
    out = ws.path / "reports"
    out.mkdir(parents=True, exist_ok=True)
    _plot_rounds(rounds, out / "rounds.png")
    rows = "".join(_round_row(r) for r in rounds)
    pictures = "".join(
        f"<figure><img src='round-{r.id:03d}/confusion_test.png' width=420><figcaption>round {r.id}</figcaption></figure>"
        for r in (rounds[:1] + rounds[-1:] if len(rounds) > 1 else rounds)
        if (out / f"round-{r.id:03d}" / "confusion_test.png").exists()
    )
    page = out / "rounds.html"
    page.write_text(
        "<!doctype html><meta charset='utf-8'><title>labeler rounds</title><style>body{font-family:sans-serif;margin:2em}"
        "td,th{padding:2px 8px} figure{display:inline-block}</style><h1>Rounds</h1><img src='rounds.png'>"
        "<table><tr><th>round</th><th>kind</th><th>test top-1</th><th>top-3</th><th>top-5</th><th>leak-free test top-1</th>"
        "<th>cleaned test top-1</th><th>audited test top-1</th><th>out-of-fold top-1</th>"
        "<th>labels changed</th><th>removed</th><th>wrong labels left (95%)</th><th>label-error rate (95%)</th></tr>"
        f"{rows}</table><p>The last two columns: the remaining-errors estimate of `labeler status` when the round "
        "started (see the README).</p>"
        f"<h2>Test confusion, first and latest round</h2>{pictures}",
        encoding="utf-8",
    )
    return page


def _interval(value, spec: str) -> str:
    """``[mean, low, high]`` as "mean [low-high]"; "-" when absent."""
    if not value:
        return "-"
    mean, low, high = value
    return f"{mean:{spec}} [{low:{spec}}-{high:{spec}}]"


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


ROUND_CURVES = (  # the metrics drawn by round, and their line styles
    ("test_top1", "o-"),
    ("test_top3", "s-"),
    ("test_top5", "^-"),
    ("test_cleaned_top1", "o--"),
    ("test_leakfree_top1", "d-."),
    ("oof_top1", "x:"),
)
ROUND_COLUMNS = (  # the rounds table's metric columns, after round and kind
    "test_top1",
    "test_top3",
    "test_top5",
    "test_leakfree_top1",
    "test_cleaned_top1",
    "test_audit_top1",
    "oof_top1",
)  # not cleanlab's noise_rate: it overstates on weak models (NOISE_RATE_CAVEAT); the estimate columns replace it


def _plot_rounds(rounds, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ids = [r.id for r in rounds]
    for key, style in ROUND_CURVES:
        values = [r.metrics.get(key) for r in rounds]
        if any(v is not None for v in values):
            ax.plot(ids, [float("nan") if v is None else v for v in values], style, label=key)
    ax.set(xlabel="round", ylabel="accuracy", title="top-k by round", xticks=ids)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def _round_row(r) -> str:
    m = r.metrics
    return (
        f"<tr><td>{r.id}</td><td>{r.kind}</td>"
        + "".join(f"<td>{_fmt(m.get(k))}</td>" for k in ROUND_COLUMNS)
        + f"<td>{m.get('labels_changed', 0)}</td><td>{m.get('items_removed', 0)}</td>"
        + f"<td>{_interval(m.get('remaining_errors'), '.0f')}</td>"
        + f"<td>{_interval(m.get('label_error_rate'), '.1%')}</td></tr>"
    )
