"""The channel bank: detector rows, the signal checks they feed, and the cells they tell, for the live
and the offline path alike.

Both paths hand the bank blocks (one stream at one rate, a row per channel) and get the detected
events back; the bank runs the detector, feeds the checks the same pass's statistics and events,
tells each cell which samples it has seen, and gives each cell the checks' verdict at fixed points
of the stream's own sample counter (at the end of each of the checks' stretches, every
``noise_window_s`` of samples, and at the end of the samples): a block that straddles such a point
is cut there. The detector gives the same events for any cut, so a
cell meets the same verdicts at the same samples whether its samples came in a rig's 10 ms
messages or a file's 1 s reads: `serve` equals `classify` by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from raphe.classifier.runtime.cells import Cell, Verdict
from raphe.detector.config import DetectorConfig
from raphe.detector.online import EVENT_DTYPE, Detector, Events
from raphe.detector.plausibility import SignalChecks

@dataclass
class Rows:
    """The channels of one stream at one rate: a detector and the signal checks, row for row, and
    the verdict each row's cell was last given."""

    detector: Detector
    checks: SignalChecks
    step: int
    verdicts: list[Verdict | None] = field(default_factory=list)
    free: list[int] = field(default_factory=list)

    def add(self, units: str | None) -> int:
        """A row for a new channel: a forgotten channel's, or a new one."""
        if self.free:
            row = self.free.pop()
            self.reset(row, units)
            return row
        self.detector.add_channels(1)
        self.verdicts.append(None)
        return self.checks.add_channel(units)

    def reset(self, row: int, units: str | None) -> None:
        self.detector.reset_channels(np.array([row]))
        self.checks.reset_channel(row, units)
        self.verdicts[row] = None

    def dropped(self, row: int) -> int:
        """Windows of ``row`` its detector could not emit (no pre-samples, gap, non-finite)."""
        return sum(self.detector.dropped(row).values())

    def verdict(self, row: int, sample_num: int, final: bool = False) -> Verdict:
        """The checks' verdict on ``row``; ``final``: at the end of its samples, when the checks have
        seen all they will ever see (a recording too short for the sweeps they wait for is judged
        by what it holds)."""
        checks = self.checks
        return Verdict(sample_num, tuple(checks.reasons(row)), tuple(checks.hints(row)), final or checks.ready(row))

    def judge(self, row: int, cell: Cell, sample_num: int, final: bool = False) -> None:
        """Give ``cell`` the checks' verdict from ``sample_num`` on, if it changed."""
        verdict = self.verdict(row, sample_num, final)
        last = self.verdicts[row]
        if last is None or (last.reasons, last.hints, last.ready) != (verdict.reasons, verdict.hints, verdict.ready):
            self.verdicts[row] = verdict
            cell.judge(verdict)


@dataclass
class Channel:
    """A served channel: its cell, and the rows (and row) of the bank that feed it."""

    cell: Cell
    rows: Rows
    row: int
    last_seen: float = 0.0


def new_rows(sample_rate: float, config: DetectorConfig, units: list[str | None] = ()) -> Rows:
    """Rows for the channels of one stream at ``sample_rate`` (one per entry of ``units``)."""
    checks = SignalChecks(sample_rate, config)
    rows = Rows(Detector(0, sample_rate, config), checks, checks.stretch)
    for u in units:
        rows.add(u)
    return rows


def feed(rows: Rows, block: np.ndarray, row_index: np.ndarray, start: int, cells: list[Cell | None]) -> Events:
    """Detect on ``block`` (row ``i`` is the detector row ``row_index[i]``, whose cell, if any, is
    ``cells[i]``), all rows starting at sample ``start`` of the stream. Returns the events, their
    ``records["channel"]`` the detector row."""
    length = block.shape[1]
    cuts = [c - start for c in range(-(-start // rows.step) * rows.step, start + length, rows.step) if c > start]
    parts = []
    for a, b in zip([0, *cuts], [*cuts, length]):
        events = _feed_piece(rows, block[:, a:b] if cuts else block, row_index, start + a, cells)
        if len(events):
            parts.append(events)
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return Events(np.empty(0, EVENT_DTYPE), np.empty((0, rows.detector.config.window.n_points), np.float32))
    return Events(np.concatenate([p.records for p in parts]), np.concatenate([p.windows for p in parts]))


def _feed_piece(rows: Rows, block: np.ndarray, row_index: np.ndarray, start: int,
                cells: list[Cell | None]) -> Events:
    length = block.shape[1]
    events = rows.detector.process_rows(block, row_index, np.full(len(row_index), start))
    rows.checks.add_block(rows.detector.row_stats, row_index, np.full(len(row_index), start), length, block)
    if len(events):
        channel = events.records["channel"]
        for row in np.unique(channel):
            rows.checks.add_events(int(row), events.records["sample_num"][channel == row])
    end = start + length
    at_check = end % rows.step == 0
    for row, cell in zip(row_index, cells):
        if cell is not None:
            cell.see_block(start, length)
            if at_check:
                rows.judge(int(row), cell, end)
    return events


def conclude(rows: Rows, row_index, cells: list[Cell], end: int) -> None:
    """The end of the channels' samples (``end``: one past the last): the checks' last verdicts."""
    for row, cell in zip(row_index, cells):
        rows.judge(int(row), cell, end, final=True)
