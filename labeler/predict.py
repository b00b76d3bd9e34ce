"""Use a trained model: export it, predict unlabelled images, evaluate on another labelled set.

A model is named by a workspace (its latest round's fold-0 model, or ``round``/``fold``) or by
a folder written by `labeler export-model`. Everything runs through the plain-PyTorch
``labeler_training.predict.Predictor``, so fastai is not needed here.
"""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

from labeler.errors import InputError, WorkspaceError
from labeler.files import write_csv
from labeler.ingest import read_source
from labeler.ingest.table import IMAGE_EXTENSIONS
from labeler.ingest.validate import Options, check_image, validate
from labeler.labels import label_codes
from labeler.workspace import DB_NAME, Workspace
from labeler_training.evaluate import confusion_matrix, plot_confusion, summarize


def _checkpoint(ws: Workspace, round_id: int | None, fold: int) -> tuple[Path, dict, list[str]]:
    chosen = ws.pick_round(round_id, trained=True)
    name = "final" if chosen.params.get("weights") == "final" else f"fold-{fold}"  # a --folds 0 round has one model
    weights = ws.path / chosen.params["model_dir"] / f"{name}.pth"
    if not weights.exists():
        raise WorkspaceError(f"{weights} is missing; round {chosen.id} has no fold {fold} model")
    return weights, chosen.params["config"], chosen.params["vocab"]


def _spec(config: dict) -> dict:
    from labeler_training.export import preprocess_spec

    return preprocess_spec(config["arch"], config["size"], config.get("presize"))


def load_predictor(model: str | Path, *, round_id: int | None = None, fold: int = 0, device: str = "cpu"):
    """A Predictor for an exported model folder, or for a workspace's round (latest by default).

    A damaged folder (missing or broken JSON, a truncated or foreign model.pth, a vocabulary that does not
    match the weights) is refused with what is wrong and the fix; weights load with ``weights_only=True``."""
    from labeler_training.predict import Predictor

    model = Path(model)
    if (model / "model.pth").exists() or (model / "vocab.json").exists():
        vocab = _read_json(model / "vocab.json", list)
        preprocess = _read_json(model / "preprocess.json", dict)
        missing = {"arch", "size", "presize", "mean", "std"} - set(preprocess)
        if missing or not vocab or not all(isinstance(v, str) for v in vocab):
            what = f"lacks {', '.join(sorted(missing))}" if missing else "has no class list"
            raise InputError(f"{model}: {'preprocess.json' if missing else 'vocab.json'} {what}; {_REEXPORT}")
        weights = model / "model.pth"
        return _load(lambda: Predictor.from_weights(weights, vocab, preprocess, device=device), weights, len(vocab))
    if not (model / DB_NAME).exists():
        raise InputError(f"{model} is neither a workspace nor a folder written by `labeler export-model`")
    with Workspace.open(model, readonly=True) as ws:
        weights, config, vocab = _checkpoint(ws, round_id, fold)
    return _load(lambda: Predictor.from_weights(weights, vocab, _spec(config), device=device), weights, len(vocab))


_REEXPORT = "write the folder again with `labeler export-model WORKSPACE OUT`"
MAP_FORMAT = 'fix the file: a JSON object {"source label": "model label", ...} or a CSV source_label,model_label'


def _read_json(path: Path, kind: type, fix: str = _REEXPORT):
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path} is missing; {fix}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc}); {fix}") from None
    if not isinstance(value, kind):
        raise InputError(f"{path} should hold a JSON {kind.__name__}, not {type(value).__name__}; {fix}")
    return value


def _load(make, where: Path, n_classes: int):
    """Build the predictor; a weights file that is not this model's state_dict becomes a clear error."""

    try:
        return make()
    except FileNotFoundError as exc:
        raise InputError(f"{exc.filename} is missing; {_REEXPORT}") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, ValueError, TypeError, AttributeError) as exc:
        from labeler_training.errors import load_problem

        raise InputError(
            f"{where}: the model weights cannot be loaded ({load_problem(exc)}). The file is truncated, not a PyTorch "
            f"state_dict (only plain tensors are loaded, never code), or made for other classes than the "
            f"{n_classes} of vocab.json; {_REEXPORT}"
        ) from None


def export_round_model(ws: Workspace, out_dir: str | Path, *, round_id: int | None = None, fold: int = 0) -> Path:
    """Write a round's fold model as plain PyTorch (model.pth, vocab.json, preprocess.json)."""
    from labeler_training.export import export_model

    weights, config, vocab = _checkpoint(ws, round_id, fold)
    spec = _spec(config)
    return export_model(weights, out_dir, arch=spec["arch"], vocab=vocab, size=spec["size"], presize=spec["presize"])


def predict_images(model, images: list[str], *, k: int = 5, out_csv: str | Path | None = None, **options) -> list[dict]:
    """Top-``k`` classes for image files (folders are searched for images); optionally written as CSV."""

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
    problems = {path: check_image(path) for path in paths}
    good = [path for path in paths if not problems[path]]
    tops = dict(zip(good, predictor.predict(good, k=k))) if good else {}
    rows = []
    for path in paths:  # an unusable image is reported (in the CSV too) and the rest go on
        row, top = {"image": path}, tops.get(path, [])
        for rank in range(1, k + 1):
            label, prob = top[rank - 1] if rank <= len(top) else ("", "")
            row[f"label_{rank}"], row[f"prob_{rank}"] = label, round(prob, 6) if prob != "" else ""
        row["error"] = problems[path]
        rows.append(row)
    if out_csv is not None:
        _write_records(Path(out_csv), rows)
    return rows


def evaluate_source(
    model, source: str | Path, *, mapping: str | Path | None = None, reports: str | Path | None = None, **options
) -> dict:
    """Top-1/3/5, per-class accuracy and confusion of ``model`` on a labelled CSV or class folders."""

    predictor = load_predictor(model, **options)
    table = read_source(source)
    checked = validate(table, Options(min_per_class=0, single_class=True))
    rows = [r for r in checked.records if r.status == "ok"]
    names = _read_mapping(mapping) if mapping else {}
    labels = [names.get(r.label, r.label) for r in rows]
    unknown = sorted(set(labels) - set(predictor.vocab))
    if unknown:
        raise InputError(
            f"labels of {source} not among the model's classes: {', '.join(unknown)}; "
            f"map them with --map FILE (CSV: source_label,model_label; model classes: {', '.join(predictor.vocab)})"
        )

    codes = label_codes(labels, predictor.vocab)
    probs = predictor.predict_proba([str(Path(table.root) / r.file) for r in rows])
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
        mapping = _read_json(path, dict, fix=MAP_FORMAT)
        return {str(a): str(b) for a, b in mapping.items()}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = [row for row in csv.reader(fh) if row]
    if rows and rows[0][:2] == ["source_label", "model_label"]:
        rows = rows[1:]
    bad = [i + 1 for i, row in enumerate(rows) if len(row) != 2]
    if bad:
        raise InputError(f"{path}: rows {bad[:5]} do not have two columns; {MAP_FORMAT}")
    return {a.strip(): b.strip() for a, b in rows}


def _write_records(path: Path, rows: list[dict]) -> None:
    write_csv(path, list(rows[0]), [list(row.values()) for row in rows])
