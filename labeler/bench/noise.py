"""`labeler bench noise`: plant label flips (pairs, confusion, clustered, uniform) in a dataset, train and flag
once, and score every detector against the planted flips; ``plant_and_flag`` is shared by `bench loop`.

``kind="real"`` plants nothing: the source's labels are the noisy ones (real human mistakes) and ``truth`` (a CSV
image,true_label) is the answer key, so the same runs, `bench rank` and `bench loop` measure real label noise."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeler import groups as grouping
from labeler.bench.detectors import detector_scores, detector_sets
from labeler.boxes import BOX_COLUMNS
from labeler.errors import InputError, LabelerError
from labeler.flag import flag_round
from labeler.ingest import import_dataset
from labeler.ingest.validate import Options
from labeler.labels import label_table
from labeler.train import train_round
from labeler.workspace import DB_NAME, Workspace

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
KINDS = ("uniform", "pairs", "confusion", "clustered", "real")  # "real": nothing planted, --truth is the key
DETECTORS = ("cleanlab", "self_confidence", "neighbours", "evidence")  # the ones `bench noise` prints (.detectors)
LOOP_ORDERS = ("evidence", "activelab", "cleanlab", "random")  # the review orders `bench loop` compares


def confusion_partners(vocab: list[str], pairs: list[tuple[str, str]] | None = None) -> dict[int, list[int]]:
    """{class: [classes it is confused with]} from ``pairs`` ([("a", "b"), ...]: the CLI parses
    --pairs a:b,c:d) or KNOWN_CONFUSIONS."""

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

    out_dir = Path(out_dir)
    created = not out_dir.exists()
    try:
        if kind == "real" and not truth:
            raise InputError("--kind real measures the source's own labels against --truth CSV (image,true_label)")
        frame, root, vocab, confusion = _bench_base(Path(source), out_dir, truth, log, keep_labels=kind == "real")
        partners = confusion_partners(vocab, pairs) if kind in ("pairs", "clustered") else None
    except LabelerError:
        if created:  # a refused benchmark leaves nothing behind
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    frame, planted, flipped = _write_planted(frame, out_dir, root, vocab, confusion, partners, rate, kind, seed)
    if kind == "real":
        log(f"{int(flipped.sum())} labels differ from the truth ({flipped.mean():.1%} of all images) in {planted}")
    else:
        log(f"planted {int(flipped.sum())} flips ({flipped.mean():.1%} of all images, {kind}) in {planted}")
    ws_path = out_dir / "workspace"
    if not (resume and (ws_path / "labeler.db").exists()):
        _import_planted(ws_path, planted, root)
    with Workspace.open(ws_path) as ws:
        if not ws.store.rounds():
            train_round(ws, config, resume=resume, log=log)
        result = flag_round(ws)
        ids = {item.path: item.id for item in ws.store.items()}
    frame["id"] = [ids.get(f, -1) for f in frame["file"]]
    return Planted(ws_path, Path(root), vocab, frame[frame["id"] >= 0].reset_index(drop=True), result)


def _write_planted(frame, out_dir: Path, root, vocab, confusion, partners, rate: float, kind: str, seed: int):
    """Flip labels in ``frame`` (``plant_flips``); write planted.csv (the noisy source) and flips.csv (the
    answers, for bench rank) to ``out_dir``; return the frame (``true`` and planted ``label``), the CSV, the mask."""

    codes = np.array([vocab.index(label) for label in frame["label"]])
    if kind == "real":  # the labels are the noisy ones already; ``true`` came from --truth
        planted = out_dir / "planted.csv"
        frame[["file", "label", "split", *[c for c in BOX_COLUMNS if c in frame.columns]]].to_csv(planted, index=False)
        frame[["file", "true", "label"]].to_csv(out_dir / "flips.csv", index=False)
        return frame, planted, (frame["true"] != frame["label"]).to_numpy()
    features, groups = _look_alikes(frame, root, vocab) if kind == "clustered" else (None, None)
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
    frame[["file", "true", "label"]].to_csv(out_dir / "flips.csv", index=False)
    return frame, planted, flipped


def _look_alikes(frame, root, vocab) -> tuple:
    """For clustered noise: tiny thumbnails to find look-alikes by, and product groups where the source has
    product folders (DeepFashion's img/<Item>/), not one folder per class."""

    features = thumbnails([str(Path(root) / f) for f in frame["file"]])
    folders = {str(Path(f).parent) for f in frame["file"]}
    groups = None
    if len(folders) > len(vocab):
        groups = grouping.group_ids(frame.assign(id=range(len(frame))), str(root), "folder")
    return features, groups


def _import_planted(ws_path: Path, planted: Path, root) -> None:

    options = Options(verify_images=False, progress=False, min_per_class=0)
    import_dataset(ws_path, planted, force=True, root=root, options=options)


def bench_noise(source, out_dir, config, **options) -> dict:
    """Plant flips, train, flag; score every detector against the planted flips (train/valid images only)."""

    p = plant_and_flag(source, out_dir, config, **options)
    flipped = dict(zip(p.items["id"], p.items["true"] != p.items["label"]))
    split = dict(zip(p.items["id"], p.items["split"]))
    ids = p.flagged.evidence.item_ids
    fit = np.array([split[int(i)] != "test" for i in ids])  # flips are planted in train/valid only
    truth_rows = np.array([bool(flipped[int(i)]) for i in ids])
    ev, queue = p.flagged.evidence, p.flagged.queue
    scores = detector_scores(queue, ev.labels, ev.pred_probs)
    sets = detector_sets(queue, ev.labels, ev.pred_probs)
    metrics = {name: detection_metrics(truth_rows[fit], scores[name][fit], sets[name][fit]) for name in DETECTORS}
    return {
        "planted": int(sum(flipped.values())),
        "images": int(fit.sum()),
        "rate": options["rate"],
        "kind": options["kind"],
        "detectors": metrics,
    }


def _bench_base(source: Path, out_dir: Path, truth, log, *, keep_labels: bool = False):
    """(table with file/label/split, image root, vocab, OOF confusion counts or None) of the base dataset; the
    labels are ``truth``'s where given, or with ``keep_labels`` the source's, ``truth``'s then in a ``true`` column
    (every labelled image must be in it: a real-noise key with holes would count mistakes as right)."""
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    if not (source / DB_NAME).exists():
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
            from labeler_training.evaluate import confusion_matrix

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
        known = [mapping.get(p, label) for p, label in zip(frame["path"], frame["label"])]
        covered = sum(p in mapping for p in frame["path"])
        if keep_labels:
            missing = [p for p in frame["path"] if p not in mapping]
            if missing:
                raise InputError(f"{truth} has no true label for {len(missing)} images, e.g. {missing[0]}")
            unknown = sorted(set(known) - set(vocab))
            if unknown:
                raise InputError(f"{truth} names classes the dataset does not have: {', '.join(unknown[:5])}")
            frame["true"] = known
            log(f"true labels from {truth} ({covered} images); the source's labels are measured against them")
        else:
            frame["label"] = known
            log(f"base labels from {truth} ({covered} images)")
    return frame, root, vocab, confusion
