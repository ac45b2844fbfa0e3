"""Memory per channel is bounded whatever the claimed rate (issue 23, item 6), and rows of channels no
longer served can be freed."""

from __future__ import annotations

import numpy as np

from raphe.detector.config import DetectorConfig
from raphe.detector.online import MAX_MEDIAN_POINTS, Detector


def state_bytes(detector: Detector) -> int:
    return sum(value.nbytes for value in vars(detector).values() if isinstance(value, np.ndarray))


def test_a_following_threshold_at_the_wires_largest_rate_costs_a_bounded_state():
    """At 10 MHz a 0.5 s noise segment was 5 million float32 (20 MB) per channel; it is now at most
    MAX_MEDIAN_POINTS samples, and the whole state of a channel stays under 1 MB (the ring of 4 ms
    of samples is most of it)."""
    for config in (DetectorConfig(relative=True, threshold=-30.0), DetectorConfig(adaptive_k=5.0)):
        detector = Detector(4, 1e7, config)
        assert detector._seg.shape[1] <= MAX_MEDIAN_POINTS
        assert state_bytes(detector) / 4 < 1_000_000


def test_a_segment_at_40_khz_holds_2000_points():
    """The first 50 ms whole and the later 0.5 s every 10th sample: 8 KB per channel, not 80 KB."""
    detector = Detector(64, 40000.0, DetectorConfig())
    assert detector._seg.shape == (64, 2000)
    assert state_bytes(detector) / 64 < 10_000


def test_a_decimated_segment_still_follows_the_baseline():
    """At 1 MHz the 0.5 s segment takes every 245th sample (and the first 50 ms every 25th): the
    threshold follows a holding current of -200 pA as at a low rate."""
    rate = 1e6
    detector = Detector(1, rate, DetectorConfig(relative=True, threshold=-30.0))
    assert detector._seg.shape[1] <= MAX_MEDIAN_POINTS
    rng = np.random.default_rng(0)
    block = (-200.0 + rng.normal(0.0, 2.0, (1, int(rate * 1.2)))).astype(np.float32)
    detector.process(block, 0)
    assert abs(detector.thresholds[0] - (-230.0)) < 1.0


def test_keep_channels_frees_rows_and_keeps_the_state_of_the_others():
    rng = np.random.default_rng(1)
    rate = 20000.0
    signal = rng.normal(0.0, 5.0, (3, 40000)).astype(np.float32)
    signal[:, 1000::2000] = -200.0
    alone = Detector(1, rate)
    expected = [alone.process(signal[2:3, :20000], 0), alone.process(signal[2:3, 20000:], 20000)]
    detector = Detector(3, rate)
    first = detector.process(signal[:, :20000], 0)
    detector.keep_channels(np.array([2]))
    assert detector.n_channels == 1 and detector._ring.shape[0] == 1
    second = detector.process(signal[2:3, 20000:], 20000)
    got = np.concatenate([first.records[first.records["channel"] == 2]["sample_num"], second.records["sample_num"]])
    assert got.tolist() == np.concatenate([e.records["sample_num"] for e in expected]).tolist()
    assert len(got) > 5
