"""`raphe listen`: the rig-side diagnostic, a live per-channel table of what arrives on the wire."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.table import Table

from raphe.streamer import StreamStats, Subscriber

REFRESH_S = 0.25


@dataclass(frozen=True, slots=True)
class ListenResult:
    stats: StreamStats
    seconds: float


def stats_table(stats: StreamStats, seconds: float, endpoint: str) -> Table:
    """The per-channel table, with the stream-wide counters in its caption."""
    table = Table(title=f"raphe listen {endpoint}", title_justify="left")
    for column in ("stream", "ch", "name", "units", "Hz", "samples", "blocks", "x real time", "gaps",
                   "lost samples"):
        table.add_column(column, justify="left" if column in ("stream", "name", "units") else "right")
    for key in sorted(stats.channels):
        c = stats.channels[key]
        realtime = c.samples / (seconds * c.sample_rate) if seconds > 0 else 0.0
        table.add_row(c.stream, str(c.channel_num), c.channel_name, c.units or "?", f"{c.sample_rate:g}",
                      f"{c.samples:,}", f"{c.blocks:,}", f"{realtime:.2f}", str(c.gaps), f"{c.lost_samples:,}")
    malformed = ", ".join(f"{k} {n}" for k, n in sorted(stats.malformed.items())) or "0"
    table.caption = (f"messages {stats.messages:,} · lost messages {stats.lost_messages:,} · "
                     f"acquisitions {stats.acquisitions} · TTL events {stats.events:,} · malformed {malformed} · "
                     f"{seconds:.1f} s")
    table.caption_justify = "left"
    return table


def listen(endpoint: str, *, duration_s: float | None = None, idle_s: float | None = None,
           units: str | None = None, scale: float = 1.0, console: Console | None = None) -> ListenResult:
    """Receive from ``endpoint`` and keep a live table on ``console`` until stopped.

    Parameters
    ----------
    duration_s : stop after this many seconds (default: until Ctrl-C).
    idle_s : stop once data has arrived and then none has for this many seconds (default: never).
    units, scale : for channels whose header carries no units (see :class:`Subscriber`).
    console : where the table goes (default stdout); the final table is printed on exit.
    """
    console = console or Console()
    started = time.monotonic()
    last_data = None
    with Subscriber(endpoint, units=units, scale=scale) as sub, \
            Live(console=console, refresh_per_second=1 / REFRESH_S, transient=True) as live:
        next_refresh = started
        try:
            while True:
                message = sub.receive(timeout_ms=50)
                now = time.monotonic()
                if message is not None:
                    last_data = now
                if duration_s is not None and now - started >= duration_s:
                    break
                if idle_s is not None and last_data is not None and now - last_data >= idle_s:
                    break
                if now >= next_refresh:
                    live.update(stats_table(sub.stats, now - started, endpoint))
                    next_refresh = now + REFRESH_S
        except KeyboardInterrupt:
            pass
        seconds = time.monotonic() - started
    console.print(stats_table(sub.stats, seconds, endpoint))
    return ListenResult(sub.stats, seconds)
