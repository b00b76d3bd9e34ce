"""Faults a real user meets: damaged or read-only workspaces, full disks, odd images, damaged model folders,
bad options. Each must end in exit code 2 with a message naming the file and the fix, no traceback, nothing
half-written and nothing lost."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labeler.workspace import Workspace
from tests.helpers import flagged_workspace, make_class_folders, make_image, no_traceback

COUNTS = {"hat": 12, "shoe": 12, "skirt": 12}


@pytest.fixture
def ws(cli, tmp_path):
    return flagged_workspace(cli, tmp_path, train=COUNTS, test={k: 3 for k in COUNTS}, seed=1, doubt=0.2)


# -- a damaged store ----------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated to half", "replaced by text", "emptied"])
@pytest.mark.parametrize("command", ["status", "export", "flag", "review"])
def test_a_damaged_store_is_named_and_left_as_it_is(cli, ws, tmp_path, damage, command):
    db = ws / "labeler.db"
    data = db.read_bytes()
    db.write_bytes(
        {"truncated to half": data[: len(data) // 2], "replaced by text": b"hello\n", "emptied": b""}[damage]
    )
    before = db.read_bytes()
    args = {"export": [tmp_path / "out.csv"]}.get(command, [])
    result = cli(command, ws, *args, expect=None)
    no_traceback(result)
    assert "damaged" in result.output and "labeler.db" in result.output and "backup" in result.output
    assert db.read_bytes() == before  # a read never rewrites the file
    assert not (tmp_path / "out.csv").exists()


def test_an_interrupted_import_can_be_run_again(cli, tmp_path):
    from labeler.store import Store

    make_class_folders(tmp_path / "ds", COUNTS, split="train")
    (tmp_path / "ws").mkdir()
    Store.open(tmp_path / "ws" / "labeler.db", create=True).close()  # what kill -9 during the write leaves
    result = cli("status", tmp_path / "ws", expect=2)
    assert "no finished import" in result.output
    cli("import", tmp_path / "ws", tmp_path / "ds")  # no --force needed
    assert json.loads(cli("status", tmp_path / "ws", "--json").output)["items"] == 36


# -- read-only and full file systems ------------------------------------------------------
def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def readonly_ws(ws, tmp_path):
    """The workspace copied onto a read-only mount (root cannot write there either)."""
    mnt = tmp_path / "ro"
    if not _mount_tmpfs(mnt, "64m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        shutil.copytree(ws, mnt / "ws")
        assert subprocess.run(["mount", "-o", "remount,ro", str(mnt)], capture_output=True).returncode == 0
        yield mnt / "ws"
    finally:
        _umount(mnt)


def test_reading_commands_work_on_a_read_only_workspace(cli, readonly_ws, tmp_path):
    assert "flagged" in cli("status", readonly_ws).output
    cli("export", readonly_ws, tmp_path / "out.csv", "--audit", tmp_path / "audit.csv")
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 1 + 45
    result = cli("flag", readonly_ws, expect=2)
    assert "not writable" in result.output and "status" in result.output


@pytest.fixture
def full_dir(tmp_path, monkeypatch):
    """A folder on a full file system: a tiny tmpfs filled up, or (where none can be mounted) a simulated one."""
    mnt = tmp_path / "full"
    if _mount_tmpfs(mnt, "64k"):
        try:
            fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)
            try:
                while True:
                    os.write(fd, b"\0" * 4096)
            except OSError:
                pass
            finally:
                os.close(fd)
            yield mnt
        finally:
            _umount(mnt)
        return
    import errno
    import tempfile

    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve().is_relative_to(mnt.resolve()):
            raise OSError(errno.ENOSPC, "No space left on device", str(dir))
        return real(*args, dir=dir, **kwargs)

    mnt.mkdir()
    monkeypatch.setattr("labeler.files.tempfile.mkstemp", mkstemp)
    yield mnt


def test_export_onto_a_full_disk_says_so_and_leaves_nothing(cli, ws, full_dir):
    result = cli("export", ws, full_dir / "out.csv", "--audit", full_dir / "audit.csv", expect=None)
    no_traceback(result)
    assert "disk is full" in result.output
    assert sorted(p.name for p in full_dir.iterdir()) in ([], ["filler"])


def test_flag_csv_onto_a_full_disk_stores_no_queue(cli, tmp_path, full_dir):
    ws = flagged_workspace(cli, tmp_path, train=COUNTS, test={k: 3 for k in COUNTS}, seed=1, flag=False)
    result = cli("flag", ws, "--csv", full_dir / "queue.csv", expect=None)
    no_traceback(result)
    assert "disk is full" in result.output
    with Workspace.open(ws) as w:
        assert w.store.flagged_round() is None  # the CSV failed before the queue was stored


# -- re-import ------------------------------------------------------------------------------
def test_a_vocabulary_change_on_reimport_needs_consent_and_old_rounds_keep_working(cli, tmp_path):
    ws = flagged_workspace(cli, tmp_path, train=COUNTS, test={k: 3 for k in COUNTS}, seed=1, flag=False)
    make_class_folders(tmp_path / "ds", {"bag": 12}, split="train", seed=7)
    result = cli("import", ws, tmp_path / "ds", "--force", expect=2)
    assert "new: bag" in result.output and "--allow-new-classes" in result.output
    with Workspace.open(ws) as w:
        assert w.store.classes() == ["hat", "shoe", "skirt"]
    cli("import", ws, tmp_path / "ds", "--force", "--allow-new-classes")
    cli("flag", ws)  # the round trained on three classes still flags, by class name


def test_a_workspace_inside_the_dataset_folder_is_refused(cli, tmp_path):
    make_class_folders(tmp_path / "ds", COUNTS, split="train")
    for extra in ([], ["--force"]):
        result = cli("import", tmp_path / "ds" / "ws", tmp_path / "ds", *extra, expect=2)
        assert "inside the dataset folder" in result.output
    assert not (tmp_path / "ds" / "ws").exists()


# -- options checked at the boundary ---------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["train", "{ws}", "--bs", "0"],
        ["train", "{ws}", "--size", "0"],
        ["train", "{ws}", "--epochs", "-1"],
        ["retrain", "{ws}", "--lr", "0"],
        ["predict", "{ws}", "{image}", "--top", "0"],
        ["predict", "{ws}", "{image}", "--top", "-1"],
        ["demo", "--images", "0"],
        ["bench", "import", "--rows", "0"],
        ["bench", "noise", "{ws}", "--noise", "1.5"],
        ["bench", "noise", "{ws}", "--pairs", "cat"],
        ["bench", "loop", "{ws}", "--orders", "merged,bogus"],
        ["bench", "loop", "{ws}", "--budgets", "0.1,2"],
        ["bench", "estimate", "{tmp}", "--audits", "10,-1"],
        ["import", "{tmp}/new", "{tmp}/ds", "--valid-pct", "1.5"],
    ],
)
def test_bad_numbers_are_refused_before_any_work(cli, ws, tmp_path, args):
    image = next((tmp_path / "ds").rglob("*.jpg"))
    args = [a.format(ws=ws, image=image, tmp=tmp_path) for a in args]
    result = cli(*args, expect=2)
    assert "Invalid value" in result.output and "Traceback" not in result.output
    assert not (ws / "models" / "pending").exists() or not any((ws / "models" / "pending").iterdir())


def test_bench_noise_with_unknown_pairs_leaves_no_output_folder(cli, ws, tmp_path):
    result = cli("bench", "noise", ws, "--out", tmp_path / "bench", "--pairs", "cat:dog", expect=2)
    assert "--pairs cat:dog" in result.output and not (tmp_path / "bench").exists()


# -- odd images ---------------------------------------------------------------------------------
def _sixteen_bit_png(path: Path) -> None:
    Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).save(path)


def _float_tiff(path: Path) -> None:
    Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8), mode="F").save(path)


def test_16_bit_and_float_images_are_quarantined_not_clipped(cli, tmp_path):
    make_class_folders(tmp_path / "ds", COUNTS, split="train")
    _sixteen_bit_png(tmp_path / "ds" / "train" / "hat" / "deep.png")
    _float_tiff(tmp_path / "ds" / "train" / "shoe" / "float.tif")
    cli("import", tmp_path / "ws", tmp_path / "ds")
    status = json.loads(cli("status", tmp_path / "ws", "--json").output)
    reasons = {Path(q["path"]).name: q["reason"] for q in status["quarantined"]}
    assert "16-bit or floating-point image (mode I;16" in reasons["deep.png"]
    assert "mode F" in reasons["float.tif"] and "convert it to 8-bit RGB" in reasons["float.tif"]


def test_a_nul_byte_in_a_csv_path_is_quarantined(cli, tmp_path):
    folder = tmp_path / "ds"
    for i in range(12):
        make_image(folder / f"{i}.jpg", seed=i)
    lines = ["image,label"] + [f"{i}.jpg,{label}" for i, label in enumerate(["a", "b"] * 6)] + ["x\x00y.jpg,a"]
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    cli("import", tmp_path / "ws", folder / "labels.csv")
    status = json.loads(cli("status", tmp_path / "ws", "--json").output)
    assert any("NUL byte" in q["reason"] for q in status["quarantined"])


# -- review ------------------------------------------------------------------------------------
def test_review_before_flag_and_on_a_busy_port_are_refused_before_serving(cli, tmp_path):
    import socket

    ws = flagged_workspace(cli, tmp_path, train=COUNTS, test={k: 3 for k in COUNTS}, seed=1, flag=False)
    assert "run `labeler flag" in cli("review", ws, expect=2).output
    cli("flag", ws)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("review", ws, "--port", port, expect=2)
    assert f"port {port}" in result.output and "--port" in result.output and "reviewing" not in result.output


# -- CSV shapes ----------------------------------------------------------------------------------
def test_semicolon_csv_with_bom_and_lf_round_trips_in_its_shape(cli, tmp_path):
    folder = tmp_path / "ds"
    rows = []
    for i, label in enumerate(["a", "b", "c"] * 4):
        make_image(folder / f"{i}.jpg", seed=i)
        rows.append(f"{i}.jpg;{label}")
    (folder / "labels.csv").write_bytes(("\ufeffimage;label\n" + "\n".join(rows) + "\n").encode("utf-8"))
    cli("import", tmp_path / "ws", folder / "labels.csv")
    cli("export", tmp_path / "ws", tmp_path / "out.csv")
    data = (tmp_path / "out.csv").read_bytes()
    # its BOM, delimiter and line ends; the split made at import joins as a last column (the source had none)
    assert data.startswith(b"\xef\xbb\xbfimage;label;split\n0.jpg;a;") and b"\r\n" not in data


def test_duplicate_column_names_are_refused(cli, tmp_path):
    folder = tmp_path / "ds"
    make_image(folder / "0.jpg")
    (folder / "labels.csv").write_text("image,label,label\n0.jpg,a,b\n")
    assert "more than once" in cli("import", tmp_path / "ws", folder / "labels.csv", expect=2).output


def test_deepfashion_without_eval_says_so(cli, tmp_path):
    anno = tmp_path / "df" / "Anno_coarse"
    anno.mkdir(parents=True)
    (anno / "list_category_img.txt").write_text("1\nimage_name category_label\nimg/a/img_1.jpg 1\n")
    (anno / "list_category_cloth.txt").write_text("1\ncategory_name category_type\nBlouse 1\n")
    make_image(tmp_path / "df" / "Img" / "img" / "a" / "img_1.jpg")
    result = cli("import", tmp_path / "ws", tmp_path / "df", expect=2)
    assert "Eval/list_eval_partition.txt" in result.output


def test_an_unknown_evaluation_status_names_the_partition_file(cli, tmp_path):
    from labeler.bench.synthetic import write_deepfashion

    entries = [
        (f"img/Item_{i}/img_1.jpg", 3 if i % 2 else 18, "train" if i else "holdout", (1, 2, 30, 40)) for i in range(6)
    ]
    root = write_deepfashion(tmp_path / "DeepFashion", entries)
    for i, (path, *_rest) in enumerate(entries):
        make_image(root / "Img" / path, seed=i)
    result = cli("import", tmp_path / "ws", root, expect=2)
    assert "list_eval_partition.txt, record 1" in result.output and "'holdout'" in result.output


def test_explicit_cpu_settings_get_no_gpu_recipe_note(cli, ws, monkeypatch):
    import labeler.train

    monkeypatch.setattr(labeler.train, "train_round", lambda *a, **k: 1)
    monkeypatch.setattr(labeler.train, "merge_folds", lambda *a, **k: 1, raising=False)
    note = "training the GPU recipe on the CPU"
    assert note not in cli("train", ws, "--arch", "resnet18", "--size", "32", "--device", "cpu", expect=None).output
    assert note in cli("train", ws, "--device", "cpu", expect=None).output


def test_separate_fold_jobs_need_a_fixed_learning_rate(cli, ws):
    fast = ["--no-pretrained", "--arch", "resnet18", "--size", "32", "--folds", "2", "--epochs", "1", "--workers", "0"]
    result = cli("train", ws, *fast, "--fold", "0", expect=2)
    assert "--fold 0 needs a fixed --lr" in result.output
    assert not (ws / "models" / "pending" / "fold-0.npz").exists()
