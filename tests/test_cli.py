import json
import subprocess
import sys

from labeler.workspace import Workspace

STATUS_KEYS = {
    "schema_version",
    "workspace",
    "format",
    "source",
    "root",
    "items",
    "splits",
    "classes",
    "class_counts",
    "current_class_counts",
    "quarantined",
    "rounds",
    "grouping",
    "flagged",
    "queued",
    "likely_wrong",
    "reviewed",
    "decisions",
    "leakage",
    "estimate",
    "boxes",
    "class_types",
}


def test_import_then_status_json_schema(cli, small_csv_dataset, tmp_path):
    ws = tmp_path / "ws"
    out = cli("import", ws, small_csv_dataset, "--min-per-class", "1").output
    assert "imported 24 images (csv)" in out and "train 18, valid 3, test 3" in out
    status = json.loads(cli("status", ws, "--json").output)
    assert set(status) == STATUS_KEYS
    assert status["items"] == 24
    assert status["splits"] == {"train": 18, "valid": 3, "test": 3}
    assert status["classes"] == ["cat", "dog", "fox"]
    assert status["class_counts"]["dog"] == {"train": 6, "valid": 1, "test": 1}
    assert status["quarantined"] == [] and status["rounds"] == []
    assert (status["flagged"], status["reviewed"], status["decisions"]) == (0, 0, 0)
    assert status["leakage"] is None and status["estimate"] is None  # no round, no flags: absent, not zero
    assert status["boxes"] is None and status["class_types"] is None  # a CSV without box columns
    text = cli("status", ws).output
    assert "items      24 (train 18, valid 3, test 3)" in text


def test_status_lists_quarantined_with_reasons(cli, small_csv_dataset, tmp_path):
    with open(small_csv_dataset, "a") as fh:
        fh.write("img/gone.jpg,cat,train\n")
    cli("import", tmp_path / "ws", small_csv_dataset)
    status = json.loads(cli("status", tmp_path / "ws", "--json").output)
    assert status["quarantined"] == [{"path": "img/gone.jpg", "reason": "file not found"}]
    assert "img/gone.jpg: file not found" in cli("status", tmp_path / "ws").output


def test_reimport_refuses_without_force_and_keeps_decisions_with_force(cli, small_csv_dataset, tmp_path):
    ws = tmp_path / "ws"
    cli("import", ws, small_csv_dataset)
    with Workspace.open(ws) as w:
        item = w.store.items()[0]
        w.store.add_decision(item.id, reviewer="ann", action="relabel", label="dog", old_label=item.label)
    result = cli("import", ws, small_csv_dataset, expect=2)
    assert "already holds an import" in result.output and "1 decisions" in result.output and "--force" in result.output
    cli("import", ws, small_csv_dataset, "--force")
    with Workspace.open(ws) as w:
        assert w.store.effective_decisions()[item.id].label == "dog"
        assert w.store.item(item.id).path == item.path


def test_errors_exit_2_with_the_message(cli, tmp_path):
    result = cli("import", tmp_path / "ws", tmp_path / "nothing-here", expect=2)
    assert "Error:" in result.output and "does not exist" in result.output
    result = cli("status", tmp_path / "not-a-workspace", expect=2)
    assert "not a labeler workspace" in result.output
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file.txt").write_text("x")
    (tmp_path / "src").mkdir()
    result = cli("import", tmp_path / "busy", tmp_path / "src", expect=2)
    assert "folder with files in it but no labeler.db" in result.output


HEAVY = ("torch", "torchvision", "fastai", "gradio", "cleanlab", "faiss", "sklearn", "matplotlib", "scipy", "pandas")


