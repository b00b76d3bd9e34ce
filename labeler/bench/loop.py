"""`labeler bench loop`: what each review order buys, measured with a simulated reviewer.

Flips are planted as in `bench noise` (same workspace, trained and flagged once). Then, for
each review budget (a share of the train/valid images) and each order, an oracle reviews the
first images of that order (fixing every planted flip it meets), one model is trained on the
resulting labels (``--folds 0``) and scored on the test split against its true labels.
Orders: ``evidence`` (the review queue, `flag`'s default ranking, then the rest by its score), ``activelab`` (cleanlab's
ActiveLab), ``cleanlab`` (label quality alone), ``random``. Two baselines bound the gain:
``noisy`` (no review) and ``clean`` (every planted flip fixed).

The differences between arms are a few points of top-1, about the size of the run-to-run
spread of one training, so ``repeats`` trains every arm with that many seeds and reports the
mean (and the spread). Arms that review the very same images (ActiveLab and cleanlab order
alike before any review) share one result. Each arm x seed is kept in
``OUT/loop/ARM-seedS.json``, so an interrupted benchmark resumes where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from labeler.bench.metrics import bootstrap_hits_ratio
from labeler.bench.noise import LOOP_ORDERS, Planted, plant_and_flag
from labeler.flag.active import annotation_table, review_priority
from labeler.labels import label_codes
from labeler.workspace import Workspace
from labeler_training.evaluate import topk_accuracy
from labeler_training.plots import pyplot


def review_orders(p: Planted, seed: int = 0) -> dict[str, np.ndarray]:
    """Item ids of the train/valid images in each review order."""

    ev, queue = p.flagged.evidence, p.flagged.queue
    split = dict(zip(p.items["id"], p.items["split"]))
    fit = np.array([split[int(i)] != "test" for i in ev.item_ids])
    ids = ev.item_ids[fit]
    queued = [e.item_id for e in queue.flags if split[e.item_id] != "test"]
    rest = ids[np.argsort(-queue.score[fit], kind="stable")]
    evidence = np.array(queued + [i for i in rest if i not in set(queued)])
    table = annotation_table(ev.labels[fit], {}, {})
    active = review_priority(table, ev.pred_probs[fit])
    return {
        "evidence": evidence,
        "activelab": ids[np.argsort(-active, kind="stable")],
        "cleanlab": ids[np.argsort(queue.cnn.quality[fit], kind="stable")],
        "random": np.random.default_rng(seed).permutation(ids),
    }


def bench_loop(
    source,
    out_dir,
    config,
    *,
    budgets=(0.05, 0.10),
    orders=LOOP_ORDERS,
    rate: float = 0.15,
    kind: str = "pairs",
    pairs=None,
    truth=None,
    seed: int = 0,
    repeats: int = 1,
    log=print,
) -> dict:
    """Run every arm (see the module docstring); return {arm: metrics} and write the table and curve."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    out_dir = Path(out_dir)
    p = plant_and_flag(
        source, out_dir, config, rate=rate, kind=kind, pairs=pairs, truth=truth, seed=seed, resume=True, log=log
    )

    with Workspace.open(p.workspace) as ws:
        found_lr = ws.store.rounds()[0].metrics.get("lr")
    final = replace(config, folds=0, lr=config.lr or found_lr)  # one rate for every arm: they differ by labels only
    items = p.items.set_index("id")
    flipped = set(items.index[items["true"] != items["label"]])
    arms = _arms(p, items, flipped, budgets, orders, seed)
    ratios = fixed_ratios(arms, items, flipped, budgets, orders)
    seeds = [final.seed + r for r in range(repeats)]
    results, done = {}, {}
    for arm, reviewed in arms.items():
        key = frozenset(reviewed)
        if key in done:
            log(f"{arm}: reviews the same images as {done[key]}; result shared")
            results[arm] = dict(results[done[key]], same_as=done[key])
            continue
        runs = [
            _run_arm(p, items, reviewed, flipped, replace(final, seed=s), out_dir / "loop" / f"{arm}-seed{s}", log)
            for s in seeds
        ]
        results[arm], done[key] = _mean(runs), arm
    _add_comparisons(results, ratios)
    (out_dir / "loop" / "results.json").write_text(json.dumps(results, indent=2))
    flip_share = len(flipped) / max(int((items["split"] != "test").sum()), 1)
    _plot(results, budgets, orders, flip_share, out_dir / "loop" / "curve.png")
    return results


def _add_comparisons(results: dict, ratios: dict) -> None:
    """Each arm's share of the test top-1 gap (no review -> every flip fixed) recovered, and the default
    queue's flips fixed against the other orders (``fixed_ratios``)."""
    noisy, clean = results["noisy"]["test_top1"], results["clean"]["test_top1"]
    for r in results.values():
        r["gap_recovered"] = (r["test_top1"] - noisy) / (clean - noisy) if clean != noisy else float("nan")
    for arm, versus in ratios.items():
        results[arm]["flips_fixed_ratio"] = versus


def _mean(runs: list[dict]) -> dict:
    """Mean of each metric over the seeds, with the per-seed top-1 and its standard deviation."""
    out = {k: float(np.mean([r[k] for r in runs])) for k in ("test_top1", "test_top3", "test_top5", "flips_fixed")}
    top1 = [r["test_top1"] for r in runs]
    out.update(reviewed=runs[0]["reviewed"], seeds=len(runs), test_top1_runs=top1, test_top1_std=float(np.std(top1)))
    return out


