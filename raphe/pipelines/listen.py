"""`raphe listen`: the rig-side diagnostic, a live per-channel table of what arrives on the wire.

It runs the live path's receive loop with the subscriber alone: no detector, no classifier.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from raphe.streamer.security import Curve
from raphe.streamer.subscriber import Received, ReceivedPacked, StreamStats, Subscriber

from .loop import run_loop


@dataclass
class Pace:
    """How fast each channel's samples arrive, on the stream's own clock: the recorded time its
    blocks after the first cover, over the wall time from the first block's arrival to the last's."""

    first: dict[tuple[str, int], tuple[float, int]] = field(default_factory=dict)
    last: dict[tuple[str, int], float] = field(default_factory=dict)

    def seen(self, message, stats: StreamStats) -> None:
        """``message`` (as the subscriber handed it on) has just arrived."""
        if isinstance(message, Received):
            keys = [(message.block.stream, message.block.channel_num)]
        elif isinstance(message, ReceivedPacked):
            keys = [(message.block.stream, num) for num in message.block.channel_nums]
        else:
            return
        now = time.monotonic()
        for key in keys:
            if key not in self.first:
                self.first[key] = (now, stats.channels[key].samples)
            else:
                self.last[key] = now

    def speed(self, key: tuple[str, int], samples: int, sample_rate: float) -> float | None:
        """× real time, or None before two blocks of the channel have arrived."""
        if key not in self.last or self.last[key] <= self.first[key][0]:
            return None
        started, first_samples = self.first[key]
        return (samples - first_samples) / sample_rate / (self.last[key] - started)


@dataclass(frozen=True, slots=True)
class ListenResult:
    stats: StreamStats
    seconds: float

    def summary(self) -> dict:
        """What `raphe listen --json` prints: the stream's counters and each channel's."""
        s = self.stats
        return {"seconds": self.seconds, **s.counters(),
                "channels": [{"stream": c.stream, "channel_num": c.channel_num, "channel_name": c.channel_name,
                              "units": c.units, "sample_rate": c.sample_rate, "samples": c.samples,
                              "blocks": c.blocks, "gaps": c.gaps, "lost_samples": c.lost_samples}
                             for c in s.channels.values()]}


def stats_table(stats: StreamStats, seconds: float, endpoint: str, pace: Pace) -> Table:
    """The per-channel table, with the stream-wide counters in its caption."""
    table = Table(title=f"raphe listen {endpoint}", title_justify="left")
    for column in ("stream", "ch", "name", "units", "Hz", "samples", "blocks", "x real time", "gaps",
                   "lost samples"):
        table.add_column(column, justify="left" if column in ("stream", "name", "units") else "right")
    for key in sorted(stats.channels):
        c = stats.channels[key]
        speed = pace.speed(key, c.samples, c.sample_rate)
        table.add_row(c.stream, str(c.channel_num), c.channel_name, c.units or "?", f"{c.sample_rate:g}",
                      f"{c.samples:,}", f"{c.blocks:,}", "-" if speed is None else f"{speed:.2f}", str(c.gaps),
                      f"{c.lost_samples:,}")
    malformed = ", ".join(f"{k} {n}" for k, n in sorted(stats.malformed.items())) or "0"
    table.caption = (f"messages {stats.messages:,} · lost messages {stats.lost_messages:,} · "
                     f"acquisitions {stats.acquisitions} · TTL events {stats.events:,} · malformed {malformed} · "
                     f"{seconds:.1f} s")
    table.caption_justify = "left"
    return table


def listen(endpoint: str, *, duration_s: float | None = None, idle_s: float | None = None,
           units: str | None = None, scale: float = 1.0, console: Console | None = None,
           stop: threading.Event | None = None, curve: Curve | None = None) -> ListenResult:
    """Receive from ``endpoint`` and keep a live table on ``console`` until stopped.

    Parameters
    ----------
    duration_s : stop after this many seconds (default: until Ctrl-C).
    idle_s : stop once data has arrived and then none has for this many seconds (default: never).
    units, scale : for channels whose header carries no units (see :class:`Subscriber`).
    console : where the table goes (default stdout); the final table is printed on exit.
    stop : ends the loop when set (default: never).
    curve : connect with CURVE (see ``raphe.streamer.security``).
    """
    console = console or Console()
    pace = Pace()
    with Subscriber(endpoint, units=units, scale=scale, curve=curve) as sub:

        def step(timeout_ms: int) -> bool:
            message = sub.receive(timeout_ms=timeout_ms)
            if message is None:
                return False
            pace.seen(message, sub.stats)
            return True

        seconds = run_loop(step, lambda s: stats_table(sub.stats, s, endpoint, pace), console=console,
                           duration_s=duration_s, idle_s=idle_s, stop=stop)
    console.print(stats_table(sub.stats, seconds, endpoint, pace))
    return ListenResult(sub.stats, seconds)
