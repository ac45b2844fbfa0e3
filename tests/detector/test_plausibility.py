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


def fed(config: DetectorConfig, traces: np.ndarray, block: int, together: bool = True) -> SignalChecks:
    """The checks of ``traces`` (rows) fed in blocks of ``block`` samples, every row in one call
    (``together``) or each row in a call of its own."""
    checks = SignalChecks(RATE, config, ["pA"] * len(traces))
    det = Detector(len(traces), RATE, config)
    groups = [np.arange(len(traces))] if together else [np.array([r]) for r in range(len(traces))]
    for offset in range(0, traces.shape[1], block):
        for rows in groups:
            part = traces[rows, offset:offset + block]
            det.process_rows(part, rows, np.full(len(rows), offset))
            checks.add_block(det.row_stats, rows, np.full(len(rows), offset), part.shape[1], part)
    return checks


@pytest.mark.parametrize("config", [DetectorConfig(), ABSOLUTE, DetectorConfig(adaptive_k=5.0),
                                    DetectorConfig(polarity="pos", threshold=50.0)])
def test_the_checks_count_alike_however_the_rows_are_cut_into_blocks_or_grouped(config):
    rng = np.random.default_rng(7)
    traces = np.stack([spiking(3.0, 4.0, rng), spiking(3.0, 8.0, rng, holding=20.0), -spiking(3.0, 6.0, rng)])
    traces[1, 5000:5003] = np.nan
    traces = traces.astype(np.float32)
    reference = fed(config, traces, 20)  # 1 ms blocks
    assert reference.opposite.sum() > 0 and (reference.segments == 1).all()
    for other in (fed(config, traces, 200), fed(config, traces, 5000), fed(config, traces, 200, together=False)):
        for name in ("samples", "beyond", "opposite", "segments", "_ready", "low", "high", "_last_crossing",
                     "near_events", "far_events", "_stretch_index"):
            np.testing.assert_array_equal(getattr(other, name), getattr(reference, name), err_msg=name)
        for name in ("total", "total_sq", "_baseline", "_sd"):
            np.testing.assert_allclose(getattr(other, name), getattr(reference, name), rtol=1e-9, err_msg=name)
        assert [other.reasons(r) + other.hints(r) for r in range(3)] == \
               [reference.reasons(r) + reference.hints(r) for r in range(3)]


def test_transients_of_the_other_polarity_are_counted_a_refractory_period_apart():
    config = DetectorConfig()  # negative spikes: positive transients are the other polarity
    trace = np.random.default_rng(8).normal(0.0, 2.0, int(2.0 * RATE)).astype(np.float32)
    refractory = int(round(config.refractory_ms * RATE / 1000.0))
    # from the second stretch on (the level is mirrored through the first stretch's baseline)
    apart = np.arange(12_000, 38_000, 2000)  # 13 transients, each far from the last
    close = apart[:5] + refractory // 2  # 5 more, each within the refractory period of one before it
    # 3 more, each a refractory period after a counted one but within one of an uncounted one: the
    # period runs from the last crossing, counted or not
    chained = apart[5:8] + refractory // 2 + refractory * 3 // 4
    for at in np.r_[apart, close, apart[5:8] + refractory // 2, chained]:
        trace[at:at + 3] += 200.0
    for block in (20, 100, 2000):
        checks = fed(config, trace[np.newaxis], block)
        assert checks.opposite[0] == len(apart), block
