"""`raphe synth`: labelled synthetic recordings, their manifest and their window set.

The windows are cut by raphe's own detector from the generated traces (the seed's rule: -50 pA,
1 ms before to 3 ms after the crossing), so training sees exactly what the runtime will see. Only
the windows of the cell's own spikes are kept (a trough within 1 ms of the crossing): non-spike
artefacts that cross the threshold are counted in the manifest and left out, so that the model
and its novelty score learn action currents, and an artefact at the rig is novel rather than
evidence. At most 700 windows per cell are kept, the seed's cap; each keeps its time, so that the
firing model reads the cell's intervals from the same set.

Firing is ``varied`` by default: both generators' trains get the exceptions of
:mod:`firing_variety` (slow regular NSER cells, bursting and irregular SER cells, rate drift, missed
and extra detections). ``classic`` leaves them out and reproduces earlier versions' data exactly.
"""

from __future__ import annotations

import csv
import shutil
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

from . import biophysical, compartmental, firing_variety, template
from .noise_masks import cut_noise_masks, noise_from_masks

# The generators, each built on its own principle from the same published facts.
GENERATORS = {"template": template, "biophysical": biophysical, "compartmental": compartmental}
FIRING = ("varied", "classic")
# rate_hz and cv are measured on the cell's train as synthesized; firing names its pattern.
MANIFEST_COLUMNS = ["file", "cell", "label", "atypical", "udi_ms", "trough_pa", "rate_hz", "cv", "firing", "day",
                    "sample_rate", "duration_s", "n_spikes", "n_windows", "n_artefact_windows"]
# A detected window is a spike's when one of the cell's troughs lies this close to its crossing.
SPIKE_MATCH_S = 0.001
# No cell-attached current comes near this (pA); beyond it a simulated sample is a numerical blow-up.
MAX_WRITTEN_PA = 1e6


@dataclass(frozen=True, slots=True)
class SynthSummary:
    cells: int
    windows: int
    per_class: dict[str, int]
    abf_files: int


def synthesize(out: str | Path, cells: int, days: int, seed: int, sample_rate: float = SEED_WINDOW.sample_rate_hz,
               duration_s: float = 60.0, ser_fraction: float = 0.5, write_abf: bool = True,
               noise_from: list[str] | None = None, generator: str = "template", rates: tuple[float, ...] = (),
               firing: str = "varied", console: Console | None = None) -> SynthSummary:
    """Generate ``cells`` labelled cells spread over ``days`` recording days into folder ``out``.

    Parameters
    ----------
    out : a new or empty folder; receives ``manifest.csv``, ``days.csv``, ``windows.npz`` and,
        unless ``write_abf`` is False, ``abf/<cell>.abf`` (ABF1, gap-free, one channel in pA). The
        folder is written under a temporary name and renamed when complete, so an interrupted run
        leaves nothing behind.
    cells, days, seed : how many cells, over how many days; the seed makes the run reproducible and
        names the days (``s<seed>-d<NN>`` for the template generator, ``b<seed>-d<NN>`` for the
        biophysical one, ``c<seed>-d<NN>`` for the compartmental one), so different seeds or
        generators never share a day or a cell name.
    sample_rate : Hz (default 40 kHz, the seed's); rates : if given, each day draws its rate from
        these instead; duration_s : length of each recording (default 60 s).
    ser_fraction : the share of SER cells (default 0.5).
    noise_from : recordings whose spike-free current stretches replace the synthetic baseline noise.
    generator : ``template`` (default), ``biophysical`` or ``compartmental`` (see GENERATORS).
    firing : ``varied`` (default) or ``classic`` (see above).
    """
    if generator not in GENERATORS:
        raise RapheError(f"unknown generator {generator!r} (choose {', '.join(GENERATORS)})")
    if firing not in FIRING:
        raise RapheError(f"unknown firing {firing!r} (choose {', '.join(FIRING)})")
    if cells < 1 or days < 1:
        raise RapheError("need at least 1 cell and 1 day")
    if not (duration_s > 0.1 and min((sample_rate, *rates)) >= 10_000):
        raise RapheError("need a duration > 0.1 s and a sample rate >= 10 kHz (the window needs 4 ms at 40 points/ms)")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RapheError(f"{out}: folder exists and is not empty; choose a new one")
    out.parent.mkdir(parents=True, exist_ok=True)
    module = GENERATORS[generator]
    prefix = "s" if generator == "template" else generator[0]
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        summary = _write(partial, module, prefix, cells, days, seed, sample_rate, rates, duration_s, ser_fraction,
                         write_abf, noise_from, firing == "varied", console)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()
    partial.rename(out)
    return summary


