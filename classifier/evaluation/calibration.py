"""Calibrating the running cell posterior: its tempering fitted on held-out cells, and the
expected calibration error that judges it.

The tempering (``alpha``, ``beta``, ``margin``; see ``runtime.posterior``) is fitted by minimizing the negative
log-likelihood of the true class over every prefix of held-out cells, each cell weighted equally,
so the posterior is calibrated at every spike count, not only at the end; among the tempering that
decides wrongly at most 0.5% of the calibration cells (a tool sure and wrong is worse than one that
abstains). Calibration cells from other days and other sources than the training cells (e.g. both
generators) are what make the fit survive a change of data.

`raphe train` fits the posterior on the cells it held out, which are few (a day or two);
`raphe calibrate` refits it on a dedicated set of cells the weights never saw, from other days.
Only the model's ``.json`` changes: the checksum covers the ``.tflite``, which stays as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from raphe.classifier.runtime import windows as ws
from raphe.classifier.runtime.model import Model, model_files, sidecar
from raphe.classifier.runtime.posterior import combine, log_evidence
from raphe.core.errors import RapheError
from raphe.core.specs import DECISION_THRESHOLD, MIN_SPIKES
from raphe.core.staged import staged

# The tempering may decide wrongly at most this share of the calibration cells.
MAX_WRONG_DECISIONS = 0.005
MARGINS = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)


def cell_sequences(cells: np.ndarray, labels: np.ndarray, probabilities: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Per cell, its class index and its spikes' probabilities (n, C) in recorded order: what
    :func:`fit_posterior` takes. ``cells``, ``labels`` and ``probabilities`` are per spike."""
    return [(int(labels[cells == cell][0]), probabilities[cells == cell]) for cell in np.unique(cells)]


def prefixes(sequences: list[tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every prefix of every cell: (summed log-probabilities, n, true class, weight 1/len per cell)."""
    sums, counts, labels, weights = [], [], [], []
    for label, probs in sequences:
        n = len(probs)
        if n == 0:
            continue
        sums.append(np.cumsum(log_evidence(probs), axis=0))
        counts.append(np.arange(1, n + 1))
        labels.append(np.full(n, label))
        weights.append(np.full(n, 1.0 / n))
    if not sums:
        raise RapheError("no cell with spikes to fit the posterior on")
    return np.concatenate(sums), np.concatenate(counts), np.concatenate(labels), np.concatenate(weights)


def fit_posterior(sequences: list[tuple[int, np.ndarray]], threshold: float = DECISION_THRESHOLD,
                  min_spikes: int = MIN_SPIKES, max_wrong: float = MAX_WRONG_DECISIONS) -> tuple[float, float, float]:
    """(alpha, beta, margin) minimizing the cell-weighted NLL over all prefixes of ``sequences``, among
    the tempering that decides wrongly (at ``threshold`` after ``min_spikes``) at most ``max_wrong`` of
    the cells at their end; where none does, the one that decides fewest cells wrongly.

    ``sequences`` holds, per held-out cell, its true class index and its spikes' probabilities
    (n, C) in the order they were recorded (windows kept out of the posterior left out).
    """
    sums, counts, labels, weights = prefixes(sequences)
    rows = np.arange(len(labels))
    last = np.cumsum([len(probs) for _, probs in sequences if len(probs)]) - 1
    best, best_key = (1.0, 0.0, 0.0), (np.inf, np.inf)
    for margin in MARGINS:
        for beta in np.r_[0.0, np.logspace(-3, 1.0, 21)]:
            for alpha in np.logspace(-2.5, 1.0, 36):
                p = combine(sums, counts, alpha, beta, margin)
                nll = -(weights * np.log(np.clip(p[rows, labels], 1e-12, 1.0))).sum() / weights.sum()
                final = p[last]
                decided = (counts[last] >= min_spikes) & (final.max(axis=1) >= threshold)
                wrong = float((decided & (final.argmax(axis=1) != labels[last])).mean())
                key = (max(wrong - max_wrong, 0.0), nll)
                if key < best_key:
                    best, best_key = (float(alpha), float(beta), float(margin)), key
    return best


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, weights: np.ndarray | None = None,
                               bins: int = 10) -> float:
    """ECE: the weighted mean gap between confidence and accuracy over ``bins`` equal-width bins."""
    weights = np.ones(len(confidence)) if weights is None else weights
    edges = np.minimum((confidence * bins).astype(int), bins - 1)
    total, gap = weights.sum(), 0.0
    for b in range(bins):
        mask = edges == b
        if mask.any():
            w = weights[mask]
            gap += abs(np.average(correct[mask], weights=w) - np.average(confidence[mask], weights=w)) * w.sum()
    return float(gap / total) if total else float("nan")


def calibrate(model_path, data: ws.WindowSet, data_name: str = "") -> dict[str, tuple[float, float, float]]:
    """Refit (alpha, beta, margin) for every model at ``model_path`` on the cells of ``data``; return them."""
    fitted = {}
    for path in model_files(model_path):
        model = Model(path)
        aligned = data.in_classes(model.classes)
        probabilities = model.predict(aligned.X)
        kept = ~model.novel(aligned.X)
        sequences = cell_sequences(aligned.cell[kept], aligned.y[kept], probabilities[kept])
        alpha, beta, margin = fit_posterior(sequences)
        write_posterior(model.path, alpha, beta, margin, len(sequences), data_name or repr(data))
        fitted[model.path.name] = (alpha, beta, margin)
    return fitted


def write_posterior(model_path, alpha: float, beta: float, margin: float, cells: int, fitted_on: str) -> None:
    """Put a fitted tempering into a model's ``.json``, saying what it was fitted on."""
    _, meta_path = sidecar(Path(model_path))
    metadata = json.loads(meta_path.read_text())
    metadata["posterior"] = {**metadata.get("posterior", {}), "alpha": alpha, "beta": beta, "margin": margin,
                             "fitted_on_cells": cells, "fitted_on": fitted_on, "max_wrong_decisions": MAX_WRONG_DECISIONS}
    with staged(meta_path) as partial:
        partial.write_text(json.dumps(metadata, indent=2) + "\n")
