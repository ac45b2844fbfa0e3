"""What several test modules share: running the command line as a user does, the one-line error
check, free loopback ports, the slow-joiner handshake, and where the real recordings are."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zmq

REPO = Path(__file__).resolve().parents[1]
ABF_DIR = Path(os.environ.get("RAPHE_ABF_DIR", REPO.parent / "shared" / "data" / "abf"))


def abf_paths() -> list[Path]:
    return sorted(ABF_DIR.glob("*.abf")) if ABF_DIR.is_dir() else []


def require_abf_dir() -> Path:
    """The real recordings' folder; skip where they are absent, except under CI=true, where their
    absence is a failure."""
    if abf_paths():
        return ABF_DIR
    reason = f"real recordings not found in {ABF_DIR} (clone raphe beside shared/, or set RAPHE_ABF_DIR)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def run_raphe(*args, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    """`raphe ARGS...` in a subprocess, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "raphe", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]


def free_port_pair() -> int:
    """A TCP port free on 127.0.0.1 whose successor (the heartbeat port) is free too."""
    ctx = zmq.Context()
    try:
        for _ in range(50):
            a = ctx.socket(zmq.REP)
            a.bind("tcp://127.0.0.1:*")
            port = int(a.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1])
            b = ctx.socket(zmq.REP)
            try:
                b.bind(f"tcp://127.0.0.1:{port + 1}")
                return port
            except zmq.ZMQError:
                continue
            finally:
                a.close(0)
                b.close(0)
        raise RuntimeError("no free port pair")
    finally:
        ctx.term()


def handshake(pub, sub, attempts: int = 200) -> int:
    """Send probe blocks until the subscriber receives one (ZeroMQ's slow joiner), then drain the
    probes still on their way; return the last message_num sent. From then on every message reaches
    the subscriber unless its queue overflows."""
    for i in range(attempts):
        pub.send_data("probe", 0, "probe", i, 1000.0, np.zeros(1, np.float32))
        if sub.receive(timeout_ms=20) is not None:
            while sub.receive(timeout_ms=100) is not None:
                pass
            return pub.message_num
    raise AssertionError("subscriber never connected")
