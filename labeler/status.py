"""What `labeler status` reports about a workspace, as one JSON-ready dict.

The dict's keys are a stable interface (documented in the README; tests read them):
``workspace``, ``format``, ``source``, ``root``, ``items`` (importable, i.e. not quarantined),
``splits`` ({"train", "valid", "test"}: n), ``classes`` (names in the pinned order),
``class_counts`` ({class: {split: n}}), ``quarantined`` ([{"path", "reason"}]),
``rounds`` ([{"round", "kind", "created_at", "metrics"}]), ``flagged``, ``reviewed``, ``decisions``.
"""

from __future__ import annotations

from labeler.workspace import Workspace

SCHEMA_VERSION = 1


def workspace_status(ws: Workspace) -> dict:
    store = ws.store
    splits = store.split_counts()
    rounds = store.rounds()
    grouping = next((r.params["grouping"] for r in reversed(rounds) if r.params.get("grouping")), None)
    return {
        "schema_version": SCHEMA_VERSION,
        "workspace": str(ws.path),
        "format": store.get_meta("format"),
        "source": store.get_meta("source"),
        "root": store.get_meta("root"),
        "items": sum(splits.values()),
        "splits": splits,
        "classes": store.classes(),
        "class_counts": store.class_counts(),
        "quarantined": [{"path": path, "reason": reason} for path, reason in store.quarantined()],
        "rounds": [{"round": r.id, "kind": r.kind, "created_at": r.created_at, "metrics": r.metrics} for r in rounds],
        "grouping": grouping,
        "flagged": store.count_flagged(),
        "reviewed": len(store.effective_decisions()),
        "decisions": len(store.decisions()),
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
    width = max((len(c) for c in status["classes"]), default=5)
    lines.append(f"  {'class':<{width}}  {'train':>7} {'valid':>7} {'test':>7}")
    for name in status["classes"]:
        counts = status["class_counts"].get(name, {})
        lines.append(
            f"  {name:<{width}}  {counts.get('train', 0):>7,} {counts.get('valid', 0):>7,} {counts.get('test', 0):>7,}"
        )
    quarantined = status["quarantined"]
    lines.append(f"quarantined {len(quarantined):,}")
    for q in quarantined[:20]:
        lines.append(f"  {q['path']}: {q['reason']}")
    if len(quarantined) > 20:
        lines.append(f"  ... and {len(quarantined) - 20:,} more (labeler status --json lists all)")
    g = status.get("grouping")
    if g:
        lines.append(f"groups     {g['groups']:,} by {g['by']} ({g['images_sharing']:,} images share a group; "
                     f"largest {g['largest']}): never split across folds")  # fmt: skip
    lines.append(f"rounds     {len(status['rounds'])}")
    for r in status["rounds"]:
        scalars = {k: v for k, v in r["metrics"].items() if isinstance(v, (int, float))}
        shown = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in scalars.items())
        lines.append(f"  round {r['round']} ({r['kind']}): {shown or 'no metrics yet'}")
    lines.append(f"flagged    {status['flagged']:,}")
    lines.append(f"reviewed   {status['reviewed']:,} ({status['decisions']:,} decisions logged)")
    return "\n".join(lines)
