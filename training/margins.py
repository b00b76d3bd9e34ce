"""Area under the margin (Pleiss et al. 2020, "Identifying Mislabeled Data using the Area Under the Margin
Ranking"): how readily a model learns an image's given label while it trains.

At every training step an image is in, its margin is the logit of its given label minus the largest other
logit; its AUM is the mean over those steps. A network learns a correct label early (large positive
margins) and fits a wrong one late, by memorising (margins negative for most of the training). Unlike
out-of-fold probabilities it is measured *on* the image's own label, from the training-time forward pass:
free (no extra pass), and information the held-out prediction does not carry.

fastai's DataLoader does not hand the callback which images a batch holds; it draws one shuffled index
list per epoch (``DataLoader.__idxs``) and cuts it into batches in order. ``MarginHistory`` reads that list
and checks every batch's targets against the labels it expects at those indices: on any mismatch (another
fastai, a distributed loader, items skipped) it stops recording and says why, so a wrong mapping can never
yield numbers.
"""

from __future__ import annotations

import numpy as np
from fastai.callback.core import Callback


class MarginHistory(Callback):
    """Per training item and epoch: the sum and count of its margins over the training steps it was in.

    ``codes``: the label code of every item of the training DataLoader's dataset, in its order."""

    order = 55
    run_valid = False

    def __init__(self, codes):
        self.codes = np.asarray(codes, dtype=np.int64)
        self.total = np.zeros((len(self.codes), 0))
        self.count = np.zeros((len(self.codes), 0), dtype=np.int64)
        self.broken: str | None = None

    def before_train(self):  # a new column for each training epoch, across every fit (fine_tune fits twice)
        self.total = np.pad(self.total, ((0, 0), (0, 1)))
        self.count = np.pad(self.count, ((0, 0), (0, 1)))

    def after_loss(self):
        if not self.training or self.broken:
            return
        rows = self._rows(len(self.yb[0]))
        if rows is None:
            return
        logits = self.pred.detach().float()
        y = self.yb[0].view(-1, 1)
        given = logits.gather(1, y).squeeze(1)
        others = logits.scatter(1, y, float("-inf")).max(dim=1).values
        np.add.at(self.total[:, -1], rows, (given - others).cpu().numpy())
        np.add.at(self.count[:, -1], rows, 1)

    def _rows(self, n: int) -> np.ndarray | None:
        """The dataset indices of the current batch, checked against its targets; None (and ``broken``) if not."""
        idxs = getattr(self.dl, "_DataLoader__idxs", None)
        bs = getattr(self.dl, "bs", None)
        if idxs is None or not bs:
            self.broken = "this DataLoader does not expose its sample order"
            return None
        rows = np.asarray(idxs[self.iter * bs : self.iter * bs + n], dtype=np.int64)
        if len(rows) != n or rows.max(initial=-1) >= len(self.codes):
            self.broken = f"batch {self.iter}: its {n} items do not map onto the dataset's order"
            return None
        if not np.array_equal(self.codes[rows], self.yb[0].cpu().numpy()):
            self.broken = f"batch {self.iter}: the targets differ from the labels at the indices read"
            return None
        return rows

    def by_epoch(self) -> np.ndarray | None:
        """(n, epochs) mean margin per item and epoch (NaN where not trained on in that epoch); None if broken."""
        if self.broken:
            return None
        return np.where(self.count > 0, self.total / np.maximum(self.count, 1), np.nan).astype(np.float32)
