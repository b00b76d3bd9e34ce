"""matplotlib for every plot (training's, and labeler's reports and benchmarks): the file-only Agg backend."""

from __future__ import annotations


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display; every plot goes through here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
