"""The template generator: synthetic loose-seal cell-attached recordings of SER and NSER cells, each
spike drawn from a parametric template (facts from docs/science.md).

An action current is a fast negative trough (reached a few samples after the -50 pA crossing, as in
science.md) followed, one UDI later, by a smaller positive phase. Besides the UDI, the two classes
differ in shape features that the width alone does not carry, and that the atypical (narrow) SER
cells keep: SER troughs recover over a larger share of the UDI, their positive phase is smaller and
decays with a long tail, and many have a small positive phase before the trough (triphasic spikes);
NSER spikes recover quickly into a larger, brief positive phase. These are modelling choices made so
that atypical cells are separable at all; how real SER cells differ is what a lab's own data teaches.

Every "recording day" has its own rig: white, 1/f and line noise levels, hum frequency, baseline
drift, rate and kind of non-spike artefacts, and the low-pass filter of the amplifier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raphe.core.specs import ATYPICAL_UDI_MS, CLASSES, NSER, SER

from . import firing_variety

ATYPICAL_FRACTION = 0.2
MIN_ISI_S = 0.004


@dataclass(frozen=True, slots=True)
class Cell:
    """The ground truth of one synthetic cell: class, spike shape and firing statistics.

    Times are in ms relative to the trough, amplitudes in pA (``trough_pa`` < 0), fractions of the
    trough's magnitude.
    """

    label: str
    atypical: bool
    udi_ms: float
    trough_pa: float
    fall_ms: float
    recovery_ms: float
    positive_fraction: float
    positive_ms: float
    tail_ms: float
    pre_fraction: float
    rate_hz: float
    cv: float


@dataclass(frozen=True, slots=True)
class Day:
    """The rig of one recording day: noise levels and spectrum, drift, artefacts and the amplifier's
    filter (a zero-phase Gaussian, or a causal two-pole RC whose phase delays and skews each spike)."""

    name: str
    white_pa: float
    pink_pa: float
    hum_pa: float
    hum_hz: float
    drift_pa: float
    artefact_hz: float
    lowpass_hz: float
    pink_exponent: float = 1.0
    causal_filter: bool = False


def draw_cell(label: str, rng: np.random.Generator) -> Cell:
    """A cell of class ``label`` (SER or NSER) with its own spike shape and firing statistics."""
    trough = 0.0
    while not 55.0 <= trough <= 400.0:  # truncated, not clipped: no pile of cells at the bounds
        trough = float(rng.lognormal(np.log(110.0), 0.4))
    trough = -trough
    if label == SER:
        atypical = bool(rng.random() < ATYPICAL_FRACTION)
        if atypical:
            udi = rng.uniform(0.3, 0.88)
        else:
            udi = float(np.clip(rng.lognormal(np.log(1.3), 0.22), ATYPICAL_UDI_MS, 2.3))
        recovery = udi * rng.uniform(0.28, 0.36)
        fall = rng.uniform(0.04, 0.09)
        positive, positive_ms = rng.uniform(0.10, 0.24), udi * rng.uniform(0.35, 0.5)
        tail = rng.uniform(0.4, 1.2)
        pre = rng.uniform(0.03, 0.12) if rng.random() < 0.6 else 0.0
        rate = rng.uniform(0.5, 3.0)
        cv = rng.uniform(0.5, 0.8) if rng.random() < 0.03 else rng.uniform(0.08, 0.45)
    elif label == NSER:
        atypical = False
        udi = float(np.clip(rng.normal(0.55, 0.15), 0.15, ATYPICAL_UDI_MS))
        recovery = udi * rng.uniform(0.2, 0.28)
        fall = rng.uniform(0.03, 0.07)
        positive, positive_ms = rng.uniform(0.16, 0.40), udi * rng.uniform(0.3, 0.45)
        tail = rng.uniform(0.1, 0.5)
        pre = rng.uniform(0.02, 0.06) if rng.random() < 0.15 else 0.0
        rate = rng.uniform(3.0, 20.0)
        cv = rng.uniform(0.5, 1.3)
    else:
        raise ValueError(f"unknown class {label!r}")
    return Cell(label, atypical, float(udi), trough, float(fall), float(recovery), float(positive),
                float(positive_ms), float(tail), float(pre), float(rate), float(cv))


def draw_day(name: str, rng: np.random.Generator) -> Day:
    """One recording day's rig; together the noise band is about +-15-20 pA, as in science.md."""
    return Day(name, white_pa=rng.uniform(2.5, 6.5), pink_pa=rng.uniform(0.5, 5.0),
               hum_pa=rng.uniform(0.2, 4.0), hum_hz=float(rng.choice([50.0, 60.0])),
               drift_pa=rng.uniform(2.0, 20.0), artefact_hz=rng.uniform(0.02, 0.5),
               lowpass_hz=rng.uniform(2500.0, 10000.0), pink_exponent=rng.uniform(0.6, 1.4),
               causal_filter=bool(rng.random() < 0.5))


