"""One recorded cell, a (stream, channel): its running posterior, its spikes and its mean waveform.

`raphe serve` and `raphe classify` both keep one :class:`Cell` per channel and feed it the same
spike probabilities in the same order, so at the rig and at the desk a cell ends the same way.
"""

from __future__ import annotations

import numpy as np

from .posterior import CellPosterior, PosteriorConfig


def cell_id(stream: str, channel_num: int) -> str:
    return f"{stream}:{channel_num}"


class Cell:
    """The state of one cell.

    Parameters
    ----------
    stream, channel_num, channel_name, sample_rate : where its samples come from.
    classes, posterior_config : the model's classes and the posterior's combination and decision rule.
    keep_history : also keep (sample_num, posterior) after every spike (for figures; grows with spikes).
    """

    def __init__(self, stream: str, channel_num: int, channel_name: str, sample_rate: float,
                 classes: tuple[str, ...], posterior_config: PosteriorConfig, keep_history: bool = False):
        self.stream, self.channel_num, self.channel_name = stream, channel_num, channel_name
        self.id = cell_id(stream, channel_num)
        self.sample_rate = sample_rate
        self.classes = tuple(classes)
        self.posterior = CellPosterior(self.classes, posterior_config)
        self.keep_history = keep_history
        self.acquisition = 0
        self.restart(sample_rate)

    def restart(self, sample_rate: float) -> None:
        """A new acquisition, a restarted stream or a new sample rate: the cell starts afresh."""
        self.acquisition += 1
        self.sample_rate = sample_rate
        self.posterior.reset()
        self.samples = 0
        self.window_sum = None
        self.history: list[tuple[int, np.ndarray]] = []
        self.last_probabilities: np.ndarray | None = None

    @property
    def n_spikes(self) -> int:
        return self.posterior.n_spikes

    @property
    def seconds(self) -> float:
        """Recorded time seen since the cell (re)started."""
        return self.samples / self.sample_rate

    @property
    def rate_hz(self) -> float:
        return self.n_spikes / self.seconds if self.samples else 0.0

    @property
    def mean_window(self) -> np.ndarray | None:
        return None if self.window_sum is None else self.window_sum / max(self.n_spikes, 1)

    def add_spike(self, sample_num: int, probabilities: np.ndarray, window: np.ndarray) -> np.ndarray:
        """One classified spike; returns the updated posterior."""
        posterior = self.posterior.update(probabilities)
        self.last_probabilities = probabilities
        self.window_sum = window.astype(np.float64) if self.window_sum is None else self.window_sum + window
        if self.keep_history:
            self.history.append((sample_num, posterior.copy()))
        return posterior

    def summary(self) -> dict:
        """What `raphe classify --json` prints for the cell."""
        p = self.posterior
        return {"stream": self.stream, "channel_num": self.channel_num, "channel_name": self.channel_name,
                "cell": self.id, "acquisition": self.acquisition, "recorded_s": round(self.seconds, 6),
                "n_spikes": p.n_spikes, "rate_hz": round(self.rate_hz, 4),
                "posterior": dict(zip(self.classes, map(float, p.posterior))), "decision": p.decision,
                "spikes_to_decision": p.spikes_to_decision,
                "mean_spike_probability": dict(zip(self.classes, map(float, p.mean_spike_probability)))}
