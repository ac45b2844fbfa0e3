"""Facts shared by several components, each defined once: the spike window, the default endpoints,
the decision rule, the caps and bounds of the science, and the name of raphe's model format."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raphe.core.errors import RapheError


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """The 4 ms of current a spike is judged by, and the grid the model sees it on.

    Parameters
    ----------
    pre_ms, post_ms : the window runs from ``pre_ms`` before the threshold crossing to ``post_ms``
        after it (default 1 ms and 3 ms, the seed's).
    n_points : points the window is resampled to (default 160).
    sample_rate_hz : the rate at which ``n_points`` span the window (default 40 kHz, the seed's
        recordings); windows from any other rate are resampled onto this grid.
    """

    pre_ms: float = 1.0
    post_ms: float = 3.0
    n_points: int = 160
    sample_rate_hz: float = 40_000.0

    def __post_init__(self):
        if not (self.pre_ms >= 0 and self.post_ms > 0 and self.n_points >= 2 and self.sample_rate_hz > 0):
            raise RapheError("a window needs pre_ms >= 0, post_ms > 0, n_points >= 2 and a rate > 0")

    @property
    def span_ms(self) -> float:
        return self.pre_ms + self.post_ms

    @property
    def step_s(self) -> float:
        """Time between two points of the window."""
        return self.span_ms / 1000.0 / self.n_points

    def time_ms(self) -> np.ndarray:
        """Each point's time in ms relative to the threshold crossing."""
        return np.arange(self.n_points) * self.span_ms / self.n_points - self.pre_ms

    def to_json(self) -> dict:
        return {"pre_ms": self.pre_ms, "post_ms": self.post_ms, "n_points": self.n_points,
                "sample_rate_hz": self.sample_rate_hz}

    @classmethod
    def from_json(cls, data: dict) -> WindowSpec:
        return cls(float(data["pre_ms"]), float(data["post_ms"]), int(data["n_points"]),
                   float(data["sample_rate_hz"]))


SEED_WINDOW = WindowSpec()

# Where raphe talks (docs/wire-protocol.md): the rig's data socket, and raphe's own two outputs.
DATA_ENDPOINT = "tcp://127.0.0.1:5556"
POSTERIOR_ENDPOINT = "tcp://127.0.0.1:5570"
EVENTS_ENDPOINT = "tcp://127.0.0.1:5571"

# The decision rule: a cell is decided once one class's posterior reaches the threshold after at
# least this many spikes.
DECISION_THRESHOLD = 0.99
MIN_SPIKES = 5

# Where `serve` (and `classify`) are not told a model, a stream (a file) of more than this many
# channels is served by the cascade (the student, and the ensemble for the windows it is unsure of)
# in place of the ensemble, where the cascade stands in for it: beyond a few channels the ensemble's
# p99 runs to tens of ms on a two-core machine, while up to here it keeps up and every window of a
# cell gets its own answer (docs/performance.md, docs/default-model.md).
ENSEMBLE_MAX_CHANNELS = 4

# A live service keeps at most this many cells (about 15 KB each); blocks of further channels are refused.
MAX_CELLS = 4096

# The seed kept at most 700 windows per cell.
MAX_WINDOWS_PER_CELL = 700
# A student (or a cascade) stands in for its ensemble where it gives the same most probable class on
# at least this share of held-out windows of every data source checked (and decides no cell otherwise).
STAND_IN_AGREEMENT = 0.995
# A cascade's margin (runtime.cascade) is chosen for this agreement with the ensemble on the sets it
# is chosen on: above STAND_IN_AGREEMENT, so that the sets it is checked on, which it never saw,
# have room to fall short of the choice.
CASCADE_TARGET = 0.998
# At most this many epochs of distillation.
STUDENT_EPOCHS = 40
# The default classes: serotonergic and non-serotonergic (a lab's model may have others).
SER = "SER"
NSER = "NSER"
CLASSES = (SER, NSER)

# SER cells narrower than this are "atypical": inside the NSER range of widths (docs/science.md).
ATYPICAL_UDI_MS = 0.9

MODEL_FORMAT = "raphe-model"
# A cascade of a student and its ensemble (classifier.runtime.cascade): a JSON file beside the two.
CASCADE_FORMAT = "raphe-cascade-1"
