"""Synthetic loose-seal cell-attached recordings of SER and NSER cells (facts from docs/science.md).

An action current is modelled as a negative trough followed, one UDI later, by a smaller positive
phase, each a Gaussian-shaped lobe; the UDI, amplitudes and firing statistics are drawn per cell
from the class's distributions, and every spike jitters a little around its cell's shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyabf

SER = "SER"
NSER = "NSER"
ATYPICAL_UDI_MS = 0.9
MIN_ISI_S = 0.004


@dataclass(frozen=True, slots=True)
class Cell:
    """The ground truth of one synthetic cell."""

    label: str
    atypical: bool
    udi_ms: float
    trough_pa: float
    rate_hz: float
    cv: float


def draw_cell(label: str, rng: np.random.Generator) -> Cell:
    """A cell of class ``label`` with its waveform width, amplitude and firing statistics."""
    trough = -float(rng.uniform(70.0, 160.0))
    if label == SER:
        atypical = bool(rng.random() < 0.2)
        udi = rng.uniform(0.35, 0.85) if atypical else float(np.clip(rng.lognormal(np.log(1.3), 0.22), 0.9, 2.3))
        return Cell(SER, atypical, float(udi), trough, float(rng.uniform(0.5, 3.0)), float(rng.uniform(0.1, 0.45)))
    if label == NSER:
        udi = float(np.clip(rng.normal(0.55, 0.15), 0.15, 0.9))
        return Cell(NSER, False, udi, trough, float(rng.uniform(3.0, 15.0)), float(rng.uniform(0.5, 1.2)))
    raise ValueError(f"unknown class {label!r}")


def spike_times(cell: Cell, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Spike times in seconds: gamma-distributed intervals with the cell's rate and ISI CV."""
    shape = 1.0 / cell.cv**2
    scale = 1.0 / (cell.rate_hz * shape)
    count = int(duration_s * cell.rate_hz * 2) + 10
    intervals = np.maximum(rng.gamma(shape, scale, count), MIN_ISI_S)
    times = np.cumsum(intervals) + rng.uniform(0.0, 1.0 / cell.rate_hz)
    return times[times < duration_s - 0.01]


def action_current(cell: Cell, t_ms: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One spike's current at times ``t_ms`` relative to its trough, with per-spike jitter."""
    udi = cell.udi_ms * rng.normal(1.0, 0.04)
    trough = cell.trough_pa * rng.normal(1.0, 0.08)
    width = 0.28 * udi + 0.06
    positive = -trough * rng.uniform(0.15, 0.25)
    return (trough * np.exp(-0.5 * (t_ms / width) ** 2)
            + positive * np.exp(-0.5 * ((t_ms - udi) / (1.4 * width)) ** 2))


def noise(n: int, sample_rate: float, rng: np.random.Generator, white_pa: float = 4.0,
          hum_pa: float = 1.5, pink_pa: float = 2.0) -> np.ndarray:
    """Baseline current: white noise, 1/f noise and 50 Hz line hum."""
    white = rng.normal(0.0, white_pa, n)
    spectrum = np.fft.rfft(rng.normal(0.0, 1.0, n))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0.0
    pink = np.fft.irfft(spectrum, n)
    pink *= pink_pa / (pink.std() or 1.0)
    t = np.arange(n) / sample_rate
    hum = hum_pa * np.sin(2 * np.pi * 50.0 * t + rng.uniform(0, 2 * np.pi))
    return white + pink + hum


def synth_trace(cell: Cell, duration_s: float, sample_rate: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A recording of ``cell``: (float32 trace in pA, spike trough times in s)."""
    n = int(round(duration_s * sample_rate))
    trace = noise(n, sample_rate, rng)
    times = spike_times(cell, duration_s, rng)
    half = int(round(0.004 * sample_rate))
    offsets = np.arange(-half, half + 1)
    for t in times:
        centre = int(round(t * sample_rate))
        idx = centre + offsets
        keep = (idx >= 0) & (idx < n)
        t_ms = (idx[keep] / sample_rate - t) * 1000.0
        trace[idx[keep]] += action_current(cell, t_ms, rng)
    return trace.astype(np.float32), times


def write_abf(path: Path, trace: np.ndarray, sample_rate: float, units: str = "pA") -> None:
    """Write one gap-free channel as an ABF1 file with pyabf's writer."""
    pyabf.abfWriter.writeABF1(trace[np.newaxis, :], str(path), sampleRateHz=sample_rate, units=units)
