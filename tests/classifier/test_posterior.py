"""The running cell posterior: arithmetic, decisions, and a fit that really calibrates."""

from __future__ import annotations

import numpy as np
import pytest

from raphe.classifier.evaluation import calibration
from raphe.classifier.runtime import posterior
from raphe.classifier.runtime.posterior import UNDECIDED, PosteriorConfig
from raphe.classifier.runtime.running_posterior import CellPosterior


def test_naive_product_by_hand():
    cell = CellPosterior(("SER", "NSER"), PosteriorConfig(alpha=1.0, beta=0.0))
    for n in range(1, 4):
        post = cell.update(np.array([0.9, 0.1]))
        assert post[0] == pytest.approx(0.9**n / (0.9**n + 0.1**n))
    np.testing.assert_allclose(cell.mean_spike_probability, [0.9, 0.1])


def test_tempering_by_hand():
    cell = CellPosterior(("A", "B", "C"), PosteriorConfig(alpha=0.5, beta=0.25))
    spikes = [np.array([0.6, 0.3, 0.1]), np.array([0.2, 0.5, 0.3]), np.array([0.7, 0.2, 0.1])]
    for s in spikes:
        post = cell.update(s)
    z = 0.5 * np.log(np.stack(spikes)).sum(axis=0) / (1 + 0.25 * 2)
    np.testing.assert_allclose(post, np.exp(z) / np.exp(z).sum())
    assert post.sum() == pytest.approx(1.0)


def test_margin_by_hand():
    """Evidence within the margin leaves the posterior even; beyond it, only the excess counts."""
    cell = CellPosterior(("SER", "NSER"), PosteriorConfig(margin=3.0))
    even = cell.update(np.array([0.9, 0.1]))  # one spike: log-odds 2.197
    np.testing.assert_allclose(even, [0.5, 0.5])
    past = cell.update(np.array([0.9, 0.1]))  # log-odds 4.394, 1.394 past the margin
    np.testing.assert_allclose(past[0] / past[1], np.exp(2 * np.log(9.0) - 3.0))


def test_the_waveform_cap_makes_a_long_run_of_one_shape_one_shape():
    """However many spikes of one shape, the waveform evidence gives no class more than the cap."""
    capped = CellPosterior(("SER", "NSER"), PosteriorConfig(waveform_cap=3.0))
    free = CellPosterior(("SER", "NSER"), PosteriorConfig())
    for _ in range(200):
        p_capped, p_free = capped.update(np.array([0.8, 0.2])), free.update(np.array([0.8, 0.2]))
    assert p_capped[0] / p_capped[1] == pytest.approx(np.exp(3.0))
    assert p_free[0] > 0.999999
    assert capped.decision == UNDECIDED and free.decision == "SER"


def test_shape_and_firing_that_disagree_do_not_outvote_each_other_into_a_decision():
    """Waveform sure of SER, firing sure of NSER beyond the conflict level: the joint leans to
    whichever is larger, but the cell stays undecided and says why; below the level it decides."""
    from raphe.classifier.runtime.firing import FiringModel
    from raphe.classifier.runtime.model import DEFAULT_DIR

    firing = FiringModel(DEFAULT_DIR / "raphe-firing.json")
    config = PosteriorConfig(evidence="both", firing=firing, conflict=2.0)
    torn = CellPosterior(("SER", "NSER"), config)
    for _ in range(10):
        torn.update(np.array([0.6, 0.4]), np.log([1e-5, 1 - 1e-5]))  # shape: SER by 4.1; firing: NSER by 11.5
    assert torn.disagree and torn.decision == UNDECIDED
    assert torn.posterior[1] > 0.99  # the joint alone would have decided NSER: the firing outvoted the shape
    agreeing = CellPosterior(("SER", "NSER"), config)
    for _ in range(10):
        agreeing.update(np.array([0.6, 0.4]), np.log([1 - 1e-5, 1e-5]))
    assert not agreeing.disagree and agreeing.decision == "SER"
    unruled = CellPosterior(("SER", "NSER"), PosteriorConfig(evidence="both", firing=firing))
    for _ in range(10):
        unruled.update(np.array([0.6, 0.4]), np.log([1e-5, 1 - 1e-5]))
    assert unruled.decision == "NSER"  # the old rule: the firing decides


