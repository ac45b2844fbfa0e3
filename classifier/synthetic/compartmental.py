"""A third synthetic generator: loose-seal action currents from a three-compartment neuron model.

Principle
---------
Each cell is a conductance-based model of three electrically coupled compartments: an axon initial
segment (AIS) where the spike starts, a soma, and a passive dendrite. The action potential is
simulated once per cell at 500 kHz (exponential-Euler integration, numba). The loose-seal pipette
covers a small patch of somatic membrane; the current it records is the patch's membrane current,
capacitive plus a fraction of the somatic ionic current, with the cell-attached sign (outward patch
current reads negative):

    I_rec(t)  ~  -(C_s dV_s/dt + rho * I_ion,s(t))

so the trough comes with the somatic upstroke and the positive phase with repolarisation, and the
upstroke-downstroke interval (UDI) is set by the repolarisation kinetics. The recording day's
amplifier filter (4-pole Bessel) is applied to that current, and scaled, slightly stretched copies
are placed at the spike times of a gamma renewal process on top of the day's noise.

Classes differ by physiology, not by drawing a width:

- SER: large soma and dendrite, slow repolarisation (slow Na inactivation and a slow delayed
  rectifier, one "slowness" factor for both), a high-voltage Ca current and a Ca-activated K (SK)
  current whose Ca pool decays with tau ~ 7.3 ms (Kirby et al. 2003); slow, regular firing.
- NSER: small fast-spiking interneuron, fast repolarisation, little Ca, SK pool tau ~ 1.8 ms;
  faster, irregular firing; a minority are slow, less regular 5-HT-negative cells (Allers & Sharp
  2003).
- Atypical SER (the mechanism chosen here): about a fifth of SER cells have interneuron-like fast
  repolarisation kinetics (as if they expressed Kv3-type channels) but keep everything else of a
  SER cell: soma size, Ca current, slow SK after-hyperpolarisation and slow regular firing. A cell
  is flagged ``atypical`` when its measured UDI is below 0.9 ms, the experimental definition.

Assumptions
-----------
1. Three compartments are enough: AIS (1 pF, dense left-shifted Na, fast K), soma, passive
   dendrite; axial couplings are lumped conductances. Temperature is folded into the kinetics.
2. Hodgkin-Huxley-style gates with Boltzmann steady states; Na m^3 h, delayed rectifier n^2,
   HVA Ca s^2, SK gated by a Ca pool; reversal potentials Na +55, K -95, Ca +120 mV.
3. The patch carries the somatic channel density times ``patch_channel_fraction`` (0-0.15: few
   active channels under a loose seal), so the action current is mostly capacitive.
4. The seal and pipette divide the patch current by a constant: the whole spike is scaled so its
   trough (at the nominal 10 kHz filter) is the cell's ``trough_pa``, lognormal around -100 pA,
   clipped to -55 ... -400 pA. Amplitude varies per spike by 5 % and recovers after short
   intervals (Na channel recovery, tau 15 ms); width varies per spike by 2 %.
5. The spike is triggered by a brief depolarising current into the dendrite whose size is found
   per cell so the cell fires exactly one spike; the slow pre-spike depolarisation appears as a
   small inward ramp before the trough.
6. Firing is a gamma renewal process with a dead time; SER 0.5-3 Hz with CV mostly < 0.5 and
   falling with rate; NSER 3-20 Hz with CV 0.4-1.2; 12 % of NSER are slow (1-3 Hz), CV 0.4-0.8.
7. Noise: filtered white plus 1/f amplifier noise (total SD 3.5-6.5 pA, a band of about
   +-15-20 pA), line hum at 50 or 60 Hz with a third harmonic, slow drift, a small holding offset,
   and rare brief biphasic artefacts below 35 pA that do not reach the -50 pA threshold alone.
8. The amplifier filter is a 4-pole Bessel at 5, 8 or 10 kHz, lowered to 0.4 x the sample rate
   where the rate is too low for it (the anti-aliasing an experimenter would set).
9. Currents from overlapping spikes add linearly.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from raphe.core.specs import CLASSES, NSER, SER

DT_MS = 0.002                 # integration step: 500 kHz resolves the ~0.1 ms upstroke
SIM_MS = 30.0
PRE_MS = 3.0                  # waveform kept from 3 ms before the trough ...
POST_MS = 20.0                # ... to 20 ms after it (the SK tail decays within that)
NOMINAL_FILTER_HZ = 10_000.0
UDI_SEARCH_MS = 2.8           # the positive peak is sought within the seed's 3 ms post-crossing window
ATYPICAL_UDI_MS = 0.9
ATYPICAL_SHARE = 0.22
SLOW_NSER_SHARE = 0.12
E_NA, E_K, E_CA = 55.0, -95.0, 120.0


@dataclass(frozen=True)
class Cell:
    """One neuron: its class, firing and the parameters of its compartment model."""

    label: str
    atypical: bool
    trough_pa: float
    rate_hz: float
    cv: float
    udi_ms: float
    soma_pf: float
    dendrite_pf: float
    coupling_dendrite_ns: float
    coupling_ais_ns: float
    na_soma_ns: float
    na_ais_ns: float
    k_soma_ns: float
    slowness: float
    ca_ns: float
    sk_ns: float
    ahp_tau_ms: float
    leak_mv: float
    patch_channel_fraction: float
    drive_pa: float


@dataclass(frozen=True)
class Day:
    """The rig on one recording day."""

    name: str
    white_sd_pa: float
    pink_sd_pa: float
    hum_pa: float
    hum_hz: float
    drift_pa: float
    offset_pa: float
    artefact_rate_hz: float
    artefact_pa: float
    filter_hz: float


@njit(cache=True)
def _boltzmann(v, half, slope):
    return 1.0 / (1.0 + math.exp(-(v - half) / slope))


@njit(cache=True)
def _bell(v, centre, width):
    return 1.0 / (math.exp((v - centre) / width) + math.exp(-(v - centre) / width))


@njit(cache=True)
def _simulate(params, dt, n):
    """Integrate the three-compartment model; return (somatic V, patch current, AIS V) per step.

    The patch current is -(capacitive + rho x ionic) somatic membrane current in pA; voltages
    and gates use exponential Euler, stable at the AIS's large Na conductance.
    """
    (c_d, c_s, g_sd, g_sa, g_na_s, g_na_a, g_k_s, slow, g_ca, g_sk, tau_ahp, e_leak, rho,
     drive) = params
    c_a, g_leak, g_k_a = 1.0, 0.2, 300.0           # AIS capacitance, leak (nS/pF), AIS K (nS)
    h_speed, tau_n = 0.3 / slow, 4.0 * slow
    v_d = v_s = v_a = e_leak
    m_s = _boltzmann(v_s, -32.0, 6.5)
    m_a = _boltzmann(v_a, -38.0, 6.5)
    h_s = h_a = 1.0 - _boltzmann(v_s, -58.0, 6.5)
    n_s = _boltzmann(v_s, -10.0, 10.0)
    n_a = _boltzmann(v_a, -30.0, 10.0)
    s_ca = _boltzmann(v_s, -20.0, 5.0)
    ca = 0.0
    out = np.empty((3, n))
    for i in range(n):
        t = i * dt
        i_drive = drive * (t / 3.0) * math.exp(1.0 - t / 3.0)
        g_na = g_na_s * m_s ** 3 * h_s
        g_k = g_k_s * n_s ** 2 + g_sk * ca * ca / (ca * ca + 1.0)
        g_c = g_ca * s_ca ** 2
        g_l = g_leak * c_s
        i_ion = g_na * (v_s - E_NA) + g_k * (v_s - E_K) + g_c * (v_s - E_CA) + g_l * (v_s - e_leak)
        i_cap = g_sd * (v_d - v_s) + g_sa * (v_a - v_s) - i_ion
        out[0, i] = v_s
        out[1, i] = -(i_cap + rho * i_ion)
        out[2, i] = v_a
        g_tot = g_na + g_k + g_c + g_l + g_sd + g_sa
        v_inf = (g_na * E_NA + g_k * E_K + g_c * E_CA + g_l * e_leak + g_sd * v_d + g_sa * v_a) / g_tot
        new_s = v_inf + (v_s - v_inf) * math.exp(-dt * g_tot / c_s)
        g_na_ais = g_na_a * m_a ** 3 * h_a
        g_k_ais = g_k_a * n_a ** 4
        g_tot = g_na_ais + g_k_ais + g_leak * c_a + g_sa
        v_inf = (g_na_ais * E_NA + g_k_ais * E_K + g_leak * c_a * e_leak + g_sa * v_s) / g_tot
        new_a = v_inf + (v_a - v_inf) * math.exp(-dt * g_tot / c_a)
        g_tot = g_leak * c_d + g_sd
        v_inf = (g_leak * c_d * e_leak + g_sd * v_s + i_drive) / g_tot
        new_d = v_inf + (v_d - v_inf) * math.exp(-dt * g_tot / c_d)
        for v, k in ((v_s, 0), (v_a, 1)):
            m_inf = _boltzmann(v, -32.0 if k == 0 else -38.0, 6.5)
            tau_m = 0.02 + 0.1 * _bell(v, -40.0, 15.0)
            h_inf = 1.0 - _boltzmann(v, -58.0, 6.5)
            tau_h = (0.1 + 1.5 * _bell(v, -50.0, 12.0)) / h_speed
            if k == 0:
                m_s = m_inf + (m_s - m_inf) * math.exp(-dt / tau_m)
                h_s = h_inf + (h_s - h_inf) * math.exp(-dt / tau_h)
            else:
                m_a = m_inf + (m_a - m_inf) * math.exp(-dt / tau_m)
                h_a = h_inf + (h_a - h_inf) * math.exp(-dt / tau_h)
        n_inf = _boltzmann(v_s, -10.0, 10.0)
        n_s = n_inf + (n_s - n_inf) * math.exp(-dt / (tau_n * (0.2 + _bell(v_s, -20.0, 20.0))))
        n_inf = _boltzmann(v_a, -30.0, 10.0)
        n_a = n_inf + (n_a - n_inf) * math.exp(-dt / 0.3)
        s_inf = _boltzmann(v_s, -20.0, 5.0)
        s_ca = s_inf + (s_ca - s_inf) * math.exp(-dt / 0.4)
        # the Ca pool fills with the Ca current (normalised so one spike brings it near 1)
        ca += dt * (max(-g_c * (v_s - E_CA), 0.0) / (40.0 * g_ca + 1e-9) - ca / tau_ahp)
        v_s, v_a, v_d = new_s, new_a, new_d
    return out


def _spike_count(v_ais: np.ndarray) -> int:
    return int(np.count_nonzero((v_ais[1:] > 0.0) & (v_ais[:-1] <= 0.0)))


def _params(cell_fields: dict, drive: float) -> np.ndarray:
    f = cell_fields
    return np.array([f["dendrite_pf"], f["soma_pf"], f["coupling_dendrite_ns"], f["coupling_ais_ns"],
                     f["na_soma_ns"], f["na_ais_ns"], f["k_soma_ns"], f["slowness"], f["ca_ns"],
                     f["sk_ns"], f["ahp_tau_ms"], f["leak_mv"], f["patch_channel_fraction"], drive])


def _single_spike_drive(fields: dict) -> float | None:
    """The drive (pA) that makes the model fire exactly one spike, or None if none is found."""
    n = int(SIM_MS / DT_MS)
    drive = 300.0
    for _ in range(14):
        count = _spike_count(_simulate(_params(fields, drive), DT_MS, n)[2])
        if count == 1:
            return drive
        drive = drive * 1.5 if count == 0 else drive / 1.3
    return None


def _bessel_response(freq_hz: np.ndarray, cutoff_hz: float) -> np.ndarray:
    """Complex response of a 4-pole Bessel low-pass with its -3 dB point at ``cutoff_hz``."""
    s = 1j * freq_hz / cutoff_hz * 2.11391767      # the normalised polynomial's -3 dB frequency
    return 105.0 / (s ** 4 + 10.0 * s ** 3 + 45.0 * s ** 2 + 105.0 * s + 105.0)


def _filtered(current: np.ndarray, cutoff_hz: float) -> np.ndarray:
    size = 1 << int(math.ceil(math.log2(2 * len(current))))
    freq = np.fft.rfftfreq(size, DT_MS / 1000.0)
    return np.fft.irfft(np.fft.rfft(current, size) * _bessel_response(freq, cutoff_hz), size)[:len(current)]


@functools.lru_cache(maxsize=512)
def _raw_current(cell: Cell) -> np.ndarray:
    """The cell's unfiltered patch current (pA, arbitrary scale), baseline removed, at DT_MS."""
    out = _simulate(_params(cell.__dict__, cell.drive_pa), DT_MS, int(SIM_MS / DT_MS))
    return out[1] - out[1][0]


