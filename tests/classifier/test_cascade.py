"""The cascade: the shipped student, and the shipped ensemble for the windows the student is unsure of."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from raphe.classifier.evaluation.escalation import answers, choose_margin
from raphe.classifier.runtime.cascade import Cascade, unsure
from raphe.classifier.runtime.model import SHIPPED, Model
from raphe.classifier.runtime.serving import load, stand_in
from raphe.classifier.synthetic import template
from raphe.classifier.synthetic.dataset import synthesize
from raphe.core.errors import RapheError
from raphe.core.specs import STAND_IN_AGREEMENT

from tests.helpers import assert_one_line_error, run_raphe


def blended_windows(model: Model, count: int = 240) -> np.ndarray:
    """Windows from a SER cell's shape to an NSER cell's, through every blend of the two: the
    student is sure at the ends and unsure somewhere between."""
    rng = np.random.default_rng(3)
    t_ms = model.window.time_ms()
    ser, nser = (template.action_current(template.draw_cell(label, rng), t_ms - 0.1) for label in ("SER", "NSER"))
    share = np.linspace(0.0, 1.0, count)[:, None]
    return (share * ser + (1.0 - share) * nser + rng.normal(0.0, 2.0, (count, len(t_ms)))).astype(np.float32)


def copy_both(folder) -> None:
    """The shipped student and ensemble (and the ensemble's firing model) into ``folder``."""
    for name in ("raphe-student-dynamic.tflite", "raphe-student-dynamic.json", "raphe-default-dynamic.tflite",
                 "raphe-default-dynamic.json", "raphe-firing.json"):
        shutil.copy(SHIPPED["ensemble"].parent / name, folder)


@pytest.fixture(scope="module")
def cascade() -> Cascade:
    return load("cascade")


def test_the_cascade_answers_as_the_student_where_it_is_sure_and_as_the_ensemble_where_it_is_not(cascade):
    windows = blended_windows(cascade.ensemble)
    student, ensemble = cascade.student.predict(windows), cascade.ensemble.predict(windows)
    doubtful = unsure(student, cascade.margin)
    assert 0 < doubtful.sum() < len(windows) / 2
    before = (cascade.windows, cascade.handed_on)
    got = cascade.predict(windows)
    assert (cascade.windows - before[0], cascade.handed_on - before[1]) == (len(windows), doubtful.sum())
    np.testing.assert_array_equal(got[~doubtful], student[~doubtful])
    np.testing.assert_allclose(got[doubtful], ensemble[doubtful], atol=1e-6)
    np.testing.assert_allclose(got, answers(student, ensemble, cascade.margin), atol=1e-6)
    gap = np.abs(student[:, 0] - student[:, 1])  # two classes: the gap between them
    np.testing.assert_array_equal(doubtful, gap < cascade.margin)
    assert not np.allclose(got[doubtful], student[doubtful], atol=1e-3)  # the ensemble's answers, not the student's
    # the rest of what a service asks of a model is the ensemble's, its detector and class means too
    assert cascade.classes == cascade.ensemble.classes and cascade.window == cascade.ensemble.window
    assert cascade.metadata["detector"] == cascade.ensemble.metadata["detector"]
    assert cascade.metadata["name"] == "raphe-cascade" and cascade.metadata["sha256"] == cascade.checksum
    np.testing.assert_array_equal(cascade.novel(windows), cascade.ensemble.novel(windows))
    assert cascade.posterior_config() == cascade.ensemble.posterior_config()


@pytest.mark.parametrize("classes", [2, 3, 5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unsure_is_the_gap_between_the_two_most_probable_classes(classes, dtype):
    rng = np.random.default_rng(classes)
    probabilities = rng.dirichlet(np.ones(classes), 20_000).astype(dtype)
    probabilities[:2_000] = np.round(probabilities[:2_000], 2)  # ties, and gaps exactly at a margin
    ranked = np.sort(probabilities, axis=1)
    gap = ranked[:, -1] - ranked[:, -2]  # in the probabilities' own type
    for margin in (0.01, 0.08, 0.3):
        expected = gap < dtype(margin)
        assert 0 < expected.sum() < len(expected)
        np.testing.assert_array_equal(unsure(probabilities, margin), expected)
    assert unsure(probabilities, 1.0).all() and not unsure(probabilities, 0.0).any()


def test_a_padded_batch_answers_as_its_windows_one_by_one_after_a_fuller_batch(cascade):
    """A batch's interpreter keeps its input buffer between calls: a smaller batch in it answers for
    its own windows, as each alone, whatever a fuller one left there."""
    model = cascade.ensemble
    windows = blended_windows(model, 16)
    model.predict(windows[:8] * 1000.0)  # a full batch of 8 loud windows
    smaller = model.predict(windows[8:13])  # 5 windows, padded to 8
    alone = np.stack([model.predict_one(w) for w in windows[8:13]])
    np.testing.assert_allclose(smaller, alone, atol=1e-6)


def test_a_cascade_loaded_beside_its_ensemble_shares_it():
    """A worker process that loaded the ensemble loads the wide streams' cascade on it, not a second copy."""
    ensemble, student = Model("ensemble"), Model("student")
    assert load("cascade", loaded=ensemble).ensemble is ensemble
    apart = load("cascade", loaded=student)  # not its ensemble: loaded on its own
    assert apart.ensemble is not student and apart.ensemble.checksum == ensemble.checksum


def test_the_shipped_cascade_stands_in_by_what_its_file_measured(cascade):
    measured = json.loads(SHIPPED["cascade"].read_text())
    assert measured["margin"] == cascade.margin > 0
    assert set(measured["checked_on"]) == {"template", "biophysical", "compartmental"}
    agrees = all(c["agreement"] >= STAND_IN_AGREEMENT and c["other_class"] == 0
                 and c["wrong_cascade"] <= c["wrong_ensemble"] for c in measured["checked_on"].values())
    assert measured["stands_in"] == agrees
    assert (stand_in(None) is not None) == (stand_in("default") is not None) == agrees
    assert stand_in("ensemble") is None and stand_in("cascade") is None and stand_in(Model()) is None


def test_a_margin_is_the_smallest_of_the_grid_that_holds_on_every_set():
    # the student's most probable class is the ensemble's except where its two classes are 0.06 apart
    student = np.array([[0.53, 0.47]] * 10 + [[0.9, 0.1]] * 990)
    ensemble = np.array([[0.4, 0.6]] * 10 + [[0.95, 0.05]] * 990)
    assert choose_margin({"a": (student, ensemble)}, target=0.99) == 0.0  # the student alone agrees on 99.0%
    assert choose_margin({"a": (student, ensemble)}, target=0.999) == pytest.approx(0.07)
    # a second set that needs more: the margin holds on both
    other = (np.array([[0.65, 0.35]] * 10 + [[0.1, 0.9]] * 90), np.array([[0.45, 0.55]] * 10 + [[0.1, 0.9]] * 90))
    assert choose_margin({"a": (student, ensemble), "b": other}, target=0.999) == pytest.approx(0.31)
    never = (np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    assert choose_margin({"a": never}, target=0.999) == 1.0  # no smaller margin holds: every window to the ensemble
    assert unsure(never[0], 1.0).all() and not unsure(never[0], 0.99).any()


def test_a_cascade_refuses_members_it_was_not_measured_with(tmp_path):
    copy_both(tmp_path)
    written = json.loads(SHIPPED["cascade"].read_text())
    path = tmp_path / "raphe-cascade.json"
    path.write_text(json.dumps(written))
    assert Cascade(path).margin == written["margin"]
    path.write_text(json.dumps({**written, "ensemble": {**written["ensemble"], "sha256": "0" * 64}}))
    with pytest.raises(RapheError, match="its ensemble raphe-default-dynamic.tflite is not the one it was measured with"):
        Cascade(path)
    path.write_text(json.dumps({**written, "margin": 1.5}))
    with pytest.raises(RapheError, match=r"margin must be in \[0, 1\]"):
        Cascade(path)
    path.write_text(json.dumps({**written, "format": "other"}))
    with pytest.raises(RapheError, match="not a raphe cascade"):
        Cascade(path)
    with pytest.raises(RapheError, match="not a raphe model"):
        load(path)  # a .json of another format is a model's, and this one is none
    path.write_text("{not json")
    with pytest.raises(RapheError, match="not readable JSON"):
        load(path)
    with pytest.raises(RapheError, match="a cascade, not a model"):
        Model("cascade")  # what takes only models (evaluate, calibrate, matrix) says what it was given


def test_raphe_cascade_chooses_measures_and_writes_a_cascade_that_loads(tmp_path):
    copy_both(tmp_path)
    for seed, folder in ((21, "choose"), (22, "check")):
        synthesize(tmp_path / folder, cells=6, days=1, seed=seed, duration_s=6.0, write_abf=False)
    out = tmp_path / "lab-cascade.json"
    result = run_raphe("cascade", tmp_path / "raphe-student-dynamic.tflite", tmp_path / "raphe-default-dynamic.tflite",
                       "--choose", f"held={tmp_path / 'choose'}", "--check", f"test={tmp_path / 'check'}",
                       "--out", out, timeout=300)
    assert result.returncode == 0, result.stderr
    written = json.loads(out.read_text())
    assert written["margin"] >= 0 and written["chosen_on"]["held"]["agreement"] >= written["target"]
    checked = written["checked_on"]["test"]
    assert checked["cells"] == 6 and 0 <= checked["escalated"] <= 1 and checked["other_class"] == 0
    assert ("\nstands in for the ensemble" in result.stderr) == written["stands_in"] and f"wrote {out}" in result.stderr
    cascade = load(out)
    assert isinstance(cascade, Cascade) and cascade.margin == written["margin"]
    windows = np.load(tmp_path / "check" / "windows.npz")["X"][:50]
    assert cascade.predict(windows).shape == (50, 2)
    overwrite = run_raphe("cascade", tmp_path / "raphe-student-dynamic.tflite", tmp_path / "raphe-default-dynamic.tflite",
                          "--choose", f"held={tmp_path / 'choose'}", "--check", f"test={tmp_path / 'check'}",
                          "--out", tmp_path / "raphe-default-dynamic.json", timeout=300)
    assert_one_line_error(overwrite, "this would overwrite something else")
    assert Model(tmp_path / "raphe-default-dynamic.tflite").metadata["format"] == "raphe-model"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    refused = run_raphe("cascade", tmp_path / "raphe-student-dynamic.tflite", tmp_path / "raphe-default-dynamic.tflite",
                        "--choose", f"held={tmp_path / 'choose'}", "--check", f"test={tmp_path / 'check'}",
                        "--out", elsewhere / "c.json", timeout=300)
    assert_one_line_error(refused, "a cascade's file must sit beside its two models")


def test_files_classified_in_worker_processes_meet_the_cascade_as_in_one(tmp_path):
    """`--model cascade` on files spread over worker processes: each worker loads the cascade from its
    file's path, and every cell ends as in one process."""
    import raphe

    synthesize(tmp_path / "synth", cells=2, days=1, seed=31, duration_s=8.0)
    files = sorted((tmp_path / "synth" / "abf").glob("*.abf"))
    alone = raphe.classify(files, model="cascade")
    spread = raphe.classify(files, model="cascade", jobs=2)
    assert {r.model for r in alone} == {r.model for r in spread} == {"raphe-cascade.json"}
    assert [r.as_dict() for r in alone] == [r.as_dict() for r in spread] and sum(r.n_spikes for r in alone) > 0
