"""`raphe evaluate`: spike- and cell-level figures of a model on labelled windows, with a report.

The cell decision in the tables is the seed's rule: the class with the largest mean spike
probability; the running posterior is reported after them (see ``metrics``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from raphe.classifier.runtime import windows as ws
from raphe.classifier.runtime.model import Model, model_files
from raphe.core.errors import RapheError
from raphe.core.specs import ATYPICAL_UDI_MS
from raphe.core.staged import staged

from . import figures
from .metrics import cell_table, level_metrics, udi_bins, wilson
from .outcomes import cell_outcomes, judged_config, posterior_summary
from .report import json_safe, markdown


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
        aligned = data.in_classes(model.classes)
        probs = model.predict(aligned.X)
        cells = cell_table(aligned, probs)
        config = judged_config(aligned, model.posterior_config())
        result = {"model": model.path.name, "variant": model.variant, "classes": list(model.classes),
                  "spike": level_metrics(aligned.y, probs, model.classes),
                  "cell": level_metrics(cells.y, cells.mean_probs, model.classes),
                  "udi_bins": udi_bins(cells, model.classes),
                  "posterior": posterior_summary(cell_outcomes(aligned, probs, model.novel(aligned.X), config), config)}
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
    for name, (result, probs, cells, aligned) in results.items():
        stem = Path(name).stem
        figures.confusion_png(out / f"{stem}-confusion.png", result, aligned.classes)
        figures.roc_png(out / f"{stem}-roc.png", aligned.y, probs, cells, aligned.classes)
    with staged(out / "metrics.json") as partial:
        partial.write_text(json.dumps(json_safe(summary), indent=2) + "\n")
    with staged(out / "report.md") as partial:
        partial.write_text(markdown(summary))
