"""What `labeler status` reports about a workspace, as one JSON-ready dict.

The dict's keys are a stable interface (documented in the README; tests read them):
``workspace``, ``format``, ``source``, ``root``, ``items`` (importable, i.e. not quarantined),
``splits`` ({"train", "valid", "test"}: n), ``classes`` (names in the pinned order),
``class_counts`` ({class: {split: n}}), ``quarantined`` ([{"path", "reason"}]),
``rounds`` ([{"round", "kind", "created_at", "metrics"}]), ``flagged``, ``reviewed``, ``decisions``,
``grouping``, ``leakage`` (the latest round's split leakage: ``test_images``,
``test_images_with_train_copy``, ``test_images_sharing_group``, ``test_images_leaky``,
``test_images_leak_free``, ``per_class``; null without a round or a test split), ``estimate``
(``labeler.remaining``: wrong labels remaining with 95% intervals, per score band, the review pace;
null before `flag`; ``enough`` false with a note below 30 reviews), ``boxes`` (garment boxes at import:
``valid``, ``ignored`` {reason: n}, ``examples``; null without box columns), ``class_types``
({class: 1 upper, 2 lower, 3 full body}; DeepFashion only, else null).
"""

from __future__ import annotations

from labeler.flag.reasons import TYPE_NAMES
from labeler.labels import current_class_counts
from labeler.remaining import format_estimate, workspace_estimate
from labeler.workspace import Workspace

SCHEMA_VERSION = 1


def workspace_status(ws: Workspace, *, stop_below: float | None = None) -> dict:
    store = ws.store
    splits = store.split_counts()
    rounds = store.rounds()
    grouping = next((r.params["grouping"] for r in reversed(rounds) if r.params.get("grouping")), None)
    leakage = rounds[-1].metrics.get("leakage") if rounds else None
    return {
        "schema_version": SCHEMA_VERSION,
        "workspace": str(ws.path),
        "format": store.get_meta("format"),
        "source": store.get_meta("source"),
        "root": store.get_meta("root"),
        "items": sum(splits.values()),
        "splits": splits,
        "classes": store.classes(),
        "class_counts": store.class_counts(),  # by given label (as imported)
        "current_class_counts": current_class_counts(store),  # by current label (after review)
        "quarantined": [{"path": path, "reason": reason} for path, reason in store.quarantined()],
        "rounds": [{"round": r.id, "kind": r.kind, "created_at": r.created_at, "metrics": r.metrics} for r in rounds],
        "grouping": grouping,
        "leakage": leakage,
        "flagged": store.count_flagged(),  # schema 1: the queue's size (kept); "queued" says it by name
        "queued": store.count_flagged(),
        "likely_wrong": store.count_likely_wrong(),
        "reviewed": len(store.effective_decisions()),
        "decisions": len(store.decisions()),
        "estimate": workspace_estimate(ws, stop_below=stop_below),
        "boxes": store.get_meta("boxes"),
        "class_types": store.get_meta("class_types"),
    }


def format_status(status: dict) -> str:
    """The human-readable form of ``workspace_status``."""
    splits = status["splits"]
    lines = [
        f"workspace  {status['workspace']}",
        f"source     {status['source']} ({status['format']})",
        f"items      {status['items']:,} (train {splits['train']:,}, valid {splits['valid']:,}, test {splits['test']:,})",
        f"classes    {len(status['classes'])}",
    ]
    for part in (_classes, _quarantined, _boxes, _types, _grouping, _leakage, _rounds):
        lines += part(status)
    lines.append(
        f"queue      {status['queued']:,} images, of which {status['likely_wrong']:,} likely wrong (the flagged set)"
    )
    lines.append(f"reviewed   {status['reviewed']:,} ({status['decisions']:,} decisions logged)")
    lines += format_estimate(status.get("estimate"))
    return "\n".join(lines)


def _classes(status: dict) -> list[str]:
    """Images per class and split by current label (after review), with the given (imported) count beside it
    where reviews changed it."""
    given, current = status["class_counts"], status.get("current_class_counts") or status["class_counts"]
    names = list(dict.fromkeys([*status["classes"], *current]))
    width = max((len(c) for c in names), default=5)
    lines = [f"  {'class':<{width}}  {'train':>7} {'valid':>7} {'test':>7}   (current labels; given as imported)"]
    for name in names:
        now, then = current.get(name, {}), given.get(name, {})
        cells = "".join(f" {now.get(split, 0):>7,}" for split in ("train", "valid", "test"))
        line = f"  {name:<{width}} {cells}"
        if any(now.get(split, 0) != then.get(split, 0) for split in ("train", "valid", "test")):
            line += f"   given: {' / '.join(f'{then.get(split, 0):,}' for split in ('train', 'valid', 'test'))}"
        lines.append(line)
    return lines


def _quarantined(status: dict) -> list[str]:
    quarantined = status["quarantined"]
    lines = [f"quarantined {len(quarantined):,}"] + [f"  {q['path']}: {q['reason']}" for q in quarantined[:20]]
    if len(quarantined) > 20:
        lines.append(f"  ... and {len(quarantined) - 20:,} more (labeler status --json lists all)")
    return lines


def _boxes(status: dict) -> list[str]:
    boxes = status.get("boxes")
    if not boxes:
        return []
    ignored = sum(boxes["ignored"].values())
    reasons = ": " + ", ".join(f"{r} {n:,}" for r, n in boxes["ignored"].items()) if ignored else ""
    return [
        f"boxes      {boxes['valid']:,} usable garment boxes; {ignored:,} ignored (the images still import){reasons}",
        *(f"  {example['path']}: {example['reason']}" for example in boxes["examples"][:5]),
    ]


def _types(status: dict) -> list[str]:
    types = status.get("class_types")
    if not types:
        return []

    groups: dict = {}
    for name in status["classes"]:
        groups.setdefault(TYPE_NAMES.get(types.get(name), "no type"), []).append(name)
    return ["types      " + "; ".join(f"{t}: {len(names)} classes" for t, names in groups.items())]


def _grouping(status: dict) -> list[str]:
    g = status.get("grouping")
    if not g:
        return []
    return [
        f"groups     {g['groups']:,} by {g['by']} ({g['images_sharing']:,} images share a group; "
        f"largest {g['largest']}): never split across folds"
    ]


def _leakage(status: dict) -> list[str]:
    leak = status.get("leakage")
    if not leak:
        return []
    lines = [
        f"leakage    {leak['test_images_leaky']:,} of {leak['test_images']:,} test images have a near-copy "
        f"({leak['test_images_with_train_copy']:,}) or share a group ({leak['test_images_sharing_group']:,}) "
        "with train/valid images; test_leakfree_* scores the others"
    ]
    worst = sorted(((n, c) for c, n in leak.get("per_class", {}).items() if n), reverse=True)[:5]
    if worst:
        lines.append("  most leaky classes: " + ", ".join(f"{c} {n}" for n, c in worst))
    return lines


def _rounds(status: dict) -> list[str]:
    lines = [f"rounds     {len(status['rounds'])}"]
    for r in status["rounds"]:
        scalars = {k: v for k, v in r["metrics"].items() if isinstance(v, (int, float))}
        shown = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in scalars.items())
        lines.append(f"  round {r['round']} ({r['kind']}): {shown or 'no metrics yet'}")
    return lines
