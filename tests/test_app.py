"""The review app: handlers without a browser, then the real server in headless Chromium."""

import csv
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from labeler.app.handlers import ReviewUI, file_url
from labeler.review import Filters
from labeler.workspace import Workspace
from tests.helpers import flagged_workspace


@pytest.fixture
def ws_path(cli, tmp_path):
    counts = {"hat": 16, "shoe": 16, "skirt": 16}
    return flagged_workspace(cli, tmp_path, train=counts, test={k: 3 for k in counts}, seed=4, doubt=0.3)


def test_handlers_commit_each_action_and_return_the_next_view(ws_path):
    ui = ReviewUI(ws_path, default_reviewer="ann")
    view = ui.show("ann")
    assert view.item_id is not None and "data-item" in view.image_html and view.top and view.picks[0]
    assert view.progress.startswith("reviewed 0 /")
    first = view.item_id
    view = ui.act("ann", first, "accept")
    assert view.item_id != first
    assert ui.ws.store.decisions()[-1].item_id == first
    repeated = ui.act("ann", first, "accept")  # a second key press for the same image
    assert len(ui.ws.store.decisions()) == 1 and repeated.item_id == view.item_id
    second = view.item_id
    view = ui.pick("ann", second, 2)
    assert ui.ws.store.decisions()[-1].label == ui.session("ann").item(second).top[1][0]
    view = ui.act("ann", view.item_id, "remove", reason="unusable")
    view = ui.undo("ann")
    assert ui.ws.store.decisions()[-1].action == "undo" and view.item_id == ui.ws.store.decisions()[-2].item_id
    view = ui.act("ann", view.item_id, "skip")
    assert "reviewed 2 /" in view.progress and "ann 2" in view.progress
    empty = ui.show("ann", Filters(reason="no-such-reason"))
    assert empty.item_id is None and "Nothing left" in empty.image_html


def test_views_point_only_at_files_under_the_dataset_root(ws_path):
    ui = ReviewUI(ws_path)
    view = ui.show("ann")
    root = str(ui.ws.root)
    assert file_url(root + "/a b,c.jpg") == "/gradio_api/file=" + root + "/a%20b%2Cc.jpg"
    for url in [view.image_html, view.neighbours_html, view.prefetch_html]:
        for src in url.split("src='")[1:]:
            assert src.startswith("/gradio_api/file=" + root)


def test_export_and_overview_handlers(ws_path):
    ui = ReviewUI(ws_path)
    view = ui.show("ann")
    ui.act("ann", view.item_id, "remove", reason="not_garment")
    out, audit = ui.export()
    assert len(Path(out).read_text().splitlines()) == 1 + 57 - 1  # header + 57 images - 1 removed
    assert "remove" in Path(audit).read_text()
    markdown, heatmap = ui.overview()
    assert "| hat |" in markdown and "| round |" in markdown and heatmap.endswith("noise_matrix.png")


def test_build_app_returns_blocks(ws_path):
    import gradio as gr

    from labeler.app import build_app

    assert isinstance(build_app(ws_path), gr.Blocks)


def test_binding_beyond_localhost_needs_auth(cli, ws_path):
    result = cli("review", ws_path, "--host", "0.0.0.0", expect=2)
    assert "--auth USER:PASS" in result.output


# -- the real server, in a real browser ---------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(ws_path: Path, port: int, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "labeler", "review", str(ws_path), "--port", str(port), "--reviewer", "ann", *extra]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(proc.stdout.read().decode()[-2000:])


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


def _shown(page) -> str:
    page.wait_for_selector("#current-item", timeout=30_000)
    return page.get_attribute("#current-item", "data-item")


def _press(page, key: str) -> str:
    """Press ``key`` and wait until the screen shows another item (the decision is acknowledged)."""
    before = _shown(page)
    page.keyboard.press(key)
    page.wait_for_function(f"document.querySelector('#current-item').dataset.item !== '{before}'", timeout=15_000)
    return _shown(page)


@pytest.mark.browser
def test_keyboard_review_in_chromium_then_export(cli, ws_path, browser, tmp_path):
    port = _free_port()
    server = _serve(ws_path, port)
    try:
        page = browser.new_page(viewport={"width": 1300, "height": 950})
        page.goto(f"http://127.0.0.1:{port}/")
        shown = [_shown(page)]
        for key in ["Enter", "2", "x", "u", "s"]:
            shown.append(_press(page, key))
        page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
        assert (tmp_path / "review.png").stat().st_size > 20_000
        image = page.locator("#current-item img").first
        assert image.evaluate("img => img.complete && img.naturalWidth > 0")  # the image really loaded
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    with Workspace.open(ws_path) as ws:
        decisions = ws.store.decisions()
    ids = [int(i) for i in shown]
    assert all(d.action in ("relabel", "confirm") for d in decisions[:2])  # Enter, then class 2
    assert ids[4] == ids[2]  # undo brought the removed image back
    assert [d.item_id for d in decisions] == [ids[0], ids[1], ids[2], ids[2], ids[4]]
    assert [d.action for d in decisions][2:] == ["remove", "undo", "skip"]
    assert decisions[2].reason == "not_garment" and decisions[3].undoes == decisions[2].id
    cli("export", ws_path, tmp_path / "out.csv")
    with open(tmp_path / "out.csv", newline="") as fh:
        exported = {row["image"]: row["label"] for row in csv.DictReader(fh)}
    with Workspace.open(ws_path) as ws:
        for d in decisions[:2]:
            assert exported[ws.store.item(d.item_id).path] == d.label
        assert len(exported) == len(ws.store.items())  # the undone removal removed nothing


@pytest.mark.browser
def test_acknowledged_decision_survives_kill_9(ws_path, browser):
    port = _free_port()
    server = _serve(ws_path, port)
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{port}/")
    first = int(_shown(page))
    _press(page, "k")
    os.killpg(server.pid, signal.SIGKILL)  # right after the screen moved on
    server.wait(timeout=10)
    with Workspace.open(ws_path) as ws:
        decisions = ws.store.decisions()
    assert [(d.item_id, d.action) for d in decisions] == [(first, "confirm")]
    restarted = _serve(ws_path, port)
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        assert int(_shown(page)) != first  # resumes with the next undecided image
    finally:
        os.killpg(restarted.pid, signal.SIGTERM)
        restarted.wait(timeout=20)


@pytest.mark.browser
def test_file_route_refuses_anything_outside_the_dataset_root(ws_path, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    with Workspace.open(ws_path) as ws:
        root = ws.root
    (root / "link.jpg").symlink_to(secret)
    port = _free_port()
    server = _serve(ws_path, port)
    try:
        base = f"http://127.0.0.1:{port}/gradio_api/file="
        inside = next(p for p in root.rglob("*.jpg") if not p.is_symlink())
        assert urllib.request.urlopen(base + str(inside)).status == 200
        for path in [str(secret), f"{root}/../secret.txt", f"{root}/%2e%2e/secret.txt", f"{root}/link.jpg",
                     str(ws_path / "labeler.db"), "/etc/passwd"]:  # fmt: skip
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(base + path)
            assert refused.value.code in (403, 404), path
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
