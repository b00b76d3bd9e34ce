"""DeepFashion-native: the garment's box (parsing, import, the review app's views) and category types."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from labeler.bench.synthetic import write_deepfashion
from labeler.boxes import BOX_PROBLEMS, parse_box, summarize, with_margin


@pytest.mark.parametrize(
    ("extra", "size", "box", "reason"),
    [
        ({}, None, None, None),  # no box columns: no box, no problem
        ({"x_1": "072", "y_1": "079", "x_2": "232", "y_2": "273"}, None, (72, 79, 232, 273), None),  # zero-padded
        ({"x_1": 1, "y_1": 2, "x_2": 30, "y_2": 40}, (30, 40), (1, 2, 30, 40), None),  # touching the edge is inside
        ({"x_1": "a", "y_1": "2", "x_2": "3", "y_2": "4"}, None, None, "box is not four whole numbers"),
        ({"x_1": "1.5", "y_1": "2", "x_2": "3", "y_2": "4"}, None, None, "box is not four whole numbers"),
        ({"x_1": "-1", "y_1": "2", "x_2": "3", "y_2": "4"}, None, None, "box has a negative coordinate"),
        ({"x_1": "5", "y_1": "2", "x_2": "5", "y_2": "40"}, None, None, "zero-area or inverted box"),
        ({"x_1": "9", "y_1": "2", "x_2": "5", "y_2": "40"}, None, None, "zero-area or inverted box"),
        ({"x_1": "1", "y_1": "2", "x_2": "31", "y_2": "40"}, (30, 40), None, "is outside the 30x40 image"),
        ({"x_1": "1", "y_1": "", "x_2": "3", "y_2": "4"}, None, None, "box is not four whole numbers"),
    ],
)
def test_box_parsing_edge_cases(extra, size, box, reason):
    got, problem = parse_box(extra, size)
    assert got == box
    assert (problem is None) if reason is None else (reason in problem)
    if problem is not None:  # counted by its code, whatever values its text names
        assert problem.code in BOX_PROBLEMS and summarize([{**extra, **_checked(extra, size)}], ["a.jpg"])[
            "ignored"
        ] == {BOX_PROBLEMS[problem.code]: 1}


def _checked(extra, size):
    from labeler.ingest.validate import _box_checked

    return _box_checked(extra, size)


def test_boxes_from_a_workspace_without_problem_codes_still_count():
    extras = [{"x_1": "5", "y_1": "2", "x_2": "5", "y_2": "40", "bbox_problem": "zero-area or inverted box: 5 2 5 40"}]
    assert summarize(extras, ["a.jpg"])["ignored"] == {"unusable box": 1}


def test_margin_grows_the_box_and_stays_inside_the_image():
    assert with_margin((10, 10, 30, 50), (100, 100), 0.1) == (8, 6, 32, 54)
    assert with_margin((0, 0, 100, 100), (100, 100), 0.5) == (0, 0, 100, 100)


def test_the_crop_view_is_the_box_and_the_box_view_draws_it(tmp_path):
    from labeler.app.render import BOX_MARGIN, render_view

    pixels = np.zeros((100, 80, 3), np.uint8)  # black, with the garment a white block at x 20-60, y 30-70
    pixels[30:70, 20:60] = 255
    Image.fromarray(pixels).save(tmp_path / "a.png")
    box = (20, 30, 60, 70)
    crop = Image.open(io.BytesIO(render_view(tmp_path / "a.png", box, "crop")))
    x1, y1, x2, y2 = with_margin(box, (80, 100), BOX_MARGIN)
    assert crop.size == (x2 - x1, y2 - y1) == (48, 48)
    inner = np.asarray(crop.convert("L"))[6:-6, 6:-6]  # the margin is 4 px each side; the box is all white
    assert inner.min() > 200
    drawn = np.asarray(Image.open(io.BytesIO(render_view(tmp_path / "a.png", box, "box"))).convert("RGB"))
    assert drawn.shape == (100, 80, 3) and drawn[50, 20, 0] > 200 and drawn[50, 20, 2] < 120  # red outline at x_1


def _deepfashion_with_boxes(tmp_path):
    from tests.helpers import make_image

    entries = [
        (f"img/Item_{i // 3}/img_{i:08d}.jpg", 3 if i % 2 else 33, "train" if i < 16 else "test", (2, 2, 14, 14))
        for i in range(20)
    ]
    entries[0] = (entries[0][0], 3, "train", (9, 2, 4, 14))  # inverted
    entries[1] = (entries[1][0], 33, "train", (2, 2, 2, 14))  # zero width
    entries[2] = (entries[2][0], 3, "train", (2, 2, 14, 40))  # outside the 16 px image
    root = write_deepfashion(tmp_path / "DeepFashion", entries)
    for i, (name, *_rest) in enumerate(entries):
        make_image(root / "Img" / name, seed=i)
    return root, entries


def test_bad_boxes_import_their_images_and_status_names_them(cli, tmp_path):
    root, entries = _deepfashion_with_boxes(tmp_path)
    ws = tmp_path / "ws"
    cli("import", ws, root, "--min-per-class", "1")
    status = json.loads(cli("status", ws, "--json").output)
    assert status["items"] == 20  # every image imports
    assert status["boxes"]["valid"] == 17
    assert status["boxes"]["ignored"] == {"zero-area or inverted box": 2, "box outside the image": 1}
    assert status["class_types"]["Blouse"] == 1 and status["class_types"]["Skirt"] == 2
    text = cli("status", ws).output
    assert "17 usable garment boxes; 3 ignored" in text and "zero-area or inverted box: 9 2 4 14" in text
    assert "box 2 2 14 40 is outside the 16x16 image" in text
    assert "upper body: 1 classes" in text
    from labeler.app.handlers import ReviewUI
    from labeler.workspace import Workspace
    from tests.helpers import record_synthetic_round

    with Workspace.open(ws) as w:
        record_synthetic_round(w, seed=2, doubt=0.3)
        ids = {i.path: i.id for i in w.store.items()}
    cli("flag", ws)
    ui = ReviewUI(ws)
    good, inverted, outside = ids[entries[3][0]], ids[entries[0][0]], ids[entries[2][0]]
    path, rendered = ui.image_view(good, "crop")
    assert path is None and Image.open(io.BytesIO(rendered)).size == (15, 15)  # 12 px box + 1.2 px each side
    for item in (inverted, outside):  # an unusable box: the image as it is, in every view
        path, rendered = ui.image_view(item, "crop")
        assert rendered is None and path is not None and path.name.endswith(".jpg")
    assert ui.image_view(good, "full") == (ui.image_file(good), None)
    assert ui.image_view(10_000, "crop") == (None, None)


def test_cross_type_doubts_get_their_own_reason_and_filter(cli, tmp_path):
    from labeler.flag.reasons import Signals, explain
    from labeler.review import Filters, ReviewSession
    from labeler.workspace import Workspace
    from tests.helpers import record_synthetic_round

    def type_reasons(types, suggested: int) -> set[str]:  # a flagged Tee (class 0) the model calls ``suggested``
        one = np.ones(1)
        signals = Signals(
            item_ids=np.array([7]),
            vocab=["Tee", "Skirt", "Blouse", "Other"],
            labels=np.array([0]),
            pred_probs=np.full((1, 4), 0.25),
            suggested=np.array([suggested]),
            suggested_prob=0.9 * one,
            votes=np.array([[1.0, 0, 0, 0]]),
            is_issue=one > 0,
            also_doubted=one < 0,
            duplicate_groups=-one,
            conflict=one < 0,
            outlier=0 * one,
            is_outlier=one < 0,
            neighbour_rows=-np.ones((1, 1), int),
            reviewed={},
            class_types=types,
        )
        return {r["code"] for r in explain(0, signals)} & {"cross_type", "within_type"}

    types = [1, 2, 1, None]
    assert type_reasons(types, 1) == {"cross_type"}  # Tee -> Skirt
    assert type_reasons(types, 2) == {"within_type"}  # Tee -> Blouse
    assert type_reasons(types, 3) == set() and type_reasons(None, 1) == set()
    root, _ = _deepfashion_with_boxes(tmp_path)
    ws = tmp_path / "ws"
    cli("import", ws, root, "--min-per-class", "1")
    with Workspace.open(ws) as w:
        record_synthetic_round(w, seed=3, doubt=0.5)
    out = cli("flag", ws).output
    assert "doubts by category type" in out and "across types" in out
    with Workspace.open(ws) as w:
        item = ReviewSession(w, "ann").next_item(Filters(reason="cross_type"))
        assert item is not None and any(r["code"] == "cross_type" for r in item.reasons)
        assert "upper body" in next(r["text"] for r in item.reasons if r["code"] == "cross_type")


def test_the_training_crop_is_the_box_plus_its_margin(tmp_path):
    from labeler_training.data import BoxCrop

    pixels = np.zeros((100, 80, 3), np.uint8)
    pixels[30:70, 20:60] = 255
    Image.fromarray(pixels).save(tmp_path / "a.png")
    row = {"file": "a.png", "box_x1": 20, "box_y1": 30, "box_x2": 60, "box_y2": 70}
    assert BoxCrop(tmp_path, margin=0.0)(row).shape == (40, 40, 3)
    assert BoxCrop(tmp_path, margin=0.0)(row).min() == 255  # exactly the garment
    assert BoxCrop(tmp_path, margin=0.1)(row).shape == (48, 48, 3)
    assert BoxCrop(tmp_path)({**row, "box_x1": -1}).shape == (100, 80, 3)  # no box: the whole image


def test_train_crop_bbox_trains_on_the_boxes_and_is_refused_without_any(cli, tmp_path):
    from tests.helpers import FAST, tiny_dataset

    root, _ = _deepfashion_with_boxes(tmp_path)
    ws = tmp_path / "ws"
    cli("import", ws, root, "--min-per-class", "1")
    out = cli("train", ws, *FAST, "--crop", "bbox", "--crop-margin", "0.05").output
    assert "17 of 20 images cropped to their garment box (margin 0.05)" in out and "recorded round 1" in out
    labels = tiny_dataset(tmp_path / "plain")
    cli("import", tmp_path / "ws2", labels, "--min-per-class", "1")
    refused = cli("train", tmp_path / "ws2", *FAST, "--crop", "bbox", expect=2).output
    assert "no garment boxes" in refused and "train without --crop" in refused
