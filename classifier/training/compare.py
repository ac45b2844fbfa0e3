"""`raphe compare`: model families side by side, on cells' firing and on their spikes' shapes.

The comparison of the second seed paper (science.md, "Beyond the seed"), on labelled cells:

- **Firing**: per cell, its first ``n`` inter-spike intervals (n in ``FIRING_ISIS``). 1D-CNN, RNN and
  LSTM read the sequence of log ISIs (the recurrent ones reshaped to n/4 steps of 4); logistic
  regression, SVM (linear, RBF, polynomial) and AdaBoost read the firing features of
  ``runtime.firing`` (rate, CV, CV2, LV, ISI percentiles, burst and pause shares).
- **Waveforms**: per window, the seed's CNN on the 160 points, RNN and LSTM on the window reshaped
  to 20 steps of 8, and logistic regression, SVM and AdaBoost on waveform features (UDI, the
  positive peak over the trough, the trough's and the peak's half-widths, the trough's depth). A
  cell's class is the most probable under the mean log-probability of its windows.

Each family is fitted on the training part of ``splits`` repeated cell-level splits (70/30,
stratified by class); feature models are tuned by grid search (3-fold) inside the training part,
networks stop early on a fifth of it. Reported: mean ± sd accuracy over splits, per-class precision,
recall and specificity (pooled over splits), training seconds per split and inference time per cell
(firing) or per window (waveforms), and for firing the accuracy against the number of ISIs seen.
"""

from __future__ import annotations

import importlib.util
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raphe.classifier.runtime import windows as ws
from raphe.classifier.runtime.firing import features
from raphe.core.errors import RapheError
from raphe.core.specs import SEED_WINDOW
from raphe.core.staged import staged

from .firing import cell_trains
from .train import balanced_class_weights

FIRING_ISIS = (8, 16, 24)
WINDOWS_PER_CELL = 10
TEST_SHARE = 0.3
STEP_MS = SEED_WINDOW.step_s * 1000.0
PRE_POINTS = int(round(SEED_WINDOW.pre_ms / STEP_MS))


@dataclass
class Scores:
    """One family on one task, over the splits."""

    accuracy: list[float]
    y_true: list[np.ndarray]
    y_pred: list[np.ndarray]
    train_s: list[float]
    predict_s_per_item: list[float]


