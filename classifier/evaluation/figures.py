"""PNG figures of an evaluation: confusion matrices and ROC curves (matplotlib, no screen needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)
import numpy as np  # noqa: E402

from .metrics import CellTable, roc  # noqa: E402


def confusion_png(path: Path, result: dict, classes: tuple[str, ...]) -> None:
    """Spike- and cell-level confusion matrices: counts, and the share of each true class (row)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, level in zip(axes, ("spike", "cell")):
        counts = np.array(result[level]["confusion_true_by_predicted"])
        share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, f"{counts[i, j]}\n{100 * share[i, j]:.1f}%", ha="center", va="center",
                        color="white" if share[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(classes)), classes)
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{level} level (rows: share of true class)")
    fig.suptitle(result["model"])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def roc_png(path: Path, y: np.ndarray, probs: np.ndarray, cells: CellTable, classes: tuple[str, ...]) -> None:
    """ROC of the first class against the rest, per spike and per cell (mean spike probability)."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for label, scores, positive in (("spike", probs[:, 0], y == 0), ("cell", cells.mean_probs[:, 0], cells.y == 0)):
        fpr, tpr = roc(scores, positive)
        ax.plot(fpr, tpr, label=f"{label} ({positive.sum()} {classes[0]}, {(~positive).sum()} other)")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
    ax.set_xlabel("false positive rate (1 - TNR)")
    ax.set_ylabel(f"true positive rate ({classes[0]})")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
