"""Training the firing model (`raphe firing-model`): from the spike trains of labelled cells.

A window set whose windows carry their times (``time_s``: `raphe synth` sets, labelled recordings)
holds each cell's train. The model must speak from ``MIN_ISIS`` intervals on and grow surer with
more, so each cell gives one example per prefix length in ``PREFIX_ISIS`` (the features of its last
``WINDOW_ISIS`` intervals at that point, as the runtime computes them), each cell weighted equally.
The fit is a multinomial logistic regression on standardized features (scikit-learn), whose
parameters the runtime applies with numpy alone.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import numpy as np

from raphe.classifier.runtime import windows as ws
from raphe.classifier.runtime.firing import (FEATURES, FIRING_FORMAT, MIN_ISIS, WINDOW_ISIS, FiringModel,
                                             features, usable_intervals)
from raphe.core.errors import RapheError
from raphe.core.staged import staged

PREFIX_ISIS = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
C_GRID = (0.01, 0.1, 1.0, 10.0)


def cell_trains(data: ws.WindowSet) -> list[tuple[str, int, np.ndarray]]:
    """Per cell: (name, class index, its usable intervals in recorded order). Cells without times
    are an error: this set cannot teach firing."""
    if np.isnan(data.time_s).all():
        raise RapheError("these windows carry no spike times (time_s), so they cannot teach firing; "
                         "use `raphe synth` sets or labelled recordings")
    trains = []
    for name in np.unique(data.cell):
        index = np.flatnonzero(data.cell == name)
        times = data.time_s[index]
        times = times[np.isfinite(times)]
        trains.append((str(name), int(data.y[index[0]]), usable_intervals(np.sort(times))))
    return trains


def prefix_examples(trains: list[tuple[str, int, np.ndarray]],
                    lengths: tuple[int, ...] = PREFIX_ISIS) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(features (M, F), class (M,), cell index (M,), intervals seen (M,)): one row per cell and
    prefix length it reaches; a cell shorter than every length gives one row of all its intervals
    (if it has ``MIN_ISIS``)."""
    rows, labels, cells, seen = [], [], [], []
    for k, (_, label, isi) in enumerate(trains):
        reached = [n for n in lengths if n <= len(isi)] or ([len(isi)] if len(isi) >= MIN_ISIS else [])
        for n in reached:
            rows.append(features(isi[max(0, n - WINDOW_ISIS):n]))
            labels.append(label)
            cells.append(k)
            seen.append(n)
    if not rows:
        raise RapheError(f"no cell has {MIN_ISIS} usable intervals: nothing to learn firing from")
    return np.stack(rows), np.array(labels), np.array(cells), np.array(seen)


def cell_weights(cells: np.ndarray) -> np.ndarray:
    counts = np.bincount(cells)
    return 1.0 / counts[cells]


def fit_logistic(X: np.ndarray, y: np.ndarray, weights: np.ndarray, c: float):
    """A standardized multinomial logistic regression: (mean, scale, fitted estimator)."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1.0
    estimator = LogisticRegression(C=c, max_iter=2000)
    estimator.fit((X - mean) / scale, y, sample_weight=weights)
    return mean, scale, estimator


def choose_c(X: np.ndarray, y: np.ndarray, cells: np.ndarray, seed: int, folds: int = 5) -> tuple[float, dict]:
    """The regularization among ``C_GRID`` with the best cell-grouped cross-validated log-loss."""
    rng = np.random.default_rng(seed)
    fold_of_cell = rng.permutation(np.arange(cells.max() + 1) % folds)
    fold = fold_of_cell[cells]
    weights = cell_weights(cells)
    losses = {}
    for c in C_GRID:
        total = 0.0
        for f in range(folds):
            train, test = fold != f, fold == f
            if len(np.unique(y[train])) < len(np.unique(y)) or not test.any():
                continue
            mean, scale, est = fit_logistic(X[train], y[train], weights[train], c)
            p = est.predict_proba((X[test] - mean) / scale)
            columns = np.searchsorted(est.classes_, y[test])
            total -= (weights[test] * np.log(np.clip(p[np.arange(test.sum()), columns], 1e-12, 1))).sum()
        losses[c] = total / weights.sum()
    return min(losses, key=losses.get), losses


def train_firing_model(data: ws.WindowSet, out: str | Path, data_name: str, seed: int = 0) -> FiringModel:
    """Fit the firing model on the cells of ``data`` and write it to ``out`` (a .json)."""
    if importlib.util.find_spec("sklearn") is None:
        raise RapheError("raphe firing-model needs the train extra (pip install 'raphe[train]')")
    data.require_classes(2)
    started = time.perf_counter()
    trains = cell_trains(data)
    X, y, cells, seen = prefix_examples(trains)
    if len(np.unique(y)) < len(data.classes):
        raise RapheError(f"every class needs a cell with {MIN_ISIS} usable intervals to learn its firing")
    c, losses = choose_c(X, y, cells, seed)
    mean, scale, est = fit_logistic(X, y, cell_weights(cells), c)
    weights, bias = est.coef_, est.intercept_
    if len(data.classes) == 2:  # scikit-learn keeps one row for two classes: the second class's logit
        weights, bias = np.vstack([np.zeros_like(weights[0]), weights[0]]), np.array([0.0, bias[0]])
    model = {"format": FIRING_FORMAT, "classes": list(data.classes), "features": list(FEATURES),
             "mean": mean.tolist(), "scale": scale.tolist(), "weights": weights.tolist(), "bias": bias.tolist(),
             "family": "logistic regression on firing features",
             "training": {"data": data_name, "cells": len(trains), "examples": int(len(y)),
                          "prefix_isis": list(PREFIX_ISIS), "C": c,
                          "cv_log_loss": {str(k): round(v, 5) for k, v in losses.items()},
                          "seconds": round(time.perf_counter() - started, 2), "seed": seed}}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with staged(out) as partial:
        partial.write_text(json.dumps(model, indent=2) + "\n")
    return FiringModel(out)
