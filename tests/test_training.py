"""Training on tiny generated images: 2 folds, 1 epoch, no pretrained weights, CPU."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from labeler.workspace import Workspace
from tests.helpers import FAST, tiny_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A workspace with one trained round (shared by the tests of this module)."""
    from click.testing import CliRunner

    from labeler.cli import main

    base = tmp_path_factory.mktemp("train")
    labels = tiny_dataset(base / "ds")
    runner = CliRunner()
    result = runner.invoke(main, ["import", str(base / "ws"), str(labels), "--min-per-class", "1"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["train", str(base / "ws"), *FAST])
    assert result.exit_code == 0, result.output
    return base / "ws", result.output


def test_round_has_oof_probs_for_every_non_test_item_exactly_once(trained):
    path, output = trained
    assert "recorded round 1" in output
    with Workspace.open(path) as ws:
        vocab = ws.store.classes()
        items = ws.store.item_table()
        probs = ws.load_array(1, "pred_probs")
        ids = ws.load_array(1, "pred_ids")
        folds = ws.load_array(1, "folds")
        fit_ids = set(items.loc[items["split"] != "test", "id"])
        assert vocab == ["blue", "green", "rare", "red"]
        assert probs.shape == (len(fit_ids), 4) and probs.dtype == np.float32
        assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
        assert sorted(ids.tolist()) == sorted(fit_ids)  # every non-test item, once
        model_dir = ws.path / ws.store.rounds()[0].params["model_dir"]
        for fold in (0, 1):
            with np.load(model_dir / f"fold-{fold}.npz") as data:
                held_out, trained_on = set(data["held_out_ids"]), set(data["train_ids"])
            assert held_out == set(ids[folds == fold])  # predicted by this fold's model ...
            assert not held_out & trained_on  # ... which never trained on them
            assert held_out | trained_on == fit_ids
        assert ws.load_array(1, "test_probs").shape == (len(items) - len(fit_ids), 4)
        assert ws.load_array(1, "test_probs_folds").shape == (2, len(items) - len(fit_ids), 4)
        embeddings = ws.load_array(1, "embeddings")
        assert embeddings.shape == (len(items), 512)
        assert np.allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-4)
        spaces = ws.load_array(1, "fold_embeddings")  # every fold model's space (the probe's), rows as embed_ids
        assert spaces.shape == (2, len(items), 512) and spaces.dtype == np.float16
        assert np.allclose(spaces[0], embeddings, atol=1e-3) and not np.allclose(spaces[1], embeddings, atol=1e-3)
        # out-of-sample neighbours: per train/valid row, from the model that held it out; never itself
        nbr, sims = ws.load_array(1, "oos_neighbour_ids"), ws.load_array(1, "oos_neighbour_sims")
        assert nbr.shape == (len(ids), 10) and sims.shape == (len(ids), 10)
        assert not (nbr == ids[:, None]).any() and set(nbr[nbr >= 0].tolist()) <= set(items["id"])
        assert (np.diff(sims, axis=1) <= 1e-6).all()  # nearest first
        group_ids, groups = ws.load_array(1, "fold_group_item_ids"), ws.load_array(1, "fold_groups")
        assert set(group_ids.tolist()) == set(items["id"]) and len(groups) == len(group_ids)
        for g in np.unique(groups):
            members = set(group_ids[groups == g].tolist()) & set(ids.tolist())
            assert len({int(folds[ids.tolist().index(m)]) for m in members}) <= 1  # a group in one fold


def test_flag_fits_the_probe_in_every_fold_models_space(trained, monkeypatch, tmp_path):
    import shutil

    from labeler.flag import flag_round, load_evidence, probe

    path, _ = trained
    with Workspace.open(path, readonly=True) as ws:
        ev = load_evidence(ws, 1, fold_spaces=True)
        assert load_evidence(ws, 1).fold_embeddings is None  # 1.5 GB at scale: read only when asked
    assert ev.fold_embeddings.shape == (2, len(ev.item_ids), 512)
    fold0 = ev.fold_embeddings[0].block(0, len(ev.item_ids))[ev.space_rows]  # read from disk a block at a time
    assert np.allclose(fold0, ev.embeddings, atol=1e-3)  # row-aligned with the evidence
    assert ev.frozen_embeddings.shape == (len(ev.item_ids), 1280)  # the frozen ImageNet view, recorded by train
    seen = []
    real = probe.probe_probs
    monkeypatch.setattr(probe, "probe_probs", lambda x, *a, **kw: seen.append(x.shape) or real(x, *a, **kw))
    shutil.copytree(path, tmp_path / "ws")  # `flag` writes its queue: not into the shared workspace
    with Workspace.open(tmp_path / "ws") as ws:
        flag_round(ws)
    assert seen == [ev.fold_embeddings.shape, ev.frozen_embeddings.shape]


