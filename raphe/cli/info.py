"""`raphe info`: what a recording holds."""

from __future__ import annotations

import argparse
import json

from .options import Parser

HELP = "Show what a recording (.abf, AxoGraph, NWB) holds."
EXAMPLE = "raphe info recording.abf"


def add_arguments(p: Parser) -> None:
    p.add_argument("file", help="an ABF1 or ABF2 file, an AxoGraph file (.axgd, .axgx) or an NWB file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from raphe.replay.recording import Recording

    rec = Recording(args.file)
    if args.json:
        print(json.dumps(rec.description()))
        return 0
    console = Console()
    console.print(f"[bold]{rec.path.name}[/]  {rec.format}, {rec.mode}, {rec.sample_rate:g} Hz, "
                  f"recorded on {rec.recorded_on or 'an unknown day'}")
    for c in rec.channels:
        console.print(f"  channel {c.num}: {c.name} ({c.units})")
    lengths = sorted({s.num_samples for s in rec.sweeps})
    console.print(f"  {len(rec.sweeps)} sweep(s) of {', '.join(map(str, lengths))} samples; "
                  f"{rec.recorded_s:.3f} s recorded over a span of {rec.span_samples / rec.sample_rate:.3f} s")
    if len(rec.sweeps) > 1:
        starts = ", ".join(f"{s.sample_num / rec.sample_rate:g}" for s in rec.sweeps[:8])
        more = ", ..." if len(rec.sweeps) > 8 else ""
        console.print(f"  sweep starts (s): {starts}{more}")
    return 0
