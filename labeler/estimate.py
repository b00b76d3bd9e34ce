"""How many wrong labels remain, with 95% intervals, from the reviews so far; and when reviewing stops paying.

A reviewer's decision is the truth for its image: ``relabel`` or ``remove`` = the label was wrong,
``confirm`` = it was right (skips say nothing). Images are put in *bands* by the flagged round's
score (the queue's "how likely wrong", every scored image, not only the queued ones): the top 1%,
1-2%, 2-5%, 5-10%, 10-20%, 20-50% and 50-100% of images by score. In each band:

  measured  with at least ``MIN_BAND`` reviews, the band's wrong-label rate has the Jeffreys
            posterior Beta(wrong + 1/2, right + 1/2) (reviews taken in queue order sit at the top of
            their band, so a measured rate leans high, never low);
  model     with fewer, the rate rests on the model's calibration: a weak prior with the band's mean
            score as its mean, worth ``PRIOR_REVIEWS`` reviews, updated by the reviews there are.

The number still wrong among a band's unreviewed images is drawn from Binomial(unreviewed, rate)
under that posterior; summing the bands over ``DRAWS`` draws gives the 95% interval (2.5th and
97.5th percentiles) of the total, of the part inside the queue and outside it, and of the dataset's
label-error rate ((found + remaining) / images). A random audit sample (`labeler sample`) puts
reviews in the low bands, so their rate is measured instead of assumed.

numpy only; plain arrays in, a dataclass out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

BAND_EDGES = (0.0, 0.01, 0.02, 0.05, 0.10, 0.20, 0.50, 1.0)  # shares of images ranked by score, highest first
MIN_REVIEWS = 30  # fewer reviews in all: "not enough reviews yet"
MIN_BAND = 10  # reviews that make a band "measured"
PRIOR_REVIEWS = 4.0  # how many reviews the model's calibration is worth in a band
DRAWS = 4000
NEXT = 100  # "errors the next 100 reviews will find"


@dataclass
class Band:
    name: str  # e.g. "top 1-2%"
    images: int
    in_queue: int
    reviewed: int
    wrong: int
    basis: str  # "measured" or "model"
    rate: float  # posterior mean of the wrong-label rate
    rate_low: float
    rate_high: float
    remaining: float  # expected wrong labels among its unreviewed images
    remaining_low: float
    remaining_high: float


@dataclass
class Estimate:
    enough: bool  # at least MIN_REVIEWS reviews
    reviewed: int
    found: int  # wrong labels found by the reviews
    images: int
    bands: list[Band] = field(default_factory=list)
    remaining: tuple[float, float, float] | None = None  # (expected, low, high): still wrong, unreviewed
    remaining_in_queue: tuple[float, float, float] | None = None
    remaining_outside_queue: tuple[float, float, float] | None = None
    error_rate: tuple[float, float, float] | None = None  # of the whole dataset, before any review
    next_hits: tuple[float, float, float] | None = None  # expected wrong labels among the next NEXT queue items
    tail_measured: bool = False  # every band outside the queue has MIN_BAND reviews
    class_rates: dict = field(default_factory=dict)  # {class code: (mean, low, high)} label-error rate before review
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def estimate_remaining(
    score, reviewed, wrong, in_queue, next_rows=None, *, earlier=None, classes=None, seed: int = 0
) -> Estimate:
    """``score`` (N,) the queue's score of every image; ``reviewed``/``wrong`` (N,) bool (wrong: among the
    reviewed, the label was changed or the image removed); ``in_queue`` (N,) bool; ``next_rows``: rows the
    queue shows next (unreviewed, in order) for the next-100 forecast; ``earlier`` (N,) bool: reviewed
    before this score was computed (their errors count as found, but they say nothing about the bands);
    ``classes`` (N,) class codes: also each class's label-error rate (its found errors plus its unreviewed
    images at their bands' rates, over its images)."""
    score = np.asarray(score, dtype=np.float64)
    reviewed, wrong, in_queue = (np.asarray(a, dtype=bool) for a in (reviewed, wrong, in_queue))
    earlier = np.zeros(len(score), bool) if earlier is None else np.asarray(earlier, dtype=bool) & reviewed
    wrong_all = wrong & reviewed
    found = int(wrong_all.sum())
    reviewed, wrong = reviewed & ~earlier, wrong & reviewed & ~earlier
    n = len(score)
    est = Estimate(enough=int(reviewed.sum()) >= MIN_REVIEWS, reviewed=int(reviewed.sum()), found=found, images=n)
    if not est.enough:
        est.notes.append(f"not enough reviews yet ({est.reviewed} of the {MIN_REVIEWS} an estimate needs)")
        return est
    band_of = _bands(score)
    rng = np.random.default_rng(seed)
    codes = None if classes is None else np.asarray(classes)
    present, code_index = (None, None) if codes is None else np.unique(codes, return_inverse=True)
    draws = []
    for b in range(len(BAND_EDGES) - 1):
        rows = (band_of == b) & ~earlier
        if rows.any():
            draws.append(_draw_band(b, score, rows, band_of == b, reviewed, wrong, in_queue, rng))
    est.bands = [d.band for d in draws]
    inside = sum((d.hits_in for d in draws), np.zeros(DRAWS))
    outside = sum((d.hits_out for d in draws), np.zeros(DRAWS))
    total = inside + outside
    est.remaining = _summary(total)
    est.remaining_in_queue = _summary(inside)
    est.remaining_outside_queue = _summary(outside)
    est.error_rate = _summary((est.found + total) / max(n, 1))
    if codes is not None:
        est.class_rates = _class_rates(present, code_index, wrong_all, draws)
    outside_bands = [band for band in est.bands if band.in_queue < band.images]
    est.tail_measured = all(band.basis == "measured" for band in outside_bands)
    if not est.tail_measured:
        est.notes.append(
            "reviews so far come from the top of the queue: the estimate for the bands marked 'model' rests on the "
            "model's calibration, not on reviews; `labeler sample WORKSPACE 100` adds a random audit sample to measure it"
        )
    if next_rows is not None and len(next_rows):
        upcoming = band_of[np.asarray(next_rows)[:NEXT]]  # expected hits: each upcoming image at its band's rate
        est.next_hits = _summary(sum(d.rates * int((upcoming == d.index).sum()) for d in draws))
    return est


