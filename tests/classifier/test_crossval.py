"""`raphe crossval`: folds by day or by cell, a real (tiny) cross-validated training run from
labelled recordings, the cross-fitted posterior in the final model, and its report."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from raphe.classifier.runtime import windows as ws
from raphe.classifier.runtime.model import Model
from raphe.core.errors import RapheError
from tests.helpers import assert_one_line_error, run_raphe


def toy(cells_per_class: int, days: list[str]) -> ws.WindowSet:
    rng = np.random.default_rng(0)
    labels, cells, day = [], [], []
    for label in ("SER", "NSER"):
        for c in range(cells_per_class):
            labels += [label] * 3
            cells += [f"{label}{c}"] * 3
            day += [days[c % len(days)]] * 3
    return ws.make(rng.normal(size=(len(labels), ws.N_POINTS)), labels, cells, day)


def test_folds_keep_days_whole_where_there_are_days_and_cells_whole_otherwise():
    from raphe.classifier.training.crossval import assign_folds

    by_day = toy(6, ["mon", "tue", "wed", "thu"])
    fold, unit = assign_folds(by_day, 5, np.random.default_rng(1))
    assert unit == "day" and fold.max() + 1 == 4
    assert all(len(set(fold[by_day.day == d])) == 1 for d in np.unique(by_day.day))
    few_days = toy(4, ["mon", "tue", "wed", "thu"])  # one cell of each class a day
    fold, unit = assign_folds(few_days, 4, np.random.default_rng(1))
    assert unit == "day" and fold.max() + 1 == 4  # every training part keeps 3 days, so 3 cells of each class
    three_days = toy(3, ["mon", "tue", "wed"])  # 3 folds would leave 2 cells of a class: 2 folds neither
    with pytest.raises(RapheError, match="at least 4 cells of each"):
        assign_folds(three_days, 5, np.random.default_rng(1))
    by_cell = toy(4, [ws.UNKNOWN_DAY])
    fold, unit = assign_folds(by_cell, 5, np.random.default_rng(1))
    assert unit == "cell" and fold.max() + 1 == 4  # every training part keeps 3 cells of each class
    assert all(len(set(fold[by_cell.cell == c])) == 1 for c in np.unique(by_cell.cell))
    for k in range(4):  # every fold holds cells of both classes
        assert set(by_cell.y[fold == k]) == {0, 1}
    with pytest.raises(RapheError, match="at least 4 cells of each"):
        assign_folds(toy(3, [ws.UNKNOWN_DAY]), 5, np.random.default_rng(1))
    with pytest.raises(RapheError, match="at least 2 folds"):
        assign_folds(by_day, 1, np.random.default_rng(1))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Twelve synthetic cells over three days, kept as a lab keeps recordings: one folder per class."""
    from raphe.classifier.synthetic.dataset import synthesize

    root = tmp_path_factory.mktemp("crossval")
    synthesize(root / "synth", cells=12, days=3, seed=7, duration_s=8.0)
    return root / "synth"


def test_crossval_from_labelled_recordings_writes_a_trusted_model_and_its_report(lab, tmp_path):
    out = tmp_path / "lab-model"
    result = run_raphe("crossval", lab / "manifest.csv", "--out-dir", out, "--kernels", "20", "--epochs", "2",
                       "--folds", "3", timeout=900)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "crossval.json").read_text())
    assert report["unit"] == "day" and len(report["folds"]) == 3
    held_out_days = [d for f in report["folds"] for d in f["days"]]
    assert sorted(held_out_days) == sorted(set(held_out_days)) and len(held_out_days) == 3
    assert sum(f["figures"]["cells"] for f in report["folds"]) == report["pooled"]["cells"] == 12
    assert "one cell is worth 16.7 points" in result.stdout and "too few to trust" in result.stdout
    final = Model(out / "final" / "model-dynamic.tflite")
    posterior = final.metadata["posterior"]
    assert posterior["fitted_on"].startswith("cross-fitted") and posterior["fitted_on_cells"] == 12
    joint = posterior["firing"]  # the recordings give spike times: a firing model, cross-fitted with the rest
    fitted = report["final_posterior"]
    assert [posterior["alpha"], posterior["beta"], posterior["margin"], posterior["waveform_cap"], joint["weight"],
            joint["joint_margin"], joint["margin"], joint["conflict"]] == [
        fitted[k] for k in ("alpha", "beta", "margin", "waveform_cap", "firing_weight", "joint_margin",
                            "firing_margin", "conflict")]
    thresholds = posterior["certificate"]["thresholds"]  # 12 cells certify nothing: 0.99 kept, and said
    assert thresholds == {"SER": 0.99, "NSER": 0.99} and report["thresholds"]["thresholds"] == thresholds
    config = final.posterior_config()
    assert config.alpha == posterior["alpha"] and config.evidence == "both" and final.firing is not None
    assert final.firing.path == out / "final" / "model-firing.json" and report["evidence"] == "both"
    assert all((out / "folds" / f"fold-{k}" / "firing.json").exists() for k in (1, 2, 3))
    assert report["pooled_waveform"]["cells"] == 12 and len(report["folds"][0]["posterior"]) == 8
    text = (out / "report.md").read_text()
    assert "| pooled |" in text and "joint posterior" in text and "waveform posterior alone" in text
    # the certificate, and the fitted posterior in words
    assert "needs ≥ 149 decided cells without an error" in text or "decided wrongly ≤" in text
    assert f"weighted α = {fitted['alpha']:.3g}" in text and "confident spikes (0.99 each) of one shape reach" in text
    assert "decision thresholds by risk control: " in text and "SER 0.99 (decided SER wrongly" in text
    assert final.metadata["class_means"]["windows"].keys() == {"SER", "NSER"}
    for k in (1, 2, 3):  # each fold's model was trained without its own days
        split = Model(out / "folds" / f"fold-{k}" / f"fold-{k}-dynamic.tflite").metadata["training"]["split"]
        seen = {d for part in ("train", "validation", "calibration") for d in split[part]["days"]}
        assert seen and not seen & set(report["folds"][k - 1]["days"])


