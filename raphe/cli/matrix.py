"""`raphe matrix`: models judged across data sources (the cross-generator matrix)."""

from __future__ import annotations

import argparse

from .options import Parser, named

HELP = "Judge every model on every labelled data set: the cross-generator matrix, with intervals and trade-off."
EXAMPLE = "raphe matrix --model both=model/m-dynamic.tflite --data template=test-t/ --data biophysical=test-b/ --out-dir m/"


def add_arguments(p: Parser) -> None:
    p.add_argument("--model", type=named, action="append", required=True, metavar="NAME=MODEL",
                   help="a model's .tflite or .json, or a cascade's .json, named for the table (repeat for each model)")
    p.add_argument("--data", type=named, action="append", required=True, metavar="NAME=DATA",
                   help="a labelled window set of held-out days (.npz, `raphe synth` folder), named (repeat)")
    p.add_argument("--out-dir", dest="out", help="folder for matrix.md, matrix.json and tradeoff.png")
    p.add_argument("--evidence", nargs="+", choices=["both", "waveform", "firing"], default=[],
                   help="judge each model with each of these posteriors (default: each model's own)")
    p.add_argument("--conflict", action="store_true",
                   help="also judge each data set's conflict cells: each cell's spikes re-timed with the firing of a "
                        "cell of another class (needs spike times)")


def run(args: argparse.Namespace) -> int:
    from raphe.classifier.evaluation.matrix import markdown, matrix

    result = matrix(dict(args.model), dict(args.data), args.out, tuple(args.evidence), args.conflict)
    print(markdown(result))
    return 0
