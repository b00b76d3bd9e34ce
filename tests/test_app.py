"""The review app: handlers without a browser, then the real server in headless Chromium."""

import contextlib
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

from labeler.app.handlers import ReviewUI
from labeler.app.render import class_codes
from labeler.review import Filters
from labeler.workspace import Workspace
from tests.helpers import flagged_workspace


@pytest.fixture
def ws_path(cli, tmp_path):
    counts = {"hat": 16, "shoe": 16, "skirt": 16}
    return flagged_workspace(cli, tmp_path, train=counts, test={k: 3 for k in counts}, seed=4, doubt=0.3)


def test_handlers_commit_each_action_and_return_the_next_view(ws_path):
    ui = ReviewUI(ws_path)
    view = ui.show("ann")
    assert view.item_id is not None and "data-item" in view.image_html and "data-act='keep'" in view.panel_html
    assert view.progress.startswith("reviewed 0 /")
    first = view.item_id
    view = ui.act("ann", first, "accept")
    assert view.item_id != first
    assert ui.ws.store.decisions()[-1].item_id == first
    repeated = ui.act("ann", first, "accept")  # a second key press for the same image
    assert len(ui.ws.store.decisions()) == 1 and repeated.item_id == view.item_id
    assert "no longer on screen" in repeated.notes[0]
    second = view.item_id
    label = ui.session("ann").item(second).top[1][0]
    view = ui.act("ann", second, "relabel", label=label)
    assert ui.ws.store.decisions()[-1].label == label
    view = ui.act("ann", view.item_id, "remove", reason="unusable")
    view = ui.undo("ann", item_id=view.item_id)
    assert ui.ws.store.decisions()[-1].action == "undo" and view.item_id == ui.ws.store.decisions()[-2].item_id
    assert view.notes[0].startswith("undone: removal of #")
    view = ui.act("ann", view.item_id, "skip")
    assert "reviewed 2 /" in view.progress and "ann 2" in view.progress
    empty = ui.show("ann", Filters(reason="no-such-reason"))
    assert empty.item_id is None and "Nothing left" in empty.image_html


def test_an_action_is_stored_only_for_the_item_on_screen(ws_path):
    """Type-ahead, a stale page and a search with nothing chosen store nothing (issue: wrong decisions logged)."""
    ui = ReviewUI(ws_path)
    a = ui.show("ann").item_id
    b = ui.act("ann", a, "keep").item_id  # the screen now shows b
    for stale in (a, None, b + 10_000):
        view = ui.act("ann", stale, "keep")
        assert view.item_id == b and view.notes
    assert [d.item_id for d in ui.ws.store.decisions()] == [a]
    for label in (None, "", "not-a-class"):
        view = ui.act("ann", b, "relabel", label=label)
        assert view.item_id == b and "choose a class" in view.notes[0]
    assert [d.item_id for d in ui.ws.store.decisions()] == [a]
    undone = ui.undo("ann", item_id=b)  # shows a again ...
    assert undone.item_id == a
    view = ui.act("ann", b, "keep")  # ... so a key meant for b, sent after the undo, stores nothing
    assert view.item_id == a and [d.action for d in ui.ws.store.decisions()] == ["confirm", "undo"]


def test_a_nameless_browser_claims_nothing(ws_path):
    ui = ReviewUI(ws_path, default_reviewer="ann")
    view = ui.show("")
    assert view.item_id is None and "your name" in view.image_html
    assert ui.ws.store.conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0


def test_reasons_cite_the_current_label_of_a_near_duplicate(ws_path):
    ui = ReviewUI(ws_path)
    s = ui.session("ann")
    flag = ui.ws.store.flags(s.round_id)[0]
    other = next(i for i in ui.ws.store.items() if i.id != flag.item_id)
    stale = [{"code": "duplicate_conflict", "text": f"near-duplicate of #{other.id} labelled {other.label}"}]
    assert s._fresh(stale)[0]["text"] == f"near-duplicate of #{other.id} labelled {other.label}"
    ui.ws.store.add_decision(other.id, reviewer="bob", action="relabel", label="zzz", old_label=other.label)
    assert s._fresh(stale)[0]["text"] == f"near-duplicate of #{other.id} labelled zzz"
    ui.ws.store.add_decision(other.id, reviewer="bob", action="remove", old_label="zzz", reason="unusable")
    assert s._fresh(stale)[0]["text"] == f"near-duplicate of #{other.id} since removed"


