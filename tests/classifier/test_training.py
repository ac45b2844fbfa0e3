"""A tiny real training run, export to .tflite, LiteRT against Keras, N classes, the shipped model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from raphe.classifier.runtime import windows
from raphe.classifier.synthetic import template as synthetic
from raphe.classifier.evaluation.evaluate import evaluate
from raphe.classifier.evaluation.metrics import auc, sensitivity_at_specificity, wilson
from raphe.classifier.runtime.model import DEFAULT_MODEL, Model
from raphe.classifier.synthetic.dataset import synthesize
from raphe.detector.config import DetectorConfig
from raphe.detector.online import Detector

from tests.helpers import assert_one_line_error, run_raphe

TINY = dict(kernels=(20, 24), epochs=1, max_per_cell=60)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "synth"
    synthesize(out, cells=12, days=2, seed=5, duration_s=8.0, write_abf=False)
    return windows.load(out)


@pytest.fixture(scope="module")
def tiny_model(tiny_data, tmp_path_factory):
    from raphe.classifier.training.train import TrainConfig, train

    out = tmp_path_factory.mktemp("model")
    return train(tiny_data, out, TrainConfig(**TINY), name="tiny", data_description="tiny test set")


def test_tiny_training_exports_three_variants_that_litert_loads(tiny_model, tiny_data):
    assert set(tiny_model.models) == {"float32", "dynamic", "int8"}
    for variant, path in tiny_model.models.items():
        model = Model(path)
        assert model.classes == ("SER", "NSER") and model.variant == variant
        meta = model.metadata
        assert meta["window"] == {"pre_ms": 1.0, "post_ms": 3.0, "n_points": 160, "sample_rate_hz": 40000.0}
        assert meta["ensemble"]["kernels"] == [20, 24] and meta["training"]["data"] == "tiny test set"
        assert meta["training"]["split"]["unit"] == "cell"
        assert set(meta["metrics"]) >= {"calibration_spike_accuracy", "agreement_with_keras"}


def test_litert_agrees_with_keras(tiny_model, tiny_data):
    keras_probs = tiny_model.ensemble.predict(tiny_data.X[:300], verbose=0)
    float_probs = Model(tiny_model.models["float32"]).predict(tiny_data.X[:300])
    np.testing.assert_allclose(float_probs, keras_probs, atol=1e-4)
    for variant in ("dynamic", "int8"):
        probs = Model(tiny_model.models[variant]).predict(tiny_data.X[:300])
        assert np.abs(probs - keras_probs).max() < 0.1
        assert (probs.argmax(1) == keras_probs.argmax(1)).mean() > 0.9
    assert np.isfinite(keras_probs).all() and keras_probs.std() > 0  # not a constant output


def test_batched_and_single_window_inference_agree(tiny_model, tiny_data):
    model = Model(tiny_model.models["float32"])
    batched = model.predict(tiny_data.X[:130])  # two full batches of 64 and a padded one
    single = np.stack([model.predict_one(w) for w in tiny_data.X[:130]])
    np.testing.assert_allclose(batched, single, atol=1e-6)
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, atol=1e-5)


def test_splits_never_share_a_cell_or_a_day(tiny_data):
    from raphe.classifier.training.train import split

    part, unit = split(tiny_data, 0.15, np.random.default_rng(0))
    assert unit == "cell"
    for cell in np.unique(tiny_data.cell):
        assert len(np.unique(part[tiny_data.cell == cell])) == 1
    for p in (0, 1, 2):
        assert set(tiny_data.y[part == p]) == {0, 1}
    # six days, each with one cell of each class: enough days to split by day
    day_of_cell = {}
    for k in range(len(tiny_data.classes)):
        for i, cell in enumerate(np.unique(tiny_data.cell[tiny_data.y == k])):
            day_of_cell[cell] = f"d{i % 6}"
    many_days = windows.make(tiny_data.X, np.asarray(tiny_data.classes)[tiny_data.y], tiny_data.cell,
                             [day_of_cell[c] for c in tiny_data.cell], classes=tiny_data.classes)
    assert len(np.unique(many_days.day)) == 6
    part, unit = split(many_days, 0.15, np.random.default_rng(1))
    assert unit == "day"
    for day in np.unique(many_days.day):
        assert len(np.unique(part[many_days.day == day])) == 1
    for p in (0, 1, 2):
        assert set(many_days.y[part == p]) == {0, 1}


def test_three_classes_from_csv_folders(tiny_data, tmp_path):
    """Classes are data: a third class folder gives a three-class model."""
    from raphe.classifier.training.train import TrainConfig, train

    rng = np.random.default_rng(2)
    artefacts, cells = [], []
    for c in range(4):
        for _ in range(40):
            trace = rng.normal(0, 3, 8000)
            start = 2000
            t_ms = np.arange(80) / 40.0
            trace[start:start + 80] += -rng.uniform(150, 300) * (np.exp(-t_ms / 0.08) - 0.4 * np.exp(-t_ms / 0.3))
            events = Detector(1, 40_000.0, DetectorConfig()).process(trace[np.newaxis].astype(np.float32), 0)
            artefacts.append(events.windows[0])
            cells.append(f"ART{c}")
    art = windows.make(np.stack(artefacts), ["ARTEFACT"] * len(cells), cells, ["day9"] * len(cells))
    keep = np.zeros(len(tiny_data), bool)
    for cell in np.unique(tiny_data.cell):
        keep[np.flatnonzero(tiny_data.cell == cell)[:30]] = True
    combined = windows.concatenate([tiny_data.subset(keep), art])
    windows.export_csv_folder(combined, tmp_path / "csv")
    loaded = windows.load(tmp_path / "csv")
    assert loaded.classes == ("ARTEFACT", "NSER", "SER")
    result = train(loaded, tmp_path / "model", TrainConfig(kernels=(20,), epochs=3, max_per_cell=60), name="three")
    model = Model(result.models["dynamic"])
    assert model.classes == ("ARTEFACT", "NSER", "SER")
    probs = model.predict(loaded.X)
    assert probs.shape == (len(loaded), 3)
    summary = evaluate(result.models["float32"], loaded)
    report = summary["models"]["three-float32.tflite"]
    assert set(report["spike"]["classes"]) == {"ARTEFACT", "NSER", "SER"}
    assert np.array(report["spike"]["confusion_true_by_predicted"]).shape == (3, 3)


def test_evaluate_cli_writes_report_and_figures(tiny_model, tiny_data, tmp_path):
    windows.save_npz(tiny_data, tmp_path / "w.npz")
    out = tmp_path / "report"
    result = run_raphe("evaluate", tiny_model.models["float32"].parent, tmp_path / "w.npz", "--out-dir", out)
    assert result.returncode == 0, result.stderr
    assert "| spike |" in result.stdout and "Wilson" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["models"]) == {"tiny-float32.tflite", "tiny-dynamic.tflite", "tiny-int8.tflite"}
    assert metrics["models"]["tiny-float32.tflite"]["agreement_with_float32"] == 1.0
    for variant in ("float32", "dynamic", "int8"):
        for kind in ("confusion", "roc"):
            assert (out / f"tiny-{variant}-{kind}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_cli_records_its_recipe(tiny_data, tmp_path):
    windows.save_npz(tiny_data, tmp_path / "w.npz")
    result = run_raphe("train", tmp_path / "w.npz", "--out-dir", tmp_path / "m", "--name", "cli", "--kernels", "20",
                       "--epochs", "1", timeout=600)
    assert result.returncode == 0, result.stderr
    meta = json.loads((tmp_path / "m" / "cli-dynamic.json").read_text())
    assert meta["training"]["recipe"].startswith("raphe train ") and "--kernels 20" in meta["training"]["recipe"]


@pytest.mark.parametrize("case, fragment", [
    ("missing_json", "not a raphe model"),
    ("not_json", "not readable JSON"),
    ("other_format", "format is not"),
    ("altered", "checksum does not match"),
])
def test_bad_models_give_one_line_and_exit_2(tiny_model, tiny_data, tmp_path, case, fragment):
    windows.save_npz(tiny_data, tmp_path / "w.npz")
    src = tiny_model.models["float32"]
    model = tmp_path / "m.tflite"
    shutil.copy(src, model)
    shutil.copy(src.with_suffix(".json"), model.with_suffix(".json"))
    meta = model.with_suffix(".json")
    if case == "missing_json":
        meta.unlink()
    elif case == "not_json":
        meta.write_text("{not json")
    elif case == "other_format":
        meta.write_text(json.dumps({"format": "something-else"}))
    else:
        data = bytearray(model.read_bytes())
        data[len(data) // 2] ^= 0xFF
        model.write_bytes(bytes(data))
    assert_one_line_error(run_raphe("evaluate", model, tmp_path / "w.npz"), fragment)


def test_training_refuses_one_class(tmp_path):
    data = windows.make(np.random.default_rng(0).normal(size=(20, 160)), ["SER"] * 20,
                        [f"c{i % 4}" for i in range(20)], ["d"] * 20)
    windows.save_npz(data, tmp_path / "one.npz")
    assert_one_line_error(run_raphe("train", tmp_path / "one.npz", "--out-dir", tmp_path / "m"), "at least 2 classes")


def test_runtime_never_imports_tensorflow():
    code = ("import sys, numpy as np\nfrom raphe.classifier.runtime.model import Model\n"
            "m = Model()\nm.predict(np.zeros((70, 160), np.float32))\n"
            "assert not [k for k in sys.modules if k.startswith(('tensorflow', 'keras'))]\nprint('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr


def test_default_model_classifies_generated_cells():
    """Cells of a seed and days the default model never saw, typical and atypical, by the seed's rule."""
    model = Model(DEFAULT_MODEL)
    assert model.classes == ("SER", "NSER")
    assert "synthetic" in model.metadata["training"]["data"].lower() or "s1-" in json.dumps(model.metadata)
    rng = np.random.default_rng(2026)
    wanted = {(synthetic.SER, False): 3, (synthetic.SER, True): 2, (synthetic.NSER, False): 3}
    while any(wanted.values()):
        label = synthetic.SER if wanted[(synthetic.SER, False)] + wanted[(synthetic.SER, True)] else synthetic.NSER
        cell = synthetic.draw_cell(label, rng)
        if not wanted.get((label, cell.atypical)):
            continue
        day = synthetic.draw_day("unseen", rng)
        trace, _ = synthetic.synth_trace(cell, day, 30.0, 40_000.0, rng)
        found = Detector(1, 40_000.0, DetectorConfig()).process(trace[np.newaxis], 0).windows
        if len(found) < 10:
            continue
        mean = model.predict(found).mean(axis=0)
        assert model.classes[int(mean.argmax())] == label, (cell, mean)
        wanted[(label, cell.atypical)] -= 1


