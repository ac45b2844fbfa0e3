"""`raphe detect`: the online detector over a file, events to CSV and windows to .npz."""

from __future__ import annotations

import argparse
import sys

from .options import Parser, add_detector_options, detector_settings

HELP = "Detect spikes in a recording (.abf, AxoGraph, NWB); write a CSV of events and their windows."
EXAMPLE = "raphe detect recording.abf --adaptive 5 --out spikes.csv --windows windows.npz"


def add_arguments(p: Parser) -> None:
    p.add_argument("file", help="an ABF1 or ABF2 file, an AxoGraph file (.axgd, .axgx) or an NWB file")
    add_detector_options(p)
    p.add_argument("--channels", nargs="+", metavar="CH", help="channel indices or names (default all)")
    p.add_argument("--out", required=True, help="CSV of events to write")
    p.add_argument("--windows", help="also write the 160-point windows to this .npz")


def run(args: argparse.Namespace) -> int:
    from raphe.core.staged import check_writable
    from raphe.detector.config import DetectorConfig
    from raphe.outputs.detections import write_events_csv, write_windows_npz
    from raphe.pipelines.offline import detect_recording
    from raphe.replay.recording import Recording

    for path in filter(None, (args.out, args.windows)):
        check_writable(path)
    config = DetectorConfig(**detector_settings(args))
    rec = Recording(args.file)
    channels = rec.select(args.channels)
    events, rows = detect_recording(rec, channels, config)
    detector = rows.detector
    write_events_csv(args.out, events, channels, rec.sample_rate)
    if args.windows:
        write_windows_npz(args.windows, events, channels, rec.sample_rate, config)
    dropped = ", ".join(f"{n} {why}" for why, n in detector.dropped().items())
    print(f"{rec.name}: {len(events)} spikes on {len(channels)} channel(s) written to {args.out} "
          f"(not emitted: {dropped}; still pending at the end: {detector.pending})", file=sys.stderr)
    return 0
