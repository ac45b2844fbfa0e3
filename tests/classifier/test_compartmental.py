"""The compartmental generator against the published facts of ../shared/docs/science.md."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from raphe.classifier.synthetic import compartmental as cm
from raphe.detector.config import DetectorConfig
from raphe.detector.online import Detector


@pytest.fixture(scope="module")
def cells() -> dict[str, list[cm.Cell]]:
    rng = np.random.default_rng(2024)
    return {label: [cm.draw_cell(label, rng) for _ in range(200)] for label in cm.CLASSES}


def _udis(cells):
    return np.array([cm.measured_udi_ms(c) for c in cells])


def _mode(values, low, high):
    hist, edges = np.histogram(values, bins=np.arange(low, high + 1e-9, 0.1))
    return edges[np.argmax(hist)] + 0.05


def test_nser_udi_range_and_mode(cells):
    udi = _udis(cells[cm.NSER])
    assert udi.min() >= 0.15 and udi.max() <= 0.95
    assert 0.5 <= _mode(udi, 0.0, 2.5) <= 0.7


def test_ser_udi_bulk_mode_and_atypical_share(cells):
    udi = _udis(cells[cm.SER])
    assert udi.min() >= 0.2 and np.quantile(udi, 0.9) <= 2.3
    typical = udi[udi >= cm.ATYPICAL_UDI_MS]
    assert 0.7 <= np.quantile(typical, 0.1) and np.quantile(typical, 0.9) <= 2.0
    assert 1.1 <= _mode(udi, 0.0, 2.5) <= 1.5
    atypical = np.array([c.atypical for c in cells[cm.SER]])
    assert 0.10 <= atypical.mean() <= 0.30
    assert np.array_equal(atypical, udi < cm.ATYPICAL_UDI_MS)
    assert not any(c.atypical for c in cells[cm.NSER])


def test_classes_differ_in_width_but_overlap(cells):
    ser, nser = _udis(cells[cm.SER]), _udis(cells[cm.NSER])
    assert np.median(ser) > np.median(nser) + 0.4
    assert (ser < nser.max()).sum() >= 20          # no single width cut-off separates the classes


def test_atypical_ser_keep_slow_after_hyperpolarisation(cells):
    atypical = [c for c in cells[cm.SER] if c.atypical]
    assert atypical and min(c.ahp_tau_ms for c in atypical) > max(c.ahp_tau_ms for c in cells[cm.NSER])


def test_trough_and_firing(cells):
    for label in cm.CLASSES:
        trough = np.array([c.trough_pa for c in cells[label]])
        assert trough.max() <= -55 and trough.min() >= -400
        assert -130 <= np.median(trough) <= -75
    ser_rate = np.array([c.rate_hz for c in cells[cm.SER]])
    ser_cv = np.array([c.cv for c in cells[cm.SER]])
    assert ser_rate.min() >= 0.5 and ser_rate.max() <= 3.0
    assert 0.93 <= (ser_cv < 0.5).mean() < 1.0
    nser_rate = np.array([c.rate_hz for c in cells[cm.NSER]])
    nser_cv = np.array([c.cv for c in cells[cm.NSER]])
    assert 0.8 <= ((nser_rate >= 3) & (nser_rate <= 20)).mean() < 1.0    # and a slow 5-HT-negative group
    assert np.median(nser_rate) > 3 * np.median(ser_rate)
    assert np.median(nser_cv) > 0.5 > np.median(ser_cv)


def test_unknown_label():
    with pytest.raises(ValueError, match="unknown label"):
        cm.draw_cell("GABA", np.random.default_rng(0))


def test_day_is_plain_numbers():
    day = cm.draw_day("d1", np.random.default_rng(1))
    values = dataclasses.asdict(day)
    assert list(values)[0] == "name" and values["name"] == "d1"
    assert all(isinstance(v, (int, float, bool)) for k, v in values.items() if k != "name")


@pytest.mark.parametrize("rate", [10_000.0, 20_000.0, 40_000.0, 50_000.0])
def test_trace_shape_times_and_detection(rate):
    rng = np.random.default_rng(7)
    cell = cm.draw_cell(cm.NSER, rng)
    cell = dataclasses.replace(cell, trough_pa=-150.0)
    day = cm.draw_day("d", rng)
    trace, times = cm.synth_trace(cell, day, 5.0, rate, rng)
    assert trace.dtype == np.float32 and trace.shape == (int(5.0 * rate),)
    assert np.all(np.diff(times) > 0) and times[0] >= 0 and times[-1] < 5.0 - 0.01
    assert len(times) > 5
    troughs = np.round(times * rate).astype(int)
    assert np.median(trace[troughs]) < -60           # the rig filter (0.4 x rate at 10 kHz) lowers it
    events = Detector(1, rate, DetectorConfig()).process(trace[None, :], 0)
    found = events.records["sample_num"] / rate
    # every event lies on a spike (trough ~2 samples after the crossing), most spikes are found
    nearest = np.abs(found[:, None] - times[None, :]).min(axis=1)
    assert np.all(nearest < 0.001)
    assert len(found) >= 0.9 * len(times) - 1
    assert events.windows.shape[1] == 160


def test_noise_band():
    rng = np.random.default_rng(3)
    cell = cm.draw_cell(cm.SER, rng)
    for _ in range(5):
        day = cm.draw_day("d", rng)
        trace, times = cm.synth_trace(cell, day, 4.0, 40_000.0, rng)
        keep = np.ones(len(trace), bool)
        for t in times:
            keep[max(int((t - 0.005) * 40_000), 0):int((t + 0.02) * 40_000)] = False
        baseline = trace[keep] - np.median(trace[keep])
        low, high = np.quantile(baseline, [0.001, 0.999])
        assert 8 <= -low <= 25 and 8 <= high <= 25


def test_deterministic_for_a_seed():
    def run(seed):
        rng = np.random.default_rng(seed)
        cell = cm.draw_cell(cm.SER, rng)
        return cell, *cm.synth_trace(cell, cm.draw_day("d", rng), 3.0, 40_000.0, rng)
    a, b, c = run(11), run(11), run(12)
    assert a[0] == b[0] and np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])
    assert not np.array_equal(a[1], c[1])


def test_noise_source_replaces_synthetic_noise():
    rng = np.random.default_rng(5)
    cell = cm.draw_cell(cm.SER, rng)
    day = cm.draw_day("d", rng)
    n = 2 * 20_000
    source = np.full(n + 100, 3.0)
    trace, times = cm.synth_trace(cell, day, 2.0, 20_000.0, rng, noise_source=source)
    quiet = np.ones(n, bool)
    for t in times:
        quiet[max(int((t - 0.005) * 20_000), 0):int((t + 0.025) * 20_000)] = False
    assert np.allclose(trace[quiet], 3.0, atol=1e-3)


def test_sixty_seconds_is_fast():
    import time
    rng = np.random.default_rng(9)
    cell = dataclasses.replace(cm.draw_cell(cm.NSER, rng), rate_hz=20.0)
    day = cm.draw_day("d", rng)
    cm.synth_trace(cell, day, 1.0, 40_000.0, rng)
    start = time.process_time()
    trace, _ = cm.synth_trace(cell, day, 60.0, 40_000.0, rng)
    assert time.process_time() - start < 1.0 and len(trace) == 2_400_000
