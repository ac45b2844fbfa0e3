"""Decisions with a certificate: Clopper-Pearson bounds on sets with a known error rate, the risk
control's choice of thresholds, conflict cells, and the calibration fit across generators."""

from __future__ import annotations

import numpy as np

from raphe.classifier.evaluation import certificate as cert
from raphe.classifier.evaluation.calibration import Group, calibrate, deciding_peaks, fit_joint, fit_posterior
from raphe.classifier.evaluation.conflict import conflict_cells
from raphe.classifier.runtime import windows as ws
from raphe.classifier.runtime.model import DEFAULT_DIR, Model


def test_the_bound_on_a_known_error_rate_covers_it_and_is_not_vacuous():
    rng = np.random.default_rng(3)
    covered = 0
    for _ in range(200):
        wrong = int((rng.random(400) < 0.01).sum())
        bound = cert.upper_bound(wrong, 400)
        covered += bound >= 0.01
        assert bound < 0.05
    assert covered >= 0.93 * 200  # a 95% bound covers the true rate (about) 95% of the time, or more


def test_a_clean_record_certifies_two_percent_from_149_cells_and_not_before():
    assert cert.cells_needed(0) == 149  # (1 - 0.02) ** n <= 0.05 from n = 149
    assert not cert.bound(0, 148)["certified"] and cert.bound(0, 149)["certified"]
    text = cert.words(cert.bound(0, 61))
    assert "cannot certify ≤ 2.0% at 95% confidence" in text and "needs ≥ 149 decided cells without an error" in text
    assert cert.words(cert.bound(2, 412)).startswith("decided wrongly ≤ 1.5% at 95% confidence from 412 decided cells (2 wrong)")
    assert cert.cells_needed(3) > cert.cells_needed(0)


def test_certify_counts_a_class_shown_at_any_spike_even_if_withdrawn():
    shown = np.array([[True, False], [True, True], [False, True], [False, False]])
    truth = np.array([0, 0, 1, 1])  # the second cell was shown NSER at some spike: wrong, whatever it ended as
    c = cert.certify(shown, truth, ("SER", "NSER"))
    assert (c["decided"], c["wrong"]) == (3, 1)
    assert (c["per_class"]["NSER"]["decided"], c["per_class"]["NSER"]["wrong"]) == (2, 1)
    assert (c["per_class"]["SER"]["decided"], c["per_class"]["SER"]["wrong"]) == (2, 0)


def test_risk_control_raises_a_class_threshold_until_its_decisions_are_certified():
    """SER peaks between 0.99 and 0.999 are wrong one time in five; from 0.999 on never: SER's
    threshold goes to 0.999, NSER's (clean throughout) stays at 0.99."""
    rng = np.random.default_rng(0)
    n = 3000
    truth = rng.integers(0, 2, n)
    peaks = np.zeros((n, 2))
    sure = rng.random(n) < 0.6
    peaks[:, 0] = np.where(truth == 0, np.where(sure, 0.9995, 0.995), 0.0)
    fooled = (truth == 1) & (rng.random(n) < 0.15)
    peaks[fooled, 0] = 0.995
    peaks[:, 1] = np.where(truth == 1, 0.995, 0.2)
    chosen = cert.choose_thresholds(peaks, truth, ("SER", "NSER"))
    assert chosen["thresholds"] == {"SER": 0.999, "NSER": 0.99}
    assert chosen["per_class"]["SER"]["certified"] and chosen["per_class"]["SER"]["wrong"] == 0
    few = cert.choose_thresholds(peaks[:20], truth[:20], ("SER", "NSER"))
    assert few["thresholds"] == {"SER": 0.99, "NSER": 0.99}  # nothing certifiable: 0.99 kept, and said
    assert "risk control certified no threshold" in few["per_class"]["SER"]["text"]


def test_conflict_cells_keep_their_own_windows_and_label_and_take_the_other_class_firing():
    X = np.arange(6 * ws.N_POINTS, dtype=np.float32).reshape(6, ws.N_POINTS)
    data = ws.make(X, ["SER"] * 3 + ["NSER"] * 3, ["s"] * 3 + ["n"] * 3, ["d"] * 6,
                   time_s=[1.0, 3.0, 5.0, 0.5, 0.6, 0.7])
    conflict, rows = conflict_cells(data)
    ser = conflict.cell == "s timed as n"
    np.testing.assert_array_equal(conflict.X[ser], X[:3])
    assert (conflict.y[ser] == data.classes.index("SER")).all()
    np.testing.assert_allclose(np.diff(conflict.time_s[ser]), [0.1, 0.1])  # NSER's intervals, SER's start
    assert conflict.time_s[ser][0] == 1.0
    np.testing.assert_array_equal(data.X[rows], conflict.X)


def torn_cells(rng, n_cells: int, shape_right: bool, firing_right: bool, sure: float = 0.9):
    """Cells whose shape evidence leans one way (right or wrong, each spike at ``sure``) and whose
    firing points one way."""
    sequences, firing = [], []
    for i in range(n_cells):
        label = i % 2
        n = int(rng.integers(40, 120))
        lean = label if shape_right else 1 - label
        p = np.full((n, 2), 1.0 - sure)
        p[:, lean] = sure
        sequences.append((label, np.clip(p + rng.normal(0, 0.02, p.shape), 0.01, 0.99)))
        f = np.zeros((n, 2))
        f[5:, label if firing_right else 1 - label] = np.log(0.95)
        f[5:, 1 - label if firing_right else label] = np.log(0.05)
        firing.append(f)
    return sequences, firing


