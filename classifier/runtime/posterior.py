"""The running posterior of one cell over the classes.

The spikes of one cell are not independent evidence (they share the cell's shape, the rig's noise),
so the naive product of the per-spike probabilities is far too confident. raphe tempers it:

    z_n(c) = log prior(c) + alpha * sum_{i<=n} log p_i(c) / (1 + beta * (n - 1))
    posterior_n(c) = softmax(-max(max_k z_n(k) - z_n(c) - margin, 0))

``alpha`` discounts each spike's evidence and ``beta`` lets the total saturate, so a long run of
confident spikes gives a confident but not infinitely certain posterior (cells are misclassified as
wholes). ``margin`` is the evidence a class must gain over another before it counts at all: cells
the model gets wrong as wholes tend to be those whose evidence is weak but consistent, so a margin
keeps them near even odds while clearly decided cells still reach a decision. All three are fitted
on held-out cells (``raphe.classifier.evaluation.calibration``).

The spike train is a second stream of evidence (``runtime.firing``): once enough intervals are in,
the firing model's log-probabilities f(c) for the cell's recent intervals, weighted by
``firing_weight`` (w), give

    firing_n(c)  = softmax(-max(max_k w f(k) - w f(c) - firing_margin, 0))
    joint_n(c)   = softmax(-max(max_k y(k) - y(c) - joint_margin, 0)),   y = z_n + w f

f is not summed over spikes: it already reads all the recent intervals at once. The three
posteriors are always computed; ``evidence`` says which one decides the cell.

Two rules keep the joint posterior honest where the shape evidence does not carry from one
simulator to another (fitted across generators, ``evaluation.calibration``):

- ``waveform_cap``: the waveform evidence saturates. However many spikes of one shape a cell
  fires, z gives no class more than ``waveform_cap`` log-odds over another: a long run of one
  ambiguous shape is one shape, not hundreds of independent witnesses.
- ``conflict``: where the waveform and the firing lean to different classes, each by more than
  ``conflict`` log-odds, the two streams do not outvote each other into a decision: the cell stays
  undecided and says "shape and firing disagree".

A class is decided once its posterior reaches its own threshold (``thresholds``, chosen per class
by a risk-control procedure on held-out cells and carried by the model, else ``threshold``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from raphe.core.errors import RapheError
from raphe.core.specs import DECISION_THRESHOLD, MIN_SPIKES

UNDECIDED = "undecided"
DISAGREE = "shape and firing disagree"
# A cell whose windows look like nothing the model knows, or whose channel is not cell-attached current.
NOT_CLASSIFIABLE = "not classifiable"
FLOOR = 1e-6
EVIDENCE = ("both", "waveform", "firing")


@dataclass(frozen=True, slots=True)
class PosteriorConfig:
    """How spikes are combined and when a cell is decided.

    Parameters
    ----------
    alpha, beta, margin : the tempering of the evidence (default 1, 0 and 0: the naive product; a
        model's metadata carries the fitted values).
    threshold : a cell is decided once its largest posterior reaches this (default 0.99).
    min_spikes : and it has at least this many spikes (default 5).
    evidence : which posterior decides: ``waveform`` (default), ``firing`` or ``both`` (the joint).
    firing : the firing model (a ``runtime.firing.FiringModel``), needed for ``firing`` and ``both``;
        firing_weight, firing_margin, joint_margin : how its evidence is weighed (fitted with it).
    waveform_cap : the most log-odds the waveform evidence gives a class over another (default: no cap).
    conflict : the log-odds beyond which a waveform and a firing leaning to different classes keep
        the joint posterior from deciding (default: never).
    thresholds : per class, the posterior that decides it (default: ``threshold`` for every class).
    """

    alpha: float = 1.0
    beta: float = 0.0
    margin: float = 0.0
    threshold: float = DECISION_THRESHOLD
    min_spikes: int = MIN_SPIKES
    evidence: str = "waveform"
    firing: object = field(default=None, compare=False, repr=False)
    firing_weight: float = 1.0
    firing_margin: float = 0.0
    joint_margin: float = 0.0
    waveform_cap: float = float("inf")
    conflict: float = float("inf")
    thresholds: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.thresholds is not None and not all(0.5 <= t < 1 for t in self.thresholds):
            raise RapheError("every class's decision threshold must be in [0.5, 1)")
        if not (self.waveform_cap > 0 and self.conflict >= 0):
            raise RapheError("posterior needs waveform_cap > 0 and conflict >= 0")
        if not (self.alpha > 0 and self.beta >= 0 and self.margin >= 0 and 0.5 <= self.threshold < 1
                and self.min_spikes >= 1 and self.firing_weight >= 0 and self.firing_margin >= 0
                and self.joint_margin >= 0):
            raise RapheError("posterior needs alpha > 0, beta >= 0, margins >= 0, firing_weight >= 0, "
                             "0.5 <= threshold < 1 and min_spikes >= 1")
        if self.evidence not in EVIDENCE:
            raise RapheError(f"unknown evidence {self.evidence!r} (choose {', '.join(EVIDENCE)})")
        if self.evidence != "waveform" and self.firing is None:
            raise RapheError(f"--evidence {self.evidence} needs a firing model, and this model has none "
                             "(use --evidence waveform, or calibrate it with --firing)")

    def describe(self) -> dict:
        """Plain values for files and logs: the numbers, and the firing model by its file's name."""
        numbers = {f: getattr(self, f) for f in ("alpha", "beta", "margin", "threshold", "min_spikes", "evidence",
                                                 "firing_weight", "firing_margin", "joint_margin", "waveform_cap",
                                                 "conflict")}
        return {**numbers, "thresholds": None if self.thresholds is None else list(self.thresholds),
                "firing": None if self.firing is None else self.firing.path.name}

    def class_thresholds(self, n_classes: int) -> np.ndarray:
        """The posterior that decides each class."""
        return np.asarray(self.thresholds if self.thresholds is not None else (self.threshold,) * n_classes)


def top_class(classes: tuple[str, ...], probabilities) -> str:
    """The most probable class and its probability, e.g. ``SER 0.998``."""
    best = int(np.argmax(probabilities))
    return f"{classes[best]} {float(probabilities[best]):.3f}"


def leanings(classes: tuple[str, ...], parts: dict) -> str:
    """Which way the waveform and the firing evidence point, e.g. ``S/N`` for SER and NSER (class
    initials where they differ, else names; ``-`` where a part is even); ``parts`` holds each
    part's probabilities, as a sequence or a dict by class."""
    short = [c[:1] for c in classes] if len({c[:1] for c in classes}) == len(classes) else list(classes)

    def way(p) -> str:
        values = np.array([p[c] for c in classes]) if isinstance(p, dict) else np.asarray(p)
        best = int(values.argmax())
        return short[best] if values[best] > 1.0 / len(classes) + 1e-9 else "-"

    return f"{way(parts['waveform'])}/{way(parts['firing'])}"


def log_evidence(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probs, FLOOR, 1.0))


