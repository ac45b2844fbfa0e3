"""The exceptions to the textbook's firing, added by both generators (``raphe synth --firing varied``).

Firing is strong evidence about a raphe cell, not a rule, and synthetic trains that follow the rule
alone would make a firing model look perfect. Each cell draws, from its own random stream (so that
``--firing classic`` gives exactly the trains of earlier versions), a pattern:

- NSER cells: ``SLOW_REGULAR_NSER`` of them fire slowly and fairly regularly, like SER cells
  (0.5-3 Hz, CV 0.15-0.6): the slow, less regular 5-HT-negative group of Allers & Sharp (2003).
- SER cells: ``BURSTING_SER`` fire doublets and triplets (4-15 ms apart) after a share of their
  spikes (Kocsis et al. 2006; Schweimer & Ungless 2010); ``IRREGULAR_SER`` fire faster and
  irregularly (3-6 Hz, CV 0.6-1.0), as slice cells can under strong drive.
- any cell: ``DRIFTING`` of them change rate slowly (a sinusoid of 10-40 % in log rate, period
  20-120 s), as the drive and the seal change; ``MISSING`` lose 2-10 % of their spikes to the
  detector; ``EXTRA`` pick up a neighbour's spikes (Poisson, 0.1-0.5 Hz).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SER, NSER = "SER", "NSER"
SLOW_REGULAR_NSER = 0.15
BURSTING_SER = 0.10
IRREGULAR_SER = 0.05
DRIFTING = 0.5
MISSING = 0.3
EXTRA = 0.2
MIN_ISI_S = 0.004
TYPICAL = "typical"


@dataclass(frozen=True, slots=True)
class Pattern:
    """How one cell's train departs from its class's textbook firing (``kind`` names the departure
    of its intervals; the other fields are zero where the cell has none of that)."""

    kind: str
    rate_hz: float = 0.0
    cv: float = 0.0
    burst_share: float = 0.0
    drift_depth: float = 0.0
    drift_period_s: float = 1.0
    drift_phase: float = 0.0
    missed: float = 0.0
    extra_hz: float = 0.0
    seed: int = 0


def draw(label: str, rng: np.random.Generator) -> Pattern:
    """A cell's pattern; ``rng`` is the cell's own stream, apart from the generator's."""
    u = rng.random()
    kind, rate, cv, burst = TYPICAL, 0.0, 0.0, 0.0
    if label == NSER and u < SLOW_REGULAR_NSER:
        kind, rate, cv = "slow-regular", float(rng.uniform(0.5, 3.0)), float(rng.uniform(0.15, 0.6))
    elif label == SER and u < BURSTING_SER:
        kind, burst = "bursting", float(rng.uniform(0.1, 0.4))
    elif label == SER and u < BURSTING_SER + IRREGULAR_SER:
        kind, rate, cv = "irregular", float(rng.uniform(3.0, 6.0)), float(rng.uniform(0.6, 1.0))
    drifting, missing, extra = rng.random(3) < (DRIFTING, MISSING, EXTRA)
    return Pattern(kind, rate, cv, burst,
                   drift_depth=float(rng.uniform(0.1, 0.4)) if drifting else 0.0,
                   drift_period_s=float(rng.uniform(20.0, 120.0)), drift_phase=float(rng.uniform(0, 2 * np.pi)),
                   missed=float(rng.uniform(0.02, 0.10)) if missing else 0.0,
                   extra_hz=float(rng.uniform(0.1, 0.5)) if extra else 0.0,
                   seed=int(rng.integers(2**63)))


def apply(pattern: Pattern, times: np.ndarray, duration_s: float) -> np.ndarray:
    """The cell's trough times (s, sorted, in [0, duration_s - 0.01)) with its pattern applied to
    ``times``, the generator's own train for the cell."""
    rng = np.random.default_rng(pattern.seed)
    end = duration_s - 0.01
    if pattern.rate_hz:
        shape = 1.0 / pattern.cv**2
        isi = rng.gamma(shape, 1.0 / (pattern.rate_hz * shape), int(duration_s * pattern.rate_hz * 2) + 10)
        times = rng.uniform(0.0, 1.0 / pattern.rate_hz) + np.cumsum(np.maximum(isi, MIN_ISI_S))
    if pattern.burst_share:
        leaders = times[rng.random(len(times)) < pattern.burst_share]
        followers = [leaders + rng.uniform(0.004, 0.015, len(leaders))]
        second = rng.random(len(leaders)) < 0.3
        followers.append(followers[0][second] + rng.uniform(0.004, 0.015, int(second.sum())))
        times = np.concatenate([times, *followers])
    if pattern.drift_depth:
        # a rate multiplied by m(t) is the same train on a clock that runs m(t) times faster
        # the clock is not renormalised: where it runs fast the train ends before the recording does,
        # where slow its last spikes fall past the end (docs/synthetic-data.md, "Synthetic firing"; the shipped data
        # were made so)
        grid = np.linspace(0.0, 2.0 * duration_s, 4096)
        m = np.exp(pattern.drift_depth * np.sin(2 * np.pi * grid / pattern.drift_period_s + pattern.drift_phase))
        real = np.concatenate([[0.0], np.cumsum(np.diff(grid) / m[1:])])
        times = np.interp(times, grid, real)
    if pattern.missed:
        times = times[rng.random(len(times)) >= pattern.missed]
    if pattern.extra_hz:
        times = np.concatenate([times, rng.uniform(0.0, end, rng.poisson(pattern.extra_hz * end))])
    times = np.sort(times[(times >= 0.0) & (times < end)])
    keep = np.concatenate([[True], np.diff(times) >= MIN_ISI_S]) if len(times) else np.zeros(0, bool)
    return times[keep]
