"""`labeler bench outfits`: DeepFashion-layout outfit photos whose box is exactly the labelled garment."""

from pathlib import Path

import numpy as np
from PIL import Image

from labeler.workspace import Workspace

COLOURS = {"t-shirt": (200, 30, 30), "pants": (30, 30, 200), "dress": (30, 160, 30), "hat": (240, 200, 0)}


def _garments(root: Path, per_class: int = 4) -> Path:
    """Solid-colour 'photos' in split/class folders, one colour per class, of different shapes."""
    for split in ("train", "validation", "test"):
        for label, colour in COLOURS.items():
            for i in range(per_class):
                folder = root / split / label
                folder.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (40 + 10 * i, 90 - 10 * i), colour).save(folder / f"{i}.png")
    return root


def test_outfits_box_the_labelled_garment_and_import_as_deepfashion(cli, tmp_path):
    source = _garments(tmp_path / "src")
    out = tmp_path / "outfits"
    result = cli("bench", "outfits", source, out, "--seed", "3")
    assert "wrote a DeepFashion-layout set" in result.output and "val: " in result.output
    cli("import", tmp_path / "ws", out)
    with Workspace.open(tmp_path / "ws") as ws:
        items = ws.store.items()
        assert len(items) == 3 * 3 * 4  # hats have no DeepFashion category: left out
        assert {i.label for i in items} == {"Tee", "Chinos", "Dress"}
        assert {i.split for i in items} == {"train", "valid", "test"}
        colour = {"Tee": COLOURS["t-shirt"], "Chinos": COLOURS["pants"], "Dress": COLOURS["dress"]}
        for item in items:
            box = [int(item.extra[c]) for c in ("x_1", "y_1", "x_2", "y_2")]
            with Image.open(ws.image_path(item.file)) as img:
                assert max(img.size) == 300
                pixels = np.asarray(img.convert("RGB"), dtype=float)
            inside = pixels[box[1] : box[3], box[0] : box[2]].reshape(-1, 3).mean(axis=0)
            assert np.abs(inside - colour[item.label]).max() < 12, (item.file, inside)  # the box holds its garment
            outside = pixels.reshape(-1, 3).mean(axis=0)
            assert np.abs(outside - colour[item.label]).max() > 20  # and the photo holds more than it


def test_outfits_refuse_a_folder_that_is_not_empty(cli, tmp_path):
    source = _garments(tmp_path / "src", per_class=1)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    result = cli("bench", "outfits", source, tmp_path / "out", expect=2)
    assert "not empty" in result.output and (tmp_path / "out" / "keep.txt").read_text() == "mine"
