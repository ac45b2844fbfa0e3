"""`raphe demo`: the main job on the shipped model, on a simulated rig."""

from __future__ import annotations

import argparse

from .options import Parser, positive_float

HELP = "Classify a simulated rig of synthetic cells live with the shipped model; report against the truth."
EXAMPLE = "raphe demo --report demo.png"


def add_arguments(p: Parser) -> None:
    p.add_argument("--seconds", type=positive_float, default=40.0, help="length of the simulated recording (default 40)")
    p.add_argument("--seed", type=int, default=7, help="random seed of the synthetic cells (default 7)")
    p.add_argument("--report", default="raphe-demo.png", help="PNG report to write (default %(default)s)")
    p.add_argument("--model", help="a model's .tflite or .json (default: the model shipped with raphe)")
    p.add_argument("--web", nargs="?", const="127.0.0.1:8765", metavar="HOST:PORT",
                   help="also serve the live browser view (as raphe serve --web; default 127.0.0.1:8765)")


def run(args: argparse.Namespace) -> int:
    from raphe.core.staged import check_writable
    from raphe.pipelines.demo import demo

    check_writable(args.report)
    return demo(seconds=args.seconds, seed=args.seed, report=args.report, model_path=args.model, web_address=args.web)
