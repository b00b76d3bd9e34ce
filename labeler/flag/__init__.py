"""Finding likely label errors: the `labeler flag` stage and the pieces it is built from.

    stage.py      the stage: load a round's evidence, build the queue, store it, write the CSV and report
    queue.py      the ranked, explained queue from plain arrays (no workspace)
    scoring.py    the evidence score and its views; weights.json holds its fitted weights
    probe.py      the cross-validated linear probe in each embedding space
    neighbors.py  faiss: the k-NN graph, neighbour votes, outliers
    detect.py     cleanlab: self-confidence, the filters, the class summary
    reasons.py    why an image is in the queue, in words
    pixels.py     near-identical pixels (perceptual hashes)
    active.py     ActiveLab's review priority
    adapt.py      refitting the score on a reviewer's decisions (measured by `bench adapt`; not used by flag)
    stages.py     the time and peak memory of each step

This file only names the stage's public functions, and loads the stage when one is first used: importing
``labeler.flag.neighbors`` (as ``leakage`` does) does not import the stage, the queue or cleanlab.
"""

from __future__ import annotations

import importlib

_STAGE = (
    "ACTIVE_FOCUS",
    "QUEUE_CSV_COLUMNS",
    "FlagResult",
    "active_scores",
    "flag_round",
    "format_summary",
    "latest_round",
    "load_evidence",
    "write_queue_csv",
)
__all__ = list(_STAGE)


def __getattr__(name: str):
    if name in _STAGE:
        return getattr(importlib.import_module("labeler.flag.stage"), name)
    raise AttributeError(f"module 'labeler.flag' has no attribute {name!r}")
