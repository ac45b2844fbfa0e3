"""The evaluation report as markdown, and its metrics as plain JSON."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from raphe.core.specs import ATYPICAL_UDI_MS

from .certificate import in_full


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


def _level(x: float | None) -> bool:
    """Whether a posterior's level is set (null and infinity are none)."""
    return x is not None and math.isfinite(x)


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
            lines += [f"Atypical SER cells (UDI < {ATYPICAL_UDI_MS:g} ms): {a['n']}, recognised {_pct(a['recognised'])}{_ci(a['ci95'])}.", ""]
        if r["udi_bins"]:
            lines += ["| class | UDI (ms) | cells | cell accuracy |", "|---|---|---|---|"]
            for b in r["udi_bins"]:
                low, high = b["udi_ms"]
                lines.append(f"| {b['class']} | {low:g}-{'' if math.isinf(high) else f'{high:g}'} | {b['cells']} | "
                             f"{_pct(b['accuracy'])}{_ci(b['accuracy_ci95'])} |")
            lines.append("")
        q = r["posterior"]
        joint = (f"; evidence {q['evidence']}, firing weight {q['firing_weight']:.3g}" if q.get("evidence", "waveform")
                 != "waveform" else "; waveform evidence alone")
        thresholds = ", ".join(f"{c} {t:g}" for c, t in q["thresholds"].items())
        cap = "" if not _level(q["waveform_cap"]) else f", waveform capped at {q['waveform_cap']:g} log-odds"
        conflict = ("" if not _level(q["conflict"]) else f"; undecided where shape and firing disagree beyond "
                    f"{q['conflict']:g} log-odds each ({q['shape_and_firing_disagree']} cells at the end)")
        lines += [f"Running cell posterior (alpha {q['alpha']:.4f}, beta {q['beta']:.4f}{cap}{joint}{conflict}; "
                  f"decision at {thresholds} after at least {q['min_spikes']} spikes): {q['decided']} of {q['cells']} cells "
                  f"decided, {_pct(q['decided_accuracy'])}{_ci(q['decided_accuracy_ci95'])} of them correctly, "
                  f"median {q['median_spikes_to_decision']:g} spikes to the decision; {q['undecided']} undecided, "
                  f"{q['not_classifiable']} not classifiable ({q['novel_windows']} of {q['windows']} windows novel). "
                  f"Expected calibration error {q['ece_every_spike']:.4f} over every spike (cells weighted "
                  f"equally), {q['ece_final']:.4f} at each cell's last spike; the class with the largest final "
                  f"posterior is right for {_pct(q['final_argmax_accuracy'])} of cells.", "",
                  f"Certificate, over the whole stopping rule (a class shown at any spike counts): "
                  f"{in_full(q['certificate'])}.", ""]
        if "agreement_with_float32" in r:
            lines += [f"Agreement with the float32 model: {100 * r['agreement_with_float32']:.2f}% of windows "
                      f"(largest probability difference {r['max_abs_difference_from_float32']:.4f}).", ""]
        lines += [f"Figures: `{Path(name).stem}-confusion.png`, `{Path(name).stem}-roc.png`.", ""]
    return "\n".join(lines)
