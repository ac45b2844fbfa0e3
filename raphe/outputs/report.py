"""`raphe classify --report-dir DIR`: why each cell ended as it did, one figure per cell; its panels
also draw the demo's figure.

Four panels per cell (``DIR/<recording>-<channel>.png``), under a title with its decision and the
reasons (or hints) behind it:

1. the mean of the windows the posterior took, against the class-average windows of the model's
   calibration cells (each scaled to the cell's own depth: the network sees shape, not size), and
   beside them the mean of the windows rejected as novel; shaded by an occlusion
   saliency computed with the model itself: each stretch of ``OCCLUDED_POINTS`` points of up to
   ``SALIENCY_WINDOWS`` of the cell's windows is replaced by a straight line between its ends, and
   the drop in the log-odds of the cell's leading class says how much that part of the spike drove
   the call;
2. the saliency itself, per point;
3. the inter-spike intervals the firing model read (its last ones; the web view shows the same)
   against the classes' textbook ranges (SER 0.5-3 Hz, NSER 3-20 Hz);
4. each evidence stream's posterior of the first class over the recorded time: joint, waveform
   alone, firing alone, with the decision threshold.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from raphe.classifier.runtime.cells import Cell, CellState
from raphe.classifier.runtime.model import Model
from raphe.core.staged import staged

OCCLUDED_POINTS = 16
# Interval histogram bins (s), log-spaced: the report's and the web view's.
ISI_EDGES = np.logspace(np.log10(0.004), np.log10(10.0), 41)
OCCLUSION_STEP = 4
SALIENCY_WINDOWS = 32
# the textbook's firing ranges, as intervals (s): SER 0.5-3 Hz, NSER 3-20 Hz
CLASS_ISI_RANGES = {"SER": (1 / 3.0, 1 / 0.5), "NSER": (1 / 20.0, 1 / 3.0)}


def log_odds(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), within what float32 probabilities can tell apart from 0 and 1."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def occlusion_saliency(model: Model, windows: np.ndarray, target: int) -> np.ndarray:
    """Per point, the mean drop in the log-odds of ``target`` when the stretch around it is occluded
    (averaged over the stretches that cover it and over ``windows``): log-odds, not log p, so that
    a confident call still shows what it rests on."""
    windows = np.asarray(windows, dtype=np.float32)[:SALIENCY_WINDOWS]
    n = windows.shape[1]
    starts = list(range(0, n - OCCLUDED_POINTS + 1, OCCLUSION_STEP))
    occluded = np.repeat(windows[:, None, :], len(starts), axis=1)
    for k, s in enumerate(starts):
        e = s + OCCLUDED_POINTS - 1
        line = np.linspace(windows[:, s], windows[:, e], OCCLUDED_POINTS, axis=1)
        occluded[:, k, s:e + 1] = line
    base = log_odds(model.predict(windows)[:, target])
    probs = model.predict(occluded.reshape(-1, n)).reshape(len(windows), len(starts), -1)[:, :, target]
    drop = (base[:, None] - log_odds(probs)).mean(axis=0)
    saliency, cover = np.zeros(n), np.zeros(n)
    for k, s in enumerate(starts):
        saliency[s:s + OCCLUDED_POINTS] += drop[k]
        cover[s:s + OCCLUDED_POINTS] += 1
    return saliency / np.maximum(cover, 1)


def scaled_class_means(model: Model, mean_window: np.ndarray) -> dict[str, np.ndarray]:
    """The model's class-average windows (stored normalised) at the cell's own baseline and spread."""
    stored = model.metadata.get("class_means", {}).get("windows", {})
    centre, spread = float(mean_window.mean()), float(mean_window.std()) or 1.0
    return {c: np.asarray(w) * spread + centre for c, w in stored.items()}


def draw_shape(ax, cell: Cell, windows: np.ndarray, model: Model) -> np.ndarray | None:
    """The mean of the windows the posterior took against the class averages, shaded by the saliency
    of ``windows``, and the mean of the novel ones; returns the saliency (None without windows taken)."""
    t_ms = model.window.time_ms()
    mean, novel = cell.mean_window, cell.novel_mean_window
    if novel is not None:
        ax.plot(t_ms, novel, color="tab:grey", lw=1, ls=":", label=f"rejected as novel ({cell.n_novel})")
    if mean is None:
        if novel is not None:
            ax.legend(fontsize=7)
        return None
    for name, w in scaled_class_means(model, mean).items():
        ax.plot(t_ms, w, lw=1, ls="--", label=f"{name} average")
    ax.plot(t_ms, mean, color="black", lw=1.5, label=f"this cell ({cell.n_spikes - cell.n_novel})")
    saliency = None
    if len(windows):
        saliency = occlusion_saliency(model, windows, int(np.argmax(cell.posterior.posterior)))
        top = max(float(saliency.max()), 1e-9)
        for i in range(len(t_ms) - 1):
            if saliency[i] > 0:
                ax.axvspan(t_ms[i], t_ms[i + 1], color="tab:red", alpha=0.35 * saliency[i] / top, lw=0)
    ax.set_ylabel("pA")
    ax.legend(fontsize=7)
    return saliency


def draw_intervals(ax, cell: Cell) -> None:
    """The intervals the firing model read against the classes' textbook ranges."""
    isi = cell.train.recent_intervals()
    for name, (low, high) in CLASS_ISI_RANGES.items():
        if name in cell.classes:
            ax.axvspan(low, high, alpha=0.15, color="tab:blue" if name == "SER" else "tab:orange",
                       label=f"{name} textbook range")
    if len(isi):
        ax.hist(np.clip(isi, ISI_EDGES[0], ISI_EDGES[-1]), bins=ISI_EDGES, color="black", alpha=0.7,
                label=f"{len(isi)} intervals")
    ax.set_xscale("log")
    ax.legend(fontsize=7)


