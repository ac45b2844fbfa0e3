"""The online detector: the rule, block-size invariance, windows at any rate, gaps and sweeps."""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raphe.classifier.synthetic.template import NSER, SER, draw_cell, draw_day, synth_trace
from raphe.detector.config import DetectorConfig
from raphe.detector.online import FIRST_SEGMENT_S, MAX_MEDIAN_POINTS, Detector
from raphe.detector.kernels import DETECTED, DROPPED_GAP, _median
from raphe.replay.recording import Recording


def reference_crossings(x: np.ndarray, thr: float | np.ndarray, polarity: str, refractory: int) -> list[int]:
    """The rule in plain numpy: x[i] < thr <= x[i-1] (mirrored for pos), refractory from the last event;
    ``thr`` is one threshold, or the threshold in force at each sample (NaN: none)."""
    prev, cur = x[:-1], x[1:]
    thr = np.broadcast_to(thr, x.shape)[1:]
    down = (cur < thr) & (thr <= prev)
    up = (cur > thr) & (thr >= prev)
    hits = {"neg": down, "pos": up, "both": down | up}[polarity]
    events, last = [], None
    for i in np.flatnonzero(hits) + 1:
        if last is None or i - last >= refractory:
            events.append(int(i))
            last = i
    return events


def reference_thresholds(x: np.ndarray, rate: float, config: DetectorConfig) -> np.ndarray:
    """The threshold in force at each sample of ``x`` and after its last (len(x) + 1 values) under a
    rule that follows the baseline, in plain numpy: consecutive segments of the finite samples, the
    first of FIRST_SEGMENT_S (or noise_window_s if shorter), the later of noise_window_s; a segment of
    n samples keeps every k-th finite one, k = ceil(n / MAX_MEDIAN_POINTS), n // k of them; its median
    and MAD (float64) set the threshold from the sample after its last one on (the first segment's
    median counting only where it makes the threshold stricter than from zero)."""
    thresholds = np.full(len(x) + 1, np.nan, np.float32)
    finite = np.flatnonzero(np.isfinite(x))
    used, seconds = 0, min(FIRST_SEGMENT_S, config.noise_window_s)
    while True:
        samples = max(1, int(round(seconds * rate)))
        k = -(-samples // MAX_MEDIAN_POINTS)
        points = samples // k
        kept = finite[used + k - 1:used + k * points:k]
        if len(kept) < points:
            return thresholds
        segment = x[kept].astype(np.float64)
        med = np.median(segment)
        sigma = np.median(np.abs(segment - med)) / 0.6745
        if used == 0:
            med = min(med, 0.0) if config.polarity == "neg" else max(med, 0.0) if config.polarity == "pos" else 0.0
        if config.adaptive_k is None:
            value = med + config.threshold
        else:
            value = med + config.adaptive_k * sigma if config.polarity == "pos" else med - config.adaptive_k * sigma
        thresholds[kept[-1] + 1:] = value
        used, seconds = used + k * points, config.noise_window_s


def run_blocks(detector: Detector, data: np.ndarray, sizes: list[int], start: int = 0):
    """Feed ``data`` (channels x n) in blocks of the given sizes (cycled); concatenate what comes out."""
    records, windows, offset, i = [], [], 0, 0
    n = data.shape[1]
    while offset < n:
        size = sizes[i % len(sizes)]
        events = detector.process(data[:, offset:offset + size], start + offset)
        records.append(events.records)
        windows.append(events.windows)
        offset += size
        i += 1
    records = np.concatenate(records)
    windows = np.concatenate(windows)
    order = np.lexsort((records["sample_num"], records["channel"]))
    return records[order], windows[order]


def synthetic_channels(seed: int, seconds: float = 1.0, rate: float = 40000.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    traces = []
    for label in (SER, NSER, NSER):
        cell = draw_cell(label, rng)
        cell = dataclasses.replace(cell, rate_hz=cell.rate_hz * 8)
        traces.append(synth_trace(cell, draw_day("test", rng), seconds, rate, rng)[0])
    data = np.stack(traces)
    data[1, rng.integers(0, data.shape[1], 5)] = np.nan  # non-finite samples must not move events
    return data


# The seed's absolute rule, where a test is about something else than the default threshold.
ABSOLUTE = DetectorConfig(relative=False)

CONFIGS = [
    ABSOLUTE,
    DetectorConfig(polarity="pos", threshold=12.0, relative=False),
    DetectorConfig(polarity="both", threshold=-40.0, refractory_ms=0.5, relative=False),
    DetectorConfig(adaptive_k=5.0, noise_window_s=0.1),
    DetectorConfig(adaptive_k=4.0, polarity="both", noise_window_s=0.05),
    DetectorConfig(relative=True, threshold=-40.0, noise_window_s=0.1),
    DetectorConfig(),
]


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_channels(3)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=20), config=st.sampled_from(CONFIGS),
       rate=st.sampled_from([40000.0, 100000.0]))
