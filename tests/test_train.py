"""`labeler train` (labeler.train): what it checks before any work."""

from __future__ import annotations

import urllib.error

import pytest


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No internet and an empty torchvision cache, as on a fresh machine behind a firewall."""
    import torch
    import torchvision

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch-hub"))

    def refuse(self, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", refuse)


def test_default_train_without_the_weights_says_how_to_fix_it_before_any_work(cli, tmp_path, offline):
    from tests.helpers import flagged_workspace

    ws = flagged_workspace(cli, tmp_path, train={"a": 6, "b": 6}, test={"a": 1, "b": 1}, flag=False)
    result = cli("train", ws, expect=2)
    out = result.output
    assert "cannot get the ImageNet weights of resnet34" in out and "Temporary failure" in out
    for fix in ("--weights FILE", "--no-pretrained", "torch-hub/checkpoints/resnet34"):
        assert fix in out
    assert "Traceback" not in out and "checking images" not in out and "groups" not in out  # said first


def test_cached_weights_are_enough(cli, tmp_path, offline, monkeypatch):
    import torchvision

    from labeler_training.learner import check_weights, make_config

    url = torchvision.models.get_model_weights("resnet18").DEFAULT.url
    cached = tmp_path / "torch-hub" / "checkpoints" / url.rsplit("/", 1)[1]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"weights")
    check_weights(make_config("cpu"))  # resnet18, pretrained: found in the cache, nothing downloaded
    check_weights(make_config("cpu", pretrained=False))
    check_weights(make_config(None, weights=str(cached)))


@pytest.mark.parametrize(("device", "says"), [("gpu", "not a device"), ("mps", "no Apple MPS"), ("cuda:3", "CUDA")])
def test_a_device_this_machine_lacks_is_refused_with_the_fix(cli, tmp_path, device, says):
    from tests.helpers import flagged_workspace

    ws = flagged_workspace(cli, tmp_path, train={"a": 6, "b": 6}, test={"a": 1, "b": 1}, flag=False)
    out = cli("train", ws, "--no-pretrained", "--device", device, expect=2).output
    assert says in out and "--device" in out and "Traceback" not in out
    assert not (ws / "models" / "pending" / "state.json").exists()


def test_a_missing_workspace_is_said_before_torch_is_imported(tmp_path):
    import subprocess
    import sys

    for verb in ("train", "retrain"):
        code = (
            "import sys; from click.testing import CliRunner; from labeler.cli import main; "
            f"r = CliRunner().invoke(main, ['{verb}', sys.argv[1]]); "
            "print(r.exit_code, 'torch' in sys.modules); print(r.output)"
        )
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "nope")], capture_output=True, text=True)
        assert out.stdout.startswith("2 False"), out.stdout + out.stderr
        assert "is not a labeler workspace" in out.stdout


def test_resume_with_nothing_to_resume_says_it_trains_from_the_start(cli, tmp_path, monkeypatch):
    import labeler_training.crossval
    from tests.helpers import flagged_workspace

    ws = flagged_workspace(cli, tmp_path, train={"a": 6, "b": 6}, test={"a": 1, "b": 1}, flag=False)
    monkeypatch.setattr(
        labeler_training.crossval, "run_crossval", lambda *a, **k: None
    )  # the folds themselves: not here
    out = cli("train", ws, "--no-pretrained", "--resume").output
    assert "--resume: no interrupted run in" in out and "training from the start" in out


def test_efficientnet_lite0_starts_from_its_packaged_weights_offline(cli, tmp_path, offline):
    """No download anywhere: `train --arch efficientnet_lite0` fine-tunes the ImageNet weights the package
    installs (frozen body first), and the exported predictor loads the fold model without fastai's classes."""
    import numpy as np
    import torch

    from labeler.workspace import Workspace
    from labeler_training.backbones import lite0_network
    from tests.helpers import flagged_workspace

    ws = flagged_workspace(cli, tmp_path, train={"a": 8, "b": 8}, test={"a": 2, "b": 2}, flag=False)
    fast = ["--size", "32", "--folds", "2", "--epochs", "1", "--freeze-epochs", "1", "--bs", "8", "--workers", "0"]
    out = cli("train", ws, "--arch", "efficientnet_lite0", *fast, "--lr", "1e-3", "--no-frozen-view").output
    assert "cannot get the ImageNet weights" not in out
    with Workspace.open(ws) as w:
        round_id = w.store.rounds()[-1].id
        assert w.load_array(round_id, "pred_probs").shape == (16, 2)
    cli("export-model", ws, tmp_path / "model")
    result = cli("predict", tmp_path / "model", tmp_path / "ds" / "test", "--csv", tmp_path / "p.csv")
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 1 + 4, result.output
    trained = torch.load(tmp_path / "model" / "model.pth", map_location="cpu", weights_only=True)
    stem, imagenet = trained["0.net._conv_stem.weight"].flatten(), lite0_network()._conv_stem.weight.flatten()
    assert np.corrcoef(stem.numpy(), imagenet.detach().numpy())[0, 1] > 0.9  # fine-tuned from ImageNet, not random
