"""`raphe classify --out`: the cells as CSV, one row per cell, in file order (the file appears whole
or not at all); the same columns give the API's DataFrame (``raphe.to_dataframe``)."""

from __future__ import annotations

import csv
from pathlib import Path

from raphe.core.staged import staged

COLUMNS = ["recording", "model", "stream", "channel_num", "channel_name", "recorded_s", "n_spikes", "n_novel", "rate_hz",
           "n_isi", "has_evidence", "evidence", "decision", "spikes_to_decision", "seconds_to_decision"]
PARTS = ("waveform", "firing", "joint")


def columns(classes: tuple[str, ...]) -> list[str]:
    """The cell's fields, the deciding posterior, each part's and the mean spike probability one
    column per class, then the reasons and hints."""
    return (COLUMNS + [f"posterior_{c}" for c in classes] + [f"{part}_posterior_{c}" for part in PARTS for c in classes]
            + [f"mean_spike_probability_{c}" for c in classes] + ["reasons", "hints"])


def flat(row: dict, classes: tuple[str, ...]) -> tuple[list, list[float], list[str]]:
    """A row as `classify --json` prints it, in the order of :func:`columns`: its fields, its
    probabilities, its reasons and hints ('; '-joined)."""
    probabilities = ([row["posterior"][c] for c in classes] + [row["parts"][part][c] for part in PARTS for c in classes]
                     + [row["mean_spike_probability"][c] for c in classes])
    return [row[c] for c in COLUMNS], probabilities, ["; ".join(row["reasons"]), "; ".join(row["hints"])]


def write_cells_csv(path: str | Path, rows: list[dict], classes: tuple[str, ...]) -> None:
    """``rows`` as `classify --json` prints them, probabilities to 6 significant digits."""
    with staged(path) as partial, partial.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns(classes))
        for row in rows:
            fields, probabilities, texts = flat(row, classes)
            writer.writerow(["" if v is None else v for v in fields] + [f"{p:.6g}" for p in probabilities] + texts)
