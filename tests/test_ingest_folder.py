from labeler.ingest import detect_format, import_dataset
from labeler.ingest.validate import Options
from labeler.workspace import Workspace
from tests.helpers import make_class_folders, make_image


def test_split_class_folders_with_validation_name(tmp_path):
    make_class_folders(tmp_path / "ds", {"hat": 3, "shoes": 2}, split="train")
    make_class_folders(tmp_path / "ds", {"hat": 1, "shoes": 1}, split="validation")
    make_class_folders(tmp_path / "ds", {"hat": 1, "shoes": 2}, split="test")
    assert detect_format(tmp_path / "ds") == "folder"
    result = import_dataset(tmp_path / "ws", tmp_path / "ds", options=Options(progress=False, min_per_class=1))
    assert result.splits == {"train": 5, "valid": 2, "test": 3}
    assert result.classes == ["hat", "shoes"]
    with Workspace.open(tmp_path / "ws") as ws:
        assert "validation/shoes/000.jpg" in {i.path for i in ws.store.items()}


def test_class_folders_only_get_a_split_and_odd_files_are_handled(tmp_path):
    make_class_folders(tmp_path / "ds", {"a": 10, "b": 10})
    (tmp_path / "ds" / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "ds" / "a" / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "ds" / "README.md").write_text("top-level files are not items")
    make_image(tmp_path / "ds" / "b" / "nested" / "deep.png", fmt="PNG")
    result = import_dataset(tmp_path / "ws", tmp_path / "ds", options=Options(progress=False))
    assert result.items == 21
    assert sum(result.splits.values()) == 21 and result.splits["test"] > 0
    with Workspace.open(tmp_path / "ws") as ws:
        assert dict(ws.store.quarantined()) == {"a/notes.txt": "not an image file (extension '.txt')"}
        assert ws.store.get_meta("split_assigned") is True


def test_import_of_a_folder_as_csv_says_which_format_reads_it(cli, tmp_path):
    from tests.helpers import make_class_folders

    make_class_folders(tmp_path / "ds", {"a": 2, "b": 2})
    out = cli("import", tmp_path / "ws", tmp_path / "ds", "--format", "csv", expect=2).output
    assert "is a folder" in out and "--format folder" in out
