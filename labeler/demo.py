"""The embedded demo dataset: seeded, PIL-drawn clothing with known label flips.

``generate(out)`` writes ``out/images/*.jpg``, ``out/labels.csv`` (image,label,split: the
noisy labels a user would have) and ``out/truth.csv`` (image,true_label,flipped,duplicate_of).
Flips follow human-like confusions (t-shirt/longsleeve, pants/shorts, dress/skirt) and only
touch train/valid images; the test split keeps true labels so accuracy gains are measurable.
A handful of near-duplicate pairs (slightly shifted, re-exposed copies) are added, some
carrying the other label of their confusion pair, and a few test images that are copies of train
images (resized, re-exposed, re-compressed) (``test_copies``: split leakage, which `train` reports; truth.csv's duplicate_of
names the original). They are drawn last, with their own random stream, so the other images,
splits and flips do not depend on them.
"""

from __future__ import annotations

import csv
import json
import math
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labeler.files import write_csv
from labeler.flag import flag_round, format_summary
from labeler.ingest import import_dataset
from labeler.ingest.validate import Options
from labeler.review import ReviewSession
from labeler.train import retrain_round, train_round
from labeler.workspace import Workspace

CLASSES = ("dress", "hat", "longsleeve", "pants", "shoes", "shorts", "skirt", "t-shirt")
CONFUSIONS = {
    "t-shirt": "longsleeve",
    "longsleeve": "t-shirt",
    "pants": "shorts",
    "shorts": "pants",
    "dress": "skirt",
    "skirt": "dress",
}

# Garment outlines in unit coordinates (x right, y down), drawn centred on the canvas.
_SHAPES = {
    "t-shirt": [
        (0.3, 0.2),
        (0.4, 0.15),
        (0.6, 0.15),
        (0.7, 0.2),
        (0.86, 0.36),
        (0.76, 0.44),
        (0.68, 0.36),
        (0.68, 0.85),
        (0.32, 0.85),
        (0.32, 0.36),
        (0.24, 0.44),
        (0.14, 0.36),
    ],
    "longsleeve": [
        (0.3, 0.2),
        (0.4, 0.15),
        (0.6, 0.15),
        (0.7, 0.2),
        (0.9, 0.76),
        (0.81, 0.79),
        (0.68, 0.42),
        (0.68, 0.85),
        (0.32, 0.85),
        (0.32, 0.42),
        (0.19, 0.79),
        (0.1, 0.76),
    ],
    "pants": [(0.3, 0.1), (0.7, 0.1), (0.76, 0.9), (0.57, 0.9), (0.5, 0.36), (0.43, 0.9), (0.24, 0.9)],
    "shorts": [(0.28, 0.3), (0.72, 0.3), (0.78, 0.66), (0.56, 0.68), (0.5, 0.48), (0.44, 0.68), (0.22, 0.66)],
    "dress": [
        (0.4, 0.1),
        (0.45, 0.1),
        (0.5, 0.16),
        (0.55, 0.1),
        (0.6, 0.1),
        (0.62, 0.42),
        (0.82, 0.9),
        (0.18, 0.9),
        (0.38, 0.42),
    ],
    "skirt": [(0.36, 0.32), (0.64, 0.32), (0.82, 0.76), (0.18, 0.76)],
    "hat": [
        (0.3, 0.58),
        (0.32, 0.38),
        (0.4, 0.3),
        (0.6, 0.3),
        (0.68, 0.38),
        (0.7, 0.58),
        (0.88, 0.62),
        (0.85, 0.68),
        (0.15, 0.68),
        (0.12, 0.62),
    ],
    "shoes": [(0.14, 0.46), (0.38, 0.44), (0.46, 0.55), (0.78, 0.6), (0.88, 0.7), (0.86, 0.74), (0.14, 0.74)],
}


