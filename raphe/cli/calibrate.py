"""`raphe calibrate`: the cell posterior of a model refitted on held-out cells."""

from __future__ import annotations

import argparse
import sys

from .options import Parser, add_labelled_options, load_windows

HELP = "Refit the cell posterior of a model (or every model in a folder) on held-out cells."
EXAMPLE = "raphe calibrate my-model/ held-out-cells/"


def add_arguments(p: Parser) -> None:
    p.add_argument("model", help="a model's .tflite or .json, or a folder of models")
    p.add_argument("data", nargs="+", help="labelled window sets of cells the model never saw")
    add_labelled_options(p)


def run(args: argparse.Namespace) -> int:
    from raphe.classifier.evaluation.calibration import calibrate

    data = load_windows(args.data, args.channel)
    data.require_classes(2)
    for name, (alpha, beta, margin) in calibrate(args.model, data, ", ".join(args.data)).items():
        print(f"{name}: cell posterior alpha {alpha:.4f}, beta {beta:.4f}, margin {margin:g} "
              f"(fitted on {len(set(data.cell.tolist()))} cells)", file=sys.stderr)
    return 0
