"""The signal checks: each kind of channel raphe cannot classify gets its reason; a good one none."""

from __future__ import annotations

import numpy as np
import pytest

from raphe.detector.config import DetectorConfig
from raphe.detector.online import Detector
from raphe.detector.plausibility import SignalChecks

RATE = 20_000.0


def feed(checks: SignalChecks, trace: np.ndarray, sweeps: int = 1, block: int = 2000) -> None:
    """``trace`` split into ``sweeps`` sweeps with a pause between them, detected block by block."""
    det = Detector(1, RATE, checks.config)
    length = len(trace) // sweeps
    for k in range(sweeps):
        start = k * (length + 10 * block)
        for offset in range(0, length, block):
            part = trace[k * length + offset:k * length + min(offset + block, length)].astype(np.float32)
            events = det.process(part[np.newaxis], start + offset)
            checks.add_block(part, start + offset)
            checks.add_events(events.records["sample_num"])


def spiking(seconds: float, rate_hz: float, rng, holding: float = 0.0, locked_at: float | None = None,
            sweeps: int = 1) -> np.ndarray:
    n = int(seconds * RATE)
    x = rng.normal(0.0, 4.0, n) + holding
    times = np.sort(rng.uniform(0.01, seconds - 0.01, rng.poisson(rate_hz * seconds)))
    if locked_at is not None:
        length = n // sweeps
        times = np.r_[times, [k * length / RATE + locked_at for k in range(sweeps)]]
    for t in times:
        i = int(t * RATE)
        x[i:i + 10] -= 150.0
    return x


def test_a_good_current_channel_passes():
    checks = SignalChecks("pA", RATE, DetectorConfig())
    feed(checks, spiking(20.0, 5.0, np.random.default_rng(0)), sweeps=10)
    assert checks.events > 50 and checks.reasons() == []


@pytest.mark.parametrize("units", ["mV", "V", "nA"])
def test_units_that_are_not_pa_are_named(units):
    checks = SignalChecks(units, RATE, DetectorConfig())
    feed(checks, spiking(2.0, 2.0, np.random.default_rng(1)))
    assert any(f"units are {units}, not pA" in r for r in checks.reasons())


def test_a_holding_current_beyond_the_threshold_is_crossed_continuously():
    checks = SignalChecks("pA", RATE, DetectorConfig())
    feed(checks, spiking(4.0, 2.0, np.random.default_rng(2), holding=-200.0))
    assert any("crossed continuously" in r and "--relative" in r for r in checks.reasons())
    relative = SignalChecks("pA", RATE, DetectorConfig(relative=True))
    feed(relative, spiking(4.0, 2.0, np.random.default_rng(2), holding=-200.0))
    assert relative.reasons() == []  # relative to the baseline the holding current is no fault


def test_a_baseline_far_from_zero_is_named_and_a_voltage_range_too():
    checks = SignalChecks("pA", RATE, DetectorConfig())
    feed(checks, spiking(4.0, 2.0, np.random.default_rng(3), holding=250.0))
    assert any("far from zero" in r for r in checks.reasons())
    gain = SignalChecks("pA", RATE, DetectorConfig())
    feed(gain, spiking(4.0, 2.0, np.random.default_rng(3), holding=3000.0))
    assert any("range of a voltage" in r for r in gain.reasons())


def test_more_events_than_a_neuron_fires():
    checks = SignalChecks("pA", RATE, DetectorConfig(refractory_ms=0.5))
    feed(checks, spiking(4.0, 150.0, np.random.default_rng(4)))
    assert any("more than a neuron fires" in r for r in checks.reasons())


def test_transients_locked_to_the_sweeps_are_named_and_random_firing_is_not():
    locked = SignalChecks("pA", RATE, DetectorConfig())
    feed(locked, spiking(16.0, 1.0, np.random.default_rng(5), locked_at=0.156, sweeps=8), sweeps=8)
    assert any("after the start of 8 of the 8 sweeps" in r for r in locked.reasons())
    for seed in range(5):  # a cell firing at 15 Hz at random times over 30 sweeps is never "locked"
        free = SignalChecks("pA", RATE, DetectorConfig())
        feed(free, spiking(30.0, 15.0, np.random.default_rng(10 + seed)), sweeps=30)
        assert free.segments == 30 and free.reasons() == []
