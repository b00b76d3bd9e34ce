"""`labeler bench ...`: benchmarks that print numbers. Parse, one call into labeler.bench*, print."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from labeler.bench import bench_import as measure_import
from labeler.bench.noise import LOOP_ORDERS
from labeler.bench.outfits import write_outfits
from labeler.bench.rank import summary_lines as rank_lines
from labeler.bench.rank import write_weights as fit_and_write
from labeler.cli.options import POSITIVE, SHARE, CommaList, noise_options, train_options
from labeler.flag import flag_round
from labeler.flag.adapt import PRIOR as ADAPT_PRIOR
from labeler.workspace import Workspace

AUDITS = click.option(  # bench estimate and bench adapt
    "--audits",
    default="0,100",
    show_default=True,
    type=CommaList(click.IntRange(0)),
    help="Random images decided besides the queue (as `labeler sample` draws them), as many per run.",
)


@click.group()
def bench():
    """Benchmarks that print numbers (time, memory, detection quality)."""


@bench.command("import")
@click.argument("source", required=False, type=click.Path(exists=True))
@click.option(
    "--rows", default=289_222, show_default=True, type=POSITIVE, help="Synthetic DeepFashion rows (without SOURCE)."
)
@click.option(
    "--classes",
    default=46,
    show_default=True,
    type=click.IntRange(2),
    help="Synthetic DeepFashion classes (without SOURCE).",
)
@click.option("--verify-images/--no-verify-images", default=False, show_default=True, help="Decode every image.")
def bench_import(source, rows, classes, verify_images):
    """Time an import of SOURCE (or of a synthetic DeepFashion-shaped set) and its peak memory."""

    result = measure_import(source, rows=rows, classes=classes, verify=verify_images)
    click.echo(result["out"].strip())
    click.echo(f"import wall time {result['seconds']:.2f}s, peak memory {result['peak_mib']:.0f} MiB")


@bench.command("outfits")
@click.argument("source", type=click.Path(exists=True))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--seed", default=0, show_default=True, help="Seed of the pairing of garments.")
@click.option("--limit", type=POSITIVE, help="Use only this many photos of SOURCE (a seeded sample).")
def bench_outfits(source, out, seed, limit):
    """Build a DeepFashion-layout set of outfit photos with garment boxes from SOURCE's single-garment photos
    (for measuring `--crop bbox` on real pixels: `labeler bench noise OUT --crop bbox` against without)."""

    counts = write_outfits(source, out, seed=seed, limit=limit)
    for split, by_class in counts.items():
        click.echo(
            f"{split}: {sum(by_class.values()):,} outfits (" + ", ".join(f"{c} {n}" for c, n in by_class.items()) + ")"
        )
    click.echo(f"wrote a DeepFashion-layout set with garment boxes to {out}")


@bench.command("noise")
@click.argument("source", type=click.Path(exists=True))
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), help="Where to keep the benchmark workspace [bench-noise/]."
)
@noise_options
@train_options
@click.option("--resume", is_flag=True, help="Reuse the benchmark workspace (and an interrupted training) in --out.")
def bench_noise(source, out_dir, rate, kind, pairs, truth, noise_seed, resume, preset, **options):
    """Plant label flips in SOURCE (dataset or workspace), train, flag; score each detector against them."""
    from labeler.bench.noise import bench_noise as run_bench
    from labeler_training.learner import make_config

    config = make_config(preset, **options)
    out_dir = out_dir or "bench-noise"
    r = run_bench(
        source,
        out_dir,
        config,
        rate=rate,
        kind=kind,
        pairs=pairs,
        truth=truth,
        seed=noise_seed,
        resume=resume,
        log=click.echo,
    )
    if kind == "real":
        click.echo(f"{r['planted']} wrong labels (against --truth) among {r['images']} train/valid images")
    else:
        click.echo(f"{r['planted']} planted flips among {r['images']} train/valid images ({kind}, rate {rate})")
    click.echo(f"{'detector':<16}{'flagged':>8}{'precision':>10}{'recall':>8}{'F1':>7}{'AP':>7}{'P@n':>7}{'P@100':>7}")
    for name, m in r["detectors"].items():
        click.echo(
            f"{name:<16}{m['flagged']:>8}{m['precision']:>10.3f}{m['recall']:>8.3f}{m['f1']:>7.3f}"
            f"{m['ap']:>7.3f}{m['p_at_n']:>7.3f}{m['p_at_100']:>7.3f}"
        )

    (Path(out_dir) / "bench-noise.json").write_text(json.dumps(r, indent=2))
    click.echo(f"(n = number of wrong labels; results in {Path(out_dir) / 'bench-noise.json'})")


@bench.command("loop")
@click.argument("source", type=click.Path(exists=True))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Benchmark folder [bench-loop/] (resumable).")
@click.option(
    "--budgets",
    default="0.05,0.10",
    show_default=True,
    type=CommaList(click.FloatRange(0, 1, min_open=True)),
    help="Review budgets, shares of train/valid images.",
)
@click.option(
    "--orders",
    default=",".join(LOOP_ORDERS),
    show_default=True,
    type=CommaList(click.Choice(LOOP_ORDERS)),
    help="Review orders to compare.",
)
@click.option(
    "--repeats",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Train every arm with this many seeds (--seed, --seed+1, ...) and report the mean.",
)
@noise_options
@train_options
def bench_loop(source, out_dir, budgets, orders, repeats, rate, kind, pairs, truth, noise_seed, preset, **options):
    """Simulated review: test top-1/3/5 after reviewing a budget of images in each order, vs no review and all fixed."""
    from labeler.bench.loop import bench_loop as run_bench
    from labeler_training.learner import make_config

    config = make_config(preset, **options)
    out_dir = out_dir or "bench-loop"
    r = run_bench(
        source,
        out_dir,
        config,
        budgets=budgets,
        orders=orders,
        rate=rate,
        kind=kind,
        pairs=pairs,
        truth=truth,
        seed=noise_seed,
        repeats=repeats,
        log=click.echo,
    )
    click.echo(f"test accuracy on true labels, mean of {repeats} training seed(s); sd = spread of top-1 over seeds")
    click.echo(
        f"{'arm':<16}{'reviewed':>9}{'flips fixed':>12}{'top-1':>8}{'sd':>7}{'top-3':>8}{'top-5':>8}"
        f"{'gap recovered':>15}"
    )
    for arm, m in r.items():
        click.echo(
            f"{arm:<16}{m['reviewed']:>9}{m['flips_fixed']:>12.1%}{m['test_top1']:>8.3f}"
            f"{m['test_top1_std']:>7.3f}{m['test_top3']:>8.3f}{m['test_top5']:>8.3f}{m['gap_recovered']:>15.1%}"
            + (f"  (= {m['same_as']})" if "same_as" in m else "")
        )
    for arm, m in r.items():
        for other, (ratio, lo, hi) in m.get("flips_fixed_ratio", {}).items():
            budget = arm.split("@")[1]
            click.echo(
                f"flips fixed at {budget}, default queue / {other}: {ratio:.2f} [95% interval {lo:.2f}, {hi:.2f}]"
            )
    click.echo(f"table: {out_dir}/loop/results.json, curve: {out_dir}/loop/curve.png")


@bench.command("estimate")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--budgets",
    default="0.05,0.10",
    show_default=True,
    type=CommaList(click.FloatRange(0, 1, min_open=True)),
    help="Shares of train/valid images reviewed.",
)
@AUDITS
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write every number here.")
def bench_estimate(runs, budgets, audits, json_out):
    """Simulated reviews on `bench noise` RUNS: is the true number of remaining flips inside the estimate's 95% interval?"""

    from labeler.bench.estimate import bench_estimate as run_bench

    rows = run_bench(list(runs), budgets, audits, log=click.echo)
    click.echo(
        f"{'run':<24}{'budget':>7}{'audit':>6}{'reviewed':>9}{'found':>6}{'true left':>10}"
        f"{'estimate [95% interval]':>28}{'inside':>7}  next 100: true / expected"
    )
    for r in rows:
        if not r["enough"]:
            click.echo(f"{r['run']:<24}{r['budget']:>7.0%}{r['audit']:>6}{r['reviewed']:>9}  not enough reviews yet")
            continue
        interval = f"{r['estimate']:.0f} [{r['low']:.0f}, {r['high']:.0f}]"
        nxt = f"{r['true_next']} / {r['next_hits'][0]:.0f} [{r['next_hits'][1]:.0f}, {r['next_hits'][2]:.0f}]"
        click.echo(
            f"{r['run']:<24}{r['budget']:>7.0%}{r['audit']:>6}{r['reviewed']:>9}{r['found']:>6}"
            f"{r['true_remaining']:>10}{interval:>28}{'yes' if r['inside'] else 'NO':>7}  {nxt}"
        )
    for audit in sorted({r["audit"] for r in rows}):
        done = [r for r in rows if r["audit"] == audit and r["enough"]]
        if done:
            click.echo(
                f"audit {audit}: true number inside the interval in {sum(r['inside'] for r in done)} of "
                f"{len(done)} cases; interval width mean {np.mean([r['width'] for r in done]):.0f} "
                f"(true remaining mean {np.mean([r['true_remaining'] for r in done]):.0f})"
            )
    if json_out:
        Path(json_out).write_text(json.dumps(rows, indent=2))


