"""Fixtures shared by the tests: the real recordings of ../shared/data/abf, one test per recording."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import abf_paths, require_abf_dir


def pytest_generate_tests(metafunc):
    if "abf_path" in metafunc.fixturenames:
        paths = abf_paths()
        metafunc.parametrize("abf_path", paths or [None], ids=[p.name for p in paths] or ["no-recordings"])


@pytest.fixture
def abf_path(request) -> Path:
    require_abf_dir()
    return request.param


@pytest.fixture
def abf_dir() -> Path:
    return require_abf_dir()
