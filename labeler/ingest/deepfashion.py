"""Reader for DeepFashion's Category and Attribute Prediction benchmark folder.

Layout (the benchmark's own README; README.md's Formats section): ``Anno_coarse/`` or ``Anno/`` with
``list_category_cloth.txt`` and ``list_category_img.txt`` (optional ``list_bbox.txt``),
``Eval/list_eval_partition.txt``, images under ``Img/img/...`` or ``img/...``.
Every list file: record count, a header line, then whitespace-separated records;
tabs, CRLF/CR line ends, blank lines and a BOM are tolerated.
"""

from __future__ import annotations

from pathlib import Path

from labeler.errors import InputError, Problem
from labeler.ingest.table import RawTable, make_frame_columns
from labeler.ingest.validate import SPLIT_ALIASES

ANNO_DIRS = ("Anno_coarse", "Anno")
BOX_FIELDS = ("x_1", "y_1", "x_2", "y_2")


def looks_like_without_eval(source: Path) -> bool:
    """DeepFashion annotations are there but Eval/ is not (a partial download or copy)."""
    return source.is_dir() and _anno_dir(source) is not None and not (source / "Eval").is_dir()


def looks_like(source: Path) -> bool:
    """True when ``source`` is a folder with DeepFashion annotation files."""
    return source.is_dir() and _anno_dir(source) is not None and (source / "Eval").is_dir()


def read(source: Path) -> RawTable:
    """Read a DeepFashion folder into a RawTable (labels as category names)."""
    anno = _anno_dir(source)
    if anno is None:
        raise InputError(
            f"{source} has no Anno_coarse/list_category_img.txt or Anno/list_category_img.txt; "
            "point labeler at the DeepFashion folder that holds Anno_coarse/ (or Anno/), Eval/ and Img/"
        )
    warnings: list[str] = []
    cloth = _read_list(_require(anno / "list_category_cloth.txt"), 2, warnings)
    names = [name for name, _type in cloth]
    types = {name: int(kind) for name, kind in cloth if kind.isdigit()}
    labels = _read_list(anno / "list_category_img.txt", 2, warnings)
    partition = _read_list(_require(source / "Eval" / "list_eval_partition.txt"), 2, warnings)
    for record, (path, value) in enumerate(partition, start=1):
        if value.strip().lower() not in SPLIT_ALIASES:
            raise InputError(
                f"{source / 'Eval' / 'list_eval_partition.txt'}, record {record} ({path}): unknown evaluation "
                f"status {value!r}; use train, val or test"
            )
    bbox_file = anno / "list_bbox.txt"
    bboxes = _read_list(bbox_file, 5, warnings) if bbox_file.exists() else []
    paths = [r[0] for r in labels]
    named = {cat: _category_name(names, cat) for cat in {r[1] for r in labels}}  # 46 ids, 289k rows
    label_names, problems = zip(*(named[r[1]] for r in labels)) if labels else ((), ())
    splits = _aligned(paths, partition, lambda r: r[1], "")
    boxes = _aligned(paths, bboxes, lambda r: dict(zip(BOX_FIELDS, r[1:])), None)
    extras, problems = [], list(problems)
    for i, (split, box) in enumerate(zip(splits, boxes)):
        extra = box or {}
        if split:
            extra["evaluation_status"] = split
        elif not problems[i]:
            problems[i] = Problem("not_in_partition", "not listed in Eval/list_eval_partition.txt")
        extras.append(extra)
    frame = make_frame_columns(
        row=range(1, len(paths) + 1),
        path=paths,
        file=paths,
        label=label_names,
        split=[split or "train" for split in splits],
        extra=extras,
        problem=problems,
    )
    columns = {"image": "image_name", "label": "category_name", "split": "evaluation_status"}
    return RawTable(frame, _image_root(source), "deepfashion", source, columns, warnings, types)


def _anno_dir(source: Path) -> Path | None:
    for name in ANNO_DIRS:
        if (source / name / "list_category_img.txt").is_file():
            return source / name
    return None


def _image_root(source: Path) -> Path:
    """The folder that ``img/<Item>/img_N.jpg`` paths are relative to."""
    if (source / "Img" / "img").is_dir() or not (source / "img").is_dir():
        return source / "Img"
    return source


def _require(path: Path) -> Path:
    if not path.is_file():
        raise InputError(f"missing {path}; the DeepFashion folder needs Eval/list_eval_partition.txt")
    return path


def _read_list(path: Path, width: int, warnings: list[str]) -> list[list[str]]:
    """Records of a list_*.txt file: count line, header line, then ``width`` fields per line."""
    try:
        text = _require(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    lines = [line.split() for line in text.splitlines()]
    lines = [fields for fields in lines if fields]
    if len(lines) < 2 or len(lines[0]) != 1 or not lines[0][0].isdigit():
        raise InputError(f"{path}: line 1 must be the number of records, then a header line; is this a list_*.txt?")
    count, records = int(lines[0][0]), lines[2:]
    for number, fields in enumerate(records, start=1):
        if len(fields) != width:
            raise InputError(
                f"{path}, record {number}: expected {width} fields, found {len(fields)}: {' '.join(fields)!r}"
            )
    if count != len(records):
        warnings.append(f"{path.name}: line 1 says {count} records but the file has {len(records)}")
    return records


def _aligned(paths: list[str], records: list[list[str]], value, missing) -> list:
    """``value(record)`` of each path's record in ``records`` (keyed by its first field), ``missing`` where
    none. DeepFashion's lists share one order, so that is checked first (cheaper than a dict of every path)."""
    if len(records) == len(paths) and all(map(str.__eq__, paths, (r[0] for r in records))):
        return [value(r) for r in records]
    by_path = {r[0]: r for r in records}
    return [value(by_path[p]) if p in by_path else missing for p in paths]


def _category_name(names: list[str], cat: str) -> tuple[str, str]:
    """(name, problem) of a 1-based category id; an unusable id gives a problem to quarantine for."""
    if cat.isdigit() and 1 <= int(cat) <= len(names):
        return names[int(cat) - 1], ""
    return cat, Problem(
        "unknown_category", f"category_label {cat!r} is not a row of list_category_cloth.txt (1-{len(names)})"
    )
