"""Labelled recordings for the pipelines' tests: three generated cells written as ABF files."""

from __future__ import annotations

import pytest

from raphe.classifier.synthetic.dataset import synthesize


@pytest.fixture(scope="module")
def labelled_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("cells") / "synth"
    synthesize(out, cells=3, days=1, seed=31, duration_s=12.0)
    return sorted((out / "abf").glob("*.abf"))
