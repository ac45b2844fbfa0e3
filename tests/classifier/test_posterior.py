"""The running cell posterior: arithmetic, decisions, and a fit that really calibrates."""

from __future__ import annotations

import numpy as np
import pytest

from raphe.classifier.evaluation import calibration
from raphe.classifier.runtime import posterior
from raphe.classifier.runtime.posterior import UNDECIDED, CellPosterior, PosteriorConfig


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


def ece_of(sequences, alpha, beta):
    sums, counts, labels, weights = calibration.prefixes(sequences)
    p = posterior.combine(sums, counts, alpha, beta)
    correct = (p.argmax(axis=1) == labels).astype(float)
    return calibration.expected_calibration_error(p.max(axis=1), correct, weights)


def test_fit_calibrates_where_the_naive_product_does_not():
    rng = np.random.default_rng(4)
    alpha, beta = calibration.fit_posterior(correlated_cells(300, rng))
    fresh = correlated_cells(300, rng)
    fitted, naive = ece_of(fresh, alpha, beta), ece_of(fresh, 1.0, 0.0)
    assert alpha < 1.0 or beta > 0.0
    assert fitted < 0.05 < naive
    assert fitted < naive / 2


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
