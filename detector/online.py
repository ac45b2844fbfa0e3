"""The stateful wrapper around the detector kernel: preallocated state in, events out."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from raphe.core.errors import RapheError

from . import kernels
from .config import FIRST_SEGMENT_S, DetectorConfig

POLARITIES = {"neg": kernels.NEGATIVE, "pos": kernels.POSITIVE, "both": kernels.BOTH}
EVENT_DTYPE = np.dtype([("channel", np.int32), ("sample_num", np.int64), ("threshold", np.float32),
                        ("amplitude", np.float32)])
# A channel's first noise segment lasts FIRST_SEGMENT_S (or noise_window_s, if shorter): a threshold that
# follows the baseline then exists 50 ms into an acquisition, not 0.5 s (a stimulus-evoked burst
# 164 ms into f1.abf's first sweep was lost). 50 ms is 2000 samples at 40 kHz, at least 50
# independent ones even for noise correlated over 1 ms (the median's error is then about 0.2 SD,
# under 1 pA beside a 50 pA threshold); a spike's 1-2 ms in it moves the median by a few hundredths
# of an SD. On the shared pA recordings the first 50 ms's median lies within 2.2 pA of the first
# 0.5 s's. The later, longer segments replace it.
# The most points a noise segment holds: above it, a segment takes every k-th finite sample of its
# time. It bounds the memory per channel (8 KiB of float32) and the time of one median and MAD:
# about 17 us on 2000 points, where the 20,000 samples of 0.5 s at 40 kHz took 0.27 ms, so that the
# block on which the 64 channels of a rig all completed a segment took 17 ms, 200 ordinary blocks.
# 2048 points of noise estimate its median within about 0.03 SD.
MAX_MEDIAN_POINTS = 2048


@dataclass(frozen=True, slots=True)
class Events:
    """Detected spikes: ``records`` (channel, sample_num, threshold, amplitude) and their windows."""

    records: np.ndarray
    windows: np.ndarray

    def __len__(self) -> int:
        return len(self.records)


def window_positions(sample_rate: float, config: DetectorConfig) -> np.ndarray:
    """The window's points in input samples relative to the threshold crossing (float64)."""
    window = config.window
    step = sample_rate * window.span_ms / 1000.0 / window.n_points
    return -sample_rate * window.pre_ms / 1000.0 + step * np.arange(window.n_points)


