"""`raphe classify`: whole files and folders of `.abf`, offline, through the live service's code.

A file that cannot be read gets one line on stderr and the others go on; a file with no channel in
pA (cell-attached current) is skipped with one line unless channels are named.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from raphe.classifier.posterior import PosteriorConfig, top_class
from raphe.classifier.runtime import Model
from raphe.errors import RapheError
from raphe.replay import Recording
from raphe.replay.offline import classify_recording
from raphe.staged import staged

CURRENT_UNITS = ("pA",)
CSV_COLUMNS = ["recording", "stream", "channel_num", "channel_name", "recorded_s", "n_spikes", "rate_hz",
               "decision", "spikes_to_decision"]


@dataclass
class ClassifyResult:
    rows: list[dict] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    samples: int = 0


def abf_files(paths: list[str]) -> list[Path]:
    """Files as given, folders searched recursively for .abf (any case), in a stable order."""
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if p.suffix.lower() == ".abf" and p.is_file())
        else:
            found.append(item)
    return found


def classify_paths(paths: list[str], model: Model, detector_settings: dict, posterior: PosteriorConfig,
                   channels: list[str] | None = None, on_row=None, console: Console | None = None) -> ClassifyResult:
    """Classify every cell of every file; ``on_row`` gets each cell's row as soon as its file is done."""
    console = console or Console(stderr=True)
    config = model.detector_config(**detector_settings)
    files = abf_files(paths)
    if not files:
        raise RapheError(f"no .abf files in {', '.join(paths)}")
    result = ClassifyResult()
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=console, disable=not console.is_terminal, transient=True)
    with progress:
        task = progress.add_task("classifying", total=len(files))
        for path in files:
            progress.update(task, description=path.name)
            try:
                recording = Recording(path)
                chosen = recording.select(channels) if channels else [
                    c for c in recording.channels if c.units in CURRENT_UNITS]
                if not chosen:
                    units = ", ".join(sorted({c.units for c in recording.channels}))
                    console.print(f"raphe classify: {path}: skipped, no channel in pA (it has {units}); "
                                  "name channels with --channels", soft_wrap=True, highlight=False, markup=False)
                    result.skipped.append(str(path))
                    continue
                cells, _ = classify_recording(recording, chosen, model, config, posterior)
            except RapheError as exc:
                console.print(f"raphe classify: {exc}", soft_wrap=True, highlight=False, markup=False)
                result.failed.append(str(path))
                continue
            finally:
                progress.advance(task)
            result.samples += recording.total_samples * len(chosen)
            for cell in cells:
                row = {"recording": str(path), **cell.summary()}
                result.rows.append(row)
                if on_row is not None:
                    on_row(row)
    return result


def write_csv(path: str | Path, rows: list[dict], classes: tuple[str, ...]) -> None:
    """One row per cell; posterior and mean spike probability one column per class. Written atomically."""
    columns = CSV_COLUMNS + [f"posterior_{c}" for c in classes] + [f"mean_spike_probability_{c}" for c in classes]
    with staged(path) as partial, partial.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row[c] if row[c] is not None else "" for c in CSV_COLUMNS]
                            + [f"{row['posterior'][c]:.6g}" for c in classes]
                            + [f"{row['mean_spike_probability'][c]:.6g}" for c in classes])


def print_table(rows: list[dict], classes: tuple[str, ...], console: Console) -> None:
    from rich.table import Table

    table = Table(title="raphe classify", title_justify="left")
    for column in ("recording", "channel", "spikes", "rate Hz", "posterior", "decision", "spikes to decision",
                   "mean spike p"):
        table.add_column(column, justify="right" if column in ("spikes", "rate Hz", "spikes to decision") else "left")
    for row in rows:
        table.add_row(Path(row["recording"]).name, f"{row['channel_num']} {row['channel_name']}", str(row["n_spikes"]),
                      f"{row['rate_hz']:.2f}", top_class(classes, [row["posterior"][c] for c in classes]), row["decision"],
                      str(row["spikes_to_decision"] or "-"), top_class(classes, [row["mean_spike_probability"][c] for c in classes]))
    console.print(table)

