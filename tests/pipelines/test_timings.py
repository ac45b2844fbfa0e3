"""Stage-timing histograms: percentiles within one bin of the exact ones, the maximum exact."""

from __future__ import annotations

import numpy as np
import pytest

from raphe.pipelines.timings import PER_DECADE, Histogram, StageTimings


def test_percentiles_are_within_one_bin_of_numpy():
    rng = np.random.default_rng(0)
    values = rng.lognormal(np.log(50e-6), 0.8, 20_000)
    histogram = Histogram()
    for v in values:
        histogram.add(float(v))
    width = 10 ** (1 / PER_DECADE)
    for q in (50, 95, 99):
        exact = np.percentile(values, q)
        assert exact / width <= histogram.percentile(q) <= exact * width
    assert histogram.max_s == values.max() and histogram.n == len(values)
    assert histogram.summary()["mean_s"] == pytest.approx(values.mean())


def test_stages_keep_their_order_and_empty_ones_say_so():
    timings = StageTimings(("receive", "detect"))
    timings.add("detect", 1e-5)
    timings.add("publish", 2e-5)
    summary = timings.summary()
    assert list(summary) == ["receive", "detect", "publish"]
    assert summary["receive"]["n"] == 0 and summary["receive"]["p50_s"] is None  # JSON has no NaN
    assert summary["publish"]["max_s"] == 2e-5
