"""`labeler bench scale`: every stage runs in a child process and is reported against its target."""

import json

import pytest


@pytest.mark.slow
def test_bench_scale_reports_every_stage(cli, tmp_path):
    out = cli(
        "bench",
        "scale",
        "--out",
        tmp_path / "b",
        "--rows",
        "3000",
        "--decisions",
        "40",
        "--sample",
        "200",
        "--json",
        tmp_path / "scale.json",
    ).output
    r = json.loads((tmp_path / "scale.json").read_text())
    for stage in ("import", "flag", "status", "first_screen", "export"):
        assert r[f"{stage}_seconds"] > 0
        assert any(line.split()[0] == stage for line in out.splitlines() if line.strip())
    assert r["decisions"] == 40 and r["flag_peak_mib"] > 0 and 0.95 <= r["knn_recall_at_10"] <= 1.0
    audit = (tmp_path / "b" / "audit.csv").read_text().splitlines()
    assert len(audit) == 1 + 40  # the audit lists every logged decision