def test_metric_helpers_against_direct_computation():
    rng = np.random.default_rng(0)
    scores, positive = rng.random(200), rng.random(200) < 0.4
    scores[positive] += 0.3
    pairs = (scores[positive][:, None] > scores[~positive][None, :]).mean()
    assert auc(scores, positive) == pytest.approx(pairs, abs=1e-9)
    assert auc(np.r_[1.0, 0.0], np.r_[True, False]) == 1.0
    low, high = wilson(9, 10)
    assert low == pytest.approx(0.5958, abs=1e-3) and high == pytest.approx(0.9821, abs=1e-3)
    threshold = np.sort(scores[~positive])[len(scores[~positive]) // 2]
    assert sensitivity_at_specificity(scores, positive) >= (scores[positive] > threshold).mean() - 1e-9


def test_calibrate_refits_the_posterior_and_keeps_the_checksum(tiny_model, tiny_data, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    for path in tiny_model.models.values():
        shutil.copy(path, folder / path.name)
        shutil.copy(path.with_suffix(".json"), folder / path.with_suffix(".json").name)
    windows.save_npz(tiny_data, tmp_path / "cells.npz")
    result = run_raphe("calibrate", folder, tmp_path / "cells.npz")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("cell posterior alpha") == 3
    for path in folder.glob("*.tflite"):
        model = Model(path)  # still loads: the checksum covers the .tflite, which is unchanged
        fitted = model.metadata["posterior"]
        assert fitted["fitted_on_cells"] == len(set(tiny_data.cell.tolist()))
        assert fitted["fitted_on"].endswith("cells.npz")
        assert model.posterior_config().alpha == fitted["alpha"]


def test_a_student_is_distilled_from_the_ensemble_and_says_how_well_it_agrees(tiny_model, tiny_data, tmp_path):
    from raphe.classifier.training.distill import distill
    from raphe.classifier.training.train import TrainConfig

    teacher = Model(tiny_model.models["float32"])
    checked = tiny_data.subset(np.arange(len(tiny_data)) % 3 == 0)
    paths = distill(teacher.path, tiny_data, tmp_path, TrainConfig(kernels=(20,), epochs=3, max_per_cell=60),
                    name="pupil", transfer=tiny_data.subset(np.arange(len(tiny_data)) < 50),
                    checks={"some windows": checked})
    student = Model(paths["dynamic"])
    meta = student.metadata
    distilled = meta["ensemble"]["distilled_from"]
    assert meta["ensemble"]["kernels"] == [20] and distilled["sha256"] == teacher.checksum
    agreement = distilled["agreement_held_out"]
    assert 0.5 < agreement <= 1.0 and meta["metrics"]["agreement_with_teacher"] == agreement
    # the teacher's answers on the kept training windows, the 50 unlabelled ones, and a jittered copy of each
    assert meta["training"]["unlabelled"] == 50 and meta["training"]["learned_from"] % 2 == 0
    on = distilled["agreement_on"]["some windows"]
    float_student = Model(paths["float32"])
    measured = (float_student.predict(checked.X).argmax(1) == teacher.predict(checked.X).argmax(1)).mean()
    assert on["windows"] == len(checked) and on["agreement"] == pytest.approx(measured, abs=0.01)
    assert distilled["stands_in"] == (on["agreement"] >= 0.995)
    assert meta["novelty"] == teacher.metadata["novelty"]  # the same inputs, the same novelty summary
    measured = (student.predict(tiny_data.X).argmax(1) == teacher.predict(tiny_data.X).argmax(1)).mean()
    assert measured > 0.6
    assert student.path.stat().st_size < teacher.path.stat().st_size


def test_the_shipped_members_rebuilt_in_keras_give_the_shipped_probabilities(tiny_data):
    from raphe.classifier.training.network import fused_ensemble
    from raphe.classifier.training.warm_start import rebuilt_members

    members, classes, path = rebuilt_members("default")
    assert classes == Model().classes and sorted(members) == list(range(20, 31))
    temperature = Model(path).metadata["ensemble"]["temperature"]
    rebuilt = fused_ensemble(list(members.values()), temperature).predict(tiny_data.X[:500], verbose=0)
    np.testing.assert_allclose(rebuilt, Model(path).predict(tiny_data.X[:500]), atol=1e-4)


def test_fine_tuning_starts_from_the_shipped_model_and_a_bad_start_is_one_line(tiny_data, tmp_path):
    """One epoch at the fine-tuning rate leaves a member's weights near the shipped member's (it
    starts there); the same epoch from random weights ends nowhere near them."""
    from raphe.classifier.training.train import TrainConfig, train
    from raphe.classifier.training.warm_start import rebuilt_members

    shipped = rebuilt_members("default")[0][20].get_weights()

    def distance(result) -> float:
        weights = result.ensemble.get_layer("k20").get_weights()
        return max(float(np.linalg.norm(w - s) / np.linalg.norm(s)) for w, s in zip(weights, shipped) if w.ndim == 3)

    tuned = train(tiny_data, tmp_path / "tuned", TrainConfig(kernels=(20,), epochs=1, max_per_cell=60,
                                                             start_from="default"), name="tuned")
    scratch = train(tiny_data, tmp_path / "scratch", TrainConfig(kernels=(20,), epochs=1, max_per_cell=60),
                    name="scratch")
    assert distance(tuned) < 0.1 < 0.9 < distance(scratch), (distance(tuned), distance(scratch))
    # and it still classifies as the shipped model does on cells like those it was trained on
    agree = (Model(tuned.models["float32"]).predict(tiny_data.X).argmax(1) == Model().predict(tiny_data.X).argmax(1))
    assert agree.mean() > 0.9
    assert Model(tuned.models["dynamic"]).metadata["training"]["config"]["start_from"] == "default"
    windows.save_npz(tiny_data, tmp_path / "w.npz")
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    for suffix in (".tflite", ".json"):
        shutil.copy(DEFAULT_MODEL.with_suffix(suffix), lonely / DEFAULT_MODEL.with_suffix(suffix).name)
    for extra, fragment in ((["--start-from", lonely / DEFAULT_MODEL.name], "no float32 variant"),
                            (["--start-from", "default", "--kernels", "40"], "--kernels [40] are not among them")):
        result = run_raphe("train", tmp_path / "w.npz", "--out-dir", tmp_path / "bad", "--epochs", "1", *extra, timeout=600)
        assert_one_line_error(result, fragment)