def test_rare_class_keeps_its_column_when_a_fold_trains_without_it(trained):
    path, _ = trained
    with Workspace.open(path) as ws:
        model_dir = ws.path / ws.store.rounds()[0].params["model_dir"]
        items = ws.store.item_table().set_index("id")
        rare = set(items.index[(items["label"] == "rare") & (items["split"] != "test")])
        without = [f for f in (0, 1) if not rare & set(np.load(model_dir / f"fold-{f}.npz")["train_ids"])]
        assert without, "one fold must have trained without the rare class"
        assert np.load(model_dir / f"fold-{without[0]}.npz")["probs"].shape[1] == 4


def test_metrics_reports_and_status(trained, cli):
    path, _ = trained
    status = json.loads(cli("status", path, "--json").output)
    metrics = status["rounds"][0]["metrics"]
    for key in ("oof_top1", "oof_top3", "oof_top5", "test_top1", "test_top3", "test_top5"):
        assert 0 <= metrics[key] <= 1
    assert metrics["test_top5"] == 1.0  # 4 classes: the label is always in the top 5
    assert metrics["test_n"] == 11 and set(metrics["test_per_class"]) == {"blue", "green", "rare", "red"}
    for name in ("confusion_oof.png", "confusion_test.png", "top_losses_oof.png"):
        assert (path / "reports" / "round-001" / name).stat().st_size > 1000
    assert list((path / "models" / "round-001").glob("fold-*-loss.png"))


def test_predictor_matches_the_fastai_learner_and_needs_no_fastai(trained, cli, tmp_path):
    path, _ = trained
    cli("export-model", path, tmp_path / "model")
    assert {p.name for p in (tmp_path / "model").iterdir()} == {"model.pth", "vocab.json", "preprocess.json"}
    with Workspace.open(path) as ws:
        items = ws.store.item_table().set_index("id")
        test_ids = ws.load_array(1, "test_ids")
        files = [str(ws.root / items.loc[i, "file"]) for i in test_ids]
        with np.load(path / "models" / "round-001" / "fold-0.npz") as data:
            fastai_probs = data["test_probs"]  # fold-0 learner, through fastai's own test_dl
    code = (
        "import sys, json, numpy as np\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'fastai': raise ImportError('fastai is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from labeler_training.predict import Predictor\n"
        f"p = Predictor({str(tmp_path / 'model')!r})\n"
        f"files = json.loads({json.dumps(json.dumps(files))})\n"
        "np.save(sys.argv[1], p.predict_proba(files))\n"
        "assert 'fastai' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "p.npy")], check=True, cwd=Path(__file__).parents[1])
    plain = np.load(tmp_path / "p.npy")
    assert np.allclose(plain, fastai_probs, atol=1e-4)
    assert (plain.argsort(1)[:, ::-1][:, :3] == fastai_probs.argsort(1)[:, ::-1][:, :3]).all()


def test_predict_and_evaluate_commands(trained, cli, tmp_path):
    path, _ = trained
    with Workspace.open(path) as ws:
        root = ws.root
    out = cli("predict", path, root / "img" / "red_test_0.png", "--csv", tmp_path / "p.csv", "--top", "3").output
    assert "red_test_0.png:" in out
    header = (tmp_path / "p.csv").read_text().splitlines()[0]
    assert header == "image,label_1,prob_1,label_2,prob_2,label_3,prob_3,error"
    mine = root / "mine.csv"
    mine.write_text("image,label\nimg/red_test_1.png,rouge\nimg/blue_test_0.png,blue\n")
    result = cli("evaluate", path, mine, expect=2)
    assert "rouge" in result.output and "--map" in result.output
    (tmp_path / "map.csv").write_text("source_label,model_label\nrouge,red\n")
    out = cli("evaluate", path, mine, "--map", tmp_path / "map.csv").output
    assert "2 images" in out and "top-1" in out


def test_bad_training_options_are_clear_errors(trained, cli, tmp_path):
    path, _ = trained
    assert "unknown architecture 'vgg99'" in cli("train", path, "--arch", "vgg99", expect=2).output
    assert "need at least 2 folds" in cli("train", path, *FAST, "--folds", "1", expect=2).output
    result = cli("train", path, *FAST, "--weights", tmp_path / "none.pth", expect=2)
    assert "--weights" in result.output and "no such file" in result.output
    (tmp_path / "labels.csv").write_text("image,label\na.jpg,cat\n")
    result = cli("train", path, *FAST, "--weights", tmp_path / "labels.csv", expect=2)
    assert "not a PyTorch file" in result.output and "weights_only" not in result.output
    import torch
    import torchvision

    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "r34.pth")
    result = cli("train", path, *FAST, "--weights", tmp_path / "r34.pth", expect=2)
    assert "does not fit torchvision's resnet18" in result.output
    assert not (path / "models" / "pending").exists() or not list((path / "models" / "pending").glob("fold-*"))


