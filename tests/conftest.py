"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.helpers import write_labels_csv


@pytest.fixture(autouse=True, scope="session")
def _own_embedding_cache(tmp_path_factory):
    """The frozen view's embedding cache (labeler_training.frozen) in a folder of this test session, never the user's."""
    import os

    old = os.environ.get("LABELER_CACHE")
    os.environ["LABELER_CACHE"] = str(tmp_path_factory.mktemp("labeler-cache"))
    yield
    if old is None:
        os.environ.pop("LABELER_CACHE", None)
    else:
        os.environ["LABELER_CACHE"] = old


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def cli(runner):
    """Run `labeler ARGS...` in-process; returns the click Result."""
    from labeler.cli import main

    def run(*args, expect: int | None = 0):
        result = runner.invoke(main, [str(a) for a in args], catch_exceptions=False)
        if expect is not None:
            assert result.exit_code == expect, result.output
        return result

    return run


@pytest.fixture
def small_csv_dataset(tmp_path) -> Path:
    """Three classes, 8 images each, with splits."""
    rows = []
    for label in ("cat", "dog", "fox"):
        for i in range(8):
            split = "test" if i == 0 else "valid" if i == 1 else "train"
            rows.append((f"img/{label}_{i}.jpg", label, split))
    return write_labels_csv(tmp_path / "ds", rows)


@pytest.fixture
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()
