"""Predictions of a trained fastai Learner: probabilities, embeddings, test-time augmentation, and the
nearest neighbours in its embedding space."""

from __future__ import annotations

import numpy as np

TTA_PLAIN_SHARE = 0.25  # fastai's tta default (beta): the plain pass's share beside the augmented mean


def predict_tta(learn, frame, n: int, *, plain: np.ndarray) -> np.ndarray:
    """``TTA_PLAIN_SHARE`` x ``plain`` + the rest x the mean of ``n`` passes with the training augmentation."""
    import torch

    if len(frame) == 0:
        return plain
    dl = learn.dls.test_dl(frame)
    augmented = []
    with dl.dataset.set_split_idx(0):  # split 0: the training transforms (random crops, flips)
        for _ in range(n):
            augmented.append(learn.get_preds(dl=dl)[0].float())
    mean = torch.stack(augmented).mean(0).numpy()
    out = (1 - TTA_PLAIN_SHARE) * mean + TTA_PLAIN_SHARE * plain
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)


NEIGHBOURS = 10  # out-of-sample neighbours kept per image (flag's default -k)


def nearest(features: np.ndarray, rows: np.ndarray, k: int, *, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows most similar (cosine; features are L2-normalised) to each of ``rows``, itself excluded:
    (len(rows), k) row numbers (-1 where fewer) and similarities. Exact, chunked matrix products."""
    import torch

    x = torch.from_numpy(features)
    k_eff = min(k, len(features) - 1)
    out_i = np.full((len(rows), k), -1, dtype=np.int64)
    out_s = np.zeros((len(rows), k), dtype=np.float32)
    for start in range(0, len(rows), chunk):
        part = torch.as_tensor(np.asarray(rows[start : start + chunk]))
        sims = x[part] @ x.T
        sims[torch.arange(len(part)), part] = -float("inf")  # never its own neighbour
        if k_eff > 0:
            top = torch.topk(sims, k_eff, dim=1)
            out_i[start : start + len(part), :k_eff] = top.indices.numpy()
            out_s[start : start + len(part), :k_eff] = top.values.numpy()
    return out_i, out_s


def predict(learn, frame, *, embed: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Softmax probabilities (float32, rows sum to 1) for ``frame``'s files, and optionally embeddings."""
    import torch

    if len(frame) == 0:
        return np.zeros((0, len(learn.dls.vocab)), np.float32), None
    dl = learn.dls.test_dl(frame)
    features: list = []
    final = learn.model[-1][-1]
    hook = (
        final.register_forward_pre_hook(lambda m, inp: features.append(inp[0].detach().float().cpu()))
        if embed
        else None
    )
    try:
        probs, _ = learn.get_preds(dl=dl)
    finally:
        if hook is not None:
            hook.remove()
    probs = probs.float().numpy().astype(np.float32)
    probs /= probs.sum(axis=1, keepdims=True)
    if not embed:
        return probs, None
    emb = torch.nn.functional.normalize(torch.cat(features), dim=1).numpy().astype(np.float32)
    return probs, emb