def stratified_split(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A boolean test mask over items (cells), ``TEST_SHARE`` of each class."""
    test = np.zeros(len(labels), bool)
    for k in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == k))
        test[members[:max(1, int(round(TEST_SHARE * len(members))))]] = True
    return test


def feature_families(seed: int) -> dict:
    """name -> (estimator, parameter grid) for the feature models (scikit-learn)."""
    from sklearn.ensemble import AdaBoostClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    return {"logistic regression": (LogisticRegression(max_iter=2000), {"C": [0.01, 0.1, 1.0, 10.0]}),
            "SVM linear": (SVC(kernel="linear"), {"C": [0.01, 0.1, 1.0, 10.0]}),
            "SVM RBF": (SVC(kernel="rbf"), {"C": [0.1, 1.0, 10.0, 100.0], "gamma": ["scale", 0.01, 0.1]}),
            "SVM polynomial": (SVC(kernel="poly"), {"C": [0.1, 1.0, 10.0], "degree": [2, 3]}),
            "AdaBoost": (AdaBoostClassifier(random_state=seed),
                         {"n_estimators": [50, 200], "learning_rate": [0.1, 1.0]})}


def fit_features(estimator, grid: dict, X: np.ndarray, y: np.ndarray):
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    name = type(estimator).__name__.lower()
    search = GridSearchCV(make_pipeline(StandardScaler(), estimator), {f"{name}__{k}": v for k, v in grid.items()},
                          cv=3, n_jobs=1)
    search.fit(X, y)
    return search.best_estimator_


def sequence_network(kind: str, steps: int, width: int, n_classes: int):
    """A small network over a (steps, width) sequence: 1D-CNN, RNN or LSTM; outputs logits."""
    import keras
    from keras import layers

    inputs = keras.Input((steps, width))
    if kind == "1D-CNN":
        x = layers.Conv1D(16, min(3, steps), padding="same", activation="relu")(inputs)
        x = layers.Conv1D(16, min(3, steps), padding="same", activation="relu")(x)
        x = layers.GlobalAveragePooling1D()(x)
    elif kind == "RNN":
        x = layers.SimpleRNN(32)(inputs)
    else:
        x = layers.LSTM(32)(inputs)
    return keras.Model(inputs, layers.Dense(n_classes)(x))


def fit_network(model, X: np.ndarray, y: np.ndarray, epochs: int, seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=4, restore_best_weights=True)
    weights = balanced_class_weights(y, int(model.output_shape[-1]))
    model.fit(X, y, batch_size=64, epochs=epochs, validation_split=0.2, class_weight=weights, callbacks=[stop],
              verbose=0, shuffle=True)
    return model


def _predict_network(model, X: np.ndarray) -> np.ndarray:
    return model.predict(X, batch_size=512, verbose=0)


def firing_cells(data: ws.WindowSet, n: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Cells with at least ``n`` usable intervals: (their first n ISIs (cells, n), labels, names)."""
    rows, labels, names = [], [], []
    for name, label, isi in cell_trains(data):
        if len(isi) >= n:
            rows.append(isi[:n])
            labels.append(label)
            names.append(name)
    return np.array(rows).reshape(-1, n), np.array(labels), names


def compare_firing(data: ws.WindowSet, splits: int, seed: int, epochs: int, lengths=FIRING_ISIS) -> dict:
    """Every firing family at every number of ISIs in ``lengths``: {n: {family: Scores}} and the cells."""
    results, used = {}, {}
    for n in lengths:
        isi, y, names = firing_cells(data, n)
        if len(np.unique(y)) < len(data.classes) or min(np.bincount(y, minlength=len(data.classes))) < 5:
            raise RapheError(f"firing comparison at {n} ISIs needs at least 5 cells of each class with {n} intervals")
        used[n] = {"cells": len(y), **{c: int((y == k).sum()) for k, c in enumerate(data.classes)}}
        feats = np.stack([features(row) for row in isi])
        logs = np.log(isi)
        width = 4 if n % 4 == 0 else 1
        results[n] = {}
        for split in range(splits):
            rng = np.random.default_rng((seed, split))
            test = stratified_split(y, rng)
            for name, (estimator, grid) in feature_families(seed).items():
                started = time.perf_counter()
                fitted = fit_features(estimator, grid, feats[~test], y[~test])
                trained = time.perf_counter() - started
                started = time.perf_counter()
                predicted = fitted.predict(feats[test])
                _add(results[n], name, y[test], predicted, trained, (time.perf_counter() - started) / test.sum())
            mean, sd = logs[~test].mean(), logs[~test].std()
            sequences = ((logs - mean) / sd).astype(np.float32)
            for kind in ("1D-CNN", "RNN", "LSTM"):
                shaped = sequences.reshape(-1, n, 1) if kind == "1D-CNN" else sequences.reshape(-1, n // width, width)
                started = time.perf_counter()
                model = fit_network(sequence_network(kind, shaped.shape[1], shaped.shape[2], len(data.classes)),
                                    shaped[~test], y[~test], epochs, seed + split)
                trained = time.perf_counter() - started
                started = time.perf_counter()
                predicted = _predict_network(model, shaped[test]).argmax(axis=1)
                _add(results[n], kind, y[test], predicted, trained, (time.perf_counter() - started) / test.sum())
    return {"scores": results, "cells": used}


def waveform_features(X: np.ndarray) -> np.ndarray:
    """Per window (N, 160): UDI (ms, trough to the positive peak after it), the positive peak over the
    trough's depth, the trough's and the peak's half-widths (ms), and the trough's depth (pA)."""
    out = np.empty((len(X), 5))
    for i, w in enumerate(np.asarray(X, dtype=np.float64)):
        base = np.median(w[:PRE_POINTS])
        v = w - base
        trough = int(np.argmin(v))
        peak = trough + int(np.argmax(v[trough:])) if trough < len(v) - 1 else trough
        depth, height = -v[trough], max(v[peak], 1e-6)
        out[i] = (STEP_MS * (peak - trough), height / max(depth, 1e-6),
                  STEP_MS * _half_width(-v, trough), STEP_MS * _half_width(v, peak), depth)
    return out


def _half_width(v: np.ndarray, at: int) -> int:
    """Points around ``at`` where ``v`` stays above half its value at ``at``."""
    half = v[at] / 2.0
    left = at
    while left > 0 and v[left - 1] > half:
        left -= 1
    right = at
    while right < len(v) - 1 and v[right + 1] > half:
        right += 1
    return right - left + 1


def compare_waveforms(data: ws.WindowSet, splits: int, seed: int, epochs: int) -> dict:
    """Every waveform family: {"window": {family: Scores}, "cell": {family: Scores}} over the splits."""
    from .network import seed_model

    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.permutation(np.flatnonzero(data.cell == c))[:WINDOWS_PER_CELL]
                           for c in np.unique(data.cell)])
    data = data.subset(np.sort(keep))
    cells = np.unique(data.cell)
    cell_of = np.searchsorted(cells, data.cell)
    cell_label = np.array([data.y[cell_of == k][0] for k in range(len(cells))])
    feats = waveform_features(data.X)
    norm = (data.X - data.X.mean(axis=1, keepdims=True)) / (data.X.std(axis=1, keepdims=True) + 1e-6)
    window, cell = {}, {}
    n_classes = len(data.classes)
    for split in range(splits):
        test_cells = stratified_split(cell_label, np.random.default_rng((seed, split)))
        test = test_cells[cell_of]
        runs = []
        for name, (estimator, grid) in feature_families(seed).items():
            started = time.perf_counter()
            fitted = fit_features(estimator, grid, feats[~test], data.y[~test])
            trained = time.perf_counter() - started
            started = time.perf_counter()
            scores = fitted.decision_function(feats[test])
            predict_s = (time.perf_counter() - started) / test.sum()
            scores = np.stack([-scores, scores], axis=1) if scores.ndim == 1 else scores
            runs.append((name, scores, trained, predict_s))
        for kind in ("1D-CNN (seed)", "RNN", "LSTM"):
            shaped = data.X[..., np.newaxis] if kind.startswith("1D-CNN") else norm.reshape(-1, 20, 8)
            model = seed_model(20, n_classes) if kind.startswith("1D-CNN") else \
                sequence_network(kind, 20, 8, n_classes)
            started = time.perf_counter()
            fit_network(model, shaped[~test], data.y[~test], epochs, seed + split)
            trained = time.perf_counter() - started
            started = time.perf_counter()
            logits = _predict_network(model, shaped[test])
            runs.append((kind, logits, trained, (time.perf_counter() - started) / test.sum()))
        for name, scores, trained, predict_s in runs:
            _add(window, name, data.y[test], scores.argmax(axis=1), trained, predict_s)
            # a cell's class: the largest mean score over its windows (mean log-probability for networks)
            log_p = scores - np.log(np.exp(scores - scores.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True)) \
                - scores.max(axis=1, keepdims=True)
            test_ids = cell_of[test]
            per_cell = np.stack([log_p[test_ids == k].mean(axis=0) for k in np.flatnonzero(test_cells)])
            _add(cell, name, cell_label[test_cells], per_cell.argmax(axis=1), trained, predict_s)
    return {"window": window, "cell": cell, "cells": len(cells), "windows": len(data)}