def test_crossval_refuses_a_folder_that_is_not_empty(lab, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    assert_one_line_error(run_raphe("crossval", lab / "manifest.csv", "--out-dir", tmp_path / "taken"), "not an empty folder")


def test_crossval_needs_four_cells_of_each_class(lab, tmp_path):
    root = tmp_path / "cells"
    for label, name in (("SER", "a"), ("NSER", "b")):
        (root / label).mkdir(parents=True)
        shutil.copy(next((lab / "abf").glob("*.abf")), root / label / f"{name}.abf")
    result = run_raphe("crossval", root, "--out-dir", tmp_path / "m", "--kernels", "20", "--epochs", "1")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "at least 4 cells of each" in lines[-1] and all(line.startswith("warning: ") for line in lines[:-1])


def test_the_verdict_warns_of_a_fold_whose_members_learnt_nothing_that_carries():
    from raphe.classifier.training.crossval import verdict

    rate = {"rate": 0.9, "ci95": [0.8, 0.95]}
    result = {"classes": {"SER": {"cells": 30, "days": 4}, "NSER": {"cells": 30, "days": 4}},
              "folds": [{"fold": 1, "days": ["d1", "d2"], "member_validation_accuracy": [0.93, 0.91]},
                        {"fold": 2, "days": ["d3", "d4"], "member_validation_accuracy": [0.45, 0.5]}],
              "pooled": {"cell_accuracy_posterior": rate, "decided": rate, "decided_wrongly": rate,
                         "certificate": {"text": "decided wrongly ≤ 1.0% at 95% confidence from 300 decided cells"}},
              "evidence": "both", "final_posterior": {"alpha": 2.0, "beta": 0.0, "margin": 0.0, "waveform_cap": 8.0,
                                                      "firing_weight": 1.0}}
    lines = verdict(result)
    weak = [line for line in lines if "did not carry" in line]
    assert len(weak) == 1 and weak[0].startswith("fold 2 (held out: d3, d4)") and "0.45-0.50" in weak[0]


def test_the_report_warns_when_an_evidence_stream_is_effectively_off():
    """The fit a small lab once got (α 0.0126, firing weight 2) is named and explained: the waveform
    evidence cannot decide on its own, so decisions rest on firing; a firing weight of 0 is said too."""
    from raphe.classifier.training.crossval import posterior_warnings, posterior_words

    off = {"alpha": 0.0125893, "beta": 0.0, "margin": 0.0, "waveform_cap": float("inf"), "firing_weight": 1.99526,
           "joint_margin": 0.0, "firing_margin": 0.0, "conflict": float("inf")}
    warnings = posterior_warnings(off, joint=True)
    assert len(warnings) == 1 and "waveform evidence is effectively off" in warnings[0]
    assert "decisions rest on the firing" in warnings[0]
    thresholds = {"per_class": {"SER": {"threshold": 0.99, "text": "decided SER wrongly: cannot certify"}}}
    words = posterior_words(off, thresholds, joint=True)
    assert words[0].startswith("waveform evidence: each spike's log-probabilities weighted α = 0.0126")
    assert any("firing evidence: weighted 2" in w for w in words)
    assert posterior_warnings({**off, "alpha": 2.0}, joint=True) == []
    assert "firing evidence is off" in posterior_warnings({**off, "alpha": 2.0, "firing_weight": 0.0}, joint=True)[0]
