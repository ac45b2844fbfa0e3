"""The cross-generator matrix: every model judged on held-out days of every data source.

A model's fit to cells of its own generator says little about real cells; the figures that matter
are those across sources (another generator, other days). `raphe matrix` writes, for every pair
(trained on, tested on), the cell-level figures with 95% Wilson intervals (``outcomes.figures``),
and the trade-off between cells decided and cells decided wrongly as the decision threshold moves.
With ``evidence``, each model is judged once per kind of evidence (waveform, firing, both), so the
joint posterior can be set beside the waveform's alone on the same cells.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from raphe.classifier.runtime import windows as ws
from raphe.classifier.runtime.cascade import Cascade
from raphe.classifier.runtime.model import Model
from raphe.classifier.runtime.serving import load
from raphe.core.errors import RapheError
from raphe.core.specs import ATYPICAL_UDI_MS
from raphe.core.staged import staged

from .certificate import in_full
from .conflict import conflict_cells
from .outcomes import cell_outcomes, figures, shown, tradeoff
from .report import json_safe

THRESHOLDS = np.r_[0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999, 0.9999]


def judge(model: Model | Cascade, data: ws.WindowSet, evidences: tuple[str | None, ...] = (None,)) -> list[tuple[dict, list[dict]]]:
    """The figures of ``model`` on ``data`` and its trade-off curve, per evidence (None: the model's default)."""
    if any(e in ("firing", "both") for e in evidences) and not data.has_times:
        raise RapheError("judging firing evidence needs spike times (time_s) on every window; "
                         "use `raphe synth` sets or labelled recordings")
    aligned = data.in_classes(model.classes)
    probs = model.predict(aligned.X)
    novel = model.novel(aligned.X)
    judged = []
    for evidence in evidences:
        config = model.posterior_config(evidence=evidence)
        outcomes = cell_outcomes(aligned, probs, novel, config)
        judged.append((figures(outcomes, ATYPICAL_UDI_MS), tradeoff(outcomes, THRESHOLDS, config.min_spikes)))
    return judged


def matrix(models: dict[str, str | Path], data: dict[str, str | Path], out: str | Path | None = None,
           evidences: tuple[str, ...] = (), conflict: bool = False) -> dict:
    """Judge every model (name -> .tflite, or a cascade's .json) on every data set (name -> window set), with each of
    ``evidences`` (default: each model's own), and with ``conflict`` on each set's conflict cells
    too (``evaluation.conflict``); write ``matrix.md``, ``matrix.json`` and ``tradeoff.png`` to ``out``."""
    loaded = {name: load(path) for name, path in models.items()}
    sets = {name: ws.load(path) for name, path in data.items()}
    if conflict:
        if not all(s.has_times for s in sets.values()):
            raise RapheError("conflict cells need spike times (time_s) on every window; use `raphe synth` sets or "
                             "labelled recordings")
        sets.update({f"{name}, conflict cells": conflict_cells(s)[0] for name, s in list(sets.items())})
    result = {"models": {name: {"path": str(m.path), "training": m.metadata.get("training", {}).get("data", ""),
                                "posterior": m.metadata.get("posterior", {})} for name, m in loaded.items()},
              "data": {name: repr(s) for name, s in sets.items()}, "entries": []}
    for model_name, model in loaded.items():
        for data_name, windows in sets.items():
            for evidence, (figs, curve) in zip(evidences or (None,), judge(model, windows, evidences or (None,))):
                name = model_name if evidence is None else f"{model_name} ({evidence})"
                result["entries"].append({"model": name, "data": data_name, "figures": figs, "tradeoff": curve})
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        with staged(out / "matrix.json") as partial:
            partial.write_text(json.dumps(json_safe(result), indent=2) + "\n")
        with staged(out / "matrix.md") as partial:
            partial.write_text(markdown(result))
        tradeoff_png(out / "tradeoff.png", result)
    return result


ROWS = (("cells", None), ("cell accuracy, seed's rule", "cell_accuracy_seed_rule"),
        ("cell accuracy, posterior's most probable class", "cell_accuracy_posterior"),
        ("SER recognised (seed's rule)", "recall_SER_seed_rule"), ("NSER recognised (seed's rule)", "recall_NSER_seed_rule"),
        ("atypical SER recognised (seed's rule)", "atypical_ser_seed_rule"),
        ("atypical SER decided rightly", "atypical_ser_decided_rightly"),
        ("atypical SER decided wrongly at some spike", "atypical_ser_ever_decided_wrongly"),
        ("cells decided", "decided"), ("cells decided wrongly (of all cells)", "decided_wrongly"),
        ("cells decided wrongly at some spike (of all cells)", "ever_decided_wrongly"),
        ("undecided: shape and firing disagree", "shape_and_firing_disagree"),
        ("decisions that are right", "decided_rightly_of_decided"), ("undecided", "undecided"),
        ("not classifiable", "not_classifiable"), ("novel windows", "novel_windows"),
        ("ECE over every spike", "ece_every_spike"), ("median spikes to a decision", "median_spikes_to_decision"),
        ("median recorded seconds to a decision", "median_seconds_to_decision"),
        ("decided within 30 s of recording", "decided_within_30_s"))


def markdown(result: dict) -> str:
    entries = result["entries"]
    lines = ["# Cross-generator matrix", "",
             "Every model on held-out days of every data source. Rates are shares of cells with 95% Wilson "
             "intervals; a decision is the running posterior's (threshold and minimum spikes of each model); "
             "the seed's rule is the class of the largest mean spike probability over all windows.", ""]
    for name, m in result["models"].items():
        lines.append(f"- model **{name}**: `{m['path']}`, trained on {m['training'] or 'unknown data'}; posterior "
                     f"alpha {m['posterior'].get('alpha', float('nan')):.3g}, beta {m['posterior'].get('beta', float('nan')):.3g}"
                     + (f", firing weight {m['posterior']['firing']['weight']:.3g} ({m['posterior']['firing']['model']})"
                        if m['posterior'].get('firing') else ", no firing model")
                     + f" (fitted on {m['posterior'].get('fitted_on', 'its held-out cells')})")
    for name, d in result["data"].items():
        lines.append(f"- data **{name}**: {d}")
    lines += ["", "| figure | " + " | ".join(f"{e['model']} on {e['data']}" for e in entries) + " |",
              "|---|" + "---|" * len(entries)]
    for label, key in ROWS:
        values = []
        for e in entries:
            f = e["figures"]
            if key is None:
                values.append(str(f["cells"]))
            elif key not in f:
                values.append("n/a")
            elif isinstance(f[key], dict):
                values.append(shown(f[key]))
            else:
                v = f[key]
                values.append("n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}")
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    lines += ["", "Certificates, over the whole stopping rule (a class shown at any spike counts; one-sided "
              "Clopper-Pearson):", ""]
    for e in entries:
        lines.append(f"- {e['model']} on {e['data']}: {in_full(e['figures']['certificate'])}")
    lines += ["", "Trade-off (threshold: cells decided / decided wrongly, shares of all cells): `tradeoff.png`.", ""]
    for e in entries:
        points = ", ".join(f"{p['threshold']:g}: {100 * p['decided']:.0f}/{100 * p['decided_wrongly']:.1f}%"
                           for p in e["tradeoff"])
        lines.append(f"- {e['model']} on {e['data']}: {points}")
    return "\n".join(lines) + "\n"


def tradeoff_png(path: Path, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for e in result["entries"]:
        curve = e["tradeoff"]
        ax.plot([100 * p["decided_wrongly"] for p in curve], [100 * p["decided"] for p in curve], marker="o",
                markersize=3, label=f"{e['model']} on {e['data']}")
    ax.axvline(2.0, color="grey", lw=0.5, ls="--")
    ax.set_xlabel("cells decided wrongly, % of all cells")
    ax.set_ylabel("cells decided, % of all cells")
    ax.set_title("decided vs decided wrongly as the decision threshold moves (0.5 ... 0.9999)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with staged(path) as partial:
        fig.savefig(partial, dpi=100, format="png")
    plt.close(fig)
