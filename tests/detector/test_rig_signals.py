"""Rig conditions the detector and its signal checks must not be fooled by: a drifting holding
current, a stream in volts, positive transients, a flat input, and when the checks may veto."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from raphe.classifier.synthetic.template import draw_cell, draw_day, synth_trace
from raphe.core.errors import RapheError
from raphe.core.specs import SER
from raphe.detector.config import DetectorConfig
from raphe.detector.online import Detector
from raphe.detector.plausibility import READY_UNBROKEN_S, SignalChecks
from raphe.replay.recording import Recording

RATE = 40_000.0
ABSOLUTE = DetectorConfig(relative=False)


def checked(traces: list[np.ndarray], config: DetectorConfig, units: str | None = "pA", sample_rate: float = RATE,
            block_s: float = 0.01, starts: list[int] | None = None) -> tuple[SignalChecks, list[np.ndarray]]:
    """Detect on equal-length ``traces`` (one per sweep, at ``starts`` on the counter; default
    gap-free) block by block as a rig sends them; the checks of the one channel and its events."""
    checks, detector = SignalChecks(sample_rate, config, [units]), Detector(1, sample_rate, config)
    step, found = max(1, int(block_s * sample_rate)), []
    starts = starts or [i * len(traces[0]) for i in range(len(traces))]
    for trace, start in zip(traces, starts):
        for offset in range(0, len(trace), step):
            block = trace[np.newaxis, offset:offset + step].astype(np.float32)
            events = detector.process(block, start + offset)
            checks.add_block(detector.row_stats, np.array([0]), np.array([start + offset]), block.shape[1], block)
            checks.add_events(0, events.records["sample_num"])
            found.append(events.records["sample_num"])
    return checks, found


def recording_checks(recording: Recording, config: DetectorConfig, scale: float = 1.0,
                     units: str | None = None) -> SignalChecks:
    """The checks of every channel of ``recording``, fed as `classify` feeds them (sweeps, 1 s
    blocks), its samples times ``scale``, its units replaced by ``units`` if given."""
    channels = recording.channels
    checks = SignalChecks(recording.sample_rate, config, [units or c.units for c in channels])
    detector, rows = Detector(len(channels), recording.sample_rate, config), np.arange(len(channels))
    step = int(recording.sample_rate)
    for sweep in recording.sweeps:
        data = np.stack([sweep.traces[c.num] for c in channels]).astype(np.float32) * np.float32(scale)
        for offset in range(0, sweep.num_samples, step):
            block, start = data[:, offset:offset + step], sweep.sample_num + offset
            events = detector.process(block, start)
            checks.add_block(detector.row_stats, rows, np.full(len(rows), start), block.shape[1], block)
            for row in np.unique(events.records["channel"]):
                checks.add_events(int(row), events.records["sample_num"][events.records["channel"] == row])
    return checks


def ser_cell(seed: int, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """A typical SER cell of the synthetic generator: (trace in pA, trough times in s)."""
    rng = np.random.default_rng(seed)
    cell = dataclasses.replace(draw_cell(SER, rng), rate_hz=2.0, cv=0.3)
    day = dataclasses.replace(draw_day("rig", rng), artefact_hz=0.0, drift_pa=2.0)
    trace, times = synth_trace(cell, day, seconds, RATE, rng)
    return trace.astype(np.float64), times


def matched(found: list[np.ndarray], times: np.ndarray) -> tuple[int, int]:
    """Events within 1 ms of a trough, and the others."""
    events = np.concatenate(found) / RATE
    near = np.abs(events[:, None] - times[None, :]).min(axis=1) <= 0.001 if len(times) else np.zeros(len(events), bool)
    return int(near.sum()), int((~near).sum())


@pytest.mark.parametrize("seed, drift_pa", [(1, -40.0), (2, -42.0), (3, -45.0)])
def test_a_drifting_holding_current_fools_the_absolute_rule_and_not_the_default(seed, drift_pa):
    """A seal loosening by tens of pA: the default finds the cell's spikes, with and without the
    drift, and the checks let it be; the seed's absolute rule drowns them in noise crossings and
    the checks name the drift and the fix."""
    trace, times = ser_cell(seed, 30.0)
    t = np.arange(len(trace)) / RATE
    drifted = trace + drift_pa * (1.0 - np.exp(-t / 5.0))
    times = times[times > DetectorConfig().noise_window_s + 0.01]  # no baseline yet before then
    still, drifting = checked([trace], DetectorConfig())[1], checked([drifted], DetectorConfig())
    hits, others = matched(drifting[1], times)
    assert hits >= 0.95 * len(times) and others <= 2
    assert matched(still, times) == (hits, others)
    assert drifting[0].reasons(0) == [] and drifting[0].hints(0) == []
    absolute, found = checked([drifted], ABSOLUTE)
    assert matched(found, times)[1] > 5 * len(times)  # noise crossings outnumber the spikes
    drift = [r for r in absolute.reasons(0) if "drifts onto the -50 pA threshold" in r]
    assert len(drift) == 1 and drift[0].startswith("baseline at -") and "without --absolute" in drift[0]
    baseline = float(drift[0].split()[2])
    assert drift_pa - 12 <= baseline <= drift_pa + 2


def test_a_cell_at_rest_at_an_absolute_threshold_gets_no_drift_reason():
    trace, _ = ser_cell(4, 20.0)
    checks, _ = checked([trace], ABSOLUTE)
    assert checks.events[0] > 20 and checks.reasons(0) == []


@pytest.mark.parametrize("units", ["pA", None])
def test_a_stream_in_volts_is_named_with_the_fix(units):
    """An amplifier at 0.5 mV/pA read in volts: a -100 pA spike is -0.05 V; no crossing, and the
    reason says so, with the scale that turns it into pA."""
    trace, _ = ser_cell(5, 6.0)
    checks, _ = checked([trace * 0.0005], DetectorConfig(), units)
    assert checks.events[0] == 0
    volts = [r for r in checks.reasons(0) if r.startswith("values look like volts")]
    assert len(volts) == 1 and "--units pA --scale 1000/G" in volts[0] and "--scale 2000 at 0.5 mV/pA" in volts[0]
    in_pa, _ = checked([trace], DetectorConfig(), units)
    assert in_pa.events[0] > 5 and in_pa.reasons(0) == []


def test_a_real_current_read_in_volts_is_named_and_the_quietest_real_currents_are_not(abf_dir):
    current = Recording(abf_dir / "2020_07_29_0062.abf")  # channel 1: I_Com in pA, noise about 4 pA
    assert not any("volts" in r for r in recording_checks(current, DetectorConfig()).reasons(1))
    assert any(r.startswith("values look like volts") for r in
               recording_checks(current, DetectorConfig(), scale=0.0005).reasons(1))
    # amplifiers with no cell (noise 0.2-0.5 pA) and a filtered low-noise current are still pA
    for name in ("pclamp11_4ch.abf", "2020_06_16_0000.abf", "File_axon_1.abf"):
        recording = Recording(abf_dir / name)
        checks = recording_checks(recording, DetectorConfig())
        for row in range(len(recording.channels)):
            assert checks.reasons(row) == [], (name, row)


def test_positive_transients_get_a_polarity_hint(abf_dir):
    """File_axon_1.abf: positive transients of 42-53 pA and none downward."""
    checks = recording_checks(Recording(abf_dir / "File_axon_1.abf"), DetectorConfig())
    assert checks.reasons(0) == [] and checks.events[0] == 0
    no_spikes, positive = checks.hints(0)
    assert no_spikes.startswith("no spikes: nothing crossed the -50 pA threshold (relative to the baseline) in 191.2 s")
    count = int(positive.split()[3])
    assert positive.startswith("events are positive: ") and 30 <= count <= 140
    assert positive.endswith("0 downward ones: try --polarity pos --threshold 50")
    flipped = recording_checks(Recording(abf_dir / "File_axon_1.abf"), DetectorConfig(polarity="pos", threshold=50.0))
    assert abs(int(flipped.events[0]) - count) <= 0.1 * count  # the hint's count is what the fix finds


def test_an_inverted_cell_gets_the_polarity_hint_and_an_upright_one_none():
    trace, times = ser_cell(6, 10.0)
    inverted, _ = checked([-trace], DetectorConfig())
    hint = [h for h in inverted.hints(0) if h.startswith("events are positive")]
    assert len(hint) == 1 and "try --polarity pos --threshold 50" in hint[0]
    assert int(hint[0].split()[3]) >= 0.9 * np.sum(times > 0.5)
    upright, _ = checked([trace], DetectorConfig())
    assert upright.hints(0) == []


def test_no_spikes_is_a_hint_with_the_threshold_the_time_and_the_range(abf_dir):
    checks = recording_checks(Recording(abf_dir / "pclamp11_4ch.abf"), DetectorConfig())  # 10 sweeps of 0.2 s
    for row in range(4):
        assert checks.reasons(row) == []
        (hint,) = checks.hints(row)
        assert hint.startswith("no spikes: nothing crossed the -50 pA threshold (relative to the baseline) in 1.9 s "
                               "(SD 0.")
        assert ", samples from -1." in hint and " to +1." in hint
    absolute = recording_checks(Recording(abf_dir / "pclamp11_4ch.abf"), ABSOLUTE)
    assert absolute.hints(0)[0] == "no spikes: nothing crossed the -50 pA threshold in 2.0 s " \
                                   "(SD 0.51 pA, samples from -1.08 to +1.09 pA)"


@pytest.mark.parametrize("value", [0.0, -3.25])
def test_a_flat_channel_is_named(value):
    checks, _ = checked([np.full(int(2 * RATE), value)], DetectorConfig())
    assert checks.reasons(0) == [f"flat channel: every sample is {value:g} pA: an unconnected or unused input"]


def test_checks_fed_without_the_block_judge_what_the_sums_tell():
    """A caller that gives only the detector's sums: the range checks work, those that need the
    samples (flat, volts, the hints' excursions and polarity) stay silent."""
    config, flat = DetectorConfig(), np.zeros((1, int(2 * RATE)), np.float32)
    checks, detector = SignalChecks(RATE, config, ["pA"]), Detector(1, RATE, config)
    detector.process(flat, 0)
    checks.add_block(detector.row_stats, np.array([0]), np.array([0]), flat.shape[1])
    assert checks.reasons(0) == []
    assert checks.hints(0) == ["no spikes: nothing crossed the -50 pA threshold (relative to the baseline) in 1.9 s "
                               "(SD 0 pA)"]


def test_the_checks_are_ready_after_enough_sweeps_or_an_unbroken_stretch(abf_dir):
    noise = np.random.default_rng(7).normal(0.0, 4.0, int(12 * RATE))
    step = int(RATE)
    checks, detector = SignalChecks(RATE, DetectorConfig(), ["pA"]), Detector(1, RATE, DetectorConfig())
    ready_at = None
    for offset in range(0, len(noise), step):
        block = noise[np.newaxis, offset:offset + step].astype(np.float32)
        detector.process(block, offset)
        checks.add_block(detector.row_stats, np.array([0]), np.array([offset]), step, block)
        if ready_at is None and checks.ready(0):
            ready_at = offset + step
    assert ready_at == READY_UNBROKEN_S * RATE
    f1 = Recording(abf_dir / "f1.abf")  # 2.5 s sweeps: stimulus-locked transients on its pA channels
    checks = SignalChecks(f1.sample_rate, DetectorConfig(), ["pA"])
    detector = Detector(1, f1.sample_rate, DetectorConfig())
    for k, sweep in enumerate(f1.sweeps[:4]):
        assert not checks.ready(0)
        block = sweep.traces[1][np.newaxis].astype(np.float32)
        detector.process(block, sweep.sample_num)
        checks.add_block(detector.row_stats, np.array([0]), np.array([sweep.sample_num]), block.shape[1], block)
    assert checks.ready(0)  # the fourth sweep
    checks.reset_channel(0, "pA")
    assert not checks.ready(0)


def test_a_relative_threshold_on_the_wrong_side_of_the_baseline_is_refused():
    with pytest.raises(RapheError, match="must lie above it for upward spikes"):
        DetectorConfig(polarity="pos")
    with pytest.raises(RapheError, match="must lie below it for downward spikes"):
        DetectorConfig(threshold=20.0)
    assert DetectorConfig(polarity="pos", threshold=50.0).relative
    assert not DetectorConfig(polarity="pos", threshold=-20.0, relative=False).relative  # absolute: any level
    assert DetectorConfig(adaptive_k=5.0).follows_baseline and not ABSOLUTE.follows_baseline


@pytest.mark.parametrize("config", [DetectorConfig(), ABSOLUTE, DetectorConfig(adaptive_k=5.0)])
def test_the_checks_judge_a_stream_alike_however_it_is_cut(config):
    """A rig's 10 ms messages and a file's reads cut where the pipelines cut them (at multiples of
    0.25 s on the counter, so no block straddles a 0.5 s stretch): the same reasons, hints,
    readiness and counts. The trace drifts onto the threshold and holds an inverted burst, so every
    statistic is at work."""
    trace, _ = ser_cell(8, 12.0)
    t = np.arange(len(trace)) / RATE
    trace = trace - 42.0 * (1.0 - np.exp(-t / 2.0))
    burst = np.arange(int(6 * RATE), int(9 * RATE), int(0.1 * RATE))
    for s in burst:
        trace[s:s + 40] += 120.0
    verdicts = []
    for block_s in (0.01, 0.05, 0.25):
        checks, _ = checked([trace[:len(trace) // 2], trace[len(trace) // 2:]], config, block_s=block_s,
                            starts=[0, len(trace)])
        verdicts.append((checks.reasons(0), checks.hints(0), checks.ready(0), int(checks.opposite[0]),
                         int(checks.near_events[0]), int(checks.far_events[0])))
    assert verdicts[0][3] >= len(burst) - 1
    assert verdicts[0] == verdicts[1] == verdicts[2]
