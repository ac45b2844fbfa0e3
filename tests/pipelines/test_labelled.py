"""Labelled recordings into training and evaluation: class folders of .abf files and CSV manifests,
cut by the runtime's detector, with cell, file and day identity; bad manifests in one line."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from raphe.core.errors import RapheError
from raphe.pipelines.labelled_recordings import load_labelled
from raphe.replay.recording import Recording
from tests.helpers import assert_one_line_error, require_abf_dir, run_raphe


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """Six synthetic cells over two days, as `raphe synth` writes them, and their manifest rows."""
    from raphe.classifier.synthetic.dataset import synthesize

    out = tmp_path_factory.mktemp("labelled") / "synth"
    synthesize(out, cells=6, days=2, seed=11, duration_s=8.0)
    with (out / "manifest.csv").open() as f:
        return out, list(csv.DictReader(f))


@pytest.fixture(scope="module")
def class_folders(synth, tmp_path_factory):
    """The same recordings as a lab keeps them: ROOT/SER/*.abf and ROOT/NSER/*.abf."""
    out, rows = synth
    root = tmp_path_factory.mktemp("lab") / "cells"
    for row in rows:
        (root / row["label"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(out / row["file"], root / row["label"])
    return root


def crossings(row: dict) -> int:
    """Every window the detector cuts from a synthetic cell: its own spikes and its artefacts."""
    return int(row["n_windows"]) + int(row["n_artefact_windows"])


def test_class_folders_give_every_detected_window_labelled_by_folder(class_folders, synth):
    _, rows = synth
    data, _ = load_labelled(class_folders)
    for row in rows:
        mask = data.cell == f"{row['label']}/{row['cell']}:0"
        assert mask.sum() == crossings(row) > 0
        assert set(np.asarray(data.classes)[data.y[mask]]) == {row["label"]}
    assert set(data.classes) == {"SER", "NSER"} and len(data) == sum(crossings(r) for r in rows)


def test_a_manifest_gives_days_udi_parts_and_exclusions(synth, tmp_path):
    out, rows = synth
    data, _ = load_labelled(out / "manifest.csv")  # `raphe synth`'s own manifest is a labelled manifest
    for row in rows:
        mask = data.cell == f"abf/{row['cell']}:0"
        assert mask.sum() == crossings(row)
        assert set(data.day[mask]) == {row["day"]} and np.allclose(data.udi_ms[mask], float(row["udi_ms"]))
    first, second, third = rows[:3]
    manifest = tmp_path / "manifest.csv"
    (tmp_path / "abf").symlink_to(out / "abf")  # a manifest names what lies beside it (links are the lab's)
    manifest.write_text("file,label,channel,day,start_s,stop_s,exclude,notes\n"
                        f"{first['file']},{first['label']},0,monday,2,5,,seal lost at 5 s\n"
                        f"{second['file']},{second['label']},,tuesday,,,yes,\n"
                        f"{third['file']},{third['label']},,,,,,\n")
    part, _ = load_labelled(manifest)
    trimmed = part.subset(part.day == "monday")
    rest = part.subset(part.day != "monday")
    assert len(set(part.cell.tolist())) == 2 and set(trimmed.cell.tolist()) == {first["file"][:-4] + "@2-5s:0"}
    # no day in the manifest: the file's recording date
    assert len(rest) == crossings(third) and set(rest.day.tolist()) == {Recording(out / third["file"]).recorded_on}
    whole = {w.tobytes() for w in data.X[data.cell == f"abf/{first['cell']}:0"]}
    assert 0 < len(trimmed) < len(whole) and all(w.tobytes() in whole for w in trimmed.X)


def test_train_and_evaluate_from_labelled_recordings(class_folders, synth, tmp_path):
    """A real (tiny) training run from class folders, judged on the manifest of the same cells."""
    out, _ = synth
    trained = run_raphe("train", class_folders, "--out-dir", tmp_path / "lab-model", "--kernels", "20", "--epochs", "1",
                        "--name", "lab", timeout=600)
    assert trained.returncode == 0, trained.stderr
    meta = json.loads((tmp_path / "lab-model" / "lab-dynamic.json").read_text())
    assert "cells" in meta["training"]["data"] and str(class_folders) in meta["training"]["data"]
    judged = run_raphe("evaluate", tmp_path / "lab-model" / "lab-dynamic.tflite", out / "manifest.csv", timeout=300)
    assert judged.returncode == 0, judged.stderr
    assert "cell" in judged.stdout.lower() and "too few to judge" in judged.stderr


@pytest.mark.parametrize("content, fragment", [
    ("file,day\nx.abf,monday\n", "needs the columns file, label"),
    ("file,label\nnowhere.abf,SER\n", "line 2: no such recording nowhere.abf"),
    ("file,label,start_s\n{abf},SER,soon\n", "must be numbers"),
    ("file,label,start_s,stop_s\n{abf},SER,5,2\n", "before stop_s"),
    ("file,label,exclude\n{abf},SER,yes\n", "every row is excluded"),
])
def test_a_bad_manifest_is_one_line_and_exit_2(synth, tmp_path, content, fragment):
    out, rows = synth
    manifest = tmp_path / "bad.csv"
    (tmp_path / "cell.abf").symlink_to(out / rows[0]["file"])
    manifest.write_text(content.format(abf="cell.abf"))
    assert_one_line_error(run_raphe("evaluate", "default", manifest), fragment)


def test_a_recording_of_several_current_channels_needs_its_channel_named(tmp_path):
    abf_dir = require_abf_dir()
    manifest = tmp_path / "cells.csv"
    (tmp_path / "pclamp11_4ch.abf").symlink_to(abf_dir / "pclamp11_4ch.abf")
    manifest.write_text("file,label\npclamp11_4ch.abf,NSER\n")
    with pytest.raises(RapheError, match="4 channels in pA, so the cell's channel must be named"):
        load_labelled(manifest)
    manifest.write_text("file,label,channel\npclamp11_4ch.abf,NSER,IN 2\n")
    with pytest.raises(RapheError, match="no labelled recording gave a window"):
        load_labelled(manifest)  # the channel is found; it holds no spike


def test_a_channel_that_is_not_cell_attached_current_is_left_out_with_its_reason(synth, tmp_path):
    """The runtime's signal checks judge labelled recordings too: a mislabelled voltage channel
    does not teach the model."""
    abf_dir = require_abf_dir()
    out, rows = synth
    manifest = tmp_path / "cells.csv"
    (tmp_path / "abf").symlink_to(out / "abf")
    (tmp_path / "f1.abf").symlink_to(abf_dir / "f1.abf")
    manifest.write_text("file,label,channel\n"
                        f"{rows[0]['file']},{rows[0]['label']},0\n"
                        "f1.abf,NSER,2\n")  # channel 2 of f1 is a membrane potential in mV
    data, warnings = load_labelled(manifest)
    assert len(set(data.cell.tolist())) == 1 and len(data) == crossings(rows[0])
    assert any("f1:2: left out" in w and "mV" in w for w in warnings), warnings
