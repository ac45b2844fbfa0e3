"""Labelled recordings to window sets: a lab's identified cells, as training and evaluation read them.

Two ways to say which recording is which cell:

- a folder of class folders, ``ROOT/CLASS/**/*.abf``: each file one cell of the folder's class;
- a CSV manifest with the columns ``file, label`` and optionally ``channel, day, start_s, stop_s,
  exclude, udi_ms`` (``file`` relative to the manifest's folder; ``exclude`` true/1/yes leaves the
  row out; other columns are ignored, so a `raphe synth` manifest is one). A manifest names only
  recordings in its folder and below, and one recording's channel under one label; a row repeated
  exactly (as when manifests are joined) is used once, with a warning.

Each recording goes through the detector with the rule the runtime uses (the seed's: −50 pA,
1 ms before and 3 ms after the crossing, 160 points on the 40 kHz grid), so training sees exactly
what `raphe serve` and `raphe classify` will see; a channel that fails the runtime's signal checks
(not cell-attached current of a firing cell) is left out with its reasons. A cell is named by its file (relative to the root)
and channel, so that cell and file identity travel with every window; its day is the manifest's,
else the file's recording date, else unknown (then splits are by cell).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raphe.classifier.runtime import windows as ws
from raphe.core.errors import RapheError
from raphe.detector.config import DetectorConfig
from raphe.replay.recording import RECORDING_SUFFIXES, Channel, Recording

from .offline import CURRENT_UNITS, detect_recording

MANIFEST_REQUIRED = ("file", "label")
MANIFEST_OPTIONAL = ("channel", "day", "start_s", "stop_s", "exclude", "udi_ms")
TRUE_WORDS = ("1", "true", "yes", "y", "x")


@dataclass(frozen=True)
class Entry:
    """One labelled cell: a recording's channel (None: its one current channel), a class, a day if
    known, and the part of the recording to use (seconds from its first sample)."""

    path: Path
    label: str
    name: str
    channel: str | None = None
    day: str | None = None
    start_s: float = 0.0
    stop_s: float = float("inf")
    udi_ms: float = float("nan")


def is_labelled_folder(path: Path) -> bool:
    """A folder of class folders that hold recordings (and no ``windows.npz``: that is a `synth` folder)."""
    if not path.is_dir() or (path / "windows.npz").exists():
        return False
    return any(p.suffix.lower() in RECORDING_SUFFIXES for d in path.iterdir() if d.is_dir() for p in d.rglob("*"))


def folder_entries(root: Path, channel: str | None = None) -> list[Entry]:
    """``ROOT/CLASS/**/*`` recordings (``RECORDING_SUFFIXES``), one cell each, in a stable order."""
    entries = []
    for class_dir in sorted(d for d in root.iterdir() if d.is_dir()):
        for path in sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in RECORDING_SUFFIXES):
            entries.append(Entry(path, class_dir.name, path.relative_to(root).with_suffix("").as_posix(), channel))
    if not entries:
        raise RapheError(f"{root}: no class folder holds a recording ({', '.join(RECORDING_SUFFIXES)})")
    return entries


def read_manifest(path: Path, channel: str | None = None) -> tuple[list[Entry], list[str]]:
    """The rows of a manifest, checked, and warnings worth a line each. One line naming the row and
    the problem for a bad one: unreadable values, a recording outside the manifest's folder, one
    recording's channel under two labels or described twice differently. A row repeated exactly is
    used once, with a warning: it says nothing new, and counting it twice would weigh one cell as two.
    ``channel`` is the cell's channel where a row names none."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in reader.fieldnames or []]
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RapheError(f"{path}: not a readable CSV manifest ({exc})") from None
    missing = [c for c in MANIFEST_REQUIRED if c not in columns]
    if not rows or missing:
        raise RapheError(f"{path}: a manifest needs the columns {', '.join(MANIFEST_REQUIRED)} "
                         f"(optional: {', '.join(MANIFEST_OPTIONAL)}); {'missing ' + ', '.join(missing) if missing else 'no rows'}")
    folder = Path(os.path.normpath(path.parent.absolute()))
    entries, warnings = [], []
    seen: dict[tuple, tuple[int, Entry]] = {}  # (file, channel, span) -> its first row's line and entry
    labels: dict[tuple, tuple[int, str]] = {}  # (file, channel) -> the first line naming it and its label
    for line, raw in enumerate(rows, start=2):
        if None in raw:
            raise RapheError(f"{path}, line {line}: more fields than the header has columns (a comma in a value "
                             "needs quotes)")
        row = {k.strip(): (v or "").strip() for k, v in raw.items()}
        if row.get("exclude", "").lower() in TRUE_WORDS:
            continue
        if not row["file"] or not row["label"]:
            raise RapheError(f"{path}, line {line}: file and label must not be empty")
        # lexically, so that a lab's symbolic links inside the folder stay allowed
        file = Path(os.path.normpath(folder / row["file"]))
        if not file.is_relative_to(folder):
            raise RapheError(f"{path}, line {line}: {row['file']} lies outside the manifest's folder {folder} "
                             "(a manifest names the recordings beside it or below)")
        if not file.is_file():
            raise RapheError(f"{path}, line {line}: no such recording {row['file']}")
        try:
            start = float(row.get("start_s") or 0.0)
            stop = float(row.get("stop_s") or "inf")
            udi = float(row.get("udi_ms") or "nan")
        except ValueError:
            raise RapheError(f"{path}, line {line}: start_s, stop_s and udi_ms must be numbers") from None
        if not 0 <= start < stop:
            raise RapheError(f"{path}, line {line}: start_s must be ≥ 0 and before stop_s")
        cell_channel = row.get("channel") or channel
        name = file.relative_to(folder).with_suffix("").as_posix() + (f"@{start:g}-{stop:g}s" if row.get("start_s") or row.get("stop_s") else "")
        entry = Entry(file, row["label"], name, cell_channel, row.get("day") or None, start, stop, udi)
        recording = (file, cell_channel)
        first_line, first_label = labels.setdefault(recording, (line, entry.label))
        if first_label != entry.label:
            raise RapheError(f"{path}, line {line}: {row['file']} (channel {cell_channel or 'its one'}) is labelled "
                             f"{entry.label} here and {first_label} on line {first_line}; one recording, one class")
        if (recording, start, stop) in seen:
            first_line, first = seen[(recording, start, stop)]
            if not same_entry(first, entry):
                raise RapheError(f"{path}, line {line}: {row['file']} is described again, differently from line "
                                 f"{first_line} (day or udi_ms); keep one row")
            warnings.append(f"{path}, line {line}: the same row as line {first_line}; used once")
            continue
        seen[(recording, start, stop)] = (line, entry)
        entries.append(entry)
    if not entries:
        raise RapheError(f"{path}: every row is excluded")
    return entries, warnings


