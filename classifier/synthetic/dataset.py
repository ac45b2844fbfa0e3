"""`raphe synth`: labelled synthetic recordings, their manifest and their window set.

The windows are cut by raphe's own detector from the generated traces (the seed's rule: -50 pA,
1 ms before to 3 ms after the crossing), so training sees exactly what the runtime will see,
non-spike artefacts that cross the threshold included, labelled with their cell's class as the
seed's were. At most 700 windows per cell are kept, the seed's cap.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track

from raphe.classifier.runtime import windows
from raphe.core.errors import RapheError
from raphe.core.specs import ATYPICAL_UDI_MS, MAX_WINDOWS_PER_CELL, SEED_WINDOW
from raphe.core.staged import staged
from raphe.detector.config import DetectorConfig
from raphe.detector.online import Detector
from raphe.replay.recording import write_abf1

from . import template
from .noise_masks import cut_noise_masks, noise_from_masks
MANIFEST_COLUMNS = ["file", "cell", "label", "atypical", "udi_ms", "trough_pa", "rate_hz", "cv", "day",
                    "sample_rate", "duration_s", "n_spikes", "n_windows"]


@dataclass(frozen=True, slots=True)
class SynthSummary:
    cells: int
    windows: int
    per_class: dict[str, int]
    abf_files: int


def synthesize(out: str | Path, cells: int, days: int, seed: int, sample_rate: float = SEED_WINDOW.sample_rate_hz,
               duration_s: float = 60.0, ser_fraction: float = 0.5, write_abf: bool = True,
               noise_from: list[str] | None = None, console: Console | None = None) -> SynthSummary:
    """Generate ``cells`` labelled cells spread over ``days`` recording days into folder ``out``.

    Parameters
    ----------
    out : a new or empty folder; receives ``manifest.csv``, ``windows.npz`` and, unless
        ``write_abf`` is False, ``abf/<cell>.abf`` (ABF1, gap-free, one channel in pA).
    cells, days, seed : how many cells, over how many days; the seed makes the run reproducible and
        names the days (``s<seed>-d<NN>``), so different seeds never share a day.
    sample_rate : Hz (default 40 kHz, the seed's); duration_s : length of each recording (default 60 s).
    ser_fraction : the share of SER cells (default 0.5).
    noise_from : recordings whose spike-free current stretches replace the synthetic baseline noise.
    """
    if cells < 1 or days < 1:
        raise RapheError("need at least 1 cell and 1 day")
    if not (duration_s > 0.1 and sample_rate >= 10_000):
        raise RapheError("need a duration > 0.1 s and a sample rate >= 10 kHz (the window needs 4 ms at 40 points/ms)")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise RapheError(f"{out}: folder exists and is not empty; choose a new one")
    masks = cut_noise_masks(noise_from, sample_rate) if noise_from else None
    (out / "abf" if write_abf else out).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    day_list = [template.draw_day(f"s{seed}-d{d + 1:02d}", rng) for d in range(days)]
    n_ser = int(round(cells * ser_fraction))
    labels = rng.permutation([template.SER] * n_ser + [template.NSER] * (cells - n_ser))
    config = DetectorConfig()
    rows, parts = [], []
    for i in track(range(cells), description="synthesizing cells", console=console or Console(stderr=True),
                   transient=True):
        day = day_list[i % days]
        cell = template.draw_cell(str(labels[i]), rng)
        name = f"s{seed}-c{i + 1:04d}"
        n = int(round(duration_s * sample_rate))
        noise = noise_from_masks(masks, n, rng) if masks else None
        trace, times = template.synth_trace(cell, day, duration_s, sample_rate, rng, noise)
        X = Detector(1, sample_rate, config).process(trace[np.newaxis, :], 0).windows[:MAX_WINDOWS_PER_CELL]
        udi = template.measured_udi_ms(cell)
        parts.append(windows.make(X, [cell.label] * len(X), [name] * len(X), [day.name] * len(X),
                                  [udi] * len(X), template.CLASSES))
        file = ""
        if write_abf:
            file = f"abf/{name}.abf"
            write_abf1(out / file, trace, sample_rate, "pA")
        rows.append([file, name, cell.label, cell.label == template.SER and udi < ATYPICAL_UDI_MS,
                     f"{udi:.4f}", f"{cell.trough_pa:.2f}", f"{cell.rate_hz:.4f}", f"{cell.cv:.4f}", day.name,
                     f"{sample_rate:g}", f"{duration_s:g}", len(times), len(X)])
    all_windows = windows.concatenate(parts)
    windows.save_npz(all_windows, out / "windows.npz")
    write_manifest(out / "manifest.csv", rows)
    write_days(out / "days.csv", day_list)
    per_class = {c: int((all_windows.y == k).sum()) for k, c in enumerate(all_windows.classes)}
    return SynthSummary(cells, len(all_windows), per_class, cells if write_abf else 0)


def write_manifest(path: Path, rows: list[list]) -> None:
    with staged(path) as partial, partial.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows(rows)


def write_days(path: Path, days: list[template.Day]) -> None:
    with staged(path) as partial, partial.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(asdict(days[0])))
        writer.writeheader()
        writer.writerows(asdict(d) for d in days)