def test_block_size_invariance_on_synthetic_data(synthetic, sizes, config, rate):
    """Also across the short first noise segment and the decimated ones (at 100 kHz both are)."""
    whole_r, whole_w = run_blocks(Detector(3, rate, config), synthetic, [synthetic.shape[1]])
    assert len(whole_r) > 10
    parts_r, parts_w = run_blocks(Detector(3, rate, config), synthetic, sizes)
    np.testing.assert_array_equal(parts_r, whole_r)
    np.testing.assert_array_equal(parts_w, whole_w)


@pytest.mark.parametrize("rate", [40000.0, 100000.0])  # at 100 kHz the first segment is decimated too
@pytest.mark.parametrize("config", CONFIGS)
def test_events_match_the_numpy_reference(synthetic, config, rate):
    det = Detector(3, rate, config)
    records, _ = run_blocks(det, synthetic, [997])
    for c in range(3):
        x = synthetic[c]
        if config.follows_baseline:
            thr = reference_thresholds(x, rate, config)
            np.testing.assert_array_equal(det.thresholds[c], thr[-1])
            thr = thr[:-1]
        else:
            thr = np.full(len(x), config.threshold, np.float32)
        found = reference_crossings(x, thr, config.polarity, det.refractory)
        window_ok = [i for i in found if i >= det.need_before and i + det.need_after < len(x)
                     and np.isfinite(x[i - det.need_before:i + det.need_after + 1]).all()]
        mine = records[records["channel"] == c]
        if rate == 40000.0:
            assert mine["sample_num"].tolist() == window_ok
        else:  # the window's points fall between samples, so a non-finite one there may go unread
            assert set(window_ok) <= set(mine["sample_num"].tolist()) <= set(found)
        np.testing.assert_array_equal(mine["threshold"], thr[mine["sample_num"]])
        assert det.counts[c, DETECTED] == len(found)  # every detection counted, emitted or not
    assert len(records) > 10


def test_window_is_anchored_on_the_crossing_and_reports_its_extreme(synthetic):
    det = Detector(3, 40000.0, ABSOLUTE)
    records, windows = run_blocks(det, synthetic, [400])
    np.testing.assert_allclose(windows[:, 40], -50.0, atol=1e-3)  # point 40 is the crossing itself
    np.testing.assert_array_equal(records["amplitude"], windows.min(axis=1))


def analytic(t_ms: np.ndarray, t0: float) -> np.ndarray:
    return -100 * np.exp(-0.5 * ((t_ms - t0) / 0.3) ** 2) + 20 * np.exp(-0.5 * ((t_ms - t0 - 0.8) / 0.4) ** 2)


