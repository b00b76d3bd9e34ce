"""User-facing benchmarks: commands that print numbers (`labeler bench ...`).

``bench import`` times an import (and its peak memory, measured in a child process) of any
source, or of a synthetic DeepFashion-shaped annotation set of a chosen size written by
``write_deepfashion`` in the exact on-disk format of the real benchmark.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from labeler.boxes import BOX_COLUMNS
from labeler.errors import LabelerError

# DeepFashion's list_category_cloth.txt, in file order: (name, type); ids are 1-based positions.
_TYPES = {
    1: "Anorak Blazer Blouse Bomber Button-Down Cardigan Flannel Halter Henley Hoodie Jacket Jersey Parka "
    "Peacoat Poncho Sweater Tank Tee Top Turtleneck",
    2: "Capris Chinos Culottes Cutoffs Gauchos Jeans Jeggings Jodhpurs Joggers Leggings Sarong Shorts Skirt "
    "Sweatpants Sweatshorts Trunks",
    3: "Caftan Cape Coat Coverup Dress Jumpsuit Kaftan Kimono Nightdress Onesie Robe Romper Shirtdress Sundress",
}
DEEPFASHION_CATEGORIES = [(name, kind) for kind, names in _TYPES.items() for name in names.split()]  # noqa: SIM905
DEEPFASHION_EMPTY = ("Cape", "Nightdress", "Shirtdress", "Sundress")


def write_deepfashion(
    folder: str | Path,
    entries: list[tuple[str, int, str, tuple[int, int, int, int] | None]],
    *,
    anno: str = "Anno_coarse",
    newline: str = "\n",
) -> Path:
    """Write DeepFashion annotation files for ``entries`` = (image_name, category_id, split, bbox or None).

    Columns are padded exactly as in the real files (the label of list_category_img.txt starts
    at column 71); no images are written.
    """
    folder = Path(folder)
    (folder / anno).mkdir(parents=True, exist_ok=True)
    (folder / "Eval").mkdir(parents=True, exist_ok=True)

    def write(path: Path, header: str, lines: list[str]) -> None:
        path.write_text(newline.join([str(len(lines)), header, *lines]) + newline, encoding="utf-8", newline="")

    write(
        folder / anno / "list_category_cloth.txt",
        "category_name  category_type",
        [f"{name:<23}{kind}" for name, kind in DEEPFASHION_CATEGORIES],
    )
    write(
        folder / anno / "list_category_img.txt", "image_name  category_label", [f"{p:<70}{c}" for p, c, _, _ in entries]
    )
    write(
        folder / "Eval" / "list_eval_partition.txt",
        "image_name  evaluation_status",
        [f"{p:<70}{s}" for p, _, s, _ in entries],
    )
    boxes = [(p, b) for p, _, _, b in entries if b is not None]
    if boxes:
        write(
            folder / anno / "list_bbox.txt",
            "image_name  x_1  y_1  x_2  y_2",
            [f"{p:<70}{b[0]:03d} {b[1]:03d} {b[2]:03d} {b[3]:03d}" for p, b in boxes],
        )
    return folder


def synthetic_deepfashion(folder: str | Path, rows: int = 289_222, classes: int = 46, seed: int = 0) -> Path:
    """A DeepFashion-shaped annotation set: ``rows`` images over ``classes`` non-empty categories, skewed."""
    rng = random.Random(seed)
    usable = [i + 1 for i, (name, _) in enumerate(DEEPFASHION_CATEGORIES) if name not in DEEPFASHION_EMPTY]
    usable = usable[:classes]
    weights = [1.0 / (rank + 1) for rank in range(len(usable))]  # Zipf-like, as in the real data
    cats = rng.choices(usable, weights, k=rows)
    entries = []
    for i, cat in enumerate(cats):
        name = DEEPFASHION_CATEGORIES[cat - 1][0]
        path = f"img/Item_{i // 6:06d},_&_Co's_{name}/img_{i % 6 + 1:08d}.jpg"
        split = "train" if i % 29 < 21 else "val" if i % 29 < 25 else "test"
        entries.append((path, cat, split, (72, 79, 232, 273)))
    return write_deepfashion(folder, entries)


def bench_import(source: str | Path | None, *, rows: int = 289_222, classes: int = 46, verify: bool = False) -> dict:
    """Import ``source`` (or a synthetic DeepFashion set) in a child process; return time and peak memory."""
    with tempfile.TemporaryDirectory(prefix="labeler-bench-") as tmp:
        if source is None:
            started = time.perf_counter()
            source = synthetic_deepfashion(Path(tmp) / "DeepFashion", rows=rows, classes=classes)
            print(f"wrote synthetic DeepFashion annotations ({rows:,} rows) in {time.perf_counter() - started:.1f}s")
        args = ["import", str(Path(tmp) / "ws"), str(source)] + ([] if verify else ["--no-verify-images"])
        result = timed_labeler(args)
    if result["rc"] != 0:
        raise RuntimeError(f"import failed:\n{result['out']}")
    return result


def timed_labeler(args: list[str]) -> dict:
    """Run ``labeler ARGS`` in a child process: {seconds (wall), peak_mib (its peak RSS), rc, out}."""
    code = (
        "import resource, subprocess, sys, time, json; t = time.perf_counter(); "
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(json.dumps({'seconds': time.perf_counter() - t, 'rc': r.returncode, "
        "'out': r.stdout[-3000:] + r.stderr[-3000:], "
        "'peak_mib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))"
    )
    argv = [sys.executable, "-c", code, sys.executable, "-m", "labeler", *map(str, args)]
    done = subprocess.run(argv, capture_output=True, text=True, env=os.environ)
    return json.loads(done.stdout)


def bench_train_speed(
    workspace: str | Path, config, *, lr: float = 1e-3, limit: int | None = None, repeats: int = 2
) -> dict:
    """Images/s of labeler's fastai training path and of a minimal plain-PyTorch loop, alternated."""
    from labeler.labels import label_table
    from labeler.workspace import Workspace
    from training import speed

    with Workspace.open(workspace) as ws:
        frame = label_table(ws)
        frame = frame[frame["split"] != "test"].sample(frac=1.0, random_state=0).reset_index(drop=True)
        if limit:
            frame = frame.iloc[:limit].reset_index(drop=True)
        vocab, root = ws.store.classes(), ws.root
    files = [str(root / f) for f in frame["file"]]
    labels = [vocab.index(label) for label in frame["label"]]
    runs: dict[str, list[float]] = {"fastai": [], "plain": []}
    for repeat in range(repeats):
        runs["plain"].append(speed.plain_torch(files, labels, len(vocab), config, lr))
        runs["fastai"].append(speed.fastai(frame, root, vocab, config, lr))
        print(
            f"repeat {repeat + 1}: plain PyTorch {runs['plain'][-1]:.1f} img/s, fastai {runs['fastai'][-1]:.1f} img/s"
        )
    best = {name: max(values) for name, values in runs.items()}
    return {
        "images": len(frame),
        **{f"{k}_images_per_s": v for k, v in best.items()},
        "ratio": best["fastai"] / best["plain"],
    }


