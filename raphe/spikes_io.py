"""Writing detected events: the CSV table and the .npz of windows. Files appear whole or not at all."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from raphe.detector import DetectorConfig, Events
from raphe.errors import RapheError
from raphe.replay import Channel

CSV_COLUMNS = ["channel_num", "channel_name", "sample_num", "time_s", "threshold", "amplitude"]


def check_writable(path: str | Path) -> Path:
    """Refuse an output path whose folder does not exist, before any work is done for it."""
    target = Path(path)
    if not target.parent.is_dir():
        raise RapheError(f"cannot write {target}: folder {target.parent} does not exist")
    return target


def _staging(path: str | Path) -> tuple[Path, Path]:
    target = check_writable(path)
    return target, target.with_name(f".{target.name}.partial")


def write_events_csv(path: str | Path, events: Events, channels: list[Channel], sample_rate: float) -> None:
    target, partial = _staging(path)
    with partial.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for r in events.records:
            channel = channels[r["channel"]]
            writer.writerow([channel.num, channel.name, int(r["sample_num"]), f"{r['sample_num'] / sample_rate:.6f}",
                             f"{r['threshold']:.6g}", f"{r['amplitude']:.6g}"])
    os.replace(partial, target)


def write_windows_npz(path: str | Path, events: Events, channels: list[Channel], sample_rate: float,
                      config: DetectorConfig) -> None:
    target, partial = _staging(path)
    with partial.open("wb") as fh:
        np.savez(fh, X=events.windows,
                 channel_num=np.array([channels[c].num for c in events.records["channel"]], np.int32),
                 sample_num=events.records["sample_num"], threshold=events.records["threshold"],
                 amplitude=events.records["amplitude"], sample_rate=np.float64(sample_rate),
                 pre_ms=np.float64(config.pre_ms), post_ms=np.float64(config.post_ms))
    os.replace(partial, target)
