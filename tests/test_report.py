"""flag.html (labeler.report): one self-contained page that leads with the flagged set."""

from __future__ import annotations

import shutil

import pytest


@pytest.mark.browser
def test_flag_html_opened_from_another_folder_shows_every_image(cli, tmp_path, browser):
    from tests.helpers import flagged_workspace

    ws = flagged_workspace(cli, tmp_path, train={"a": 12, "b": 12}, test={"a": 2, "b": 2})
    page_file = next((ws / "reports").glob("round-*/flag.html"))
    moved = tmp_path / "elsewhere" / "flag.html"
    moved.parent.mkdir()
    shutil.copy(page_file, moved)  # the page alone: no PNG beside it
    page = browser.new_page()
    page.goto(moved.as_uri())
    sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
    assert len(sizes) >= 4  # plots, the examples of each reason, the top rows' thumbnails
    assert all(done and width > 0 for done, width in sizes), sizes
    heading = page.inner_text("h1")
    assert "likely wrong (the flagged set)" in heading and "noise" not in heading
