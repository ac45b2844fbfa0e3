"""The biophysical generator: synthetic loose-seal cell-attached recordings of SER and NSER cells whose
action currents come from simulated membrane dynamics (facts from docs/science.md).

It shares no code and no shape formula with the template generator (``template.py``); it follows the
same published facts by a different route. Everything below is a modelling choice, stated as such.

The cell
    One isopotential compartment with Hodgkin-Huxley-type currents: transient Na (m^3 h, Traub-Miles
    rate functions around a threshold parameter V_T), delayed-rectifier K (n^4, the same family with
    its own voltage shift and speed), a non-inactivating high-voltage Ca current (c^2, the shoulder of
    the repolarisation), an AHP K conductance and leak. The AHP conductance follows a gate q (which
    opens with 0.5 ms during the spike and closes with tau_AHP below -50 mV) through a lag tau_rise:
    in SER cells a Ca-activated (SK-like) AHP that goes on developing for milliseconds after the
    spike, in NSER cells one that is there at once. One action potential is integrated per cell and
    Na availability (RK4, steps of at most 5 us, 10 ms, a numba kernel), started by an instant 25 mV
    depolarisation of the rested cell (a pacemaker's approach to threshold is flat on this time
    scale, so the current before the spike is zero).

    Physiology is drawn per cell from class distributions that overlap in every parameter (most of
    them only in the tails of log-normals). SER (5-HT) cells: sparse, slow delayed-rectifier K
    (around 8 mS/cm^2, rate factor around 0.3) and slowly inactivating Na, a Ca shoulder in 75 % of
    cells, and the slow AHP: tau_rise 0.6-3 ms, tau_AHP log-normal around 7.3 ms (Kirby et al.
    2003). NSER (mostly fast-spiking GABAergic) cells: dense, fast, high-threshold (Kv3-like) K
    (around 70 mS/cm^2 against 15-35 of Na, rate factor around 1.3, shifted up to 12 mV), fast Na
    activation and inactivation, a fast AHP (tau_rise 0.15-0.7 ms, tau_AHP around 1.8 ms), a small
    Ca current in 15 %. So SER spikes repolarise slowly relative to their upstroke: a small, broad
    positive phase (median 0.15 of the trough against 0.36 in NSER cells, before the filter; the
    classes overlap) with a slow return, where the positive phase of NSER cells is large and brief.
    A drawn cell is kept only if its current has one clear trough, one clear positive peak and no
    second inward lobe (rejection sampling; about 40 % of SER draws and half of the NSER draws are
    redrawn).

The width
    Each cell's UDI is drawn from the class distributions of science.md: typical SER log-normal
    around 1.3 ms in 0.9-2.3 ms; atypical SER (20 %) Beta(2.2, 1.2) on 0.2-0.9 ms; NSER log-normal
    around 0.6 ms in 0.15-0.9 ms. The cell reaches it through a kinetic factor phi of its
    spike-generating machinery only: phi multiplies the Na and K gating rates (m, h, n), and the Na
    and K densities rise with it as phi^0.3 (faster gates alone cannot make a sparse-K membrane
    repolarise within 0.2 ms). The Ca current, the AHP conductance and the leak keep their densities
    and their kinetics in absolute time. That is the physical reading of an atypical SER cell: narrow
    because its Na/K kinetics are fast, while its Ca and slow AHP machinery stay those of a 5-HT cell
    (an atypical cell run 3x fast keeps tau_AHP around 7.3 ms and its slowly developing AHP, where a
    stretch of every rate would give it 2.4 ms, NSER-like). It also means that, at equal UDI, an
    atypical SER cell's trough is the sharper (a faster upstroke: median half-width 65 us against
    120 us in NSER cells, before the filter) and its positive phase the smaller, because its sparse,
    slow K makes the downstroke slow relative to the upstroke; that is a consequence of the model,
    not a published measurement. (Restricting phi to the Na/K machinery is the physical choice, not
    the source of the class signal: a pure stretch of every rate of these same membranes separates
    atypical SER from NSER cells about as well in the test file's LDA check; the signal comes from
    the class physiology.) As the UDI is no longer a pure time stretch of the membrane, phi
    is found per cell by a secant search on log UDI against log phi (a few short simulations, see
    ``kinetic_factor``) to within 2 %; the last percent or two is applied as a pure time stretch of
    the stored current, so that the UDI measured on the noise-free current is the drawn one exactly.
    phi is kept within 0.4-8 (a membrane needing more is redrawn; after 100 redraws 0.2-12 will
    do): slowing a membrane more would blunt the trough's sharp onset, which science.md reports (the
    trough about 2 samples after the -50 pA crossing).

The patch
    The recorded current is I(t) = -(C_m dV/dt + c_ion I_patch), where I_patch = w_Na I_Na +
    w_K (I_K + I_AHP) + w_Ca I_Ca is the ionic current of the membrane under the pipette, whose
    channel mix differs from the cell's average (a uniform patch would only rescale the capacitive
    current, since C_m dV/dt = -I_ion). The capacitive part dominates (c_ion 0-0.3, w_Na 0.3-1.2,
    w_K 0.7-2.5, w_Ca 0.3-1.7): a K-rich patch makes the trough larger relative to the positive
    phase (most in NSER cells, whose K current is large: one reason the classes overlap in that
    ratio) and shows the AHP conductance as a slow inward-looking tail. The sign is that of the
    amplifier in cell-attached mode: the upstroke gives the inward (negative) trough, the
    repolarisation the positive phase. The amplitude is the cell's trough as recorded: log-normal,
    median 110 pA, 50-400 pA, for a fully recovered spike after the day's filter (the filter
    attenuates a sharp trough more than the broad positive phase, so the current is scaled per
    recording); the positive/trough ratio is left to the biophysics and the filter.

    Little survives in the 4 ms window beyond the positive phase: a capacitive current is C_m dV/dt,
    and the slow AHP moves V by some 15 mV over milliseconds against an upstroke of hundreds of
    mV/ms, so the SER cell's slow return (and the NSER cell's small negative phase as its fast AHP
    recovers) are a percent of the trough or less; they show in a cell's mean, hardly in one spike.
    A single spike's class signal is the trough's sharpness and the positive phase's size, width and
    decay.

One spike to the next
    Na availability changes the spike: each spike inactivates a fraction of the Na channels slowly
    (0.5-3 % in SER, 1-5 % in NSER cells, recovering with a per-cell tau of 0.1-1 s), and the fast
    inactivation gate h recovers after the previous spike along the trajectory simulated for the cell
    (exponentially beyond it). The AP is simulated at availabilities 1.0, 0.9, ..., 0.5 once per
    cell; a spike's waveform is interpolated between the two nearest (an approximation: residual K and
    AHP conductance at short intervals are not carried over). A spike soon after the previous one is
    therefore smaller, with a slower upstroke (a broader trough); its UDI shortens slightly (a lower
    peak repolarises sooner). Independent jitters of gain (2-6 %) and time scale (0.5-2 %) per spike
    come on top.

Firing
    SER cells are noisy pacemakers: intervals are inverse-Gaussian (the first-passage time of a
    pacemaker depolarisation with noise), their mean slowly modulated (log-normal AR(1) over 5-50
    spikes, up to 40 % of the variance), rate 0.5-3 Hz (log-normal around 1.5 Hz), CV log-normal
    around 0.22 and falling with rate (CV < 0.5 in about 97 % of cells). NSER cells fire irregularly
    at 3-20 Hz (log-normal around 9 Hz) with CV 0.5-1.3: tonic intervals (4 ms dead time plus
    inverse-Gaussian), in half of the cells mixed with 2-15 % of burst intervals (4 ms dead time plus
    an exponential of 2-10 ms). Rate and CV are exact in expectation. No interval is shorter than 4 ms.

The recording day
    Noise is drawn in the frequency domain from a sum of spectra: white, Lorentzian seal noise (corner
    0.2-3 kHz), 1/f^alpha (alpha 0.7-1.3) and an f^2 component (the amplifier's voltage noise on the
    input capacitance), each level randomised and set as its RMS after the day's filter (together a
    band of about +-10-18 pA); line hum at 50 or 60 Hz with randomly weighted harmonics up to the 5th;
    slow drift as a sum of 2-5 slow sinusoids (0.003-0.3 Hz) and a linear trend (not 1/f^2 noise).
    Artefacts, each kind present or not and at its own rate per day: capacitive transients (single or
    on/off pairs, either sign, time constants 0.03-0.5 ms), slow synaptic-like inward currents, and
    steps of the baseline (seal changes) that settle exponentially. The amplifier's low-pass is a
    causal analog filter, Bessel or Butterworth with 4 or 8 poles and a -3 dB cut-off of 3-10 kHz
    (log-uniform; below 3 kHz an 8-pole filter smooths a 0.3-0.9 ms spike until the classes hardly
    differ), applied by evaluating H(j omega) on the FFT grid; its delay shifts the troughs,
    and the returned times follow them. The sample rate is the caller's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numba import njit

from raphe.core.specs import ATYPICAL_UDI_MS, CLASSES, NSER, SER

from . import firing_variety

ATYPICAL_FRACTION = 0.2
MIN_ISI_S = 0.004

# --- the membrane model --------------------------------------------------------------------------

E_NA, E_K, E_CA = 50.0, -90.0, 120.0  # mV
(P_GNA, P_GK, P_GCA, P_GAHP, P_GL, P_EL, P_VT, P_FM, P_FH, P_FN, P_SK, P_CV, P_CT, P_QV, P_TAHP,
 P_AVAIL, P_PHI, P_GPHI, P_TRISE) = range(19)
N_PARAMS = 19
N_STATE = 7  # V, m, h, n, c, q, r
REC_V, REC_CAP, REC_NA, REC_K, REC_AHP, REC_CA, REC_H = range(7)
N_REC = 7

REF_DT_MS = 0.005  # the stored grid's step in reference time (real time x phi)
SIM_MS = 10.0  # real time simulated after the depolarisation
REF_PRE_MS = 3.0  # rest before it (zero current), reference time
KICK_MV = 25.0  # the depolarisation that starts the AP
AVAILABILITY = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)  # Na availabilities simulated per cell
TAPER_MS = 3.0  # the kernel's last TAPER_MS (real time) fade to zero
PHI_RANGE = (0.4, 8.0)  # Na/K kinetic factors accepted (slower would blunt the trough's sharp onset)
UDI_TOLERANCE = 0.02  # the root-find on phi stops within this relative UDI error
DENSITY_EXPONENT = 0.3  # Na and K densities rise as phi**DENSITY_EXPONENT with their kinetics


@njit(cache=True, nogil=True, inline="always")
def _vtrap(x, k):
    """x / (1 - exp(-x / k)), finite at x = 0."""
    u = x / k
    if abs(u) < 1e-6:
        return k * (1.0 + 0.5 * u)
    return x / (1.0 - np.exp(-u))


@njit(cache=True, nogil=True)
def _rhs(y, p, dy, rec):
    """Time derivatives of the state (ms^-1, mV/ms) and the currents (uA/cm^2, outward positive).

    Only the Na and K gates run at the kinetic factor p[P_PHI] (their densities scaled by
    p[P_GPHI]); the Ca gate c, the AHP gate q and the AHP conductance's lag r run in absolute ms."""
    v, m, h, n, c, q, r = y[0], y[1], y[2], y[3], y[4], y[5], y[6]
    u = v - p[P_VT]
    am = 0.32 * _vtrap(u - 13.0, 4.0)
    bm = 0.28 * _vtrap(40.0 - u, 5.0)
    ah = 0.128 * np.exp(-(u - 17.0) / 18.0)
    bh = 4.0 / (1.0 + np.exp(-(u - 40.0) / 5.0))
    uk = u - p[P_SK]
    an = 0.032 * _vtrap(uk - 15.0, 5.0)
    bn = 0.5 * np.exp(-(uk - 10.0) / 40.0)
    cinf = 1.0 / (1.0 + np.exp(-(v - p[P_CV]) / 5.0))
    qinf = 1.0 / (1.0 + np.exp(-(v - p[P_QV]) / 5.0))
    tauq = 0.5 + (p[P_TAHP] - 0.5) / (1.0 + np.exp((v + 50.0) / 4.0))
    ina = p[P_GPHI] * p[P_AVAIL] * p[P_GNA] * m * m * m * h * (v - E_NA)
    ik = p[P_GPHI] * p[P_GK] * n * n * n * n * (v - E_K)
    ica = p[P_GCA] * c * c * (v - E_CA)
    iahp = p[P_GAHP] * r * (v - E_K)
    il = p[P_GL] * (v - p[P_EL])
    dy[0] = -(ina + ik + ica + iahp + il)  # C_m = 1 uF/cm^2
    dy[1] = p[P_PHI] * p[P_FM] * (am * (1.0 - m) - bm * m)
    dy[2] = p[P_PHI] * p[P_FH] * (ah * (1.0 - h) - bh * h)
    dy[3] = p[P_PHI] * p[P_FN] * (an * (1.0 - n) - bn * n)
    dy[4] = (cinf - c) / p[P_CT]
    dy[5] = (qinf - q) / tauq
    dy[6] = (q - r) / p[P_TRISE]
    rec[REC_V] = v
    rec[REC_CAP] = dy[0]
    rec[REC_NA] = ina
    rec[REC_K] = ik
    rec[REC_AHP] = iahp
    rec[REC_CA] = ica
    rec[REC_H] = h