def test_weights_file_is_loaded_into_the_body(tmp_path):
    import torch
    import torchvision
    from fastai.vision.all import create_vision_model

    from labeler_training.learner import load_body_weights

    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    model = create_vision_model(torchvision.models.resnet18, 3, pretrained=False)
    load_body_weights(model, "resnet18", tmp_path / "r18.pth")
    assert torch.equal(model[0][0].weight, reference.conv1.weight)


def test_topk_accuracy_on_a_hand_computed_example():
    from labeler_training.evaluate import confusion_matrix, most_confused, topk_accuracy

    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3]])
    labels = np.array([0, 1, 2, 1])
    # row 0: top1 hit; row 1: 1 is 2nd; row 2: 2 is 3rd; row 3: top1 hit
    assert topk_accuracy(probs, labels, 1) == 0.5
    assert topk_accuracy(probs, labels, 2) == 0.75
    assert topk_accuracy(probs, labels, 3) == 1.0
    assert topk_accuracy(probs, labels, 5) == 1.0
    cm = confusion_matrix(probs, labels)
    assert cm.tolist() == [[1, 0, 0], [0, 1, 1], [1, 0, 0]]
    assert most_confused(cm, ["a", "b", "c"]) == [("b", "c", 1), ("c", "a", 1)]
    with pytest.raises(ValueError, match="pred_probs has shape \\(4, 3\\) but labels has 3 rows"):
        topk_accuracy(probs, labels[:3])