def test_help_of_every_command_imports_no_heavy_library():
    """`labeler --help` and each command's -h answer at once: no heavy library is imported for them (the heavy
    libraries are imported inside the functions that use them; everything else at the top of each module)."""
    code = (
        "import sys\n"
        "from labeler.cli import main\n"
        "commands = [[]] + [[name] for name in main.commands] + [['bench', name] for name in main.commands['bench'].commands]\n"
        "for command in commands:\n"
        "    try:\n"
        "        main([*command, '--help'], standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(len(commands), ','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, _, heavy = done.stdout.strip().splitlines()[-1].partition(" ")  # the last line: what the code printed
    assert int(count) > 20 and heavy == "", heavy
    done = subprocess.run([sys.executable, "-m", "labeler", "--help"], capture_output=True, text=True, check=True)
    assert "import" in done.stdout and "status" in done.stdout


def test_light_modules_do_not_import_heavy_libraries():
    code = (
        "import sys, labeler.cli, labeler.store, labeler.export, labeler.workspace, labeler.status, labeler.ingest,"
        " labeler.review, labeler.flag;"
        "print(','.join(sorted(m for m in ('torch', 'fastai', 'gradio', 'cleanlab', 'faiss', 'pandas') if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_training_imports_nothing_from_labeler():
    """training/ is called by labeler with plain data and depends on nothing in it (the architecture's rule)."""
    import pkgutil

    import labeler_training

    names = [f"labeler_training.{m.name}" for m in pkgutil.iter_modules(labeler_training.__path__)]
    code = (
        f"import sys; import {', '.join(names)}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'labeler'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert len(names) >= 8 and done.stdout.strip() == "[]"


def test_import_flag_and_export_speak_json_in_status_style(cli, tmp_path):
    from tests.helpers import flagged_workspace, make_class_folders

    make_class_folders(tmp_path / "ds", {"a": 3, "b": 3})
    imported = json.loads(cli("import", tmp_path / "ws1", tmp_path / "ds", "--json").stdout)
    assert imported["schema_version"] == 1 and imported["command"] == "import" and imported["items"] == 6
    assert imported["classes"] == ["a", "b"] and imported["quarantined"] == {}
    ws = flagged_workspace(cli, tmp_path / "f", train={"a": 12, "b": 12}, test={"a": 2, "b": 2}, flag=False)
    result = cli("flag", ws, "--json")
    flagged = json.loads(result.stdout)  # stage lines go to stderr: stdout is the JSON alone
    assert flagged["command"] == "flag" and flagged["queued"] >= flagged["likely_wrong"] > 0
    assert sum(flagged["by_reason"].values()) >= flagged["queued"] and flagged["report"].endswith("flag.html")
    exported = json.loads(cli("export", ws, tmp_path / "out.csv", "--json").stdout)
    assert exported["command"] == "export" and exported["rows"] == 28 and exported["changed"] == 0


def _commands(group, prefix=()):
    import click

    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_one_meaning_per_option_name_across_verbs():
    """-k is flag's neighbours only; --device means the same with the same default everywhere; the workspace is
    an argument, never an option."""
    from labeler.cli import main

    helps: dict[str, set] = {}
    for path, command in _commands(main):
        for param in command.params:
            if param.param_type_name != "option" or param.hidden:
                continue
            for opt in param.opts:
                if opt == "-k":
                    assert path == ("flag",), path
                if opt == "--device":
                    unset = type(param.default).__name__ == "Sentinel"  # click 8.2+: no default, the preset's (auto)
                    assert unset or param.default in (None, "auto"), (path, param.default)
                    helps.setdefault("--device", set()).add(path)
                assert opt != "--workspace", path
    assert {("train",), ("predict",), ("evaluate",)} <= helps["--device"]


def test_modules_load_only_what_they_use_of_the_flag_package():
    """leakage and round_metrics use the neighbour search, remaining and status the stored scores: none of them
    loads the flag stage, the queue or cleanlab."""
    code = (
        "import sys, labeler.leakage, labeler.round_metrics, labeler.remaining, labeler.status;"
        "print(sorted(m for m in sys.modules if m in ('labeler.flag.stage', 'labeler.flag.queue', 'cleanlab')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