def test_decision_waits_for_min_spikes_and_threshold():
    cell = CellPosterior(("SER", "NSER"), PosteriorConfig(alpha=1.0, beta=0.0, threshold=0.99, min_spikes=5))
    for n in range(1, 5):
        cell.update(np.array([0.995, 0.005]))
        assert cell.decision == UNDECIDED and cell.spikes_to_decision is None
    cell.update(np.array([0.995, 0.005]))
    assert cell.decision == "SER" and cell.spikes_to_decision == 5
    cell.update(np.array([0.995, 0.005]))
    assert cell.spikes_to_decision == 5  # the count at which the decision was reached stays


def test_decision_can_be_withdrawn_and_changed():
    cell = CellPosterior(("SER", "NSER"), PosteriorConfig(alpha=1.0, beta=0.0, threshold=0.99, min_spikes=1))
    cell.update(np.array([0.999, 0.001]))
    assert cell.decision == "SER"
    for _ in range(2):
        cell.update(np.array([0.01, 0.99]))
    assert cell.decision == UNDECIDED and cell.spikes_to_decision is None  # NSER at 0.907
    for _ in range(3):
        cell.update(np.array([0.01, 0.99]))
    assert cell.decision == "NSER" and cell.spikes_to_decision == 4  # 0.999 at the 4th spike


def test_reset_starts_afresh():
    cell = CellPosterior(("SER", "NSER"), PosteriorConfig(min_spikes=1))
    for _ in range(10):
        cell.update(np.array([0.999, 0.001]))
    cell.reset()
    assert cell.n_spikes == 0 and cell.decision == UNDECIDED
    np.testing.assert_allclose(cell.posterior, [0.5, 0.5])


def correlated_cells(n_cells: int, rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
    """Cells whose spikes share a cell-level bias: some whole cells look like the other class."""
    cells = []
    for _ in range(n_cells):
        label = int(rng.integers(2))
        centre = rng.normal(2.0 if label == 0 else -2.0, 2.0)
        logits = rng.normal(centre, 1.5, int(rng.integers(5, 150)))
        p0 = 1 / (1 + np.exp(-logits))
        cells.append((label, np.stack([p0, 1 - p0], axis=1)))
    return cells


def ece_of(sequences, alpha, beta, margin=0.0, cap=float("inf")):
    sums, counts, labels, weights = calibration.prefixes(sequences)
    p = posterior.with_margin(posterior.capped(posterior.tempered_evidence(sums, counts, alpha, beta), cap), margin)
    correct = (p.argmax(axis=1) == labels).astype(float)
    return calibration.expected_calibration_error(p.max(axis=1), correct, weights)


def test_fit_calibrates_where_the_naive_product_does_not():
    rng = np.random.default_rng(4)
    fit = calibration.fit_posterior(correlated_cells(300, rng))
    fresh = correlated_cells(300, rng)
    fitted, naive = ece_of(fresh, fit.alpha, fit.beta, fit.margin, fit.waveform_cap), ece_of(fresh, 1.0, 0.0)
    assert fit.alpha < 1.0 or fit.beta > 0.0
    assert fitted < 0.05 < naive
    assert fitted < naive / 2


def shifted_cells(n_cells: int, rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
    """Cells of a shifted source: 15% of them look, spike after spike, like the other class (the
    model is systematically wrong about them), though less sharply than the right ones."""
    cells = []
    for _ in range(n_cells):
        label = int(rng.integers(2))
        sign = 1.0 if label == 0 else -1.0
        centre = -sign * rng.uniform(1.0, 2.5) if rng.random() < 0.15 else sign * rng.uniform(2.0, 6.0)
        p0 = 1 / (1 + np.exp(-rng.normal(centre, 1.5, int(rng.integers(20, 200)))))
        cells.append((label, np.stack([p0, 1 - p0], axis=1)))
    return cells


def decisions(sequences, alpha, beta, margin=0.0, cap=float("inf"), threshold=0.99,
              min_spikes=5) -> tuple[float, float]:
    """(share decided, share decided wrongly) of the cells, at the end of each."""
    decided = wrong = 0
    for label, probs in sequences:
        z = posterior.tempered_evidence(posterior.log_evidence(probs).sum(axis=0), len(probs), alpha, beta)
        final = posterior.with_margin(posterior.capped(z, cap), margin)
        if len(probs) >= min_spikes and final.max() >= threshold:
            decided += 1
            wrong += int(final.argmax()) != label
    return decided / len(sequences), wrong / len(sequences)


def test_the_fit_on_a_shifted_source_rarely_decides_wrongly_there():
    rng = np.random.default_rng(7)
    fit = calibration.fit_posterior(shifted_cells(400, rng))
    decided, wrong = decisions(shifted_cells(400, rng), fit.alpha, fit.beta, fit.margin, fit.waveform_cap)
    assert wrong <= 0.02 and decided > 0.3
    assert fit.margin > 0 or fit.waveform_cap < 6  # without a margin the fit decides none of these cells (it must stay timid throughout)
    naive_decided, naive_wrong = decisions(shifted_cells(400, rng), 1.0, 0.0)
    assert naive_wrong > 0.1  # the naive product decides the systematically wrong cells too


def test_ece_of_a_calibrated_forecaster_is_small():
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.5, 1.0, 20_000)
    correct = (rng.random(20_000) < confidence).astype(float)
    assert calibration.expected_calibration_error(confidence, correct) < 0.02
    assert calibration.expected_calibration_error(np.full(100, 0.99), np.zeros(100)) == pytest.approx(0.99)


def test_bad_configuration_is_refused():
    from raphe.core.errors import RapheError

    with pytest.raises(RapheError):
        PosteriorConfig(threshold=1.0)
    with pytest.raises(RapheError):
        PosteriorConfig(min_spikes=0)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-6)])
