"""DeepFashion-sized benchmarks: `labeler bench flag` and `labeler bench review`.

``bench flag`` builds a synthetic workspace of 289,222 items (DeepFashion-shaped annotations,
no images), records a synthetic round (pred_probs N x 46 and clustered embeddings N x 512),
and times `labeler flag` in a child process (wall time, peak memory); then times the k-NN
graph alone, approximate vs exact on a subset, and against scikit-learn's brute force.
``bench review`` times "decision -> next item ready" on such a workspace, and runs concurrent
simulated reviewers against a live `labeler review` server over HTTP.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np


def synthetic_workspace(folder: Path, rows: int, classes: int = 46, dim: int = 512, seed: int = 0, log=print) -> Path:
    """A workspace of ``rows`` items with one synthetic, flaggable round (reused if present)."""
    from labeler.bench import synthetic_deepfashion
    from labeler.ingest import import_dataset
    from labeler.ingest.validate import Options
    from labeler.workspace import Workspace

    ws_path = folder / "workspace"
    if (ws_path / "labeler.db").exists():
        return ws_path
    source = synthetic_deepfashion(folder / "DeepFashion", rows=rows, classes=classes, seed=seed)
    import_dataset(ws_path, source, options=Options(verify_images=False, progress=False, min_per_class=0))
    rng = np.random.default_rng(seed)
    with Workspace.open(ws_path) as ws:
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
        ids = frame["id"].to_numpy()
        fit = (frame["split"] != "test").to_numpy()
        arrays = {"pred_probs": probs[fit], "pred_ids": ids[fit], "labels": codes[fit], "test_probs": probs[~fit],
                  "test_ids": ids[~fit], "embeddings": emb, "embed_ids": ids}  # fmt: skip
        ws.record_round("train", {"config": {"arch": "synthetic"}, "vocab": vocab}, {}, arrays)
    log(f"synthetic workspace: {rows:,} items, {len(vocab)} classes, embeddings {dim}-d")
    return ws_path


def bench_flag(folder: Path, rows: int = 289_222, subset: int = 50_000, log=print) -> dict:
    """Wall time and peak memory of `labeler flag`, and the k-NN graph alone (see the module docstring)."""
    from labeler import neighbors
    from labeler.workspace import Workspace

    ws_path = synthetic_workspace(folder, rows, log=log)
    code = ("import resource, subprocess, sys, time, json; t = time.perf_counter(); "
            "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "print(json.dumps({'seconds': time.perf_counter() - t, 'rc': r.returncode, 'out': r.stdout[-3000:] + r.stderr[-3000:],"
            " 'peak_mib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "labeler", "flag", str(ws_path)],
                          capture_output=True, text=True)  # fmt: skip
    flag = json.loads(done.stdout)
    log(flag["out"].strip().splitlines()[0] if flag["rc"] == 0 else flag["out"])
    with Workspace.open(ws_path) as ws:
        emb = ws.load_array(1, "embeddings")
    out = {"rows": rows, "flag_seconds": flag["seconds"], "flag_peak_mib": flag["peak_mib"], "flag_rc": flag["rc"]}
    started = time.perf_counter()
    neighbors.knn(emb, 10)  # the automatic choice: approximate past EXACT_MAX
    out["knn_all_seconds"] = time.perf_counter() - started
    sub = emb[np.random.default_rng(0).choice(len(emb), size=min(subset, len(emb)), replace=False)]
    timings = {}
    results = {}
    for name, exact in (("exact", True), ("approximate", False)):
        started = time.perf_counter()
        results[name] = neighbors.knn(sub, 10, index=neighbors.build_index(sub, exact=exact))
        timings[name] = time.perf_counter() - started
    from sklearn.neighbors import NearestNeighbors

    started = time.perf_counter()
    NearestNeighbors(n_neighbors=11, algorithm="brute", metric="cosine").fit(sub).kneighbors(sub)
    timings["sklearn_brute"] = time.perf_counter() - started
    out.update({f"subset_{k}_seconds": v for k, v in timings.items()})
    out["subset"] = len(sub)
    out["subset_recall_at_10"] = neighbors.recall_at_k(results["approximate"], results["exact"])
    return out


def bench_review_latency(ws_path: Path, decisions: int = 300, log=print) -> dict:
    """p50/p95 of decision -> next item ready (core) and of the whole UI handler (with rendering)."""
    from labeler.app.handlers import ReviewUI
    from labeler.review import ReviewSession
    from labeler.workspace import Workspace

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
    return {"core_p50_ms": _pct(core, 50), "core_p95_ms": _pct(core, 95),
            "handler_p50_ms": _pct(handler, 50), "handler_p95_ms": _pct(handler, 95)}  # fmt: skip


def bench_review_concurrency(
    ws_path: Path, *, reviewers: int = 8, decisions: int = 200, port: int = 7871, log=print
) -> dict:
    """``reviewers`` HTTP clients x ``decisions`` accepts against a live server; acks vs stored, overlaps, p95."""
    from gradio_client import Client

    from labeler.workspace import Workspace

    with Workspace.open(ws_path) as ws:
        before = ws.store.last_decision_id()
    server = subprocess.Popen([sys.executable, "-m", "labeler", "review", str(ws_path), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        client_args = _wait_for(f"http://127.0.0.1:{port}/")
        shown: list[tuple[str, int, float, float]] = []
        latencies: list[float] = []
        acks: dict[str, int] = {}
        lock = threading.Lock()

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
        wall = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    with Workspace.open(ws_path) as ws:
        stored = [d for d in ws.store.decisions() if d.id > before]
    overlaps = _overlaps(shown)
    return {"reviewers": reviewers, "acknowledged": sum(acks.values()), "stored": len(stored),
            "shown_to_two_at_once": overlaps, "p50_ms": _pct(latencies, 50), "p95_ms": _pct(latencies, 95),
            "decisions_per_s": len(stored) / wall}  # fmt: skip


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


def _wait_for(url: str, timeout: float = 90) -> str:
    import urllib.request

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
