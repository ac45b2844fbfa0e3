"""The firing model: its features against their definitions, the running train, the model file, a
real fit on synthetic trains, the synthetic firing's exceptions, and the joint posterior."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raphe.classifier.evaluation.calibration import Fit, Group, fit_joint
from raphe.classifier.runtime import firing as fm
from raphe.classifier.runtime import windows as ws
from raphe.classifier.runtime.model import DEFAULT_DIR
from raphe.classifier.runtime.posterior import PosteriorConfig, leanings
from raphe.classifier.runtime.running_posterior import CellPosterior
from raphe.classifier.synthetic import firing_variety as fv
from raphe.classifier.training.firing import cell_trains, train_firing_model
from raphe.core.errors import RapheError


def reference_features(isi: np.ndarray) -> np.ndarray:
    pairs = np.stack([isi[:-1], isi[1:]])
    return np.array([-np.log(isi.mean()), isi.std() / isi.mean(),
                     np.mean(2 * np.abs(pairs[1] - pairs[0]) / pairs.sum(axis=0)),
                     3 * np.mean(((pairs[0] - pairs[1]) / pairs.sum(axis=0)) ** 2),
                     *np.log(np.percentile(isi, [10, 50, 90])), np.mean(isi < 0.02),
                     np.mean(isi > 3 * np.median(isi)), np.log(len(isi))])


@pytest.mark.parametrize("n", [2, 9, 100, 256])
def test_features_are_their_definitions(n):
    isi = np.random.default_rng(n).gamma(2.0, 0.1, n) + 0.004
    np.testing.assert_allclose(fm.features(isi), reference_features(isi), rtol=1e-10, atol=1e-12)


def test_the_train_reads_the_last_256_intervals_and_leaves_long_gaps_out():
    """After every spike, the evidence of the running train (one numba call over its buffer, which
    shifts every 256 intervals, in the columns asked for) is the model's reading of the features
    of the last 256 usable intervals, and nothing before MIN_ISIS of them."""
    model = fm.FiringModel(DEFAULT_DIR / "raphe-firing.json")
    columns = model.in_classes(tuple(reversed(model.classes)))
    train = fm.Train()
    rng = np.random.default_rng(1)
    times = np.cumsum(rng.uniform(0.05, 0.5, 700))
    times[400:] += 30.0  # a sweep gap: one interval of 30 s that is not firing
    for k, t in enumerate(times):
        got = train.spike(float(t), model, columns)
        usable = fm.usable_intervals(times[:k + 1])
        if len(usable) < fm.MIN_ISIS:
            assert got is None
        else:
            want = model.log_probabilities(fm.features(usable[-fm.WINDOW_ISIS:]))[columns]
            np.testing.assert_allclose(got, want, rtol=1e-12)
    assert train.n_isi == len(times) - 2 == len(fm.usable_intervals(times))
    train.reset()
    assert train.n_isi == 0 and train.spike(times[-1] + 0.1, model, columns) is None


def test_an_interval_across_lost_samples_is_left_out():
    train = fm.Train()
    train.gap(2.05)  # samples lost just before 2.05 s
    for t in (1.0, 1.5, 2.0, 2.5, 3.0):
        train.add(t)
    assert train.n_isi == 3  # 1.0-1.5, 1.5-2.0, 2.5-3.0; not 2.0-2.5 across the gap
    train.gap(3.2)
    train.gap(3.1)
    train.add(3.4)
    assert train.n_isi == 3


def test_novel_spikes_stay_out_of_the_train_and_a_restart_starts_it_afresh():
    from raphe.classifier.runtime.cells import Cell

    config = PosteriorConfig(firing=SHIPPED_FIRING, evidence="both")
    cell = Cell("s", 0, "A", 1000.0, ("SER", "NSER"), config)
    window = np.zeros(ws.N_POINTS, np.float32)
    for k in range(20):
        cell.add_spike(500 * k, np.array([0.9, 0.1]), window, novel=k % 2 == 1)
    assert cell.train.n_isi == 9  # the 10 spikes the posterior took, 1 s apart
    assert not np.allclose(cell.posterior.parts["firing"], 0.5)
    cell.origin = 7
    cell.restart(1000.0)
    assert cell.train.n_isi == 0 and cell.train.recent_intervals().size == 0 and cell.origin == 0
    assert cell.state().spikes_to_decision is None and np.allclose(cell.posterior.parts["firing"], 0.5)


def test_a_damaged_firing_model_file_is_one_clear_error(tmp_path):
    path = tmp_path / "f.json"
    path.write_text("{not json")
    with pytest.raises(RapheError, match="not readable JSON"):
        fm.FiringModel(path)
    path.write_text(json.dumps({"format": fm.FIRING_FORMAT, "classes": ["SER", "NSER"], "features": ["rate"],
                                "mean": [0.0], "scale": [1.0], "weights": [[0.0], [1.0]], "bias": [0.0, 0.0]}))
    with pytest.raises(RapheError, match="features or parameter shapes"):
        fm.FiringModel(path)


def trains_set(rng, cells: int) -> ws.WindowSet:
    """A window set whose windows carry times: SER cells slow and regular, NSER fast and irregular."""
    X, labels, names, times = [], [], [], []
    for i in range(cells):
        label = ("SER", "NSER")[i % 2]
        rate, cv = (rng.uniform(0.5, 3.0), rng.uniform(0.1, 0.45)) if label == "SER" else \
            (rng.uniform(3.0, 20.0), rng.uniform(0.5, 1.3))
        shape = 1 / cv**2
        t = np.cumsum(np.maximum(rng.gamma(shape, 1 / (rate * shape), 80), 0.004))
        X.append(np.zeros((len(t), ws.N_POINTS)))
        labels += [label] * len(t)
        names += [f"c{i}"] * len(t)
        times.append(t)
    return ws.make(np.concatenate(X), labels, names, ["d"] * len(labels), classes=("SER", "NSER"),
                   time_s=np.concatenate(times))


def test_a_real_fit_tells_slow_regular_from_fast_irregular_trains(tmp_path):
    rng = np.random.default_rng(2)
    model = train_firing_model(trains_set(rng, 60), tmp_path / "f.json", "test trains")
    held_out = trains_set(np.random.default_rng(3), 40)
    right = 0
    for _, label, isi in cell_trains(held_out):
        right += int(model.log_probabilities(fm.features(isi[:32])).argmax() == label)
    assert right >= 36
    assert fm.FiringModel(tmp_path / "f.json").metadata["training"]["cells"] == 60
    with pytest.raises(RapheError, match="no spike times"):
        train_firing_model(ws.make(np.zeros((4, ws.N_POINTS)), ["SER", "NSER"] * 2, list("abcd"), ["d"] * 4),
                           tmp_path / "g.json", "no times")


def test_the_synthetic_exceptions_come_at_their_stated_rates():
    rng = np.random.default_rng(4)
    ser = [fv.draw("SER", rng) for _ in range(4000)]
    nser = [fv.draw("NSER", rng) for _ in range(4000)]
    share = lambda pats, kind: np.mean([p.kind == kind for p in pats])  # noqa: E731
    assert share(nser, "slow-regular") == pytest.approx(fv.SLOW_REGULAR_NSER, abs=0.02)
    assert share(ser, "bursting") == pytest.approx(fv.BURSTING_SER, abs=0.015)
    assert share(ser, "irregular") == pytest.approx(fv.IRREGULAR_SER, abs=0.01)
    assert np.mean([p.drift_depth > 0 for p in ser + nser]) == pytest.approx(fv.DRIFTING, abs=0.02)
    assert np.mean([p.missed > 0 for p in ser + nser]) == pytest.approx(fv.MISSING, abs=0.02)
    assert np.mean([p.extra_hz > 0 for p in ser + nser]) == pytest.approx(fv.EXTRA, abs=0.02)


def test_each_exception_changes_the_train_as_it_says():
    regular = np.arange(0.5, 119.0, 0.5)  # 2 Hz, perfectly regular
    slow = fv.apply(fv.Pattern("slow-regular", rate_hz=1.0, cv=0.3, seed=1), np.arange(0.01, 119.0, 0.1), 120.0)
    assert len(slow) / 120.0 == pytest.approx(1.0, rel=0.25)
    bursting = fv.apply(fv.Pattern("bursting", burst_share=0.3, seed=2), regular, 120.0)
    short = np.diff(bursting) < 0.016
    assert short.mean() == pytest.approx(0.3 * 1.3 / 1.39, abs=0.08)
    missed = fv.apply(fv.Pattern(fv.TYPICAL, missed=0.1, seed=3), regular, 120.0)
    assert len(missed) == pytest.approx(0.9 * len(regular), rel=0.05)
    extra = fv.apply(fv.Pattern(fv.TYPICAL, extra_hz=0.5, seed=4), regular, 120.0)
    assert len(extra) - len(regular) == pytest.approx(60, abs=25)
    drifting = fv.apply(fv.Pattern(fv.TYPICAL, drift_depth=0.4, drift_period_s=60.0, seed=5), regular, 120.0)
    assert np.diff(drifting).max() / np.diff(drifting).min() == pytest.approx(np.exp(0.8), rel=0.1)
    for train in (slow, bursting, missed, extra, drifting):
        assert (np.diff(train) >= fv.MIN_ISI_S).all() and train.min() >= 0 and train.max() < 120.0 - 0.01


SHIPPED_FIRING = fm.FiringModel(DEFAULT_DIR / "raphe-firing.json")


def test_the_joint_posterior_adds_weighted_firing_to_the_waveform():
    config = PosteriorConfig(alpha=0.5, beta=0.1, margin=1.0, evidence="both", firing=SHIPPED_FIRING, firing_weight=2.0,
                             firing_margin=0.5, joint_margin=1.5)
    cell = CellPosterior(("SER", "NSER"), config)
    cell.update(np.array([0.7, 0.3]))
    assert np.allclose(cell.parts["firing"], [0.5, 0.5])  # the firing model has not spoken
    f = np.log([0.2, 0.8])
    cell.update(np.array([0.6, 0.4]), f)
    z = 0.5 * np.log([0.42, 0.12]) / 1.1
    y = z + 2.0 * f
    gap = np.maximum(y.max() - y - 1.5, 0)
    assert np.allclose(cell.parts["joint"], np.exp(-gap) / np.exp(-gap).sum())
    assert cell.posterior is cell.parts["joint"] and cell.deciding == "joint"
    assert leanings(("SER", "NSER"), cell.parts) == "-/N"  # the waveform's lead is still within its margin
    cell.update(np.array([0.99, 0.01]), f)
    assert leanings(("SER", "NSER"), cell.parts) == "S/N"
    for evidence in ("waveform", "firing"):
        other = CellPosterior(("SER", "NSER"), PosteriorConfig(evidence=evidence, firing=SHIPPED_FIRING))
        other.update(np.array([0.9, 0.1]), np.log([0.1, 0.9]))
        assert other.posterior is other.parts[evidence]
    with pytest.raises(RapheError, match="needs a firing model"):
        PosteriorConfig(evidence="both")


def sequences_for(rng, cells: int, firing_right: bool):
    """Held-out cells: weak waveform evidence for the truth, firing evidence for the truth or against it."""
    waveform, firing = [], []
    for i in range(cells):
        label = i % 2
        n = 40
        p = np.full((n, 2), 0.45)
        p[:, label] = 0.55
        p += rng.normal(0, 0.02, p.shape)
        waveform.append((label, np.clip(p, 0.01, 0.99)))
        f = np.zeros((n, 2))
        f[fm.MIN_ISIS:, label if firing_right else 1 - label] = np.log(0.9)
        f[fm.MIN_ISIS:, 1 - label if firing_right else label] = np.log(0.1)
        firing.append(f)
    return waveform, firing


def test_the_joint_fit_weighs_firing_that_helps_and_drops_firing_that_misleads():
    rng = np.random.default_rng(5)
    helps = fit_joint([Group("helps", *sequences_for(rng, 40, True))], Fit(1.0, 0.0, 0.0))
    misleads = fit_joint([Group("misleads", *sequences_for(rng, 40, False))], Fit(1.0, 0.0, 0.0))
    assert helps.firing_weight > 0.3
    assert misleads.firing_weight == 0.0


def test_firing_commands_refuse_bad_input_in_one_line(tmp_path):
    from tests.helpers import assert_one_line_error, run_raphe

    data = tmp_path / "no-times.npz"
    ws.save_npz(ws.make(np.zeros((4, ws.N_POINTS)), ["SER", "NSER"] * 2, list("abcd"), ["d"] * 4), data)
    assert_one_line_error(run_raphe("firing-model", data, "--out", tmp_path / "f.json"), "no spike times")
    assert not (tmp_path / "f.json").exists()
    plain = tmp_path / "plain"
    plain.mkdir()
    for suffix in (".tflite", ".json"):
        meta = (DEFAULT_DIR / f"raphe-student-dynamic{suffix}").read_bytes()
        if suffix == ".json":  # the same model with its joint fit taken away
            loaded = json.loads(meta)
            loaded["posterior"].pop("firing")
            meta = json.dumps(loaded).encode()
        (plain / f"s{suffix}").write_bytes(meta)
    assert_one_line_error(run_raphe("classify", data, "--model", plain / "s.tflite", "--evidence", "firing"),
                          "needs a firing model")
    broken = tmp_path / "broken"
    broken.mkdir()
    for suffix in (".tflite", ".json"):
        (broken / f"s{suffix}").write_bytes((DEFAULT_DIR / f"raphe-student-dynamic{suffix}").read_bytes())
    (broken / "raphe-firing.json").write_text("{}")
    assert_one_line_error(run_raphe("classify", data, "--model", broken / "s.tflite"), "not a raphe firing model")


def test_a_joint_fit_on_one_generator_stays_calibrated_on_the_other(tmp_path):
    """The shipped student and firing model, the joint posterior fitted on template cells alone,
    then judged on biophysical cells (another principle, other days): few wrong decisions, and a
    confidence that tracks accuracy."""
    from raphe.classifier.evaluation.calibration import calibrate
    from raphe.classifier.evaluation.outcomes import cell_outcomes
    from raphe.classifier.runtime.model import Model
    from raphe.classifier.synthetic.dataset import synthesize

    for generator, seed in (("template", 61), ("biophysical", 62)):
        synthesize(tmp_path / generator, cells=24, days=2, seed=seed, duration_s=30.0, write_abf=False,
                   generator=generator)
    folder = tmp_path / "model"
    folder.mkdir()
    for suffix in (".tflite", ".json"):
        (folder / f"s{suffix}").write_bytes((DEFAULT_DIR / f"raphe-student-dynamic{suffix}").read_bytes())
    calibrate(folder / "s.tflite", {"template cells": ws.load(tmp_path / "template")}, DEFAULT_DIR / "raphe-firing.json")
    model = Model(folder / "s.tflite")
    shifted = ws.load(tmp_path / "biophysical").in_classes(model.classes)
    outcomes = cell_outcomes(shifted, model.predict(shifted.X), model.novel(shifted.X), model.posterior_config())
    assert outcomes.wrong.sum() <= 1
    confident = outcomes.prefix_confidence >= 0.9
    assert outcomes.prefix_correct[confident].mean() >= 0.85  # sure means mostly right, on the other generator
