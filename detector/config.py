"""What counts as a spike and what window is cut around it: the detector's rule, without the kernels
(so that a command can show the defaults without loading numba)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from raphe.core.errors import RapheError
from raphe.core.specs import SEED_WINDOW, WindowSpec

POLARITY_NAMES = ("neg", "pos", "both")


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """What counts as a spike and what window is cut around it.

    Parameters
    ----------
    threshold : threshold in the recording's units (default -50, the seed's -50 pA): absolute, or
        relative to the running baseline when ``relative`` is set.
    relative : the threshold is ``threshold`` away from the median of the last ``noise_window_s``
        of the channel, so a holding current neither hides nor invents spikes (default False).
    adaptive_k : if set, the threshold is baseline -/+ k x sigma instead, where baseline is the median
        and sigma = MAD / 0.6745 of the last ``noise_window_s`` of the channel (default None).
    polarity : "neg" (downward crossings, default), "pos" (upward) or "both".
    refractory_ms : minimum time from one event to the next on a channel (default 2 ms).
    window : the window cut around each crossing (default the seed's: 1 ms before, 3 ms after,
        160 points); a model's own window comes with the model.
    noise_window_s : length of the segments the adaptive noise estimate is computed on (default 0.5 s).
    """

    threshold: float = -50.0
    relative: bool = False
    adaptive_k: float | None = None
    polarity: str = "neg"
    refractory_ms: float = 2.0
    window: WindowSpec = SEED_WINDOW
    noise_window_s: float = 0.5

    def __post_init__(self):
        if self.polarity not in POLARITY_NAMES:
            raise RapheError(f"polarity must be one of {', '.join(POLARITY_NAMES)} (got {self.polarity!r})")
        if self.adaptive_k is not None and not (math.isfinite(self.adaptive_k) and self.adaptive_k > 0):
            raise RapheError(f"adaptive k must be a number > 0 (got {self.adaptive_k})")
        if self.relative and self.adaptive_k is not None:
            raise RapheError("a threshold is either relative to the baseline or adaptive (k sigma), not both")
        if not math.isfinite(self.threshold):
            raise RapheError(f"threshold must be a finite number (got {self.threshold})")
        if not (self.refractory_ms >= 0 and math.isfinite(self.refractory_ms)):
            raise RapheError(f"refractory period must be >= 0 ms (got {self.refractory_ms})")
        if not self.noise_window_s > 0:
            raise RapheError(f"the noise window must be > 0 s (got {self.noise_window_s})")
