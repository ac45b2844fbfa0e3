"""What counts as a spike and what window is cut around it: the detector's rule, without the kernels
(so that a command can show the defaults without loading numba)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from raphe.core.errors import RapheError
from raphe.core.specs import SEED_WINDOW, WindowSpec

POLARITY_NAMES = ("neg", "pos", "both")
# A channel's first noise segment: a threshold that follows the baseline exists this soon.
FIRST_SEGMENT_S = 0.05
# The seed's threshold: -50 pA.
SEED_THRESHOLD = -50.0


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """What counts as a spike and what window is cut around it.

    By default the threshold is the seed's -50 pA, measured from the channel's running baseline
    rather than from zero: a holding current, or a seal drifting by tens of pA, then neither hides
    spikes nor lets the noise cross the threshold. The baseline is the median of the channel's first
    ``FIRST_SEGMENT_S`` (50 ms), then of each completed ``noise_window_s`` (taken on at most 2048 of
    its samples, every k-th), so no event is detected in a channel's first 50 ms.

    Parameters
    ----------
    threshold : the threshold in the recording's units (default -50, the seed's -50 pA): from the
        running baseline when ``relative`` is set, else from zero.
    relative : the threshold is ``threshold`` away from the median of the last completed segment of
        the channel (its first 50 ms, then each ``noise_window_s``) (default True); False gives the seed's absolute rule.
        Relative to the baseline, a threshold must lie on the side of the spikes: below it for
        polarity "neg", above it for "pos".
    adaptive_k : if set, the threshold is baseline -/+ k x sigma instead, where baseline is the median
        and sigma = MAD / 0.6745 of the last completed segment of the channel (default None); it
        always follows the baseline, so ``threshold`` and ``relative`` are then not used.
    polarity : "neg" (downward crossings, default), "pos" (upward) or "both".
    refractory_ms : minimum time from one event to the next on a channel (default 2 ms).
    window : the window cut around each crossing (default the seed's: 1 ms before, 3 ms after,
        160 points); a model's own window comes with the model.
    noise_window_s : length of the segments the baseline and the noise are estimated on (default 0.5 s;
        a channel's first segment is ``FIRST_SEGMENT_S``, or ``noise_window_s`` if that is shorter).
    """

    threshold: float = SEED_THRESHOLD
    relative: bool = True
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
        if not math.isfinite(self.threshold):
            raise RapheError(f"threshold must be a finite number (got {self.threshold})")
        if self.relative and self.adaptive_k is None:
            # A level on the wrong side of the baseline is crossed by the noise, not by the spikes.
            if self.polarity == "neg" and self.threshold >= 0:
                raise RapheError(f"a threshold relative to the baseline must lie below it for downward spikes "
                                 f"(got {self.threshold:+g}): use a negative threshold, or polarity pos")
            if self.polarity == "pos" and self.threshold <= 0:
                raise RapheError(f"a threshold relative to the baseline must lie above it for upward spikes "
                                 f"(got {self.threshold:+g}): use a positive threshold, e.g. {abs(self.threshold) or 50:g}")
        if not (self.refractory_ms >= 0 and math.isfinite(self.refractory_ms)):
            raise RapheError(f"refractory period must be >= 0 ms (got {self.refractory_ms})")
        if not self.noise_window_s > 0:
            raise RapheError(f"the noise window must be > 0 s (got {self.noise_window_s})")

    @property
    def follows_baseline(self) -> bool:
        """Whether the threshold is measured from the channel's running baseline (relative or adaptive)."""
        return self.relative or self.adaptive_k is not None


def rule_settings(threshold: float | None = None, absolute: bool = False, adaptive: float | None = None,
                  polarity: str = "neg", refractory_ms: float = 2.0) -> dict:
    """DetectorConfig keywords (the window aside) as the command line and the API take them: without
    a threshold, the seed's 50 from the baseline on the side of the spikes (-50 for downward and
    both, +50 for upward spikes)."""
    if threshold is None:
        threshold = -SEED_THRESHOLD if polarity == "pos" else SEED_THRESHOLD
    return {"threshold": threshold, "relative": not absolute, "adaptive_k": adaptive, "polarity": polarity,
            "refractory_ms": refractory_ms}