def test_windows_agree_across_sample_rates():
    # Truth: the analytic waveform on the 40 kHz grid from 1 ms before its -50 crossing.
    fine = np.linspace(-1.0, 0.0, 200001)
    tc = fine[np.argmax(analytic(fine, 0.0) < -50)]
    truth = analytic(tc - 1.0 + np.arange(160) / 40.0, 0.0)
    errors = {}
    for rate in (10_000, 20_000, 25_000, 40_000, 50_000):
        t_ms = np.arange(int(0.012 * rate)) / rate * 1000.0
        x = analytic(t_ms, 5.0 + 0.37e3 / rate).astype(np.float32)  # off the sample grid on purpose
        events = Detector(1, rate, ABSOLUTE).process(x[np.newaxis], 0)
        assert len(events) == 1
        errors[rate] = np.abs(events.windows[0] - truth).max()
    # Linear interpolation error shrinks with the square of the sample interval: ~1.4 pA at 10 kHz
    # on this 100 pA spike, far below the 4-sample misalignment that anchoring on samples would give.
    assert errors[10_000] < 2.0 and errors[20_000] < 0.5 and errors[40_000] < 0.15 and errors[50_000] < 0.1


def test_gap_discards_pending_windows_and_needs_pre_samples_again(synthetic):
    x = synthetic[:1]
    whole, _ = run_blocks(Detector(1, 40000.0, ABSOLUTE), x, [x.shape[1]])
    s = int(whole["sample_num"][3])
    det = Detector(1, 40000.0, ABSOLUTE)
    first = det.process(x[:, :s + 10], 0)               # the 4th spike's window is pending at the cut
    later = det.process(x[:, s + 10 + 500:], s + 10 + 500)  # 500 samples lost
    assert det.counts[0, DROPPED_GAP] == 1  # counted as straddling the gap
    got = np.concatenate([first.records["sample_num"], later.records["sample_num"]])
    assert s not in got
    assert set(got) <= set(whole["sample_num"])


def test_new_acquisition_resets():
    x = synthetic_channels(5)[:1]
    det = Detector(1, 40000.0)
    a = det.process(x, 0)
    det.reset()
    b = det.process(x, 0)
    np.testing.assert_array_equal(a.records, b.records)


def test_adaptive_threshold_is_reported_and_follows_the_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 2.0, (1, 80_000)).astype(np.float32)
    x[0, 40_000:] *= 5.0  # the noise grows fivefold halfway
    det = Detector(1, 40000.0, DetectorConfig(adaptive_k=5.0, noise_window_s=0.1))
    det.process(x[:, :40_000], 0)
    assert det.thresholds[0] == pytest.approx(-10.0, rel=0.1)
    det.process(x[:, 40_000:], 40_000)
    assert det.thresholds[0] == pytest.approx(-50.0, rel=0.1)


def test_the_first_noise_segment_is_short_and_the_later_ones_are_noise_window_s():
    """A threshold exists FIRST_SEGMENT_S into a channel (and into a reset row), not noise_window_s:
    a spike 60 ms into the first sweep is found; the threshold then moves every noise_window_s."""
    rate, first = 40000.0, int(FIRST_SEGMENT_S * 40000.0)
    rng = np.random.default_rng(7)
    x = rng.normal(-200.0, 3.0, (1, 60_000)).astype(np.float32)
    x[0, 2_500:] += 100.0  # the holding current steps from -200 to -100 pA
    spikes = [1_000, 2_400, 6_000]
    for s in spikes:
        x[0, s:s + 20] -= 250.0
    det = Detector(1, rate, DetectorConfig())
    found = det.process(x[:, :first - 1], 0).records["sample_num"].tolist()
    assert np.isnan(det.thresholds[0])
    found += det.process(x[:, first - 1:first], first - 1).records["sample_num"].tolist()
    assert det.thresholds[0] == pytest.approx(-250.0, abs=1.0)
    later = first + int(DetectorConfig().noise_window_s * rate)
    found += det.process(x[:, first:later - 1], first).records["sample_num"].tolist()
    assert det.thresholds[0] == pytest.approx(-250.0, abs=1.0)  # the 0.5 s segment is not complete yet
    assert found == spikes[1:]  # the spike in the first 50 ms has no threshold yet
    det.process(x[:, later - 1:later], later - 1)
    assert det.thresholds[0] == pytest.approx(-150.0, abs=1.0)  # most of the segment is at -100 pA
    det.reset_channels(np.array([0]))
    det.process(x[:, 30_000:30_000 + first - 1], 10**6)
    assert np.isnan(det.thresholds[0])
    det.process(x[:, 30_000 + first - 1:30_000 + first], 10**6 + first - 1)
    assert det.thresholds[0] == pytest.approx(-150.0, abs=1.0)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.integers(-4, 4) | st.floats(-1e6, 1e6, width=32), min_size=1, max_size=80))
