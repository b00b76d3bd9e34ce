"""Turn a RawTable into a validated table: splits normalised, bad records quarantined.

Whole-dataset problems (no rows, one class, labels that differ only in case or spaces,
an unknown split name, no image found at all) raise ``InputError``. Problems of single
records (missing, empty, unreadable, truncated, non-image or oversized file, a path that
leads outside the dataset root, a duplicate, an empty label) quarantine that record with
a reason; the rest imports.
"""

from __future__ import annotations

import os
import posixpath
import random
import stat
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from labeler.boxes import parse_box
from labeler.errors import InputError, Problem
from labeler.ingest.table import RawTable
from labeler.store.records import ItemRecord
from labeler_training.files import HIGH_DEPTH_MODES

SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "trn": "train",
    "valid": "valid",
    "validation": "valid",
    "val": "valid",
    "dev": "valid",
    "test": "test",
    "testing": "test",
    "tst": "test",
}
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's decompression-bomb limit
_PARALLEL_MIN = 256  # below this many images, checking in-process is faster than starting workers


@dataclass
class Options:
    verify_images: bool = True
    workers: int | None = None
    valid_pct: float = 0.2
    test_pct: float = 0.1
    seed: int = 42
    merge_label_variants: bool = False
    min_per_class: int = 5
    max_pixels: int = DEFAULT_MAX_PIXELS
    progress: bool = True
    single_class: bool = False  # `evaluate` scores a model on any labelled set, one class included


@dataclass
class Validated:
    records: list[ItemRecord]
    classes: list[str]  # the pinned vocabulary: sorted names of the classes that occur
    warnings: list[str] = field(default_factory=list)
    split_assigned: bool = False

    def quarantine_counts(self) -> Counter:
        return Counter(
            getattr(r.reason, "code", r.reason).replace("_", " ") for r in self.records if r.status == "quarantined"
        )


def validate(table: RawTable, options: Options) -> Validated:
    """Validate ``table``; see the module docstring for what raises and what quarantines."""
    frame = table.frame
    if len(frame) == 0:
        raise InputError(f"{table.source} lists no images")
    rows, paths, files, labels, splits = (frame[c].tolist() for c in ("row", "path", "file", "label", "split"))
    problems = [p or "" for p in frame["problem"].tolist()]
    warnings = list(table.warnings)
    labels = _check_labels(labels, rows, problems, table, options, warnings)
    root_real = os.path.realpath(table.root)
    files = [_relative_file(f, root_real) for f in files]
    norms = [posixpath.normpath(f) for f in files]
    _mark(problems, [_path_problem(f, norm, root_real) for f, norm in zip(files, norms)])
    _mark(problems, _duplicates(norms, labels, rows))
    splits, assigned = _normalise_splits(splits, rows, labels, problems, table, options)
    image_sizes: dict[int, tuple[int, int]] = {}  # filled when the images are checked: boxes are checked against them
    if options.verify_images:
        _mark(problems, _check_files(files, root_real, problems, options, image_sizes))
        if all(p.startswith("file not found") for p in problems):
            raise InputError(
                f"none of the {len(files)} images exist under {table.root} (first looked for: "
                f"{os.path.join(table.root, files[0])}); check the path, or pass --root to the folder they are in"
            )
    classes = sorted({label for label, p in zip(labels, problems) if not p})
    _check_classes(classes, labels, splits, problems, table, options, warnings)
    extras = [_box_checked(extra, image_sizes.get(i)) for i, extra in enumerate(frame["extra"].tolist())]
    records = [
        ItemRecord(row, path, file, label, split, "quarantined" if p else "ok", p or None, extra)
        for row, path, file, label, split, p, extra in zip(rows, paths, files, labels, splits, problems, extras)
    ]
    return Validated(records, classes, warnings, assigned)


def _box_checked(extra: dict, size=None) -> dict:
    """``extra`` with ``bbox_problem`` set when its box columns hold an unusable box (the image still imports);
    ``size``: the image's (width, height), when known, to refuse a box outside it."""
    if not extra or "x_1" not in extra:
        return extra
    _, problem = parse_box(extra, size)
    return {**extra, "bbox_problem": str(problem), "bbox_problem_code": problem.code} if problem else extra


NUL_TEXT = "image path contains a NUL byte (a damaged or binary CSV field)"


def high_depth_reason(mode: str) -> str:
    return (
        f"16-bit or floating-point image (mode {mode}) would be clipped to white or black by the 8-bit pipeline; "
        "convert it to 8-bit RGB (e.g. PIL: scale to 0-255, then convert('RGB'))"
    )


