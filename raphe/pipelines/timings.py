"""Per-stage latency histograms: fixed memory however long a service runs.

Durations fall in log-spaced bins (20 per decade, from 100 ns to 100 s: 5.9% wide), so a percentile
is read to within one bin; the maximum is kept exactly.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

LOW_S, HIGH_S, PER_DECADE = 1e-7, 1e2, 20
EDGES = np.logspace(np.log10(LOW_S), np.log10(HIGH_S), int(np.log10(HIGH_S / LOW_S)) * PER_DECADE + 1)
EDGE_LIST = EDGES.tolist()  # bisect on a list costs a tenth of numpy's searchsorted on one value


@dataclass
class Histogram:
    counts: np.ndarray = field(default_factory=lambda: np.zeros(len(EDGES) + 1, np.int64))
    total_s: float = 0.0
    max_s: float = 0.0

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def add(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(EDGE_LIST, seconds)] += 1
        self.total_s += seconds
        self.max_s = max(self.max_s, seconds)

    def percentile(self, q: float) -> float | None:
        """The upper edge of the bin holding the q-th percentile (0 < q <= 100); the max if beyond;
        None without a sample (JSON has no NaN)."""
        n = self.n
        if n == 0:
            return None
        index = int(np.searchsorted(np.cumsum(self.counts), q / 100.0 * n))
        return float(min(EDGES[min(index, len(EDGES) - 1)], self.max_s))

    def summary(self) -> dict[str, float | None]:
        n = self.n
        return {"n": n, "mean_s": self.total_s / n if n else None, "p50_s": self.percentile(50),
                "p95_s": self.percentile(95), "p99_s": self.percentile(99), "max_s": self.max_s}


class StageTimings:
    """One histogram per named stage, in the order stages were first seen."""

    def __init__(self, stages: tuple[str, ...] = ()):
        self.stages: dict[str, Histogram] = {name: Histogram() for name in stages}

    def add(self, stage: str, seconds: float) -> None:
        if stage not in self.stages:
            self.stages[stage] = Histogram()
        self.stages[stage].add(seconds)

    def summary(self) -> dict[str, dict[str, float]]:
        return {name: h.summary() for name, h in self.stages.items()}