def same_entry(a: Entry, b: Entry) -> bool:
    """Whether two rows say the same (NaN, an unknown UDI, equal to itself)."""
    return (a.day, a.label) == (b.day, b.label) and (a.udi_ms == b.udi_ms or (a.udi_ms != a.udi_ms and b.udi_ms != b.udi_ms))


def recording_day(recording: Recording) -> str:
    return recording.recorded_on or ws.UNKNOWN_DAY


def current_channel(recording: Recording, wanted: str | None) -> Channel:
    """The named channel, or the recording's one channel in pA (a choice to make when it has several)."""
    if wanted is not None:
        return recording.select([wanted])[0]
    current = [c for c in recording.channels if c.units in CURRENT_UNITS]
    if len(current) != 1:
        held = ", ".join(f"{c.num}={c.name} ({c.units})" for c in recording.channels)
        raise RapheError(f"{recording.path}: {len(current)} channels in pA, so the cell's channel must be named "
                         f"(--channels, or the manifest's channel column); it holds {held}")
    return current[0]


def entry_windows(entry: Entry, config: DetectorConfig) -> tuple[np.ndarray, np.ndarray, str, str, list[str]]:
    """The windows of one labelled cell, their times (s from the entry's start), its cell
    name, its day, and the reasons its channel is not cell-attached current of a firing cell (the
    runtime's signal checks; empty if it is)."""
    recording = Recording(entry.path)
    channel = current_channel(recording, entry.channel)
    events, rows = detect_recording(recording, [channel], config)
    first = recording.sweeps[0].sample_num
    seconds = (events.records["sample_num"] - first) / recording.sample_rate
    keep = (seconds >= entry.start_s) & (seconds < entry.stop_s)
    cell = f"{entry.name}:{channel.num}"
    return (events.windows[keep], seconds[keep] - entry.start_s, cell, entry.day or recording_day(recording),
            rows.checks.reasons(0))


def load_labelled(path: Path, channel: str | None = None,
                  config: DetectorConfig | None = None) -> tuple[ws.WindowSet, list[str]]:
    """The window set of a labelled folder or manifest, and warnings worth a line each (cells that
    gave no window, classes with too few cells or days to judge a model by)."""
    entries, warnings = read_manifest(path, channel) if path.suffix.lower() == ".csv" or not path.is_dir() \
        else (folder_entries(path, channel), [])
    config = config or DetectorConfig()
    X, times, labels, cells, days, udi = [], [], [], [], [], []
    for entry in entries:
        windows, seconds, cell, day, reasons = entry_windows(entry, config)
        if reasons:
            # a channel the runtime would call not classifiable must not teach the model either
            warnings.append(f"{cell}: left out, not cell-attached current of a firing cell ({'; '.join(reasons)})")
            continue
        if not len(windows):
            warnings.append(f"{cell}: no spike crossed the threshold; the cell gives no window")
            continue
        X.append(windows)
        times.append(seconds)
        labels += [entry.label] * len(windows)
        cells += [cell] * len(windows)
        days += [day] * len(windows)
        udi += [entry.udi_ms] * len(windows)
    if not X:
        raise RapheError(f"{path}: no labelled recording gave a window")
    data = ws.make(np.concatenate(X), labels, cells, days, udi, time_s=np.concatenate(times))
    for k, name in enumerate(data.classes):
        mask = data.y == k
        n_cells, n_days = len(np.unique(data.cell[mask])), len(np.unique(data.day[mask]))
        if n_cells < 10 or n_days < 2:
            warnings.append(f"class {name}: {n_cells} cells over {n_days} day(s): too few to judge a model by "
                            "(each cell is more than a tenth of its class)")
    return data, warnings
