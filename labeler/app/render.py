"""The review screen's HTML and image views, from plain values (no Gradio, no store)."""

from __future__ import annotations

import html
import io

from labeler.boxes import with_margin
from labeler.review import REMOVE_REASONS, ReviewItem

PICKS = 9  # class buttons beside the image: the most probable classes, each with its fixed key code
REMOVE_KEYS = dict(zip(REMOVE_REASONS, "xmq"))
VIEWS = ("box", "crop", "full")  # `b` cycles: the labelled garment's box drawn, cropped to it, the plain image
BOX_MARGIN = 0.1  # the crop view keeps this share of the box's size around it


def image_url(item_id: int, view: str = "box") -> str:
    """Where the app serves an item's image (only workspace items are served; see ``blocks.routes``);
    ``view``: box (drawn where the item has one), crop (to the box) or full."""
    return f"/labeler/image/{int(item_id)}?view={view}"


def class_codes(vocab: list[str]) -> dict[str, str]:
    """A fixed key code per class, in vocabulary order: 1-9 up to nine classes, else 01, 02, ... (two digits)."""
    width = 1 if len(vocab) <= 9 else len(str(len(vocab)))
    return {label: str(i).zfill(width) for i, label in enumerate(vocab, start=1)}


def describe(d) -> str:
    if d.action == "remove":
        return f"removal of #{d.item_id} ({REMOVE_REASONS.get(d.reason or '', d.reason)})"
    if d.action == "relabel":
        return f"#{d.item_id} {d.old_label} -> {d.label}"
    if d.action == "skip":
        return f"skip of #{d.item_id}"
    return f"#{d.item_id} kept as {d.label}"


def _button(act: str, text: str, key: str, *, extra: str = "", css: str = "") -> str:
    return (
        f"<button class='lab-btn {css}' data-act='{act}' {extra}>{html.escape(text)}"
        f" <kbd>{html.escape(key)}</kbd></button>"
    )


def panel(item: ReviewItem, codes: dict[str, str], size: str) -> str:
    """The decision side of the screen: labels, reasons, the decision buttons with their keys, class picks."""
    e = html.escape
    current = item.current if item.current is not None else "removed"
    labels = f"Given <b>{e(item.given)}</b>"
    if current != item.given:
        labels += f" · now <b>{e(current)}</b>"
    labels += f" · Suggested <b>{e(item.suggested)}</b> ({item.suggested_prob:.2f})"
    parts = [
        f"<div class='lab-meta'>#{item.item_id} · {e(item.split)} · {e(size)} · <code>{e(item.path)}</code></div>",
        f"<div class='lab-labels'>{labels}</div>",
    ]
    if item.competing:
        rows = "".join(
            f"<tr><td>{e(d.reviewer)}</td><td>{e(d.action)}</td><td>{e(d.label or '-')}</td>"
            f"<td>{e(d.created_at[:19].replace('T', ' '))}</td></tr>"
            for d in item.competing
        )
        parts.append(
            "<div class='lab-conflict'><b>In conflict</b>: reviewers decided differently; your decision settles it."
            f"<table><tr><th>reviewer</th><th>action</th><th>label</th><th>time (UTC)</th></tr>{rows}</table></div>"
        )
    parts.append("<ul class='lab-reasons'>" + "".join(f"<li>{e(r['text'])}</li>" for r in item.reasons) + "</ul>")
    if item.contradicts:
        parts.append("<div class='lab-warn'>Reviewed before; the new round disagrees.</div>")
    parts += _decision_rows(item, current, codes)
    if item.group:
        parts.append(
            "<label class='lab-group'><input type='checkbox' id='whole-group'> decide the whole near-duplicate "
            f"group ({len(item.group) + 1} images) <kbd>g</kbd></label>"
        )
    return "\n".join(parts)


def _decision_rows(item: ReviewItem, current: str, codes: dict[str, str]) -> list[str]:
    """The rows of buttons, each with its key: keep/accept, skip, undo; the class picks; the removals."""
    e = html.escape
    if item.suggested == current:
        buttons = [_button("keep", f"Keep {current} (model agrees)", "Enter / k", css="lab-primary")]
    else:
        buttons = [
            _button("accept", f"Accept {item.suggested}", "Enter", css="lab-primary"),
            _button("keep", f"Keep {current}", "k"),
        ]
    buttons += [_button("skip", "Skip", "s"), _button("undo", "Undo", "u")]
    picks = "".join(
        _button("relabel", f"{label} {p:.2f}", codes[label], extra=f"data-label='{e(label)}'", css="lab-pick")
        for label, p in item.top[:PICKS]
        if label in codes
    )
    removes = "".join(
        _button("remove", f"Remove: {text}", REMOVE_KEYS[code], extra=f"data-reason='{code}'", css="lab-stop")
        for code, text in REMOVE_REASONS.items()
    )
    return [
        "<div class='lab-row'>" + "".join(buttons) + "</div>",
        f"<div class='lab-row'>{picks}" + _button("search", "Other class…", "/", css="lab-pick") + "</div>",
        f"<div class='lab-row'>{removes}</div>",
    ]


def notes_html(notes: list[str]) -> str:
    return "".join(f"<div class='lab-note'>{html.escape(n)}</div>" for n in notes)


def neighbours_html(item: ReviewItem) -> str:
    def strip(title: str, neighbours, empty: str) -> str:
        if not neighbours:
            return f"<div class='lab-strip'><div class='lab-strip-title'>{html.escape(empty)}</div></div>"
        cells = "".join(
            f"<figure><img data-lab-img='{n.item_id}' src='{image_url(n.item_id)}' alt='#{n.item_id}'><figcaption>{html.escape(n.label)}"
            f" · {n.similarity:.2f}</figcaption></figure>"
            for n in neighbours[:6]
        )
        return f"<div class='lab-strip'><div class='lab-strip-title'>{html.escape(title)}</div>{cells}</div>"

    current = item.current or item.given
    near = len(item.like_current) + len(item.like_suggested) + len(item.others)
    own = strip(
        f"nearest images labelled {current} (this image's label)",
        item.like_current,
        f"none of its {near} nearest images is labelled {current}",
    )
    if item.suggested == current:
        return own + strip("nearest images labelled otherwise", item.others, "no nearby image is labelled otherwise")
    return own + strip(
        f"nearest images labelled {item.suggested} (the suggestion)",
        item.like_suggested,
        f"none of its {near} nearest images is labelled {item.suggested}",
    )


def render_view(path, box, view: str) -> bytes:
    """The image with ``box`` drawn (view "box") or cropped to it with BOX_MARGIN around (view "crop"), as JPEG."""

    from PIL import Image, ImageDraw

    with Image.open(path) as img:
        img = img.convert("RGB")
        if view == "crop":
            img = img.crop(with_margin(box, img.size, BOX_MARGIN))
        else:
            width = max(2, round(min(img.size) / 150))
            ImageDraw.Draw(img).rectangle([box[0], box[1], box[2] - 1, box[3] - 1], outline=(255, 64, 32), width=width)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90)
    return out.getvalue()


def pixel_size(file: str) -> str:
    from PIL import Image

    try:
        with Image.open(file) as image:
            return f"{image.width}×{image.height} px"
    except OSError:
        return "unreadable image"


def pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"