def test_class_codes_are_fixed_and_reach_any_class_in_two_keys():
    assert class_codes(["a", "b", "c"]) == {"a": "1", "b": "2", "c": "3"}
    codes = class_codes([f"c{i:02d}" for i in range(46)])
    assert codes["c00"] == "01" and codes["c45"] == "46" and len(set(codes.values())) == 46


def test_views_point_only_at_the_image_route(ws_path):
    ui = ReviewUI(ws_path)
    view = ui.show("ann")
    for html_text in [view.image_html, view.neighbours_html, view.prefetch_html]:
        for src in html_text.split("src='")[1:]:
            assert src.startswith("/labeler/image/")
    assert ui.image_file(view.item_id).is_file()
    assert ui.image_file(10_000_000) is None


def test_export_and_overview_handlers(ws_path):
    ui = ReviewUI(ws_path)
    view = ui.show("ann")
    ui.act("ann", view.item_id, "remove", reason="not_garment")
    out, audit = ui.export()
    assert Path(out).parent == ui.ws.path / "exports"
    assert len(Path(out).read_text().splitlines()) == 1 + 57 - 1  # header + 57 images - 1 removed
    assert "remove" in Path(audit).read_text()
    markdown, heatmap, rates = ui.overview()
    assert "| hat |" in markdown and "| round |" in markdown and heatmap.endswith("noise_matrix.png")
    assert "leak-free test top-1" in markdown and "not enough reviews yet" in markdown
    assert rates.endswith("class_error_rates.png") and Path(rates).stat().st_size > 5000  # cleanlab's estimate


def test_overview_and_screen_show_remaining_errors_and_when_to_stop(ws_path):
    from labeler.sample import sample

    ui = ReviewUI(ws_path, stop_below=0.99)
    sample(ui.ws, 40)  # an audit sample: enough images for 35 reviews and some left after
    view = ui.show("ann")
    for _ in range(35):
        if view.item_id is None:
            break
        view = ui.act("ann", view.item_id, "keep")
    markdown, _, rates = ui.overview()
    assert "wrong labels left [95% interval" in markdown and "| round |" in markdown
    assert "stopped paying" in ui.show("ann").progress  # every kept label: the hit rate is far below 0.99


def test_review_app_exposes_the_api_the_concurrency_bench_drives(ws_path):
    from labeler.app import ReviewApp

    config = ReviewApp(ws_path).blocks.config
    api = {d.get("api_name") for d in config["dependencies"]}
    assert {"start", "accept", "overview"} <= api  # `bench review` calls /start and /accept
    on_load = " ".join(d.get("js") or "" for d in config["dependencies"] if ("load" in {t[1] for t in d["targets"]}))
    assert "keydown" in on_load  # the keyboard script is installed when the page loads


def test_binding_beyond_localhost_needs_auth(cli, ws_path):
    result = cli("review", ws_path, "--host", "0.0.0.0", expect=2)
    assert "--auth USER:PASS" in result.output and "reviewing" not in result.output


@pytest.mark.parametrize("login", ["nopass", ":secret", "ann:"])
def test_a_malformed_login_is_refused_when_the_command_line_is_parsed(cli, ws_path, monkeypatch, login):
    result = cli("review", ws_path, "--auth", login, expect=2)
    assert "must be USER:PASS" in result.output and "reviewing" not in result.output
    monkeypatch.setenv("LABELER_AUTH", login)  # the environment variable goes through the same check
    result = cli("review", ws_path, "--host", "0.0.0.0", expect=2)
    assert "must be USER:PASS" in result.output


@pytest.mark.parametrize("auth", [None, ("ann", "secret")])
def test_launch_warms_the_event_queue_before_it_says_ready(ws_path, auth):
    """The first reviewer's screen does not wait for the queue's start-up or the estimate (login or not)."""
    from labeler.app import ReviewApp

    app = ReviewApp(ws_path)
    said = []
    app.launch(port=_free_port(), auth=auth, block=False, on_ready=said.append)
    try:
        assert app.pings == 1 and said and said[0].startswith("reviewing")
        assert app.ui._estimate[0] >= 0  # computed and cached
    finally:
        app.blocks.close()


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


@contextlib.contextmanager
def _served(ws_path: Path, *extra: str):
    """A review server on a free port for the block; stopped after it."""
    port = _free_port()
    server = _serve(ws_path, port, *extra)
    try:
        yield port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)


