"""`raphe compare`: a real training run of every family on a small set, and the report's shape."""

from __future__ import annotations

import json

from raphe.classifier.synthetic.dataset import synthesize
from tests.helpers import run_raphe, unavailable

try:
    import keras  # noqa: F401 (the families are trained with it)
    import sklearn  # noqa: F401 (and with it)
except ImportError:
    unavailable("scikit-learn and Keras are not installed (make test installs them)", module_level=True)

FIRING = ["logistic regression", "SVM linear", "SVM RBF", "SVM polynomial", "AdaBoost", "1D-CNN", "RNN", "LSTM"]
WAVEFORM = ["logistic regression", "SVM linear", "SVM RBF", "SVM polynomial", "AdaBoost", "1D-CNN (seed)", "RNN", "LSTM"]


def test_every_family_is_trained_and_reported(tmp_path):
    data = tmp_path / "cells"
    synthesize(data, cells=24, days=2, seed=51, duration_s=20.0, write_abf=False)
    out = tmp_path / "comparison"
    result = run_raphe("compare", data, "--out-dir", out, "--splits", "2", "--epochs", "2", "--isis", "8", "16",
                       timeout=900)
    assert result.returncode == 0, result.stderr
    report = (out / "report.md").read_text()
    assert "## Firing: the first 16 intervals of each cell" in report and "## Waveforms:" in report
    firing_table, waveform_table = report.split("## Waveforms:")
    for name in FIRING:
        assert f"| {name} |" in firing_table
    for name in WAVEFORM:
        assert f"| {name} |" in waveform_table
    summary = json.loads((out / "compare.json").read_text())
    assert set(summary["firing"]["by_isis"]) == {"8", "16"}
    for n, table in summary["firing"]["by_isis"].items():
        assert list(table) == FIRING
        for s in table.values():
            assert s["splits"] == 2 and 0.0 <= s["accuracy_mean"] <= 1.0 and s["train_s_mean"] > 0
            cells = summary["firing"]["cells"][n]
            tested = sum(max(1, round(0.3 * cells[c])) for c in ("SER", "NSER"))
            assert sum(map(sum, s["confusion"])) == 2 * tested  # every held-out cell of both splits, once
            assert set(s["per_class"]) == {"SER", "NSER"}
    assert list(summary["waveform"]["cell"]) == WAVEFORM == list(summary["waveform"]["window"])
    # a family that learned nothing would sit at chance; the feature models must not, even here
    # (16 held-out cells over two splits: one cell is 6 points)
    assert summary["firing"]["by_isis"]["16"]["logistic regression"]["accuracy_mean"] > 0.6
    assert summary["waveform"]["cell"]["logistic regression"]["accuracy_mean"] > 0.6
    import matplotlib.image

    for png in ("confusion-firing.png", "confusion-waveform.png"):
        image = matplotlib.image.imread(out / png)
        assert image.shape[0] > 200 and image.shape[1] > 600 and image.std() > 0.05
