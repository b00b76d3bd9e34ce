"""matplotlib for training's plots (confusion matrices, top losses, loss curves, lr_find)."""

from __future__ import annotations


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display; every plot of ``training`` goes through here;
    ``labeler.report.pyplot`` is labeler's own, since this package imports nothing from labeler)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