@njit(cache=True, nogil=True)
def _simulate(y0, p, dt, n_steps, record, stride=1):
    """RK4 from state ``y0``; returns the recorded variables at every ``stride``-th step (if
    ``record``) and the final state."""
    y = y0.copy()
    k1 = np.empty(N_STATE)
    k2 = np.empty(N_STATE)
    k3 = np.empty(N_STATE)
    k4 = np.empty(N_STATE)
    tmp = np.empty(N_STATE)
    scratch = np.empty(N_REC)
    n_out = n_steps // stride if record else 1
    out = np.zeros((n_out, N_REC))
    for i in range(n_steps):
        keep = record and i % stride == 0 and i // stride < n_out
        _rhs(y, p, k1, out[i // stride] if keep else scratch)
        for j in range(N_STATE):
            tmp[j] = y[j] + 0.5 * dt * k1[j]
        _rhs(tmp, p, k2, scratch)
        for j in range(N_STATE):
            tmp[j] = y[j] + 0.5 * dt * k2[j]
        _rhs(tmp, p, k3, scratch)
        for j in range(N_STATE):
            tmp[j] = y[j] + dt * k3[j]
        _rhs(tmp, p, k4, scratch)
        for j in range(N_STATE):
            y[j] += dt / 6.0 * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j])
    return out, y


