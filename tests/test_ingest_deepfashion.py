import pytest

from labeler.bench.synthetic import DEEPFASHION_CATEGORIES, write_deepfashion
from labeler.errors import InputError
from labeler.ingest import detect_format, import_dataset, read_source
from labeler.ingest.validate import Options
from labeler.workspace import Workspace
from tests.helpers import make_image

ITEMS = [
    ("img/Sheer_Pleated-Front_Blouse/img_00000001.jpg", 3, "train", (72, 79, 232, 273)),
    ("img/Take_Less,_Give_More_Tee/img_00000002.jpg", 18, "val", (10, 20, 30, 40)),
    ("img/Young,_Beautiful,_&_Glamorous_Sweater/img_00000003.jpg", 16, "test", (1, 2, 3, 4)),
    ("img/Boho_Girl's_Romper/img_00000004.jpg", 48, "train", (5, 6, 7, 8)),
    ("img/Floral_Dress/img_00000005.jpg", 41, "train", (9, 10, 11, 12)),
    ("img/Sheer_Pleated-Front_Blouse/img_00000006.jpg", 3, "train", (13, 14, 15, 16)),
]


def _dataset(tmp_path, *, anno="Anno_coarse", newline="\n", image_root="Img", entries=ITEMS):
    root = write_deepfashion(tmp_path / "DeepFashion", entries, anno=anno, newline=newline)
    for i, (path, *_rest) in enumerate(entries):
        make_image(root / image_root / path if image_root else root / path, seed=i, size=300)  # the boxes fit
    return root


def test_the_documented_format_byte_for_byte(tmp_path):
    """The files exactly as docs/deepfashion.md shows them: counts, headers, padded columns."""
    root = tmp_path / "DeepFashion"
    (root / "Anno").mkdir(parents=True)
    (root / "Eval").mkdir()
    cloth = "50\ncategory_name  category_type\n" + "".join(f"{n:<23}{t}\n" for n, t in DEEPFASHION_CATEGORIES)
    (root / "Anno" / "list_category_cloth.txt").write_text(cloth)
    name = "img/Sheer_Pleated-Front_Blouse/img_00000001.jpg"
    line = name + " " * (70 - len(name)) + "3"
    assert line.index("3", len(name)) == 70  # the label starts at column 71
    (root / "Anno" / "list_category_img.txt").write_text(f"1\nimage_name  category_label\n{line}\n")
    (root / "Eval" / "list_eval_partition.txt").write_text(
        f"1\nimage_name  evaluation_status\n{name}{' ' * (70 - len(name))}train\n"
    )
    make_image(root / "Img" / name)
    table = read_source(root)
    assert table.format == "deepfashion"
    assert table.frame[["path", "label", "split"]].values.tolist() == [[name, "Blouse", "train"]]


@pytest.mark.parametrize("anno", ["Anno_coarse", "Anno"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_import_maps_one_based_ids_keeps_odd_folder_names_and_bboxes(tmp_path, anno, newline):
    root = _dataset(tmp_path, anno=anno, newline=newline)
    assert detect_format(root) == "deepfashion"
    result = import_dataset(tmp_path / "ws", root, options=Options(progress=False, min_per_class=1))
    assert result.classes == ["Blouse", "Dress", "Romper", "Sweater", "Tee"]
    assert result.splits == {"train": 4, "valid": 1, "test": 1}
    with Workspace.open(tmp_path / "ws") as ws:
        items = {i.path: i for i in ws.store.items()}
        assert set(items) == {p for p, *_ in ITEMS}
        tee = items["img/Take_Less,_Give_More_Tee/img_00000002.jpg"]
        assert (tee.label, tee.split, tee.extra) == (
            "Tee",
            "valid",
            {"x_1": "010", "y_1": "020", "x_2": "030", "y_2": "040", "evaluation_status": "val"},
        )
        assert items["img/Boho_Girl's_Romper/img_00000004.jpg"].label == "Romper"
        assert ws.image_path(tee.file).exists()


def test_images_directly_under_the_folder_and_tabs_blank_first_line(tmp_path):
    root = _dataset(tmp_path, image_root="")
    for name in ("Anno_coarse/list_category_img.txt", "Eval/list_eval_partition.txt"):
        path = root / name
        lines = path.read_text().splitlines()
        path.write_text("\n" + "\n".join(lines[:2] + [" \t ".join(line.split()) for line in lines[2:]]))
    result = import_dataset(tmp_path / "ws", root, options=Options(progress=False, min_per_class=1))
    assert result.items == len(ITEMS) and not result.quarantined


def test_empty_categories_are_not_in_the_vocabulary(tmp_path):
    result = import_dataset(tmp_path / "ws", _dataset(tmp_path), options=Options(progress=False, min_per_class=1))
    assert not set(result.classes) & {"Cape", "Nightdress", "Shirtdress", "Sundress"}


def test_unknown_category_id_and_missing_partition_are_quarantined(tmp_path):
    entries = ITEMS + [("img/Odd_Thing/img_00000007.jpg", 51, "train", None)]
    root = _dataset(tmp_path, entries=entries)
    partition = root / "Eval" / "list_eval_partition.txt"
    lines = partition.read_text().splitlines()
    partition.write_text("\n".join([str(len(lines) - 3), *lines[1:-1]]) + "\n")  # drop the last image's line
    result = import_dataset(tmp_path / "ws", root, options=Options(progress=False, min_per_class=1))
    assert result.items == len(ITEMS) - 0  # all the good ones
    with Workspace.open(tmp_path / "ws") as ws:
        reasons = dict(ws.store.quarantined())
    assert "not a row of list_category_cloth.txt (1-50)" in reasons["img/Odd_Thing/img_00000007.jpg"]


def test_missing_partition_file_is_a_clear_error(tmp_path):
    root = _dataset(tmp_path)
    (root / "Eval" / "list_eval_partition.txt").unlink()
    with pytest.raises(InputError, match="Eval/list_eval_partition.txt"):
        read_source(root, format="deepfashion")


def test_record_with_wrong_field_count_names_file_and_record(tmp_path):
    root = _dataset(tmp_path)
    path = root / "Anno_coarse" / "list_category_img.txt"
    path.write_text(path.read_text().replace("img_00000002.jpg", "img_00000002.jpg extra"))
    with pytest.raises(InputError, match=r"list_category_img.txt, record 2: expected 2 fields, found 3"):
        read_source(root)


def test_count_line_mismatch_is_reported(tmp_path):
    root = _dataset(tmp_path)
    path = root / "Anno_coarse" / "list_category_img.txt"
    path.write_text("289222" + path.read_text()[1:])
    table = read_source(root)
    assert any("line 1 says 289222 records but the file has 6" in w for w in table.warnings)


def test_category_list_matches_the_documented_ids():
    assert len(DEEPFASHION_CATEGORIES) == 50
    assert DEEPFASHION_CATEGORIES[37] == ("Cape", 3) and DEEPFASHION_CATEGORIES[2] == ("Blouse", 1)
    assert DEEPFASHION_CATEGORIES[20] == ("Capris", 2) and DEEPFASHION_CATEGORIES[49] == ("Sundress", 3)
