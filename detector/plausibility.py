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

The checks see the same blocks as the detector, at the rig and at the desk, and keep fixed
memory. They never drop a sample or a spike: a failed check makes the cell "not classifiable",
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
    """The checks of one channel, fed block by block (``add_block``) and event by event (``add_events``).

    Parameters
    ----------
    units : the channel's units (None when the stream does not say: the units check is skipped).
    sample_rate : Hz.
    config : the detector's rule: its threshold is judged only when it is absolute.
    """

    def __init__(self, units: str | None, sample_rate: float, config: DetectorConfig):
        self.units = units
        self.sample_rate = float(sample_rate)
        self.config = config
        self.absolute = config.adaptive_k is None and not config.relative
        self.samples = 0
        self.total = 0.0
        self.total_sq = 0.0
        self.beyond = 0
        self.events = 0
        self.segments = 0
        self._segment_start = 0
        self._next = -1
        self._locks: dict[int, set[int]] = {}

    def add_block(self, block: np.ndarray, sample_num: int) -> None:
        """One channel's block (1-D) starting at ``sample_num`` on the stream's counter; a block that
        does not continue the previous one starts a new segment (a sweep, or data after a gap)."""
        n, total, total_sq, beyond = block_stats(block[np.newaxis, :], self.config)
        self.add_stats(int(n[0]), float(total[0]), float(total_sq[0]), int(beyond[0]), sample_num, len(block))

    def add_stats(self, n: int, total: float, total_sq: float, beyond: int, sample_num: int, length: int) -> None:
        """The same from the statistics of a block (see :func:`block_stats`) of ``length`` samples,
        ``n`` of them finite."""
        if sample_num != self._next:
            self.segments += 1
            self._segment_start = sample_num
        self._next = sample_num + length
        self.samples += n
        self.total += total
        self.total_sq += total_sq
        if self.absolute:
            self.beyond += beyond

    def add_events(self, sample_nums: np.ndarray) -> None:
        """Events detected on this channel, in the segment of the last block."""
        self.events += len(sample_nums)
        for s in sample_nums:
            self._locks.setdefault(int((int(s) - self._segment_start) / (LOCK_BIN_S * self.sample_rate)),
                                   set()).add(self.segments)

    @property
    def mean(self) -> float:
        return self.total / self.samples if self.samples else 0.0

    @property
    def std(self) -> float:
        if not self.samples:
            return 0.0
        return float(np.sqrt(max(self.total_sq / self.samples - self.mean ** 2, 0.0)))

    def reasons(self) -> list[str]:
        """Why this channel cannot be classified; empty when every check passes."""
        found = []
        units = self.units or "?"
        if self.units is not None and self.units not in CURRENT_UNITS:
            found.append(f"units are {self.units}, not pA: raphe classifies cell-attached current")
        if self.samples < MIN_SECONDS * self.sample_rate:
            return found
        mean, std = self.mean, self.std
        if abs(mean) > MAX_BASELINE_PA or std > MAX_NOISE_PA:
            found.append(f"baseline {mean:+.0f} {units} with noise {std:.0f} {units}: the range of a voltage "
                         "times a gain or of a command, not of cell-attached current")
        elif self.absolute and self.beyond > MAX_BEYOND_THRESHOLD * self.samples:
            found.append(f"{100 * self.beyond / self.samples:.0f}% of samples lie beyond the "
                         f"{self.config.threshold:g} {units} threshold (baseline {mean:+.0f} {units}): it is "
                         "crossed continuously; detect relative to the baseline (--relative)")
        elif self.absolute and abs(mean) > MAX_HOLDING_PA:
            found.append(f"baseline {mean:+.0f} {units}, far from zero: an absolute threshold hides or invents "
                         "spikes; detect relative to the baseline (--relative)")
        rate = self.events * self.sample_rate / self.samples
        if rate > MAX_RATE_HZ:
            found.append(f"{rate:.0f} events/s: more than a neuron fires; noise or artefacts cross the threshold")
        locked = self._locked()
        if locked:
            found.append(locked)
        return found

    def _locked(self) -> str:
        """A reason when events recur at the same time after the start of the sweeps more often than
        a cell firing at its rate, at random times, would put them there (binomial tail, corrected for
        the number of 3 ms windows tested)."""
        if self.segments < MIN_SWEEPS_FOR_LOCKING or self.events == 0:
            return ""
        p = min(1.0, self.events / (self.samples / self.sample_rate) * 3 * LOCK_BIN_S)
        tests = max(1.0, self.samples / self.segments / (LOCK_BIN_S * self.sample_rate))
        needed = max(MIN_SWEEPS_FOR_LOCKING, fewest_locked(self.segments, p, LOCK_SIGNIFICANCE / tests))
        if needed > self.segments:
            return ""
        locked = []
        for b in self._locks:
            sweeps = len(self._locks[b] | self._locks.get(b - 1, set()) | self._locks.get(b + 1, set()))
            if sweeps >= needed:
                locked.append((b, sweeps))
        if not locked:
            return ""
        first, sweeps = min(locked)
        return (f"events recur {first * LOCK_BIN_S:.3f} s after the start of {sweeps} of the {self.segments} sweeps: "
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


def block_stats(block: np.ndarray, config: DetectorConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row of a (channels, n) block: finite samples, their sum, their sum of squares, and how
    many lie beyond an absolute threshold in the direction of the crossing (0 for other rules)."""
    values = block.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        values = np.where(finite, values, 0.0)
    beyond = np.zeros(len(values), np.int64)
    if config.adaptive_k is None and not config.relative and config.polarity in ("neg", "pos"):
        beyond = ((values < config.threshold) if config.polarity == "neg" else (values > config.threshold)) & finite
        beyond = beyond.sum(axis=1)
    return finite.sum(axis=1), values.sum(axis=1), np.einsum("ij,ij->i", values, values), beyond
