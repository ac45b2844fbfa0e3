"""Whether a channel carries something raphe can classify at all, with a one-line reason when not,
and a one-line hint where a channel simply gives no evidence.

raphe classifies the action currents of spontaneously firing cells in loose-seal cell-attached
recordings (current in pA). A channel fails a check (a *reason*: the cell is not classifiable) when
its signal is of another kind:

- units that are not a current (mV: current clamp; V: an auxiliary input);
- a flat channel: every sample the same value (an unconnected or unused input);
- a range that no cell-attached current has (a baseline beyond ±1 nA or a noise beyond 300 pA: a
  voltage times a gain, or a command channel);
- values that look like volts although they are called pA or carry no units: a noise below
  0.05 and nothing spanning 50 (see ``MIN_NOISE_PA``);
- at an absolute threshold: a baseline far from zero (beyond ±100 pA), a threshold crossed
  continuously (more than 5% of samples beyond it), or a baseline that drifts onto the threshold
  so that the noise crosses it (see ``NEAR_SD``);
- more events than a neuron fires (above 60 per second on average);
- events locked to the start of the sweeps (at the same time, within 3 ms, after the start of at
  least 3 sweeps, far more often than a cell firing at random times at its rate would put them
  there): the transients of a stimulus or command protocol.

A *hint* explains a channel without vetoing it: no spikes (nothing crossed the threshold, with the
deepest excursion seen), or transients of the other polarity (try ``--polarity``).

What the units rule can and cannot tell: a cell-attached current in pA has a noise of about
2-50 pA and spikes beyond 50 pA, and even an amplifier with no cell on it gives 0.2 pA or more in
the shared recordings. An amplifier's output read in volts (0.5 mV/pA: a -100 pA spike is -0.05 V,
a noise of 0.001-0.025 V) is a thousand times smaller, so it is recognised for gains up to about
1 mV/pA. The same output in millivolts is 0.5-1 times the pA values: its range is a current's, and
no rule on the values can tell it from pA; a gained copy in pA (x10) reaches the range check only
when its noise passes 300. The gain itself is never in the data (cells differ tenfold in spike size
and noise), so there is no ``--units auto``: the reason says which option fixes it.

The checks see the same blocks as the detector, at the rig and at the desk (the detector's own pass
sums most of what they need; extremes and transients of the other polarity come from one numba
pass over every row of the block), and keep fixed memory per channel but for the event times of locking. They
never drop a sample or a spike: a failed check makes the cell "not classifiable", with its reason,
and its spikes stay counted.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .config import FIRST_SEGMENT_S, DetectorConfig

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
# A channel quieter than this, with nothing spanning SPIKE_PA, is not pA: the quietest pA channel
# of the shared recordings (an amplifier with no cell, pclamp11_4ch.abf) has a noise of 0.20 pA.
MIN_NOISE_PA = 0.05
SPIKE_PA = 50.0
# The checks follow the baseline over stretches of ``noise_window_s`` on the stream's own counter
# (so that a stream cut into 10 ms messages or 1 s reads is judged alike). At an absolute threshold, a
# stretch's baseline is "on" the threshold when it lies within NEAR_SD of the stretch's standard
# deviations of it (the noise then crosses it about once a second at 40 kHz, as often as a SER cell
# fires) while a baseline at zero would not. The drift is the reason when the events pile up there:
# at least MIN_PILED_EVENTS and PILED_SHARE of them, at PILE_FACTOR times the rate of the other stretches.
NEAR_SD = 4.0
MIN_PILED_EVENTS = 10
PILED_SHARE = 0.25
PILE_FACTOR = 3.0
# Transients of the other polarity earn a hint from this many on, when they outnumber the events
# tenfold.
MIN_OPPOSITE = 5
OPPOSITE_RATIO = 10
# The checks are ready to veto after one sweep more than the lock check needs (the start of the first
# sweep may pass before a baseline-following threshold exists), or after a stretch unbroken for
# READY_UNBROKEN_S, taken as a gap-free recording, where no sweep repeats a transient (see ``ready``):
# long enough for most sweep protocols (the shared episodic recordings' sweeps last 0.2-4 s, one 10 s),
# short enough that a rig's gap-free cell is decided within seconds.
READY_SWEEPS = MIN_SWEEPS_FOR_LOCKING + 1
READY_UNBROKEN_S = 5.0
NO_SAMPLE = np.iinfo(np.int64).min // 2

# Per-row state: dtype and the value a fresh row starts with.
ROW_STATE = {
    "samples": (np.int64, 0), "total": (np.float64, 0.0), "total_sq": (np.float64, 0.0),
    "low": (np.float64, np.inf), "high": (np.float64, -np.inf), "opposite": (np.int64, 0),
    "beyond": (np.int64, 0), "events": (np.int64, 0),
    "segments": (np.int64, 0), "_segment_start": (np.int64, 0), "_next": (np.int64, -1), "_ready": (bool, False),
    "_stretch_index": (np.int64, -1), "_stretch_n": (np.float64, 0.0), "_stretch_sum": (np.float64, 0.0),
    "_stretch_sq": (np.float64, 0.0), "_stretch_events": (np.int64, 0),
    "_baseline": (np.float64, np.nan), "_sd": (np.float64, np.nan),
    "near_events": (np.int64, 0), "near_samples": (np.float64, 0.0), "far_events": (np.int64, 0),
    "far_samples": (np.float64, 0.0), "_near_gap": (np.float64, np.inf), "_near_baseline": (np.float64, np.nan),
    "_last": (np.float32, np.nan), "_last_crossing": (np.int64, NO_SAMPLE),
}


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
        self.absolute = not config.follows_baseline
        self.refractory = max(1, int(round(config.refractory_ms * sample_rate / 1000.0)))
        self.stretch = max(1, int(round(config.noise_window_s * sample_rate)))
        # the rule as the block kernel takes it (see _tally)
        self._opposite = {"neg": 1, "pos": -1}.get(config.polarity, 0)
        self._level_mode = 0 if config.adaptive_k is not None else 1 if config.relative else 2
        self._count_beyond = self.absolute and config.polarity in ("neg", "pos")
        self.units: list[str | None] = []
        for name, (dtype, _) in ROW_STATE.items():
            setattr(self, name, np.zeros(0, dtype))
        self._locks: list[dict[int, set[int]]] = []
        for u in units:
            self.add_channel(u)

    def add_channel(self, units: str | None) -> int:
        """A new row; returns its index."""
        self.units.append(units)
        self._locks.append({})
        for name, (dtype, fresh) in ROW_STATE.items():
            setattr(self, name, np.append(getattr(self, name), np.array(fresh, dtype)))
        return len(self.units) - 1

    def reset_channel(self, row: int, units: str | None) -> None:
        """Row ``row`` starts afresh (a new acquisition, or a channel now at this rate)."""
        self.units[row] = units
        self._locks[row] = {}
        for name, (_, fresh) in ROW_STATE.items():
            getattr(self, name)[row] = fresh

    def add_block(self, stats: np.ndarray, rows: np.ndarray, starts: np.ndarray, length: int,
                  block: np.ndarray | None = None) -> None:
        """A block of ``length`` samples of the channels ``rows``, row ``i`` starting at ``starts[i]`` on
        the stream's counter, summarised by the detector's pass over it (``Detector.row_stats``:
        finite samples, sum, sum of squares, samples beyond the threshold, per row). A block that does
        not continue its row's previous one starts a new segment (a sweep, or data after a gap).

        ``block`` (default None), the samples themselves (row ``i`` is ``rows[i]``), gives the
        extremes and the transients of the other polarity; without it the checks that need them
        (flat channel, volts, the hints' range and polarity) stay silent. Every statistic depends on
        the samples and their place on the counter only, not on how the stream was cut into blocks,
        as long as no block straddles a multiple of ``noise_window_s`` on the counter (a block counts
        in the stretch it starts in); cuts at multiples of 0.25 s, as the pipelines make, never do.
        ``rows`` are distinct rows of these checks, ``stats`` has a row for each, and ``block``, if
        given, is ``(len(rows), length)``: the bookkeeping runs in numba, which checks no index."""
        rows = np.asarray(rows, dtype=np.int64)
        starts = np.asarray(starts, dtype=np.int64)
        if len(stats) < len(rows) or len(starts) != len(rows) or (
                block is not None and np.shape(block) != (len(rows), length)):
            raise ValueError("add_block: stats, starts and block must have a row per row given, block `length` wide")
        moved = np.empty(len(rows), np.bool_)
        if _stretches_moved(rows, starts, self.stretch, self._stretch_index, moved):
            self._close_stretches(rows[moved])
        config = self.config
        seen = block is not None and length > 0
        # contiguous: a block cut at a stretch's end is a strided view, which numba would compile anew
        block = np.ascontiguousarray(block) if seen else np.empty((len(rows), 0), np.float32)
        _tally(np.asarray(stats, np.float64), rows, starts, length, block, np.empty(1, block.dtype), seen,
               self._count_beyond, self.stretch, self._opposite, self._level_mode,
               float(config.adaptive_k or 0.0), float(config.threshold), self.refractory,
               MIN_SECONDS * self.sample_rate, READY_SWEEPS, READY_UNBROKEN_S * self.sample_rate,
               self.segments, self._segment_start, self._next, self.samples, self.total, self.total_sq, self.beyond,
               self._stretch_index, self._stretch_n, self._stretch_sum, self._stretch_sq, self.low, self.high,
               self._last, self._last_crossing, self.opposite, self._baseline, self._sd, self._ready)

    def _close_stretches(self, rows: np.ndarray) -> None:
        """The stretches of ``rows`` are over: their baseline becomes the rows' reference, and at an
        absolute threshold their events count as on the threshold (near) or not."""
        n = self._stretch_n[rows]
        seen = rows[n > 0]
        near, gap, baseline, sd = self._approach(seen)
        self._baseline[seen], self._sd[seen] = baseline, sd
        if self.absolute:
            events, samples = self._stretch_events[seen], self._stretch_n[seen]
            self.near_events[seen] += np.where(near, events, 0)
            self.near_samples[seen] += np.where(near, samples, 0)
            self.far_events[seen] += np.where(near, 0, events)
            self.far_samples[seen] += np.where(near, 0, samples)
            closer = near & (gap < self._near_gap[seen])
            self._near_gap[seen] = np.where(closer, gap, self._near_gap[seen])
            self._near_baseline[seen] = np.where(closer, baseline, self._near_baseline[seen])
        for name in ("_stretch_n", "_stretch_sum", "_stretch_sq", "_stretch_events"):
            getattr(self, name)[rows] = 0

    def _approach(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per row of its current stretch: whether the baseline lies on the absolute threshold (within
        ``NEAR_SD`` standard deviations of it, while zero would not), that distance, the baseline
        (the mean) and the standard deviation."""
        n = self._stretch_n[rows]
        with np.errstate(invalid="ignore", divide="ignore"):
            baseline = self._stretch_sum[rows] / n
            sd = np.sqrt(np.maximum(self._stretch_sq[rows] / n - baseline ** 2, 0.0))
        gap, from_zero = self._distance(baseline), self._distance(np.zeros_like(baseline))
        near = (n > 0) & (gap < NEAR_SD * sd) & (from_zero >= NEAR_SD * sd)
        return near, gap, baseline, sd

    def _distance(self, baseline: np.ndarray) -> np.ndarray:
        """How far the absolute threshold lies from ``baseline`` in the direction of the spikes."""
        threshold = self.config.threshold
        if self.config.polarity == "neg":
            return baseline - threshold
        if self.config.polarity == "pos":
            return threshold - baseline
        return np.abs(baseline - threshold)

    def add_events(self, row: int, sample_nums: np.ndarray) -> None:
        """Events detected on row ``row``, in the segment of its last block."""
        self.events[row] += len(sample_nums)
        self._stretch_events[row] += len(sample_nums)
        locks, start, segment = self._locks[row], int(self._segment_start[row]), int(self.segments[row])
        for s in sample_nums:
            locks.setdefault(int((int(s) - start) / (LOCK_BIN_S * self.sample_rate)), set()).add(segment)

    def mean(self, row: int) -> float:
        return float(self.total[row] / self.samples[row]) if self.samples[row] else 0.0

    def std(self, row: int) -> float:
        if not self.samples[row]:
            return 0.0
        return float(np.sqrt(max(self.total_sq[row] / self.samples[row] - self.mean(row) ** 2, 0.0)))

    def ready(self, row: int) -> bool:
        """Whether the checks have seen enough of row ``row`` to veto what they would: ``MIN_SECONDS``
        of samples (every check but locking), and ``READY_SWEEPS`` sweeps or one stretch unbroken for
        ``READY_UNBROKEN_S`` (taken as gap-free: no sweep repeats a transient there). Once ready, a
        row stays ready until it is reset. Limit: a sweep protocol with sweeps of ``READY_UNBROKEN_S``
        or more is ready after its first sweep, before locking can be judged."""
        return bool(self._ready[row])

    def _unit(self, row: int) -> str:
        return f" {self.units[row]}" if self.units[row] else ""

    def reasons(self, row: int) -> list[str]:
        """Why row ``row``'s channel cannot be classified; empty when every check passes."""
        found = []
        if self.units[row] is not None and self.units[row] not in CURRENT_UNITS:
            found.append(f"units are {self.units[row]}, not pA: raphe classifies cell-attached current")
        samples = int(self.samples[row])
        if samples < MIN_SECONDS * self.sample_rate:
            return found
        mean, u = self.mean(row), self._unit(row)
        signal = self._signal_fault(row)
        drift = self._drift(row) if self.absolute else ""
        threshold = f"{self.config.threshold:g}{u} threshold"
        if signal:
            found.append(signal)
        elif drift:
            found.append(drift)
        elif self.absolute and self.beyond[row] > MAX_BEYOND_THRESHOLD * samples:
            found.append(f"{100 * self.beyond[row] / samples:.0f}% of samples lie beyond the {threshold} "
                         f"(baseline {mean:+.0f}{u}): it is crossed continuously; detect relative to the baseline "
                         "(without --absolute)")
        elif self.absolute and abs(mean) > MAX_HOLDING_PA:
            found.append(f"baseline {mean:+.0f}{u}, far from zero: an absolute threshold hides or invents "
                         "spikes; detect relative to the baseline (without --absolute)")
        rate = self.events[row] * self.sample_rate / samples
        if rate > MAX_RATE_HZ:
            found.append(f"{rate:.0f} events/s: more than a neuron fires; noise or artefacts cross the threshold")
        locked = self._locked(row)
        if locked:
            found.append(locked)
        return found

    def _signal_fault(self, row: int) -> str:
        """A reason when the samples are not a cell-attached current at all: flat, out of range, or
        volts; empty otherwise."""
        u, mean, std = self._unit(row), self.mean(row), self.std(row)
        seen = self.high[row] >= self.low[row]  # extremes come with the blocks themselves
        if seen and self.high[row] == self.low[row]:
            return f"flat channel: every sample is {self.low[row]:g}{u}: an unconnected or unused input"
        if abs(mean) > MAX_BASELINE_PA or std > MAX_NOISE_PA:
            return (f"baseline {mean:+.0f}{u} with noise {std:.0f}{u}: the range of a voltage times a gain or of a "
                    "command, not of cell-attached current; an amplifier's output in mV or µV needs --units pA "
                    "and --scale (pA per unit)")
        span = self.high[row] - self.low[row]
        if self.units[row] in (None, *CURRENT_UNITS) and seen and std < MIN_NOISE_PA and span < SPIKE_PA:
            return (f"values look like volts, not pA: SD {std:.2g} and range {span:.2g}, where "
                    f"cell-attached current has a noise of 2-50 pA and spikes beyond {SPIKE_PA:g} pA; set --units pA "
                    "--scale 1000/G for an amplifier at G mV/pA (--scale 2000 at 0.5 mV/pA)")
        return ""

    def _drift(self, row: int) -> str:
        """A reason when the events pile up while the baseline lies on the absolute threshold; empty
        otherwise. The stretch still open counts once it holds half a stretch."""
        near, near_samples = int(self.near_events[row]), float(self.near_samples[row])
        far, far_samples = int(self.far_events[row]), float(self.far_samples[row])
        gap, baseline = float(self._near_gap[row]), float(self._near_baseline[row])
        if self._stretch_n[row] >= self.stretch / 2:
            now_near, now_gap, now_baseline, _ = (a[0] for a in self._approach(np.array([row])))
            events, samples = int(self._stretch_events[row]), float(self._stretch_n[row])
            if now_near:
                near, near_samples = near + events, near_samples + samples
                baseline = float(now_baseline) if now_gap < gap else baseline
            else:
                far, far_samples = far + events, far_samples + samples
        events = int(self.events[row])
        far_rate = far / far_samples if far_samples else 0.0
        if near < MIN_PILED_EVENTS or near < PILED_SHARE * events or near / near_samples < PILE_FACTOR * far_rate:
            return ""
        u = self._unit(row)
        return (f"baseline at {baseline:+.0f}{u} drifts onto the {self.config.threshold:g}{u} threshold: {near} of "
                f"{events} events came while it lay within {NEAR_SD:g} SDs of it; detect relative to the "
                "baseline (without --absolute)")

    def hints(self, row: int) -> list[str]:
        """What explains row ``row``'s channel without making it unclassifiable: no spikes, or
        transients of the other polarity; empty when there is nothing to say (or too little seen)."""
        samples = int(self.samples[row])
        if samples < MIN_SECONDS * self.sample_rate:
            return []
        found = []
        config, u, events = self.config, self._unit(row), int(self.events[row])
        seen = self.high[row] >= self.low[row]
        # a threshold that follows the baseline has none until the first noise window is complete
        # a threshold that follows the baseline exists once the first noise segment is complete
        searched = samples / self.sample_rate - (min(FIRST_SEGMENT_S, config.noise_window_s)
                                                 if config.follows_baseline else 0.0)
        if events == 0 and searched > 0:
            if config.adaptive_k is not None:
                rule = f"{config.adaptive_k:g} noise SDs from the baseline"
            else:
                rule = f"the {config.threshold:g}{u} threshold" + (" (relative to the baseline)" if config.relative else "")
            spread = f"SD {self.std(row):.2g}{u}"
            if seen:
                spread += f", samples from {signed(self.low[row])} to {signed(self.high[row])}{u}"
            found.append(f"no spikes: nothing crossed {rule} in {searched:.1f} s ({spread})")
        opposite = int(self.opposite[row])
        if config.polarity != "both" and opposite >= MIN_OPPOSITE and opposite > OPPOSITE_RATIO * events:
            other, up = ("pos", True) if config.polarity == "neg" else ("neg", False)
            if config.adaptive_k is not None:
                level, fix = f"{config.adaptive_k:g} noise SDs {'above' if up else 'below'} the baseline", ""
            else:
                level = f"{-config.threshold:+g}{u}" + (" from the baseline" if config.relative else "")
                fix = f" --threshold {-config.threshold:g}"
            found.append(f"events are {'positive' if up else 'negative'}: {opposite} {'upward' if up else 'downward'} "
                         f"transients beyond {level} and {events} {'downward' if up else 'upward'} ones: "
                         f"try --polarity {other}{fix}")
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


def signed(value: float) -> str:
    """A value with its sign, three digits where it is small, whole where it is large: -0.0135, -27.1, +3042."""
    return f"{value:+.0f}" if abs(value) >= 100 else f"{value:+.3g}"


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


@njit(cache=True, nogil=True)
def _stretches_moved(rows, starts, stretch, stretch_index, moved):
    """Per row of a block, whether it starts in another stretch than the row's last block (into
    ``moved``); whether any does."""
    anything = False
    for i in range(len(rows)):
        moved[i] = starts[i] // stretch != stretch_index[rows[i]]
        anything |= moved[i]
    return anything


@njit(cache=True, nogil=True)
def _tally(stats, rows, starts, length, block, in_block_type, seen, count_beyond, stretch, opposite, level_mode,
           adaptive_k, threshold, refractory, min_samples, ready_sweeps, ready_unbroken, segments, segment_start,
           next_sample, samples, total, total_sq, beyond, stretch_index, stretch_n, stretch_sum, stretch_sq, low, high,
           last, last_crossing, opposite_count, baseline, sd, ready):
    """``add_block`` over every row in one call (after the stretches that ended were closed): the
    segments, the sums, the stretch's sums and, where the samples are ``seen``, the extremes and the
    transients of the other polarity (``opposite``: 1 where the spikes are negative, -1 positive, 0
    for both: none counted) beyond the level of ``level_mode`` (0 adaptive, 1 relative, 2 absolute),
    compared in the block's own type (``in_block_type``, one element of it, casts the level); then
    whether each row is ready. A call costs one dispatch where the same in numpy took some thirty
    calls (at a 1 ms block, most of the detect stage)."""
    for i in range(len(rows)):
        r = rows[i]
        new = starts[i] != next_sample[r]
        if new:
            segments[r] += 1
            segment_start[r] = starts[i]
        next_sample[r] = starts[i] + length
        n = stats[i, 0]
        samples[r] += np.int64(n)
        total[r] += stats[i, 1]
        total_sq[r] += stats[i, 2]
        if count_beyond:
            beyond[r] += np.int64(stats[i, 3])
        stretch_index[r] = starts[i] // stretch
        stretch_n[r] += n
        stretch_sum[r] += stats[i, 1]
        stretch_sq[r] += stats[i, 2]
        if seen:
            if new:
                last[r] = np.nan  # no transient spans a gap or a sweep's start
            lowest, highest = low[r], high[r]
            for j in range(length):
                value = block[i, j]
                if value < lowest:  # a NaN is never lower nor higher: skipped, as np.fmin skips it
                    lowest = value
                if value > highest:
                    highest = value
            low[r], high[r] = lowest, highest
            before = last[r]
            last[r] = block[i, length - 1]
            if opposite != 0:
                if level_mode == 0:
                    reach = adaptive_k * sd[r]
                    in_block_type[0] = baseline[r] + (reach if opposite > 0 else -reach)
                elif level_mode == 1:
                    in_block_type[0] = baseline[r] - threshold
                else:
                    in_block_type[0] = -threshold
                level = in_block_type[0]
                was = (before > level if opposite > 0 else before < level) or np.isnan(before)
                previous = last_crossing[r]
                crossed = False
                for j in range(length):
                    value = block[i, j]
                    beyond_now = value > level if opposite > 0 else value < level
                    if beyond_now and not was:
                        sample = starts[i] + j
                        if sample - previous >= refractory:
                            opposite_count[r] += 1
                        previous = sample
                        crossed = True
                    was = beyond_now
                if crossed:
                    last_crossing[r] = previous
        unbroken = next_sample[r] - segment_start[r]
        if samples[r] >= min_samples and (segments[r] >= ready_sweeps or unbroken >= ready_unbroken):
            ready[r] = True