@dataclass
class _BandDraws:
    index: int
    band: Band
    rates: np.ndarray  # (DRAWS,) posterior draws of the band's wrong-label rate
    hits_in: np.ndarray  # (DRAWS,) wrong labels among its unreviewed images inside the queue
    hits_out: np.ndarray  # ... and outside it
    open_rows: np.ndarray  # (N,) bool: its unreviewed images


def _draw_band(b: int, score, rows, members, reviewed, wrong, in_queue, rng) -> _BandDraws:
    """Band ``b``: its rate posterior from the reviews in ``rows`` (its images not reviewed before the
    score), and draws of the wrong labels left among its unreviewed images, inside and outside the queue."""
    k, m = int(wrong[rows].sum()), int(reviewed[rows].sum())
    measured, a, c = _band_posterior(score, rows, reviewed, k, m)
    rates = rng.beta(a, c, DRAWS)
    open_rows = rows & ~reviewed
    hits_in = rng.binomial(int((open_rows & in_queue).sum()), rates)
    hits_out = rng.binomial(int((open_rows & ~in_queue).sum()), rates)
    left = hits_in + hits_out
    lo, hi = BAND_EDGES[b], BAND_EDGES[b + 1]
    band = Band(
        name=f"top {lo:.0%}-{hi:.0%}",
        images=int(members.sum()),
        in_queue=int((rows & in_queue).sum()),
        reviewed=m,
        wrong=k,
        basis="measured" if measured else "model",
        rate=float(a / (a + c)),
        rate_low=float(np.percentile(rates, 2.5)),
        rate_high=float(np.percentile(rates, 97.5)),
        remaining=float(left.mean()),
        remaining_low=float(np.percentile(left, 2.5)),
        remaining_high=float(np.percentile(left, 97.5)),
    )
    return _BandDraws(b, band, rates, hits_in, hits_out, open_rows)


def _band_posterior(score, rows, reviewed, k: int, m: int) -> tuple[bool, float, float]:
    """(measured, a, c): the Beta posterior of a band's wrong-label rate from its ``k`` wrong of ``m`` reviews.
    Measured (``m`` >= MIN_BAND): Jeffreys. Else a prior at the band's mean score (its unreviewed images')
    worth PRIOR_REVIEWS reviews, updated by the reviews there are."""
    if m >= MIN_BAND:
        return True, k + 0.5, m - k + 0.5
    pool = score[rows & ~reviewed] if (rows & ~reviewed).any() else score[rows]
    prior = float(np.clip(pool.mean(), 1e-3, 1 - 1e-3))
    return False, prior * PRIOR_REVIEWS + k, (1 - prior) * PRIOR_REVIEWS + m - k


def _class_rates(present, code_index, wrong_all, draws: list[_BandDraws]) -> dict:
    """{class code: its label-error rate}: found errors plus its unreviewed images at their bands' rates."""
    per_class = sum(
        (np.outer(np.bincount(code_index[d.open_rows], minlength=len(present)), d.rates) for d in draws),
        np.zeros((len(present), DRAWS)),
    )
    found_in = np.bincount(code_index[wrong_all], minlength=len(present))
    sizes = np.bincount(code_index, minlength=len(present))
    return {int(code): _summary((found_in[j] + per_class[j]) / max(int(sizes[j]), 1)) for j, code in enumerate(present)}


def _bands(score: np.ndarray) -> np.ndarray:
    """Band index per row: by rank of score, highest first, cut at BAND_EDGES."""
    n = len(score)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-score, kind="stable")] = np.arange(n)
    share = (rank + 0.5) / max(n, 1)
    return np.searchsorted(np.asarray(BAND_EDGES[1:-1]), share, side="right")


def _summary(draws) -> tuple[float, float, float]:
    draws = np.asarray(draws, dtype=np.float64)
    return float(draws.mean()), float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def review_pace(timestamps: list[float], *, gap: float = 600.0) -> float | None:
    """Decisions per hour of active reviewing: pauses longer than ``gap`` seconds are not counted."""
    t = np.sort(np.asarray(timestamps, dtype=np.float64))
    if len(t) < 2:
        return None
    steps = np.diff(t)
    active = steps[steps <= gap].sum()
    return float((steps <= gap).sum() / active * 3600) if active > 0 else None