@dataclass(frozen=True)
class DemoSpec:
    n_images: int = 2000
    size: int = 128
    noise: float = 0.12  # share of train/valid images in confusion-pair classes whose label is flipped
    duplicates: int = 16  # near-duplicate pairs
    test_copies: int = 4  # test images that are near-copies of train images (leakage)
    seed: int = 0
    splits: tuple[float, float, float] = (0.7, 0.2, 0.1)


def generate(out: str | Path, spec: DemoSpec = DemoSpec(), *, progress: bool = True) -> Path:
    """Write the demo dataset to ``out`` (reused when already generated with the same spec); return labels.csv."""
    from tqdm import tqdm

    out = Path(out)
    manifest = out / "manifest.json"
    wanted = json.dumps(spec.__dict__, sort_keys=True)
    if manifest.exists() and manifest.read_text() == wanted and (out / "labels.csv").exists():
        return out / "labels.csv"
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(spec.seed)
    rows = []
    for i in tqdm(range(spec.n_images), desc="drawing demo images", unit="img", disable=not progress):
        label = CLASSES[i % len(CLASSES)]
        name = f"images/{i:05d}.jpg"
        params = _draw_params(rng, label)
        _draw(params, spec.size, rng.getrandbits(32)).save(out / name, quality=90)
        rows.append({"image": name, "true_label": label, "split": _split(rng, spec.splits), "params": params})
    _add_duplicates(out, rows, rng, spec)
    _flip_labels(rows, rng, spec.noise)
    _add_test_copies(out, rows, random.Random(spec.seed + 1), spec)
    write_csv(out / "labels.csv", ["image", "label", "split"], [[r["image"], r["label"], r["split"]] for r in rows])
    write_csv(
        out / "truth.csv",
        ["image", "true_label", "flipped", "duplicate_of"],
        [[r["image"], r["true_label"], int(r["label"] != r["true_label"]), r.get("duplicate_of", "")] for r in rows],
    )
    manifest.write_text(wanted)
    return out / "labels.csv"


def _split(rng: random.Random, fractions) -> str:
    x = rng.random()
    return "train" if x < fractions[0] else "valid" if x < fractions[0] + fractions[1] else "test"


def _draw_params(rng: random.Random, label: str) -> dict:
    return {
        "label": label,
        "scale": rng.uniform(0.6, 1.0),
        "angle": rng.uniform(-20, 20),
        "dx": rng.uniform(-0.1, 0.1),
        "dy": rng.uniform(-0.1, 0.1),
        "background": [rng.randint(120, 255) for _ in range(3)],
        "colour": [rng.randint(0, 200) for _ in range(3)],
        "colour2": [rng.randint(0, 255) for _ in range(3)],
        "pattern": rng.choice(["solid", "solid", "stripes", "dots", "checks"]),
        "period": rng.randint(4, 12),
        "noise": rng.uniform(2, 14),
        "brightness": 1.0,
    }


