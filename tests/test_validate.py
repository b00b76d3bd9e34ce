import os

import pytest
from PIL import Image

from labeler.errors import InputError
from labeler.ingest import import_dataset
from labeler.ingest.validate import Options, check_image
from labeler.workspace import Workspace
from tests.helpers import make_image

QUIET = Options(progress=False, min_per_class=1)


def _good_rows(folder, n=4):
    rows = []
    for i in range(n):
        label = "ab"[i % 2]
        make_image(folder / f"good{i}.jpg", seed=i)
        rows.append(f"good{i}.jpg,{label},train")
    return rows


def _import(tmp_path, extra_rows, options=QUIET):
    ds = tmp_path / "ds"
    rows = _good_rows(ds) + extra_rows
    (ds / "labels.csv").write_text("image,label,split\n" + "\n".join(rows) + "\n")
    result = import_dataset(tmp_path / "ws", ds / "labels.csv", options=options)
    with Workspace.open(tmp_path / "ws") as ws:
        return result, dict(ws.store.quarantined())


def test_each_bad_image_is_quarantined_with_its_reason_and_the_rest_imports(tmp_path):
    ds = tmp_path / "ds"
    make_image(ds / "truncated.jpg", size=64)
    data = (ds / "truncated.jpg").read_bytes()
    (ds / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (ds / "empty.jpg").write_bytes(b"")
    (ds / "text.jpg").write_text("this is not a picture")
    Image.new("L", (300, 300)).save(ds / "huge.png")
    outside = tmp_path / "outside.jpg"
    make_image(outside)
    os.symlink(outside, ds / "link.jpg")
    os.mkfifo(ds / "pipe.jpg")  # opening it would wait forever for a writer
    rows = [
        "pipe.jpg,a,train",
        "missing.jpg,a,train",
        "truncated.jpg,a,train",
        "empty.jpg,a,train",
        "text.jpg,b,train",
        "huge.png,b,train",
        "../outside.jpg,a,train",
        f"{outside},a,train",
        "link.jpg,b,train",
    ]
    options = Options(progress=False, min_per_class=1, max_pixels=200 * 200)
    result, reasons = _import(tmp_path, rows, options)
    assert result.items == 4
    assert reasons["missing.jpg"] == "file not found"
    assert reasons["truncated.jpg"].startswith("unreadable image")
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert reasons["pipe.jpg"].startswith("not a regular file (a FIFO)")
    assert reasons["text.jpg"].startswith("not an image")
    assert reasons["huge.png"].startswith("image too large (300x300 = 90,000 pixels > 40,000")
    assert reasons["../outside.jpg"] == "path leads outside the dataset root ('..')"
    assert reasons[str(outside)].startswith("absolute path outside the dataset root")
    assert reasons["link.jpg"].startswith("resolves outside the dataset root (symlink")


def test_image_checks_run_in_worker_processes(tmp_path):
    ds = tmp_path / "ds"
    rows = []
    for i in range(300):  # above the in-process threshold
        make_image(ds / f"x{i}.jpg", seed=i, size=8)
        rows.append(f"x{i}.jpg,{'ab'[i % 2]},train")
    (ds / "broken.jpg").write_text("nope")
    (ds / "labels.csv").write_text("image,label,split\n" + "\n".join(rows + ["broken.jpg,a,train"]) + "\n")
    result = import_dataset(tmp_path / "ws", ds / "labels.csv", options=Options(progress=False, workers=2))
    assert result.items == 300 and sum(result.quarantined.values()) == 1


def test_absolute_path_inside_the_root_is_accepted(tmp_path):
    ds = tmp_path / "ds"
    make_image(ds / "abs.jpg")
    result, reasons = _import(tmp_path, [f"{ds / 'abs.jpg'},a,train"])
    assert result.items == 5 and not reasons


def test_duplicates_same_label_keep_first_conflicting_quarantine_all(tmp_path):
    ds = tmp_path / "ds"
    make_image(ds / "dup.jpg")
    make_image(ds / "clash.jpg")
    rows = ["dup.jpg,a,train", "./dup.jpg,a,train", "clash.jpg,a,train", "clash.jpg,b,train"]
    result, reasons = _import(tmp_path, rows)
    assert result.items == 5
    assert reasons["./dup.jpg"] == "duplicate of row 5 (same image, same label)"
    assert reasons["clash.jpg"].startswith("conflicting labels for the same image: row 7 'a', row 8 'b'")


def test_the_import_summary_counts_quarantine_reasons_by_kind_not_by_their_text(tmp_path):
    ds = tmp_path / "ds"
    for name in ("x.jpg", "y.jpg", "z.jpg"):
        make_image(ds / name)
    rows = ["x.jpg,a,train", "x.jpg,a,train", "y.jpg,a,train", "y.jpg,a,train", "z.jpg,a,train", "./z.jpg,a,train"]
    result, reasons = _import(tmp_path, rows + ["gone1.jpg,a,train", "gone2.jpg,b,train"])
    assert len({reasons[r.split(",")[0]] for r in rows[1::2]}) == 3  # three texts: each names its own row
    assert result.quarantined == {"duplicate": 3, "file not found": 2}


def test_empty_label_is_quarantined(tmp_path):
    make_image(tmp_path / "ds" / "nolabel.jpg")
    _, reasons = _import(tmp_path, ["nolabel.jpg,,train"])
    assert reasons == {"nolabel.jpg": "empty label"}


def test_label_case_and_space_variants_are_refused_unless_merged(tmp_path):
    ds = tmp_path / "ds"
    make_image(ds / "v1.jpg")
    make_image(ds / "v2.jpg")
    rows = ["v1.jpg,A,train", "v2.jpg, a ,train"]
    with pytest.raises(
        InputError, match=r"differ only in case.*'a' \(2 rows, first row 1\), 'A' \(1 rows.*--merge-label-variants"
    ):
        _import(tmp_path, rows)
    result, _ = _import(tmp_path, rows, Options(progress=False, min_per_class=1, merge_label_variants=True))
    assert result.classes == ["a", "b"]
    assert any("merged label spellings" in w for w in result.warnings)


def test_single_class_and_all_missing_are_errors(tmp_path):
    (tmp_path / "one").mkdir()
    make_image(tmp_path / "one" / "x.jpg")
    (tmp_path / "one" / "l.csv").write_text("image,label\nx.jpg,a\n")
    with pytest.raises(InputError, match=r"only one class \('a'\).*at least two"):
        import_dataset(tmp_path / "ws", tmp_path / "one" / "l.csv", options=QUIET)
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "l.csv").write_text("image,label\nx.jpg,a\ny.jpg,b\n")
    with pytest.raises(InputError, match="none of the 2 images exist under .*--root"):
        import_dataset(tmp_path / "ws", tmp_path / "none" / "l.csv", options=QUIET)


