"""The `labeler` command: parse options, make one call into the core, print the result.

Heavy libraries are imported inside the commands that need them, so `labeler --help`
starts fast. A LabelerError becomes its message on stderr and exit code 2.
"""

from __future__ import annotations

import inspect
import json
import sqlite3
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import click

from labeler.cli import models
from labeler.cli.bench import bench
from labeler.cli.options import GROUP_BY, POSITIVE, SHARE, Credentials, train_options
from labeler.demo import DemoSpec, run
from labeler.errors import LabelerError, explain
from labeler.export import export_labels
from labeler.flag import flag_round, format_summary
from labeler.flag.detect import FILTERS
from labeler.flag.queue import RANKINGS, VOTE_SPACES, build_queue
from labeler.ingest import import_dataset
from labeler.ingest.validate import Options
from labeler.sample import sample as draw
from labeler.status import format_status, workspace_status
from labeler.train import retrain_round, train_round
from labeler.workspace import Workspace
from labeler_training.errors import TrainingError

# flag's defaults are build_queue's: one source
QUEUE_DEFAULTS = {name: p.default for name, p in inspect.signature(build_queue).parameters.items() if name != "ev"}

JSON_OPTION = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object (schema_version 1) instead of the text summary."
)


def _echo_json(command: str, **payload) -> None:
    """What ``--json`` prints: one object in `status --json`'s style (schema_version, then the command's keys)."""
    click.echo(json.dumps({"schema_version": 1, "command": command, **payload}, indent=2, default=str))


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            try:
                return super().invoke(ctx)
            except (OSError, sqlite3.DatabaseError, RuntimeError) as exc:
                known = explain(exc)
                if known is None:
                    raise
                raise known from exc
        except (LabelerError, TrainingError) as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("\nInterrupted.", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="labeler")
def main():
    """Find and fix wrong labels in image-classification datasets.

    The loop: import -> train -> flag -> review -> retrain -> export, all in one WORKSPACE folder.
    """


@main.command("import")
@click.argument("workspace", type=click.Path(file_okay=False))
@click.argument("source", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["deepfashion", "csv", "folder"]), help="Source layout [auto].")
@click.option("--force", is_flag=True, help="Re-import into an existing workspace (decisions are kept).")
@click.option("--allow-new-classes", is_flag=True, help="With --force: accept a source whose classes differ.")
@click.option(
    "--root", type=click.Path(file_okay=False), help="CSV: folder image paths are relative to [CSV's folder]."
)
@click.option("--image-col", help="CSV: column with image paths [image, image_name, path, ...].")
@click.option("--label-col", help="CSV: column with labels [label, category_name, class, ...].")
@click.option("--split-col", help="CSV: column with train/valid/test [split, evaluation_status, is_valid].")
@click.option(
    "--valid-pct", default=0.2, show_default=True, type=SHARE, help="Share for valid when the source has no splits."
)
@click.option(
    "--test-pct", default=0.1, show_default=True, type=SHARE, help="Share for test when the source has no splits."
)
@click.option("--seed", default=42, show_default=True, help="Seed of the split made when the source has none.")
@click.option(
    "--verify-images/--no-verify-images",
    default=True,
    show_default=True,
    help="Open and fully decode every image (quarantining bad ones), or trust the files.",
)
@click.option("--workers", type=click.IntRange(1), help="Processes for image checks [all cores].")
@click.option("--merge-label-variants", is_flag=True, help="Merge labels differing only in case/spaces.")
@click.option(
    "--min-per-class",
    default=5,
    show_default=True,
    type=click.IntRange(0),
    help="Warn for classes with fewer train/valid images.",
)
@click.option(
    "--max-pixels", default=89_478_485, show_default=True, type=POSITIVE, help="Quarantine larger images (bomb guard)."
)
@JSON_OPTION
def import_(
    workspace, source, fmt, force, allow_new_classes, root, image_col, label_col, split_col, as_json, **options
):
    """Import SOURCE (DeepFashion folder, labels CSV or class folders) into WORKSPACE."""

    result = import_dataset(
        workspace,
        source,
        format=fmt,
        force=force,
        allow_new_classes=allow_new_classes,
        options=Options(**options),
        root=Path(root) if root else None,
        image_col=image_col,
        label_col=label_col,
        split_col=split_col,
    )
    if as_json:
        _echo_json(
            "import",
            workspace=str(result.workspace),
            format=result.format,
            items=result.items,
            splits=result.splits,
            classes=result.classes,
            quarantined=dict(result.quarantined),
            warnings=result.warnings,
            seconds=round(result.seconds, 3),
        )
        return
    click.echo(_format_import(result))


