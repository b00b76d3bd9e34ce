"""The README's commands are run here, so they cannot rot."""

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from labeler.bench.synthetic import write_deepfashion
from tests.helpers import make_class_folders, make_image

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = [README, (ROOT / "docs" / "commands.md").read_text()]  # every console example of the README and the reference


def _console_commands() -> list[str]:
    blocks = [b for text in DOCS for b in re.findall(r"```console\n(.*?)```", text, flags=re.S)]
    return [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ labeler ")]


def test_the_readme_is_a_short_guide_and_links_what_it_moved():
    assert len(README.splitlines()) <= 250
    for target in ("docs/commands.md", "docs/benchmarks.md", "docs/images/review.png", "docs/images/flag.png"):
        assert target in README and (ROOT / target).exists(), target


def test_readme_opens_with_exactly_the_two_setup_commands():
    lines = [line for line in README.splitlines()[1:] if line.strip()]
    assert lines[0].split("#")[0].strip() == "make demo"
    assert lines[1].split("#")[0].strip() == "make test"
    assert not lines[2].startswith("    make")


@pytest.mark.parametrize("target", ["demo", "test"])
def test_make_targets_install_into_a_venv_then_run(target, tmp_path):
    done = subprocess.run(
        ["make", "-n", "-B", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "-m venv" in done.stdout and "pip install -c constraints.txt -e '.[dev]'" in done.stdout
    assert ("labeler demo" if target == "demo" else "pytest") in done.stdout


def _fixtures(tmp_path: Path) -> dict[str, str]:
    entries = [
        (f"img/Soft,_&_Co's_{n}/img_{i:08d}.jpg", c, s, None)
        for i, (n, c, s) in enumerate(
            [("Tee", 18, "train"), ("Tee", 18, "val"), ("Dress", 41, "train"), ("Dress", 41, "test")] * 3
        )
    ]
    deepfashion = write_deepfashion(tmp_path / "DeepFashion", entries)
    for i, (path, *_) in enumerate(entries):
        make_image(deepfashion / "Img" / path, seed=i)
    rows = ["image_name,category_name"] + [f'"{p}",{"Tee" if c == 18 else "Dress"}' for p, c, *_ in entries]
    (deepfashion / "train_labels.csv").write_text("\n".join(rows) + "\n")
    folders = tmp_path / "clothing-small"
    for split in ("train", "validation", "test"):
        make_class_folders(folders, {"hat": 3, "shoes": 3}, split=split)
    return {"~/DeepFashion": str(deepfashion), "~/clothing-small": str(folders)}


TRAINING = (
    "labeler train",
    "labeler retrain",
    "labeler flag",
    "labeler demo",
    "labeler bench noise",
    "labeler export-model",
    "labeler predict",
    "labeler evaluate",
    "labeler sample",
    "labeler bench rank",
    "labeler bench adapt",
)
FAST_TRAINING = ["--size", "32", "--epochs", "1", "--folds", "2", "--lr", "3e-3", "--workers", "0"]


def _run_examples(cli, commands, substitutions):
    for command in commands:
        for placeholder, path in substitutions.items():
            command = command.replace(placeholder, path)
        args = shlex.split(command)[1:]
        if command.startswith(("labeler train", "labeler bench noise")):
            args += FAST_TRAINING  # the README's options, made tiny for CI
        if command.startswith("labeler demo"):
            args += ["--images", "200"]
        cli(*args)


def test_every_console_example_that_needs_no_training_runs(cli, tmp_path, monkeypatch):
    from labeler.demo import DemoSpec, generate

    commands = [c for c in _console_commands() if not c.startswith(TRAINING)]
    assert len(commands) >= 8
    substitutions = _fixtures(tmp_path / "home")
    monkeypatch.chdir(tmp_path)
    generate(tmp_path / "data" / "demo", DemoSpec(n_images=80, duplicates=4), progress=False)
    _run_examples(cli, commands, substitutions)


@pytest.mark.slow
def test_every_console_example_runs_in_order(cli, tmp_path, monkeypatch):
    """All README examples, in README order after the demo; training made tiny (see FAST_TRAINING)."""
    commands = _console_commands()
    commands.sort(key=lambda c: not c.startswith("labeler demo"))
    substitutions = _fixtures(tmp_path / "home")
    monkeypatch.chdir(tmp_path)
    _run_examples(cli, commands, substitutions)


def test_the_development_layout_names_only_files_that_exist_and_every_package():
    block = README.split("The layout follows", 1)[1].split("```", 2)[1]
    names = set(re.findall(r"\b([a-z_]+\.(?:py|json|md))\b", block))
    files = {p.name for folder in ("labeler", "training", "tests", "docs") for p in (ROOT / folder).rglob("*.*")}
    assert names and names <= files, names - files
    packages = {p.parent.name for p in (ROOT / "labeler").rglob("__init__.py")} - {"labeler"}
    assert all(f"  {name}/" in block for name in packages), packages