@dataclass(frozen=True, slots=True)
class Membrane:
    """One cell's membrane at kinetic factor 1 (mS/cm^2, mV, ms; C_m = 1 uF/cm^2).

    Rate factors multiply the Traub-Miles rate functions of each gate; ``k_shift_mv`` moves the K
    activation to higher voltages (Kv3-like when large); ``ahp_tau_ms`` is the deactivation time
    constant of the AHP gate below -50 mV and ``ahp_rise_ms`` the lag with which the AHP conductance
    follows it. :meth:`params` at kinetic factor ``phi`` multiplies the Na and K gating rates by phi
    and the Na and K densities by phi**DENSITY_EXPONENT; the Ca, AHP and leak terms are absolute.
    All ranges are modelling choices (see the module docstring); the classes overlap in every one.
    """

    g_na: float
    g_k: float
    g_ca: float
    g_ahp: float
    g_leak: float
    e_leak: float
    v_t: float
    na_activation_rate: float
    na_inactivation_rate: float
    k_rate: float
    k_shift_mv: float
    ca_half_mv: float
    ca_tau_ms: float
    ahp_half_mv: float
    ahp_tau_ms: float
    ahp_rise_ms: float

    def params(self, availability: float = 1.0, phi: float = 1.0) -> np.ndarray:
        p = np.empty(N_PARAMS)
        p[P_GNA], p[P_GK], p[P_GCA], p[P_GAHP] = self.g_na, self.g_k, self.g_ca, self.g_ahp
        p[P_GL], p[P_EL], p[P_VT] = self.g_leak, self.e_leak, self.v_t
        p[P_FM], p[P_FH], p[P_FN] = self.na_activation_rate, self.na_inactivation_rate, self.k_rate
        p[P_SK], p[P_CV], p[P_CT] = self.k_shift_mv, self.ca_half_mv, self.ca_tau_ms
        p[P_QV], p[P_TAHP], p[P_AVAIL] = self.ahp_half_mv, self.ahp_tau_ms, availability
        p[P_PHI], p[P_GPHI] = phi, phi**DENSITY_EXPONENT
        p[P_TRISE] = self.ahp_rise_ms
        return p


@dataclass(frozen=True, slots=True)
class Patch:
    """The membrane under the pipette: ``ionic`` is c_ion (the capacitive current has weight 1) and
    the w_* are its channel densities relative to the cell's average (modelling choices)."""

    ionic: float
    w_na: float
    w_k: float
    w_ca: float


@dataclass(frozen=True, slots=True)
class Firing:
    """How the cell fires, besides its rate and CV.

    SER (pacemaker): ``modulation_share`` of the squared CV comes from a slow log-normal modulation
    of the mean interval, correlated over ``modulation_spikes`` spikes; the rest is the inverse-
    Gaussian spread of the pacemaker. NSER (irregular): a fraction ``burst_prob`` of intervals are
    burst intervals (4 ms dead time plus an exponential of mean ``burst_ms``); the others are tonic
    (4 ms dead time plus inverse-Gaussian), their mean and spread solved for the cell's rate and CV.
    """

    kind: str
    modulation_share: float = 0.0
    modulation_spikes: float = 1.0
    burst_prob: float = 0.0
    burst_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class Cell:
    """The ground truth of one synthetic cell.

    ``udi_ms`` is the UDI of its noise-free, fully recovered action current (trough to positive
    peak); ``trough_pa`` (< 0) that spike's trough as recorded, after the day's filter (which
    :func:`synth_trace` scales for; the stored ``waveforms`` have it before the filter); ``rate_hz``
    and ``cv`` its firing. The membrane, patch and firing choices are kept, with ``kinetics`` (the
    Na/K kinetic factor the membrane was simulated at) and ``phi`` (the time scale of the stored
    grid: real time is reference time / phi; ``kinetics`` times the last, pure stretch of at most
    3 % that makes the UDI exact), the per-spike variability (``slow_inactivation``
    per spike, recovering with ``slow_recovery_s``; ``gain_jitter`` and ``width_jitter`` are relative
    SDs) and the cell's reference action currents: ``waveforms`` (pA, one row for each of the first
    ``levels`` availabilities of ``AVAILABILITY``, on the REF_DT_MS grid, troughs aligned at
    ``trough_index``), ``h_recovery`` (the fast Na availability after a spike, on the same grid from
    its trough; ``h_tau_ms`` beyond it) and ``lead_ms`` (from the AP's start to its trough), all in
    reference time. The arrays take no part in equality or hashing.
    """

    label: str
    atypical: bool
    udi_ms: float
    trough_pa: float
    rate_hz: float
    cv: float
    membrane: Membrane
    patch: Patch
    firing: Firing
    phi: float
    kinetics: float
    slow_inactivation: float
    slow_recovery_s: float
    gain_jitter: float
    width_jitter: float
    levels: int
    trough_index: int
    lead_ms: float
    h_tau_ms: float
    waveforms: np.ndarray = field(compare=False, repr=False)
    h_recovery: np.ndarray = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Day:
    """The rig of one recording day (modelling choices, each drawn per day by :func:`draw_day`).

    Noise levels are the RMS (pA) each component contributes after the day's filter: ``white_pa``,
    ``seal_pa`` (Lorentzian with corner ``seal_corner_hz``), ``flicker_pa`` (1/f^``flicker_exponent``),
    ``capacitive_pa`` (rising as f^2 up to the filter). Hum: ``hum_pa`` at ``hum_hz`` (50 or 60 Hz),
    harmonics 2-5 at the relative weights ``hum_h2`` ... ``hum_h5``. Drift: ``drift_pa`` RMS over
    ``drift_sines`` slow sinusoids, plus a trend of ``drift_trend_pa_per_min``. Artefacts (per second,
    0 = absent that day): capacitive transients (``transient_hz``, median size ``transient_pa``,
    median tau ``transient_tau_ms``), synaptic-like inward currents (``synaptic_hz``, median
    ``synaptic_pa``, median decay ``synaptic_decay_ms``), baseline steps (``step_hz``, median
    ``step_pa``). Filter: ``filter_kind`` ("bessel" or "butterworth"), ``filter_poles`` (4 or 8),
    ``lowpass_hz`` (-3 dB).
    """

    name: str
    white_pa: float
    seal_pa: float
    seal_corner_hz: float
    flicker_pa: float
    flicker_exponent: float
    capacitive_pa: float
    hum_pa: float
    hum_hz: float
    hum_h2: float
    hum_h3: float
    hum_h4: float
    hum_h5: float
    drift_pa: float
    drift_sines: int
    drift_trend_pa_per_min: float
    transient_hz: float
    transient_pa: float
    transient_tau_ms: float
    synaptic_hz: float
    synaptic_pa: float
    synaptic_decay_ms: float
    step_hz: float
    step_pa: float
    filter_kind: str
    filter_poles: int
    lowpass_hz: float


# --- drawing a cell ------------------------------------------------------------------------------

def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _truncated_lognormal(rng: np.random.Generator, median: float, sigma: float, low: float, high: float) -> float:
    while True:
        x = float(rng.lognormal(np.log(median), sigma))
        if low <= x <= high:
            return x


