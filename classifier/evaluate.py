"""`raphe evaluate`: spike- and cell-level figures of a model on labelled windows, with a report.

Two kinds of rate are reported and named apart: per true class (TPR = recall of the class, TNR =
specificity) and per predicted class (precision; the seed's confusion matrices are normalized this
way). The cell decision in the tables is the seed's rule: the class with the largest mean spike
probability; the running posterior of `posterior.py` is reported after them.
The first class of the model (SER for the default) is the positive class of AUC and ROC.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raphe.errors import RapheError
from raphe.staged import staged

from . import windows as ws
from .posterior import UNDECIDED, CellPosterior, cell_sequences, expected_calibration_error
from .runtime import Model

UDI_BINS_MS = (0.0, 0.6, 0.9, 1.2, 1.6, math.inf)
ATYPICAL_UDI_MS = 0.9


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default); (nan, nan) for n = 0."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def roc(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every threshold, from (0, 0) to (1, 1)."""
    order = np.argsort(-scores, kind="stable")
    s, pos = scores[order], positive[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp, fp = np.cumsum(pos)[distinct], np.cumsum(~pos)[distinct]
    n_pos, n_neg = max(pos.sum(), 1), max((~pos).sum(), 1)
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (the Mann-Whitney probability, ties counted half)."""
    if positive.all() or not positive.any():
        return math.nan
    fpr, tpr = roc(scores, positive)
    return float(np.trapezoid(tpr, fpr))


def sensitivity_at_specificity(scores: np.ndarray, positive: np.ndarray, specificity: float = 0.5) -> float:
    """The seed's figure: the highest TPR among thresholds whose TNR is at least ``specificity``."""
    fpr, tpr = roc(scores, positive)
    ok = (1.0 - fpr) >= specificity
    return float(tpr[ok].max()) if ok.any() else math.nan


def class_rates(y: np.ndarray, pred: np.ndarray, classes: tuple[str, ...]) -> dict[str, dict]:
    """Per class: TPR (recall, per true class), TNR (specificity), precision (per predicted class), F1, n."""
    rates = {}
    for k, name in enumerate(classes):
        tp = int(((pred == k) & (y == k)).sum())
        fn = int(((pred != k) & (y == k)).sum())
        fp = int(((pred == k) & (y != k)).sum())
        tn = int(((pred != k) & (y != k)).sum())
        tpr = tp / (tp + fn) if tp + fn else math.nan
        precision = tp / (tp + fp) if tp + fp else math.nan
        f1 = 2 * tpr * precision / (tpr + precision) if tpr + precision > 0 else math.nan
        rates[name] = {"n": tp + fn, "tpr_recall": tpr, "tpr_ci95": wilson(tp, tp + fn),
                       "tnr_specificity": tn / (tn + fp) if tn + fp else math.nan,
                       "precision": precision, "precision_ci95": wilson(tp, tp + fp), "f1": f1}
    return rates


def confusion(y: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    return np.bincount(y * n + pred, minlength=n * n).reshape(n, n)


@dataclass
class CellTable:
    """One row per cell: true class, mean spike probabilities (seed's rule), spikes, UDI."""

    names: np.ndarray
    y: np.ndarray
    mean_probs: np.ndarray
    n_spikes: np.ndarray
    udi_ms: np.ndarray


def cell_table(data: ws.WindowSet, probs: np.ndarray) -> CellTable:
    names, first, inverse = np.unique(data.cell, return_index=True, return_inverse=True)
    counts = np.bincount(inverse)
    mean = np.stack([np.bincount(inverse, weights=probs[:, k]) / counts for k in range(probs.shape[1])], axis=1)
    return CellTable(names, data.y[first], mean, counts, data.udi_ms[first])


def level_metrics(y: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]) -> dict:
    pred = probs.argmax(axis=1)
    correct = int((pred == y).sum())
    positive = y == 0
    return {"n": len(y), "accuracy": correct / len(y) if len(y) else math.nan,
            "accuracy_ci95": wilson(correct, len(y)),
            "auc": auc(probs[:, 0], positive) if len(classes) == 2 else
            float(np.nanmean([auc(probs[:, k], y == k) for k in range(len(classes))])),
            "sensitivity_at_specificity_0.5": sensitivity_at_specificity(probs[:, 0], positive),
            "classes": class_rates(y, pred, classes),
            "confusion_true_by_predicted": confusion(y, pred, len(classes)).tolist()}


def udi_bins(cells: CellTable, classes: tuple[str, ...]) -> list[dict]:
    rows = []
    known = np.isfinite(cells.udi_ms)
    pred = cells.mean_probs.argmax(axis=1)
    for k, name in enumerate(classes):
        for low, high in zip(UDI_BINS_MS[:-1], UDI_BINS_MS[1:]):
            mask = known & (cells.y == k) & (cells.udi_ms >= low) & (cells.udi_ms < high)
            n, correct = int(mask.sum()), int((pred[mask] == k).sum())
            if n:
                rows.append({"class": name, "udi_ms": [low, high], "cells": n, "accuracy": correct / n,
                             "accuracy_ci95": wilson(correct, n)})
    return rows


def posterior_metrics(model: Model, data: ws.WindowSet, probs: np.ndarray) -> dict:
    """The running cell posterior over each cell's spikes in recorded order: decisions and calibration."""
    config = model.posterior_config()
    confidence, correct, weights = [], [], []
    final_conf, final_correct, decided, decided_correct, to_decision = [], [], 0, 0, []
    for label, spikes in cell_sequences(data.cell, data.y, probs):
        running = CellPosterior(model.classes, config)
        for p in spikes:
            post = running.update(p)
            confidence.append(post.max())
            correct.append(post.argmax() == label)
        weights += [1.0 / len(spikes)] * len(spikes)
        final_conf.append(confidence[-1])
        final_correct.append(correct[-1])
        if running.decision != UNDECIDED:
            decided += 1
            decided_correct += running.decision == model.classes[label]
            to_decision.append(running.spikes_to_decision)
    n = len(final_conf)
    return {"alpha": config.alpha, "beta": config.beta, "threshold": config.threshold,
            "min_spikes": config.min_spikes, "cells": n, "decided": decided, "undecided": n - decided,
            "decided_accuracy": decided_correct / decided if decided else math.nan,
            "decided_accuracy_ci95": wilson(decided_correct, decided),
            "final_argmax_accuracy": float(np.mean(final_correct)),
            "median_spikes_to_decision": float(np.median(to_decision)) if to_decision else math.nan,
            "ece_every_spike": expected_calibration_error(np.array(confidence), np.array(correct, float),
                                                          np.array(weights)),
            "ece_final": expected_calibration_error(np.array(final_conf), np.array(final_correct, float))}


def align(model: Model, data: ws.WindowSet) -> ws.WindowSet:
    """``data`` relabelled in the model's class order; a class the model does not know is an error."""
    unknown = [c for k, c in enumerate(data.classes) if c not in model.classes and (data.y == k).any()]
    if unknown:
        raise RapheError(f"data has classes {unknown} that the model ({'/'.join(model.classes)}) does not know")
    labels = np.asarray(data.classes)[data.y]
    return ws.make(data.X, labels, data.cell, data.day, data.udi_ms, model.classes)


def model_files(path: str | Path) -> list[Path]:
    """A model file, or every model (.tflite with its .json) in a folder."""
    path = Path(path)
    if path.is_dir():
        found = sorted(p for p in path.glob("*.tflite") if p.with_suffix(".json").is_file())
        if not found:
            raise RapheError(f"{path}: no raphe model (NAME.tflite + NAME.json) in this folder")
        return found
    return [path]


def evaluate(model_path: str | Path, data: ws.WindowSet, out: str | Path | None = None,
             data_name: str = "") -> dict:
    """Evaluate every model at ``model_path`` on ``data``; write report.md, metrics.json and PNGs to ``out``."""
    models = [Model(p) for p in model_files(model_path)]
    if len(data) == 0:
        raise RapheError("no windows to evaluate")
    float_model = next((m for m in models if m.variant == "float32"), None)
    float_probs = None
    results = {}
    for model in models:
        aligned = align(model, data)
        probs = model.predict(aligned.X)
        cells = cell_table(aligned, probs)
        result = {"model": model.path.name, "variant": model.variant, "classes": list(model.classes),
                  "spike": level_metrics(aligned.y, probs, model.classes),
                  "cell": level_metrics(cells.y, cells.mean_probs, model.classes),
                  "udi_bins": udi_bins(cells, model.classes),
                  "posterior": posterior_metrics(model, aligned, probs)}
        atypical = np.isfinite(cells.udi_ms) & (cells.y == 0) & (cells.udi_ms < ATYPICAL_UDI_MS)
        if model.classes[0] == "SER" and atypical.any():
            correct = int((cells.mean_probs[atypical].argmax(axis=1) == 0).sum())
            result["atypical_ser_cells"] = {"n": int(atypical.sum()), "recognised": correct / int(atypical.sum()),
                                            "ci95": wilson(correct, int(atypical.sum()))}
        if model is float_model:
            float_probs = probs
        results[model.path.name] = (result, probs, cells, aligned)
    for name, (result, probs, _, _) in results.items():
        if float_probs is not None:
            result["agreement_with_float32"] = float((probs.argmax(1) == float_probs.argmax(1)).mean())
            result["max_abs_difference_from_float32"] = float(np.abs(probs - float_probs).max())
    summary = {"data": data_name or repr(data), "windows": len(data), "cells": int(len(np.unique(data.cell))),
               "days": sorted(np.unique(data.day).tolist()),
               "models": {name: r for name, (r, _, _, _) in results.items()}}
    if out is not None:
        write_report(Path(out), summary, results)
    return summary


def write_report(out: Path, summary: dict, results: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    from . import figures

    for name, (result, probs, cells, aligned) in results.items():
        stem = Path(name).stem
        figures.confusion_png(out / f"{stem}-confusion.png", result, aligned.classes)
        figures.roc_png(out / f"{stem}-roc.png", aligned.y, probs, cells, aligned.classes)
    with staged(out / "metrics.json") as partial:
        partial.write_text(json.dumps(json_safe(summary), indent=2) + "\n")
    with staged(out / "report.md") as partial:
        partial.write_text(markdown(summary))


def json_safe(value):
    """Plain JSON: numpy scalars as numbers, NaN as null, tuples as lists."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _ci(ci) -> str:
    low, high = ci
    return "" if math.isnan(low) else f" [{100 * low:.1f}, {100 * high:.1f}]"


def markdown(summary: dict) -> str:
    lines = [f"# Evaluation: {summary['data']}", "",
             f"{summary['windows']} windows from {summary['cells']} cells over {len(summary['days'])} day(s) "
             f"({', '.join(summary['days'][:12])}{', ...' if len(summary['days']) > 12 else ''}).", "",
             "Cell decision in the tables: the seed's rule (class of the largest mean spike probability). Rates per true class "
             "are TPR (recall) and TNR (specificity); precision is per predicted class. Brackets: 95% Wilson "
             "intervals.", ""]
    for name, r in summary["models"].items():
        s, c = r["spike"], r["cell"]
        lines += [f"## {name} ({r['variant']})", "",
                  "| level | n | accuracy | AUC | sensitivity at specificity 0.5 |", "|---|---|---|---|---|",
                  f"| spike | {s['n']} | {_pct(s['accuracy'])} | {s['auc']:.4f} | {_pct(s['sensitivity_at_specificity_0.5'])} |",
                  f"| cell | {c['n']} | {_pct(c['accuracy'])}{_ci(c['accuracy_ci95'])} | {c['auc']:.4f} | "
                  f"{_pct(c['sensitivity_at_specificity_0.5'])} |", ""]
        lines += ["| class | level | n | TPR (recall) | TNR (specificity) | precision | F1 |", "|---|---|---|---|---|---|---|"]
        for level, m in (("spike", s), ("cell", c)):
            for cls, v in m["classes"].items():
                ci = _ci(v["tpr_ci95"]) if level == "cell" else ""
                pci = _ci(v["precision_ci95"]) if level == "cell" else ""
                lines.append(f"| {cls} | {level} | {v['n']} | {_pct(v['tpr_recall'])}{ci} | "
                             f"{_pct(v['tnr_specificity'])} | {_pct(v['precision'])}{pci} | {_pct(v['f1'])} |")
        lines.append("")
        if "atypical_ser_cells" in r:
            a = r["atypical_ser_cells"]
            lines += [f"Atypical SER cells (UDI < 0.9 ms): {a['n']}, recognised {_pct(a['recognised'])}{_ci(a['ci95'])}.", ""]
        if r["udi_bins"]:
            lines += ["| class | UDI (ms) | cells | cell accuracy |", "|---|---|---|---|"]
            for b in r["udi_bins"]:
                low, high = b["udi_ms"]
                lines.append(f"| {b['class']} | {low:g}-{'' if math.isinf(high) else f'{high:g}'} | {b['cells']} | "
                             f"{_pct(b['accuracy'])}{_ci(b['accuracy_ci95'])} |")
            lines.append("")
        q = r["posterior"]
        lines += [f"Running cell posterior (alpha {q['alpha']:.4f}, beta {q['beta']:.4f}; decision at "
                  f"{q['threshold']} after at least {q['min_spikes']} spikes): {q['decided']} of {q['cells']} cells "
                  f"decided, {_pct(q['decided_accuracy'])}{_ci(q['decided_accuracy_ci95'])} of them correctly, "
                  f"median {q['median_spikes_to_decision']:g} spikes to the decision; {q['undecided']} undecided. "
                  f"Expected calibration error {q['ece_every_spike']:.4f} over every spike (cells weighted "
                  f"equally), {q['ece_final']:.4f} at each cell's last spike; the class with the largest final "
                  f"posterior is right for {_pct(q['final_argmax_accuracy'])} of cells.", ""]
        if "agreement_with_float32" in r:
            lines += [f"Agreement with the float32 model: {100 * r['agreement_with_float32']:.2f}% of windows "
                      f"(largest probability difference {r['max_abs_difference_from_float32']:.4f}).", ""]
        lines += [f"Figures: `{Path(name).stem}-confusion.png`, `{Path(name).stem}-roc.png`.", ""]
    return "\n".join(lines)
