"""`raphe classify --out`: the cells as CSV, one row per cell, in file order. The file appears whole
or not at all."""

from __future__ import annotations

import csv
from pathlib import Path

from raphe.core.staged import staged

COLUMNS = ["recording", "stream", "channel_num", "channel_name", "recorded_s", "n_spikes", "n_novel", "rate_hz",
           "n_isi", "has_evidence", "evidence", "decision", "spikes_to_decision", "seconds_to_decision"]
PARTS = ("waveform", "firing", "joint")


def write_cells_csv(path: str | Path, rows: list[dict], classes: tuple[str, ...]) -> None:
    """``rows`` as `classify --json` prints them; the deciding posterior, each part's and the mean
    spike probability one column per class, then the reasons and hints ('; '-joined)."""
    columns = (COLUMNS + [f"posterior_{c}" for c in classes]
               + [f"{part}_posterior_{c}" for part in PARTS for c in classes]
               + [f"mean_spike_probability_{c}" for c in classes] + ["reasons", "hints"])
    with staged(path) as partial, partial.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row[c] if row[c] is not None else "" for c in COLUMNS]
                            + [f"{row['posterior'][c]:.6g}" for c in classes]
                            + [f"{row['parts'][part][c]:.6g}" for part in PARTS for c in classes]
                            + [f"{row['mean_spike_probability'][c]:.6g}" for c in classes]
                            + ["; ".join(row["reasons"]), "; ".join(row["hints"])])
