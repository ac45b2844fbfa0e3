"""`raphe calibrate`: the cell posterior of a model refitted on held-out cells."""

from __future__ import annotations

import argparse
import sys

from .options import Parser, add_labelled_options, load_windows

HELP = "Refit the cell posterior of a model (or every model in a folder) on held-out cells."
EXAMPLE = "raphe calibrate my-model/ held-out-cells/"


def add_arguments(p: Parser) -> None:
    p.add_argument("model", help="a model's .tflite or .json, or a folder of models")
    p.add_argument("data", nargs="+", help="labelled cells the model never saw: window sets (.npz, synth folders, "
                                           "CSV class folders) or labelled recordings (class folders of "
                                           "recordings, CSV manifests)")
    p.add_argument("--firing", metavar="JSON",
                   help="a firing model (raphe firing-model): also fit the joint posterior of waveform and "
                        "firing evidence on these cells, and put the firing model beside the model")
    add_labelled_options(p)


def run(args: argparse.Namespace) -> int:
    from raphe.classifier.evaluation.calibration import calibrate

    data = load_windows(args.data, args.channel)
    data.require_classes(2)
    cells = len(set(data.cell.tolist()))
    for name, fitted in calibrate(args.model, data, ", ".join(args.data), args.firing).items():
        joint = (f"; firing weight {fitted['firing_weight']:.3f}, joint margin {fitted['joint_margin']:g}, "
                 f"firing margin {fitted['firing_margin']:g}") if "firing_weight" in fitted else ""
        print(f"{name}: cell posterior alpha {fitted['alpha']:.4f}, beta {fitted['beta']:.4f}, "
              f"margin {fitted['margin']:g}{joint} (fitted on {cells} cells)", file=sys.stderr)
    return 0
