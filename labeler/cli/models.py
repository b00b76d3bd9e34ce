"""The model verbs: `labeler export-model`, `predict`, `evaluate` (a trained round's model used on other images)."""

from __future__ import annotations

import click

from labeler.cli.options import POSITIVE
from labeler.predict import evaluate_source, export_round_model, predict_images
from labeler.workspace import Workspace


@click.command("export-model")
@click.argument("workspace", type=click.Path(file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--round", "round_id", type=int, help="Round to export [latest].")
@click.option("--fold", default=0, show_default=True, type=click.IntRange(0), help="Which fold model of the round.")
def export_model(workspace, out_dir, round_id, fold):
    """Write a trained model as plain PyTorch: model.pth + vocab.json + preprocess.json."""

    with Workspace.open(workspace, readonly=True) as ws:
        out = export_round_model(ws, out_dir, round_id=round_id, fold=fold)
    click.echo(f"exported to {out}; load it with labeler_training.predict.Predictor({str(out)!r})")


@click.command()
@click.argument("model", type=click.Path(exists=True, file_okay=False))
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--csv", "out_csv", type=click.Path(dir_okay=False), help="Also write the predictions to this CSV.")
@click.option("--top", "k", default=5, show_default=True, type=POSITIVE, help="Classes to show per image.")
@click.option("--round", "round_id", type=int, help="Workspace round [latest].")
@click.option("--device", default="auto", show_default=True, help="auto|cpu|cuda|cuda:N|mps, as for train.")
def predict(model, images, out_csv, k, round_id, device):
    """Top-k classes of IMAGES (files or folders) from a WORKSPACE's model or an exported MODEL folder."""

    rows = predict_images(model, list(images), k=k, out_csv=out_csv, round_id=round_id, device=device)
    for row in rows:
        if row["error"]:
            click.echo(f"{row['image']}: skipped, {row['error']}", err=True)
            continue
        top = ", ".join(f"{row[f'label_{i}']} {row[f'prob_{i}']:.2f}" for i in range(1, k + 1) if row[f"label_{i}"])
        click.echo(f"{row['image']}: {top}")
    if out_csv:
        click.echo(f"wrote {len(rows)} rows to {out_csv}")


@click.command()
@click.argument("model", type=click.Path(exists=True, file_okay=False))
@click.argument("source", type=click.Path(exists=True))
@click.option(
    "--map", "mapping", type=click.Path(exists=True, dir_okay=False), help="CSV source_label,model_label (or JSON)."
)
@click.option("--reports", type=click.Path(file_okay=False), help="Write the confusion matrix PNG here.")
@click.option("--round", "round_id", type=int, help="Workspace round [latest].")
@click.option("--device", default="auto", show_default=True, help="auto|cpu|cuda|cuda:N|mps, as for train.")
def evaluate(model, source, mapping, reports, round_id, device):
    """Top-1/3/5 and per-class accuracy of a model on another labelled set (CSV or class folders)."""

    m = evaluate_source(model, source, mapping=mapping, reports=reports, round_id=round_id, device=device)
    click.echo(
        f"{m['eval_n']} images ({m['eval_skipped']} unreadable skipped): "
        f"top-1 {m['eval_top1']:.3f}, top-3 {m['eval_top3']:.3f}, top-5 {m['eval_top5']:.3f}"
    )
    for name, acc in m["eval_per_class"].items():
        if acc is not None:
            click.echo(f"  {name}: {acc:.3f}")
    for given, predicted, n in m["eval_most_confused"][:5]:
        click.echo(f"  most confused: {given} -> {predicted} ({n})")