def check_image(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    """ "" when ``path`` is a complete, decodable image of at most ``max_pixels``; else the reason."""
    return check_image_size(path, max_pixels)[0]


def check_image_size(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[str, tuple[int, int] | None]:
    """(``check_image``'s reason, the image's (width, height) when it could be read)."""
    from PIL import Image, UnidentifiedImageError

    size = None

    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):  # never opened: a FIFO would block the import
            kinds = {stat.S_ISFIFO: "a FIFO", stat.S_ISDIR: "a folder"}
            kind = next((name for test, name in kinds.items() if test(info.st_mode)), "a device or socket")
            return Problem("not_a_file", f"not a regular file ({kind}); copy the image into a plain file"), None
        if info.st_size == 0:
            return Problem("empty_file", "empty file (0 bytes)"), None
    except FileNotFoundError:
        return Problem("file_not_found", "file not found"), None
    except OSError as exc:
        return Problem("unreadable_file", f"cannot read file ({exc.strerror})"), None
    except ValueError as exc:  # e.g. a NUL byte in the path
        return Problem("unusable_path", f"unusable path ({exc})"), None
    Image.MAX_IMAGE_PIXELS = None  # the size check below replaces Pillow's warning/exception
    try:
        with Image.open(path) as img:
            width, height = size = img.size
            if width * height > max_pixels:
                text = (
                    f"image too large ({width}x{height} = {width * height:,} pixels > {max_pixels:,}, "
                    "decompression-bomb guard; pass --max-pixels to allow it)"
                )
                return Problem("too_large", text), size
            if img.mode in HIGH_DEPTH_MODES:
                return Problem("high_depth", high_depth_reason(img.mode)), size
            img.draft("RGB", (max(1, width // 4), max(1, height // 4)))  # JPEG: decode at 1/4 scale, all data
            img.load()
    except UnidentifiedImageError:
        return Problem("not_an_image", "not an image (Pillow cannot identify the file)"), None
    except (OSError, SyntaxError, ValueError) as exc:
        return Problem("unreadable_image", f"unreadable image ({exc})"), size
    return "", size


def _mark(problems: list[str], found) -> None:
    """Keep the first problem found for each record."""
    for i, problem in enumerate(found):
        if problem and not problems[i]:
            problems[i] = problem


def _check_labels(labels, rows, problems, table, options, warnings) -> list[str]:
    for i, label in enumerate(labels):
        if not str(label).strip() and not problems[i]:
            problems[i] = Problem("empty_label", "empty label")
        elif any(ch < " " or ch == "\x7f" for ch in str(label)) and not problems[i]:  # a line break, a tab, ...
            problems[i] = Problem("control_in_label", f"label {str(label)!r} holds a line break or control character")
    spellings: dict[str, Counter] = defaultdict(Counter)
    for label in labels:
        if str(label).strip():
            spellings[label.strip().casefold()][label] += 1
    variants = {k: c for k, c in spellings.items() if len(c) > 1 or next(iter(c)) != next(iter(c)).strip()}
    if not variants:
        return labels
    if not options.merge_label_variants:
        first_row = {}
        for row, label in zip(rows, labels):
            first_row.setdefault(label, row)
        shown = "; ".join(
            ", ".join(f"{label!r} ({n} rows, first row {first_row[label]})" for label, n in c.most_common())
            for c in list(variants.values())[:5]
        )
        raise InputError(
            f"{table.source}: labels differ only in case or surrounding spaces: {shown}. "
            "Fix them in the source, or pass --merge-label-variants to use each label's most common spelling"
        )
    canonical = {}
    for counter in variants.values():
        stripped = Counter()  # 'Dress' and 'Dress ' are one spelling once spaces are trimmed
        for label, n in counter.items():
            stripped[label.strip()] += n
        target = stripped.most_common(1)[0][0]
        for label in counter:
            canonical[label] = target
        warnings.append(f"merged label spellings {sorted(counter)} into {target!r}")
    return [canonical.get(label, label) for label in labels]


def _relative_file(file: str, root_real: str) -> str:
    """An absolute path under the root becomes relative to it; anything else is kept as written."""
    if os.path.isabs(file) and "\x00" not in file:
        real = os.path.realpath(file)
        if real.startswith(root_real + os.sep):
            return os.path.relpath(real, root_real).replace(os.sep, "/")
    return file


def _path_problem(file: str, norm: str, root_real: str) -> str:
    if not file.strip():
        return Problem("empty_path", "empty image path")
    if "\x00" in file:
        return Problem("nul_byte", NUL_TEXT)
    if os.path.isabs(file) or (len(file) > 1 and file[1] == ":"):
        text = f"absolute path outside the dataset root {root_real}; pass --root to a folder that contains it"
        return Problem("absolute_path", text)
    if norm == ".." or norm.startswith("../"):
        return Problem("outside_root", "path leads outside the dataset root ('..')")
    return ""


def _duplicates(norms, labels, rows) -> list[str]:
    """``norms``: the image paths, normalised."""
    by_file: dict[str, list[int]] = defaultdict(list)
    for i, norm in enumerate(norms):
        by_file[norm].append(i)
    found = [""] * len(norms)
    for indices in by_file.values():
        if len(indices) == 1:
            continue
        if len({labels[i] for i in indices}) == 1:
            for i in indices[1:]:
                found[i] = Problem("duplicate", f"duplicate of row {rows[indices[0]]} (same image, same label)")
        else:
            listed = ", ".join(f"row {rows[i]} {labels[i]!r}" for i in indices)
            for i in indices:
                text = f"conflicting labels for the same image: {listed}; keep one row in the source"
                found[i] = Problem("conflicting_labels", text)
    return found


def _normalise_splits(splits, rows, labels, problems, table, options) -> tuple[list[str], bool]:
    given = [str(s).strip() for s in splits]
    if not any(given):
        return _stratified_splits(labels, options), True
    out = []
    for row, split in zip(rows, given):
        name = SPLIT_ALIASES.get(split.lower())
        if name is None:
            what = "an empty split" if not split else f"split {split!r}"
            raise InputError(
                f"{table.source}, row {row}: {what}; use train, valid (or val/validation) or test in every row"
            )
        out.append(name)
    return out, False


def _stratified_splits(labels, options) -> list[str]:
    """Seeded per-class split: ``test_pct`` to test, ``valid_pct`` to valid, the rest to train."""
    if not 0 <= options.valid_pct < 1 or not 0 <= options.test_pct < 1 or options.valid_pct + options.test_pct >= 1:
        raise InputError(
            f"--valid-pct {options.valid_pct} and --test-pct {options.test_pct} must be in [0, 1) and sum below 1"
        )
    rng = random.Random(options.seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    splits = ["train"] * len(labels)
    for label in sorted(by_label):
        indices = by_label[label]
        rng.shuffle(indices)
        n_test, n_valid = round(len(indices) * options.test_pct), round(len(indices) * options.valid_pct)
        for i in indices[:n_test]:
            splits[i] = "test"
        for i in indices[n_test : n_test + n_valid]:
            splits[i] = "valid"
    return splits


def _check_files(files, root_real, problems, options, image_sizes: dict) -> list[str]:
    """Check every not-yet-quarantined image; ``image_sizes`` gets {row index: (width, height)}."""
    todo = [i for i, p in enumerate(problems) if not p]
    results = check_files(
        [os.path.join(root_real, files[i]) for i in todo],
        root_real,
        workers=options.workers,
        max_pixels=options.max_pixels,
        progress=options.progress,
        sizes=True,
    )
    found = [""] * len(files)
    for i, (reason, size) in zip(todo, results):
        found[i] = reason
        if size is not None:
            image_sizes[i] = size
    return found


def check_files(
    paths: list[str],
    root: str,
    *,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = True,
    sizes: bool = False,
) -> list:
    """``check_image`` for each path (and that it stays under ``root``), in parallel with a progress bar;
    with ``sizes``, (reason, (width, height) or None) per path."""
    from tqdm import tqdm

    root_real = os.path.realpath(root)
    bar = dict(total=len(paths), desc="checking images", unit="img", disable=not progress, smoothing=0.1)
    if len(paths) < _PARALLEL_MIN or workers in (0, 1):  # --workers 0: no worker processes, as for the DataLoader
        found = [_check_one(p, root_real, max_pixels) for p in tqdm(paths, **bar)]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            jobs = pool.map(_check_one, paths, [root_real] * len(paths), [max_pixels] * len(paths), chunksize=64)
            found = list(tqdm(jobs, **bar))
    return found if sizes else [reason for reason, _ in found]


def _check_one(path: str, root_real: str, max_pixels: int) -> tuple[str, tuple[int, int] | None]:
    if "\x00" in path:
        return Problem("nul_byte", NUL_TEXT), None
    real = os.path.realpath(path)
    if not real.startswith(root_real + os.sep):
        return Problem("outside_root", f"resolves outside the dataset root (symlink to {real})"), None
    return check_image_size(real, max_pixels)


def _check_classes(classes, labels, splits, problems, table, options, warnings) -> None:
    if not classes:
        reasons = Counter(p.split(";")[0] for p in problems).most_common(3)
        shown = "; ".join(f"{reason} ({n})" for reason, n in reasons)
        raise InputError(f"{table.source}: no usable images left after validation, all were quarantined: {shown}")
    if len(classes) == 1 and not options.single_class:
        raise InputError(
            f"{table.source}: only one class ({classes[0]!r}) has usable images; finding wrong labels needs at least two"
        )
    fit = Counter(label for label, split, p in zip(labels, splits, problems) if not p and split != "test")
    for name in classes:
        if fit[name] < options.min_per_class:
            warnings.append(
                f"class {name!r} has {fit[name]} train/valid images, fewer than --min-per-class "
                f"{options.min_per_class}: its out-of-fold predictions rest on very few examples, and with more "
                f"--folds than {fit[name]} some folds hold none (add images or merge the class)"
            )
