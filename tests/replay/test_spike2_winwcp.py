"""Spike2 (``.smr``) and WinWCP (``.wcp``) behind the same Recording, on files whose bytes follow the
published formats (CED's SON filing system, WinWCP's file structure), written by the test-only
writers beside this module and checked against neo's own readers; each read, classified exactly as
its ABF twin, and refused in one line when damaged. CED's sonpy, the only writer of ``.smrx``,
does not run here (its package holds a Windows binary only), so ``.smrx`` is tested for its refusal."""

from __future__ import annotations

import importlib
import json
import struct

import numpy as np
import pytest

from raphe.replay.recording import Recording, write_abf1
from tests.helpers import assert_one_line_error, run_raphe, unavailable
from tests.replay.spike2_writer import Events, Waveform, write_smr
from tests.replay.winwcp_writer import WcpChannel, write_wcp

try:
    neo = importlib.import_module("neo")
except ImportError as exc:
    unavailable(f"neo cannot be imported ({exc}); `make test` installs it", module_level=True)

RATE = 40_000.0
DIVIDE = 25  # clock ticks of 1 us per sample at 40 kHz
COMMANDS = (["info"], ["classify"], ["detect", "--out", "{tmp}/spikes.csv"], ["replay", "--speed", "max"])


def abf1_codes(path) -> tuple[np.ndarray, float]:
    """The int16 codes of a one-channel ABF1 file pyabf wrote and the value of one code, from its
    header (fADCRange / (lADCResolution x fInstrumentScaleFactor); pyabf writes the gains as 1)."""
    data = path.read_bytes()
    samples, = struct.unpack_from("<i", data, 10)
    data_block, = struct.unpack_from("<i", data, 40)
    adc_range, = struct.unpack_from("<f", data, 244)
    resolution, = struct.unpack_from("<i", data, 252)
    instrument_scale, = struct.unpack_from("<f", data, 922)
    codes = np.frombuffer(data, "<i2", count=samples, offset=data_block * 512)
    return codes, adc_range / (resolution * instrument_scale)


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    """A synthetic SER cell as an ABF1 file (write_abf1, a multiple of 256 samples as WinWCP needs),
    its int16 codes and the value of one code, in pA."""
    from raphe.classifier.synthetic.dataset import synthesize

    out = tmp_path_factory.mktemp("twins")
    synthesize(out / "synth", cells=1, days=1, seed=5, duration_s=10.0)
    trace = Recording(sorted((out / "synth" / "abf").glob("*.abf"))[0]).sweeps[0].traces[0]
    abf = out / "cell.abf"
    write_abf1(abf, trace[:len(trace) // 256 * 256], RATE, "pA")
    codes, step = abf1_codes(abf)
    np.testing.assert_allclose(Recording(abf).sweeps[0].traces[0], codes * step, rtol=1e-6, atol=1e-6 * step)
    return abf, codes, step


def test_a_spike2_file_reads_as_neo_reads_it_with_units_in_pa_and_mv_and_events_left_out(tmp_path):
    rng = np.random.default_rng(1)
    current = rng.integers(-20_000, 20_000, 30_000).astype(np.int16)  # codes of 0.5 / 6553.6 nA
    voltage = rng.normal(0.0, 2e-3, 30_000).astype(np.float32)  # volts, a RealWave channel
    path = tmp_path / "rig.smr"
    write_smr(path, [Waveform("Im", "nA", DIVIDE, [(0, current)], scale=0.5),
                     Waveform("Vm", "V", DIVIDE, [(0, voltage)]), Events("stim", [100, 40_000, 500_000])])
    block = neo.io.Spike2IO(str(path)).read_block()
    theirs = {str(s.array_annotations["channel_names"][0]): s for s in block.segments[0].analogsignals}
    np.testing.assert_allclose(np.asarray(theirs["Im"].rescale("nA")).ravel(), current * 0.5 / 6553.6, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(theirs["Vm"]).ravel(), voltage, rtol=1e-7)
    assert len(block.segments[0].events[0]) == 3

    ours = Recording(path)
    assert ours.format == "Spike2" and ours.mode == "gap-free" and ours.sample_rate == RATE
    assert [(c.num, c.name, c.units) for c in ours.channels] == [(0, "Im", "pA"), (1, "Vm", "mV")]
    np.testing.assert_allclose(ours.sweeps[0].traces[0], current * 0.5 / 6553.6 * 1e3, rtol=1e-6)
    np.testing.assert_allclose(ours.sweeps[0].traces[1], voltage * 1e3, rtol=1e-6)
    result = run_raphe("info", path, "--json")
    assert result.returncode == 0, result.stderr
    described = json.loads(result.stdout)
    assert described["format"] == "Spike2" and described["samples_per_channel"] == 30_000


def test_spike2_pauses_are_sweeps_at_their_clock_ticks(tmp_path):
    samples = np.arange(-4000, 4000, dtype=np.int16)
    path = tmp_path / "pauses.smr"
    # recording resumed 2 s (2,000,000 ticks) after it began, then paused and resumed at 7.5 s
    sections = [(0, samples[:3000]), (2_000_000, samples[3000:7000]), (7_500_000, samples[7000:])]
    write_smr(path, [Waveform("Im", "pA", DIVIDE, sections, scale=6553.6)])  # one code is 1 pA
    rec = Recording(path)
    assert rec.mode == "episodic" and [s.num_samples for s in rec.sweeps] == [3000, 4000, 1000]
    assert [s.sample_num for s in rec.sweeps] == [0, 80_000, 300_000]
    np.testing.assert_array_equal(np.concatenate([s.traces[0] for s in rec.sweeps]), samples.astype(np.float32))


def test_a_winwcp_file_reads_as_neo_reads_it_with_records_at_their_times(tmp_path):
    rng = np.random.default_rng(2)
    records = [(t, rng.integers(-30_000, 30_000, (2048, 2)).astype(np.int16)) for t in (0.0, 3.0, 6.5)]
    channels = [WcpChannel("Im", "nA", 1e-4), WcpChannel("Vm", "mV", 0.01)]
    path = tmp_path / "episodes.wcp"
    write_wcp(path, channels, records, 1 / RATE)
    block = neo.io.WinWcpIO(str(path)).read_block()
    assert len(block.segments) == 3 and block.rec_datetime.isoformat() == "2024-05-06T10:00:00"
    for (_, codes), segment in zip(records, block.segments):
        for c, signal in enumerate(segment.analogsignals):
            np.testing.assert_allclose(np.asarray(signal).ravel(), codes[:, c] * channels[c].step, rtol=1e-6)

    rec = Recording(path)
    assert rec.format == "WinWCP" and rec.mode == "episodic" and rec.sample_rate == RATE
    assert [(c.name, c.units) for c in rec.channels] == [("Im", "pA"), ("Vm", "mV")]
    assert [s.sample_num for s in rec.sweeps] == [0, 120_000, 260_000] and rec.recorded_on == "2024-05-06"
    for (_, codes), sweep in zip(records, rec.sweeps):
        np.testing.assert_allclose(sweep.traces[0], codes[:, 0] * 1e-4 * 1e3, rtol=1e-6)
        np.testing.assert_allclose(sweep.traces[1], codes[:, 1] * 0.01, rtol=1e-6)
    result = run_raphe("info", path, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sweep_start_samples"] == [0, 120_000, 260_000]


def test_spike2_and_winwcp_twins_classify_exactly_as_the_abf(twin, tmp_path):
    abf, codes, step = twin
    smr, wcp = tmp_path / "cell.smr", tmp_path / "cell.wcp"
    write_smr(smr, [Waveform("Im", "pA", DIVIDE, [(0, codes)], scale=step * 6553.6)])
    write_wcp(wcp, [WcpChannel("Im", "pA", step)], [(0.0, codes[:, np.newaxis])], 1 / RATE)
    reference = Recording(abf).sweeps[0].traces[0]
    for path in (smr, wcp):
        rec = Recording(path)
        assert rec.channels[0].units == "pA" and rec.sample_rate == RATE and len(rec.sweeps) == 1
        np.testing.assert_allclose(rec.sweeps[0].traces[0], reference, rtol=1e-6, atol=1e-6 * step)
    rows = {}
    for path in (abf, smr, wcp):
        result = run_raphe("classify", path, "--json", timeout=300)
        assert result.returncode == 0, result.stderr
        rows[path.suffix] = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows[".abf"]) == 1 and rows[".abf"][0]["n_spikes"] > 10
    for suffix in (".smr", ".wcp"):
        for ours, theirs in zip(rows[suffix], rows[".abf"], strict=True):
            assert ours["n_spikes"] == theirs["n_spikes"] and ours["decision"] == theirs["decision"]
            assert ours["posterior"] == pytest.approx(theirs["posterior"], rel=1e-4, abs=1e-9)


def test_a_folder_of_spike2_and_winwcp_files_is_classified_whole(twin, tmp_path):
    _, codes, step = twin
    write_smr(tmp_path / "a.smr", [Waveform("Im", "pA", DIVIDE, [(0, codes)], scale=step * 6553.6)])
    write_wcp(tmp_path / "b.wcp", [WcpChannel("Im", "pA", step)], [(0.0, codes[:, np.newaxis])], 1 / RATE)
    result = run_raphe("classify", tmp_path, "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 2 and rows[0]["n_spikes"] == rows[1]["n_spikes"] > 10


@pytest.fixture
def damaged(tmp_path):
    """Damaged and unusable files of both formats, each with the fragment of its one-line error."""
    samples = (np.arange(8192) % 200 - 100).astype(np.int16)
    smr, wcp = tmp_path / "whole.smr", tmp_path / "whole.wcp"
    write_smr(smr, [Waveform("Im", "pA", DIVIDE, [(0, samples)], scale=6553.6)])
    write_wcp(wcp, [WcpChannel("Im", "pA", 1.0)], [(0.0, samples[:, np.newaxis]), (1.0, samples[:, np.newaxis])],
              1 / RATE)
    # cut.smr keeps its last block's header but not its samples, which neo alone would read as zeros
    files = {"cut.smr": (smr.read_bytes()[:len(smr.read_bytes()) - 2000], "truncated or corrupt Spike2 file"),
             "cut.wcp": (wcp.read_bytes()[:len(wcp.read_bytes()) - 3000], "truncated or corrupt WinWCP file"),
             "head.smr": (smr.read_bytes()[:700], "not a readable Spike2 file"),
             "noise.wcp": (bytes(range(256)) * 8, "not a readable WinWCP file"),
             "none.wcp": (wcp.read_bytes().replace(b"NR=2\r\n", b"NR=0\r\n"), "not a readable WinWCP file")}
    slow = tmp_path / "rates.smr"
    write_smr(slow, [Waveform("Im", "pA", DIVIDE, [(0, samples)]), Waveform("T", "C", 1000, [(0, samples[:200])])])
    events = tmp_path / "events.smr"
    write_smr(events, [Events("stim", [1, 2, 3])])
    for name, (content, _) in files.items():
        (tmp_path / name).write_bytes(content)
    found = {tmp_path / name: fragment for name, (_, fragment) in files.items()}
    found[slow] = "signals at several sample rates (1000, 40000 Hz)"
    found[events] = "holds no waveform channels"
    return found


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_damaged_and_unusable_files_are_one_line_naming_the_file(damaged, tmp_path, command):
    for path, fragment in damaged.items():
        args = [a.format(tmp=tmp_path) for a in command]
        assert_one_line_error(run_raphe(args[0], path, *args[1:], timeout=60), f"{path.name}: {fragment}")


def test_an_smrx_file_without_a_working_sonpy_is_one_line(tmp_path):
    path = tmp_path / "new.smrx"
    path.write_bytes(b"S64" + bytes(5000))
    try:
        importlib.import_module("sonpy")
        fragment = "new.smrx: not a readable Spike2 file"  # sonpy runs here, and the file is not one
    except ImportError:
        fragment = "new.smrx: .smrx files are read with CED's sonpy, which cannot be imported here"
    assert_one_line_error(run_raphe("info", path), fragment)


def test_a_winwcp_record_time_beyond_the_sample_counter_is_one_line(tmp_path):
    path = tmp_path / "far.wcp"
    codes = np.zeros((256, 1), np.int16)
    write_wcp(path, [WcpChannel("Im", "pA", 1.0)], [(0.0, codes), (3e38, codes)], 1 / RATE)
    assert_one_line_error(run_raphe("info", path), "far.wcp: the header places sweep 1 at sample")