def _add(table: dict, name: str, truth: np.ndarray, predicted: np.ndarray, train_s: float, predict_s: float) -> None:
    s = table.setdefault(name, Scores([], [], [], [], []))
    s.accuracy.append(float((truth == predicted).mean()))
    s.y_true.append(np.asarray(truth))
    s.y_pred.append(np.asarray(predicted))
    s.train_s.append(train_s)
    s.predict_s_per_item.append(predict_s)


def summarize(scores: Scores, classes: tuple[str, ...]) -> dict:
    """Mean ± sd accuracy, pooled per-class precision/recall/specificity, the confusion matrix, times."""
    truth, predicted = np.concatenate(scores.y_true), np.concatenate(scores.y_pred)
    confusion = np.zeros((len(classes), len(classes)), int)
    np.add.at(confusion, (truth, predicted), 1)
    per_class = {}
    for k, c in enumerate(classes):
        tp, fp = confusion[k, k], confusion[:, k].sum() - confusion[k, k]
        fn, tn = confusion[k].sum() - tp, confusion.sum() - confusion[k].sum() - confusion[:, k].sum() + confusion[k, k]
        per_class[c] = {"precision": tp / (tp + fp) if tp + fp else float("nan"),
                        "recall": tp / (tp + fn) if tp + fn else float("nan"),
                        "specificity": tn / (tn + fp) if tn + fp else float("nan")}
    return {"accuracy_mean": float(np.mean(scores.accuracy)), "accuracy_sd": float(np.std(scores.accuracy)),
            "splits": len(scores.accuracy), "per_class": per_class, "confusion": confusion.tolist(),
            "train_s_mean": float(np.mean(scores.train_s)),
            "predict_us_per_item": float(1e6 * np.median(scores.predict_s_per_item))}


