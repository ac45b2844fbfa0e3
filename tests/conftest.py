"""Fixtures shared by the tests: the real recordings of ../shared/data/abf and loopback sockets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from raphe.streamer import Publisher, Subscriber

REPO = Path(__file__).resolve().parents[1]
ABF_DIR = Path(os.environ.get("RAPHE_ABF_DIR", REPO.parent / "shared" / "data" / "abf"))


def abf_paths() -> list[Path]:
    return sorted(ABF_DIR.glob("*.abf")) if ABF_DIR.is_dir() else []


def require_abf_dir() -> None:
    """Skip where the real recordings are absent; under CI=true their absence is a failure."""
    if abf_paths():
        return
    reason = f"real recordings not found in {ABF_DIR} (clone raphe beside shared/, or set RAPHE_ABF_DIR)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def pytest_generate_tests(metafunc):
    if "abf_path" in metafunc.fixturenames:
        paths = abf_paths()
        metafunc.parametrize("abf_path", paths or [None], ids=[p.name for p in paths] or ["no-recordings"])


@pytest.fixture
def abf_path(request):
    require_abf_dir()
    return request.param


@pytest.fixture
def abf_dir() -> Path:
    require_abf_dir()
    return ABF_DIR


def handshake(pub: Publisher, sub: Subscriber, attempts: int = 200) -> int:
    """Send probe blocks until the subscriber receives one (ZeroMQ's slow joiner), then drain the
    probes still on their way; return the last message_num sent. From then on every message reaches
    the subscriber unless its queue overflows."""
    import numpy as np

    for i in range(attempts):
        pub.send_data("probe", 0, "probe", i, 1000.0, np.zeros(1, np.float32))
        if sub.receive(timeout_ms=20) is not None:
            while sub.receive(timeout_ms=100) is not None:
                pass
            return pub.message_num
    raise AssertionError("subscriber never connected")
