"""Helpers for tests: seeded tiny images and dataset layouts written on the fly."""

from __future__ import annotations

import atexit
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "clothing-small"


def make_image(path: Path, *, seed: int = 0, size: int = 16, fmt: str | None = None) -> Path:
    """Write a small seeded RGB image (JPEG or PNG by extension) and return its path."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (size, size), tuple(rng.randint(0, 255) for _ in range(3)))
    for _ in range(4):
        x, y = rng.randrange(size), rng.randrange(size)
        image.putpixel((x, y), tuple(rng.randint(0, 255) for _ in range(3)))
    image.save(path, format=fmt)
    return path


def make_class_folders(root: Path, counts: dict[str, int], *, split: str | None = None, seed: int = 0) -> Path:
    """root/[split/]class/NNN.jpg with ``counts[class]`` images each."""
    for c, (label, n) in enumerate(sorted(counts.items())):
        for i in range(n):
            base = root / split if split else root
            make_image(base / label / f"{i:03d}.jpg", seed=seed * 10_000 + c * 1000 + i)
    return root


def write_labels_csv(folder: Path, rows: list[tuple], header: str = "image,label,split", **image_options) -> Path:
    """Write images for ``rows`` (path, label[, split]) under ``folder`` and a labels.csv listing them."""
    lines = [header]
    for i, row in enumerate(rows):
        make_image(folder / row[0], seed=i, **image_options)
        lines.append(",".join(row))
    target = folder / "labels.csv"
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def synthetic_evidence(
    n: int = 600, k: int = 5, *, noise: float = 0.1, dim: int = 32, duplicates: int = 4, seed: int = 0
):
    """Seeded labels/pred_probs/embeddings with planted label flips and conflicting near-duplicates.

    Returns (true_labels, given_labels, pred_probs, embeddings, flipped, duplicate_pairs). The
    probabilities come from a model that is right 90% of the time regardless of the given label;
    embeddings cluster by true class.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    centres = rng.normal(size=(k, dim))
    emb = centres[true] + rng.normal(scale=1.6, size=(n, dim))
    logits = rng.normal(scale=0.5, size=(n, k))
    right = rng.random(n) < 0.9
    guess = np.where(right, true, rng.integers(0, k, n))
    logits[np.arange(n), guess] += 3.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    given = true.copy()
    flipped = rng.random(n) < noise
    given[flipped] = (true[flipped] + rng.integers(1, k, flipped.sum())) % k
    pairs = []
    for j in range(duplicates):  # the last rows become near-copies of earlier ones, with another label
        src, dst = j, n - 1 - j
        emb[dst] = emb[src] + rng.normal(scale=1e-3, size=dim)
        true[dst], probs[dst] = true[src], probs[src]
        given[dst] = (given[src] + 1) % k
        flipped[dst] = given[dst] != true[dst]
        pairs.append((src, dst))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return true, given, probs.astype(np.float32), emb.astype(np.float32), flipped, pairs


def record_synthetic_round(ws, *, seed: int = 0, doubt: float = 0.15, frozen: bool = False) -> int:
    """Record a round for every item of ``ws`` from synthetic arrays (no training).

    The "model" agrees with the given label except for a ``doubt`` share of train/valid
    items, where it is confident in the next class; embeddings cluster by the label the
    model believes. With ``frozen``, also two fold models' spaces and a frozen view (float16, 24-d: clusters by
    the given label, blurred), as `train` records them.
    """
    import numpy as np

    from labeler.labels import label_table

    rng = np.random.default_rng(seed)
    vocab = ws.store.classes()
    frame = label_table(ws)
    k = len(vocab)
    codes = np.array([vocab.index(label) for label in frame["label"]])
    believed = codes.copy()
    doubted = (rng.random(len(codes)) < doubt) & (frame["split"] != "test").to_numpy()
    believed[doubted] = (codes[doubted] + 1) % k
    probs = np.full((len(codes), k), 0.02, dtype=np.float32)
    probs[np.arange(len(codes)), believed] = 1.0
    probs /= probs.sum(axis=1, keepdims=True)
    centres = rng.normal(size=(k, 16))
    emb = centres[believed] + rng.normal(scale=0.3, size=(len(codes), 16))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    ids = frame["id"].to_numpy()
    fit = (frame["split"] != "test").to_numpy()
    arrays = {
        "pred_probs": probs[fit],
        "pred_ids": ids[fit],
        "labels": codes[fit],
        "folds": (np.arange(fit.sum()) % 2).astype(np.int16),
        "test_probs": probs[~fit],
        "test_ids": ids[~fit],
        "test_probs_folds": np.stack([probs[~fit]] * 2),
        "embeddings": emb,
        "embed_ids": ids,
    }
    if frozen:
        arrays["fold_embeddings"] = np.stack([emb, emb[:, ::-1]]).astype(np.float16)
        look = rng.normal(size=(k, 24))[codes] + rng.normal(scale=0.8, size=(len(codes), 24))
        arrays["frozen_embeddings"] = (look / np.linalg.norm(look, axis=1, keepdims=True)).astype(np.float16)
    return ws.record_round("train", {"config": {"arch": "synthetic"}, "vocab": vocab}, {"oof_top1": 0.85}, arrays)


