"""The Python API against the command line: the same cells from files, arrays and neo objects, the
same one-line errors, `serve` over a real replay, and the example that shows it run."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import raphe
from raphe.classifier.synthetic.dataset import synthesize
from raphe.core.errors import RapheError
from raphe.detector.config import DetectorConfig
from raphe.pipelines.offline import detect_recording
from raphe.replay.player import replay
from raphe.replay.recording import Recording
from raphe.streamer.publisher import Publisher

from tests.helpers import REPO, PosteriorReader, require_abf_dir, run_raphe


@pytest.fixture(scope="module")
def cells_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("cells") / "synth"
    synthesize(out, cells=3, days=1, seed=31, duration_s=12.0)
    return out / "abf"


@pytest.fixture(scope="module")
def cells_files(cells_folder):
    return sorted(cells_folder.glob("*.abf"))


def cli_rows(*args) -> list[dict]:
    result = run_raphe("classify", *args, "--json")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def assert_same_cell(result: raphe.CellResult, row: dict, tolerance: float) -> None:
    """``result`` is the cell of ``row`` (a `classify --json` line), its posterior to ``tolerance``."""
    mine = result.as_dict()
    assert (mine["cell"], mine["decision"], mine["n_spikes"], mine["spikes_to_decision"], mine["reasons"]) == \
        (row["cell"], row["decision"], row["n_spikes"], row["spikes_to_decision"], row["reasons"])
    for name, p in row["posterior"].items():
        assert mine["posterior"][name] == pytest.approx(p, rel=0, abs=tolerance)


def test_files_and_folders_give_what_classify_json_prints(cells_folder, cells_files):
    rows = cli_rows(cells_folder)
    assert len(rows) == 3 and sum(row["n_spikes"] for row in rows) > 0
    # one process or another, the same functions on the same samples: the very same lines
    assert [r.as_dict() for r in raphe.classify(cells_folder)] == rows
    assert [r.as_dict() for r in raphe.classify([str(p) for p in cells_files])] == rows
    assert [r.as_dict() for r in raphe.classify(cells_files, jobs=2)] == rows


def test_an_array_gives_what_classify_gives_its_file(cells_files):
    rows = cli_rows(*cells_files)
    recordings = [Recording(p) for p in cells_files]
    for recording, row in zip(recordings, rows):
        (result,) = raphe.classify(recording.sweeps[0].traces[0], rate=recording.sample_rate, name=recording.name)
        assert result.as_dict() == {**row, "recording": recording.name}
    # channels x samples: every row a cell, in order
    stacked = np.stack([r.sweeps[0].traces[0] for r in recordings])
    results = raphe.classify(stacked, rate=recordings[0].sample_rate)
    assert [r.cell for r in results] == ["array:0", "array:1", "array:2"]
    for result, row in zip(results, rows):
        assert (result.decision, result.n_spikes, result.posterior) == (row["decision"], row["n_spikes"],
                                                                        row["posterior"])


def test_a_wide_array_goes_to_the_cascade_where_it_stands_in_and_the_model_is_left_to_raphe(cells_files):
    """An array of more than ENSEMBLE_MAX_CHANNELS channels is classified by the shipped cascade where
    no model is named and its file says it stands in for the ensemble (from its measured agreement),
    else by the ensemble; by the ensemble where the ensemble is named, and a narrow one by the ensemble."""
    from raphe.classifier.runtime.model import SHIPPED
    from raphe.core.specs import ENSEMBLE_MAX_CHANNELS

    stands_in = bool(json.loads(SHIPPED["cascade"].read_text())["stands_in"])
    recording = Recording(cells_files[0])
    trace = recording.sweeps[0].traces[0][:int(4 * recording.sample_rate)]
    wide = np.stack([trace] * (ENSEMBLE_MAX_CHANNELS + 1))
    cascade, ensemble = SHIPPED["cascade"].name, SHIPPED["ensemble"].name
    assert {r.model for r in raphe.classify(wide, rate=recording.sample_rate)} == {cascade if stands_in else ensemble}
    assert {r.model for r in raphe.classify(wide, rate=recording.sample_rate, model="ensemble")} == {ensemble}
    assert {r.model for r in raphe.classify(wide[:ENSEMBLE_MAX_CHANNELS], rate=recording.sample_rate)} == {ensemble}


def test_each_cell_keeps_its_spikes(cells_files):
    recording = Recording(cells_files[0])
    (result,) = raphe.classify(cells_files[0])
    assert result.n_spikes > 0
    assert result.spike_times_s.shape == result.novel.shape == (result.n_spikes,)
    assert result.windows.shape == (result.n_spikes, 160) and result.windows.dtype == np.float32
    assert int(result.novel.sum()) == result.state.n_novel
    assert np.all(np.diff(result.spike_times_s) > 0)
    # the windows and times are the detector's, as it finds them in the file
    model = raphe.Model()
    events, _ = detect_recording(recording, recording.channels, DetectorConfig(window=model.window))
    np.testing.assert_array_equal(result.windows, events.windows)
    np.testing.assert_array_equal(result.spike_times_s, events.records["sample_num"] / recording.sample_rate)
    np.testing.assert_array_equal(result.novel, model.novel(events.windows))
    assert repr(result).startswith(f"<CellResult {result.cell}: {result.decision} (") and "\n" not in repr(result)
    assert result.posterior == result.as_dict()["posterior"] and result.parts == result.as_dict()["parts"]


def test_real_recordings_through_their_files_and_neo():
    import neo  # the formats extra, which `make test` installs
    folder = require_abf_dir()
    # gap-free, upward events: polarity pos takes +50, as on the command line
    gap_free = folder / "File_axon_1.abf"
    row, = cli_rows(gap_free, "--polarity", "pos")
    assert row["n_spikes"] > 0
    (by_path,) = raphe.classify(gap_free, polarity="pos")
    assert by_path.as_dict() == row
    signal = neo.AxonIO(str(gap_free)).read_block().segments[0].analogsignals[0]
    (by_signal,) = raphe.classify(signal, polarity="pos")
    assert by_signal.as_dict() == {**row, "recording": "File_axon_1"}
    # episodic: each neo segment a sweep at its own start, as the file's reader places it
    episodic = folder / "17o05026_vc_stim.abf"
    row, = cli_rows(episodic)
    assert row["n_spikes"] > 0
    assert raphe.classify(episodic)[0].as_dict() == row
    (by_block,) = raphe.classify(neo.AxonIO(str(episodic)).read_block())
    assert_same_cell(by_block, row, 1e-6)  # neo and pyabf scale the int16 samples a float32 apart


def test_to_dataframe_has_the_csv_columns_and_values(cells_folder, tmp_path):
    import pandas  # comes with the nwb extra (pynwb needs it), which `make test` installs
    out = tmp_path / "cells.csv"
    assert run_raphe("classify", cells_folder, "--out", out).returncode == 0
    written = pandas.read_csv(out, keep_default_na=False)
    table = raphe.to_dataframe(raphe.classify(cells_folder))
    assert list(table.columns) == list(written.columns)
    assert list(table["decision"]) == list(written["decision"]) and list(table["n_spikes"]) == list(written["n_spikes"])
    for column in [c for c in table.columns if "posterior_" in c or "probability_" in c]:
        np.testing.assert_allclose(table[column], written[column], rtol=1e-5)


def test_to_dataframe_without_pandas_is_one_line():
    code = ("import sys; sys.modules['pandas'] = None\nimport raphe\ntry:\n    raphe.to_dataframe([])\n"
            "except raphe.RapheError as exc:\n    print(exc)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == ["to_dataframe needs pandas: pip install pandas"]


@pytest.mark.parametrize("source, keywords, fragment", [
    (np.zeros(1000, np.float32), {}, "an array needs its sample rate"),
    (np.zeros((2, 2, 1000), np.float32), {"rate": 20_000}, "got shape (2, 2, 1000)"),
    (np.zeros(1000, np.float32), {"rate": math.nan}, "rate must be a sample rate in Hz within 100..1e+06 (got nan)"),
    (np.zeros(1000, np.float32), {"rate": math.inf}, "(got inf)"),
    (np.zeros(1000, np.float32), {"rate": 0}, "(got 0)"),
    (np.zeros(1000, np.float32), {"rate": -20_000.0}, "(got -20000.0)"),
    (np.zeros(0, np.float32), {"rate": 20_000}, "the array holds no samples"),
    (np.zeros((2, 1000), np.float32), {"rate": 20_000, "channels": [2]}, "no channel '2' (channels: 0=ch0, 1=ch1)"),
    (np.zeros((2, 5000), np.float32).T, {"rate": 20_000}, "has 5000 channels"),
    (np.zeros(1000, np.float32), {"rate": 20_000, "units": "mV"}, "skipped, no channel in pA (it has mV)"),
    ({"trace": [1.0, 2.0]}, {"rate": 20_000}, "cannot classify a dict"),
    (np.zeros(1000, np.float32), {"rate": 20_000, "polarity": "up"}, "polarity must be one of neg, pos, both"),
    (np.zeros(1000, np.float32), {"rate": 20_000, "min_spikes": 0}, "min_spikes must be a whole number >= 1"),
    (np.zeros(1000, np.float32), {"rate": 20_000, "evidence": "smell"}, "unknown evidence 'smell'"),
])
def test_bad_input_is_one_line(source, keywords, fragment):
    with pytest.raises(RapheError) as caught:
        raphe.classify(source, **keywords)
    assert len(str(caught.value).splitlines()) == 1
    assert fragment in str(caught.value)


def test_a_bad_file_says_what_the_command_line_says(cells_files, tmp_path):
    for args, keywords in ((tmp_path / "missing.abf", {}), (cells_files[0], {"channels": [3]})):
        result = run_raphe("classify", args, *(["--channels", "3"] if keywords else []))
        assert result.returncode == 2
        line = result.stderr.strip().removeprefix("raphe classify: ")
        for jobs in (1, 2):  # a worker's failure is the same line, never its traceback
            with pytest.raises(RapheError) as caught:
                raphe.classify([args, args], jobs=jobs, **keywords)
            assert str(caught.value) == line


def test_a_bad_file_among_good_ones_is_a_warning(cells_files, tmp_path):
    broken = tmp_path / "broken.abf"
    broken.write_bytes(b"ABF2" + bytes(100))
    with pytest.warns(UserWarning, match="broken.abf: truncated or corrupt ABF file"):
        results = raphe.classify([broken, *cells_files])
    assert [r.recording for r in results] == [str(p) for p in cells_files]


def test_serve_updates_each_spike_as_classify_ends_the_cell(cells_files):
    rows = {row["cell"]: row for row in cli_rows(*cells_files)}
    recordings = [Recording(p) for p in cells_files]
    with Publisher("tcp://127.0.0.1:*", lossless=True, heartbeat=False) as pub:

        def rig():
            if pub.wait_for_subscribers(1, timeout_s=60):  # the service's subscription
                for recording in recordings:
                    replay(recording, pub, speed=math.inf)

        with raphe.serve(pub.endpoint, idle=3, duration=120) as updates:
            reader = PosteriorReader(updates.posterior_endpoint)
            time.sleep(1.0)  # the reader joins the outputs before the first spike (ZeroMQ's slow joiner)
            threading.Thread(target=rig, daemon=True).start()
            got = list(updates)
            reader.stop()
    by_cell: dict[str, list] = {}
    for update in got:
        by_cell.setdefault(update.cell, []).append(update)
    assert set(by_cell) == {cell for cell, row in rows.items() if row["n_spikes"]}
    for cell, mine in by_cell.items():
        row = rows[cell]
        assert [u.n_spikes for u in mine] == list(range(1, row["n_spikes"] + 1))
        last = mine[-1]
        assert last.decision == row["decision"]
        for name, p in row["posterior"].items():
            assert last.posterior[name] == pytest.approx(p, rel=1e-6, abs=1e-12)
    assert len(reader.frames) == len(got)  # the real outputs published every update too


@pytest.mark.parametrize("keywords, fragment", [
    ({"connect": "nonsense"}, "cannot connect to nonsense"),
    ({"polarity": "up"}, "polarity must be one of neg, pos, both"),
])
def test_serve_refuses_bad_input_in_one_line(keywords, fragment):
    with pytest.raises(RapheError) as caught:
        with raphe.serve(**keywords):
            pass
    assert len(str(caught.value).splitlines()) == 1 and fragment in str(caught.value)


def test_serve_refuses_a_port_in_use_in_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        endpoint = f"tcp://127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(RapheError) as caught:
            with raphe.serve(posterior_endpoint=endpoint):
                pass
    assert len(str(caught.value).splitlines()) == 1 and endpoint in str(caught.value)


def test_the_example_runs(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    result = subprocess.run([sys.executable, str(REPO / "examples" / "classify_in_a_notebook.py")], capture_output=True,
                            text=True, timeout=300, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    from_file = [line.removeprefix("file: ") for line in lines if line.startswith("file: ")]
    from_array = [line.removeprefix("array:") for line in lines if line.startswith("array:")]
    assert from_file and [line.strip() for line in from_file] == [line.strip() for line in from_array]
    assert any(line.split()[:3] == ["stream", "channel_name", "n_spikes"] for line in lines)
