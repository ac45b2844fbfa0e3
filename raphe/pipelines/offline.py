"""The offline path: whole recordings, files and folders, detected and classified without sockets.

The detector, cells and posterior are the live service's, fed blocks read straight from the file,
so a cell ends the same way at the desk as at the rig. A file that cannot be read gets one line on
stderr and the others go on; a file with no channel in pA (cell-attached current) is skipped with
one line unless channels are named.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from raphe.classifier.runtime.cells import Cell
from raphe.classifier.runtime.model import Model
from raphe.classifier.runtime.posterior import PosteriorConfig, top_class
from raphe.core.errors import RapheError
from raphe.core.staged import staged
from raphe.detector.config import DetectorConfig
from raphe.detector.online import Detector, Events
from raphe.replay.player import block_samples
from raphe.replay.recording import Channel, Recording

CURRENT_UNITS = ("pA",)
CSV_COLUMNS = ["recording", "stream", "channel_num", "channel_name", "recorded_s", "n_spikes", "rate_hz",
               "decision", "spikes_to_decision"]


def detect_recording(recording: Recording, channels: list[Channel], config: DetectorConfig,
                     block_ms: float = 1000.0) -> tuple[Events, Detector]:
    """Events of ``channels`` over every sweep, fed in blocks of ``block_ms`` on the file's sample
    counter, so that the pauses between sweeps are gaps to the detector as they are on the wire.
    The events do not depend on the block size (the detector is block-invariant); the default of
    1 s keeps the cost of each call from Python small against the work inside it.
    ``records["channel"]`` is the position in ``channels``."""
    detector = Detector(len(channels), recording.sample_rate, config)
    step = block_samples(recording.sample_rate, block_ms)
    records, windows = [], []
    for sweep in recording.sweeps:
        data = np.stack([sweep.traces[c.num] for c in channels])
        for offset in range(0, sweep.num_samples, step):
            events = detector.process(data[:, offset:offset + step], sweep.sample_num + offset)
            records.append(events.records)
            windows.append(events.windows)
    return Events(np.concatenate(records), np.concatenate(windows)), detector


def classify_recording(recording: Recording, channels: list[Channel], model: Model, config: DetectorConfig,
                       posterior: PosteriorConfig, block_ms: float = 1000.0,
                       keep_history: bool = False) -> tuple[list[Cell], Detector]:
    """One :class:`Cell` per channel, after every spike of the recording, classified in batches.

    The spikes are exactly those a live `raphe serve` finds in a replay of the file (the detector
    gives the same events for any block size), and each cell's posterior takes them in the same order.
    """
    events, detector = detect_recording(recording, channels, config, block_ms)
    probabilities = model.predict(events.windows) if len(events) else np.empty((0, len(model.classes)))
    cells = [Cell(recording.name, c.num, c.name, recording.sample_rate, model.classes, posterior, keep_history)
             for c in channels]
    for cell in cells:
        cell.samples = recording.total_samples
    for record, p, window in zip(events.records, probabilities, events.windows):
        cells[record["channel"]].add_spike(int(record["sample_num"]), p, window)
    return cells, detector


@dataclass
class ClassifyResult:
    """The cells of many files (one row each, as `classify --json` prints them) and what went wrong."""

    classes: tuple[str, ...]
    rows: list[dict] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    samples: int = 0

    def table(self) -> Table:
        """The people's view: one line per cell."""
        table = Table(title="raphe classify", title_justify="left")
        for column in ("recording", "channel", "spikes", "rate Hz", "posterior", "decision", "spikes to decision",
                       "mean spike p"):
            table.add_column(column, justify="right" if column in ("spikes", "rate Hz", "spikes to decision")
                             else "left")
        for row in self.rows:
            posterior = [row["posterior"][c] for c in self.classes]
            mean = [row["mean_spike_probability"][c] for c in self.classes]
            table.add_row(Path(row["recording"]).name, f"{row['channel_num']} {row['channel_name']}",
                          str(row["n_spikes"]), f"{row['rate_hz']:.2f}", top_class(self.classes, posterior),
                          row["decision"], str(row["spikes_to_decision"] or "-"), top_class(self.classes, mean))
        return table

    def write_csv(self, path: str | Path) -> None:
        """One row per cell; posterior and mean spike probability one column per class. Written atomically."""
        columns = (CSV_COLUMNS + [f"posterior_{c}" for c in self.classes]
                   + [f"mean_spike_probability_{c}" for c in self.classes])
        with staged(path) as partial, partial.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for row in self.rows:
                writer.writerow([row[c] if row[c] is not None else "" for c in CSV_COLUMNS]
                                + [f"{row['posterior'][c]:.6g}" for c in self.classes]
                                + [f"{row['mean_spike_probability'][c]:.6g}" for c in self.classes])


def abf_files(paths: list[str | Path]) -> list[Path]:
    """Files as given, folders searched recursively for .abf (any case), in a stable order."""
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if p.suffix.lower() == ".abf" and p.is_file())
        else:
            found.append(item)
    return found


def classify_paths(paths: list[str | Path], model: Model, detector_settings: dict, posterior: PosteriorConfig,
                   channels: list[str] | None = None, on_row=None, console: Console | None = None) -> ClassifyResult:
    """Classify every cell of every file; ``on_row`` gets each cell's row as soon as its file is done.

    Parameters
    ----------
    detector_settings : threshold, adaptive_k, polarity, refractory_ms (see DetectorConfig); the
        window is the model's.
    channels : channel indices or names to classify (default: every channel in pA).
    console : where progress and per-file lines go (default stderr).
    """
    console = console or Console(stderr=True)
    config = DetectorConfig(window=model.window, **detector_settings)
    files = abf_files(paths)
    if not files:
        raise RapheError(f"no .abf files in {', '.join(map(str, paths))}")
    result = ClassifyResult(model.classes)
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