def test_the_kernels_median_is_numpys(values):
    """Exactly np.median in float64, on ties, runs and any length (the reference relies on it)."""
    x = np.array(values, np.float64)
    scratch = np.concatenate([x, np.full(3, np.nan)])  # beyond n is neither read nor written
    assert _median(scratch, len(x)) == np.median(x)
    assert np.isnan(scratch[len(x):]).all()


def test_relative_threshold_follows_the_holding_current():
    """A -50 pA threshold relative to the baseline finds the same spikes at any holding current."""
    rng = np.random.default_rng(4)
    x = rng.normal(0.0, 3.0, (1, 120_000)).astype(np.float32)
    spikes = np.arange(10_000, 120_000, 4_000)
    for s in spikes:
        x[0, s:s + 20] -= 120.0
    config = DetectorConfig(relative=True, noise_window_s=0.1)
    found = {}
    for holding in (0.0, -200.0, 150.0):
        det = Detector(1, 40000.0, config)
        found[holding] = det.process(x + np.float32(holding), 0).records["sample_num"].tolist()
        assert det.thresholds[0] == pytest.approx(holding - 50.0, abs=1.0)
    assert found[0.0] == found[-200.0] == found[150.0] == spikes.tolist()
    absolute = Detector(1, 40000.0, ABSOLUTE).process(x - np.float32(200.0), 0)
    assert len(absolute) < len(spikes) // 2  # at -200 pA an absolute -50 pA threshold is lost


@pytest.mark.parametrize("polarity, threshold, relative", [("neg", -50.0, False), ("pos", -20.0, False),
                                                           ("neg", -50.0, True)])
