"""The stateful wrapper around the detector kernel: configuration, preallocated state, events out."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from raphe.errors import RapheError

from . import kernels

POLARITIES = {"neg": kernels.NEGATIVE, "pos": kernels.POSITIVE, "both": kernels.BOTH}
EVENT_DTYPE = np.dtype([("channel", np.int32), ("sample_num", np.int64), ("threshold", np.float32),
                        ("amplitude", np.float32)])


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """What counts as a spike and what window is cut around it.

    Parameters
    ----------
    threshold : absolute threshold in the recording's units (default -50, the seed's -50 pA).
    adaptive_k : if set, the threshold is baseline -/+ k x sigma instead, where baseline is the median
        and sigma = MAD / 0.6745 of the last ``noise_window_s`` of the channel (default None).
    polarity : "neg" (downward crossings, default), "pos" (upward) or "both".
    refractory_ms : minimum time from one event to the next on a channel (default 2 ms).
    pre_ms, post_ms : the window around the crossing (default 1 ms before, 3 ms after).
    n_points : points of the resampled window (default 160: the model's 40 kHz grid over 4 ms).
    noise_window_s : length of the segments the adaptive noise estimate is computed on (default 0.5 s).
    """

    threshold: float = -50.0
    adaptive_k: float | None = None
    polarity: str = "neg"
    refractory_ms: float = 2.0
    pre_ms: float = 1.0
    post_ms: float = 3.0
    n_points: int = 160
    noise_window_s: float = 0.5

    def __post_init__(self):
        if self.polarity not in POLARITIES:
            raise RapheError(f"polarity must be one of {', '.join(POLARITIES)} (got {self.polarity!r})")
        if self.adaptive_k is not None and not (math.isfinite(self.adaptive_k) and self.adaptive_k > 0):
            raise RapheError(f"adaptive k must be a number > 0 (got {self.adaptive_k})")
        if not math.isfinite(self.threshold):
            raise RapheError(f"threshold must be a finite number (got {self.threshold})")
        if not (self.refractory_ms >= 0 and math.isfinite(self.refractory_ms)):
            raise RapheError(f"refractory period must be >= 0 ms (got {self.refractory_ms})")
        if not (self.pre_ms >= 0 and self.post_ms > 0 and self.n_points >= 2 and self.noise_window_s > 0):
            raise RapheError("window needs pre_ms >= 0, post_ms > 0, n_points >= 2 and noise_window_s > 0")


@dataclass(frozen=True, slots=True)
class Events:
    """Detected spikes: ``records`` (channel, sample_num, threshold, amplitude) and their windows."""

    records: np.ndarray
    windows: np.ndarray

    def __len__(self) -> int:
        return len(self.records)


def window_positions(sample_rate: float, config: DetectorConfig) -> np.ndarray:
    """The window's points in input samples relative to the threshold crossing (float64)."""
    step = sample_rate * (config.pre_ms + config.post_ms) / 1000.0 / config.n_points
    return -sample_rate * config.pre_ms / 1000.0 + step * np.arange(config.n_points)


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
        self._no_events = Events(np.empty(0, EVENT_DTYPE), np.empty((0, config.n_points), np.float32))
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
            self._out_windows = np.zeros((capacity, self.config.n_points), np.float32)

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

    def dropped(self) -> dict[str, int]:
        """Totals over channels of the events not emitted, by reason."""
        return {"no pre-samples": int(self.counts[:, kernels.DROPPED_START].sum()),
                "gap": int(self.counts[:, kernels.DROPPED_GAP].sum()),
                "non-finite": int(self.counts[:, kernels.DROPPED_NONFINITE].sum())}