_BUILT: dict[tuple, Path] = {}  # flagged_workspace's arguments -> the folder it was built in once this session


def flagged_workspace(cli, tmp_path, *, train: dict, test: dict, seed: int = 0, doubt: float = 0.15, flag: bool = True):
    """tmp_path/ws: class folders (tmp_path/ds) imported, a synthetic round recorded, and (``flag``) flagged.

    Built once per set of arguments in a session and copied for each test (the workspace's paths moved to
    the copy): building took 2-4 s, and about 40 tests ask for one."""
    key = (tuple(sorted(train.items())), tuple(sorted(test.items())), seed, doubt, flag)
    if key not in _BUILT:
        built = Path(tempfile.mkdtemp(prefix="labeler-test-ws-"))
        atexit.register(shutil.rmtree, built, ignore_errors=True)
        _build_flagged_workspace(cli, built, train=train, test=test, seed=seed, doubt=doubt, flag=flag)
        _BUILT[key] = built
    return _copy_workspace(_BUILT[key], tmp_path)


def _build_flagged_workspace(cli, folder: Path, *, train, test, seed, doubt, flag) -> None:
    from labeler.workspace import Workspace

    make_class_folders(folder / "ds", train, split="train")
    make_class_folders(folder / "ds", test, split="test")
    cli("import", folder / "ws", folder / "ds")
    with Workspace.open(folder / "ws") as ws:
        record_synthetic_round(ws, seed=seed, doubt=doubt)
    if flag:
        cli("flag", folder / "ws")


def _copy_workspace(built: Path, tmp_path: Path) -> Path:
    """``built``/ds and ``built``/ws copied into ``tmp_path``; the workspace's source and image root moved along."""
    from labeler.store import Store

    shutil.copytree(built / "ds", tmp_path / "ds")
    shutil.copytree(built / "ws", tmp_path / "ws")
    with Store.open(tmp_path / "ws" / "labeler.db") as store:
        for key in ("source", "root"):
            old = Path(store.get_meta(key))
            store.set_meta(key, str(tmp_path.resolve() / old.relative_to(built.resolve())))
    return tmp_path / "ws"


# -- tiny training sets (test_training, test_loop, test_leakage, test_boxes) ----------------------------------
COLOURS = {"blue": (30, 60, 220), "green": (40, 200, 60), "red": (220, 40, 40), "rare": (240, 240, 40)}
FAST = [
    "--no-pretrained",
    "--arch",
    "resnet18",
    "--size",
    "32",
    "--folds",
    "2",
    "--epochs",
    "1",
    "--freeze-epochs",
    "0",
    "--bs",
    "16",
    "--workers",
    "0",
    "--lr",
    "3e-3",
]


def tiny_dataset(folder: Path) -> Path:
    """Colour-coded 24 px images; 'rare' has one train image, so one fold trains without it."""
    rng = np.random.default_rng(0)
    rows = ["image,label,split"]
    for label, colour in COLOURS.items():
        counts = {"train": 1, "test": 2} if label == "rare" else {"train": 10, "valid": 2, "test": 3}
        for split, n in counts.items():
            for i in range(n):
                pixels = np.clip(rng.normal(colour, 25, (24, 24, 3)), 0, 255).astype(np.uint8)
                name = f"img/{label}_{split}_{i}.png"
                (folder / "img").mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(folder / name)
                rows.append(f"{name},{label},{split}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder / "labels.csv"


def no_traceback(result) -> None:
    """A refused command: exit code 2 and a message, never a traceback."""
    assert "Traceback" not in result.output and result.exit_code == 2, result.output
