"""`labeler bench rank` (labeler.bench.rank) and the real-noise mode of `labeler bench noise`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from labeler.bench import rank


def _bench_folder(cli, tmp_path: Path, name: str, seed: int, *, kind: str = "pairs", frozen: bool = True) -> Path:
    """A folder shaped like `bench noise`'s: a workspace with a synthetic round, flips.csv and bench-noise.json.
    The same photos (file names) in every folder, as runs over one image set with different labels have."""
    from labeler.flag import latest_round, load_evidence
    from labeler.workspace import Workspace
    from tests.helpers import make_class_folders, record_synthetic_round

    folder = tmp_path / name
    make_class_folders(folder / "ds", {"a": 30, "b": 30, "c": 30}, split="train")
    make_class_folders(folder / "ds", {"a": 2, "b": 2, "c": 2}, split="test")
    cli("import", folder / "workspace", folder / "ds")
    with Workspace.open(folder / "workspace") as ws:
        record_synthetic_round(ws, seed=seed, doubt=0.2, frozen=frozen)
        ev = load_evidence(ws, latest_round(ws).id)
        items = {i.id: i for i in ws.store.items()}
    wrong = ev.pred_probs[np.arange(len(ev.labels)), ev.labels] < 0.5  # the doubted labels are the wrong ones
    lines = ["file,true,label"] + [
        f"{items[int(i)].file},{'x' if w else items[int(i)].label},{items[int(i)].label}"
        for i, w in zip(ev.item_ids, wrong)
    ]
    (folder / "flips.csv").write_text("\n".join(lines) + "\n")
    (folder / "bench-noise.json").write_text(json.dumps({"kind": kind}))
    return folder


def test_bench_rank_scores_every_ranker_with_intervals_by_kind_of_noise(cli, tmp_path):
    folders = [_bench_folder(cli, tmp_path, f"run{s}", s, kind=k) for s, k in ((1, "real"), (2, "real"), (3, "pairs"))]
    out = cli("bench", "rank", *folders, "--json", tmp_path / "rank.json").output
    result = json.loads((tmp_path / "rank.json").read_text())
    assert set(result) == {"run1", "run2", "run3"} and result["run1"]["kind"] == "real"
    for run in result.values():
        assert {
            "self_confidence",
            "normalized_margin",
            "vote_only",
            "probe_only",
            "frozen_only",
            "mean_only",
            "evidence",
            "evidence_crossfit",
            "evidence_without_frozen_crossfit",
        } <= set(run["rankers"])
        assert set(run["f1"]) == {
            "cleanlab_filter",
            "evidence_filter",
            "evidence_crossfit_filter",
            "evidence_without_frozen_crossfit_filter",
            "evidence_crossfit_no_floor_filter",
        }
        for name, m in run["rankers"].items():
            assert 0 <= m["ap"] <= 1 + 1e-9 and 0 <= m["recall_10"] <= 1
            if name != "self_confidence":
                lo, hi = m["ap_ratio_ci"]
                assert lo <= hi
    assert "real mistakes: mean over 2 run(s)" in out and "planted flips: mean over 1 run(s)" in out
    assert "F1 evidence_crossfit_filter" in out


def test_the_crossfit_never_fits_on_the_photos_or_the_run_it_scores(cli, tmp_path, monkeypatch):
    runs = [rank.load_run(_bench_folder(cli, tmp_path, f"run{s}", s)) for s in (1, 2, 3)]
    seen = []
    real = rank.fitted_weights

    def spy(pool, masks=None, **options):
        seen.append((pool, masks))
        return real(pool, masks, **options)

    monkeypatch.setattr(rank, "fitted_weights", spy)
    scored = runs[0]
    assert rank.crossfit_score(scored, runs[1:]) is not None
    assert len(seen) == 2  # one fit per photo half
    for h, (pool, masks) in enumerate(seen):
        assert all(r is not scored for r in pool)
        fitted_on = {p for r, m in zip(pool, masks) for p in r.photos[m]}
        scored_photos = set(scored.photos[scored.half == h])
        assert scored_photos and fitted_on and not (fitted_on & scored_photos)


def test_written_weights_are_what_flag_reads(cli, tmp_path, monkeypatch):
    from labeler.flag import scoring

    folders = [_bench_folder(cli, tmp_path, f"run{s}", s) for s in (1, 2)]
    target = tmp_path / "weights.json"
    cli("bench", "rank", *folders, "--write-weights", target)
    written = json.loads(target.read_text())
    assert set(written["scores"]) == {"frozen", "no_frozen"} and written["runs"] == {"run1": "pairs", "run2": "pairs"}
    for variant, score in written["scores"].items():
        assert list(score["weights"]) == list(scoring.feature_names(variant))
        assert all(w >= 0 for w in score["weights"].values())
    monkeypatch.setattr(scoring, "WEIGHTS_FILE", target)
    scoring.fitted.cache_clear()
    try:
        run = rank.load_run(folders[0])
        score = scoring.evidence_score(run.labels, run.views())
        assert average_precision(run.truth, score) > average_precision(run.truth, -run.labels.astype(float))
    finally:
        scoring.fitted.cache_clear()


def test_the_shipped_weights_cover_both_variants_and_never_lower_the_score_for_more_doubt():
    from labeler.flag import scoring

    for variant in ("frozen", "no_frozen"):
        weights, _ = scoring.fitted(variant)
        assert set(weights) <= set(scoring.feature_names(variant)) and all(w >= 0 for w in weights.values())


def test_bench_noise_real_measures_the_sources_own_labels_against_the_truth(cli, tmp_path, monkeypatch):
    """--kind real plants nothing: flips.csv pairs each image's given label with its true one."""
    from labeler import train
    from tests.helpers import make_class_folders, record_synthetic_round

    make_class_folders(tmp_path / "ds", {"a": 12, "b": 12}, split="train")
    labels = tmp_path / "labels.csv"
    files = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "ds").rglob("*.jpg"))
    wrong = set(files[::6])  # a sixth of the labels are wrong, as a person got them
    rows = []
    for f in files:
        true = f.split("/")[2]  # ds/train/CLASS/NNN.jpg
        rows.append((f, ("b" if true == "a" else "a") if f in wrong else true, true))
    labels.write_text("image,label,split\n" + "".join(f"{f},{g},train\n" for f, g, _ in rows))
    truth = tmp_path / "truth.csv"
    truth.write_text("image,true_label\n" + "".join(f"{f},{t}\n" for f, _, t in rows))
    monkeypatch.setattr(train, "train_round", lambda ws, config, **kw: record_synthetic_round(ws, seed=0))
    args = ["bench", "noise", labels, "--truth", truth, "--kind", "real", "--out", tmp_path / "out", "--preset", "demo"]
    out = cli(*args).output
    flips = {
        line.split(",")[0]: line.split(",")[1:] for line in (tmp_path / "out" / "flips.csv").read_text().split()[1:]
    }
    assert {f for f, (t, g) in flips.items() if t != g} == wrong
    assert "labels differ from the truth" in out
    assert json.loads((tmp_path / "out" / "bench-noise.json").read_text())["kind"] == "real"


