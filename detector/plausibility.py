"""Whether a channel carries something raphe can classify at all, with a one-line reason when not.

raphe classifies the action currents of spontaneously firing cells in loose-seal cell-attached
recordings (current in pA). A channel fails a check when its signal is of another kind:

- units that are not a current (mV: current clamp; V: an auxiliary input);
- a range that no cell-attached current has (a baseline beyond ±1 nA or a noise beyond 300 pA: a
  voltage times a gain, or a command channel);
- a baseline far from zero (beyond ±100 pA) at an absolute threshold, which hides or invents
  spikes, or a threshold crossed continuously (more than 5% of samples beyond it);
- more events than a neuron fires (above 60 per second on average);
- events locked to the start of the sweeps (at the same time, within 3 ms, after the start of at
  least 3 sweeps, far more often than a cell firing at random times at its rate would put them
  there): the transients of a stimulus or command protocol.

The checks see the same blocks as the detector, at the rig and at the desk (the detector's own pass
sums what they need), and keep fixed memory per channel but for the event times of locking. They never drop a sample or a spike: a failed check makes the cell "not classifiable",
with its reason, and its spikes stay counted.
"""

from __future__ import annotations

import math

import numpy as np

from .config import DetectorConfig

CURRENT_UNITS = ("pA",)
MAX_BASELINE_PA = 1000.0
MAX_NOISE_PA = 300.0
MAX_HOLDING_PA = 100.0
MAX_BEYOND_THRESHOLD = 0.05
MAX_RATE_HZ = 60.0
LOCK_BIN_S = 0.001
LOCK_SIGNIFICANCE = 1e-3
MIN_SWEEPS_FOR_LOCKING = 3
MIN_SECONDS = 1.0