def test_a_fit_across_sources_saturates_shape_evidence_that_is_sure_and_wrong_on_one_of_them():
    """Known source: shape and firing right. Unseen source: the shape is as sure but wrong. Fitted
    on the known source alone the posterior decides the unseen source's cells wrongly; fitted across
    both it caps the shape evidence and lets the firing decide, and where the two disagree (the
    unseen source's cells) it decides nothing wrongly."""
    rng = np.random.default_rng(8)
    known = Group("known", *torn_cells(rng, 60, True, True))
    unseen = Group("unseen", *torn_cells(rng, 60, False, True))
    alone = fit_posterior([known])
    across = fit_joint([known, unseen], fit_posterior([known, unseen]))
    assert across.waveform_cap < alone.waveform_cap or across.alpha < alone.alpha
    peaks, truth = deciding_peaks([known, unseen], across)
    wrong = (peaks[np.arange(len(truth)), 1 - truth] >= 0.99).mean()
    assert wrong <= 0.01
    naive_peaks, _ = deciding_peaks([unseen], alone)
    assert (naive_peaks[np.arange(len(truth) // 2), 1 - truth[len(truth) // 2:]] >= 0.99).mean() > 0.5


def test_conflict_cells_teach_the_joint_posterior_to_abstain_where_shape_and_firing_disagree():
    """Ordinary cells: a shape that leans weakly, the wrong way for one cell in five, and the firing
    that settles them. Conflict cells (right shapes, the other class's firing): the firing would
    settle them wrongly. The fit keeps the firing and sets a conflict level, and no conflict cell is
    shown a wrong class."""
    rng = np.random.default_rng(9)
    right, wrong = torn_cells(rng, 64, True, True, sure=0.6), torn_cells(rng, 16, False, True, sure=0.6)
    ordinary = Group("ordinary", right[0] + wrong[0], right[1] + wrong[1])
    conflict = Group("conflict", *torn_cells(rng, 80, True, False, sure=0.6), conflict=True)
    fit = fit_joint([ordinary, conflict], fit_posterior([ordinary]))
    assert np.isfinite(fit.conflict) and fit.firing_weight > 0
    peaks, truth = deciding_peaks([conflict], fit)
    assert (peaks[np.arange(len(truth)), 1 - truth] >= 0.99).sum() == 0
    without_rule = fit_joint([ordinary], fit_posterior([ordinary]))
    assert not np.isfinite(without_rule.conflict)  # no conflict cells, no reason to abstain
    peaks, truth = deciding_peaks([Group("conflict", conflict.sequences, conflict.firing)], without_rule)
    assert (peaks[np.arange(len(truth)), 1 - truth] >= 0.99).mean() > 0.5  # without it, the firing decides them


def test_calibrating_across_models_and_generators_writes_one_certified_posterior_to_each(tmp_path):
    """A tiny cross-generator run with the real shipped models: both models, judged on template and
    on compartmental cells (a generator neither was trained on), get one posterior, a certificate,
    and a note-free load; judged afresh on compartmental cells, the shared posterior decides at most
    one cell wrongly."""
    from raphe.classifier.evaluation.outcomes import cell_outcomes
    from raphe.classifier.synthetic.dataset import synthesize

    for generator, seed, cells in (("template", 71, 16), ("compartmental", 72, 16), ("compartmental", 73, 20)):
        synthesize(tmp_path / f"{generator}-{seed}", cells=cells, days=2, seed=seed, duration_s=30.0,
                   write_abf=False, generator=generator)
    models = []
    for name in ("raphe-student-dynamic", "raphe-default-dynamic"):
        folder = tmp_path / name
        folder.mkdir()
        for suffix in (".tflite", ".json"):
            (folder / f"m{suffix}").write_bytes((DEFAULT_DIR / f"{name}{suffix}").read_bytes())
        models.append(folder / "m.tflite")
    sets = {"template": ws.load(tmp_path / "template-71"), "compartmental": ws.load(tmp_path / "compartmental-72")}
    fitted = calibrate(models[0], sets, DEFAULT_DIR / "raphe-firing.json", across=(models[1],))
    assert len(fitted) == 1 and "m.tflite" in fitted  # both files are m.tflite: one entry, written to each
    posteriors = [Model(m).metadata["posterior"] for m in models]
    assert posteriors[0]["alpha"] == posteriors[1]["alpha"]
    assert posteriors[0]["certificate"]["thresholds"] == posteriors[1]["certificate"]["thresholds"]
    assert "waveform_cap" in posteriors[0] and "conflict" in posteriors[0]["firing"]
    model = Model(models[0])
    assert model.posterior_note is None
    fresh = ws.load(tmp_path / "compartmental-73").in_classes(model.classes)
    outcomes = cell_outcomes(fresh, model.predict(fresh.X), model.novel(fresh.X), model.posterior_config())
    assert outcomes.ever_wrong.sum() <= 1
