"""A tiny cross-generator run end to end: two generators, a model trained on one, calibrated on
both, judged on held-out days of each by `raphe matrix`."""

from __future__ import annotations

import json

import pytest

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
    trained = run_raphe("train", sources / "template-train", "--out", tmp_path / "m", "--name", "t", "--kernels", "20",
                        "--epochs", "2", "--max-per-cell", "60", timeout=600)
    assert trained.returncode == 0, trained.stderr
    model = tmp_path / "m" / "t-dynamic.tflite"
    calibrated = run_raphe("calibrate", model, sources / "template-calibration", sources / "biophysical-calibration")
    assert calibrated.returncode == 0 and "margin" in calibrated.stderr, calibrated.stderr
    out = tmp_path / "report"
    result = run_raphe("matrix", "--model", f"template={model}", "--data", f"template={sources / 'template-test'}",
                       "--data", f"biophysical={sources / 'biophysical-test'}", "--out", out)
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


def test_bad_matrix_arguments_give_one_line(tmp_path):
    result = run_raphe("matrix", "--model", "nameless", "--data", "x=y")
    assert result.returncode == 2 and "NAME=PATH" in result.stderr