def _shown(page) -> str:
    page.wait_for_selector("#current-item[data-item]:not([data-item=''])", timeout=30_000)
    return page.get_attribute("#current-item", "data-item")


def _open(page, port: int, name: str = "ann") -> str:
    """Open the app and confirm the reviewer's name (asked once per browser); the first item's id."""
    page.goto(f"http://127.0.0.1:{port}/")
    page.wait_for_selector("#lab-name")
    page.wait_for_function("window.labeler && window.labeler.installed", timeout=30_000)  # keys work from here
    if page.input_value("#lab-name") != name:
        page.fill("#lab-name", name)
    page.press("#lab-name", "Enter")
    item = _shown(page)  # an item is shown only once the name is in
    page.wait_for_function("!window.labeler.busy", timeout=30_000)  # and its image is painted: keys work
    return item


def _press(page, key: str) -> str:
    """Press ``key`` and wait until the screen shows another item (the decision is acknowledged)."""
    before = page.get_attribute("#current-item", "data-seq")
    page.keyboard.press(key)
    page.wait_for_function(f"document.querySelector('#current-item').dataset.seq !== '{before}'", timeout=15_000)
    page.wait_for_function("!window.labeler.busy", timeout=15_000)
    return _shown(page)


# Records, in the page, when each item was painted and when each key went down.
WATCH_JS = """() => {
  window.__paints = []; window.__keys = [];
  const seen = () => { const el = document.querySelector('#current-item');
    if (el && el.dataset.item && (!window.__paints.length || window.__paints.at(-1)[2] !== el.dataset.seq))
      requestAnimationFrame(() => window.__paints.push([el.dataset.item, performance.now(), el.dataset.seq])); };
  new MutationObserver(seen).observe(document.body, {childList: true, subtree: true, attributes: true});
  seen();
  document.addEventListener('keydown', () => window.__keys.push(performance.now()), true);
}"""


@pytest.mark.browser
def test_c_clears_the_filters_and_shows_the_whole_queue(ws_path, browser):
    with _served(ws_path) as port:
        page = browser.new_page(viewport={"width": 1300, "height": 950})
        _open(page, port)
        page.get_by_text("Queue filters and order").click()
        before = page.get_attribute("#current-item", "data-seq")
        page.get_by_label("active").check()  # a filter the reviewer chose: the queue is shown again in that order
        page.wait_for_function(f"document.querySelector('#current-item').dataset.seq !== '{before}'", timeout=15_000)
        assert page.get_by_label("active").is_checked()
        page.locator("body").click(position={"x": 5, "y": 5})  # keys go to the page, not the radio
        shown = _press(page, "c")
        assert shown and page.get_by_label("priority").is_checked() and not page.get_by_label("active").is_checked()
        assert page.locator(".lab-note").count() == 0  # no error: the screen and the five filters all came back


@pytest.mark.browser
def test_keyboard_review_in_chromium_then_export(cli, ws_path, browser, tmp_path):
    with _served(ws_path) as port:
        page = browser.new_page(viewport={"width": 1300, "height": 950})
        shown = [_open(page, port)]
        for key in ["Enter", "2", "x", "u", "s"]:
            shown.append(_press(page, key))
        page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
        assert (tmp_path / "review.png").stat().st_size > 20_000
        image = page.locator("#current-item img").first
        assert image.evaluate("img => img.complete && img.naturalWidth > 0")  # the image really loaded
    with Workspace.open(ws_path) as ws:
        decisions = ws.store.decisions()
    ids = [int(i) for i in shown]
    assert all(d.action in ("relabel", "confirm") for d in decisions[:2])  # Enter, then class 2
    assert decisions[1].label == "shoe"  # class 2 of (hat, shoe, skirt), whatever the image's probabilities
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
    try:
        page = browser.new_page()
        first = int(_open(page, port))
        _press(page, "k")
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # right after the screen moved on (or a failure: no leftover server)
        server.wait(timeout=10)
    with Workspace.open(ws_path) as ws:
        decisions = ws.store.decisions()
    assert [(d.item_id, d.action) for d in decisions] == [(first, "confirm")]
    restarted = _serve(ws_path, port)
    try:
        page.goto(f"http://127.0.0.1:{port}/")  # the name is kept by the browser: no prompt
        assert int(_shown(page)) != first  # resumes with the next undecided image
    finally:
        os.killpg(restarted.pid, signal.SIGTERM)
        restarted.wait(timeout=20)