def _waveform(cell: Cell, cutoff_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Time (ms, 0 at the trough) and current (pA) of the cell's spike behind a ``cutoff_hz`` filter.

    Scaled so that the trough behind the nominal 10 kHz filter is ``cell.trough_pa``; tapered to 0
    at both ends so copies add without steps.
    """
    raw = _raw_current(cell)
    nominal = _filtered(raw, NOMINAL_FILTER_HZ)
    scale = cell.trough_pa / nominal.min()
    current = (nominal if cutoff_hz == NOMINAL_FILTER_HZ else _filtered(raw, cutoff_hz)) * scale
    trough = int(np.argmin(current))
    pre, post = int(PRE_MS / DT_MS), int(POST_MS / DT_MS)
    start = max(trough - pre, 0)
    piece = current[start:trough + post].copy()
    taper = np.minimum(1.0, np.minimum(np.arange(len(piece)), np.arange(len(piece))[::-1]) / (0.5 / DT_MS))
    piece *= 0.5 - 0.5 * np.cos(np.pi * taper)
    return (np.arange(len(piece)) + start - trough) * DT_MS, piece


def _udi_of(time_ms: np.ndarray, current: np.ndarray) -> float:
    trough = int(np.argmin(current))
    stop = trough + int(UDI_SEARCH_MS / DT_MS) + 1
    return float(time_ms[trough + int(np.argmax(current[trough:stop]))] - time_ms[trough])


def measured_udi_ms(cell: Cell) -> float:
    """UDI (ms) of the cell's noise-free spike behind the nominal 10 kHz filter: trough to the
    highest point of the following positive phase within 2.8 ms."""
    return _udi_of(*_waveform(cell, NOMINAL_FILTER_HZ))


def _draw_model(label: str, atypical_kinetics: bool, rng: np.random.Generator) -> dict:
    """Compartment parameters of one cell of ``label``."""
    if label == SER:
        soma = rng.uniform(18.0, 30.0)
        if atypical_kinetics:
            slowness = math.exp(rng.uniform(math.log(0.55), math.log(1.3)))
        else:
            slowness = float(np.clip(rng.lognormal(math.log(2.35), 0.2), 1.7, 3.2))
        return dict(soma_pf=soma, dendrite_pf=rng.uniform(30.0, 60.0), coupling_dendrite_ns=rng.uniform(40.0, 80.0),
                    coupling_ais_ns=rng.uniform(22.0, 38.0), na_soma_ns=soma * rng.uniform(42.0, 58.0),
                    na_ais_ns=rng.uniform(2000.0, 3000.0), k_soma_ns=150.0 / math.sqrt(slowness),
                    slowness=slowness, ca_ns=rng.uniform(20.0, 40.0), sk_ns=rng.uniform(10.0, 30.0),
                    ahp_tau_ms=float(np.clip(rng.normal(7.3, 1.0), 4.5, 11.0)), leak_mv=rng.uniform(-66.0, -60.0),
                    patch_channel_fraction=rng.uniform(0.0, 0.15))
    soma = rng.uniform(9.0, 15.0)
    slowness = float(np.clip(rng.lognormal(math.log(1.25), 0.25), 0.45, 1.4))
    return dict(soma_pf=soma, dendrite_pf=rng.uniform(15.0, 35.0), coupling_dendrite_ns=rng.uniform(30.0, 60.0),
                coupling_ais_ns=rng.uniform(22.0, 38.0), na_soma_ns=soma * rng.uniform(55.0, 75.0),
                na_ais_ns=rng.uniform(2000.0, 3000.0), k_soma_ns=150.0 / math.sqrt(slowness),
                slowness=slowness, ca_ns=rng.uniform(2.0, 8.0), sk_ns=rng.uniform(2.0, 8.0),
                ahp_tau_ms=float(np.clip(rng.normal(1.8, 0.3), 1.0, 3.0)), leak_mv=rng.uniform(-68.0, -62.0),
                patch_channel_fraction=rng.uniform(0.0, 0.15))


def _draw_firing(label: str, rng: np.random.Generator) -> tuple[float, float]:
    """(rate Hz, ISI CV) for a cell of ``label``."""
    if label == SER:
        rate = float(np.clip(rng.lognormal(math.log(1.4), 0.4), 0.5, 3.0))
        # CV falls with rate (Mlinar et al. 2016, r = -0.33); about 97 % below 0.5
        cv = float(np.clip(rng.lognormal(math.log(0.2) - 0.25 * math.log(rate / 1.4), 0.45), 0.05, 0.9))
        return rate, cv
    if rng.random() < SLOW_NSER_SHARE:
        return float(rng.uniform(1.0, 3.0)), float(rng.uniform(0.4, 0.8))
    return float(np.clip(rng.lognormal(math.log(8.0), 0.45), 3.0, 20.0)), float(rng.uniform(0.4, 1.2))


def draw_cell(label: str, rng: np.random.Generator) -> Cell:
    """Draw one cell of ``label`` (SER or NSER), simulate its spike once, and measure its UDI.

    Raises
    ------
    ValueError
        If ``label`` is not one of CLASSES.
    """
    if label not in CLASSES:
        raise ValueError(f"unknown label {label!r}; expected one of {', '.join(CLASSES)}")
    atypical_kinetics = label == SER and rng.random() < ATYPICAL_SHARE
    rate, cv = _draw_firing(label, rng)
    trough = -float(np.clip(rng.lognormal(math.log(100.0), 0.42), 55.0, 400.0))
    while True:
        fields = _draw_model(label, atypical_kinetics, rng)
        drive = _single_spike_drive(fields)
        if drive is None:
            continue                       # a parameter set that cannot fire one clean spike
        cell = Cell(label=label, atypical=False, trough_pa=trough, rate_hz=rate, cv=cv, udi_ms=0.0,
                    drive_pa=drive, **fields)
        udi = measured_udi_ms(cell)
        return Cell(**{**cell.__dict__, "udi_ms": udi, "atypical": label == SER and udi < ATYPICAL_UDI_MS})


def draw_day(name: str, rng: np.random.Generator) -> Day:
    """Draw the rig of one recording day."""
    return Day(name=name, white_sd_pa=rng.uniform(3.0, 5.5), pink_sd_pa=rng.uniform(1.0, 3.0),
               hum_pa=rng.uniform(0.0, 3.0), hum_hz=float(rng.choice([50.0, 60.0], p=[0.8, 0.2])),
               drift_pa=rng.uniform(0.5, 4.0), offset_pa=rng.uniform(-5.0, 5.0),
               artefact_rate_hz=rng.uniform(0.0, 0.02), artefact_pa=rng.uniform(10.0, 35.0),
               filter_hz=float(rng.choice([5000.0, 8000.0, 10000.0], p=[0.2, 0.3, 0.5])))


def _spike_times(cell: Cell, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Trough times (s) of a gamma renewal process with the cell's rate and CV and a dead time."""
    dead = min(0.004 if cell.label == NSER else 0.05, 0.5 / cell.rate_hz)
    mean_free = 1.0 / cell.rate_hz - dead
    # the dead time lowers the CV of dead + gamma; widen the gamma part so the whole ISI has cell.cv
    shape = (mean_free / (cell.cv / cell.rate_hz)) ** 2
    count = int(duration_s * cell.rate_hz * 1.5) + 20
    isi = dead + rng.gamma(shape, mean_free / shape, count)
    times = rng.uniform(0.0, isi[0]) + np.concatenate(([0.0], np.cumsum(isi[1:])))
    return times[times < duration_s - 0.01]


def _noise(day: Day, n: int, sample_rate: float, cutoff_hz: float, rng: np.random.Generator) -> np.ndarray:
    """The day's baseline current (pA): filtered white and 1/f noise, hum, drift, offset, artefacts."""
    freq = np.fft.rfftfreq(n, 1.0 / sample_rate)
    response = np.abs(_bessel_response(freq, cutoff_hz))
    spectra = rng.standard_normal((4, len(freq)))
    white = np.fft.irfft((spectra[0] + 1j * spectra[1]) * response, n)
    pink = np.fft.irfft((spectra[2] + 1j * spectra[3]) * response / np.sqrt(np.maximum(freq, 1.0)), n)
    noise = day.white_sd_pa * white / white.std() + day.pink_sd_pa * pink / pink.std()
    t = np.arange(n) / sample_rate
    phase = rng.uniform(0.0, 2.0 * np.pi, 2)
    noise += day.hum_pa * (np.sin(2 * np.pi * day.hum_hz * t + phase[0])
                           + 0.3 * np.sin(6 * np.pi * day.hum_hz * t + phase[1]))
    # drift: a few slow sinusoids (periods of 10-100 s) rather than a random walk, so it stays bounded
    for period in rng.uniform(10.0, 100.0, 3):
        noise += day.drift_pa / math.sqrt(3) * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    noise += day.offset_pa
    width = max(1, int(round(1e-4 * sample_rate)))
    kernel_t = np.arange(-4 * width, 4 * width + 1) / width
    kernel = -kernel_t * np.exp(0.5 - kernel_t ** 2 / 2)     # biphasic, peak magnitude 1
    for start in rng.uniform(0.0, n / sample_rate, rng.poisson(day.artefact_rate_hz * n / sample_rate)):
        centre = int(start * sample_rate)
        lo, hi = max(centre - 4 * width, 0), min(centre + 4 * width + 1, n)
        noise[lo:hi] += rng.choice([-1.0, 1.0]) * day.artefact_pa * kernel[lo - centre + 4 * width:hi - centre + 4 * width]
    return noise


def synth_trace(cell: Cell, day: Day, duration_s: float, sample_rate: float, rng: np.random.Generator,
                noise_source: np.ndarray | None = None, pattern=None) -> tuple[np.ndarray, np.ndarray]:
    """A recording of ``cell`` on ``day``: float32 current (pA) and the spikes' trough times (s).

    Parameters
    ----------
    cell, day : the neuron and the rig.
    duration_s : length of the recording (s).
    sample_rate : samples per second (10-50 kHz).
    rng : the random generator for spike times, per-spike variation and noise.
    noise_source : real baseline current (pA) at ``sample_rate``, at least as long as the trace,
        used instead of the synthetic noise (default None).
    pattern : a firing pattern applied to the spike times with ``firing_variety.apply`` (default None).
    """
    n = int(round(duration_s * sample_rate))
    cutoff = min(day.filter_hz, 0.4 * sample_rate)
    wave_t, wave = _waveform(cell, cutoff)
    times = _spike_times(cell, duration_s, rng)
    if pattern is not None:
        from .firing_variety import apply
        times = apply(pattern, times, duration_s)
    trace = np.zeros(n)
    if len(times):
        isi = np.diff(times, prepend=-np.inf)
        amplitude = (1.0 + 0.05 * rng.standard_normal(len(times))) * (1.0 - 0.3 * np.exp(-isi / 0.015))
        stretch = 1.0 + 0.02 * rng.standard_normal(len(times))
        offsets = np.arange(int(wave_t[0] * sample_rate / 1000.0), int(wave_t[-1] * sample_rate / 1000.0) + 1)
        first = np.round(times * sample_rate).astype(np.int64)
        index = first[:, None] + offsets[None, :]
        at_ms = (index / sample_rate - times[:, None]) * 1000.0 / stretch[:, None]
        values = np.interp(at_ms, wave_t, wave, left=0.0, right=0.0) * amplitude[:, None]
        inside = (index >= 0) & (index < n)
        trace += np.bincount(index[inside], weights=values[inside], minlength=n)
    if noise_source is not None:
        trace += np.asarray(noise_source[:n], dtype=np.float64)
    else:
        trace += _noise(day, n, sample_rate, cutoff, rng)
    return trace.astype(np.float32), times
