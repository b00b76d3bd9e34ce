"""DeepFashion-sized benchmarks: `labeler bench scale`, `labeler bench flag` and `labeler bench review`.

``bench scale`` times every stage a DeepFashion user runs, each in a child process (wall time,
peak memory), on a synthetic 289,222-item workspace: import, flag (with 5,600 decisions so
ActiveLab runs too), status, the first review screen, export with its audit; and the recall@10
of flag's k-NN graph against exact search on a sample of rows.

``bench flag`` builds a synthetic workspace of 289,222 items (DeepFashion-shaped annotations,
no images), records a synthetic round (pred_probs N x 46, clustered embeddings N x 512, N x 512 for
each of 5 fold models, and the frozen view's N x 1,280), and times `labeler flag` in a child process (wall
time, peak memory, and each stage's as flag prints them); then times the k-NN graph alone, approximate vs exact on a subset, and against
scikit-learn's brute force.
``bench review`` times "decision -> next item ready" on such a workspace, and runs concurrent
simulated reviewers against a live `labeler review` server over HTTP.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from labeler.bench import timed_labeler
from labeler.bench.synthetic import synthetic_deepfashion
from labeler.flag import neighbors
from labeler.flag.stages import parse as parse_stages
from labeler.ingest import import_dataset
from labeler.ingest.validate import Options
from labeler.review import ReviewSession
from labeler.workspace import Workspace


def synthetic_workspace(folder: Path, rows: int, classes: int = 46, dim: int = 512, seed: int = 0, log=print) -> Path:
    """A workspace of ``rows`` items with one synthetic, flaggable round (the workspace and its round are
    reused if present: an imported workspace without a round gets one)."""

    ws_path = folder / "workspace"
    if not (ws_path / "labeler.db").exists():
        source = synthetic_deepfashion(folder / "DeepFashion", rows=rows, classes=classes, seed=seed)
        import_dataset(ws_path, source, options=Options(verify_images=False, progress=False, min_per_class=0))
    rng = np.random.default_rng(seed)
    with Workspace.open(ws_path) as ws:
        if ws.store.rounds():
            return ws_path
        vocab = ws.store.classes()
        frame = ws.store.item_table()
        codes = np.array([vocab.index(label) for label in frame["label"]])
        believed = np.where(rng.random(len(codes)) < 0.1, rng.integers(0, len(vocab), len(codes)), codes)
        probs = rng.dirichlet(np.full(len(vocab), 0.3), len(codes)).astype(np.float32)
        probs[np.arange(len(codes)), believed] += 2.0
        probs /= probs.sum(axis=1, keepdims=True)
        centres = rng.normal(size=(len(vocab) * 8, dim)).astype(np.float32)  # 8 styles per class
        emb = centres[believed * 8 + rng.integers(0, 8, len(codes))]
        emb += rng.normal(scale=0.7, size=emb.shape).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        spaces = np.stack([_perturbed(emb, rng) for _ in range(FOLDS)])  # each fold model's space, as train keeps
        frozen = _frozen_view(codes, len(vocab), rng)
        ids = frame["id"].to_numpy()
        fit = (frame["split"] != "test").to_numpy()
        arrays = {
            "pred_probs": probs[fit],
            "pred_ids": ids[fit],
            "labels": codes[fit],
            "test_probs": probs[~fit],
            "test_ids": ids[~fit],
            "embeddings": emb,
            "embed_ids": ids,
            "fold_embeddings": spaces,
            "frozen_embeddings": frozen,
        }
        ws.record_round("train", {"config": {"arch": "synthetic"}, "vocab": vocab}, {}, arrays)
    log(f"synthetic workspace: {rows:,} items, {len(vocab)} classes, embeddings {dim}-d")
    return ws_path


FOLDS = 5  # the fold models of the synthetic round (the gpu preset's)
FROZEN_DIM = 1280  # the frozen view's width (labeler_training.frozen: EfficientNet-Lite0's pooled features)


def _frozen_view(codes: np.ndarray, k: int, rng: np.random.Generator, chunk: int = 50_000) -> np.ndarray:
    """(N, FROZEN_DIM) float16 unit vectors clustered by class: the frozen view's array, built a chunk at a time."""
    centres = rng.normal(size=(k, FROZEN_DIM)).astype(np.float32)
    out = np.empty((len(codes), FROZEN_DIM), dtype=np.float16)
    for start in range(0, len(codes), chunk):
        part = centres[codes[start : start + chunk]]
        part += rng.normal(scale=1.5, size=part.shape).astype(np.float32)
        out[start : start + chunk] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return out


