"""`raphe listen`: the rig-side diagnostic."""

from __future__ import annotations

import argparse
import json

from raphe.core.specs import DATA_ENDPOINT

from .options import Parser, add_security_options, add_stop_options, add_units_options, curves

HELP = "Live per-channel table of a ZMQ data stream (the rig-side diagnostic)."
EXAMPLE = "raphe listen --connect tcp://127.0.0.1:5556"


def add_arguments(p: Parser) -> None:
    p.add_argument("--connect", default=DATA_ENDPOINT, help="publisher endpoint (default %(default)s)")
    add_stop_options(p)
    add_units_options(p)
    add_security_options(p, serving=False, connecting=True)
    p.add_argument("--json", action="store_true", help="print the final counters as one JSON object")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from raphe.pipelines.listen import listen

    _, connecting = curves(args)
    result = listen(args.connect, duration_s=args.duration, idle_s=args.idle, units=args.units,
                    scale=args.scale, console=Console(stderr=args.json), curve=connecting)
    if args.json:
        print(json.dumps(result.summary()))
    return 0