def _arms(p, items, flipped: set, budgets, orders, seed: int) -> dict[str, set]:
    """{arm: item ids a perfect reviewer fixes}: none, every flip, and each order's first ``budget`` share."""
    fit_ids = items.index[items["split"] != "test"].to_numpy()
    arms: dict[str, set] = {"noisy": set(), "clean": set(flipped)}
    orders_by_name = review_orders(p, seed)
    for budget in budgets:
        n = int(round(budget * len(fit_ids)))
        for name in orders:
            arms[f"{name}@{budget:g}"] = set(orders_by_name[name][:n].tolist())
    return arms


def fixed_ratios(arms: dict[str, set], items, flipped: set, budgets, orders) -> dict[str, dict]:
    """{"evidence@B": {other order: [flips it fixed / the other's, 95% low, high]}}: the default queue against each
    other order at each budget, with a paired bootstrap over the train/valid images (which images each order
    reviews stays fixed; which of them hold a flip is resampled)."""

    if "evidence" not in orders:
        return {}
    ids = items.index[items["split"] != "test"].to_numpy()
    truth = np.isin(ids, list(flipped))
    out = {}
    for budget in budgets:
        chosen = np.isin(ids, list(arms[f"evidence@{budget:g}"]))
        versus = {}
        for name in (o for o in orders if o != "evidence"):
            base = np.isin(ids, list(arms[f"{name}@{budget:g}"]))
            ratio = (truth & chosen).sum() / max((truth & base).sum(), 1)
            versus[name] = [float(ratio), *bootstrap_hits_ratio(truth, chosen, base)]
        out[f"evidence@{budget:g}"] = versus
    return out


def _run_arm(p: Planted, items, reviewed: set, flipped: set, config, run_dir: Path, log) -> dict:
    """Train one model on the labels after the oracle reviewed ``reviewed``; score on true test labels."""
    cached = run_dir.parent / f"{run_dir.name}.json"  # not with_suffix: "evidence@0.1" has a dot
    if cached.exists():
        return json.loads(cached.read_text())
    from labeler_training.final import run_final

    frame = items.reset_index()[["id", "file", "split", "label", "true"]].copy()
    fix = frame["id"].isin(reviewed) | (frame["split"] == "test")  # test labels are the true ones
    frame.loc[fix, "label"] = frame.loc[fix, "true"]
    log(
        f"{run_dir.name}: {len(reviewed)} reviewed, {len(reviewed & flipped)} of {len(flipped)} flips fixed,"
        f" training seed {config.seed}"
    )
    result = run_final(frame, p.root, p.vocab, config, run_dir, resume=True, log=log)

    true = label_codes(frame.set_index("id").loc[result.test_ids, "true"], p.vocab)
    metrics = {f"test_top{k}": topk_accuracy(result.test_probs, true, k) for k in (1, 3, 5)}
    metrics.update(reviewed=len(reviewed), flips_fixed=len(reviewed & flipped) / max(len(flipped), 1))
    cached.write_text(json.dumps(metrics))
    return metrics


def _plot(results: dict, budgets, orders, flip_share: float, path: Path) -> None:
    """Left: the share of planted flips each order fixes at each budget (the main figure) against a perfect
    order's (``flip_share``: flips per train/valid image); right: test top-1 after retraining."""

    plt = pyplot()

    fig, (fixed, top1) = plt.subplots(1, 2, figsize=(11, 4))
    xs = [0, *[100 * b for b in budgets]]
    for name in orders:
        arms = [results["noisy"], *[results[f"{name}@{b:g}"] for b in budgets]]
        ys, sd = [a["test_top1"] for a in arms], [a.get("test_top1_std", 0.0) for a in arms]
        fixed.plot(xs, [100 * a["flips_fixed"] for a in arms], "o-", label=name)
        same = {a["same_as"].split("@")[0] for a in arms[1:] if "same_as" in a}
        if len(same) == 1 and all("same_as" in a for a in arms[1:]):  # drawn on top of the other order's line
            top1.errorbar(xs, ys, yerr=sd, fmt="x--", capsize=3, label=f"{name} (same images as {same.pop()})")
        else:
            top1.errorbar(xs, ys, yerr=sd, fmt="o-", capsize=3, label=name)
    fixed.plot(xs, [0, *[min(100.0, 100 * b / flip_share) for b in budgets]], "k:", label="every review a flip")
    fixed.set(xlabel="images reviewed (% of train/valid)", ylabel="planted flips fixed (%)", title="flips fixed")
    top1.axhline(results["clean"]["test_top1"], color="k", ls="--", lw=1, label="all flips fixed")
    top1.axhline(results["noisy"]["test_top1"], color="grey", ls=":", lw=1, label="no review")
    seeds = results["noisy"].get("seeds", 1)
    top1.set(
        xlabel="images reviewed (% of train/valid)",
        ylabel="test top-1 (true labels)",
        title=f"test top-1 after retraining (mean ± sd of {seeds} training seed{'s' if seeds > 1 else ''})",
    )
    fixed.legend(fontsize=8)
    top1.legend(fontsize=8)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
