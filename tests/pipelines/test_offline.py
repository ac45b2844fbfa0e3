"""The offline path: `raphe classify` over files and folders, bad files among them."""

from __future__ import annotations

import json

from tests.helpers import assert_one_line_error, run_raphe


def test_classify_reports_unreadable_files_and_goes_on(labelled_files, tmp_path):
    bad = tmp_path / "broken.abf"
    bad.write_bytes(b"ABF2" + bytes(100))
    out = tmp_path / "cells.csv"
    result = run_raphe("classify", labelled_files[0], bad, tmp_path / "missing.abf", "--json", "--out", out)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("raphe classify:")]
    assert len(errors) == 2 and "broken.abf" in errors[0] and "missing.abf" in errors[1]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 1 and rows[0]["recording"].endswith(labelled_files[0].name)
    assert {"recording", "model", "stream", "channel_num", "channel_name", "n_spikes", "posterior", "decision",
            "spikes_to_decision", "mean_spike_probability"} <= set(rows[0])
    assert rows[0]["model"] == "raphe-default-dynamic.tflite"  # one channel: the ensemble, by the rule
    lines = out.read_text().splitlines()
    assert lines[0].startswith("recording,model,stream,channel_num") and len(lines) == 2


def test_classify_a_folder_skips_voltage_recordings(abf_dir):
    result = run_raphe("classify", abf_dir, "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["stream"] for r in rows} >= {"File_axon_1", "pclamp11_4ch", "f1"}
    assert "19114000.abf: skipped, no channel in pA" in result.stderr
    assert all(r["channel_name"] != "10_Vm" for r in rows)


def test_no_shared_recording_is_decided_and_implausible_channels_say_why(abf_dir):
    """None of the shared recordings is a loose-seal raphe cell: none may end decided, and the
    channels that are not cell-attached current of a firing cell say why."""
    result = run_raphe("classify", abf_dir, "--json")
    assert result.returncode == 0, result.stderr
    rows = {(r["stream"], r["channel_num"]): r for r in map(json.loads, result.stdout.splitlines())}
    assert all(r["decision"] in ("undecided", "not classifiable") for r in rows.values())
    for key in [("130618-1-12", 0), ("17o05026_vc_stim", 0), ("f1", 0), ("f1", 1)]:
        assert rows[key]["decision"] == "not classifiable" and rows[key]["reasons"], key
    assert any("sweeps" in r for r in rows[("130618-1-12", 0)]["reasons"])  # capacitive transients
    assert any("events are positive" in h for h in rows[("File_axon_1", 0)]["hints"])
    assert any("no spikes" in h for h in rows[("pclamp11_4ch", 0)]["hints"])
    assert any("sweeps" in r for r in rows[("17o05026_vc_stim", 0)]["reasons"])
    skipped = [line for line in result.stderr.splitlines() if "skipped, no channel in pA" in line]
    assert len(skipped) >= 8  # the mV, V and nA recordings say what they hold
    forced = run_raphe("classify", abf_dir / "19114000.abf", "--channels", "0", "--json", "--polarity", "pos")
    row = json.loads(forced.stdout.splitlines()[0])
    assert row["decision"] == "not classifiable" and any("units are mV" in r for r in row["reasons"])


def rows_by_cell(stdout: str) -> dict:
    return {(r["recording"], r["cell"]): r for r in map(json.loads, stdout.splitlines())}


def test_two_processes_and_a_dask_cluster_classify_as_one_process_does(labelled_files, tmp_path):
    from distributed import LocalCluster

    serial = run_raphe("classify", *labelled_files, "--json", "--out", tmp_path / "serial.csv")
    parallel = run_raphe("classify", *labelled_files, "--json", "--jobs", "2", "--out", tmp_path / "jobs.csv")
    assert serial.returncode == parallel.returncode == 0, parallel.stderr
    assert rows_by_cell(parallel.stdout) == rows_by_cell(serial.stdout) and len(rows_by_cell(serial.stdout)) == 3
    assert (tmp_path / "jobs.csv").read_text() == (tmp_path / "serial.csv").read_text()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        dask = run_raphe("classify", *labelled_files, "--json", "--scheduler", cluster.scheduler_address,
                         timeout=300)
    assert dask.returncode == 0, dask.stderr
    assert rows_by_cell(dask.stdout) == rows_by_cell(serial.stdout)


def test_an_unreachable_scheduler_is_one_line_before_any_work(labelled_files):
    result = run_raphe("classify", *labelled_files, "--scheduler", "tcp://127.0.0.1:9", timeout=120)
    assert_one_line_error(result, "cannot reach the Dask scheduler at tcp://127.0.0.1:9")


def test_evidence_switches_which_posterior_decides_and_every_part_is_shown(labelled_files, tmp_path):
    rows = {}
    for evidence in ("waveform", "firing", "both"):
        result = run_raphe("classify", *labelled_files, "--json", "--evidence", evidence,
                           "--out", tmp_path / f"{evidence}.csv")
        assert result.returncode == 0, result.stderr
        rows[evidence] = [json.loads(line) for line in result.stdout.splitlines()]
        deciding = "joint" if evidence == "both" else evidence
        for row in rows[evidence]:
            assert row["evidence"] == evidence and row["posterior"] == row["parts"][deciding]
            assert row["n_isi"] > 8 and row["parts"]["firing"] != {"SER": 0.5, "NSER": 0.5}
        header = (tmp_path / f"{evidence}.csv").read_text().splitlines()[0]
        assert "firing_posterior_SER" in header and "seconds_to_decision" in header
    for a, b in zip(rows["waveform"], rows["both"]):
        assert a["parts"] == b["parts"]  # the same evidence; only which part decides differs
        assert a["n_spikes"] == b["n_spikes"] and a["mean_spike_probability"] == b["mean_spike_probability"]
    default = run_raphe("classify", labelled_files[0], "--json")
    assert json.loads(default.stdout.splitlines()[0])["evidence"] == "both"  # the shipped model has a firing model


def test_the_report_draws_why_each_cell_ended_as_it_did(labelled_files, tmp_path):
    import matplotlib.image
    import numpy as np

    from raphe.classifier.runtime.model import Model
    from raphe.pipelines.offline import detect_recording
    from raphe.outputs.report import occlusion_saliency
    from raphe.replay.recording import Recording

    out = tmp_path / "why"
    result = run_raphe("classify", *labelled_files, "--report-dir", out, "--json")
    assert result.returncode == 0, result.stderr
    figures = sorted(out.glob("*.png"))
    assert [f.name for f in figures] == sorted(f"{p.stem}-0.png" for p in labelled_files)
    for figure in figures:
        image = matplotlib.image.imread(figure)
        assert image.shape[0] > 400 and image.shape[1] > 700 and image.std() > 0.05
    model = Model()
    recording = Recording(labelled_files[0])
    from raphe.detector.config import DetectorConfig

    events, _ = detect_recording(recording, recording.channels, DetectorConfig(window=model.window))
    leading = int(model.predict(events.windows).mean(axis=0).argmax())
    saliency = occlusion_saliency(model, events.windows, leading)
    assert saliency.shape == (model.n_points,) and np.abs(saliency).max() > 0.01
    # the spike (trough and positive phase, 1-3 ms into the window) drives the call, not the flat baseline
    t_ms = model.window.time_ms()
    assert np.abs(saliency[(t_ms > 0) & (t_ms < 1.5)]).max() > 3 * np.abs(saliency[t_ms < -0.5]).max()
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    assert_one_line_error(run_raphe("classify", labelled_files[0], "--report-dir", a_file), "is a file")