def draw_membrane(label: str, rng: np.random.Generator) -> Membrane:
    """A membrane of class ``label`` at kinetic factor 1 (ranges are modelling choices; the classes
    overlap in every parameter, most of them only in the tails of log-normal distributions).

    SER: sparse, slow delayed-rectifier K and slowly inactivating Na (a slow repolarisation for the
    upstroke), a Ca current in most cells (the shoulder), an AHP conductance that develops over
    0.6-3 ms and decays with tau_AHP around 7.3 ms. NSER (fast-spiking GABAergic): dense, fast,
    high-threshold (Kv3-like) K against less Na, fast Na activation and inactivation, an AHP that is
    there at once (0.15-0.7 ms) and decays around 1.8 ms, rarely a little Ca.
    """
    if label == SER:
        g_na, g_k = rng.uniform(20.0, 50.0), _truncated_lognormal(rng, 8.0, 0.6, 3.0, 50.0)
        v_t = rng.uniform(-62.0, -54.0)
        na_m = _truncated_lognormal(rng, 0.9, 0.35, 0.4, 2.0)
        na_h = _truncated_lognormal(rng, 0.42, 0.3, 0.2, 1.0)
        k_rate, k_shift = _truncated_lognormal(rng, 0.3, 0.35, 0.1, 1.0), rng.uniform(-5.0, 8.0)
        g_ca = rng.uniform(0.2, 1.0) if rng.random() < 0.75 else rng.uniform(0.0, 0.2)
        g_ahp = rng.uniform(1.0, 5.0)
        ahp_tau, ahp_rise = _truncated_lognormal(rng, 7.3, 0.3, 3.5, 15.0), _log_uniform(rng, 0.6, 3.0)
    elif label == NSER:
        g_na, g_k = rng.uniform(15.0, 35.0), _truncated_lognormal(rng, 70.0, 0.6, 10.0, 250.0)
        v_t = rng.uniform(-64.0, -56.0)
        na_m = _truncated_lognormal(rng, 2.5, 0.3, 1.0, 5.0)
        na_h = _truncated_lognormal(rng, 1.2, 0.3, 0.4, 2.5)
        k_rate, k_shift = _truncated_lognormal(rng, 1.3, 0.35, 0.4, 3.0), rng.uniform(0.0, 12.0)
        g_ca = rng.uniform(0.0, 0.2) if rng.random() < 0.15 else 0.0
        g_ahp = rng.uniform(1.0, 6.0)
        ahp_tau, ahp_rise = _truncated_lognormal(rng, 1.8, 0.3, 0.8, 4.0), _log_uniform(rng, 0.15, 0.7)
    else:
        raise ValueError(f"unknown class {label!r}")
    return Membrane(g_na=float(g_na), g_k=float(g_k), g_ca=float(g_ca), g_ahp=float(g_ahp),
                    g_leak=float(rng.uniform(0.05, 0.2)), e_leak=float(rng.uniform(-72.0, -62.0)),
                    v_t=float(v_t), na_activation_rate=na_m, na_inactivation_rate=na_h,
                    k_rate=k_rate, k_shift_mv=float(k_shift), ca_half_mv=float(rng.uniform(-20.0, -8.0)),
                    ca_tau_ms=float(rng.uniform(0.3, 1.0)), ahp_half_mv=float(rng.uniform(-20.0, -5.0)),
                    ahp_tau_ms=ahp_tau, ahp_rise_ms=ahp_rise)


def draw_patch(rng: np.random.Generator) -> Patch:
    """The patch under the pipette: mostly capacitive, with a K-leaning ionic mix (modelling choices)."""
    return Patch(ionic=float(rng.uniform(0.0, 0.3)), w_na=float(rng.uniform(0.3, 1.2)),
                 w_k=float(rng.uniform(0.7, 2.5)), w_ca=float(rng.uniform(0.3, 1.7)))


