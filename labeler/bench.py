"""User-facing benchmarks: commands that print numbers (`labeler bench ...`).

``bench import`` times an import (and its peak memory, measured in a child process) of any
source, or of a synthetic DeepFashion-shaped annotation set of a chosen size written by
``write_deepfashion`` in the exact on-disk format of the real benchmark.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
    write(folder / "Eval" / "list_eval_partition.txt", "image_name  evaluation_status", [f"{p:<70}{s}" for p, _, s, _ in entries])  # fmt: skip
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
        args = [sys.executable, "-m", "labeler", "import", str(Path(tmp) / "ws"), str(source)]
        args += [] if verify else ["--no-verify-images"]
        code = (
            "import resource, subprocess, sys, time, json; t = time.perf_counter(); "
            "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "print(json.dumps({'seconds': time.perf_counter() - t, 'rc': r.returncode, 'out': r.stdout + r.stderr[-2000:], "
            "'peak_mib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))"
        )
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=os.environ)
        result = json.loads(done.stdout)
    if result["rc"] != 0:
        raise RuntimeError(f"import failed:\n{result['out']}")
    return result


def bench_train_speed(
    workspace: str | Path, config, *, lr: float = 1e-3, limit: int | None = None, repeats: int = 2
) -> dict:
    """Images/s of labeler's fastai training path and of a minimal plain-PyTorch loop, alternated."""
    from labeler.train import label_table
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