# Human-like confusions used by `bench noise --kind pairs` (names matched case-insensitively).
KNOWN_CONFUSIONS = [
    ("Top", "Blouse"),
    ("Romper", "Dress"),
    ("Skirt", "Dress"),
    ("Tank", "Tee"),
    ("Cardigan", "Sweater"),
    ("Blazer", "Jacket"),
    ("t-shirt", "longsleeve"),
    ("t-shirt", "shirt"),
    ("shirt", "longsleeve"),
    ("pants", "shorts"),
    ("dress", "skirt"),
    ("outwear", "longsleeve"),
    ("Jeans", "Jeggings"),
    ("Shorts", "Skirt"),
]
DETECTORS = ("cleanlab", "self_confidence", "neighbours", "merged")
LOOP_ORDERS = ("merged", "activelab", "cleanlab", "random")  # the review orders `bench loop` compares


def confusion_partners(vocab: list[str], pairs: list[tuple[str, str]] | None = None) -> dict[int, list[int]]:
    """{class: [classes it is confused with]} from ``pairs`` ([("a", "b"), ...]: the CLI parses
    --pairs a:b,c:d) or KNOWN_CONFUSIONS."""
    from labeler.errors import InputError

    lower = {name.lower(): i for i, name in enumerate(vocab)}
    given = pairs or KNOWN_CONFUSIONS
    partners: dict[int, list[int]] = {}
    for a, b in given:
        if a.strip().lower() in lower and b.strip().lower() in lower:
            i, j = lower[a.strip().lower()], lower[b.strip().lower()]
            partners.setdefault(i, []).append(j)
            partners.setdefault(j, []).append(i)
        elif pairs:
            raise InputError(f"--pairs {a}:{b}: both must be classes of the dataset ({', '.join(vocab)})")
    if not partners:
        raise InputError(f"no known confusable pairs among {', '.join(vocab)}; pass --pairs a:b,c:d or --kind uniform")
    return partners