def tempering(n, alpha: float, beta: float):
    """The factor on the summed log-probabilities after ``n`` spikes (a number or an array of them)."""
    return alpha / (1.0 + beta * np.maximum(np.asarray(n, dtype=np.float64) - 1.0, 0.0))


def tempered_evidence(evidence_sum: np.ndarray, n: np.ndarray | int, alpha: float, beta: float) -> np.ndarray:
    """z: the waveform evidence after ``n`` spikes (rows of ``evidence_sum``), tempered."""
    return np.asarray(evidence_sum) * np.expand_dims(tempering(n, alpha, beta), -1)


def capped(z: np.ndarray, cap: float) -> np.ndarray:
    """Evidence ``z`` (rows) with no class more than ``cap`` below the row's best."""
    return z if not np.isfinite(cap) else np.maximum(z, z.max(axis=-1, keepdims=True) - cap)


def lead(z: np.ndarray) -> np.ndarray:
    """Per row of evidence ``z``, how far its best class leads the next."""
    top2 = np.sort(z, axis=-1)[..., -2:]
    return top2[..., 1] - top2[..., 0]


def disagreement(waveform: np.ndarray, firing: np.ndarray, conflict: float) -> np.ndarray:
    """Per row, whether the waveform evidence and the (weighted) firing evidence lean to different
    classes, each by more than ``conflict`` log-odds."""
    if not np.isfinite(conflict):
        return np.zeros(waveform.shape[:-1], dtype=bool)
    return ((waveform.argmax(axis=-1) != firing.argmax(axis=-1)) & (lead(waveform) > conflict)
            & (lead(firing) > conflict))


def with_margin(z: np.ndarray, margin: float) -> np.ndarray:
    """Posterior(s) from evidence ``z`` (rows), a class counting only beyond ``margin``."""
    gap = np.maximum(z.max(axis=-1, keepdims=True) - z - margin, 0.0)
    p = np.exp(-gap)
    return p / p.sum(axis=-1, keepdims=True)