def _write(out: Path, module, prefix: str, cells: int, days: int, seed: int, sample_rate: float,
           rates: tuple[float, ...], duration_s: float, ser_fraction: float, write_abf: bool,
           noise_from: list[str] | None, varied: bool, console: Console | None) -> SynthSummary:
    (out / "abf" if write_abf else out).mkdir(parents=True)
    rng = np.random.default_rng(seed)
    day_list = [module.draw_day(f"{prefix}{seed}-d{d + 1:02d}", rng) for d in range(days)]
    day_rates = [float(rng.choice(rates)) for _ in range(days)] if rates else [sample_rate] * days
    masks = {rate: cut_noise_masks(noise_from, rate) for rate in set(day_rates)} if noise_from else None
    n_ser = int(round(cells * ser_fraction))
    labels = rng.permutation([module.SER] * n_ser + [module.NSER] * (cells - n_ser))
    config = DetectorConfig()
    rows, parts = [], []
    for i in track(range(cells), description="synthesizing cells", console=console or Console(stderr=True),
                   transient=True):
        day, rate = day_list[i % days], day_rates[i % days]
        cell = module.draw_cell(str(labels[i]), rng)
        name = f"{prefix}{seed}-c{i + 1:04d}"
        n = int(round(duration_s * rate))
        noise = noise_from_masks(masks[rate], n, rng) if masks else None
        # the pattern's own stream, so that classic firing leaves the generator's draws as they were
        pattern = firing_variety.draw(cell.label, np.random.default_rng((seed, i))) if varied else None
        trace, times = module.synth_trace(cell, day, duration_s, rate, rng, noise, pattern)
        X, crossing_s, artefacts = spike_windows(trace, times, rate, config)
        X, crossing_s = X[:MAX_WINDOWS_PER_CELL], crossing_s[:MAX_WINDOWS_PER_CELL]
        udi = module.measured_udi_ms(cell)
        parts.append(windows.make(X, [cell.label] * len(X), [name] * len(X), [day.name] * len(X),
                                  [udi] * len(X), module.CLASSES, crossing_s))
        file = ""
        if write_abf:
            file = f"abf/{name}.abf"
            broken = ~(np.abs(trace) < MAX_WRITTEN_PA)
            if broken.any():
                # a rare numerical blow-up of the simulation; ABF's int16 scale cannot hold it, and one
                # such sample would turn the whole file into ±1e37 (the windows above never held it)
                (console or Console(stderr=True)).print(f"{name}: {int(broken.sum())} samples of the simulation "
                                                        "non-finite or beyond ±1 µA, written as 0 in its .abf")
            write_abf1(out / file, np.where(broken, 0.0, trace), rate, "pA")
        rows.append([file, name, cell.label, cell.label == module.SER and udi < ATYPICAL_UDI_MS,
                     f"{udi:.4f}", f"{cell.trough_pa:.2f}", f"{len(times) / duration_s:.4f}", f"{train_cv(times):.4f}",
                     pattern.kind if pattern else "classic", day.name,
                     f"{rate:g}", f"{duration_s:g}", len(times), len(X), artefacts])
    all_windows = windows.concatenate(parts)
    windows.save_npz(all_windows, out / "windows.npz")
    write_manifest(out / "manifest.csv", rows)
    write_days(out / "days.csv", day_list, day_rates)
    per_class = {c: int((all_windows.y == k).sum()) for k, c in enumerate(all_windows.classes)}
    return SynthSummary(cells, len(all_windows), per_class, cells if write_abf else 0)


def train_cv(times: np.ndarray) -> float:
    """The ISI CV of a train (NaN below 3 spikes)."""
    isi = np.diff(times)
    return float(isi.std() / isi.mean()) if len(isi) >= 2 else float("nan")


def spike_windows(trace: np.ndarray, times: np.ndarray, sample_rate: float,
                  config: DetectorConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """The windows raphe's detector cuts from ``trace`` around the cell's own spikes (troughs at
    ``times``, s), their crossing times (s), and how many other windows (artefacts that crossed the
    threshold) it also cut."""
    events = Detector(1, sample_rate, config).process(trace[np.newaxis, :], 0)
    crossing_s = events.records["sample_num"] / sample_rate
    if len(times) == 0:
        return events.windows[:0], crossing_s[:0], len(events)
    nearest = np.abs(crossing_s[:, None] - np.asarray(times)[None, :]).min(axis=1) if len(events) else np.zeros(0)
    spike = nearest <= SPIKE_MATCH_S
    return events.windows[spike], crossing_s[spike], int((~spike).sum())


def write_manifest(path: Path, rows: list[list]) -> None:
    with staged(path) as partial, partial.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows(rows)


def write_days(path: Path, days: list, rates: list[float]) -> None:
    """Each day's rig parameters (the generator's ``Day``) and its sample rate."""
    with staged(path) as partial, partial.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(asdict(days[0])) + ["sample_rate"])
        writer.writeheader()
        writer.writerows({**asdict(d), "sample_rate": rate} for d, rate in zip(days, rates))

