"""Formats other than ABF behind the same Recording: AxoGraph (a file AxoGraph itself wrote, shipped
with axographio, and files axographio writes) and NWB (files pynwb writes), each read, replayed,
classified and cut for training exactly as its ABF twin."""

from __future__ import annotations

import datetime
import importlib
import json
import math
import threading

import numpy as np
import pytest

from raphe.replay.recording import Recording
from tests.helpers import assert_one_line_error, run_raphe, unavailable


def required(name: str):
    """A module `make test` installs: skipped with the reason where it cannot be imported, a failure under CI."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        unavailable(f"{name} cannot be imported ({exc}); `make test` installs it", module_level=True)


axographio = required("axographio")
pynwb = required("pynwb")
required("neo")

RATE = 40_000.0


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    """A synthetic SER cell as an ABF1 file, and its samples as that file holds them (int16 scaled)."""
    from raphe.classifier.synthetic.dataset import synthesize

    out = tmp_path_factory.mktemp("twins") / "synth"
    synthesize(out, cells=1, days=1, seed=5, duration_s=10.0)
    abf = sorted((out / "abf").glob("*.abf"))[0]
    return abf, Recording(abf).sweeps[0].traces[0]


def write_axograph(path, columns: list[tuple[str, np.ndarray]], rate: float = RATE) -> None:
    n = len(columns[0][1])
    names = ["Time (s)"] + [name for name, _ in columns]
    data = [axographio.linearsequence(n, 0.0, 1.0 / rate)] + [np.asarray(v, np.float64) for _, v in columns]
    axographio.file_contents(names, data).write(str(path))


def nwb_file(path, build) -> None:
    nwbfile = pynwb.NWBFile("raphe test", "test", datetime.datetime(2024, 5, 6, 10, 0, tzinfo=datetime.timezone.utc))
    build(nwbfile)
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)


def icephys(nwbfile, sweeps: list[tuple[float, np.ndarray]], electrodes=("cell-attached",), rate: float = RATE):
    device = nwbfile.create_device("amplifier")
    made = {name: nwbfile.create_icephys_electrode(name=name, description="pipette", device=device)
            for name in electrodes}
    for number, (start, trace) in enumerate(sweeps):
        for name, electrode in made.items():
            # stored in A as the NWB schema's unit says, through a conversion, as amplifiers' files are
            nwbfile.add_acquisition(pynwb.icephys.VoltageClampSeries(
                name=f"{name}-{number}", data=np.asarray(trace, np.float32), conversion=1e-12, electrode=electrode,
                gain=1.0, rate=rate, starting_time=start, sweep_number=np.uint32(number)))


def test_a_file_axograph_itself_wrote_reads_as_axographio_reads_it():
    path = axographio.example_files["axograph_x_format"]
    theirs = axographio.read(path)
    ours = Recording(path)
    assert ours.format == "AxoGraph" and ours.sample_rate == pytest.approx(1 / np.diff(theirs.data[0][:2])[0])
    assert len(ours.channels) == len(theirs.data) - 1 and ours.channels[0].name == "Current"
    assert ours.channels[0].units == "pA"  # the file stores amperes
    np.testing.assert_allclose(ours.sweeps[0].traces[0], np.asarray(theirs.data[1]) * 1e12, rtol=1e-6)
    assert ours.total_samples == len(theirs.data[0]) and ours.recorded_on == "2005-03-17"
    result = run_raphe("info", path, "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["format"] == "AxoGraph"


def test_axograph_and_nwb_twins_classify_exactly_as_the_abf(twin, tmp_path):
    abf, samples = twin
    axgx, nwb = tmp_path / "cell.axgx", tmp_path / "cell.nwb"
    write_axograph(axgx, [("Im (pA)", samples)])
    nwb_file(nwb, lambda f: icephys(f, [(0.0, samples)]))
    for path, fmt in ((axgx, "AxoGraph"), (nwb, "NWB (icephys)")):
        rec = Recording(path)
        assert rec.format == fmt and rec.channels[0].units == "pA" and rec.sample_rate == RATE
        np.testing.assert_allclose(rec.sweeps[0].traces[0], samples, rtol=1e-6, atol=1e-4)
    results = {}
    for path in (abf, axgx, nwb):
        result = run_raphe("classify", path, "--json", timeout=300)
        assert result.returncode == 0, result.stderr
        results[path.suffix] = [json.loads(line) for line in result.stdout.splitlines()]
    reference = results[".abf"]
    assert len(reference) == 1 and reference[0]["n_spikes"] > 10
    for suffix in (".axgx", ".nwb"):
        for ours, theirs in zip(results[suffix], reference, strict=True):
            assert ours["n_spikes"] == theirs["n_spikes"] and ours["decision"] == theirs["decision"]
            assert ours["posterior"] == pytest.approx(theirs["posterior"], rel=1e-4, abs=1e-9)


def test_nwb_sweeps_and_electrodes_keep_their_place_and_replay_as_the_file_holds_them(twin, tmp_path):
    from raphe.streamer.publisher import Publisher
    from raphe.streamer.subscriber import Subscriber
    from tests.helpers import handshake

    _, samples = twin
    path = tmp_path / "episodes.nwb"
    pieces = [(0.0, samples[:80_000]), (5.0, samples[80_000:160_000]), (2.0, samples[160_000:240_000])]
    nwb_file(path, lambda f: icephys(f, pieces, electrodes=("e1", "e2")))
    rec = Recording(path)
    assert [c.name for c in rec.channels] == ["e1", "e2"] and rec.mode == "episodic"
    assert [s.sample_num for s in rec.sweeps] == [0, 80_001, 200_000]  # by start time; 2.0 s overlaps sweep 0
    np.testing.assert_allclose(rec.sweeps[2].traces[1], samples[80_000:160_000], rtol=1e-6, atol=1e-4)
    from raphe.replay.player import replay

    with Publisher("tcp://127.0.0.1:*", heartbeat=False, lossless=True) as pub:
        sub = Subscriber(pub.endpoint)
        try:
            handshake(pub, sub)
            sender = threading.Thread(target=replay, args=(rec, pub), kwargs={"block_ms": 10.0, "speed": math.inf})
            sender.start()
            got = {}
            while True:
                message = sub.receive(timeout_ms=200)
                if message is None and not sender.is_alive():
                    break
                if message is not None and message.block.stream == "episodes":
                    got.setdefault(message.block.channel_num, []).append(message.samples)
            sender.join()
        finally:
            sub.close()
    assert sorted(got) == [0, 1]
    np.testing.assert_allclose(np.concatenate(got[1]), np.concatenate([p[1] for p in sorted(pieces)]),
                               rtol=1e-6, atol=1e-4)


def test_an_extracellular_nwb_series_gives_one_channel_per_electrode_in_mv(tmp_path):
    path = tmp_path / "probe.nwb"
    data = np.random.default_rng(0).normal(0, 20e-6, (30_000, 3)).astype(np.float32)  # volts

    def build(nwbfile):
        device = nwbfile.create_device("probe")
        group = nwbfile.create_electrode_group("shank", "a shank", "DRN", device)
        for _ in range(3):
            nwbfile.add_electrode(group=group, location="DRN")
        region = nwbfile.create_electrode_table_region([0, 1, 2], "all")
        nwbfile.add_acquisition(pynwb.ecephys.ElectricalSeries(name="raw", data=data, electrodes=region,
                                                               rate=30_000.0))

    nwb_file(path, build)
    rec = Recording(path)
    assert rec.format == "NWB (ecephys)" and [c.units for c in rec.channels] == ["mV"] * 3
    np.testing.assert_allclose(rec.sweeps[0].traces[2], data[:, 2] * 1e3, rtol=1e-5)
    assert rec.sample_rate == 30_000.0 and rec.recorded_on == "2024-05-06"


def test_labelled_folders_of_mixed_formats_cut_the_same_windows(twin, tmp_path):
    from raphe.pipelines.labelled_recordings import load_labelled

    abf, samples = twin
    root = tmp_path / "lab"
    (root / "SER").mkdir(parents=True)
    (root / "NSER").mkdir()
    for name in ("a.abf", "b.abf"):
        (root / "SER" / name).write_bytes(abf.read_bytes())
    write_axograph(root / "NSER" / "c.axgx", [("Im (pA)", samples)])
    nwb_file(root / "NSER" / "d.nwb", lambda f: icephys(f, [(0.0, samples)]))
    data, _ = load_labelled(root)
    by_cell = {c: data.X[data.cell == c] for c in np.unique(data.cell)}
    assert sorted(by_cell) == ["NSER/c:0", "NSER/d:0", "SER/a:0", "SER/b:0"]
    for other in ("NSER/c:0", "NSER/d:0"):
        np.testing.assert_allclose(by_cell[other], by_cell["SER/a:0"], rtol=1e-5, atol=1e-3)


def test_unknown_and_damaged_files_are_one_line(tmp_path):
    for name, content, fragment in (("cell.xyz", b"\x00" * 100, "unknown recording format '.xyz'"),
                                    ("cell.nwb", b"not hdf5 at all" * 10, "not a readable NWB file"),
                                    ("cell.axgx", b"axgx" + b"\x00" * 50, "not a readable AxoGraph file")):
        path = tmp_path / name
        path.write_bytes(content)
        for command in (["info", path], ["classify", path], ["replay", path, "--speed", "max"]):
            result = run_raphe(*command)
            if command[0] == "classify":
                assert result.returncode == 2 and "Traceback" not in result.stderr and fragment in result.stderr
            else:
                assert_one_line_error(result, fragment)
    empty = tmp_path / "nothing.nwb"
    nwb_file(empty, lambda f: None)
    assert_one_line_error(run_raphe("info", empty), "no intracellular (PatchClampSeries) or extracellular")

