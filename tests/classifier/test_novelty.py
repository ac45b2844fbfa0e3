"""The novelty score: about 1% of held-out ordinary windows exceed its threshold; windows of kinds
absent from training (capacitive transients, current-clamp action potentials, positive transients
of the shared recordings) nearly all do."""

from __future__ import annotations

import numpy as np
import pytest

from raphe.classifier.runtime.novelty import Novelty, fit_novelty, normalise
from raphe.classifier.synthetic import template
from raphe.classifier.synthetic.dataset import spike_windows
from raphe.detector.config import DetectorConfig
from raphe.pipelines.offline import detect_recording
from raphe.replay.recording import Recording


def generated_windows(cells: int, days: int, seed: int) -> np.ndarray:
    """Spike windows of ``cells`` template cells (SER and NSER in turn) over ``days`` recording days."""
    rng = np.random.default_rng(seed)
    rigs = [template.draw_day(f"s{seed}-d{i}", rng) for i in range(days)]
    found = []
    for i in range(cells):
        cell = template.draw_cell(template.CLASSES[i % 2], rng)
        trace, times = template.synth_trace(cell, rigs[i % days], 12.0, 40_000.0, rng)
        found.append(spike_windows(trace, times, 40_000.0, DetectorConfig())[0][:80])
    return np.concatenate(found)


@pytest.fixture(scope="module")
def novelty() -> tuple[Novelty, np.ndarray]:
    model = fit_novelty(generated_windows(60, 8, 1), generated_windows(20, 4, 2), np.random.default_rng(0))
    return model, generated_windows(16, 4, 3)


def test_few_windows_of_other_cells_and_days_are_novel(novelty):
    model, other_cells = novelty
    assert model.is_novel(other_cells).mean() < 0.05


@pytest.mark.parametrize("file, settings, channels", [
    ("130618-1-12.abf", {"relative": True}, None),            # voltage-step capacitive transients
    ("2019_07_24_0055_fsi.abf", {"polarity": "pos", "threshold": 0.0, "relative": False}, None),  # current-clamp APs (mV)
    ("19114000.abf", {"polarity": "pos", "threshold": 0.0, "relative": False}, None),
    ("File_axon_1.abf", {"polarity": "pos", "threshold": 20.0}, None),  # positive pA transients
    ("f1.abf", {}, ["0"]),                                       # stimulus artefacts and EPSCs
])
def test_windows_of_kinds_absent_from_training_are_novel(novelty, abf_dir, file, settings, channels):
    model, _ = novelty
    recording = Recording(abf_dir / file)
    chosen = recording.select(channels) if channels else recording.channels[:1]
    events, _ = detect_recording(recording, chosen, DetectorConfig(**settings))
    assert len(events) > 0
    assert model.is_novel(events.windows).mean() > 0.9


def test_the_summary_survives_its_json(novelty):
    model, other_cells = novelty
    again = Novelty.from_json(model.to_json())
    np.testing.assert_allclose(again.score(other_cells), model.score(other_cells))
    assert again.threshold == model.threshold


def test_normalisation_removes_amplitude_and_offset():
    rng = np.random.default_rng(0)
    w = rng.normal(0.0, 30.0, size=(3, 160))  # pA: the epsilon of the normalisation is negligible
    np.testing.assert_allclose(normalise(w * 7.0 - 40.0), normalise(w), atol=1e-5)
