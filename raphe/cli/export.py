"""`raphe export`: a window set converted between .npz and the seed's per-spike CSV folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .options import Parser

HELP = "Convert a window set between .npz and the seed's per-spike CSV folders."
EXAMPLE = "raphe export synthetic/windows.npz spikes-csv/"


def add_arguments(p: Parser) -> None:
    p.add_argument("source", help="a window set: .npz, `raphe synth` folder, or CSV class folders")
    p.add_argument("target", help="a .npz file, or a new folder for CLASS/CELL/spike_NNNNNN.csv")


def run(args: argparse.Namespace) -> int:
    from raphe.classifier.runtime import windows

    data = windows.load(args.source)
    if args.target.endswith(".npz"):
        windows.save_npz(data, args.target)
    else:
        windows.export_csv_folder(data, Path(args.target))
    print(f"wrote {data!r} to {args.target}", file=sys.stderr)
    return 0