@bench.command("rank")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write every number here.")
@click.option(
    "--compare-probe", is_flag=True, help="Also score the previous probe (a logistic regression per fold; slow)."
)
@click.option(
    "--write-weights",
    type=click.Path(dir_okay=False),
    help="Fit the evidence score on all RUNS and write it here (flag reads labeler/flag/weights.json).",
)
def bench_rank(runs, json_out, compare_probe, write_weights):
    """Rank the same out-of-fold evidence many ways; score each against the wrong labels of `bench noise` RUNS
    (planted flips, or real mistakes with --kind real)."""

    from labeler.bench.rank import bench_rank as run_bench

    if write_weights:
        fit_and_write(list(runs), write_weights, log=click.echo)
        return
    r = run_bench(list(runs), compare_probe=compare_probe, log=click.echo)
    for line in rank_lines(r):
        click.echo(line)
    if json_out:
        Path(json_out).write_text(json.dumps(r, indent=2))


@bench.command("adapt")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--budget", default=0.10, show_default=True, type=SHARE, help="Share of the images reviewed in queue order."
)
@click.option(
    "--batch", default=0.025, show_default=True, type=SHARE, help="Share reviewed between two re-rankings (flag runs)."
)
@AUDITS
@click.option(
    "--priors",
    default=str(ADAPT_PRIOR),
    show_default=True,
    type=CommaList(click.FloatRange(0, min_open=True)),
    help="Pull of the refit toward the shipped weights (pseudo-observations per weight).",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write every number here.")
def bench_adapt(runs, budget, batch, audits, priors, json_out):
    """Simulated reviews on `bench noise` RUNS: wrong labels found with and without refitting the score on them."""
    from labeler.bench.adapt import bench_adapt as run_bench
    from labeler.bench.adapt import summary_lines, write_json

    r = run_bench(list(runs), budget=budget, batch=batch, audits=audits, priors=priors, log=click.echo)
    for line in summary_lines(r):
        click.echo(line)
    if json_out:
        write_json(r, json_out)


@bench.command("flag")
@click.option("--out", "out_dir", default="bench-scale", show_default=True, type=click.Path(file_okay=False))
@click.option(
    "--rows", default=289_222, show_default=True, type=POSITIVE, help="Synthetic items (DeepFashion has 289,222)."
)
@click.option(
    "--subset", default=50_000, show_default=True, type=POSITIVE, help="Items for the exact vs approximate k-NN timing."
)
def bench_flag(out_dir, rows, subset):
    """`labeler flag` at DeepFashion scale: wall time, peak memory, k-NN approximate vs exact vs scikit-learn."""

    from labeler.bench.scale import bench_flag as run_bench

    r = run_bench(Path(out_dir), rows=rows, subset=subset, log=click.echo)
    click.echo(
        f"flag on {r['rows']:,} items: {r['flag_seconds']:.1f}s, peak memory {r['flag_peak_mib']:.0f} MiB"
        f" (exit {r['flag_rc']}); k-NN graph of all items {r['knn_all_seconds']:.1f}s"
    )
    click.echo(
        f"k-NN on {r['subset']:,} items: exact {r['subset_exact_seconds']:.1f}s, flag's blocked approximate "
        f"{r['subset_approximate_seconds']:.1f}s (recall@10 {r['subset_recall_at_10']:.3f}), faiss IVF "
        f"{r['subset_faiss_ivf_seconds']:.1f}s (recall@10 {r['subset_faiss_ivf_recall_at_10']:.3f}), "
        f"scikit-learn brute force {r['subset_sklearn_brute_seconds']:.1f}s"
    )


# what issue #14 asks of each stage at DeepFashion scale on two cores (seconds)
SCALE_TARGETS = {"import": 10, "flag": 60, "status": 1, "first_screen": 2, "first_screen_cached": 2, "export": 5}
SCALE_PEAK_MIB = 4096


@bench.command("scale")
@click.option("--out", "out_dir", default="bench-scale", show_default=True, type=click.Path(file_okay=False))
@click.option(
    "--rows", default=289_222, show_default=True, type=POSITIVE, help="Synthetic items (DeepFashion has 289,222)."
)
@click.option(
    "--decisions",
    default=5_600,
    show_default=True,
    type=click.IntRange(0),
    help="Reviews logged before the timed flag.",
)
@click.option("--sample", default=2_000, show_default=True, type=POSITIVE, help="Rows whose k-NN recall is checked.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write the numbers here.")
def bench_scale(out_dir, rows, decisions, sample, json_out):
    """Every stage at DeepFashion scale: import, flag, status, first review screen, export (+ audit);
    wall time and peak memory of each, in a child process, against its target."""

    from labeler.bench.scale import bench_scale as run_bench

    r = run_bench(Path(out_dir), rows=rows, decisions=decisions, sample=sample, log=click.echo)
    click.echo(f"\n{'stage':<20}{'seconds':>9}{'target':>8}{'peak MiB':>10}")
    for name, target in SCALE_TARGETS.items():
        if f"{name}_seconds" not in r:  # the cached first screen needs Chromium
            continue
        peak = r.get(f"{name}_peak_mib")
        ok = r[f"{name}_seconds"] <= target and (peak is None or peak <= SCALE_PEAK_MIB)
        click.echo(
            f"{name:<20}{r[name + '_seconds']:>9.2f}{target:>8}{'' if peak is None else f'{peak:.0f}':>10}"
            f"  {'ok' if ok else 'MISSED'}"
        )
    click.echo(
        f"k-NN graph inside flag: {r['knn_seconds']:.1f}s alone, recall@10 {r['knn_recall_at_10']:.3f} "
        f"({r['knn_recall_sample']:,} rows against exact search); first screen measured by {r['first_screen_how']}"
    )
    if json_out:
        Path(json_out).write_text(json.dumps(r, indent=2))


@bench.command("review")
@click.option("--out", "out_dir", default="bench-scale", show_default=True, type=click.Path(file_okay=False))
@click.option("--rows", default=289_222, show_default=True, type=POSITIVE)
@click.option("--decisions", default=300, show_default=True, type=POSITIVE, help="Decisions timed in-process.")
@click.option(
    "--reviewers", default=8, show_default=True, type=click.IntRange(0), help="Concurrent HTTP reviewers (0: skip)."
)
@click.option(
    "--per-reviewer", default=200, show_default=True, type=POSITIVE, help="Decisions per concurrent reviewer."
)
@click.option("--port", default=7871, show_default=True)
def bench_review(out_dir, rows, decisions, reviewers, per_reviewer, port):
    """Review latency on a DeepFashion-sized queue, and concurrent reviewers against a live server."""

    from labeler.bench import scale as bench_scale

    ws_path = bench_scale.synthetic_workspace(Path(out_dir), rows, log=click.echo)
    with Workspace.open(ws_path) as ws:
        if ws.store.flagged_round() is None:
            flag_round(ws)
    r = bench_scale.bench_review_latency(ws_path, decisions)
    click.echo(
        f"decision -> next item ({decisions} decisions, {rows:,} items): core p50 {r['core_p50_ms']:.1f} ms, "
        f"p95 {r['core_p95_ms']:.1f} ms; UI handler p50 {r['handler_p50_ms']:.1f} ms, p95 {r['handler_p95_ms']:.1f} ms"
    )
    if reviewers:
        c = bench_scale.bench_review_concurrency(ws_path, reviewers=reviewers, decisions=per_reviewer, port=port)
        click.echo(
            f"{c['reviewers']} concurrent reviewers: {c['acknowledged']} acknowledged, {c['stored']} stored, "
            f"{c['shown_to_two_at_once']} shown to two at once, p50 {c['p50_ms']:.0f} ms, p95 {c['p95_ms']:.0f} ms, "
            f"{c['decisions_per_s']:.1f} decisions/s"
        )


@bench.command("train-speed")
@click.argument("workspace", type=click.Path(exists=True, file_okay=False))
@click.option("--arch", default="resnet18", show_default=True)
@click.option("--size", default=96, show_default=True, type=POSITIVE)
@click.option("--bs", default=64, show_default=True, type=POSITIVE)
@click.option("--epochs", default=1, show_default=True, type=POSITIVE)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(0))
@click.option("--limit", type=POSITIVE, help="Use only this many train/valid images.")
@click.option(
    "--repeats", default=2, show_default=True, type=POSITIVE, help="Alternate the two paths this many times; best kept."
)
def bench_train_speed(workspace, arch, size, bs, epochs, workers, limit, repeats):
    """Training images/s: labeler's fastai path vs a minimal plain-PyTorch loop (same model and settings)."""
    from labeler.bench import bench_train_speed as run_bench
    from labeler_training.learner import make_config

    config = make_config(
        None, arch=arch, size=size, bs=bs, epochs=epochs, workers=workers, pretrained=False, device="cpu"
    )
    r = run_bench(workspace, config, limit=limit, repeats=repeats)
    click.echo(
        f"{r['images']} images, {arch} at {size} px, bs {bs}, {workers} workers, {epochs} epoch(s): "
        f"plain PyTorch {r['plain_images_per_s']:.1f} img/s, fastai {r['fastai_images_per_s']:.1f} img/s, "
        f"fastai/plain = {r['ratio']:.2f}"
    )