def test_block_size_invariance_on_every_recording(abf_path, polarity, threshold, relative):
    rec = Recording(abf_path)
    rng = np.random.default_rng(zlib.crc32(abf_path.name.encode()))
    config = DetectorConfig(polarity=polarity, threshold=threshold, relative=relative)
    results = []
    for sizes in ([10**9], rng.integers(1, 2000, 7).tolist()):
        det = Detector(len(rec.channels), rec.sample_rate, config)
        r, w = [], []
        for sweep in rec.sweeps:
            data = np.stack(sweep.traces)
            records, windows = run_blocks(det, data, sizes, start=sweep.sample_num)
            r.append(records)
            w.append(windows)
        results.append((np.concatenate(r), np.concatenate(w)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_no_window_spans_two_sweeps(abf_dir):
    rec = Recording(abf_dir / "2019_07_24_0055_fsi.abf")  # ~948 evoked APs over 17 sweeps
    det = Detector(1, rec.sample_rate, DetectorConfig(polarity="pos", threshold=0.0, relative=False))
    spans = []
    for sweep in rec.sweeps:
        events = det.process(np.stack(sweep.traces), sweep.sample_num)
        spans += [(s - det.need_before, s + det.need_after) for s in events.records["sample_num"]]
    assert len(spans) > 800
    bounds = [(s.sample_num, s.sample_num + s.num_samples) for s in rec.sweeps]
    for lo, hi in spans:
        assert any(a <= lo and hi < b for a, b in bounds)


def test_kernel_cache_goes_to_numba_cache_dir(tmp_path):
    import os
    import subprocess
    import sys

    code = ("import numpy as np; from raphe.detector.online import Detector; "
            "print(len(Detector(2, 40000.0).process(np.zeros((2, 400), np.float32), 0)))")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "0", result.stderr
    assert list(tmp_path.rglob("*.nbi")), "numba wrote no cache index under NUMBA_CACHE_DIR"


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(50, 4000), config=st.sampled_from(CONFIGS),
       rate=st.sampled_from([40000.0, 100000.0]))
def test_rows_fed_in_any_subset_and_order_give_each_channel_its_own_events(synthetic, seed, size, config, rate):
    """As on the wire: each channel's blocks arrive in their own messages, gathered into blocks of
    any subset of the channels, in any order; every channel must see exactly its own events."""
    whole_r, whole_w = run_blocks(Detector(3, rate, config), synthetic, [synthetic.shape[1]])
    det = Detector(3, rate, config)
    rng = np.random.default_rng(seed)
    next_offset = [0, 0, 0]
    records, windows = [], []
    while min(next_offset) < synthetic.shape[1]:
        waiting = [c for c in range(3) if next_offset[c] < synthetic.shape[1]]
        rows = [int(c) for c in rng.permutation(waiting)[:rng.integers(1, len(waiting) + 1)]]
        n = min(size, *(synthetic.shape[1] - next_offset[c] for c in rows))
        block = np.stack([synthetic[c, next_offset[c]:next_offset[c] + n] for c in rows])
        events = det.process_rows(block, np.array(rows), np.array([next_offset[c] for c in rows]))
        records.append(events.records)
        windows.append(events.windows)
        for c in rows:
            next_offset[c] += n
    got_r, got_w = np.concatenate(records), np.concatenate(windows)
    for c in range(3):
        mine = got_r["channel"] == c
        order = np.argsort(got_r["sample_num"][mine], kind="stable")
        np.testing.assert_array_equal(got_r[mine][order], whole_r[whole_r["channel"] == c])
        np.testing.assert_array_equal(got_w[mine][order], whole_w[whole_r["channel"] == c])


def test_channels_added_and_reset_one_by_one(synthetic):
    config = DetectorConfig()
    one = Detector(1, 40000.0, config)
    half = synthetic.shape[1] // 2
    first = one.process(synthetic[:1, :half], 0)
    one.add_channels(2)  # channel 0 keeps its state, the new ones start fresh
    rest = one.process(synthetic[:, half:], half)
    whole_r, _ = run_blocks(Detector(3, 40000.0, config), synthetic, [synthetic.shape[1]])
    ch0 = np.concatenate([first.records, rest.records[rest.records["channel"] == 0]])
    np.testing.assert_array_equal(ch0, whole_r[whole_r["channel"] == 0])
    fresh = Detector(2, 40000.0, config).process(synthetic[1:, half:], half)
    assert rest.records["sample_num"][rest.records["channel"] > 0].tolist() == fresh.records["sample_num"].tolist()
    one.reset_channels(np.array([1]))
    again = one.process_rows(synthetic[1:2, :4000], np.array([1]), np.array([10 ** 9]))
    assert one.counts[1, DROPPED_GAP] == 0  # a reset channel has no pending window to lose
    assert len(again) == len(Detector(1, 40000.0, config).process(synthetic[1:2, :4000], 10 ** 9))


def test_a_transient_in_the_first_segment_never_lets_the_noise_cross():
    """The first 50 ms sit 20 pA high (a seal settling); the noise after them, dipping to -40 pA,
    must not cross a threshold measured from that raised baseline (it did: -30 pA for 0.5 s)."""
    rng = np.random.default_rng(2)
    trace = rng.normal(0.0, 5.0, 40_000).astype(np.float32)
    trace[:2000] += 20.0
    trace[2000:] = np.clip(trace[2000:], -15.0, 15.0) - 25.0 * (np.arange(38_000) % 400 == 0)
    assert len(Detector(1, 40_000.0, DetectorConfig()).process(trace[np.newaxis], 0)) == 0
    for polarity, sign in (("neg", -1), ("pos", 1)):
        raised = trace.copy()
        raised[:2000] -= 40.0 * sign  # the transient on the other side only makes the threshold stricter
        config = DetectorConfig(polarity=polarity, threshold=50.0 * sign)
        detector = Detector(1, 40_000.0, config)
        detector.process(raised[np.newaxis, :2001], 0)
        assert abs(detector.thresholds[0]) >= 50.0
