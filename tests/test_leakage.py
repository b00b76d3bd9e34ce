"""Split leakage: test images with a near-copy or a group among train/valid images, and leak-free metrics."""

import json

import numpy as np
from PIL import Image

from labeler.bench.synthetic import write_deepfashion
from labeler.leakage import Leaks, describe, find_leaks
from labeler.workspace import Workspace
from tests.helpers import FAST

TRAIN = [*FAST, "--bs", "8"]  # test_training's tiny two-fold model; the later --bs wins


def test_find_leaks_names_copies_and_shared_groups_and_nothing_else():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(40, 16))
    emb[30] = emb[3] + 1e-4  # test row 30 is a copy of train row 3
    emb[31] = emb[4] + 1e-4  # test row 31 is as close to train row 4, but the pixel check says no
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    is_test = np.arange(40) >= 30
    ids = np.arange(100, 140)
    groups = np.arange(40)
    groups[35] = groups[7]  # test row 35 shares a group (a product) with train row 7
    leaks = find_leaks(ids, is_test, emb, groups, confirm=lambda i, j: (i, j) != (31, 4))
    assert leaks.test_ids.tolist() == list(range(130, 140))
    assert dict(zip(leaks.test_ids.tolist(), leaks.copy_of.tolist()))[130] == 103
    assert (leaks.copy_of >= 0).sum() == 1 and leaks.shares_group.sum() == 1 and leaks.leaky.sum() == 2
    assert leaks.shares_group[5] and leaks.copy_similarity[0] > 0.99
    stored = leaks.as_arrays()
    assert set(stored) == {"leak_test_ids", "leak_copy_of", "leak_shares_group"}
    counted = describe(leaks, ["a"] * 5 + ["b"] * 5)
    assert counted["test_images_leaky"] == 2 and counted["per_class"] == {"a": 1, "b": 1}
    assert counted["test_images_leak_free"] == 8


def test_no_test_split_means_no_leaks():
    emb = np.eye(4, dtype=np.float32)
    leaks = find_leaks(np.arange(4), np.zeros(4, bool), emb, np.arange(4))
    assert len(leaks.test_ids) == 0 and describe(leaks)["test_images"] == 0


def _noise_image(path, seed):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 255, (8, 8, 3)).astype(np.uint8)  # coarse random blocks: a distinct pHash per image
    Image.fromarray(base).resize((32, 32), Image.NEAREST).save(path)


def test_deepfashion_products_spanning_splits_are_counted_exactly(cli, tmp_path):
    # 8 products of 4 photos; products 0-2 have photos in test *and* train/val (4 leaking test photos),
    # products 3-4 only in test (4 honest test photos), the rest only in train/val
    plan = {
        0: ["train", "train", "val", "test"],
        1: ["train", "test", "test", "val"],
        2: ["val", "train", "train", "test"],
        3: ["test", "test"],
        4: ["test", "test"],
    }
    entries, n = [], 0
    for product in range(8):
        category = 3 if product % 2 == 0 else 41  # Blouse, Dress
        for split in plan.get(product, ["train", "train", "val", "train"]):
            n += 1
            entries.append((f"img/Product_{product}/img_{n:08d}.jpg", category, split, None))
    root = write_deepfashion(tmp_path / "DeepFashion", entries)
    for i, (name, *_rest) in enumerate(entries):
        _noise_image(root / "Img" / name, i)
    ws = tmp_path / "ws"
    cli("import", ws, root, "--min-per-class", "1")
    out = cli("train", ws, *TRAIN).output
    assert "leak-free test images" in out
    status = json.loads(cli("status", ws, "--json").output)
    leak = status["leakage"]
    assert leak["test_images"] == 8 and leak["test_images_sharing_group"] == 4
    assert leak["test_images_with_train_copy"] == 0 and leak["test_images_leaky"] == 4
    metrics = status["rounds"][-1]["metrics"]
    assert metrics["test_leakfree_n"] == 4 and metrics["test_n"] == 8
    assert 0 <= metrics["test_leakfree_top1"] <= metrics["test_leakfree_top3"] <= 1
    assert "4 of 8 test images have a near-copy (0) or share a group (4)" in cli("status", ws).output
    cli("flag", ws)
    page = (ws / "reports" / "round-001" / "flag.html").read_text()
    assert "Split leakage: 4 of 8 test images" in page and page.count("Product_1/") >= 2


def test_a_workspace_without_a_test_split_reports_no_leakage(cli, tmp_path):
    from tests.helpers import make_class_folders

    make_class_folders(tmp_path / "ds", {"hat": 8, "shoe": 8}, split="train")
    cli("import", tmp_path / "ws", tmp_path / "ds")
    cli("train", tmp_path / "ws", *TRAIN)
    status = json.loads(cli("status", tmp_path / "ws", "--json").output)
    assert status["leakage"] is None
    assert not any(k.startswith("test_leakfree") for k in status["rounds"][-1]["metrics"])
    with Workspace.open(tmp_path / "ws") as w:
        assert Leaks.load(w, 1) is None and not any(name.startswith("leak") for name in w.store.arrays(1))


def test_a_round_recorded_by_the_previous_release_still_reads_its_leaks_and_fold_groups(cli, tmp_path):
    """labeler 0.1 kept a round's leaks as one (T, 3) table and its fold groups as one (N, 2) table; both still
    read, by the same code that reads today's named arrays."""
    from labeler.flag.stage import _fold_groups
    from labeler.leakage import Leaks
    from tests.helpers import flagged_workspace

    ws_path = flagged_workspace(cli, tmp_path, train={"a": 6, "b": 6}, test={"a": 2, "b": 2}, flag=False)
    with Workspace.open(ws_path) as ws:
        round_id = ws.store.rounds()[-1].id
        ids = np.array([i.id for i in ws.store.items()], dtype=np.int64)
        old = {
            "leaks": np.array([[ids[-1], ids[0], 1], [ids[-2], -1, 0]], dtype=np.int64),
            "groups": np.stack([ids, ids % 3]).T,
        }
        ws.add_arrays(round_id, old)
        leaks = Leaks.load(ws, round_id)
        assert leaks.test_ids.tolist() == [ids[-1], ids[-2]] and leaks.copy_of.tolist() == [ids[0], -1]
        assert leaks.shares_group.tolist() == [True, False] and leaks.leaky.tolist() == [True, False]
        group_ids, groups = _fold_groups(ws, round_id, ws.store.arrays(round_id))
        assert group_ids.tolist() == ids.tolist() and groups.tolist() == (ids % 3).tolist()
