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


@pytest.mark.slow
def test_bench_flag_prints_each_stage_of_flag_with_the_frozen_view(cli, tmp_path):
    out = cli("bench", "flag", "--out", tmp_path / "f", "--rows", "3000", "--subset", "500").output
    stages = [line.split()[0] for line in out.splitlines() if line[:1].isalpha() and line.split()[-1][0].isdigit()]
    for stage in ("load", "probe", "score", "report"):
        assert stage in stages, out
    from labeler.workspace import Workspace

    with Workspace.open(tmp_path / "f" / "workspace") as ws:
        assert ws.load_array(1, "frozen_embeddings", blocks=True).shape == (3000, 1280)


def test_stage_lines_read_back():
    from labeler.flag.stages import LINE, Stages, parse

    said = []
    stage = Stages(said.append)
    with stage("k-NN graph"):
        pass
    back = parse("cleanlab's warning\n" + "\n".join(said) + "\nround 1: ...")
    assert [name for name, _, _ in back] == ["k-NN graph"] and back[0][2] > 0
    assert parse(LINE.format(name="probe", seconds=12.345, peak=1234.0)) == [("probe", 12.3, 1234.0)]