def test_the_running_update_agrees_with_the_vectorized_rule_the_fit_uses(dtype, rtol):
    """The live path's spike-by-spike update (one numba call) and calibration's array arithmetic are
    one rule: the same parts, mean, disagreement and decision after every spike, with a cap,
    margins, firing that speaks and then falls silent, a conflict level and per-class thresholds,
    for two classes and for three, on the float64 of the fit and on the interpreter's float32 (whose
    log the array rule takes in float32: hence the looser tolerance)."""
    from raphe.classifier.runtime.firing import FiringModel
    from raphe.classifier.runtime.model import DEFAULT_DIR

    firing = FiringModel(DEFAULT_DIR / "raphe-firing.json")
    rng = np.random.default_rng(12)
    for k in (2, 3):
        thresholds = (0.6, 0.7, 0.55)[:k]
        config = PosteriorConfig(alpha=0.7, beta=0.2, margin=0.5, waveform_cap=2.5, evidence="both", firing=firing,
                                 firing_weight=1.3, firing_margin=0.25, joint_margin=1.0, conflict=1.0, min_spikes=3,
                                 thresholds=thresholds)
        cell = CellPosterior(tuple("abc"[:k]), config)
        probs = rng.dirichlet(np.r_[3.0, np.full(k - 1, 0.5)], 60).astype(dtype)
        f = np.log(rng.dirichlet(np.ones(k), 60))
        evidence, weighted = np.zeros(k), np.zeros(k)
        decisions = set()
        for n in range(1, 61):
            speaks = 8 < n < 40  # the firing model's last word stands once it falls silent
            cell.update(probs[n - 1], f[n - 1] if speaks else None)
            evidence += posterior.log_evidence(probs[n - 1])
            z = posterior.capped(posterior.tempered_evidence(evidence, n, 0.7, 0.2), 2.5)
            if speaks:
                weighted = 1.3 * f[n - 1]
            joint = posterior.with_margin(z + weighted, 1.0)
            np.testing.assert_allclose(cell.parts["waveform"], posterior.with_margin(z, 0.5), rtol=rtol)
            np.testing.assert_allclose(cell.parts["firing"], posterior.with_margin(weighted, 0.25), rtol=rtol)
            np.testing.assert_allclose(cell.parts["joint"], joint, rtol=rtol)
            np.testing.assert_allclose(cell.mean_spike_probability, probs[:n].astype(np.float64).mean(axis=0),
                                       rtol=1e-12)
            disagree = bool(posterior.disagreement(z, weighted, 1.0))
            assert cell.disagree == disagree
            best = int(joint.argmax())
            decided = n >= 3 and joint[best] >= thresholds[best] and not disagree
            assert cell.decision == ("abc"[best] if decided else posterior.UNDECIDED)
            decisions.add(cell.decision)
        assert len(decisions) > 1  # the case moved between decisions, not one answer throughout