def draw_posteriors(ax, cell: Cell) -> None:
    """Each evidence stream's posterior of the first class over the recorded time."""
    if cell.history:
        seconds = (np.array([s for s, _ in cell.history]) - cell.origin) / cell.sample_rate
        for part, style in (("joint", "-"), ("waveform", "--"), ("firing", ":")):
            ax.step(seconds, [p[part][0] for _, p in cell.history], where="post", ls=style, label=part)
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no evidence: no window moved the posterior", ha="center", va="center",
                transform=ax.transAxes, fontsize=8)
    threshold = cell.posterior.config.threshold
    ax.axhline(threshold, color="grey", lw=0.5, ls="--")
    ax.axhline(1 - threshold, color="grey", lw=0.5, ls="--")
    ax.set_ylim(-0.02, 1.02)


def headline(state: CellState) -> str:
    """The figure's title: the decision, the counts, and why (wrapped to the figure)."""
    title = (f"{state.cell} ({state.channel_name}): {state.decision}; {state.n_spikes} spikes, {state.n_novel} novel, "
             f"{state.rate_hz:.2f} Hz; posterior {state.top}; evidence {state.evidence}")
    if state.explanation:
        title += "\n" + "\n".join(textwrap.wrap(("not classifiable: " if state.reasons else "") + state.explanation,
                                                 150))
    return title


def write_cell_report(path: Path, cell: Cell, state: CellState, windows: np.ndarray, model: Model) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 6.8))
    shape, sal, isi_ax, post = axes.flat
    leading = cell.classes[int(np.argmax(cell.posterior.posterior))]
    fig.suptitle(headline(state), fontsize=9)
    saliency = draw_shape(shape, cell, windows, model)
    if saliency is not None:
        sal.plot(model.window.time_ms(), saliency, color="tab:red")
        sal.axhline(0, color="grey", lw=0.5)
    shape.set_title("mean window against the class averages (red: what drove the call)", fontsize=9)
    shape.set_xlabel("ms from the threshold crossing")
    sal.set_title(f"occlusion saliency: drop in the log-odds of {leading} when occluded", fontsize=9)
    sal.set_xlabel("ms from the threshold crossing")
    draw_intervals(isi_ax, cell)
    isi_ax.set_title("inter-spike intervals the firing model read", fontsize=9)
    isi_ax.set_xlabel("s")
    draw_posteriors(post, cell)
    post.set_title(f"P({cell.classes[0]}) over time, per evidence stream", fontsize=9)
    post.set_xlabel("recorded s")
    fig.tight_layout()
    with staged(path) as partial:
        fig.savefig(partial, dpi=80, format="png")
    plt.close(fig)


def write_reports(folder: Path, recording, classified, model: Model) -> list[Path]:
    """One figure per cell of a classified recording (``raphe.pipelines.offline.Classified``);
    returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    records = classified.events.records
    written = []
    for k, (cell, state) in enumerate(zip(classified.cells, classified.states)):
        mine = (records["channel"] == k) & ~classified.novel  # the windows the posterior took
        path = folder / f"{recording.name}-{cell.channel_num}.png"
        write_cell_report(path, cell, state, classified.events.windows[mine], model)
        written.append(path)
    return written