def compare(data: ws.WindowSet, out: str | Path, data_name: str, splits: int = 10, seed: int = 0,
            epochs: int = 40, lengths: tuple[int, ...] = FIRING_ISIS) -> dict:
    """Both comparisons on ``data``; writes ``report.md``, ``compare.json`` and the confusion matrices
    (``confusion-firing.png``, ``confusion-waveform.png``) to ``out``."""
    if importlib.util.find_spec("keras") is None or importlib.util.find_spec("sklearn") is None:
        raise RapheError("raphe compare needs the train extra (pip install 'raphe[train]')")
    data.require_classes(2)
    if min(lengths) < 2:
        raise RapheError("the firing families need at least 2 intervals per cell (--isis)")
    if splits < 2:
        raise RapheError("need at least 2 splits to give a spread")
    started = time.perf_counter()
    firing = compare_firing(data, splits, seed, epochs, lengths)
    waveform = compare_waveforms(data, splits, seed, epochs)
    result = {"data": data_name, "described": repr(data), "splits": splits, "seed": seed, "classes": list(data.classes),
              "firing": {"cells": {str(n): c for n, c in firing["cells"].items()},
                         "by_isis": {str(n): {name: summarize(s, data.classes) for name, s in table.items()}
                                     for n, table in firing["scores"].items()}},
              "waveform": {"cells": waveform["cells"], "windows": waveform["windows"],
                           "window": {name: summarize(s, data.classes) for name, s in waveform["window"].items()},
                           "cell": {name: summarize(s, data.classes) for name, s in waveform["cell"].items()}},
              "seconds": round(time.perf_counter() - started, 1)}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with staged(out / "compare.json") as partial:
        partial.write_text(json.dumps(result, indent=2, default=float) + "\n")
    with staged(out / "report.md") as partial:
        partial.write_text(markdown(result))
    longest = str(max(lengths))
    confusion_png(out / "confusion-firing.png", result["firing"]["by_isis"][longest], data.classes,
                  f"firing, first {longest} ISIs per cell")
    confusion_png(out / "confusion-waveform.png", result["waveform"]["cell"], data.classes, "waveforms, per cell")
    return result


def _row(name: str, s: dict, classes, unit: str, extra: list[str] = ()) -> str:
    parts = [f"{100 * s['accuracy_mean']:.1f} ± {100 * s['accuracy_sd']:.1f}"]
    for c in classes:
        m = s["per_class"][c]
        parts.append(f"{m['precision']:.3f} / {m['recall']:.3f} / {m['specificity']:.3f}")
    parts += [f"{s['train_s_mean']:.2f}", f"{s['predict_us_per_item']:.1f}", *extra]
    return f"| {name} | " + " | ".join(parts) + " |"


def markdown(result: dict) -> str:
    classes = result["classes"]
    lengths = list(result["firing"]["by_isis"])
    longest = lengths[-1]
    per_class = " | ".join(f"{c} precision / recall / specificity" for c in classes)
    lines = ["# Model families compared", "",
             f"Data: {result['data']} ({result['described']}); {result['splits']} repeated cell-level splits "
             f"(70/30 by class, seed {result['seed']}); {result['seconds']:.0f} s in all. Accuracy is mean ± sd over "
             "the splits (%); precision, recall and specificity are pooled over them; training is seconds per "
             "split, inference the median time per item.", "",
             f"## Firing: the first {longest} intervals of each cell", "",
             "Cells with at least that many intervals: " + ", ".join(
                 f"{n} ISIs: {c['cells']}" for n, c in result["firing"]["cells"].items()) + ".", "",
             f"| family | accuracy % | {per_class} | training s | inference µs/cell | "
             + " | ".join(f"accuracy at {n} ISIs" for n in lengths) + " |",
             "|---|" + "---|" * (len(classes) + 3 + len(lengths))]
    for name, s in result["firing"]["by_isis"][longest].items():
        at = [f"{100 * result['firing']['by_isis'][n][name]['accuracy_mean']:.1f}" for n in lengths]
        lines.append(_row(name, s, classes, "cell", at))
    w = result["waveform"]
    lines += ["", f"## Waveforms: {w['windows']} windows of {w['cells']} cells (at most {WINDOWS_PER_CELL} per cell)", "",
              f"| family | cell accuracy % | {per_class} (cells) | training s | inference µs/window | window accuracy % |",
              "|---|" + "---|" * (len(classes) + 4)]
    for name, s in w["cell"].items():
        win = w["window"][name]
        lines.append(_row(name, s, classes, "window", [f"{100 * win['accuracy_mean']:.1f} ± {100 * win['accuracy_sd']:.1f}"]))
    lines += ["", "Confusion matrices (pooled over splits): `confusion-firing.png`, `confusion-waveform.png`.", ""]
    return "\n".join(lines)


def confusion_png(path: Path, table: dict, classes, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(table)
    columns = 4
    rows = (len(names) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.5 * rows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax, name in zip(axes.flat, names):
        m = np.array(table[name]["confusion"])
        ax.imshow(m / m.sum(axis=1, keepdims=True), vmin=0, vmax=1, cmap="Blues")
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(classes)), classes, fontsize=7)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
        ax.set_title(f"{name}: {100 * table[name]['accuracy_mean']:.1f}%", fontsize=8)
    fig.suptitle(f"{title} (rows: truth, columns: predicted)", fontsize=9)
    fig.tight_layout()
    with staged(path) as partial:
        fig.savefig(partial, dpi=90, format="png")
    plt.close(fig)
