"""The one receive loop of the live path: `raphe serve` and `raphe listen` both run it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rich.console import Console, RenderableType
from rich.live import Live

REFRESH_S = 0.25


def run_loop(step: Callable[[int], bool], view: Callable[[float], RenderableType], *, console: Console,
             duration_s: float | None = None, idle_s: float | None = None, stop: threading.Event | None = None,
             timeout_ms: int = 50) -> float:
    """Call ``step(timeout_ms)`` over and over, keeping ``view(seconds)`` live on ``console``.

    ``step`` handles what has arrived and returns True if anything did. The loop ends after
    ``duration_s`` (default: never), once data has arrived and then none for ``idle_s`` (default:
    never), when ``stop`` is set, or on Ctrl-C. Returns the seconds it ran; the live view is cleared,
    so the caller prints the final one.
    """
    started = time.monotonic()
    last_data = None
    next_refresh = started
    with Live(console=console, auto_refresh=False, transient=True) as live:
        try:
            while stop is None or not stop.is_set():
                if step(timeout_ms):
                    last_data = time.monotonic()
                now = time.monotonic()
                if duration_s is not None and now - started >= duration_s:
                    break
                if idle_s is not None and last_data is not None and now - last_data >= idle_s:
                    break
                if now >= next_refresh:
                    live.update(view(now - started), refresh=True)
                    next_refresh = now + REFRESH_S
        except KeyboardInterrupt:
            pass
    return time.monotonic() - started