def _draw(p: dict, size: int, seed: int):
    """Render one garment image from its parameters."""
    from PIL import Image, ImageDraw

    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).polygon(_outline(p, size), fill=255)
    fill = Image.new("RGB", (size, size), tuple(p["colour"]))
    if p["pattern"] != "solid":
        draw, k = ImageDraw.Draw(fill), p["period"]
        for a in range(0, size, k):
            for b in range(0, size, k) if p["pattern"] != "stripes" else [0]:
                if p["pattern"] == "stripes":
                    draw.rectangle([a, 0, a + k // 2, size], fill=tuple(p["colour2"]))
                elif p["pattern"] == "dots":
                    draw.ellipse([a, b, a + k // 2, b + k // 2], fill=tuple(p["colour2"]))
                elif (a // k + b // k) % 2:
                    draw.rectangle([a, b, a + k - 1, b + k - 1], fill=tuple(p["colour2"]))
    image = Image.new("RGB", (size, size), tuple(p["background"]))
    image.paste(fill, (0, 0), mask)
    pixels = np.asarray(image, dtype=np.float32) * p["brightness"]
    pixels += np.random.default_rng(seed).normal(0, p["noise"], pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _outline(p: dict, size: int) -> list[tuple[float, float]]:
    cos, sin = math.cos(math.radians(p["angle"])), math.sin(math.radians(p["angle"]))
    points = []
    for x, y in _SHAPES[p["label"]]:
        x, y = (x - 0.5) * p["scale"], (y - 0.5) * p["scale"]
        x, y = x * cos - y * sin + 0.5 + p["dx"], x * sin + y * cos + 0.5 + p["dy"]
        points.append((x * size, y * size))
    return points


def _add_duplicates(out: Path, rows: list[dict], rng: random.Random, spec: DemoSpec) -> None:
    """Append near-duplicates of random train/valid images; every other one later gets a conflicting label."""
    candidates = [r for r in rows if r["split"] != "test"]
    for k, original in enumerate(rng.sample(candidates, spec.duplicates)):
        params = dict(original["params"], dx=original["params"]["dx"] + 0.01, brightness=rng.uniform(0.92, 1.08))
        name = f"images/{len(rows):05d}.jpg"
        _draw(params, spec.size, rng.getrandbits(32)).save(out / name, quality=85)
        rows.append(
            {
                "image": name,
                "true_label": original["true_label"],
                "split": original["split"],
                "params": params,
                "duplicate_of": original["image"],
                "conflict": k % 2 == 0,
            }
        )


def _add_test_copies(out: Path, rows: list[dict], rng: random.Random, spec: DemoSpec) -> None:
    """Append test images that are copies of train images (resized, brighter, re-compressed: the same photo
    filed twice), with true labels like the rest of the test split."""
    from PIL import Image, ImageEnhance

    candidates = [r for r in rows if r["split"] == "train" and "duplicate_of" not in r]
    for original in rng.sample(candidates, spec.test_copies):
        name = f"images/{len(rows):05d}.jpg"
        with Image.open(out / original["image"]) as img:
            side = int(spec.size * rng.uniform(0.85, 0.95))
            copy = ImageEnhance.Brightness(img.convert("RGB").resize((side, side))).enhance(rng.uniform(0.95, 1.05))
        copy.save(out / name, quality=80)
        rows.append(
            {
                "image": name,
                "true_label": original["true_label"],
                "label": original["true_label"],
                "split": "test",
                "params": original["params"],
                "duplicate_of": original["image"],
            }
        )


def _flip_labels(rows: list[dict], rng: random.Random, noise: float) -> None:
    """Flip a ``noise`` share of train/valid labels along CONFUSIONS; conflicting duplicates always flip."""
    for r in rows:
        r["label"] = r["true_label"]
        if r["true_label"] not in CONFUSIONS or r["split"] == "test":
            continue
        wanted = r["conflict"] if "duplicate_of" in r else rng.random() < noise
        if wanted:
            r["label"] = CONFUSIONS[r["true_label"]]


def read_truth(data_dir: str | Path) -> dict[str, str]:
    """{image path: true label} from the demo's truth.csv."""
    with open(Path(data_dir) / "truth.csv", newline="", encoding="utf-8") as fh:
        return {row["image"]: row["true_label"] for row in csv.DictReader(fh)}


def simulate_review(ws, truth: dict[str, str], n: int, *, reviewer: str = "oracle") -> dict:
    """A reviewer who knows the truth works the top ``n`` of the queue through the normal review path."""

    session = ReviewSession(ws, reviewer)
    fixed = confirmed = 0
    for _ in range(n):
        item = session.next_item()
        if item is None:
            break
        true = truth.get(item.path, item.given)
        if true != item.current:
            session.decide(item.item_id, "relabel", true)
            fixed += 1
        else:
            session.decide(item.item_id, "keep")
            confirmed += 1
    return {"reviewed": fixed + confirmed, "relabelled": fixed, "confirmed": confirmed}


def queue_precision(ws, truth: dict[str, str]) -> dict:
    """How many queued train/valid images carry a wrong label, and how many wrong labels the queue holds."""
    round_id = ws.store.flagged_round()
    items = {i.id: i for i in ws.store.items()}
    queued = [items[f.item_id] for f in ws.store.flags(round_id) if items[f.item_id].split != "test"]
    wrong = [i for i in items.values() if i.split != "test" and truth.get(i.path, i.label) != i.label]
    hits = sum(truth.get(i.path, i.label) != i.label for i in queued)
    return {
        "queued": len(queued),
        "wrong_in_queue": hits,
        "wrong_total": len(wrong),
        "precision": hits / max(len(queued), 1),
        "recall": hits / max(len(wrong), 1),
    }


def run(
    data_dir: str | Path,
    workspace: str | Path,
    *,
    spec: DemoSpec = DemoSpec(),
    auto_review: int | None = None,
    config=None,
    log=print,
) -> dict:
    """The `labeler demo` flow: generate, import, train, flag, and (``auto_review``) review + retrain headless.

    Returns the timings of each stage and the numbers printed. An existing demo workspace is
    re-imported (decisions kept) and its latest round reused."""
    from labeler_training.learner import make_config

    times: dict[str, float] = {}
    started = time.perf_counter()
    with _timed(times, "generate"):
        labels = generate(data_dir, spec)
    with _timed(times, "import"):
        imported = import_dataset(workspace, labels, force=True, options=Options(progress=False))
    log(f"demo dataset: {imported.items:,} images, {len(imported.classes)} classes, in {labels.parent}")
    truth = read_truth(data_dir)
    out: dict = {"times": times}
    with Workspace.open(workspace) as ws:
        out["queue"] = _train_and_flag(ws, config or make_config("demo"), truth, times, log)
        if auto_review is not None:
            out.update(_review_and_retrain(ws, truth, auto_review, times, log))
    times["total"] = time.perf_counter() - started
    log("stage times: " + ", ".join(f"{k} {v:.0f}s" for k, v in times.items()))
    return out


@contextmanager
def _timed(times: dict, stage: str):
    started = time.perf_counter()
    yield
    times[stage] = time.perf_counter() - started


def _train_and_flag(ws, config, truth: dict, times: dict, log) -> dict:
    """Train (or reuse the trained round), flag, and score the queue against the known flips."""

    with _timed(times, "train"):
        trained = [r for r in ws.store.rounds() if "pred_probs" in ws.store.arrays(r.id)]
        if trained:
            log(f"reusing round {trained[-1].id} (delete {ws.path} to train again)")
        else:
            train_round(ws, config, restart=True, log=log)
    with _timed(times, "flag"):
        result = flag_round(ws)
    log(format_summary(result))
    q = queue_precision(ws, truth)
    log(
        f"against the known flips: {q['wrong_in_queue']} of the {q['queued']} queued train/valid images are "
        f"wrong ({q['precision']:.0%} precision); the queue holds {q['recall']:.0%} of all {q['wrong_total']} wrong labels"
    )
    return q


def _review_and_retrain(ws, truth: dict, n: int, times: dict, log) -> dict:
    """A ground-truth reviewer works ``n`` images of the queue, then a retrain; test top-k before and after."""

    before = ws.store.rounds()[-1].metrics
    with _timed(times, "review"):
        r = simulate_review(ws, truth, n)
    log(f"simulated reviewer: {r['reviewed']} reviewed, {r['relabelled']} relabelled, {r['confirmed']} kept")
    with _timed(times, "retrain"):
        retrain_round(ws, {}, restart=True, log=log)
    after = ws.store.rounds()[-1].metrics
    for name, m in (("before", before), ("after", after)):
        log(
            f"{name:>6}: test top-1 {m['test_top1']:.3f}, top-3 {m['test_top3']:.3f}, top-5 {m['test_top5']:.3f}"
            f" (demo test labels are the true ones)"
        )
    return {"review": r, "before": before, "after": after}
