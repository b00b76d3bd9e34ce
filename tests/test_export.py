import csv

import pytest

from labeler.workspace import Workspace
from tests.helpers import make_image

NAMES = [
    "img/Take_Less,_Give_More_Tee/a.jpg",
    'img/the "quoted" one/b.jpg',
    "img/Ünïcødé ドレス/c.jpg",
    "img/plain/d.jpg",
    "img/plain/e.jpg",
    "img/plain/f.jpg",
]


def _source(folder):
    for i, name in enumerate(NAMES):
        make_image(folder / name, seed=i)
    rows = [["image_name", "category_name", "is_valid", "note"]]
    labels = ["Tee", "Dress", "Dress", "Tee", "Dress", "Tee"]
    for i, (name, label) in enumerate(zip(NAMES, labels)):
        rows.append([name, label, "True" if i == 3 else "False", f"n{i}, with comma"])
    with open(folder / "train_labels.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return folder / "train_labels.csv", rows


def _read(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_round_trip_applies_decisions_and_keeps_untouched_rows(cli, tmp_path):
    source, rows = _source(tmp_path / "ds")
    cli("import", tmp_path / "ws", source, "--min-per-class", "1")
    with Workspace.open(tmp_path / "ws") as ws:
        ids = {i.path: i.id for i in ws.store.items()}
        s = ws.store
        s.add_decision(ids[NAMES[0]], reviewer="ann", action="relabel", label="Dress", old_label="Tee")
        s.add_decision(ids[NAMES[1]], reviewer="ann", action="remove", old_label="Dress", reason="several_garments")
        undone = s.add_decision(ids[NAMES[2]], reviewer="bob", action="relabel", label="Tee", old_label="Dress")
        s.add_decision(ids[NAMES[2]], reviewer="bob", action="undo", undoes=undone)
        s.add_decision(ids[NAMES[3]], reviewer="bob", action="skip")
    result = cli("export", tmp_path / "ws", tmp_path / "out.csv", "--audit", tmp_path / "audit.csv").output
    assert "1 labels changed, 1 images removed (left out)" in result
    out = _read(tmp_path / "out.csv")
    assert out[0] == rows[0]
    expected = [rows[1][:1] + ["Dress"] + rows[1][2:]] + rows[3:]
    assert out[1:] == expected  # same path strings, same is_valid values, same extra columns
    audit = _read(tmp_path / "audit.csv")
    assert audit[0] == ["image", "split", "old_label", "new_label", "action", "reason", "reviewer", "time", "undone"]
    assert [(r[0], r[3], r[4], r[8]) for r in audit[1:]] == [
        (NAMES[0], "Dress", "relabel", "0"),
        (NAMES[1], "", "remove", "0"),
        (NAMES[2], "Tee", "relabel", "1"),
        (NAMES[3], "", "skip", "0"),
    ]  # skips are listed; the undo row is not, it marks what it undid
    same = cli("export", tmp_path / "ws", tmp_path / "x.csv", "--audit", tmp_path / "x.csv", expect=2).output
    assert "would be one file" in same and not (tmp_path / "x.csv").exists()
    cli("export", tmp_path / "ws", tmp_path / "all.csv", "--include-removed")
    marked = _read(tmp_path / "all.csv")
    assert marked[0][-1] == "labeler_removed" and marked[2][-1] == "several_garments" and len(marked) == 7


def test_export_refuses_to_overwrite(cli, tmp_path):
    source, _ = _source(tmp_path / "ds")
    cli("import", tmp_path / "ws", source, "--min-per-class", "1")
    assert "refusing to overwrite the source" in cli("export", tmp_path / "ws", source, expect=2).output
    cli("export", tmp_path / "ws", tmp_path / "out.csv")
    assert "exists" in cli("export", tmp_path / "ws", tmp_path / "out.csv", expect=2).output
    cli("export", tmp_path / "ws", tmp_path / "out.csv", "--force")
    assert not list(tmp_path.glob(".out.csv.*"))


@pytest.mark.parametrize("layout", ["folder", "deepfashion"])
def test_export_of_other_layouts(cli, tmp_path, layout):
    from labeler.bench.synthetic import write_deepfashion
    from tests.helpers import make_class_folders

    if layout == "folder":
        make_class_folders(tmp_path / "ds", {"hat": 3, "shoe": 3}, split="validation")
        make_class_folders(tmp_path / "ds", {"hat": 3, "shoe": 3}, split="train")
        header = ["image", "label", "split"]
    else:
        entries = [
            (f"img/A,_B_Tee/img_{i:08d}.jpg", 18 if i % 2 else 41, "val" if i < 2 else "train", (1, 2, 3, 4))
            for i in range(8)
        ]
        write_deepfashion(tmp_path / "ds", entries)
        for i, (p, *_) in enumerate(entries):
            make_image(tmp_path / "ds" / "Img" / p, seed=i)
        header = ["image_name", "category_name", "evaluation_status", "x_1", "y_1", "x_2", "y_2"]
    cli("import", tmp_path / "ws", tmp_path / "ds", "--min-per-class", "1")
    cli("export", tmp_path / "ws", tmp_path / "out.csv")
    out = _read(tmp_path / "out.csv")
    assert out[0] == header and len(out) == 13 - (4 if layout == "deepfashion" else 0)
    assert ("validation" if layout == "folder" else "val") in {r[2] for r in out[1:]}


def test_quarantined_rows_are_kept_marked_and_counted_and_a_split_made_at_import_is_written(cli, tmp_path):
    from tests.helpers import make_image

    ds = tmp_path / "ds"
    for i in range(12):
        make_image(ds / f"{i}.jpg", seed=i)
    (ds / "broken.jpg").write_bytes(b"not a picture")
    rows = [f"{i}.jpg,{'a' if i % 2 else 'b'}" for i in range(12)] + ["broken.jpg,a"]
    (ds / "labels.csv").write_text("image,label\n" + "\n".join(rows) + "\n")  # no split column
    cli("import", tmp_path / "ws", ds / "labels.csv", "--min-per-class", "1")
    out = cli("export", tmp_path / "ws", tmp_path / "out.csv").output
    assert "1 quarantined at import (kept unchanged, marked in labeler_quarantined)" in out
    import csv

    with open(tmp_path / "out.csv", newline="") as fh:
        written = list(csv.DictReader(fh))
    assert list(written[0]) == ["image", "label", "split", "labeler_quarantined"]
    assert len(written) == 13 and {r["split"] for r in written} <= {"train", "valid", "test"}
    marked = {r["image"]: r["labeler_quarantined"] for r in written if r["labeler_quarantined"]}
    assert list(marked) == ["broken.jpg"] and marked["broken.jpg"]
