import pytest

from labeler.errors import InputError
from labeler.ingest import import_dataset, read_source
from labeler.ingest.validate import Options
from labeler.workspace import Workspace
from tests.helpers import make_image

QUIET = Options(progress=False, min_per_class=1)


def _images(folder, names):
    for i, name in enumerate(names):
        make_image(folder / name, seed=i)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_fastai_train_labels_csv_with_any_line_end_and_bom(tmp_path, newline, bom):
    names = [
        "img/Take_Less,_Give_More_Tee/img_00000001.jpg",
        "img/Floral_Dress/img_00000002.jpg",
        "img/Ünï Dress/ç.jpg",
    ]
    _images(tmp_path, names)
    lines = ["image_name,category_name", f'"{names[0]}",Tee', f"{names[1]},Dress", f"{names[2]},Dress"]
    (tmp_path / "train_labels.csv").write_bytes(bom + newline.join(lines).encode() + newline.encode())
    table = read_source(tmp_path / "train_labels.csv")
    assert table.frame["path"].tolist() == names
    assert table.frame["label"].tolist() == ["Tee", "Dress", "Dress"]
    assert table.columns["image"] == "image_name" and table.columns["label"] == "category_name"


def test_configurable_columns_root_and_extra_columns_are_kept(tmp_path):
    _images(tmp_path / "pics", ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    csv = tmp_path / "meta" / "labels.csv"
    csv.parent.mkdir()
    csv.write_text(
        'file name,cls,part,note\na.jpg,x,train,"hello, world"\nb.jpg,y,train,\nc.jpg,x,val,\nd.jpg,y,test,\n'
    )
    result = import_dataset(
        tmp_path / "ws",
        csv,
        options=QUIET,
        root=tmp_path / "pics",
        image_col="file name",
        label_col="cls",
        split_col="part",
    )
    assert result.splits == {"train": 2, "valid": 1, "test": 1}
    with Workspace.open(tmp_path / "ws") as ws:
        first = ws.store.items()[0]
        assert first.extra == {"part": "train", "note": "hello, world"}
        assert ws.store.get_meta("columns")["order"] == ["file name", "cls", "part", "note"]


def test_fastai_is_valid_column(tmp_path):
    _images(tmp_path, ["a.jpg", "b.jpg", "c.jpg"])
    (tmp_path / "labels.csv").write_text("fname,labels,is_valid\na.jpg,x,False\nb.jpg,y,True\nc.jpg,y,False\n")
    assert read_source(tmp_path / "labels.csv").frame["split"].tolist() == ["train", "valid", "train"]


def test_no_split_column_makes_a_seeded_stratified_split_and_records_it(tmp_path):
    names = [f"{label}{i}.jpg" for label in "ab" for i in range(20)]
    _images(tmp_path, names)
    (tmp_path / "l.csv").write_text("image,label\n" + "".join(f"{n},{n[0]}\n" for n in names))
    options = Options(progress=False, valid_pct=0.25, test_pct=0.1, seed=7)
    result = import_dataset(tmp_path / "ws", tmp_path / "l.csv", options=options)
    assert result.splits == {"train": 26, "valid": 10, "test": 4}
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.store.get_meta("split_assigned") is True
        assert ws.store.get_meta("split_options") == {"valid_pct": 0.25, "test_pct": 0.1, "seed": 7}
        assert ws.store.class_counts()["a"] == {"train": 13, "valid": 5, "test": 2}
        first = [(i.path, i.split) for i in ws.store.items()]
    import_dataset(tmp_path / "ws2", tmp_path / "l.csv", options=options)
    with Workspace.open(tmp_path / "ws2") as ws:
        assert [(i.path, i.split) for i in ws.store.items()] == first  # same seed, same split


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"   \n", "is empty"),
        (b"image,label\n", r"has a header \(image, label\) but no rows"),
        (b"picture,label\na.jpg,x\n", "has none of the columns image, image_name.*--image-col"),
        (b"image,tag\na.jpg,x\n", "--label-col"),
        (b"image,label\n\xff\xfe,x\n", "is not UTF-8"),
        (b"image,label,split\na.jpg,x,holdout\n", r"row 1: split 'holdout'; use train, valid"),
        (b"image,label,split\na.jpg,x,train\nb.jpg,x,\n", r"row 2: an empty split"),
    ],
)
def test_bad_csv_gives_a_clear_error(tmp_path, content, message):
    (tmp_path / "labels.csv").write_bytes(content)
    with pytest.raises(InputError, match=message):
        import_dataset(tmp_path / "ws", tmp_path / "labels.csv", options=QUIET)
    assert not (tmp_path / "ws").exists()  # a failed import leaves no half workspace


def test_named_column_that_does_not_exist(tmp_path):
    (tmp_path / "labels.csv").write_text("image,label\na.jpg,x\n")
    with pytest.raises(InputError, match=r"no column 'category' \(columns: image, label\)"):
        read_source(tmp_path / "labels.csv", label_col="category")


def test_csv_options_on_a_folder_source_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(InputError, match="apply to CSV sources"):
        read_source(tmp_path, image_col="x")