def test_small_class_warns_about_folds(tmp_path):
    result, _ = _import(tmp_path, [], Options(progress=False, min_per_class=5))
    assert any(
        "class 'a' has 2 train/valid images, fewer than --min-per-class 5" in w and "--folds than 2" in w
        for w in result.warnings
    )


def test_no_verify_images_skips_file_checks_but_not_path_checks(tmp_path):
    rows = ["ghost.jpg,a,train", "../escape.jpg,b,train"]
    result, reasons = _import(tmp_path, rows, Options(progress=False, min_per_class=1, verify_images=False))
    assert result.items == 5
    assert list(reasons) == ["../escape.jpg"]


def test_check_image_accepts_a_good_png(tmp_path):
    assert check_image(str(make_image(tmp_path / "ok.png", fmt="PNG"))) == ""


def test_workers_0_checks_the_images_in_this_process(tmp_path, monkeypatch):
    """`labeler train --workers 0` (no worker processes) crashed in the image check with ValueError once a set had
    more images than the parallel threshold."""
    import importlib

    from tests.helpers import make_image

    validate = importlib.import_module("labeler.ingest.validate")  # the package exports a function of that name
    monkeypatch.setattr(validate, "_PARALLEL_MIN", 3)
    paths = [str(make_image(tmp_path / f"{i}.jpg", seed=i)) for i in range(5)]
    problems = validate.check_files(paths, str(tmp_path), workers=0, progress=False)
    assert len(problems) == 5 and not any(problems)


def test_a_label_with_a_line_break_is_quarantined_with_the_label_shown(tmp_path):
    make_image(tmp_path / "ds" / "broken.jpg")
    make_image(tmp_path / "ds" / "fine.jpg")
    _, reasons = _import(tmp_path, ['broken.jpg,"Dre\nss",train', "fine.jpg,Dress,train"])
    assert reasons == {"broken.jpg": "label 'Dre\\nss' holds a line break or control character"}


def test_merged_label_variants_take_the_most_common_trimmed_spelling(tmp_path):
    ds = tmp_path / "ds"
    for i in range(6):
        make_image(ds / f"v{i}.jpg", seed=i)
    # 'Dress' x2 raw, 'dress ' x2 and 'dress' x1: trimmed, 'dress' (3) outnumbers 'Dress' (2)
    rows = [
        "v0.jpg,Dress,train",
        "v1.jpg,Dress,train",
        "v2.jpg,dress ,train",
        "v3.jpg,dress ,train",
        "v4.jpg,dress,train",
        "v5.jpg,b,train",
    ]
    result, _ = _import(tmp_path, rows, Options(progress=False, min_per_class=1, merge_label_variants=True))
    assert "dress" in result.classes and "Dress" not in result.classes
