"""The stateful wrapper around the detector kernel: preallocated state in, events out."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from raphe.core.errors import RapheError

from . import kernels
from .config import DetectorConfig

POLARITIES = {"neg": kernels.NEGATIVE, "pos": kernels.POSITIVE, "both": kernels.BOTH}
EVENT_DTYPE = np.dtype([("channel", np.int32), ("sample_num", np.int64), ("threshold", np.float32),
                        ("amplitude", np.float32)])


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


class Detector:
    """Online detection on ``n_channels`` channels at ``sample_rate``, one block at a time.

    ``process(block, sample_num)`` takes a (channels x samples) float32 block and the sample_num of its
    first sample (one for all channels, or one per channel) and returns the :class:`Events` whose
    windows completed in this block. ``counts`` holds, per channel, the events detected and those not
    emitted because their window lacked its pre-samples, straddled a gap, or held a non-finite sample.
    """

    def __init__(self, n_channels: int, sample_rate: float, config: DetectorConfig = DetectorConfig()):
        if not (math.isfinite(sample_rate) and sample_rate > 0):
            raise RapheError(f"sample rate must be > 0 (got {sample_rate})")
        self.n_channels = n_channels
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
        self._ring = np.zeros((n_channels, ring_size), np.float32)
        self._state = np.zeros((n_channels, 6), np.int64)
        self._prev = np.zeros(n_channels, np.float32)
        self._thresholds = np.zeros(n_channels, np.float32)
        self._pend_sample = np.zeros((n_channels, pending), np.int64)
        self._pend_frac = np.zeros((n_channels, pending), np.float64)
        self._pend_thr = np.zeros((n_channels, pending), np.float32)
        self._pend_dir = np.zeros((n_channels, pending), np.int8)
        self.counts = np.zeros((n_channels, 4), np.int64)
        seg_len = max(1, int(round(config.noise_window_s * sample_rate))) if config.adaptive_k else 1
        self._seg = np.zeros((n_channels, seg_len), np.float32)
        self.baseline = np.full(n_channels, np.nan, np.float32)
        self.sigma = np.full(n_channels, np.nan, np.float32)
        self._starts = np.zeros(n_channels, np.int64)
        self._out_capacity = 0
        self._no_events = Events(np.empty(0, EVENT_DTYPE), np.empty((0, config.window.n_points), np.float32))
        self.reset()

    def reset(self) -> None:
        """Forget everything: a new acquisition starts (pending windows are discarded, uncounted)."""
        self._state[:] = 0
        self._state[:, kernels.NEXT] = -1
        self._state[:, kernels.LAST_EVENT] = np.iinfo(np.int64).min // 2
        self._thresholds[:] = np.nan if self.config.adaptive_k else self.config.threshold
        self.baseline[:] = np.nan
        self.sigma[:] = np.nan

    @property
    def thresholds(self) -> np.ndarray:
        """The threshold now in force per channel (NaN while an adaptive estimate is not ready)."""
        return self._thresholds.copy()

    @property
    def pending(self) -> int:
        """Windows still waiting for their post-crossing samples."""
        return int(self._state[:, kernels.COUNT].sum())

    def _outputs(self, n: int) -> None:
        capacity = self.n_channels * (self._pend_sample.shape[1] + n // max(self.refractory, 2) + 1)
        if capacity > self._out_capacity:
            self._out_capacity = capacity
            self._out_channel = np.zeros(capacity, np.int32)
            self._out_sample = np.zeros(capacity, np.int64)
            self._out_thr = np.zeros(capacity, np.float32)
            self._out_amp = np.zeros(capacity, np.float32)
            self._out_windows = np.zeros((capacity, self.config.window.n_points), np.float32)

    def process(self, block: np.ndarray, sample_num: int | np.ndarray) -> Events:
        """Feed one block; return the events whose windows completed in it."""
        if block.ndim != 2 or block.shape[0] != self.n_channels:
            raise ValueError(f"expected a ({self.n_channels}, n) block, got shape {block.shape}")
        block = np.ascontiguousarray(block, dtype=np.float32)
        self._starts[:] = sample_num
        self._outputs(block.shape[1])
        n_out = kernels.detect_block(
            block, self._starts, self._ring, self._state, self._prev, self._thresholds, self._pend_sample,
            self._pend_frac, self._pend_thr, self._pend_dir, self.counts, self._seg, self.baseline,
            self.sigma, self.positions, self.need_before, self.need_after, self.refractory,
            self.polarity, self.adaptive_k, self._out_channel, self._out_sample, self._out_thr,
            self._out_amp, self._out_windows)
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
