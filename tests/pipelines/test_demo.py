"""The demo: the main job on the shipped model, on a simulated rig."""

from __future__ import annotations

from tests.helpers import run_raphe


def test_demo_makes_no_wrong_decision(tmp_path):
    report = tmp_path / "demo.png"
    result = run_raphe("demo", "--report", report, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    line = next(x for x in result.stdout.splitlines() if "cells decided rightly" in x)
    right = int(line.split(" of ")[0])
    assert right >= 4 and ", 0 wrongly," in line  # the firing evidence decides most cells (5 of 6 when written)
    import matplotlib.image

    image = matplotlib.image.imread(report)  # a row per cell: shape with saliency, intervals, posteriors
    assert image.shape[0] > 1000 and image.shape[1] > 1000 and image.std() > 0.05