def test_killed_run_resumes_from_the_last_finished_fold(tmp_path):
    labels = tiny_dataset(tmp_path / "ds")
    ws = tmp_path / "ws"
    subprocess.run(
        [sys.executable, "-m", "labeler", "import", str(ws), str(labels), "--min-per-class", "1"], check=True
    )
    args = [sys.executable, "-m", "labeler", "train", str(ws), *FAST, "--no-verify-images"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    pending = ws / "models" / "pending"
    deadline = time.time() + 120
    while not (pending / "fold-0.npz").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (pending / "fold-0.npz").exists() and not (pending / "fold-1.npz").exists()
    assert not list(pending.glob("*.tmp"))
    refused = subprocess.run(args, capture_output=True, text=True)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "fold 1/2: finished earlier, kept" in resumed.stdout
    with Workspace.open(ws) as w:
        assert len(w.store.rounds()) == 1 and w.load_array(1, "pred_probs").shape[0] == 37


def test_folds_as_separate_jobs_then_merge(tmp_path, cli):
    labels = tiny_dataset(tmp_path / "ds")
    ws = tmp_path / "ws"
    cli("import", ws, labels, "--min-per-class", "1")
    assert "not in" in cli("train", ws, *FAST, "--merge", expect=2).output  # nothing trained yet
    assert "fold 0 done" in cli("train", ws, *FAST, "--fold", "0").output
    result = cli("train", ws, *FAST, "--merge", expect=2)
    assert "folds 1 are not in" in result.output
    assert "folds are numbered 0 to 1" in cli("train", ws, *FAST, "--fold", "2", expect=2).output
    cli("train", ws, *FAST, "--fold", "1")
    assert "recorded round 1" in cli("train", ws, *FAST, "--merge").output
    with Workspace.open(ws) as w:
        assert w.load_array(1, "pred_probs").shape == (37, 4)


@pytest.mark.slow
def test_data_parallel_training_with_gloo_on_two_cpu_processes(tmp_path):
    labels = tiny_dataset(tmp_path / "ds")
    ws = tmp_path / "ws"
    subprocess.run(
        [sys.executable, "-m", "labeler", "import", str(ws), str(labels), "--min-per-class", "1"], check=True
    )
    # torchrun's own module: the venv's `torchrun` script carries the path of the checkout that built the venv
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    args = [*torchrun, "--nproc_per_node", "2", "-m", "labeler", "train", str(ws), *FAST, "--no-verify-images"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "data-parallel on 2 processes" in done.stdout
    assert done.stdout.count("recorded round 1") == 1  # rank 0 alone records
    with Workspace.open(ws) as w:
        assert len(w.store.rounds()) == 1 and w.load_array(1, "pred_probs").shape == (37, 4)


def test_out_of_memory_suggests_a_smaller_batch(monkeypatch):
    import torch

    from labeler_training import learner
    from labeler_training.errors import TrainingError

    def explode(*args):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(learner, "_fit", explode)
    with pytest.raises(TrainingError, match="out of memory at --bs 64 .* try --bs 32"):
        learner.fit(None, learner.make_config(None), 1e-3)


def test_tta_averages_augmented_passes_in_and_keeps_the_plain_probabilities(tmp_path, cli):
    labels = tiny_dataset(tmp_path / "ds")
    ws = tmp_path / "ws"
    cli("import", ws, labels, "--min-per-class", "1")
    cli("train", ws, *FAST, "--tta", "2")
    with Workspace.open(ws) as w:
        names = w.store.arrays(1)
        assert {"pred_probs_plain", "test_probs_plain"} <= set(names)
        tta, plain = w.load_array(1, "pred_probs"), w.load_array(1, "pred_probs_plain")
        test_tta, test_plain = w.load_array(1, "test_probs"), w.load_array(1, "test_probs_plain")
        assert tta.shape == plain.shape == (37, 4) and test_tta.shape == test_plain.shape
        for probs in (tta, plain, test_tta, test_plain):
            assert np.allclose(probs.sum(axis=1), 1, atol=1e-5) and (probs >= 0).all()
        assert not np.allclose(tta, plain)  # the augmented passes changed the predictions ...
        assert np.abs(tta - plain).max() < 0.9  # ... and the plain pass keeps its share
        assert w.store.rounds()[-1].params["config"]["tta"] == 2


def test_the_cpu_preset_trains_longer_at_a_fixed_rate_from_scratch_only():
    from labeler_training.learner import SCRATCH, make_config

    transfer = make_config("cpu")
    assert (transfer.epochs, transfer.freeze_epochs, transfer.lr) == (3, 1, None)  # fine_tune, lr_find's rate
    scratch = make_config("cpu", pretrained=False)
    assert (scratch.epochs, scratch.freeze_epochs, scratch.lr) == tuple(
        SCRATCH["cpu"][k] for k in ("epochs", "freeze_epochs", "lr")
    )
    assert (scratch.arch, scratch.size) == (transfer.arch, transfer.size)
    assert make_config("cpu", pretrained=False, epochs=2).epochs == 2  # a given option still wins
    assert make_config("cpu", pretrained=False, weights="body.pth").epochs == 3  # a weights file: transfer
    assert make_config("demo").epochs == 4 and make_config(None, pretrained=False).epochs == 3  # others unchanged


def test_area_under_the_margin_is_recorded_and_low_for_flipped_labels(tmp_path, cli):
    """Three red images labelled blue: the fold models fit them late, so their AUM sits below most correctly
    labelled images'; rows no fold trained on (dropped last batch) are NaN."""
    labels = tiny_dataset(tmp_path / "ds")
    table = labels.read_text().splitlines()
    flipped = [i for i, row in enumerate(table) if row.startswith("img/red_train_")][:3]
    for i in flipped:
        table[i] = table[i].replace(",red,", ",blue,")
    labels.write_text("\n".join(table) + "\n")
    ws = tmp_path / "ws"
    cli("import", ws, labels, "--min-per-class", "1")
    cli("train", ws, *[{"1": "4", "3e-3": "1e-2"}.get(v, v) for v in FAST], "--bs", "8")
    import warnings

    with Workspace.open(ws) as w:
        ids, by_epoch = w.load_array(1, "pred_ids"), w.load_array(1, "margins_by_epoch")
        files = {i.id: i.file for i in w.store.items()}
    assert by_epoch.shape == (len(ids), 4) and by_epoch.dtype == np.float32  # one column per epoch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row no fold trained on: all NaN
        aum = np.nanmean(by_epoch, axis=1)  # the area under the margin: the mean of each image's epochs
    seen = ~np.isnan(aum)
    assert seen.mean() > 0.8  # with --bs 8, at most 7 rows per fold and epoch are dropped
    is_flip = np.array([any(files[int(i)] == table[r].split(",")[0] for r in flipped) for i in ids])
    assert is_flip.sum() == 3
    correct = ~is_flip & seen & np.array(["rare" not in files[int(i)] for i in ids])  # one rare image: hard, not wrong
    assert np.nanmax(aum[is_flip]) < np.percentile(aum[correct], 20)


def test_margins_refuse_to_record_when_the_batch_order_does_not_match(tmp_path):
    """Expected labels that do not match the batches' targets: nothing is recorded, and the reason is kept."""
    import pandas as pd

    from labeler_training.data import make_dataloaders
    from labeler_training.learner import build_learner, make_config
    from labeler_training.margins import MarginHistory

    labels = tiny_dataset(tmp_path / "ds")
    frame = pd.read_csv(labels).rename(columns={"image": "file"})
    vocab = sorted(frame["label"].unique())
    config = make_config(arch="resnet18", size=32, pretrained=False, bs=8, workers=0, epochs=1, freeze_epochs=0)
    dls = make_dataloaders(frame, tmp_path / "ds", vocab, valid_idx=[0, 1], size=32, bs=8, workers=0, device="cpu")
    learn = build_learner(dls, config)
    n_train = len(frame) - 2
    right = MarginHistory([vocab.index(v) for v in frame["label"].iloc[2:]])
    wrong = MarginHistory([(vocab.index(v) + 1) % len(vocab) for v in frame["label"].iloc[2:]])
    with learn.added_cbs([right, wrong]):
        learn.fit(1, 1e-3)
    recorded = right.by_epoch()
    assert right.broken is None and recorded.shape == (n_train, 1) and np.isfinite(recorded).sum() >= n_train - 7
    assert wrong.by_epoch() is None and "targets differ" in wrong.broken


def test_a_model_file_on_a_full_disk_is_a_message_naming_it(tmp_path, monkeypatch):
    """torch.save on a full disk says only "unexpected pos": the user is told which file, why, and --resume."""
    import shutil
    from collections import namedtuple

    import torch

    from labeler_training import runs
    from labeler_training.errors import TrainingError

    def torch_on_a_full_disk(obj, fh):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4489280 vs 4489168")

    monkeypatch.setattr(torch, "save", torch_on_a_full_disk)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 4096, 4096))
    with pytest.raises(TrainingError) as raised:
        runs.save_model(tmp_path, "fold-0", {"probs": np.zeros(2)}, {"w": torch.zeros(2)})
    message = str(raised.value)
    assert str(tmp_path / "fold-0.pth") in message and "full" in message and "--resume" in message
    assert not list(tmp_path.iterdir())  # nothing half-written left behind
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 0, 10**12))
    with pytest.raises(RuntimeError, match="unexpected pos"):  # plenty of space: torch's own error, unchanged
        runs.save_model(tmp_path, "fold-0", {"probs": np.zeros(2)}, {"w": torch.zeros(2)})


def test_nearest_is_exact_and_never_the_image_itself():
    from labeler_training.inference import nearest

    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rows = np.array([0, 7, 49])
    idx, sims = nearest(x, rows, 5, chunk=2)
    for r, row in enumerate(rows):
        brute = x @ x[row]
        brute[row] = -np.inf
        assert idx[r].tolist() == np.argsort(-brute)[:5].tolist() and np.allclose(sims[r], np.sort(brute)[::-1][:5])
