"""`raphe classify --nwb`: each recording's cells, spikes, windows, probabilities and posteriors in an
NWB file that pynwb reads back and nwbinspector finds no error in."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raphe.classifier.runtime.model import Model
from tests.helpers import assert_one_line_error, require_abf_dir, run_raphe, unavailable

try:
    import nwbinspector
    import pynwb
except ImportError:
    unavailable("pynwb and nwbinspector are not installed (make test installs them)", module_level=True)
ERRORS = {"ERROR", "PYNWB_VALIDATION", "CRITICAL", "BEST_PRACTICE_VIOLATION"}


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    from raphe.classifier.synthetic.dataset import synthesize

    out = tmp_path_factory.mktemp("nwb") / "synth"
    synthesize(out, cells=2, days=1, seed=13, duration_s=6.0)
    return sorted((out / "abf").glob("*.abf"))


def test_classify_writes_nwb_that_reads_back_and_passes_nwbinspector(recordings, tmp_path):
    real = require_abf_dir() / "f1.abf"  # 4 channels, 2 of them pA; 10 sweeps
    files = [*recordings, real]
    result = run_raphe("classify", *files, "--json", "--nwb", tmp_path / "nwb", "--species", "Mus musculus",
                       "--age", "P60D", "--subject-id", "mouse-7", timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    model = Model()
    for path in files:
        nwb_path = tmp_path / "nwb" / f"{path.stem}.nwb"
        mine = [r for r in rows if r["recording"] == str(path)]
        with pynwb.NWBHDF5IO(str(nwb_path), "r") as io:
            nwbfile = io.read()
            units = nwbfile.units.to_dataframe()
            notes = json.loads(nwbfile.notes)
            assert notes["sha256"] == model.checksum and notes["classes"] == list(model.classes)
            assert nwbfile.subject.subject_id == "mouse-7" and len(units) == len(mine) > 0
            for (_, unit), row in zip(units.iterrows(), mine):
                n = row["n_spikes"]
                assert unit["channel_num"] == row["channel_num"] and unit["decision"] == row["decision"]
                assert len(unit["spike_times"]) == n and np.all(np.diff(unit["spike_times"]) > 0)
                assert np.asarray(unit["spike_windows"]).shape == (n, 160)
                assert np.asarray(unit["spike_probabilities"]).shape == (n, 2) and len(unit["novel"]) == n
                assert int(np.sum(unit["novel"])) == row["n_novel"]
                final = [row["posterior"][c] for c in model.classes]
                assert np.allclose(unit["final_posterior"], final, atol=1e-6)
                if n:
                    assert np.allclose(np.asarray(unit["running_posterior"])[-1], final, atol=1e-6)
                    kept = ~np.asarray(unit["novel"], bool)  # novel windows stay out of the seed's rule too
                    mean = np.asarray(unit["spike_probabilities"])[kept].mean(axis=0)
                    assert np.allclose(mean, [row["mean_spike_probability"][c] for c in model.classes], atol=1e-5)
        problems = [m for m in nwbinspector.inspect_nwbfile(nwbfile_path=str(nwb_path)) if m.importance.name in ERRORS]
        assert not problems, [(m.check_function_name, m.message) for m in problems]
    # a results file is no recording: given back to raphe as input, it is refused with that reason
    assert_one_line_error(run_raphe("info", tmp_path / "nwb" / f"{real.stem}.nwb"), "a file of raphe's results")


def test_an_existing_nwb_file_is_not_overwritten_and_a_missing_folder_is_refused(recordings, tmp_path):
    folder = tmp_path / "nwb"
    folder.mkdir()
    (folder / f"{recordings[0].stem}.nwb").write_bytes(b"the lab's own file")
    result = run_raphe("classify", *recordings, "--nwb", folder)
    assert result.returncode == 1 and "exists (nothing overwritten" in result.stderr  # the other file goes on
    assert (folder / f"{recordings[0].stem}.nwb").read_bytes() == b"the lab's own file"
    assert (folder / f"{recordings[1].stem}.nwb").is_file()
    assert_one_line_error(run_raphe("classify", recordings[0], "--nwb", tmp_path / "no" / "such"), "does not exist")


def test_an_archive_with_quiet_recordings_is_written_whole_and_clean(tmp_path):
    """Every shared recording through `classify --nwb --out`: recordings where no channel fires
    are written too (empty, typed columns), every pA channel has its row, and every file is clean
    under nwbinspector once the metadata it asks for is given."""
    abf_dir = require_abf_dir()
    out = tmp_path / "all.csv"
    result = run_raphe("classify", abf_dir, "--nwb", tmp_path / "nwb", "--out", out, "--species", "Mus musculus",
                       "--age", "P60D", "--subject-id", "mouse-7", "--sex", "M", "--experimenter", "Doe, Jane",
                       "--institution", "University", "--lab", "Raphe lab", timeout=600)
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
    rows = out.read_text().splitlines()[1:]
    pa_channels = 0
    for path in sorted(abf_dir.glob("*.abf")):
        from raphe.replay.recording import Recording

        pa = [c for c in Recording(path).channels if c.units == "pA"]
        pa_channels += len(pa)
        if not pa:
            continue
        nwb_path = tmp_path / "nwb" / f"{path.stem}.nwb"
        with pynwb.NWBHDF5IO(str(nwb_path), "r") as io:
            nwbfile = io.read()
            if nwbfile.units is None:  # no channel fired: the cells' rows stand in a table of their own
                cells = nwbfile.processing["ecephys"]["cells"].to_dataframe()
                assert len(cells) == len(pa) and set(cells["decision"]) <= {"undecided", "not classifiable"}
            else:
                units = nwbfile.units.to_dataframe()
                assert len(units) == len(pa)
                for _, unit in units.iterrows():
                    assert np.asarray(unit["spike_windows"]).reshape(-1, 160).shape[0] == len(unit["spike_times"])
        # the suggestions left are about storage, not content: a one-row table (one channel, nothing
        # fired) and channel numbers that happen to be 0 and 1 "could be booleans"
        messages = [m for m in nwbinspector.inspect_nwbfile(nwbfile_path=str(nwb_path))
                    if m.check_function_name not in ("check_single_row", "check_column_binary_capability")]
        assert not messages, (path.name, [(m.check_function_name, m.message) for m in messages])
    assert len(rows) == pa_channels > 10
