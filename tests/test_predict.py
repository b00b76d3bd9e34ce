"""`labeler predict` / `evaluate` on exported model folders (labeler.predict): damaged folders and files are
refused with the file named, bad images are reported and skipped."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest

from tests.helpers import make_class_folders, make_image, no_traceback


@pytest.fixture
def model_dir(tmp_path) -> Path:
    """An exported model folder with random weights (no training): enough to run predict."""
    import torch

    from labeler_training.export import preprocess_spec
    from labeler_training.predict import build_model

    out = tmp_path / "model"
    out.mkdir()
    torch.save(build_model("resnet18", 3).state_dict(), out / "model.pth")
    (out / "vocab.json").write_text(json.dumps(["hat", "shoe", "skirt"]))
    (out / "preprocess.json").write_text(json.dumps(preprocess_spec("resnet18", 32)))
    return out


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def _damage(model: Path, how: str) -> str:
    """Damage the folder; returns the file name the message must name."""
    import torch

    if how == "pickled object":
        torch.save({"weights": _Evil()}, model / "model.pth")
        return "model.pth"
    if how == "not a state_dict":
        torch.save([1, 2, 3], model / "model.pth")
        return "model.pth"
    if how == "truncated weights":
        data = (model / "model.pth").read_bytes()
        (model / "model.pth").write_bytes(data[: len(data) // 3])
        return "model.pth"
    if how == "vocab of another model":
        (model / "vocab.json").write_text(json.dumps(["a", "b", "c", "d", "e"]))
        return "model.pth"
    if how == "preprocess missing":
        (model / "preprocess.json").unlink()
        return "preprocess.json"
    if how == "preprocess broken":
        (model / "preprocess.json").write_text("{not json")
        return "preprocess.json"
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    [
        "pickled object",
        "not a state_dict",
        "truncated weights",
        "vocab of another model",
        "preprocess missing",
        "preprocess broken",
    ],
)
def test_a_damaged_model_folder_is_refused_with_its_file_named(cli, model_dir, tmp_path, how):
    image = make_image(tmp_path / "one.jpg", seed=3, size=40)
    name = _damage(model_dir, how)
    result = cli("predict", model_dir, image, expect=None)
    no_traceback(result)
    assert name in result.output and "export-model" in result.output
    assert "pwned" not in result.output
    assert "weights_only" not in result.output and "file an issue" not in result.output  # no torch advice


def test_a_broken_map_file_is_refused(cli, model_dir, tmp_path):
    make_class_folders(tmp_path / "eval", {"hat": 2, "shoe": 2}, split="test")
    (tmp_path / "map.json").write_text("{broken")
    result = cli("evaluate", model_dir, tmp_path / "eval", "--map", tmp_path / "map.json", expect=None)
    no_traceback(result)
    assert "map.json is not valid JSON" in result.output
    assert "source_label,model_label" in result.output and "export-model" not in result.output  # the map's fix


def test_predict_reports_bad_images_and_goes_on(cli, model_dir, tmp_path):
    folder = tmp_path / "imgs"
    make_image(folder / "good.jpg", seed=1, size=40)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("not an image")
    good = (folder / "good.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    _huge_png_header(folder / "huge.png")
    result = cli("predict", model_dir, folder, "--csv", tmp_path / "p.csv")
    rows = {Path(r.split(",")[0]).name: r for r in (tmp_path / "p.csv").read_text().splitlines()[1:]}
    assert set(rows) == {"good.jpg", "empty.jpg", "text.jpg", "truncated.jpg", "huge.png"}
    assert rows["good.jpg"].split(",")[1] in ("hat", "shoe", "skirt") and rows["good.jpg"].endswith(",")
    assert "empty file" in rows["empty.jpg"] and "not an image" in rows["text.jpg"]
    assert "too large" in rows["huge.png"] and "unreadable" in rows["truncated.jpg"]
    assert "skipped" in result.output


def test_evaluate_accepts_a_one_class_set(cli, model_dir, tmp_path):
    make_class_folders(tmp_path / "eval", {"hat": 3}, split="test")
    assert "top-1" in cli("evaluate", model_dir, tmp_path / "eval").output.lower()


def _huge_png_header(path: Path) -> None:
    """A PNG that says it is 20000 x 20000 (decompression-bomb sized) without the pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