def rest_state(membrane: Membrane) -> tuple[np.ndarray, float]:
    """The resting state (80 ms of relaxation from the leak potential) and how far V still moves in
    the next 10 ms (mV; large when the membrane has no stable rest)."""
    p = membrane.params()
    y = np.array([membrane.e_leak, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    _, y = _simulate(y, p, 0.02, 4000, False)
    _, y2 = _simulate(y, p, 0.02, 500, False)
    return y2, abs(float(y2[0] - y[0]))


def rest_at(membrane: Membrane, rest: np.ndarray, phi: float) -> np.ndarray:
    """The resting state at kinetic factor ``phi``: 20 ms of relaxation from ``rest`` (the rest at
    phi = 1; the Na/K window currents at rest are small, so it moves little)."""
    if phi == 1.0:
        return rest
    dt = min(0.02, 0.08 / phi)
    _, y = _simulate(rest, membrane.params(1.0, phi), dt, int(round(20.0 / dt)), False)
    return y


def simulate_ap(membrane: Membrane, rest: np.ndarray, phi: float = 1.0, availability: float = 1.0,
                span_ms: float = SIM_MS) -> np.ndarray:
    """One AP with Na/K kinetic factor ``phi`` after a KICK_MV depolarisation of ``rest``: the
    recorded variables (REC_*) every REF_DT_MS / phi ms (real time) for ``span_ms`` (real time).
    The step is at most 5 us (sub-steps below phi = 1)."""
    y = rest.copy()
    y[0] += KICK_MV
    stride = max(1, int(math.ceil(1.0 / phi)))
    n = int(round(span_ms * phi / REF_DT_MS))
    out, _ = _simulate(y, membrane.params(availability, phi), REF_DT_MS / phi / stride, n * stride, True, stride)
    return out


def patch_current(rec: np.ndarray, patch: Patch) -> np.ndarray:
    """The recorded current (arbitrary units, sign as recorded) of a simulated AP."""
    ionic = (patch.w_na * rec[:, REC_NA] + patch.w_k * (rec[:, REC_K] + rec[:, REC_AHP])
             + patch.w_ca * rec[:, REC_CA])
    return -(rec[:, REC_CAP] + patch.ionic * ionic)


def _spike_count(v: np.ndarray) -> int:
    above = v > -20.0
    return int(np.count_nonzero(above[1:] & ~above[:-1]) + above[0])


def _refined_extremum(x: np.ndarray, i: int) -> float:
    """Sub-sample position of the extremum at index ``i`` (parabola through three points)."""
    if 0 < i < x.size - 1:
        a, b, c = x[i - 1], x[i], x[i + 1]
        den = a - 2.0 * b + c
        if den != 0.0:
            return i + 0.5 * (a - c) / den
    return float(i)


def udi_samples(current: np.ndarray) -> tuple[float, float]:
    """(trough position, positive peak position) in samples: the global minimum, then the maximum
    after it, both refined to sub-sample precision."""
    i0 = int(np.argmin(current))
    i1 = i0 + int(np.argmax(current[i0:]))
    return _refined_extremum(current, i0), _refined_extremum(current, i1)


def _envelope(n_pre: int, n_sim: int, phi: float) -> np.ndarray:
    """Zero before the AP's start, a rise over 50 us (reference time) at it, a half-cosine fade over
    the last TAPER_MS (real time)."""
    env = np.ones(n_pre + n_sim)
    env[:n_pre] = 0.0
    rise = int(round(0.05 / REF_DT_MS))
    env[n_pre:n_pre + rise] = 0.5 - 0.5 * np.cos(np.pi * (np.arange(rise) + 0.5) / rise)
    fade = int(round(TAPER_MS * phi / REF_DT_MS))
    env[-fade:] *= 0.5 + 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)
    return env


def _acceptable(current: np.ndarray, v: np.ndarray, phi: float) -> bool:
    """The shape checks a drawn cell must pass: one overshooting AP that returns towards rest, a
    trough that is the current's global minimum, a positive phase of at least 4 % of it inside the
    kernel, and no second inward lobe or pre-trough larger than a quarter of the trough."""
    if v.max() < -5.0 or _spike_count(v) != 1 or v[-1] > -45.0:
        return False
    i0 = int(np.argmin(current))
    i1 = i0 + int(np.argmax(current[i0:]))
    trough = -current[i0]
    fade = int(round(TAPER_MS * phi / REF_DT_MS))
    if current[i1] < 0.04 * trough or i1 >= current.size - fade:
        return False
    pre = current[:max(1, i0 - int(round(0.2 / REF_DT_MS)))]
    if pre.min() < -0.25 * trough or current[i1:].min() < -0.25 * trough:
        return False
    recovered = i0 + int(np.argmax(current[i0:] > -0.3 * trough))
    if current[recovered:].min() < -0.35 * trough:  # a second trough
        return False
    return _single_positive_peak(current[i0:i1 + 1], current[i1:])


def _single_positive_peak(rising: np.ndarray, falling: np.ndarray) -> bool:
    """No second positive peak within 15 % of the main one's height and separated from it by a dip
    of more than 15 % (so that the UDI is well defined and stable from spike to spike)."""
    top = falling[0]
    for part in (rising[::-1], falling):
        low = np.minimum.accumulate(part)  # the deepest dip between the main peak and each point
        if np.any((part > 0.85 * top) & (part - low > 0.15 * top)):
            return False
    return True


def draw_udi(label: str, atypical: bool, rng: np.random.Generator) -> float:
    """A target UDI from science.md's class distributions (the shapes are modelling choices)."""
    if label == SER and atypical:
        return float(0.2 + (ATYPICAL_UDI_MS - 0.2) * rng.beta(2.2, 1.2) * 0.999)
    if label == SER:
        return _truncated_lognormal(rng, 1.3, 0.25, ATYPICAL_UDI_MS, 2.3)
    return _truncated_lognormal(rng, 0.6, 0.3, 0.15, 0.9)


def draw_firing(label: str, rng: np.random.Generator) -> tuple[float, float, Firing]:
    """(rate in Hz, ISI CV, the rest of the firing process) for class ``label``."""
    if label == SER:
        rate = _truncated_lognormal(rng, 1.5, 0.4, 0.5, 3.0)
        while True:  # CV falls with rate (Mlinar et al. 2016: r = -0.33); below 0.5 in ~97 % of cells
            cv = float(np.exp(np.log(0.22) - 0.3 * np.log(rate / 1.5) + rng.normal(0.0, 0.42)))
            if 0.05 <= cv <= 0.9:
                break
        return rate, cv, Firing("pacemaker", modulation_share=float(rng.uniform(0.0, 0.4)),
                                modulation_spikes=_log_uniform(rng, 5.0, 50.0))
    rate = _truncated_lognormal(rng, 9.0, 0.45, 3.0, 20.0)
    cv = float(rng.uniform(0.5, 1.3))
    burst = float(rng.uniform(0.02, 0.15)) if rng.random() < 0.5 else 0.0
    firing = Firing("irregular", burst_prob=burst, burst_ms=float(rng.uniform(2.0, 10.0)))
    if _tonic_moments(rate, cv, firing) is None:
        firing = Firing("irregular", burst_prob=0.0, burst_ms=firing.burst_ms)
    return rate, cv, firing


def _udi_ms(current: np.ndarray, phi: float) -> float:
    """Trough to positive peak (real ms) of a current on the grid of kinetic factor ``phi``."""
    t0, t1 = udi_samples(current)
    return (t1 - t0) * REF_DT_MS / phi


def kinetic_factor(membrane: Membrane, patch: Patch, rest: np.ndarray, udi_ms: float) -> float | None:
    """The Na/K kinetic factor phi at which the membrane's action current has a UDI within
    UDI_TOLERANCE of ``udi_ms``: a secant search on log UDI against log phi (the UDI falls with phi,
    roughly as 1/phi), a few short simulations of ``2.5 + 4 UDI`` ms (enough for the positive peak).
    None if phi leaves twice PHI_RANGE, the AP fails, or the search does not settle in 6 steps (a
    UDI that jumps between two positive peaks, or one that no phi reaches)."""
    span = min(SIM_MS, 2.5 + 4.0 * udi_ms)
    phi, slope, last = 1.0, 1.0, None
    for _ in range(6):
        rec = simulate_ap(membrane, rest_at(membrane, rest, phi), phi, span_ms=span)
        if rec[:, REC_V].max() < -5.0:
            return None
        udi = _udi_ms(patch_current(rec, patch), phi)
        if udi <= 0.0:
            return None
        error = math.log(udi / udi_ms)
        if abs(error) < UDI_TOLERANCE:
            return phi
        if last is not None and phi != last[0]:
            slope = min(max(-(error - last[1]) / math.log(phi / last[0]), 0.4), 3.0)
        last = (phi, error)
        phi *= math.exp(error / slope)
        if not 0.5 * PHI_RANGE[0] <= phi <= 2.0 * PHI_RANGE[1]:
            return None
    return None


def draw_cell(label: str, rng: np.random.Generator) -> Cell:
    """A cell of class ``label`` (SER or NSER): its membrane, patch, width, amplitude and firing.

    Finds the Na/K kinetic factor for the drawn UDI (a few short simulations), then runs the cell's
    AP once per Na availability and keeps the action currents (about 20 ms per cell, redraws
    included). A membrane whose shape fails the checks, or that would need a kinetic factor outside
    PHI_RANGE (after 100 redraws: 0.2-12), is redrawn.
    """
    if label not in CLASSES:
        raise ValueError(f"unknown class {label!r}")
    atypical = label == SER and bool(rng.random() < ATYPICAL_FRACTION)
    udi = draw_udi(label, atypical, rng)
    trough = -_truncated_lognormal(rng, 110.0, 0.4, 50.0, 400.0)
    attempts = 0
    while True:
        attempts += 1
        if attempts > 1000:
            raise RuntimeError(f"no acceptable {label} membrane for a UDI of {udi:.3f} ms")
        membrane, patch = draw_membrane(label, rng), draw_patch(rng)
        rest, moving = rest_state(membrane)
        if moving > 0.05:
            continue
        low, high = PHI_RANGE if attempts <= 100 else (0.5 * PHI_RANGE[0], 1.5 * PHI_RANGE[1])
        kinetics = kinetic_factor(membrane, patch, rest, udi)
        if kinetics is None or not low <= kinetics <= high:
            continue
        rest = rest_at(membrane, rest, kinetics)
        rec = simulate_ap(membrane, rest, kinetics)
        current = patch_current(rec, patch)
        if not _acceptable(current, rec[:, REC_V], kinetics):
            continue
        residual = _udi_ms(current, kinetics) / udi  # the full span's UDI, as the kernel will have it
        if abs(residual - 1.0) < 1.5 * UDI_TOLERANCE:
            break
    phi = kinetics * residual  # the last percent or two as a pure time stretch
    n_pre, n_sim = int(round(REF_PRE_MS / REF_DT_MS)), current.size
    env = _envelope(n_pre, n_sim, kinetics)
    i0 = int(np.argmin(current))
    trough_index = n_pre + i0
    waveforms = [np.concatenate([np.zeros(n_pre), current]) * env]
    for availability in AVAILABILITY[1:]:
        rec_a = simulate_ap(membrane, rest, kinetics, availability)
        cur_a = patch_current(rec_a, patch)
        if rec_a[:, REC_V].max() < -20.0 or _spike_count(rec_a[:, REC_V]) != 1:
            break
        shift = i0 - int(np.argmin(cur_a))  # align the troughs
        w = np.zeros(n_pre + n_sim)
        lo, hi = max(0, n_pre + shift), min(n_pre + n_sim, n_pre + shift + n_sim)
        w[lo:hi] = cur_a[lo - n_pre - shift:hi - n_pre - shift]
        waveforms.append(w * env)
    scale = trough / waveforms[0][trough_index]
    waveforms = np.array(waveforms) * scale
    h = rec[i0:, REC_H] / rest[2]
    # tau of h at rest (reference ms), for the recovery beyond the simulated span
    u = rest[0] - membrane.v_t
    ah = 0.128 * math.exp(-(u - 17.0) / 18.0)
    bh = 4.0 / (1.0 + math.exp(-(u - 40.0) / 5.0))
    h_tau = phi / (kinetics * membrane.na_inactivation_rate * (ah + bh))
    rate, cv, firing = draw_firing(label, rng)
    if label == SER:
        slow, recovery = float(rng.uniform(0.005, 0.03)), _log_uniform(rng, 0.1, 1.0)
    else:
        slow, recovery = float(rng.uniform(0.01, 0.05)), _log_uniform(rng, 0.1, 1.0)
    return Cell(label=label, atypical=atypical, udi_ms=float(udi), trough_pa=float(trough), rate_hz=rate, cv=cv,
                membrane=membrane, patch=patch, firing=firing, phi=float(phi), kinetics=float(kinetics),
                slow_inactivation=slow, slow_recovery_s=recovery, gain_jitter=float(rng.uniform(0.02, 0.06)),
                width_jitter=float(rng.uniform(0.005, 0.02)), levels=len(waveforms), trough_index=trough_index,
                lead_ms=float(i0 * REF_DT_MS), h_tau_ms=float(h_tau), waveforms=waveforms,
                h_recovery=np.minimum(h, 1.0))


def measured_udi_ms(cell: Cell) -> float:
    """The UDI of the cell's noise-free, fully recovered action current as an experimenter measures
    it: from the trough to the following positive peak."""
    t0, t1 = udi_samples(cell.waveforms[0])
    return float((t1 - t0) * REF_DT_MS / cell.phi)


# --- firing ---------------------------------------------------------------------------------------

def _tonic_moments(rate: float, cv: float, firing: Firing) -> tuple[float, float] | None:
    """(mean, variance) in s and s^2 of an irregular cell's tonic intervals, or None if the burst
    share leaves no room for them."""
    mean, second = 1.0 / rate, (1.0 + cv * cv) / rate**2
    p = firing.burst_prob
    if p == 0.0:
        return mean, second - mean * mean
    b = firing.burst_ms / 1000.0
    burst_mean, burst_second = MIN_ISI_S + b, (MIN_ISI_S + b) ** 2 + b * b
    tonic_mean = (mean - p * burst_mean) / (1.0 - p)
    tonic_var = (second - p * burst_second) / (1.0 - p) - tonic_mean**2
    if tonic_mean <= 2 * MIN_ISI_S or tonic_var <= (0.2 * (tonic_mean - MIN_ISI_S)) ** 2:
        return None
    return tonic_mean, tonic_var


def intervals(cell: Cell, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` successive inter-spike intervals (s) of the cell's firing process."""
    firing = cell.firing
    if firing.kind == "pacemaker":
        cv2 = cell.cv**2
        var_log = math.log1p(firing.modulation_share * cv2)
        inv_shape = (1.0 + cv2) / (1.0 + firing.modulation_share * cv2) - 1.0
        w = rng.wald(1.0, 1.0 / inv_shape, count) if inv_shape > 1e-9 else np.ones(count)
        rho = math.exp(-1.0 / firing.modulation_spikes)
        drive = rng.normal(0.0, 1.0, count) * math.sqrt(var_log * (1.0 - rho * rho))
        x = np.empty(count)
        x[0] = rng.normal(0.0, math.sqrt(var_log))
        for i in range(1, count):  # AR(1) of the log mean interval
            x[i] = rho * x[i - 1] + drive[i]
        isi = w * np.exp(x - 0.5 * var_log) / cell.rate_hz
        return np.maximum(isi, MIN_ISI_S)
    moments = _tonic_moments(cell.rate_hz, cell.cv, firing)
    if moments is None:  # no room for the bursts at this rate and CV: tonic intervals alone
        firing = Firing("irregular")
        moments = _tonic_moments(cell.rate_hz, cell.cv, firing)
    tonic_mean, tonic_var = moments
    mu = tonic_mean - MIN_ISI_S
    isi = MIN_ISI_S + rng.wald(mu, mu**3 / tonic_var, count)
    if firing.burst_prob > 0.0:
        burst = rng.random(count) < firing.burst_prob
        isi[burst] = MIN_ISI_S + rng.exponential(firing.burst_ms / 1000.0, int(burst.sum()))
    return isi


def spike_times(cell: Cell, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Trough times (s) in [0, duration_s - 0.01): the cell's firing process, started in the middle
    of an interval."""
    count = int(duration_s * cell.rate_hz * 1.5) + 20
    parts, total = [], 0.0
    start = None
    while True:
        isi = intervals(cell, count, rng)
        if start is None:
            start = rng.uniform(0.0, 1.0) * isi[0]
            isi = isi[1:]
        parts.append(isi)
        total += isi.sum()
        if start + total >= duration_s:
            break
    times = start + np.concatenate([[0.0], np.cumsum(np.concatenate(parts))])
    return times[times < duration_s - 0.01]


def availability(cell: Cell, isi_s: np.ndarray) -> np.ndarray:
    """Na availability at each of successive spikes, given the interval before each (s): slow
    inactivation (a fraction per spike, recovering exponentially; it starts from its steady state at
    the cell's rate, and an infinite interval, an unknown history, keeps it) times the fast recovery
    of h after the previous spike (along the simulated trajectory, then exponentially)."""
    isi = np.asarray(isi_s, float)
    finite = np.isfinite(isi)
    t_ref = np.where(finite, isi * 1000.0 * cell.phi - cell.lead_ms, np.inf)  # previous trough to onset
    h = cell.h_recovery
    n = h.size
    idx = t_ref / REF_DT_MS
    fast = np.ones(isi.size)
    inside = idx < n - 1
    fast[inside] = np.interp(np.maximum(idx[inside], 0.0), np.arange(n), h)
    later = ~inside & finite
    fast[later] = 1.0 - (1.0 - h[-1]) * np.exp(-(t_ref[later] - (n - 1) * REF_DT_MS) / cell.h_tau_ms)
    delta, tau = cell.slow_inactivation, cell.slow_recovery_s
    e = math.exp(-1.0 / (cell.rate_hz * tau))
    s = (1.0 - e) / (1.0 - (1.0 - delta) * e)  # s = 1 - (1 - s (1 - delta)) e at the nominal rate
    slow = np.empty(isi.size)
    for k in range(isi.size):
        if finite[k]:
            s = 1.0 - (1.0 - s * (1.0 - delta)) * math.exp(-isi[k] / tau)
        slow[k] = s
    return slow * fast


# --- spikes into a trace ----------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _add_spikes(trace, sample_rate, times, positions, gains, stretches, waveforms, trough_index, phi):
    """Add each spike's action current: the cell's reference waveform interpolated between the two
    availability levels around ``positions[k]`` and in time, stretched by ``stretches[k]``/phi."""
    n = trace.size
    n_levels, n_ref = waveforms.shape
    for k in range(times.size):
        lo_level = int(positions[k])
        hi_level = min(lo_level + 1, n_levels - 1)
        frac = positions[k] - lo_level
        scale = 1000.0 * phi / stretches[k] / REF_DT_MS  # reference samples per real second
        first = int(math.ceil((times[k] - trough_index / scale) * sample_rate))
        last = int(math.floor((times[k] + (n_ref - 1 - trough_index) / scale) * sample_rate))
        first = max(first, 0)
        last = min(last, n - 1)
        for j in range(first, last + 1):
            u = trough_index + (j / sample_rate - times[k]) * scale
            i = int(math.floor(u))
            if i < 0 or i >= n_ref - 1:
                continue
            f = u - i
            a = waveforms[lo_level, i] * (1.0 - f) + waveforms[lo_level, i + 1] * f
            b = waveforms[hi_level, i] * (1.0 - f) + waveforms[hi_level, i + 1] * f
            trace[j] += gains[k] * (a * (1.0 - frac) + b * frac)


def spike_current(cell: Cell, n: int, sample_rate: float, times: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """The cell's action currents at trough ``times`` (s) on ``n`` samples, noise-free and unfiltered,
    each with its availability (from the interval before it) and small jitters."""
    trace = np.zeros(n)
    if times.size == 0:
        return trace
    isi = np.diff(np.concatenate([[times[0] - 1.0 / cell.rate_hz], times]))
    a = availability(cell, isi)
    positions = np.clip((1.0 - a) / 0.1, 0.0, cell.levels - 1.0)
    gains = np.maximum(rng.normal(1.0, cell.gain_jitter, times.size), 0.5)
    stretches = np.clip(rng.normal(1.0, cell.width_jitter, times.size), 0.9, 1.1)
    _add_spikes(trace, float(sample_rate), times.astype(np.float64), positions, gains, stretches,
                cell.waveforms, cell.trough_index, cell.phi)
    return trace


# --- the recording day --------------------------------------------------------------------------------

def draw_day(name: str, rng: np.random.Generator) -> Day:
    """One recording day's rig (every choice randomised; together a noise band of about +-10-20 pA)."""
    def maybe(p_present: float, low: float, high: float) -> float:
        return _log_uniform(rng, low, high) if rng.random() < p_present else 0.0

    return Day(
        name=name,
        white_pa=float(rng.uniform(2.0, 6.0)), seal_pa=float(rng.uniform(1.0, 5.0)),
        seal_corner_hz=_log_uniform(rng, 200.0, 3000.0), flicker_pa=float(rng.uniform(0.5, 4.0)),
        flicker_exponent=float(rng.uniform(0.7, 1.3)), capacitive_pa=float(rng.uniform(0.0, 3.0)),
        hum_pa=_log_uniform(rng, 0.2, 3.0), hum_hz=float(rng.choice([50.0, 60.0])),
        hum_h2=float(rng.uniform(0.0, 0.6)), hum_h3=float(rng.uniform(0.0, 0.6)),
        hum_h4=float(rng.uniform(0.0, 0.3)), hum_h5=float(rng.uniform(0.0, 0.3)),
        drift_pa=_log_uniform(rng, 1.0, 12.0), drift_sines=int(rng.integers(2, 6)),
        drift_trend_pa_per_min=float(rng.normal(0.0, 4.0)),
        transient_hz=maybe(0.6, 0.005, 0.3), transient_pa=_log_uniform(rng, 20.0, 300.0),
        transient_tau_ms=_log_uniform(rng, 0.03, 0.5),
        synaptic_hz=maybe(0.7, 0.05, 2.0), synaptic_pa=_log_uniform(rng, 5.0, 40.0),
        synaptic_decay_ms=_log_uniform(rng, 2.0, 20.0),
        step_hz=maybe(0.4, 0.002, 0.03), step_pa=_log_uniform(rng, 3.0, 30.0),
        filter_kind=str(rng.choice(["bessel", "butterworth"])), filter_poles=int(rng.choice([4, 8])),
        lowpass_hz=_log_uniform(rng, 3000.0, 10000.0))


@lru_cache(maxsize=8)
def _unit_poles(kind: str, order: int) -> tuple[complex, ...]:
    """The poles of a low-pass of ``kind`` and ``order`` with its -3 dB point at 1 rad/s."""
    if kind == "butterworth":
        k = np.arange(1, order + 1)
        return tuple(np.exp(1j * np.pi * (2 * k + order - 1) / (2 * order)))
    if kind != "bessel":
        raise ValueError(f"unknown filter {kind!r}")
    # reverse Bessel polynomial: a_k = (2n - k)! / (2^(n-k) k! (n-k)!)
    coeffs = [math.factorial(2 * order - k) / (2 ** (order - k) * math.factorial(k) * math.factorial(order - k))
              for k in range(order + 1)]
    poles = np.roots(coeffs[::-1])
    gain = lambda w: abs(np.prod(-poles / (1j * w - poles)))  # noqa: E731
    lo, hi = 0.1, 10.0
    for _ in range(100):  # bisection for |H(j w)| = 1/sqrt(2)
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if gain(mid) > 2**-0.5 else (lo, mid)
    return tuple(poles / math.sqrt(lo * hi))


def lowpass_response(freqs: np.ndarray, day: Day, sample_rate: float) -> np.ndarray:
    """H(j 2 pi f) of the day's analog filter (its cut-off capped at 0.45 x the sample rate)."""
    cutoff = min(day.lowpass_hz, 0.45 * sample_rate)
    s = 1j * freqs / cutoff
    response = np.ones(freqs.size, complex)
    for pole in _unit_poles(day.filter_kind, day.filter_poles):
        response *= -pole / (s - pole)
    return response


def noise_spectrum(freqs: np.ndarray, response: np.ndarray, day: Day, n: int) -> np.ndarray:
    """Expected |X_k|^2 of an n-sample rfft whose noise, after ``response``, has the day's component
    levels (each component's RMS after the filter, as Day says)."""
    weight = np.full(freqs.size, 2.0)
    weight[0] = 0.0
    if n % 2 == 0:
        weight[-1] = 1.0
    gain2 = np.abs(response) ** 2
    f = np.maximum(freqs, 1e-3)
    shapes = [(day.white_pa, np.ones(freqs.size)),
              (day.seal_pa, 1.0 / (1.0 + (f / day.seal_corner_hz) ** 2)),
              (day.flicker_pa, 1.0 / np.maximum(f, 0.5) ** day.flicker_exponent),
              (day.capacitive_pa, (f / 1000.0) ** 2)]
    psd = np.zeros(freqs.size)
    for level, shape in shapes:
        if level > 0.0:
            var = np.sum(weight * shape * gain2) / n**2
            psd += level**2 / var * shape
    return psd


def baseline_noise(n: int, sample_rate: float, day: Day, rng: np.random.Generator) -> np.ndarray:
    """The day's filtered noise and hum on ``n`` samples (no drift, no artefacts, no spikes)."""
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    response = lowpass_response(freqs, day, sample_rate)
    spectrum = _noise_coefficients(noise_spectrum(freqs, response, day, n), rng) * response
    return np.fft.irfft(spectrum, n) + hum(n, sample_rate, day, rng)


def _noise_coefficients(psd: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    amplitude = np.sqrt(psd / 2.0)
    return (rng.standard_normal(psd.size) * amplitude) + 1j * (rng.standard_normal(psd.size) * amplitude)


def hum(n: int, sample_rate: float, day: Day, rng: np.random.Generator) -> np.ndarray:
    """Line hum: the fundamental and harmonics 2-5 at the day's weights, random phases, drawn from
    one period tabulated finely."""
    table_size = 4096
    phase = np.arange(table_size) / table_size * 2.0 * np.pi
    weights = (1.0, day.hum_h2, day.hum_h3, day.hum_h4, day.hum_h5)
    period = sum(w * np.sin(h * phase + rng.uniform(0.0, 2.0 * np.pi)) for h, w in enumerate(weights, 1))
    period *= day.hum_pa / (np.std(period) or 1.0)
    cycles = (np.arange(n) * (day.hum_hz / sample_rate) + rng.uniform()) % 1.0
    return np.interp(cycles * table_size, np.arange(table_size + 1), np.append(period, period[0]))


def drift(n: int, sample_rate: float, day: Day, rng: np.random.Generator) -> np.ndarray:
    """Slow baseline wander: a few slow sinusoids (0.003-0.3 Hz) of RMS ``drift_pa`` together, plus a
    linear trend, computed at 100 Hz and interpolated."""
    step = 0.01
    coarse = np.arange(0.0, n / sample_rate + 2 * step, step)
    freqs = np.exp(rng.uniform(np.log(0.003), np.log(0.3), day.drift_sines))
    amps = rng.rayleigh(1.0, day.drift_sines)
    amps *= day.drift_pa * math.sqrt(2.0) / (np.sqrt(np.sum(amps**2)) or 1.0)
    wander = sum(a * np.sin(2 * np.pi * f * coarse + rng.uniform(0, 2 * np.pi)) for a, f in zip(amps, freqs))
    wander = wander + day.drift_trend_pa_per_min / 60.0 * (coarse - coarse[-1] / 2)
    return np.interp(np.arange(n) / sample_rate, coarse, wander)


def add_artefacts(trace: np.ndarray, sample_rate: float, day: Day, rng: np.random.Generator) -> None:
    """Non-spike events at the day's rates: capacitive transients (single or on/off pairs, either
    sign), synaptic-like inward currents (difference of exponentials) and baseline steps that settle
    exponentially."""
    n = trace.size
    duration = n / sample_rate
    ms = 1000.0 / sample_rate

    def add(start: int, shape: np.ndarray) -> None:
        stop = min(n, start + shape.size)
        if start < n:
            trace[start:stop] += shape[: stop - start]

    for start in rng.integers(0, n, rng.poisson(day.transient_hz * duration)):
        tau = day.transient_tau_ms * rng.lognormal(0.0, 0.4)
        size = rng.choice([-1.0, 1.0]) * day.transient_pa * rng.lognormal(0.0, 0.5)
        t = np.arange(int(8 * tau / ms) + 2) * ms
        shape = size * np.exp(-t / tau)
        add(int(start), shape)
        if rng.random() < 0.5:  # the pulse's other edge
            add(int(start + _log_uniform(rng, 0.3, 20.0) / ms), -shape * rng.uniform(0.8, 1.0))
    for start in rng.integers(0, n, rng.poisson(day.synaptic_hz * duration)):
        rise = rng.uniform(0.2, 1.5)
        decay = max(day.synaptic_decay_ms * rng.lognormal(0.0, 0.3), 2 * rise)
        t = np.arange(int(6 * decay / ms) + 2) * ms
        shape = np.exp(-t / decay) - np.exp(-t / rise)
        add(int(start), -day.synaptic_pa * rng.lognormal(0.0, 0.5) * shape / shape.max())
    for start in rng.integers(0, n, rng.poisson(day.step_hz * duration)):
        tau = _log_uniform(rng, 0.5, 20.0)
        size = rng.choice([-1.0, 1.0]) * day.step_pa * rng.lognormal(0.0, 0.4)
        t = np.arange(n - int(start)) * ms
        trace[int(start):] += size * (1.0 - np.exp(-t / tau))


def recorded_reference(cell: Cell, day: Day, sample_rate: float) -> tuple[float, float]:
    """(delay in s, gain) of the cell's fully recovered spike through the day's filter: how much later
    its trough appears, and the factor that makes its filtered trough, as sampled (the mean over four
    sub-sample positions), ``cell.trough_pa``."""
    span = cell.waveforms.shape[1] * REF_DT_MS / cell.phi * sample_rate / 1000.0
    pad = 4096
    while pad < 8 * span:
        pad *= 2
    freqs = np.fft.rfftfreq(pad, 1.0 / sample_rate)
    response = lowpass_response(freqs, day, sample_rate)
    delays, troughs = [], []
    for phase in (0.0, 0.25, 0.5, 0.75):
        t0 = (pad // 4 + phase) / sample_rate
        spike = spike_current_fixed(cell, pad, sample_rate, t0)
        filtered = np.fft.irfft(np.fft.rfft(spike) * response, pad)
        i = int(np.argmin(filtered))
        delays.append(_refined_extremum(filtered, i) / sample_rate - t0)
        troughs.append(filtered[i])
    return float(np.mean(delays)), cell.trough_pa / float(np.mean(troughs))


def spike_current_fixed(cell: Cell, n: int, sample_rate: float, t: float) -> np.ndarray:
    """The fully recovered spike of the cell, trough at ``t`` (s), on ``n`` samples (no jitter)."""
    trace = np.zeros(n)
    _add_spikes(trace, float(sample_rate), np.array([t]), np.zeros(1), np.ones(1), np.ones(1),
                cell.waveforms, cell.trough_index, cell.phi)
    return trace


def synth_trace(cell: Cell, day: Day, duration_s: float, sample_rate: float, rng: np.random.Generator,
                noise_source: np.ndarray | None = None,
                pattern: firing_variety.Pattern | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A cell-attached recording of ``cell`` on ``day``: (float32 trace in pA, trough times in s).

    The cell's current is scaled so that a fully recovered spike's trough, as recorded through the
    day's filter, is ``cell.trough_pa``. The times are where the troughs appear in the returned trace
    (the filter's delay included).
    ``noise_source``, if given, is real baseline current (pA, at ``sample_rate``) that replaces the
    synthetic noise and hum; drift, artefacts and the day's filter are still applied.
    ``pattern``, if given, is the cell's departure from its class's textbook firing (see firing_variety).
    """
    n = int(round(duration_s * sample_rate))
    times = spike_times(cell, duration_s, rng)
    if pattern is not None:
        times = firing_variety.apply(pattern, times, duration_s)
    delay, gain = recorded_reference(cell, day, sample_rate)
    signal = spike_current(cell, n, sample_rate, times, rng) * gain
    add_artefacts(signal, sample_rate, day, rng)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    response = lowpass_response(freqs, day, sample_rate)
    if noise_source is not None:
        signal += np.asarray(noise_source[:n], np.float64)
        spectrum = np.fft.rfft(signal)
    else:
        spectrum = np.fft.rfft(signal) + _noise_coefficients(noise_spectrum(freqs, response, day, n), rng)
    trace = np.fft.irfft(spectrum * response, n)
    if noise_source is None:
        trace += hum(n, sample_rate, day, rng)
    trace += drift(n, sample_rate, day, rng)
    return trace.astype(np.float32), times + delay