def segment_rule(seconds: float, sample_rate: float) -> tuple[int, int]:
    """A noise segment of ``seconds``: (points it holds, k), taking every k-th finite sample so that
    it holds at most MAX_MEDIAN_POINTS and spans ``seconds`` (less the remainder of its samples / k)."""
    samples = max(1, int(round(seconds * sample_rate)))
    stride = -(-samples // MAX_MEDIAN_POINTS)
    return samples // stride, stride


class Detector:
    """Online detection on ``n_channels`` channels at ``sample_rate``, one block at a time.

    ``process(block, sample_num)`` takes a (channels x samples) float32 block and the sample_num of its
    first sample (one for all channels, or one per channel) and returns the :class:`Events` whose
    windows completed in this block; ``process_rows`` takes a block of some of the channels only.
    ``counts`` holds, per channel, the events detected and those not emitted because their window
    lacked its pre-samples, straddled a gap, or held a non-finite sample. Channels can be added
    (``add_channels``) and started afresh one by one (``reset_channels``). After each call,
    ``row_stats`` holds per row of the block: finite samples, their sum, their sum of squares, and
    samples beyond the threshold in force (what :class:`SignalChecks` needs, from the same pass).

    A relative or adaptive threshold (``DetectorConfig.follows_baseline``) takes the median of
    consecutive segments of each channel's finite samples: the first segment of a channel (a new
    one, or one started afresh by ``reset``/``reset_channels``) spans FIRST_SEGMENT_S (50 ms, or
    ``noise_window_s`` if shorter), the later ones ``noise_window_s``. So no event is detected in a
    channel's first 50 ms; from then on the threshold is that of the last completed segment. A
    segment of n samples keeps every k-th, k = ceil(n / MAX_MEDIAN_POINTS), so that its median is
    taken on at most MAX_MEDIAN_POINTS (2048) points however high the rate (at 40 kHz: the first
    50 ms whole, the later 0.5 s every 10th sample).

    Memory per channel is bounded: a segment holds at most MAX_MEDIAN_POINTS float32; the ring of
    recent samples holds the window's span rounded up to a power of two (4 ms: 256 float32 at
    40 kHz, 2**16 at 10 MHz, the wire's largest rate), and the pending windows at most 3 ms /
    refractory period + 2 entries of 21 bytes. So a channel at 40 kHz costs about 9.5 KB with a
    following threshold, 1.5 KB without; at 10 MHz about 0.27 MB. ``keep_channels`` frees the rows of
    channels no longer served.
    """

    def __init__(self, n_channels: int, sample_rate: float, config: DetectorConfig = DetectorConfig()):
        if not (math.isfinite(sample_rate) and sample_rate > 0):
            raise RapheError(f"sample rate must be > 0 (got {sample_rate})")
        self.sample_rate = float(sample_rate)
        self.config = config
        self.positions = window_positions(sample_rate, config)
        # The crossing lies between the crossing sample and the one before it, so a window reaches
        # one sample further back than its first point, and its last point may need the next sample.
        self.need_before = int(math.ceil(-self.positions[0])) + 1
        self.need_after = int(math.floor(self.positions[-1])) + 1
        self.refractory = int(round(config.refractory_ms * sample_rate / 1000.0))
        span = self.need_before + self.need_after + 2
        ring_size = 1 << max(4, (span - 1).bit_length())
        pending = self.need_after // max(self.refractory, 1) + 2
        self.polarity = POLARITIES[config.polarity]
        self.adaptive_k = config.adaptive_k or 0.0
        self.relative_offset = config.threshold if config.relative else np.nan
        self._ring_size, self._pending = ring_size, pending
        self._seg_len, self._seg_stride = segment_rule(config.noise_window_s, sample_rate)
        self._first_len, self._first_stride = segment_rule(min(FIRST_SEGMENT_S, config.noise_window_s), sample_rate)
        self._scratch = np.empty(max(self._seg_len, self._first_len), np.float64)
        self.n_channels = self._capacity = 0
        self._allocate(n_channels)
        self._out_capacity = 0
        self._no_events = Events(np.empty(0, EVENT_DTYPE), np.empty((0, config.window.n_points), np.float32))

    def _allocate(self, n_channels: int) -> None:
        """State for ``n_channels`` channels: the existing ones keep theirs, new ones start fresh.
        Rows are allocated in doubling steps, so a service that adds channels one by one copies
        each row's state a few times, not once per later channel (5,000 cells would copy ~10^11 bytes)."""
        old = self.n_channels
        if n_channels > self._capacity:
            capacity = max(n_channels, 2 * self._capacity)
            seg_len = max(self._seg_len, self._first_len) if self._follows_baseline else 1
            shapes = {"_ring": ((self._ring_size,), np.float32), "_state": ((8,), np.int64),
                      "_prev": ((), np.float32), "_thresholds": ((), np.float32),
                      "_pend_sample": ((self._pending,), np.int64), "_pend_frac": ((self._pending,), np.float64),
                      "_pend_thr": ((self._pending,), np.float32), "_pend_dir": ((self._pending,), np.int8),
                      "counts": ((4,), np.int64), "_seg": ((seg_len,), np.float32), "baseline": ((), np.float32),
                      "sigma": ((), np.float32)}
            for name, (shape, dtype) in shapes.items():
                fresh = np.zeros((capacity, *shape), dtype)
                if old:
                    fresh[:old] = getattr(self, name)[:old]
                setattr(self, name, fresh)
            self._capacity = capacity
        self._starts = np.zeros(n_channels, np.int64)
        self._all_rows = np.arange(n_channels, dtype=np.int64)
        self.n_channels = n_channels
        if n_channels > old:
            self.reset_channels(np.arange(old, n_channels))

    def keep_channels(self, channels: np.ndarray) -> None:
        """Keep only these channels, in this order (channel ``channels[i]`` becomes channel ``i``),
        each with its state; the others' rows are freed."""
        channels = np.asarray(channels, dtype=np.int64)
        if len(channels) and (channels.min() < 0 or channels.max() >= self.n_channels):
            raise ValueError(f"channels must be 0..{self.n_channels - 1}")
        for name in ("_ring", "_state", "_prev", "_thresholds", "_pend_sample", "_pend_frac", "_pend_thr",
                     "_pend_dir", "counts", "_seg", "baseline", "sigma"):
            setattr(self, name, getattr(self, name)[channels])
        self.n_channels = self._capacity = len(channels)
        self._starts = np.zeros(self.n_channels, np.int64)
        self._all_rows = np.arange(self.n_channels, dtype=np.int64)

    @property
    def _follows_baseline(self) -> bool:
        return self.config.adaptive_k is not None or self.config.relative

    def add_channels(self, count: int) -> None:
        """``count`` more channels, after the existing ones, each starting afresh."""
        self._allocate(self.n_channels + count)

    def reset(self) -> None:
        """Forget everything: a new acquisition starts (pending windows are discarded, uncounted)."""
        self.reset_channels(self._all_rows)

    def reset_channels(self, channels: np.ndarray) -> None:
        """Forget these channels' history: their pending windows are discarded, uncounted, and their
        counts start again (a reused row is a new cell)."""
        self._state[channels] = 0
        self.counts[channels] = 0
        self._state[channels, kernels.NEXT] = -1
        self._state[channels, kernels.LAST_EVENT] = np.iinfo(np.int64).min // 2
        self._thresholds[channels] = np.nan if self._follows_baseline else self.config.threshold
        self.baseline[channels] = np.nan
        self.sigma[channels] = np.nan

    @property
    def thresholds(self) -> np.ndarray:
        """The threshold now in force per channel (NaN while a baseline estimate is not ready)."""
        return self._thresholds[:self.n_channels].copy()

    @property
    def pending(self) -> int:
        """Windows still waiting for their post-crossing samples."""
        return int(self._state[:, kernels.COUNT].sum())

    def _outputs(self, rows: int, n: int) -> None:
        capacity = rows * (self._pend_sample.shape[1] + n // max(self.refractory, 2) + 1)
        if capacity > self._out_capacity:
            self._out_capacity = capacity
            self._out_channel = np.zeros(capacity, np.int32)
            self._out_sample = np.zeros(capacity, np.int64)
            self._out_thr = np.zeros(capacity, np.float32)
            self._out_amp = np.zeros(capacity, np.float32)
            self._out_windows = np.zeros((capacity, self.config.window.n_points), np.float32)

    def process(self, block: np.ndarray, sample_num: int | np.ndarray) -> Events:
        """Feed one block of every channel; return the events whose windows completed in it."""
        if block.ndim != 2 or block.shape[0] != self.n_channels:
            raise ValueError(f"expected a ({self.n_channels}, n) block, got shape {block.shape}")
        self._starts[:] = sample_num
        return self._detect(block, self._all_rows, self._starts)

    def process_rows(self, block: np.ndarray, rows: np.ndarray, sample_nums: np.ndarray) -> Events:
        """Feed a block of some channels: row ``i`` is channel ``rows[i]`` (each at most once), whose
        first sample is ``sample_nums[i]``. Returns the events whose windows completed in it;
        ``records["channel"]`` is the channel, not the row."""
        rows = np.asarray(rows, dtype=np.int64)
        if block.ndim != 2 or block.shape[0] != len(rows) or len(sample_nums) != len(rows):
            raise ValueError(f"expected a ({len(rows)}, n) block and {len(rows)} starts, got {block.shape}")
        if len(rows) and (rows.min() < 0 or rows.max() >= self.n_channels):
            raise ValueError(f"rows must be channels 0..{self.n_channels - 1}")
        return self._detect(block, rows, np.asarray(sample_nums, dtype=np.int64))

    def _detect(self, block: np.ndarray, rows: np.ndarray, starts: np.ndarray) -> Events:
        block = np.ascontiguousarray(block, dtype=np.float32)
        self._outputs(len(rows), block.shape[1])
        self.row_stats = np.empty((len(rows), 4), np.float64)
        n_out = kernels.detect_block(
            block, rows, starts, self._ring, self._state, self._prev, self._thresholds, self._pend_sample,
            self._pend_frac, self._pend_thr, self._pend_dir, self.counts, self._seg, self._seg_len, self._seg_stride,
            self._first_len, self._first_stride, self._scratch, self.baseline, self.sigma, self.positions,
            self.need_before, self.need_after, self.refractory, self.polarity, self.adaptive_k, self.relative_offset,
            self._out_channel, self._out_sample, self._out_thr, self._out_amp, self._out_windows, self.row_stats)
        if n_out == 0:
            return self._no_events
        records = np.empty(n_out, EVENT_DTYPE)
        records["channel"] = self._out_channel[:n_out]
        records["sample_num"] = self._out_sample[:n_out]
        records["threshold"] = self._out_thr[:n_out]
        records["amplitude"] = self._out_amp[:n_out]
        return Events(records, self._out_windows[:n_out].copy())

    def dropped(self, channel: int | None = None) -> dict[str, int]:
        """Events not emitted, by reason: of one channel, or totals over all channels (default)."""
        counts = self.counts if channel is None else self.counts[channel:channel + 1]
        return {"no pre-samples": int(counts[:, kernels.DROPPED_START].sum()),
                "gap": int(counts[:, kernels.DROPPED_GAP].sum()),
                "non-finite": int(counts[:, kernels.DROPPED_NONFINITE].sum())}
