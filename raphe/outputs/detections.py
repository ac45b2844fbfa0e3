"""Writing detected events: the CSV table and the .npz of windows. Files appear whole or not at all."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from raphe.core.staged import staged
from raphe.detector.config import DetectorConfig
from raphe.detector.online import Events
from raphe.replay.recording import Channel

CSV_COLUMNS = ["channel_num", "channel_name", "sample_num", "time_s", "threshold", "amplitude"]


def write_events_csv(path: str | Path, events: Events, channels: list[Channel], sample_rate: float) -> None:
    with staged(path) as partial, partial.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for r in events.records:
            channel = channels[r["channel"]]
            writer.writerow([channel.num, channel.name, int(r["sample_num"]), f"{r['sample_num'] / sample_rate:.6f}",
                             f"{r['threshold']:.6g}", f"{r['amplitude']:.6g}"])


def write_windows_npz(path: str | Path, events: Events, channels: list[Channel], sample_rate: float,
                      config: DetectorConfig) -> None:
    with staged(path) as partial, partial.open("wb") as fh:
        np.savez(fh, X=events.windows,
                 channel_num=np.array([channels[c].num for c in events.records["channel"]], np.int32),
                 sample_num=events.records["sample_num"], threshold=events.records["threshold"],
                 amplitude=events.records["amplitude"], sample_rate=np.float64(sample_rate),
                 pre_ms=np.float64(config.window.pre_ms), post_ms=np.float64(config.window.post_ms))
