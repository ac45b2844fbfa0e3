"""The firing model: evidence about a cell's class from its spike train so far.

Electrophysiologists judge raphe cells first by their firing: SER cells slow (0.5-3 Hz) and regular
(ISI CV < 0.5 in ~97% of them), NSER cells fast and irregular. The firing model reads the
inter-spike intervals (ISIs) of a cell's last ``WINDOW_ISIS`` spikes and returns log-probabilities per
class from the features below, through a multinomial logistic model whose parameters are a small
JSON file (no interpreter needed). It speaks only once ``MIN_ISIS`` intervals are in; an interval
longer than ``MAX_ISI_S`` (a silent cell, an unknown pause) or across lost samples or a sweep's end
is left out rather than read as firing.

Features (``FEATURES``), each over the intervals in the window: log mean rate, CV, CV2 (Holt et al.
1996), LV (Shinomoto et al. 2003), the log 10th, 50th and 90th percentile ISI, the share of burst
intervals (< 20 ms), the share of pauses (> 3 x the median) and the log number of intervals.

Firing is strong evidence, not a rule (docs/classifier.md, "What firing can and cannot tell"): slow, regular
5-HT-negative cells exist, and some 5-HT cells burst; the joint posterior weighs it by a factor
fitted on held-out cells of both generators.
"""

from __future__ import annotations

import bisect
import json
from pathlib import Path

import numpy as np
from numba import njit

from raphe.core.errors import RapheError

FIRING_FORMAT = "raphe-firing-model-1"
FEATURES = ("log_rate", "cv", "cv2", "lv", "log_isi_p10", "log_isi_p50", "log_isi_p90", "burst_share",
            "pause_share", "log_n_isi")
MIN_ISIS = 8
WINDOW_ISIS = 256
MAX_ISI_S = 10.0
BURST_ISI_S = 0.02
PAUSE_FACTOR = 3.0
MAX_GAPS = 10_000


@njit(cache=True)
def _percentile(sorted_isi, q):
    position = q * (len(sorted_isi) - 1)
    low = int(position)
    high = min(low + 1, len(sorted_isi) - 1)
    return sorted_isi[low] + (sorted_isi[high] - sorted_isi[low]) * (position - low)


@njit(cache=True)
def features_into(isi, out):
    """The features of ``isi`` (at least 2 intervals, s, in recorded order) into ``out`` (len(FEATURES))."""
    n = len(isi)
    mean = isi.mean()
    sd = np.sqrt(((isi - mean) ** 2).mean())
    cv2 = 0.0
    lv = 0.0
    for i in range(n - 1):
        a, b = isi[i], isi[i + 1]
        cv2 += 2.0 * abs(b - a) / (a + b)
        lv += ((a - b) / (a + b)) ** 2
    ordered = np.sort(isi)
    median = _percentile(ordered, 0.5)
    bursts = 0
    pauses = 0
    for i in range(n):
        bursts += isi[i] < BURST_ISI_S
        pauses += isi[i] > PAUSE_FACTOR * median
    out[0] = -np.log(mean)
    out[1] = sd / mean
    out[2] = cv2 / (n - 1)
    out[3] = 3.0 * lv / (n - 1)
    out[4] = np.log(_percentile(ordered, 0.1))
    out[5] = np.log(median)
    out[6] = np.log(_percentile(ordered, 0.9))
    out[7] = bursts / n
    out[8] = pauses / n
    out[9] = np.log(n)


@njit(cache=True)
def _log_probabilities_into(values, mean, scale, weights, bias, out):
    """The multinomial logistic model's log-probabilities of one feature vector into ``out``."""
    for c in range(weights.shape[0]):
        z = bias[c]
        for j in range(weights.shape[1]):
            z += weights[c, j] * (values[j] - mean[j]) / scale[j]
        out[c] = z
    top = out.max()
    total = 0.0
    for c in range(len(out)):
        total += np.exp(out[c] - top)
    out -= top + np.log(total)


@njit(cache=True)
def _evidence_into(isi, start, stop, features, mean, scale, weights, bias, columns, out):
    """The log-probabilities of the intervals ``isi[start:stop]`` into ``out``, in the order of ``columns``."""
    features_into(isi[start:stop], features)
    every = np.empty(weights.shape[0])
    _log_probabilities_into(features, mean, scale, weights, bias, every)
    for i in range(len(columns)):
        out[i] = every[columns[i]]


def features(isi: np.ndarray) -> np.ndarray:
    """The features (len(FEATURES),) of a sequence of at least 2 intervals (s)."""
    out = np.empty(len(FEATURES))
    features_into(np.ascontiguousarray(isi, dtype=np.float64), out)
    return out


def usable_intervals(times_s: np.ndarray) -> np.ndarray:
    """The ISIs of spike times (s, recorded order) that the model reads: those up to ``MAX_ISI_S``."""
    isi = np.diff(np.asarray(times_s, dtype=np.float64))
    return isi[(isi > 0) & (isi <= MAX_ISI_S)]


