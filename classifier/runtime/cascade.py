"""The cascade: the student first, the ensemble for the windows the student is unsure of.

The student costs a fraction of the ensemble per window and gives the ensemble's most probable class
on about 99.3-99.6% of held-out windows; the windows where the two part are nearly all windows the
ensemble itself calls close to even, and there the student is unsure too. So a window on which the
student's two most probable classes lie within ``margin`` of each other goes to the ensemble, and
every other window keeps the student's answer: the ensemble's answer wherever it is in doubt, at
about the student's cost.

A cascade is a small JSON file (format ``raphe-cascade-1``) naming its student and its ensemble
(model files beside it, each held to the sha256 the cascade was measured with), its margin, and
what was measured: the margin is chosen on held-out windows and the agreement with the ensemble is
checked on others (`raphe cascade`, ``evaluation.escalation``). Everything else a service asks of
a model (the novelty summary, the posterior and its firing model, the window) is the ensemble's.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from numba import njit

from raphe.core.errors import RapheError
from raphe.core.specs import CASCADE_FORMAT, MIN_SPIKES

from .firing import FiringModel
from .model import Model
from .posterior import PosteriorConfig


def unsure(probabilities: np.ndarray, margin: float) -> np.ndarray:
    """Per row of ``probabilities`` (N, C), whether its two most probable classes lie within
    ``margin`` (every row for a margin of 1 or more: the ensemble alone)."""
    if margin >= 1.0:
        return np.ones(len(probabilities), dtype=bool)
    probabilities = np.ascontiguousarray(probabilities)
    if margin <= 0.0 or len(probabilities) == 0 or probabilities.shape[1] < 2:
        return np.zeros(len(probabilities), dtype=bool)
    # the gap in the probabilities' own type, as numpy takes it
    return _within(probabilities, probabilities.dtype.type(margin))


@njit(cache=True, nogil=True)
def _within(probabilities, margin):
    """The rule of ``unsure`` in one call: at a slow cell's spike numpy's partition costs ~120 µs
    (the host has evicted its code since the last spike), this ~50 µs (measured here)."""
    n, classes = probabilities.shape
    out = np.empty(n, np.bool_)
    for i in range(n):
        first, second = probabilities[i, 0], probabilities[i, 1]
        if second > first:
            first, second = second, first
        for c in range(2, classes):
            value = probabilities[i, c]
            if value > first:
                first, second = value, first
            elif value > second:
                second = value
        out[i] = first - second < margin
    return out


def read_cascade(path: Path) -> tuple[dict, bytes]:
    """A cascade's file, parsed, and its bytes; one clear error for anything else."""
    try:
        content = path.read_bytes()
        written = json.loads(content)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise RapheError(f"{path}: not a raphe cascade (not readable JSON)") from None
    if not isinstance(written, dict) or written.get("format") != CASCADE_FORMAT:
        raise RapheError(f"{path}: not a raphe cascade (format is not {CASCADE_FORMAT!r})")
    return written, content


def is_cascade(path: Path) -> bool:
    """Whether ``path`` is a cascade's file (a ``.json`` that says so; anything else is read as a model's)."""
    if path.suffix != ".json" or not path.is_file():
        return False
    try:
        written = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(written, dict) and written.get("format") == CASCADE_FORMAT


def check_pair(student: Model, ensemble: Model) -> None:
    """A student and an ensemble make a cascade only where they answer the same question."""
    if student.classes != ensemble.classes or student.window != ensemble.window:
        raise RapheError(f"{student.path.name} and {ensemble.path.name} differ in classes or window: a student and "
                         "its own ensemble make a cascade")


class Cascade:
    """A student and its ensemble, answering as one model (``predict``, ``novel`` and the rest of
    what a service asks of a :class:`Model`).

    Parameters
    ----------
    path : the cascade's ``.json``.
    num_threads : interpreter threads of each of its two models.
    ensemble : its ensemble where it is loaded already (used if it is the very file the cascade names).
    """

    def __init__(self, path: str | Path, num_threads: int = 1, ensemble: Model | None = None):
        self.path = Path(path)
        meta, content = read_cascade(self.path)
        try:
            self.margin = float(meta["margin"])
            members = {role: (self.path.parent / Path(str(meta[role]["file"])).name, str(meta[role]["sha256"]))
                       for role in ("student", "ensemble")}
        except (KeyError, TypeError, ValueError):
            raise RapheError(f"{self.path}: not a raphe cascade (its margin or its two models are missing)") from None
        if not 0.0 <= self.margin <= 1.0:
            raise RapheError(f"{self.path}: a cascade's margin must be in [0, 1] (got {self.margin:g})")
        self.student = Model(members["student"][0], num_threads)
        same = (ensemble is not None and ensemble.num_threads == num_threads
                and ensemble.path.with_suffix(".tflite").resolve() == members["ensemble"][0].resolve())
        self.ensemble = ensemble if same else Model(members["ensemble"][0], num_threads)
        for role, model in (("student", self.student), ("ensemble", self.ensemble)):
            if model.checksum != members[role][1]:
                raise RapheError(f"{self.path}: its {role} {model.path.name} is not the one it was measured with "
                                 "(sha256 differs); measure it again with `raphe cascade`")
        check_pair(self.student, self.ensemble)
        self.checksum = hashlib.sha256(content).hexdigest()
        # what outputs read of a model's metadata (its detector, class means) is the ensemble's
        self.metadata = {**self.ensemble.metadata, "name": self.path.stem, "sha256": self.checksum, "cascade": meta}
        self.classes, self.window, self.novelty = self.ensemble.classes, self.ensemble.window, self.ensemble.novelty
        self.num_threads = num_threads
        # what it was asked, and how much of it went to the ensemble (a service reports both)
        self.windows = 0
        self.handed_on = 0

    def __repr__(self) -> str:
        return f"Cascade({self.path.name}: {self.student.path.name}, then {self.ensemble.path.name} below {self.margin:g})"

    @property
    def n_points(self) -> int:
        return self.window.n_points

    @property
    def variant(self) -> str:
        return self.ensemble.variant

    @property
    def identity(self) -> dict:
        """As :attr:`Model.identity`: the cascade's own file's name and sha256, its ensemble's variant."""
        return {"name": self.metadata["name"], "variant": self.variant, "sha256": self.checksum}

    @property
    def firing(self) -> FiringModel | None:
        return self.ensemble.firing

    @property
    def posterior_note(self) -> str | None:
        return self.ensemble.posterior_note

    def posterior_config(self, threshold: float | None = None, min_spikes: int = MIN_SPIKES,
                         evidence: str | None = None) -> PosteriorConfig:
        """The ensemble's posterior (see :meth:`Model.posterior_config`)."""
        return self.ensemble.posterior_config(threshold, min_spikes, evidence)

    def novel(self, windows: np.ndarray) -> np.ndarray:
        return self.ensemble.novel(windows)

    def warm(self, windows: np.ndarray) -> None:
        """Run ``windows`` through both models and the rule between them, whatever the student makes
        of them: the ensemble's memory is kept close too, for the rare window that reaches it."""
        unsure(self.student.predict(windows), self.margin)
        self.ensemble.predict(windows)

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Probabilities (N, C): the student's, and the ensemble's for the windows the student is unsure of."""
        probabilities = self.student.predict(windows)
        doubtful = unsure(probabilities, self.margin)
        handed_on = int(np.count_nonzero(doubtful))
        self.windows += len(doubtful)
        if handed_on:
            self.handed_on += handed_on
            probabilities[doubtful] = self.ensemble.predict(np.asarray(windows, dtype=np.float32)[doubtful])
        return probabilities
