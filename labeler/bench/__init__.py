"""User-facing benchmarks: commands that print numbers (`labeler bench ...`).

``bench import`` times an import (and its peak memory, measured in a child process) of any
source, or of a synthetic DeepFashion-shaped annotation set (``labeler.bench.synthetic``) of a chosen
size. The other benchmarks: noise.py (planted flips), rank.py, loop.py, estimate.py, scale.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from labeler.bench.synthetic import synthetic_deepfashion
from labeler.labels import label_table
from labeler.workspace import Workspace


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
        "'out': r.stdout[-3000:] + r.stderr[-20000:], "
        "'peak_mib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))"
    )
    argv = [sys.executable, "-c", code, sys.executable, "-m", "labeler", *map(str, args)]
    done = subprocess.run(argv, capture_output=True, text=True, env=os.environ)
    return json.loads(done.stdout)


def bench_train_speed(
    workspace: str | Path, config, *, lr: float = 1e-3, limit: int | None = None, repeats: int = 2
) -> dict:
    """Images/s of labeler's fastai training path and of a minimal plain-PyTorch loop, alternated."""
    from labeler_training import speed

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
