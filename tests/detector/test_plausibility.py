"""The signal checks: each kind of channel raphe cannot classify gets its reason; a good one none."""

from __future__ import annotations

import numpy as np
import pytest

from raphe.detector.config import DetectorConfig
from raphe.detector.online import Detector
from raphe.detector.plausibility import SignalChecks

RATE = 20_000.0
ABSOLUTE = DetectorConfig(relative=False)


def checked(units: str | None, config: DetectorConfig, trace: np.ndarray, sweeps: int = 1,
            block: int = 2000) -> SignalChecks:
    """The checks of one channel after ``trace``, split into ``sweeps`` sweeps with a pause between
    them, was detected block by block."""
    checks = SignalChecks(RATE, config, [units])
    det = Detector(1, RATE, config)
    length = len(trace) // sweeps
    for k in range(sweeps):
        start = k * (length + 10 * block)
        for offset in range(0, length, block):
            part = trace[k * length + offset:k * length + min(offset + block, length)].astype(np.float32)
            events = det.process(part[np.newaxis], start + offset)
            checks.add_block(det.row_stats, np.array([0]), np.array([start + offset]), len(part), part[np.newaxis])
            checks.add_events(0, events.records["sample_num"])
    return checks


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
    checks = checked("pA", DetectorConfig(), spiking(20.0, 5.0, np.random.default_rng(0)), sweeps=10)
    assert checks.events[0] > 50 and checks.reasons(0) == []


@pytest.mark.parametrize("units", ["mV", "V", "nA"])
def test_units_that_are_not_pa_are_named(units):
    checks = checked(units, DetectorConfig(), spiking(2.0, 2.0, np.random.default_rng(1)))
    assert any(f"units are {units}, not pA" in r for r in checks.reasons(0))


def test_a_holding_current_beyond_the_threshold_is_crossed_continuously():
    checks = checked("pA", ABSOLUTE, spiking(4.0, 2.0, np.random.default_rng(2), holding=-200.0))
    assert any("crossed continuously" in r and "without --absolute" in r for r in checks.reasons(0))
    default = checked("pA", DetectorConfig(), spiking(4.0, 2.0, np.random.default_rng(2), holding=-200.0))
    assert default.reasons(0) == []  # by default the threshold is relative to the baseline: no fault


def test_a_baseline_far_from_zero_is_named_and_a_voltage_range_too():
    checks = checked("pA", ABSOLUTE, spiking(4.0, 2.0, np.random.default_rng(3), holding=250.0))
    assert any("far from zero" in r for r in checks.reasons(0))
    gain = checked("pA", DetectorConfig(), spiking(4.0, 2.0, np.random.default_rng(3), holding=3000.0))
    assert any("range of a voltage" in r for r in gain.reasons(0))


def test_more_events_than_a_neuron_fires():
    checks = checked("pA", DetectorConfig(refractory_ms=0.5), spiking(4.0, 150.0, np.random.default_rng(4)))
    assert any("more than a neuron fires" in r for r in checks.reasons(0))


def test_transients_locked_to_the_sweeps_are_named_and_random_firing_is_not():
    locked = checked("pA", ABSOLUTE, spiking(16.0, 1.0, np.random.default_rng(5), locked_at=0.156, sweeps=8),
                     sweeps=8)
    assert any("after the start of 8 of the 8 sweeps" in r for r in locked.reasons(0))
    for seed in range(5):  # a cell firing at 15 Hz at random times over 30 sweeps is never "locked"
        free = checked("pA", DetectorConfig(), spiking(30.0, 15.0, np.random.default_rng(10 + seed)), sweeps=30)
        assert free.segments[0] == 30 and free.reasons(0) == []


def test_the_detector_sums_what_the_checks_need_in_its_own_pass():
    rng = np.random.default_rng(6)
    block = rng.normal(-20.0, 30.0, (3, 5000)).astype(np.float32)
    block[1, 100:110] = np.nan
    det = Detector(3, RATE, ABSOLUTE)
    det.process(block, 0)
    finite = np.isfinite(block)
    values = np.where(finite, block, 0.0).astype(np.float64)
    np.testing.assert_array_equal(det.row_stats[:, 0], finite.sum(axis=1))
    np.testing.assert_allclose(det.row_stats[:, 1], values.sum(axis=1), rtol=1e-9)
    np.testing.assert_allclose(det.row_stats[:, 2], (values ** 2).sum(axis=1), rtol=1e-9)
    np.testing.assert_array_equal(det.row_stats[:, 3], ((block < -50.0) & finite).sum(axis=1))