class SignalChecks:
    """The checks of the channels (rows) of one stream at one rate under one detector rule, fed block
    by block for many rows at once (``add_block``) and event by event per row (``add_events``).

    Parameters
    ----------
    sample_rate : Hz.
    config : the detector's rule: its threshold is judged only when it is absolute.
    units : the units of the first rows (None where the stream does not say: that row's units
        check is skipped); more rows come with ``add_channel``.
    """

    def __init__(self, sample_rate: float, config: DetectorConfig, units: list[str | None] = ()):
        self.sample_rate = float(sample_rate)
        self.config = config
        self.absolute = config.adaptive_k is None and not config.relative
        self.units: list[str | None] = []
        self.samples = np.zeros(0, np.int64)
        self.total = np.zeros(0)
        self.total_sq = np.zeros(0)
        self.beyond = np.zeros(0, np.int64)
        self.events = np.zeros(0, np.int64)
        self.segments = np.zeros(0, np.int64)
        self._segment_start = np.zeros(0, np.int64)
        self._next = np.zeros(0, np.int64)
        self._locks: list[dict[int, set[int]]] = []
        for u in units:
            self.add_channel(u)

    def add_channel(self, units: str | None) -> int:
        """A new row; returns its index."""
        self.units.append(units)
        self._locks.append({})
        for name in ("samples", "total", "total_sq", "beyond", "events", "segments", "_segment_start"):
            setattr(self, name, np.append(getattr(self, name), 0))
        self._next = np.append(self._next, -1)
        return len(self.units) - 1

    def reset_channel(self, row: int, units: str | None) -> None:
        """Row ``row`` starts afresh (a new acquisition, or a channel now at this rate)."""
        self.units[row] = units
        self._locks[row] = {}
        for name in ("samples", "total", "total_sq", "beyond", "events", "segments", "_segment_start"):
            getattr(self, name)[row] = 0
        self._next[row] = -1

    def add_block(self, stats: np.ndarray, rows: np.ndarray, starts: np.ndarray, length: int) -> None:
        """A block of ``length`` samples of the channels ``rows``, row ``i`` starting at ``starts[i]`` on
        the stream's counter, summarised by the detector's pass over it (``Detector.row_stats``:
        finite samples, sum, sum of squares, samples beyond the threshold, per row). A block that does
        not continue its row's previous one starts a new segment (a sweep, or data after a gap)."""
        rows = np.asarray(rows)
        starts = np.asarray(starts, dtype=np.int64)
        new = starts != self._next[rows]
        self.segments[rows] += new
        self._segment_start[rows] = np.where(new, starts, self._segment_start[rows])
        self._next[rows] = starts + length
        self.samples[rows] += stats[:, 0].astype(np.int64)
        self.total[rows] += stats[:, 1]
        self.total_sq[rows] += stats[:, 2]
        if self.absolute and self.config.polarity in ("neg", "pos"):
            self.beyond[rows] += stats[:, 3].astype(np.int64)

    def add_events(self, row: int, sample_nums: np.ndarray) -> None:
        """Events detected on row ``row``, in the segment of its last block."""
        self.events[row] += len(sample_nums)
        locks, start, segment = self._locks[row], int(self._segment_start[row]), int(self.segments[row])
        for s in sample_nums:
            locks.setdefault(int((int(s) - start) / (LOCK_BIN_S * self.sample_rate)), set()).add(segment)

    def mean(self, row: int) -> float:
        return float(self.total[row] / self.samples[row]) if self.samples[row] else 0.0

    def std(self, row: int) -> float:
        if not self.samples[row]:
            return 0.0
        return float(np.sqrt(max(self.total_sq[row] / self.samples[row] - self.mean(row) ** 2, 0.0)))

    def reasons(self, row: int) -> list[str]:
        """Why row ``row``'s channel cannot be classified; empty when every check passes."""
        found = []
        units = self.units[row] or "?"
        if self.units[row] is not None and self.units[row] not in CURRENT_UNITS:
            found.append(f"units are {self.units[row]}, not pA: raphe classifies cell-attached current")
        samples = int(self.samples[row])
        if samples < MIN_SECONDS * self.sample_rate:
            return found
        mean, std = self.mean(row), self.std(row)
        if abs(mean) > MAX_BASELINE_PA or std > MAX_NOISE_PA:
            found.append(f"baseline {mean:+.0f} {units} with noise {std:.0f} {units}: the range of a voltage "
                         "times a gain or of a command, not of cell-attached current")
        elif self.absolute and self.beyond[row] > MAX_BEYOND_THRESHOLD * samples:
            found.append(f"{100 * self.beyond[row] / samples:.0f}% of samples lie beyond the "
                         f"{self.config.threshold:g} {units} threshold (baseline {mean:+.0f} {units}): it is "
                         "crossed continuously; detect relative to the baseline (--relative)")
        elif self.absolute and abs(mean) > MAX_HOLDING_PA:
            found.append(f"baseline {mean:+.0f} {units}, far from zero: an absolute threshold hides or invents "
                         "spikes; detect relative to the baseline (--relative)")
        rate = self.events[row] * self.sample_rate / samples
        if rate > MAX_RATE_HZ:
            found.append(f"{rate:.0f} events/s: more than a neuron fires; noise or artefacts cross the threshold")
        locked = self._locked(row)
        if locked:
            found.append(locked)
        return found

    def _locked(self, row: int) -> str:
        """A reason when events recur at the same time after the start of the sweeps more often than
        a cell firing at its rate, at random times, would put them there (binomial tail, corrected for
        the number of 3 ms windows tested)."""
        segments, events, samples = int(self.segments[row]), int(self.events[row]), int(self.samples[row])
        if segments < MIN_SWEEPS_FOR_LOCKING or events == 0:
            return ""
        p = min(1.0, events / (samples / self.sample_rate) * 3 * LOCK_BIN_S)
        tests = max(1.0, samples / segments / (LOCK_BIN_S * self.sample_rate))
        needed = max(MIN_SWEEPS_FOR_LOCKING, fewest_locked(segments, p, LOCK_SIGNIFICANCE / tests))
        if needed > segments:
            return ""
        locks = self._locks[row]
        locked = []
        for b in locks:
            sweeps = len(locks[b] | locks.get(b - 1, set()) | locks.get(b + 1, set()))
            if sweeps >= needed:
                locked.append((b, sweeps))
        if not locked:
            return ""
        first, sweeps = min(locked)
        return (f"events recur {first * LOCK_BIN_S:.3f} s after the start of {sweeps} of the {segments} sweeps: "
                "transients of a stimulus or command protocol, not spontaneous firing")


def fewest_locked(n: int, p: float, alpha: float) -> int:
    """The fewest of ``n`` sweeps an event time must recur in for P(X >= k) < alpha, X ~ Binomial(n, p);
    ``n + 1`` when no count is that unlikely."""
    if p >= 1.0:
        return n + 1
    if p <= 0.0:
        return 1
    tail = 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    for k in range(n, -1, -1):
        tail += math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_p
                         + (n - k) * log_q)
        if tail >= alpha:
            return k + 1
    return 0

