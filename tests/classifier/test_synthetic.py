"""The synthetic generator against docs/science.md, and `raphe synth` end to end."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest

from raphe.classifier.runtime import windows
from raphe.classifier.synthetic import template as synthetic
from raphe.classifier.synthetic.noise_masks import cut_noise_masks
from raphe.detector.config import DetectorConfig
from raphe.detector.online import Detector
from raphe.replay.recording import Recording

from tests.helpers import assert_one_line_error, run_raphe


@pytest.fixture(scope="module")
def population():
    rng = np.random.default_rng(11)
    cells = {label: [synthetic.draw_cell(label, rng) for _ in range(1000)] for label in synthetic.CLASSES}
    udi = {label: np.array([synthetic.measured_udi_ms(c) for c in cells[label][:400]]) for label in cells}
    return cells, udi


def test_ser_widths_follow_science_md(population):
    _, udi = population
    ser = udi[synthetic.SER]
    atypical = (ser < synthetic.ATYPICAL_UDI_MS).mean()
    assert 0.14 <= atypical <= 0.26, atypical
    assert ser.min() >= 0.2 and ser.max() <= 2.35
    typical = ser[ser >= synthetic.ATYPICAL_UDI_MS]
    assert 1.1 <= np.median(typical) <= 1.5  # the modes of the authors' histograms
    assert np.mean((typical >= 0.7) & (typical <= 2.0)) > 0.9


def test_nser_widths_follow_science_md(population):
    _, udi = population
    nser = udi[synthetic.NSER]
    assert nser.min() >= 0.14 and nser.max() <= 0.92
    assert 0.45 <= np.median(nser) <= 0.65


def test_firing_statistics_follow_science_md(population):
    cells, _ = population
    ser, nser = cells[synthetic.SER], cells[synthetic.NSER]
    assert all(0.5 <= c.rate_hz <= 3.0 for c in ser)
    assert 0.94 <= np.mean([c.cv < 0.5 for c in ser]) <= 0.995  # "below 0.5 in about 97% of SER cells"
    assert np.median([c.rate_hz for c in nser]) > 3 * np.median([c.rate_hz for c in ser])
    assert np.median([c.cv for c in nser]) > 2 * np.median([c.cv for c in ser])
    troughs = np.array([c.trough_pa for c in ser + nser])
    assert -400 <= troughs.min() and troughs.max() <= -55 and np.median(troughs) == pytest.approx(-110, abs=15)


def test_spike_trains_have_the_cells_rate_and_cv():
    rng = np.random.default_rng(3)
    for label in synthetic.CLASSES:
        cell = synthetic.draw_cell(label, rng)
        times = synthetic.spike_times(cell, 4000.0, rng)
        isi = np.diff(times)
        assert len(times) / 4000.0 == pytest.approx(cell.rate_hz, rel=0.1)
        assert isi.std() / isi.mean() == pytest.approx(cell.cv, rel=0.15)


def test_noise_band_is_that_of_science_md():
    """About +-15-20 pA of baseline noise: the central 98% of a spike-free trace, typical day."""
    rng = np.random.default_rng(5)
    half_widths = []
    for i in range(20):
        day = synthetic.draw_day(f"d{i}", rng)
        trace = synthetic.lowpass(synthetic.baseline(40_000, 40_000.0, day, rng), 40_000.0, day.lowpass_hz)
        low, high = np.percentile(trace, [1, 99])
        half_widths.append((high - low) / 2)
    assert 8 <= np.median(half_widths) <= 20


def test_days_differ_and_artefacts_appear():
    rng = np.random.default_rng(8)
    days = [synthetic.draw_day(f"d{i}", rng) for i in range(10)]
    assert len({round(d.white_pa, 3) for d in days}) == 10 and len({d.hum_hz for d in days}) == 2
    quiet = np.zeros(400_000)
    synthetic.add_artefacts(quiet, 40_000.0, synthetic.Day("x", 0, 0, 0, 50, 0, 5.0, 5000), rng)
    assert np.count_nonzero(np.abs(quiet) > 5) > 100


def test_detector_finds_the_generated_spikes():
    rng = np.random.default_rng(21)
    cell = synthetic.draw_cell(synthetic.NSER, rng)
    cell = dataclasses.replace(cell, trough_pa=-150.0)
    day = synthetic.Day("clean", 3.0, 1.0, 0.5, 50.0, 2.0, 0.0, 10_000.0)
    trace, times = synthetic.synth_trace(cell, day, 20.0, 40_000.0, rng)
    events = Detector(1, 40_000.0, DetectorConfig()).process(trace[np.newaxis], 0)
    found = events.records["sample_num"] / 40_000.0
    # every true spike, and nothing else, is found within a few samples of its trough
    matched = np.abs(found[:, None] - times[None, :]).min(axis=1)
    assert len(found) == pytest.approx(len(times), abs=2)
    assert np.median(matched) < 0.0002


@pytest.mark.parametrize("generator", ["template", "biophysical"])
def test_synth_writes_recordings_manifest_and_windows(tmp_path, generator):
    out = tmp_path / "synth"
    result = run_raphe("synth", "--cells", "4", "--days", "2", "--seed", "7", "--duration", "8", "--out-dir", str(out),
                       "--generator", generator, "--rates", "20000", "25000", "40000")
    assert result.returncode == 0, result.stderr
    with (out / "manifest.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4
    assert set(rows[0]) >= {"file", "label", "atypical", "udi_ms", "rate_hz", "cv", "day", "sample_rate",
                            "n_windows", "n_artefact_windows"}
    prefix = "s" if generator == "template" else "b"
    assert {r["day"] for r in rows} == {f"{prefix}7-d01", f"{prefix}7-d02"}
    data = windows.load(out)
    for row in rows:
        recording = Recording(out / row["file"])
        rate = float(row["sample_rate"])
        assert rate in (20_000, 25_000, 40_000) and recording.sample_rate == rate
        assert recording.channels[0].units == "pA" and recording.total_samples == 8 * rate
        # the set's windows are among those the detector cuts from the written file (int16 in ABF1);
        # the others are the artefacts the manifest counts
        trace = recording.sweeps[0].traces[0]
        events = Detector(1, rate, DetectorConfig()).process(trace[np.newaxis], 0)
        mine = data.X[data.cell == row["cell"]]
        assert len(mine) == int(row["n_windows"]) > 0
        assert len(events) == int(row["n_windows"]) + int(row["n_artefact_windows"])
        distance = np.abs(mine[:, None, :] - events.windows[None, :, :]).max(axis=2).min(axis=1)
        assert (distance < 0.2).all()
        assert set(data.day[data.cell == row["cell"]]) == {row["day"]}


def test_synth_is_reproducible_and_seeds_name_their_days(tmp_path):
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert run_raphe("synth", "--cells", "3", "--days", "3", "--seed", seed, "--duration", "3",
                         "--no-abf", "--out-dir", str(tmp_path / name)).returncode == 0
    a, b, c = (windows.load(tmp_path / n) for n in "abc")
    np.testing.assert_array_equal(a.X, b.X)
    assert not set(a.day) & set(c.day)
    assert not (tmp_path / "a" / "abf").exists()


def test_noise_masks_are_cut_from_real_recordings(tmp_path, abf_dir):
    paths = [abf_dir / "pclamp11_4ch.abf", abf_dir / "2020_07_29_0062.abf"]
    masks = cut_noise_masks(paths, 40_000.0)
    assert len(masks) > 20
    assert all(abs(m.mean()) < 1.0 and m.size == 2000 for m in masks)
    out = tmp_path / "masked"
    result = run_raphe("synth", "--cells", "2", "--seed", "1", "--duration", "3", "--no-abf", "--out-dir", str(out),
                       "--noise-from", *map(str, paths))
    assert result.returncode == 0, result.stderr
    assert len(windows.load(out)) > 0


def test_noise_masks_need_current_channels(tmp_path, abf_dir):
    result = run_raphe("synth", "--cells", "2", "--out-dir", str(tmp_path / "x"),
                       "--noise-from", str(abf_dir / "19114000.abf"))
    assert_one_line_error(result, "no spike-free current")


def test_an_interrupted_synth_leaves_nothing_and_a_rerun_works(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "big"
    # SIGINT back to its default in the child: a suite started in the background by a shell without
    # job control inherits SIGINT ignored, and Python then never turns it into KeyboardInterrupt
    process = subprocess.Popen([sys.executable, "-m", "raphe", "synth", "--cells", "400", "--out-dir", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    written = tmp_path / ".big.partial" / "abf"
    while not (written.is_dir() and any(written.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    assert process.returncode == 130
    assert list(tmp_path.iterdir()) == []
    result = run_raphe("synth", "--cells", "2", "--duration", "2", "--out-dir", str(out), "--no-abf")
    assert result.returncode == 0, result.stderr
    assert (out / "windows.npz").is_file()


def test_synth_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("data")
    assert_one_line_error(run_raphe("synth", "--cells", "2", "--out-dir", str(tmp_path)), "not empty")
    assert (tmp_path / "keep.txt").read_text() == "data"