def test_bench_noise_real_needs_a_truth_file_that_covers_every_image(cli, tmp_path):
    from tests.helpers import make_class_folders

    make_class_folders(tmp_path / "ds", {"a": 4, "b": 4}, split="train")
    out = cli("bench", "noise", tmp_path / "ds", "--kind", "real", "--out", tmp_path / "o1", expect=2).output
    assert "--truth" in out
    truth = tmp_path / "truth.csv"
    truth.write_text("image,true_label\ntrain/a/000.jpg,a\n")
    out = cli("bench", "noise", tmp_path / "ds", "--kind", "real", "--truth", truth, "--out", tmp_path / "o2", expect=2)
    assert "no true label for 7 images" in out.output
    assert not (tmp_path / "o2").exists()  # a refused benchmark leaves nothing behind


def average_precision(truth, score):
    from labeler.bench.metrics import average_precision as ap

    return ap(truth, score)


def test_average_precision_matches_scikit_learn_with_ties():
    from sklearn.metrics import average_precision_score

    from labeler.bench.metrics import average_precision

    rng = np.random.default_rng(3)
    for n, levels in ((50, 5), (300, 1000), (1000, 20)):
        truth = rng.random(n) < 0.2
        score = rng.integers(0, levels, n) / levels  # many tied scores
        assert abs(average_precision(truth, score) - average_precision_score(truth, score)) < 1e-12
