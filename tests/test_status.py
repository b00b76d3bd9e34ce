"""`labeler status` (labeler.status), and the two labels every image has: the given label (as imported) and the
current label (after review), as status, the queue CSV, the explanations and the review filters show them."""

from __future__ import annotations

import csv
import json

from labeler.review import ReviewSession
from labeler.store.records import Filters
from labeler.workspace import Workspace
from tests.helpers import flagged_workspace

COUNTS = {"hat": 30, "shoe": 30, "skirt": 30}


def _relabel_a_flagged_image(ws_path):
    """A flagged image whose suggestion is another class, relabelled to a third: the next flag still doubts
    the new label (same model), so the image comes back. Returns (item, given, current)."""
    with Workspace.open(ws_path) as ws:
        session = ReviewSession(ws, "ann")
        item = session.next_item()
        given = item.given
        current = next(c for c in sorted(COUNTS) if c not in (given, item.suggested))
        session.decide(item.item_id, "relabel", label=current)
    return item.item_id, given, current


def test_after_a_relabel_each_output_names_the_given_and_the_current_label_for_what_they_are(cli, tmp_path):
    ws_path = flagged_workspace(cli, tmp_path, train=COUNTS, test={k: 4 for k in COUNTS}, seed=3, doubt=0.3)
    imported = json.loads(cli("status", ws_path, "--json").output)["class_counts"]
    item, given, current = _relabel_a_flagged_image(ws_path)
    cli("flag", ws_path, "--csv", tmp_path / "queue.csv")

    rows = {r["image"]: r for r in csv.DictReader((tmp_path / "queue.csv").read_text().splitlines())}
    with Workspace.open(ws_path) as ws:
        path = ws.store.item(item).path
    row = rows[path]  # still doubted: back in the queue
    assert (row["given_label"], row["current_label"]) == (given, current)
    assert f"labelled {current}" in row["explanation"] and f"given {current}" not in row["explanation"]
    untouched = next(r for p, r in rows.items() if p != path)
    assert untouched["given_label"] == untouched["current_label"]

    status = json.loads(cli("status", ws_path, "--json").output)
    with Workspace.open(ws_path) as ws:
        split = ws.store.item(item).split
    assert status["class_counts"] == imported  # the given labels, as imported
    now = status["current_class_counts"]  # after review
    assert now[current][split] == imported[current][split] + 1 and now[given][split] == imported[given][split] - 1
    assert "current labels" in cli("status", ws_path).output

    with Workspace.open(ws_path) as ws:  # the review app's class filters read the current label
        session = ReviewSession(ws, "bob")
        assert session.next_item(Filters(current=current)).item_id == item
        other = session.next_item(Filters(current=given))
        assert other is None or other.item_id != item
        assert session.next_item(Filters(any_label=current)).item_id == item
