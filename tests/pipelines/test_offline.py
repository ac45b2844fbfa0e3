"""The offline path: `raphe classify` over files and folders, bad files among them."""

from __future__ import annotations

import json

from tests.helpers import run_raphe


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
    assert {"recording", "stream", "channel_num", "channel_name", "n_spikes", "posterior", "decision",
            "spikes_to_decision", "mean_spike_probability"} <= set(rows[0])
    lines = out.read_text().splitlines()
    assert lines[0].startswith("recording,stream,channel_num") and len(lines) == 2


def test_classify_a_folder_skips_voltage_recordings(abf_dir):
    result = run_raphe("classify", abf_dir, "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["stream"] for r in rows} >= {"File_axon_1", "pclamp11_4ch", "f1"}
    assert "19114000.abf: skipped, no channel in pA" in result.stderr
    assert all(r["channel_name"] != "10_Vm" for r in rows)
