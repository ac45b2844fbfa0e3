"""How unlike the training data a window is: a per-window novelty score, cheap enough for the live path.

A window is first normalised as the network's first layer normalises it (zero mean, unit variance
over time: shape only). In that space the training windows span, mostly, a subspace of ``k``
principal directions. A window's score is its squared distance to the training data there: the
mean squared distance to its ``nearest`` closest reference windows (a sample of the training
windows) inside the subspace, plus the energy it holds outside the subspace. Ordinary windows lie
close to many training windows; a window of a kind the model never saw (a capacitive transient, a
current-clamp action potential, a synaptic current) lies far from all of them.

The threshold is fitted so that a chosen share (1%) of held-out windows of the training
distribution exceed it. Everything is stored in the model's metadata; scoring one window is one
(k x references) product and a partial sort.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raphe.core.errors import RapheError

COMPONENTS = 16
REFERENCES = 2048
NEAREST = 5
HELD_OUT_EXCEEDING = 0.01
# Keras LayerNormalization's epsilon, so that the shape scored is the shape the network sees.
EPSILON = 1e-3


def normalise(windows: np.ndarray) -> np.ndarray:
    """Each window at zero mean and unit variance over its points (float64)."""
    x = np.asarray(windows, dtype=np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    return x / np.sqrt((x * x).mean(axis=1, keepdims=True) + EPSILON)


@dataclass(frozen=True)
class Novelty:
    """The summary of the training windows that novelty is scored against (see the module's text)."""

    mean: np.ndarray        # (P,) mean normalised training window
    components: np.ndarray  # (k, P) principal directions, orthonormal rows
    references: np.ndarray  # (R, k) coordinates of a sample of training windows
    nearest: int            # how many nearest references a score averages over
    threshold: float        # scores above this are novel

    def __post_init__(self):
        object.__setattr__(self, "_reference_norms", (self.references * self.references).sum(axis=1))

    def score(self, windows: np.ndarray) -> np.ndarray:
        """Novelty scores (N,) of windows (N, P)."""
        d = normalise(windows) - self.mean
        coords = d @ self.components.T
        inside = (coords * coords).sum(axis=1)
        outside = np.maximum((d * d).sum(axis=1) - inside, 0.0)
        squared = inside[:, None] - 2.0 * coords @ self.references.T + self._reference_norms[None, :]
        near = np.partition(squared, self.nearest - 1, axis=1)[:, :self.nearest].mean(axis=1)
        return np.maximum(near, 0.0) + outside

    def is_novel(self, windows: np.ndarray) -> np.ndarray:
        return self.score(windows) > self.threshold

    def to_json(self) -> dict:
        return {"rule": f"mean squared distance to the {self.nearest} nearest of {len(self.references)} training "
                        f"windows in their top-{len(self.components)} principal subspace (layer-normalised), "
                        "plus the energy outside it",
                "mean": self.mean.tolist(), "components": self.components.tolist(),
                "references": self.references.tolist(), "nearest": self.nearest,
                "threshold": self.threshold}

    @classmethod
    def from_json(cls, data: dict) -> Novelty:
        try:
            novelty = cls(np.asarray(data["mean"], np.float64), np.asarray(data["components"], np.float64),
                          np.asarray(data["references"], np.float64), int(data["nearest"]), float(data["threshold"]))
        except (KeyError, TypeError, ValueError):
            raise RapheError("the model's novelty summary is incomplete") from None
        k, points = novelty.components.shape
        if novelty.mean.shape != (points,) or novelty.references.ndim != 2 or novelty.references.shape[1] != k \
                or not 1 <= novelty.nearest <= len(novelty.references):
            raise RapheError("the model's novelty summary has inconsistent shapes")
        return novelty


def fit_novelty(train_windows: np.ndarray, held_out: np.ndarray, rng: np.random.Generator,
                components: int = COMPONENTS, references: int = REFERENCES, nearest: int = NEAREST,
                exceeding: float = HELD_OUT_EXCEEDING) -> Novelty:
    """The summary of ``train_windows``, its threshold set so that a share ``exceeding`` of the
    ``held_out`` windows (of the same distribution, from cells and days never trained on) score above it."""
    if len(train_windows) < max(components, nearest) + 1 or len(held_out) == 0:
        raise RapheError("too few windows to fit the novelty score")
    d = normalise(train_windows)
    mean = d.mean(axis=0)
    d -= mean
    _, _, vt = np.linalg.svd(d, full_matrices=False)
    basis = vt[:components]
    coords = d @ basis.T
    # rounded as stored in the metadata, so that the threshold is that of the stored summary
    mean, basis = np.round(mean, 6), np.round(basis, 6)
    sample = np.round(coords[rng.permutation(len(coords))[:references]], 4)
    unfitted = Novelty(mean, basis, sample, nearest, np.inf)
    threshold = float(np.quantile(unfitted.score(held_out), 1.0 - exceeding))
    return Novelty(mean, basis, sample, nearest, threshold)