def spike_times(cell: Cell, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Trough times in seconds: gamma-distributed intervals with the cell's rate and ISI CV."""
    shape = 1.0 / cell.cv**2
    scale = 1.0 / (cell.rate_hz * shape)
    count = int(duration_s * cell.rate_hz * 2) + 10
    intervals = np.maximum(rng.gamma(shape, scale, count), MIN_ISI_S)
    times = np.cumsum(intervals) + rng.uniform(0.0, 1.0 / cell.rate_hz)
    return times[times < duration_s - 0.01]


def action_current(cell: Cell, t_ms: np.ndarray, scale: float = 1.0, gain: float = 1.0) -> np.ndarray:
    """One spike's current at times ``t_ms`` relative to its trough; ``scale`` stretches it in time
    and ``gain`` in amplitude (the per-spike jitter around the cell's shape)."""
    trough = cell.trough_pa * gain
    udi, fall, recovery = cell.udi_ms * scale, cell.fall_ms * scale, cell.recovery_ms * scale
    width = np.where(t_ms < 0.0, fall, recovery)
    current = trough * np.exp(-0.5 * (t_ms / width) ** 2)
    after = t_ms - udi
    positive = -trough * cell.positive_fraction
    lobe = np.where(after < 0.0, np.exp(-0.5 * (after / (cell.positive_ms * scale)) ** 2),
                    np.exp(-np.maximum(after, 0.0) / cell.tail_ms))
    current += positive * lobe
    if cell.pre_fraction > 0.0:
        lag = 3.0 * fall
        current += -trough * cell.pre_fraction * np.exp(-0.5 * ((t_ms + lag) / (1.2 * fall)) ** 2)
    return current


def colored_noise(n: int, sample_rate: float, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance noise whose power falls as 1/f**exponent."""
    spectrum = np.fft.rfft(rng.normal(0.0, 1.0, n))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    spectrum[1:] /= freqs[1:] ** (exponent / 2.0)
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n)
    return noise / (noise.std() or 1.0)


def baseline(n: int, sample_rate: float, day: Day, rng: np.random.Generator) -> np.ndarray:
    """White, 1/f and line noise (with two harmonics) at the day's levels."""
    t = np.arange(n) / sample_rate
    hum = sum(day.hum_pa / h * np.sin(2 * np.pi * h * day.hum_hz * t + rng.uniform(0, 2 * np.pi))
              for h in (1, 2, 3))
    return (rng.normal(0.0, day.white_pa, n) + day.pink_pa * colored_noise(n, sample_rate, day.pink_exponent, rng)
            + hum)


def drift(n: int, sample_rate: float, day: Day, rng: np.random.Generator) -> np.ndarray:
    """Slow baseline wander (1/f^2 noise, the seal and holding current creeping), about +-drift_pa."""
    return day.drift_pa * colored_noise(n, sample_rate, 2.0, rng)


def add_artefacts(trace: np.ndarray, sample_rate: float, day: Day, rng: np.random.Generator) -> None:
    """Non-spike events: fast capacitive transients (either sign) and slow synaptic-like currents."""
    n = trace.size
    count = rng.poisson(day.artefact_hz * n / sample_rate)
    for start in rng.integers(0, n, count):
        if rng.random() < 0.5:
            length = int(0.002 * sample_rate)
            t_ms = np.arange(length) * 1000.0 / sample_rate
            size = rng.choice([-1.0, 1.0]) * rng.uniform(30.0, 300.0)
            shape = size * (np.exp(-t_ms / 0.08) - 0.4 * np.exp(-t_ms / 0.3))
        else:
            length = int(0.03 * sample_rate)
            t_ms = np.arange(length) * 1000.0 / sample_rate
            shape = -rng.uniform(10.0, 80.0) * (1.0 - np.exp(-t_ms / 0.5)) * np.exp(-t_ms / 5.0)
        stop = min(n, start + length)
        trace[start:stop] += shape[: stop - start]


def lowpass(trace: np.ndarray, sample_rate: float, cutoff_hz: float, causal: bool = False) -> np.ndarray:
    """The amplifier's filter, -3 dB at ``cutoff_hz``: Gaussian in frequency with no phase, or a
    causal two-pole RC (two equal poles)."""
    spectrum = np.fft.rfft(trace)
    freqs = np.fft.rfftfreq(trace.size, 1.0 / sample_rate)
    if causal:
        pole = cutoff_hz / np.sqrt(np.sqrt(2.0) - 1.0)  # two equal poles give -3 dB at the cutoff
        spectrum /= (1.0 + 1j * freqs / pole) ** 2
    else:
        spectrum *= np.exp(-0.5 * np.log(2.0) * (freqs / cutoff_hz) ** 2)
    return np.fft.irfft(spectrum, trace.size)


def synth_trace(cell: Cell, day: Day, duration_s: float, sample_rate: float, rng: np.random.Generator,
                noise_source: np.ndarray | None = None,
                pattern: firing_variety.Pattern | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A cell-attached recording of ``cell`` on ``day``: (float32 trace in pA, trough times in s).

    ``noise_source``, if given, is real baseline current (pA, already at ``sample_rate``) that replaces
    the synthetic white, 1/f and line noise; drift, artefacts and the day's filter are still applied.
    ``pattern``, if given, is the cell's departure from its class's textbook firing (see firing_variety).
    """
    n = int(round(duration_s * sample_rate))
    trace = noise_source[:n].astype(np.float64) if noise_source is not None else baseline(n, sample_rate, day, rng)
    times = spike_times(cell, duration_s, rng)
    if pattern is not None:
        times = firing_variety.apply(pattern, times, duration_s)
    half = int(round(0.006 * sample_rate))
    offsets = np.arange(-half, half + 1)
    for t in times:
        idx = int(round(t * sample_rate)) + offsets
        keep = (idx >= 0) & (idx < n)
        t_ms = (idx[keep] / sample_rate - t) * 1000.0
        trace[idx[keep]] += action_current(cell, t_ms, rng.normal(1.0, 0.04), rng.normal(1.0, 0.08))
    add_artefacts(trace, sample_rate, day, rng)
    trace = lowpass(trace, sample_rate, min(day.lowpass_hz, 0.45 * sample_rate), day.causal_filter)
    trace += drift(n, sample_rate, day, rng)
    return trace.astype(np.float32), times


def measured_udi_ms(cell: Cell, sample_rate: float = 200_000.0) -> float:
    """The UDI of the cell's noise-free spike as an experimenter would measure it: trough to peak."""
    t_ms = np.arange(-2.0, 6.0, 1000.0 / sample_rate)
    spike = action_current(cell, t_ms)
    trough = int(np.argmin(spike))
    return float(t_ms[trough + int(np.argmax(spike[trough:]))] - t_ms[trough])