def _perturbed(emb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``emb`` moved a little and renormalised, float16: one more fold model's embedding space."""
    out = emb + rng.normal(scale=0.02, size=emb.shape).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.astype(np.float16)


def bench_scale(folder: Path, rows: int = 289_222, decisions: int = 5_600, sample: int = 2_000, log=print) -> dict:
    """Each stage's wall time and peak memory at DeepFashion scale (see the module docstring)."""

    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "DeepFashion"
    if not (source / "Anno_coarse").exists():
        synthetic_deepfashion(source, rows=rows)
    ws_path = folder / "workspace"
    if ws_path.exists():
        shutil.rmtree(ws_path)
    out: dict = {"rows": rows}

    def stage(name: str, args: list) -> dict:
        r = timed_labeler(args)
        if r["rc"] != 0:
            raise RuntimeError(f"labeler {' '.join(map(str, args))} failed:\n{r['out']}")
        out[f"{name}_seconds"], out[f"{name}_peak_mib"] = r["seconds"], r["peak_mib"]
        log(f"{name}: {r['seconds']:.1f}s, peak {r['peak_mib']:.0f} MiB")
        return r

    stage("import", ["import", ws_path, source, "--no-verify-images"])
    synthetic_workspace(folder, rows, log=log)  # records the synthetic round on the imported workspace
    stage("flag_first", ["flag", ws_path])
    out["decisions"] = _decide(ws_path, decisions)
    log(f"{out['decisions']:,} decisions logged (confirm, relabel, remove)")
    stage("flag", ["flag", ws_path])
    stage("status", ["status", ws_path])
    out.update(first_screen(ws_path, log=log))
    for target in ("export.csv", "audit.csv"):
        (folder / target).unlink(missing_ok=True)
    stage("export", ["export", ws_path, folder / "export.csv", "--audit", folder / "audit.csv"])
    out.update(knn_recall(ws_path, sample=sample, log=log))
    return out


def _decide(ws_path: Path, decisions: int) -> int:
    """Log ``decisions`` reviews down the queue: 70% keep, 25% relabel to the suggestion, 5% remove."""

    with Workspace.open(ws_path) as ws:
        session = ReviewSession(ws, "bench")
        for n in range(decisions):
            item = session.next_item()
            if item is None:
                return n
            action = ("keep", "accept", "remove")[0 if n % 20 < 14 else 1 if n % 20 < 19 else 2]
            session.decide(item.item_id, action, reason="unusable" if action == "remove" else None)
    return decisions


def first_screen(ws_path: Path, *, port: int = 7872, log=print) -> dict:
    """Seconds from opening the review app to the first item on screen, in headless Chromium when
    Playwright and Debian's chromium are installed; otherwise the first claim over the app's HTTP API."""
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "labeler", "review", str(ws_path), "--port", str(port), "--reviewer", "bench-first"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = _ready_line(server, f"http://127.0.0.1:{port}/")  # a reviewer opens the link the app prints
        out = {"review_server_start_seconds": time.perf_counter() - started}
        try:
            out["first_screen_seconds"], out["first_screen_cached_seconds"] = _first_paint(url)
            out["first_screen_how"] = "chromium"
        except (ImportError, FileNotFoundError):
            from gradio_client import Client

            started = time.perf_counter()
            Client(url, verbose=False).predict("bench-first", api_name="/start")
            out["first_screen_seconds"], out["first_screen_how"] = time.perf_counter() - started, "http"
    finally:
        server.terminate()
        server.wait(timeout=30)
    cached = out.get("first_screen_cached_seconds")
    log(
        f"review: server up in {out['review_server_start_seconds']:.1f}s; first screen "
        f"{out['first_screen_seconds']:.2f}s ({out['first_screen_how']}, first visit)"
        + (f", {cached:.2f}s with the app's assets cached" if cached is not None else "")
    )
    return out


def _first_paint(url: str) -> tuple[float, float]:
    """Page opened -> the first item on screen, in headless Chromium (the name typed instantly): in a
    fresh browser (nothing cached: a reviewer's first visit), then again (the app's assets cached)."""
    from playwright.sync_api import sync_playwright

    if not Path("/usr/bin/chromium").exists():
        raise FileNotFoundError("/usr/bin/chromium")
    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            for visit in range(2):
                page = context.new_page()
                started = time.perf_counter()
                page.goto(url)
                page.wait_for_selector("#lab-name")
                page.fill("#lab-name", f"bench-first-{visit}")
                page.press("#lab-name", "Enter")
                # the item's screen (reasons, choices, image element) is in; the synthetic set has no image files
                page.wait_for_selector("#current-item[data-item]:not([data-item=''])", timeout=60_000)
                times.append(time.perf_counter() - started)
                page.close()
        finally:
            browser.close()
    return times[0], times[1]


def knn_recall(ws_path: Path, *, sample: int = 2_000, log=print) -> dict:
    """Time of flag's k-NN graph over every embedding, and its recall@10 against exact search on ``sample`` rows."""
    import faiss

    with Workspace.open(ws_path) as ws:
        emb = np.ascontiguousarray(ws.load_array(ws.store.rounds()[-1].id, "embeddings"), dtype=np.float32)
    started = time.perf_counter()
    graph = neighbors.knn(emb, 10)
    seconds = time.perf_counter() - started
    rows = np.random.default_rng(0).choice(len(emb), size=min(sample, len(emb)), replace=False)
    exact = faiss.IndexFlatIP(emb.shape[1])
    exact.add(emb)
    _, found = exact.search(emb[rows], 11)
    truth = [f[f != r][:10] for f, r in zip(found, rows)]
    recall = float(np.mean([len(set(graph.indices[r]) & set(t)) / len(t) for r, t in zip(rows, truth)]))
    log(
        f"k-NN graph of {len(emb):,} items: {seconds:.1f}s, recall@10 {recall:.3f} against exact search "
        f"({len(rows):,} sampled rows)"
    )
    return {"knn_seconds": seconds, "knn_recall_at_10": recall, "knn_recall_sample": len(rows)}


def bench_flag(folder: Path, rows: int = 289_222, subset: int = 50_000, log=print) -> dict:
    """Wall time and peak memory of `labeler flag`, and the k-NN graph alone (see the module docstring)."""

    ws_path = synthetic_workspace(folder, rows, log=log)

    flag = timed_labeler(["flag", ws_path])
    if flag["rc"] != 0:
        raise RuntimeError(f"labeler flag failed:\n{flag['out']}")
    out = {"rows": rows, "flag_seconds": flag["seconds"], "flag_peak_mib": flag["peak_mib"], "flag_rc": flag["rc"]}
    out["stages"] = [{"stage": n, "seconds": s, "peak_mib": p} for n, s, p in parse_stages(flag["out"])]
    log(f"labeler flag: {flag['seconds']:.1f} s, peak {flag['peak_mib']:,.0f} MiB")
    log(f"{'stage':<20}{'seconds':>9}{'peak MiB so far':>17}")
    for row in out["stages"]:
        log(f"{row['stage']:<20}{row['seconds']:>9.1f}{row['peak_mib']:>17,.0f}")
    with Workspace.open(ws_path) as ws:
        emb = ws.load_array(1, "embeddings")
    started = time.perf_counter()
    neighbors.knn(emb, 10)  # the automatic choice: approximate past EXACT_MAX
    out["knn_all_seconds"] = time.perf_counter() - started
    sub = emb[np.random.default_rng(0).choice(len(emb), size=min(subset, len(emb)), replace=False)]
    timings = {}
    results = {}
    for name, exact in (("exact", True), ("faiss_ivf", False)):
        started = time.perf_counter()
        results[name] = neighbors.knn(sub, 10, index=neighbors.build_index(sub, exact=exact))
        timings[name] = time.perf_counter() - started
    started = time.perf_counter()
    results["approximate"] = neighbors.blocked_knn(sub, 10)  # what flag uses past EXACT_MAX
    timings["approximate"] = time.perf_counter() - started
    from sklearn.neighbors import NearestNeighbors

    started = time.perf_counter()
    NearestNeighbors(n_neighbors=11, algorithm="brute", metric="cosine").fit(sub).kneighbors(sub)
    timings["sklearn_brute"] = time.perf_counter() - started
    out.update({f"subset_{k}_seconds": v for k, v in timings.items()})
    out["subset"] = len(sub)
    out["subset_recall_at_10"] = neighbors.recall_at_k(results["approximate"], results["exact"])
    out["subset_faiss_ivf_recall_at_10"] = neighbors.recall_at_k(results["faiss_ivf"], results["exact"])
    return out


def bench_review_latency(ws_path: Path, decisions: int = 300, log=print) -> dict:
    """p50/p95 of decision -> next item ready (core) and of the whole UI handler (with rendering)."""
    from labeler.app.handlers import ReviewUI

    core = []
    with Workspace.open(ws_path) as ws:
        session = ReviewSession(ws, "bench-core")
        item = session.next_item()
        for _ in range(decisions):
            started = time.perf_counter()
            session.decide(item.item_id, "keep")
            item = session.next_item()
            core.append(time.perf_counter() - started)
    ui = ReviewUI(ws_path)
    view = ui.show("bench-ui")
    handler = []
    for _ in range(decisions):
        started = time.perf_counter()
        view = ui.act("bench-ui", view.item_id, "accept")
        handler.append(time.perf_counter() - started)
    return {
        "core_p50_ms": _pct(core, 50),
        "core_p95_ms": _pct(core, 95),
        "handler_p50_ms": _pct(handler, 50),
        "handler_p95_ms": _pct(handler, 95),
    }


def bench_review_concurrency(
    ws_path: Path, *, reviewers: int = 8, decisions: int = 200, port: int = 7871, log=print
) -> dict:
    """``reviewers`` HTTP clients x ``decisions`` accepts against a live server; acks vs stored, overlaps, p95."""

    with Workspace.open(ws_path) as ws:
        before = ws.store.last_decision_id()
    server = subprocess.Popen(
        [sys.executable, "-m", "labeler", "review", str(ws_path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client_args = _wait_for(f"http://127.0.0.1:{port}/")
        shown, latencies, acks, wall = _run_reviewers(client_args, reviewers, decisions)
    finally:
        server.terminate()
        server.wait(timeout=30)
    with Workspace.open(ws_path) as ws:
        stored = [d for d in ws.store.decisions() if d.id > before]
    overlaps = _overlaps(shown)
    return {
        "reviewers": reviewers,
        "acknowledged": sum(acks.values()),
        "stored": len(stored),
        "shown_to_two_at_once": overlaps,
        "p50_ms": _pct(latencies, 50),
        "p95_ms": _pct(latencies, 95),
        "decisions_per_s": len(stored) / wall,
    }


def _run_reviewers(client_args, reviewers: int, decisions: int):
    """``reviewers`` threads, each a Gradio client accepting ``decisions`` items in a row: what each was
    shown and when (name, item, shown at, answered at), each accept's latency, acks per reviewer, wall s."""

    shown: list[tuple[str, int, float, float]] = []
    latencies: list[float] = []
    acks: dict[str, int] = {}
    lock = threading.Lock()

    from gradio_client import Client

    def reviewer(name: str) -> None:
        client = Client(client_args, verbose=False)
        current = client.predict(name, api_name="/start")
        since = time.perf_counter()
        for _ in range(decisions):
            started = time.perf_counter()
            nxt = client.predict(name, current, api_name="/accept")
            now = time.perf_counter()
            with lock:
                shown.append((name, current, since, now))
                latencies.append(now - started)
                acks[name] = acks.get(name, 0) + 1
            current, since = nxt, now

    threads = [threading.Thread(target=reviewer, args=(f"sim{i}",)) for i in range(reviewers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return shown, latencies, acks, time.perf_counter() - started


def _overlaps(shown) -> int:
    """Items on two reviewers' screens at the same time (intervals from shown to decided)."""
    by_item: dict[int, list] = {}
    for name, item, start, end in shown:
        by_item.setdefault(item, []).append((start, end, name))
    count = 0
    for spans in by_item.values():
        spans.sort()
        for (_s1, e1, n1), (s2, _e2, n2) in zip(spans, spans[1:]):
            count += n1 != n2 and s2 < e1
    return count


def _ready_line(server: subprocess.Popen, url: str) -> str:
    """Wait for `labeler review`'s "reviewing ... on URL" line (printed once the app is ready to serve)."""
    for line in server.stdout:
        if line.startswith("reviewing "):
            return url
    raise RuntimeError(f"the review server at {url} exited before it was ready (exit code {server.wait()})")


def _wait_for(url: str, timeout: float = 90) -> str:

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return url
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the review server at {url} did not start")


def _pct(values, q) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))