def _format_import(result) -> str:
    s, q = result.splits, result.quarantined
    lines = [
        f"imported {result.items:,} images ({result.format}) into {result.workspace} in {result.seconds:.1f}s",
        f"  splits: train {s['train']:,}, valid {s['valid']:,}, test {s['test']:,}",
        f"  classes ({len(result.classes)}): {', '.join(result.classes)}",
    ]
    if q:
        lines.append(f"  quarantined {sum(q.values()):,}: " + ", ".join(f"{r} {n}" for r, n in q.most_common()))
        lines.append("  (`labeler status WORKSPACE` lists each with its reason)")
    if result.summary.updated or result.summary.gone:
        lines.append(
            f"  re-import: {result.summary.updated:,} kept, {result.summary.inserted:,} new, "
            f"{result.summary.gone:,} no longer in the source ({result.summary.decisions_on_gone} decisions on those kept)"
        )
    lines += [f"  warning: {w}" for w in result.warnings]
    return "\n".join(lines)


@main.command()
@click.argument("workspace", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the stable JSON form (see README).")
@click.option(
    "--stop-below",
    type=click.FloatRange(0, 1),
    metavar="RATE",
    help="Say when the next reviews are expected to find wrong labels at less than this rate.",
)
def status(workspace, as_json, stop_below):
    """Show items, rounds, leakage, flags, reviews and how many wrong labels remain (with 95% intervals)."""

    with Workspace.open(workspace, readonly=True) as ws:
        report = workspace_status(ws, stop_below=stop_below)
    click.echo(json.dumps(report, indent=2) if as_json else format_status(report))


@main.command()
@click.argument("workspace", type=click.Path(file_okay=False))
@train_options
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last finished fold.")
@click.option("--restart", is_flag=True, help="Discard an interrupted run and start over.")
@click.option(
    "--fold", "only_fold", type=click.IntRange(0), help="Train this fold only (folds as separate jobs; then --merge)."
)
@click.option("--merge", is_flag=True, help="Record the round from folds trained as separate jobs.")
@GROUP_BY
@JSON_OPTION
def train(workspace, resume, restart, only_fold, merge, group_by, preset, as_json, **options):
    """Train K fold models: out-of-fold pred_probs, embeddings and top-k metrics as a new round."""

    Workspace.check(workspace)  # before torch's few seconds of import
    from labeler_training.learner import make_config, pick_device

    config = make_config(preset, **options)
    device = pick_device(config.device)
    explicit = any(options.get(name) is not None for name in ("arch", "size", "epochs", "bs"))
    if device.type == "cpu" and preset is None and not explicit:
        click.echo("note: no GPU found; training the GPU recipe on the CPU is slow (try --preset cpu)", err=True)
    say = (lambda line: click.echo(line, err=True)) if as_json else click.echo  # --json: stdout holds the JSON only
    with Workspace.open(workspace) as ws:
        round_id = train_round(
            ws,
            config,
            resume=resume,
            restart=restart,
            only_fold=only_fold,
            merge=merge,
            group_by=group_by or "auto",
            log=say,
        )
        metrics = next((r.metrics for r in ws.store.rounds() if r.id == round_id), None)
    if as_json:
        _echo_json("train", workspace=str(workspace), round=round_id, fold=only_fold, metrics=metrics)
    elif round_id is not None:
        click.echo(f"recorded round {round_id}; next: labeler status {workspace}")
    elif only_fold is not None:
        click.echo(f"fold {only_fold} done; when every fold is, run: labeler train {workspace} --merge (same options)")


@main.command()
@click.argument("workspace", type=click.Path(file_okay=False))
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Also write the whole ranked queue as CSV.")
@click.option("--round", "round_id", type=int, help="Round to flag [latest].")
@click.option(
    "--filter-by",
    default=QUEUE_DEFAULTS["filter_by"],
    show_default=True,
    type=click.Choice(FILTERS),
)
@click.option(
    "--rank-by",
    default=QUEUE_DEFAULTS["rank_by"],
    show_default=True,
    type=click.Choice(RANKINGS),
    help="evidence: one score from the CNN, the neighbour-smoothed CNN, the neighbour vote, a linear probe on every "
    "fold model's embeddings and one on the frozen ImageNet view (weights: labeler/flag/weights.json, from `bench "
    "rank`); the others: cleanlab's rank of the CNN + vote blend (--vote-weight).",
)
@click.option(
    "-k",
    "--neighbours",
    "k",
    default=QUEUE_DEFAULTS["k"],
    show_default=True,
    type=POSITIVE,
    help="Nearest neighbours per image.",
)
@click.option(
    "--duplicate-radius",
    default=QUEUE_DEFAULTS["duplicate_radius"],
    show_default=True,
    type=click.FloatRange(0),
    help="Near-duplicates: cosine distance below this x the median nearest-neighbour distance.",
)
@click.option(
    "--outlier-share",
    default=QUEUE_DEFAULTS["outlier_share"],
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of most isolated images queued as outliers.",
)
@click.option(
    "--vote-weight",
    default=QUEUE_DEFAULTS["vote_weight"],
    show_default=True,
    type=click.FloatRange(0, 1),
    help="The neighbour vote's share in the blend of the CNN and the vote that suggests labels (0: the CNN alone).",
)
@click.option(
    "--vote-space",
    default=QUEUE_DEFAULTS["vote_space"],
    show_default=True,
    type=click.Choice(VOTE_SPACES),
    help="Neighbour vote: in the space of the fold model that held each image out, or the fold-0 space.",
)
@JSON_OPTION
def flag(workspace, csv_path, round_id, as_json, **options):
    """Flag likely label errors, conflicting near-duplicates and outliers in one ranked review queue."""

    with Workspace.open(workspace) as ws:
        result = flag_round(
            ws, round_id=round_id, csv_path=csv_path, log=lambda line: click.echo(line, err=True), **options
        )
    if as_json:
        flags = result.queue.flags
        _echo_json(
            "flag",
            workspace=str(workspace),
            round=result.round_id,
            images=len(result.evidence.item_ids),
            likely_wrong=sum(f.kind == "label_issue" for f in flags),
            queued=len(flags),
            by_reason=dict(Counter(r["code"] for f in flags for r in f.reasons)),
            report=str(result.report),
            csv=csv_path,
        )
        return
    click.echo(format_summary(result))
    if csv_path:
        click.echo(f"  queue CSV: {csv_path}")


@main.command()
@click.argument("workspace", type=click.Path(file_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--audit", type=click.Path(dir_okay=False), help="Also write every decision (old, new, who, when) here.")
@click.option("--include-removed", is_flag=True, help="Keep removed images, marked in a labeler_removed column.")
@click.option("--force", is_flag=True, help="Replace OUT (and AUDIT) if they exist (never the source).")
@JSON_OPTION
def export(workspace, out, audit, include_removed, force, as_json):
    """Write the corrected labels as CSV in the shape of the input, and optionally an audit CSV."""

    with Workspace.open(workspace, readonly=True) as ws:
        s = export_labels(ws, out, audit=audit, include_removed=include_removed, force=force)
    if as_json:
        _echo_json("export", workspace=str(workspace), out=str(out), audit=audit, **asdict(s))
        return
    click.echo(
        f"wrote {s.rows:,} rows to {out}: {s.changed:,} labels changed, {s.removed:,} images removed"
        + (" (kept, marked)" if include_removed else " (left out)")
        + (
            f", {s.quarantined:,} quarantined at import (kept unchanged, marked in labeler_quarantined)"
            if s.quarantined
            else ""
        )
    )
    if audit:
        click.echo(f"wrote {s.audit_rows:,} decisions to {audit}")
    if s.conflicts:
        click.echo(f"warning: {s.conflicts} items have conflicting reviews; their latest decision was used", err=True)


@main.command()
@click.argument("workspace", type=click.Path(file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; others need --auth.")
@click.option("--port", default=7860, show_default=True, type=click.IntRange(1, 65535))
@click.option("--reviewer", help="A name to suggest in a new browser's name box (each browser asks once and keeps it).")
@click.option(
    "--auth", type=Credentials(), envvar="LABELER_AUTH", help="USER:PASS required to open the app (or LABELER_AUTH)."
)
@click.option("--share", is_flag=True, help="Also open a public Gradio share link (off by default).")
@click.option(
    "--stop-below",
    type=click.FloatRange(0, 1),
    metavar="RATE",
    help="Say on screen when the next reviews are expected to find wrong labels at less than this rate.",
)
def review(workspace, host, port, reviewer, auth, share, stop_below):
    """Open the review app: confirm, relabel, remove or skip each flagged image by keyboard."""
    from labeler.app import ReviewApp
    from labeler.app.blocks import check_launch

    check_launch(host, auth)
    app = ReviewApp(workspace, reviewer=reviewer, stop_below=stop_below)
    app.launch(host=host, port=port, auth=auth, share=share, on_ready=click.echo)


@main.command()
@click.argument("workspace", type=click.Path(file_okay=False))
@click.argument("n", type=POSITIVE)
@click.option(
    "--split",
    type=click.Choice(["train", "valid", "test"]),
    help="Draw from this split only (test: an audit of the test labels independent of the model).",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the random draw.")
def sample(workspace, n, split, seed):
    """Add N random unreviewed images (stratified by class) to the front of the queue: an audit sample."""

    with Workspace.open(workspace) as ws:
        added = draw(ws, n, split=split, seed=seed)
    where = f" {split}" if split else ""
    click.echo(
        f"added {len(added)} random{where} images to the front of the queue (reason: audit); "
        f"review them first, then `labeler status {workspace}` measures the rest of the dataset with them"
    )


@main.command()
@click.argument("workspace", type=click.Path(file_okay=False))
@train_options
@click.option("--resume", is_flag=True, help="Continue an interrupted retrain.")
@click.option("--restart", is_flag=True, help="Discard an interrupted run and start over.")
@GROUP_BY
def retrain(workspace, resume, restart, group_by, preset, **options):
    """Train a new round on the cleaned labels (options default to the previous round's; --folds 0: one model)."""

    Workspace.check(workspace)  # before torch's few seconds of import

    if preset is not None:
        from labeler_training.learner import preset_values

        options = preset_values(preset, options)
    with Workspace.open(workspace) as ws:
        round_id = retrain_round(ws, {**options, "group_by": group_by}, resume=resume, restart=restart, log=click.echo)
    click.echo(f"recorded round {round_id}; compare rounds with: labeler status {workspace}")


@main.command()
@click.argument("workspace", default="data/demo-workspace", type=click.Path(file_okay=False))
@click.option("--data", default="data/demo", show_default=True, type=click.Path(), help="Where to write the images.")
@click.option("--workspace", "old_workspace", type=click.Path(), hidden=True)  # before the positional WORKSPACE
@click.option("--images", default=2000, show_default=True, type=click.IntRange(16), help="Number of images to draw.")
@click.option("--seed", default=0, show_default=True, help="Seed of the generator.")
@click.option(
    "--auto-review",
    type=click.IntRange(min=0),
    help="Headless: a simulated reviewer works the top N of the queue (0: none), then retrain.",
)
@click.option("--port", default=7860, show_default=True, help="Port of the review app (without --auto-review).")
def demo(workspace, data, old_workspace, images, seed, auto_review, port):
    """The whole loop on the embedded demo dataset: generate, import, train, flag, then review, in WORKSPACE
    [data/demo-workspace].

    Without --auto-review the review app opens at the end (http://127.0.0.1:PORT)."""

    workspace = old_workspace or workspace
    run(data, workspace, spec=DemoSpec(n_images=images, seed=seed), auto_review=auto_review, log=click.echo)
    if auto_review is None:
        from labeler.app import ReviewApp

        ReviewApp(workspace).launch(port=port, on_ready=click.echo)


main.add_command(bench)
for command in (models.export_model, models.predict, models.evaluate):
    main.add_command(command)


if __name__ == "__main__":
    main()