def plant_flips(
    labels,
    splits,
    k: int,
    *,
    rate: float,
    kind: str,
    seed: int = 0,
    partners=None,
    confusion=None,
    features=None,
    groups=None,
):
    """New label codes with ``rate`` of the train/valid items flipped; returns (labels, flipped mask).

    uniform: any other class; pairs: a partner class (only classes that have one are touched, at
    ``rate`` each); confusion: sampled from the off-diagonal row of ``confusion`` (K x K counts);
    clustered: like pairs, but flips come in clusters of look-alike images (``features``, one row per
    item) and whole ``groups`` at once, as a person labelling a batch of similar photos would err.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    labels = np.asarray(labels).copy()
    eligible = np.asarray(splits) != "test"
    if kind in ("pairs", "clustered"):
        eligible &= np.isin(labels, list(partners))
    if kind == "clustered":
        return _plant_clusters(labels, eligible, rate, rng, partners, features, groups)
    flipped = np.zeros(len(labels), dtype=bool)
    for c in range(k):
        rows = np.flatnonzero(eligible & (labels == c))
        flipped[rng.choice(rows, size=int(round(rate * len(rows))), replace=False)] = True
    new = labels.copy()
    for i in np.flatnonzero(flipped):
        c = labels[i]
        if kind == "uniform":
            new[i] = (c + rng.integers(1, k)) % k
        elif kind == "pairs":
            new[i] = rng.choice(partners[c])
        else:
            weights = confusion[c].astype(float).copy()
            weights[c] = 0
            new[i] = rng.choice(k, p=weights / weights.sum()) if weights.sum() else (c + rng.integers(1, k)) % k
    return new, new != labels


CLUSTER_SIZE = 5  # a seed image and its 4 nearest look-alikes of the same class


def _plant_clusters(labels, eligible, rate, rng, partners, features, groups):
    import numpy as np

    new = labels.copy()
    flipped = np.zeros(len(labels), dtype=bool)
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    for c in partners:
        rows = np.flatnonzero(eligible & (labels == c))
        target = int(round(rate * len(rows)))
        x = features[rows] if features is not None else None
        while flipped[rows].sum() < target:
            free = np.flatnonzero(~flipped[rows])
            start = free[rng.integers(len(free))]
            near = free[np.argsort(((x[free] - x[start]) ** 2).sum(axis=1))] if x is not None else free
            partner = rng.choice(partners[c])
            for r in near[:CLUSTER_SIZE]:
                for member in np.flatnonzero(groups == groups[rows[r]]):  # the whole group goes with it
                    if flipped[rows].sum() >= target:
                        break
                    if eligible[member] and labels[member] == c and not flipped[member]:
                        new[member], flipped[member] = partner, True
    return new, flipped


def thumbnails(files, size: int = 12):
    """Tiny standardised RGB thumbnails (N, size*size*3): which images look alike, before any model."""
    import numpy as np
    from PIL import Image

    out = np.zeros((len(files), size * size * 3), dtype=np.float32)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as img:
                out[i] = np.asarray(img.convert("RGB").resize((size, size)), dtype=np.float32).ravel() / 255
        except OSError:
            pass
    return (out - out.mean(axis=0)) / (out.std(axis=0) + 1e-6)


def detection_metrics(truth, scores, flagged) -> dict:
    """Flagged-set precision/recall/F1 and ranking AP and precision@k against planted flips."""
    import numpy as np
    from sklearn.metrics import average_precision_score

    truth, flagged = np.asarray(truth, bool), np.asarray(flagged, bool)
    hits = int((truth & flagged).sum())
    precision = hits / max(int(flagged.sum()), 1)
    recall = hits / max(int(truth.sum()), 1)
    order = np.argsort(-np.asarray(scores), kind="stable")
    n_true = int(truth.sum())
    return {
        "flagged": int(flagged.sum()),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(precision + recall, 1e-12),
        "ap": float(average_precision_score(truth, scores)) if n_true else float("nan"),
        "p_at_n": float(truth[order[:n_true]].mean()) if n_true else float("nan"),
        "p_at_100": float(truth[order[:100]].mean()),
    }


@dataclass
class Planted:
    """A benchmark workspace with planted flips, trained and flagged."""

    workspace: Path
    root: Path
    vocab: list[str]
    items: object  # DataFrame: id, file, split, true (label before planting), label (planted)
    flagged: object  # labeler.flag.FlagResult


def plant_and_flag(
    source,
    out_dir,
    config,
    *,
    rate: float,
    kind: str,
    pairs=None,
    truth=None,
    seed: int = 0,
    resume: bool = False,
    log=print,
) -> Planted:
    """Plant flips in a copy of ``source`` (workspace or dataset) in ``out_dir``, train (unless done), flag."""
    import numpy as np

    from labeler.flag import flag_round
    from labeler.train import train_round
    from labeler.workspace import Workspace

    out_dir = Path(out_dir)
    created = not out_dir.exists()
    try:
        frame, root, vocab, confusion = _bench_base(Path(source), out_dir, truth, log)
        partners = confusion_partners(vocab, pairs) if kind in ("pairs", "clustered") else None
    except LabelerError:
        if created:  # a refused benchmark leaves nothing behind
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    codes = np.array([vocab.index(label) for label in frame["label"]])
    features = groups = None
    if kind == "clustered":
        from labeler import groups as grouping

        features = thumbnails([str(Path(root) / f) for f in frame["file"]])
        folders = {str(Path(f).parent) for f in frame["file"]}
        if len(folders) > len(vocab):  # product folders (DeepFashion's img/<Item>/), not one folder per class
            groups = grouping.group_ids(frame.assign(id=range(len(frame))), str(root), "folder")
    new, flipped = plant_flips(
        codes,
        frame["split"],
        len(vocab),
        rate=rate,
        kind=kind,
        seed=seed,
        partners=partners,
        confusion=confusion,
        features=features,
        groups=groups,
    )
    planted = out_dir / "planted.csv"
    frame = frame.assign(true=frame["label"], label=[vocab[c] for c in new])
    frame[["file", "label", "split", *[c for c in BOX_COLUMNS if c in frame.columns]]].to_csv(planted, index=False)
    frame[["file", "true", "label"]].to_csv(out_dir / "flips.csv", index=False)  # the answers, beside (for bench rank)
    log(f"planted {int(flipped.sum())} flips ({flipped.mean():.1%} of all images, {kind}) in {planted}")
    ws_path = out_dir / "workspace"
    if not (resume and (ws_path / "labeler.db").exists()):
        from labeler.ingest import import_dataset
        from labeler.ingest.validate import Options

        options = Options(verify_images=False, progress=False, min_per_class=0)
        import_dataset(ws_path, planted, force=True, root=root, options=options)
    with Workspace.open(ws_path) as ws:
        if not ws.store.rounds():
            train_round(ws, config, resume=resume, log=log)
        result = flag_round(ws)
        ids = {item.path: item.id for item in ws.store.items()}
    frame["id"] = [ids.get(f, -1) for f in frame["file"]]
    return Planted(ws_path, Path(root), vocab, frame[frame["id"] >= 0].reset_index(drop=True), result)


def bench_noise(source, out_dir, config, **options) -> dict:
    """Plant flips, train, flag; score every detector against the planted flips (train/valid images only)."""
    import numpy as np

    p = plant_and_flag(source, out_dir, config, **options)
    flipped = dict(zip(p.items["id"], p.items["true"] != p.items["label"]))
    split = dict(zip(p.items["id"], p.items["split"]))
    ids = p.flagged.evidence.item_ids
    fit = np.array([split[int(i)] != "test" for i in ids])  # flips are planted in train/valid only
    truth_rows = np.array([bool(flipped[int(i)]) for i in ids])
    queue = p.flagged.queue
    metrics = {
        name: detection_metrics(truth_rows[fit], queue.scores[name][fit], queue.flagged[name][fit])
        for name in DETECTORS
    }
    return {
        "planted": int(sum(flipped.values())),
        "images": int(fit.sum()),
        "rate": options["rate"],
        "kind": options["kind"],
        "detectors": metrics,
    }


def _bench_base(source: Path, out_dir: Path, truth, log):
    """(table with file/label/split, image root, vocab, OOF confusion counts or None) of the base dataset."""
    import pandas as pd

    from labeler.labels import label_table
    from labeler.workspace import DB_NAME, Workspace

    out_dir.mkdir(parents=True, exist_ok=True)
    if not (source / DB_NAME).exists():
        from labeler.ingest import import_dataset
        from labeler.ingest.validate import Options

        base = out_dir / "base"
        if not (base / DB_NAME).exists():
            import_dataset(base, source, force=True, options=Options(min_per_class=0))
        source = base
    with Workspace.open(source) as ws:
        frame, root, vocab = label_table(ws), ws.root, ws.store.classes()
        extras = {i.id: i.extra for i in ws.store.items()}
        confusion = None
        rounds = [r for r in ws.store.rounds() if "pred_probs" in ws.store.arrays(r.id)]
        if rounds:
            from training.evaluate import confusion_matrix

            r = rounds[-1].id
            confusion = confusion_matrix(ws.load_array(r, "pred_probs"), ws.load_array(r, "labels"))
    boxed = [c for c in BOX_COLUMNS if any(c in (extras.get(i) or {}) for i in frame["id"])]
    for c in boxed:  # garment boxes travel with the planted labels (so `--crop bbox` can be measured)
        frame[c] = [(extras.get(i) or {}).get(c, "") for i in frame["id"]]
    frame = frame[["file", "path", "label", "split", *boxed]].reset_index(drop=True)
    if truth:
        clean = pd.read_csv(truth, dtype=str, keep_default_na=False)
        image_col, label_col = clean.columns[0], next(c for c in clean.columns if "label" in c)
        mapping = dict(zip(clean[image_col], clean[label_col]))
        frame["label"] = [mapping.get(p, label) for p, label in zip(frame["path"], frame["label"])]
        log(f"base labels from {truth} ({sum(p in mapping for p in frame['path'])} images)")
    return frame, root, vocab, confusion
