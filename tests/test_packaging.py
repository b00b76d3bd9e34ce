"""How labeler installs: its package list, and no top-level name a user's own module could take."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_every_source_package_is_installed_under_a_labeler_name():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "labeler").rglob("__init__.py")}
    assert set(config["packages"]) == folders | {"labeler_training"}
    assert config["package-dir"] == {"labeler_training": "training"}
    assert all(name.split(".")[0] in ("labeler", "labeler_training") for name in config["packages"])


def test_a_users_own_training_module_neither_shadows_labeler_nor_is_shadowed(tmp_path):
    """A project folder with its own training/ package: labeler's commands work from it, and the user's
    `import training` still gets the user's module."""
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "__init__.py").write_text("MINE = 'the user'\nPRESETS = None\n")
    help_text = subprocess.run(
        [sys.executable, "-m", "labeler", "train", "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert help_text.returncode == 0, help_text.stderr
    assert "cpu resnet18" in " ".join(help_text.stdout.split())  # the presets: from labeler_training
    code = "import labeler_training.presets, training; print(training.MINE)"
    mine = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert mine.stdout.strip() == "the user"
