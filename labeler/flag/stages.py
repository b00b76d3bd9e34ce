"""Wall time and peak memory of each stage of `labeler flag`, told as each one ends (standard library only).

A DeepFashion-sized flag runs for a minute or more; a line per stage shows it moving, and `labeler bench flag`
reads the same lines into its per-stage table."""

from __future__ import annotations

import re
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

LINE = "stage {name}: {seconds:.1f} s, peak {peak:,.0f} MiB"
PATTERN = re.compile(r"^stage (?P<name>.+): (?P<seconds>[\d.]+) s, peak (?P<peak>[\d,]+) MiB$")


class Stages:
    """``with stages("probe"): ...`` times the block; ``rows`` keeps (name, seconds, peak MiB so far)."""

    def __init__(self, log: Callable[[str], None] | None = None):
        self.log = log
        self.rows: list[tuple[str, float, float]] = []

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
        self.rows.append((name, seconds, peak))
        if self.log is not None:
            self.log(LINE.format(name=name, seconds=seconds, peak=peak))


def parse(text: str) -> list[tuple[str, float, float]]:
    """The (name, seconds, peak MiB) of every stage line in ``text`` (what `labeler flag` printed)."""
    return [
        (m["name"], float(m["seconds"]), float(m["peak"].replace(",", "")))
        for m in map(PATTERN.match, text.splitlines())
        if m
    ]
