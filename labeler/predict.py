"""Use a trained model: export it, predict unlabelled images, evaluate on another labelled set.

A model is named by a workspace (its latest round's fold-0 model, or ``round``/``fold``) or by
a folder written by `labeler export-model`. Everything runs through the plain-PyTorch
``training.predict.Predictor``, so fastai is not needed here.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from labeler.errors import InputError, WorkspaceError
from labeler.files import atomic_open
from labeler.workspace import DB_NAME, Workspace


def _checkpoint(ws: Workspace, round_id: int | None, fold: int) -> tuple[Path, dict, list[str]]:
    rounds = [r for r in ws.store.rounds() if r.params.get("model_dir")]
    if not rounds:
        raise WorkspaceError(f"{ws.path} has no trained round yet; run `labeler train {ws.path}` first")
    chosen = rounds[-1] if round_id is None else next((r for r in rounds if r.id == round_id), None)
    if chosen is None:
        raise WorkspaceError(
            f"{ws.path} has no trained round {round_id} (rounds: {', '.join(str(r.id) for r in rounds)})"
        )
    name = "final" if chosen.params.get("weights") == "final" else f"fold-{fold}"  # a --folds 0 round has one model
    weights = ws.path / chosen.params["model_dir"] / f"{name}.pth"
    if not weights.exists():
        raise WorkspaceError(f"{weights} is missing; round {chosen.id} has no fold {fold} model")
    return weights, chosen.params["config"], chosen.params["vocab"]


def _spec(config: dict) -> dict:
    from training.export import preprocess_spec

    return preprocess_spec(config["arch"], config["size"], config.get("presize"))


def load_predictor(model: str | Path, *, round_id: int | None = None, fold: int = 0, device: str = "cpu"):
    """A Predictor for an exported model folder, or for a workspace's round (latest by default)."""
    from training.predict import Predictor

    model = Path(model)
    if (model / "model.pth").exists() and (model / "vocab.json").exists():
        return Predictor(model, device=device)
    if not (model / DB_NAME).exists():
        raise InputError(f"{model} is neither a workspace nor a folder written by `labeler export-model`")
    with Workspace.open(model) as ws:
        weights, config, vocab = _checkpoint(ws, round_id, fold)
    return Predictor.from_weights(weights, vocab, _spec(config), device=device)


def export_round_model(ws: Workspace, out_dir: str | Path, *, round_id: int | None = None, fold: int = 0) -> Path:
    """Write a round's fold model as plain PyTorch (model.pth, vocab.json, preprocess.json)."""
    from training.export import export_model

    weights, config, vocab = _checkpoint(ws, round_id, fold)
    spec = _spec(config)
    return export_model(weights, out_dir, arch=spec["arch"], vocab=vocab, size=spec["size"], presize=spec["presize"])


def predict_images(model, images: list[str], *, k: int = 5, out_csv: str | Path | None = None, **options) -> list[dict]:
    """Top-``k`` classes for image files (folders are searched for images); optionally written as CSV."""
    from labeler.ingest.table import IMAGE_EXTENSIONS

    paths: list[str] = []
    for image in images:
        path = Path(image)
        if path.is_dir():
            paths += sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        elif path.is_file():
            paths.append(str(path))
        else:
            raise InputError(f"{image}: no such image or folder")
    if not paths:
        raise InputError("no images to predict (give image files or folders holding .jpg/.png images)")
    predictor = load_predictor(model, **options)
    rows = []
    for path, top in zip(paths, predictor.predict(paths, k=k)):
        row = {"image": path}
        for rank, (label, prob) in enumerate(top, start=1):
            row[f"label_{rank}"], row[f"prob_{rank}"] = label, round(prob, 6)
        rows.append(row)
    if out_csv is not None:
        _write_csv(Path(out_csv), rows)
    return rows


def evaluate_source(
    model, source: str | Path, *, mapping: str | Path | None = None, reports: str | Path | None = None, **options
) -> dict:
    """Top-1/3/5, per-class accuracy and confusion of ``model`` on a labelled CSV or class folders."""
    import numpy as np

    from labeler.ingest import read_source
    from labeler.ingest.validate import Options, validate
    from training.evaluate import confusion_matrix, plot_confusion, summarize

    predictor = load_predictor(model, **options)
    table = read_source(source)
    checked = validate(table, Options(min_per_class=0))
    rows = [r for r in checked.records if r[5] == "ok"]
    names = _read_mapping(mapping) if mapping else {}
    labels = [names.get(r[3], r[3]) for r in rows]
    unknown = sorted(set(labels) - set(predictor.vocab))
    if unknown:
        raise InputError(
            f"labels of {source} not among the model's classes: {', '.join(unknown)}; "
            f"map them with --map FILE (CSV: source_label,model_label; model classes: {', '.join(predictor.vocab)})"
        )
    index = {name: i for i, name in enumerate(predictor.vocab)}
    codes = np.array([index[label] for label in labels])
    probs = predictor.predict_proba([str(Path(table.root) / r[2]) for r in rows])
    metrics = summarize(probs, codes, predictor.vocab, "eval")
    metrics["eval_skipped"] = len(checked.records) - len(rows)
    if reports is not None:
        Path(reports).mkdir(parents=True, exist_ok=True)
        plot_confusion(
            confusion_matrix(probs, codes), predictor.vocab, Path(reports) / "confusion_eval.png", f"{source}"
        )
    return metrics


def _read_mapping(path: str | Path) -> dict[str, str]:
    path = Path(path)
    if path.suffix.lower() == ".json":
        return json.loads(path.read_text())
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = [row for row in csv.reader(fh) if row]
    if rows and rows[0][:2] == ["source_label", "model_label"]:
        rows = rows[1:]
    bad = [i + 1 for i, row in enumerate(rows) if len(row) != 2]
    if bad:
        raise InputError(f"{path}: rows {bad[:5]} do not have two columns (source_label,model_label)")
    return {a.strip(): b.strip() for a, b in rows}


def _write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
