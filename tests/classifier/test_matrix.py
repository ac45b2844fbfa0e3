"""A tiny cross-generator run end to end: two generators, a model trained on one, calibrated on
both, judged on held-out days of each by `raphe matrix`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raphe.classifier.runtime import windows as ws
from raphe.classifier.runtime.model import DEFAULT_DIR
from raphe.classifier.synthetic.dataset import synthesize
from tests.helpers import run_raphe


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("matrix")
    for generator in ("template", "biophysical"):
        for part, seed, cells in (("train", 41, 12), ("calibration", 42, 8), ("test", 43, 8)):
            synthesize(root / f"{generator}-{part}", cells=cells, days=2, seed=seed, duration_s=8.0,
                       write_abf=False, generator=generator, rates=(20_000.0, 40_000.0))
    return root


def test_a_template_model_judged_on_both_generators(sources, tmp_path):
    trained = run_raphe("train", sources / "template-train", "--out-dir", tmp_path / "m", "--name", "t", "--kernels", "20",
                        "--epochs", "2", "--max-per-cell", "60", timeout=600)
    assert trained.returncode == 0, trained.stderr
    model = tmp_path / "m" / "t-dynamic.tflite"
    calibrated = run_raphe("calibrate", model, sources / "template-calibration", sources / "biophysical-calibration")
    assert calibrated.returncode == 0 and "margin" in calibrated.stderr, calibrated.stderr
    out = tmp_path / "report"
    result = run_raphe("matrix", "--model", f"template={model}", "--data", f"template={sources / 'template-test'}",
                       "--data", f"biophysical={sources / 'biophysical-test'}", "--out-dir", out)
    assert result.returncode == 0, result.stderr
    assert "| figure | template on template | template on biophysical |" in result.stdout
    matrix = json.loads((out / "matrix.json").read_text())
    assert [(e["model"], e["data"]) for e in matrix["entries"]] == [("template", "template"), ("template", "biophysical")]
    for entry in matrix["entries"]:
        f = entry["figures"]
        assert f["cells"] == 8
        for key in ("cell_accuracy_seed_rule", "decided", "decided_wrongly", "not_classifiable", "atypical_ser_seed_rule"):
            low, high = f[key]["ci95"] if f[key]["n"] else (0.0, 1.0)
            assert f[key]["n"] == 0 or low <= f[key]["rate"] <= high
        shares = [(p["decided"], p["decided_wrongly"]) for p in entry["tradeoff"]]
        assert all(a >= b for a, b in zip(shares, shares[1:]))  # a higher threshold decides no more cells
    assert (out / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "fitted_on" in json.loads(model.with_suffix(".json").read_text())["posterior"]


def test_a_cascade_is_judged_beside_its_ensemble(sources, tmp_path):
    """`raphe matrix` takes a cascade's file like a model's: the shipped cascade and its ensemble on
    the same cells, each judged by the ensemble's posterior."""
    out = tmp_path / "report"
    result = run_raphe("matrix", "--model", "ensemble=ensemble", "--model", "cascade=cascade",
                       "--data", f"biophysical={sources / 'biophysical-test'}", "--out-dir", out)
    assert result.returncode == 0, result.stderr
    matrix = json.loads((out / "matrix.json").read_text())
    assert [e["model"] for e in matrix["entries"]] == ["ensemble", "cascade"]
    assert matrix["models"]["cascade"]["path"].endswith("raphe-cascade.json")
    assert matrix["models"]["cascade"]["posterior"] == matrix["models"]["ensemble"]["posterior"]
    assert all(e["figures"]["cells"] == 8 for e in matrix["entries"])


def test_bad_matrix_arguments_give_one_line(tmp_path):
    result = run_raphe("matrix", "--model", "nameless", "--data", "x=y")
    assert result.returncode == 2 and "NAME=PATH" in result.stderr


def test_a_firing_model_joins_the_posterior_and_every_evidence_is_judged(sources, tmp_path):
    """A real firing fit on the template cells' trains, the joint posterior of the shipped student
    calibrated with it on both generators, then judged with each kind of evidence; a set without
    spike times cannot calibrate firing."""
    folder = tmp_path / "m"
    folder.mkdir()
    for suffix in (".tflite", ".json"):
        (folder / f"s{suffix}").write_bytes((DEFAULT_DIR / f"raphe-student-dynamic{suffix}").read_bytes())
    firing = tmp_path / "lab-firing.json"
    trained = run_raphe("firing-model", sources / "template-train", sources / "biophysical-train", "--out", firing)
    assert trained.returncode == 0 and "wrote" in trained.stderr, trained.stderr
    model = folder / "s.tflite"
    calibrated = run_raphe("calibrate", model, sources / "template-calibration", sources / "biophysical-calibration",
                           "--firing", firing)
    assert calibrated.returncode == 0 and "firing weight" in calibrated.stderr, calibrated.stderr
    joint = json.loads(model.with_suffix(".json").read_text())["posterior"]["firing"]
    assert joint["model"] == "lab-firing.json" and (folder / "lab-firing.json").is_file()
    from raphe.classifier.runtime.model import Model

    assert Model(model).posterior_config().evidence == "both"  # calibrated with firing, it decides jointly
    out = tmp_path / "report"
    result = run_raphe("matrix", "--model", f"s={model}", "--data", f"biophysical={sources / 'biophysical-test'}",
                       "--evidence", "waveform", "firing", "both", "--out-dir", out)
    assert result.returncode == 0, result.stderr
    entries = json.loads((out / "matrix.json").read_text())["entries"]
    assert [e["model"] for e in entries] == ["s (waveform)", "s (firing)", "s (both)"]
    for e in entries:
        assert e["figures"]["cells"] == 8 and "median_seconds_to_decision" in e["figures"]
    seed_rule = {e["figures"]["cell_accuracy_seed_rule"]["rate"] for e in entries}
    assert len(seed_rule) == 1  # the evidence changes the posterior, never the seed's rule
    without_times = tmp_path / "no-times.npz"
    data = ws.load(sources / "template-calibration")
    ws.save_npz(ws.make(data.X, np.asarray(data.classes)[data.y], data.cell, data.day, classes=data.classes),
                without_times)
    refused = run_raphe("calibrate", model, without_times, "--firing", firing)
    assert refused.returncode == 2 and "spike times" in refused.stderr and "Traceback" not in refused.stderr


def test_conflict_cells_of_a_set_without_spike_times_are_refused_in_one_line(tmp_path):
    from raphe.classifier.runtime import windows as ws
    from tests.helpers import assert_one_line_error

    data = tmp_path / "no-times.npz"
    ws.save_npz(ws.make(np.zeros((4, ws.N_POINTS)), ["SER", "NSER"] * 2, list("abcd"), ["d"] * 4), data)
    result = run_raphe("matrix", "--model", "a=student", "--data", f"x={data}", "--conflict")
    assert_one_line_error(result, "conflict cells need spike times")