class FiringModel:
    """A fitted firing model: ``log_probabilities(features)`` per class.

    Parameters
    ----------
    path : its ``.json`` (``format``, ``classes``, ``features``, ``mean``, ``scale``, ``weights``
        (C, F), ``bias`` (C,), and what it was trained on).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            meta = json.loads(self.path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise RapheError(f"{self.path}: not a raphe firing model (not readable JSON)") from None
        if not isinstance(meta, dict) or meta.get("format") != FIRING_FORMAT:
            raise RapheError(f"{self.path}: not a raphe firing model (format is not {FIRING_FORMAT!r})")
        try:
            self.classes = tuple(str(c) for c in meta["classes"])
            self.mean = np.asarray(meta["mean"], dtype=np.float64)
            self.scale = np.asarray(meta["scale"], dtype=np.float64)
            self.weights = np.asarray(meta["weights"], dtype=np.float64)
            self.bias = np.asarray(meta["bias"], dtype=np.float64)
            names = tuple(meta["features"])
        except (KeyError, TypeError, ValueError):
            raise RapheError(f"{self.path}: not a raphe firing model (parameters missing or malformed)") from None
        shapes_ok = (self.mean.shape == self.scale.shape == (len(FEATURES),)
                     and self.weights.shape == (len(self.classes), len(FEATURES)) and self.bias.shape == (len(self.classes),))
        if names != FEATURES or not shapes_ok or not (np.isfinite(self.weights).all() and (self.scale > 0).all()):
            raise RapheError(f"{self.path}: firing model's features or parameter shapes are not this raphe's")
        self.metadata = meta

    def log_probabilities(self, values: np.ndarray) -> np.ndarray:
        """Log-probabilities (C,) from one cell's features (F,): one numba call, as at every spike."""
        out = np.empty(len(self.classes))
        _log_probabilities_into(np.asarray(values, dtype=np.float64), self.mean, self.scale, self.weights,
                                self.bias, out)
        return out

    def in_classes(self, classes: tuple[str, ...]) -> np.ndarray:
        """The column of each of ``classes`` (a waveform model's) in this model's output."""
        if sorted(classes) != sorted(self.classes):
            raise RapheError(f"{self.path}: firing model's classes {list(self.classes)} are not the waveform "
                             f"model's {list(classes)}")
        return np.array([self.classes.index(c) for c in classes])


class Train:
    """One cell's recent intervals, kept in a preallocated buffer: what the firing model reads."""

    def __init__(self):
        self._isi = np.empty(2 * WINDOW_ISIS)
        self._features = np.empty(len(FEATURES))
        self.reset()

    def reset(self) -> None:
        self._count = 0
        self._last_s: float | None = None
        self._gaps: list[float] = []
        self.n_isi = 0

    def gap(self, time_s: float) -> None:
        """Samples were lost (or a sweep ended) just before ``time_s``: an interval across it is no
        interval of the cell's."""
        bisect.insort(self._gaps, time_s)
        if len(self._gaps) > MAX_GAPS:  # a silent channel that keeps losing samples: the latest still block
            del self._gaps[:-MAX_GAPS]

    def add(self, time_s: float) -> None:
        """A spike at ``time_s`` (s on the cell's clock)."""
        last, self._last_s = self._last_s, time_s
        if last is not None:
            k = bisect.bisect_right(self._gaps, last)
            if k:
                del self._gaps[:k]  # gaps before the last spike can span no later interval
        if last is None or not 0.0 < time_s - last <= MAX_ISI_S:
            return
        if self._gaps and self._gaps[0] <= time_s:
            return
        if self._count == len(self._isi):
            self._isi[:WINDOW_ISIS] = self._isi[WINDOW_ISIS:]
            self._count = WINDOW_ISIS
        self._isi[self._count] = time_s - last
        self._count += 1
        self.n_isi += 1

    def spike(self, time_s: float, model: FiringModel, columns: np.ndarray) -> np.ndarray | None:
        """Add a spike and return what ``model`` makes of the intervals so far (log-probabilities in
        the order of ``columns``, see ``FiringModel.in_classes``), or None before it speaks: the
        runtime's step, replayed as is by the calibration. One numba call from the intervals to
        the evidence: at a rig's pace each numpy call on the way would find the process cold."""
        self.add(time_s)
        if self._count < MIN_ISIS:
            return None
        out = np.empty(len(columns))
        _evidence_into(self._isi, max(0, self._count - WINDOW_ISIS), self._count, self._features, model.mean,
                       model.scale, model.weights, model.bias, columns, out)
        return out

    def recent_intervals(self) -> np.ndarray:
        """The last ``WINDOW_ISIS`` intervals, the ones the model reads (s, oldest first; a view that
        the next spike may change)."""
        return self._isi[max(0, self._count - WINDOW_ISIS):self._count]