@pytest.mark.browser
def test_only_the_workspace_item_images_are_served(ws_path, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    with Workspace.open(ws_path) as ws:
        root = ws.root
        item = ws.store.items()[0]
        inside = ws.image_path(item.file)
    (root / "truth.csv").write_text("image,label\n")  # an answers file beside the images
    (root / "link.jpg").symlink_to(secret)
    with _served(ws_path) as port:
        base = f"http://127.0.0.1:{port}"
        assert urllib.request.urlopen(f"{base}/labeler/image/{item.id}").read() == inside.read_bytes()
        refused = [f"/labeler/image/{10**7}", "/labeler/image/abc", "/labeler/image/..%2F..%2Fetc%2Fpasswd"]
        refused += [
            f"/gradio_api/file={p}"
            for p in (
                str(inside),
                str(root / "truth.csv"),
                str(secret),
                f"{root}/../secret.txt",
                f"{root}/%2e%2e/secret.txt",
                f"{root}/link.jpg",
                str(ws_path / "labeler.db"),
                "/etc/passwd",
            )
        ]
        for path in refused:
            with pytest.raises(urllib.error.HTTPError) as error:
                urllib.request.urlopen(base + path)
            assert error.value.code in (403, 404), path
        upload = urllib.request.Request(f"{base}/gradio_api/upload", data=b"x", method="POST")
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(upload)
        assert error.value.code == 403


@pytest.mark.browser
def test_keys_faster_than_the_screen_decide_only_images_on_screen(ws_path, browser):
    """Keys 20-30 ms apart and a held key: every stored decision is on an image painted before its key press."""
    with _served(ws_path) as port:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        _open(page, port)
        page.evaluate(WATCH_JS)
        page.wait_for_function("window.__paints.length > 0")
        for key in ["k", "s", "k", "u", "k", "k", "s", "k"]:
            page.keyboard.press(key)
            page.wait_for_timeout(25)
        page.wait_for_timeout(1500)
        page.wait_for_function("!window.labeler.busy", timeout=15_000)
        with Workspace.open(ws_path) as ws:
            before_hold = len(ws.store.decisions())
        for _ in range(12):  # a held key: the browser repeats keydown with repeat=true
            page.keyboard.down("s")
            page.wait_for_timeout(30)
        page.keyboard.up("s")
        page.wait_for_timeout(1500)
        page.wait_for_function("!window.labeler.busy", timeout=15_000)
        paints, keys = page.evaluate("[window.__paints, window.__keys]")
    with Workspace.open(ws_path) as ws:
        decisions = [d for d in ws.store.decisions() if d.action != "undo"]
        held = len(ws.store.decisions()) - before_hold
    assert decisions, "at least the first key press is a decision"
    first_paint = {}
    for item, t, _seq in paints:
        first_paint.setdefault(int(item), t)
    for d in decisions:
        assert d.item_id in first_paint, f"#{d.item_id} was decided but never shown"
        assert any(k > first_paint[d.item_id] for k in keys), f"#{d.item_id} decided before it was painted"
    assert held == 1  # the held s skipped one image, not twelve


@pytest.mark.browser
def test_class_search_opens_empty_enter_applies_escape_cancels(ws_path, browser):
    with _served(ws_path) as port:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        first = _open(page, port)
        page.keyboard.press("/")
        assert page.input_value("#lab-search-input") == ""
        page.keyboard.type("sk")
        assert page.locator("#lab-search-list li").all_inner_texts() == ["3 skirt"]
        page.keyboard.press("Escape")  # cancelled: nothing stored, same image
        assert page.locator("#lab-search").is_hidden() and _shown(page) == first
        page.keyboard.press("/")
        assert page.input_value("#lab-search-input") == ""  # opens empty again
        page.keyboard.type("zzz")
        page.keyboard.press("Enter")  # nothing matches: nothing applied, no fallback
        page.wait_for_timeout(400)
        assert _shown(page) == first
        page.fill("#lab-search-input", "")
        page.keyboard.type("ho")  # shoe
        before = page.get_attribute("#current-item", "data-seq")
        page.keyboard.press("Enter")
        page.wait_for_function(f"document.querySelector('#current-item').dataset.seq !== '{before}'")
    with Workspace.open(ws_path) as ws:
        decisions = ws.store.decisions()
    assert [(d.item_id, d.label) for d in decisions] == [(int(first), "shoe")]


@pytest.mark.browser
def test_search_typed_while_the_next_image_loads_goes_into_the_search(ws_path, browser):
    """'/' pressed while the next image is still loading opens the search: what is typed next is a query, never
    decision keys ('s' skip, 'k' keep), and Enter applies only once the new image is on screen."""
    with _served(ws_path) as port:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        first = _open(page, port)
        page.wait_for_function("!window.labeler.busy", timeout=15_000)
        # The first screen prefetches the next image. Were it still in flight when the route goes in, the next
        # screen would share that request, unheld, and its image could paint at once (seen in CI under load).
        page.wait_for_function("Array.from(document.images).every((img) => img.complete)", timeout=15_000)
        held = []
        page.route("**/labeler/image/**", lambda route: held.append(route))  # the next image does not arrive yet
        page.keyboard.press("s")  # skip: busy until the next image is painted
        page.wait_for_function(f"document.querySelector('#current-item').dataset.item !== '{first}'")
        assert page.evaluate("window.labeler.busy")
        page.keyboard.press("/")
        page.keyboard.type("sk")
        assert page.input_value("#lab-search-input") == "sk"
        assert page.locator("#lab-search-list li").all_inner_texts() == ["3 skirt"]
        page.keyboard.press("Enter")  # the image is not painted yet: nothing is applied, the search stays open
        assert page.locator("#lab-search").is_visible()
        second = _shown(page)
        for route in held:
            route.continue_()
        page.unroute("**/labeler/image/**")
        page.wait_for_function("!window.labeler.busy", timeout=15_000)
        before = page.get_attribute("#current-item", "data-seq")
        page.keyboard.press("Enter")
        page.wait_for_function(f"document.querySelector('#current-item').dataset.seq !== '{before}'")
    with Workspace.open(ws_path) as ws:
        decisions = [(d.item_id, d.action, d.label) for d in ws.store.decisions()]
    assert decisions[0][:2] == (int(first), "skip")
    assert [(item, label) for item, _, label in decisions[1:]] == [(int(second), "skirt")]  # confirm if it was skirt
    assert decisions[1][1] in ("relabel", "confirm")


@pytest.mark.browser
def test_the_name_is_asked_once_and_kept_across_reloads(ws_path, browser):
    with _served(ws_path) as port:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#current-item")
        page.wait_for_function("window.labeler && window.labeler.installed", timeout=30_000)
        assert "your name" in page.inner_text("#current-item")  # no name yet: nothing shown, nothing claimed
        page.click("#lab-name")
        page.keyboard.type("alice")  # typing claims nothing; Enter commits
        with Workspace.open(ws_path) as ws:
            assert ws.store.conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0
        page.keyboard.press("Enter")
        _shown(page)
        page.reload()
        _shown(page)
        assert page.input_value("#lab-name") == "alice"
        _press(page, "k")
    with Workspace.open(ws_path) as ws:
        assert [d.reviewer for d in ws.store.decisions()] == ["alice"]
        assert {c[0] for c in ws.store.conn.execute("SELECT reviewer FROM claims")} <= {"alice"}


@pytest.fixture
def group_ws(cli, tmp_path):
    """A workspace whose first flag is a conflicting near-duplicate group of three (same photo, three labels)."""
    import numpy as np

    ws_path = flagged_workspace(
        cli,
        tmp_path,
        train={"hat": 16, "shoe": 16, "skirt": 16},
        test={"hat": 3, "shoe": 3, "skirt": 3},
        seed=4,
        doubt=0.3,
        flag=False,
    )
    with Workspace.open(ws_path) as w:
        arrays = {name: w.load_array(1, name) for name in w.store.arrays(1)}
        ids, emb = list(arrays["embed_ids"]), arrays["embeddings"]
        items = w.store.items()
        members = [next(i.id for i in items if i.label == c and i.split == "train") for c in ("hat", "shoe", "skirt")]
        original = w.image_path(w.store.item(members[0]).file).read_bytes()
        for member in members[1:]:
            emb[ids.index(member)] = emb[ids.index(members[0])]
            w.image_path(w.store.item(member).file).write_bytes(original)
        arrays["embeddings"] = np.asarray(emb)
        pred_ids, probs = list(arrays["pred_ids"]), np.array(arrays["pred_probs"])
        given = np.eye(probs.shape[1], dtype=probs.dtype)[arrays["labels"]]
        probs = 0.5 * probs + 0.5 * given  # the other doubts milder, so that the group leads whatever the weights
        for member in members:  # the model sees the same photo three times: a hat, so shoe and skirt lead the queue
            probs[pred_ids.index(member)] = [0.98, 0.01, 0.01]
        arrays["pred_probs"] = probs
        w.record_round("train", w.store.rounds()[0].params, {}, arrays)
    # ranked by cleanlab on the CNN (+ vote) alone, which this fixture sets: the evidence score's probe is fitted on
    # the synthetic embeddings at flag time, so its weights would decide what leads
    cli("flag", ws_path, "--rank-by", "self_confidence")
    return ws_path, members


@pytest.mark.browser
def test_group_box_resets_and_a_group_undo_reverts_the_group(group_ws, browser):
    ws_path, members = group_ws
    with _served(ws_path) as port:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        first = int(_open(page, port))
        assert first in members and page.locator("#whole-group").count() == 1
        page.keyboard.press("g")
        assert page.is_checked("#whole-group")
        _press(page, "k")
        assert page.locator("#whole-group").count() == 0 or not page.is_checked("#whole-group")
        shown = _press(page, "u")
        assert int(shown) == first and "undone:" in page.inner_text("#panel")
        assert not page.is_checked("#whole-group")  # the box starts unticked on every screen
    with Workspace.open(ws_path) as ws:
        decisions = ws.store.decisions()
        live = ws.store.effective_decisions()
    kept = [d for d in decisions if d.action in ("confirm", "relabel")]
    assert {d.item_id for d in kept} == set(members) and len({d.batch for d in kept}) == 1
    assert sum(d.action == "undo" for d in decisions) == 3 and not set(members) & set(live)


@pytest.mark.browser
def test_a_conflict_shows_both_decisions(ws_path, browser):
    with Workspace.open(ws_path) as ws:
        item = ws.store.flags(ws.store.flagged_round())[0].item_id
        given = ws.store.item(item).label
        ws.store.add_decision(item, reviewer="bob", action="confirm", label=given, old_label=given)
        ws.store.add_decision(item, reviewer="carol", action="remove", old_label=given, reason="unusable")
    with _served(ws_path) as port:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        _open(page, port)
        page.click("text=Queue filters")
        page.click("#filter-reason input")
        page.keyboard.type("conflict")
        page.get_by_role("option", name="conflict", exact=True).click()
        page.wait_for_function(f"document.querySelector('#current-item').dataset.item === '{item}'")
        page.wait_for_selector(".lab-conflict")
        text = page.inner_text(".lab-conflict")
    assert "bob" in text and "carol" in text and "confirm" in text and "remove" in text


def test_an_expired_claim_taken_by_another_reviewer_stores_nothing_and_says_so(ws_path):
    from labeler.review import CLAIM_SECONDS

    ui = ReviewUI(ws_path)
    a = ui.show("ann").item_id
    ui.ws.store.conn.execute("UPDATE claims SET claimed_at = claimed_at - ?", (CLAIM_SECONDS + 1,))
    assert ui.show("bob").item_id == a  # ann walked away; bob is shown her image
    view = ui.act("ann", a, "keep")
    assert "bob has it on screen" in view.notes[0] and ui.ws.store.decisions() == []
    ui.ws.store.conn.execute("UPDATE claims SET claimed_at = claimed_at - ?", (CLAIM_SECONDS + 1,))
    b = ui.show("cid").item_id  # an expired claim nobody took: the decision is stored, with a warning
    ui.ws.store.conn.execute("UPDATE claims SET claimed_at = claimed_at - ?", (CLAIM_SECONDS + 1,))
    view = ui.act("cid", b, "keep")
    assert "had expired" in view.notes[0] and [d.item_id for d in ui.ws.store.decisions()] == [b]


def test_a_group_decision_leaves_members_held_by_others_alone(group_ws):
    ws_path, members = group_ws
    ui = ReviewUI(ws_path)
    first = ui.show("ann").item_id
    others = [m for m in members if m != first]
    ui.ws.store.add_decision(others[0], reviewer="bob", action="confirm", label="hat", old_label="hat")
    ui.ws.store.claim(others[1], "carol", time.time())
    view = ui.act("ann", first, "keep", group=True)
    assert [d.item_id for d in ui.ws.store.decisions() if d.reviewer == "ann"] == [first]
    assert f"left #{others[0]} alone: decided by bob" in view.notes
    assert f"left #{others[1]} alone: on carol's screen" in view.notes
