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
                        "firing evidence on these cells (and on their conflict cells), and put the firing model "
                        "beside the model")
    p.add_argument("--across", nargs="+", default=[], metavar="MODEL",
                   help="more models (or folders of them), typically each trained with one generator left out: fit "
                        "one posterior that holds for every model on every data set (each pair a group of its own), "
                        "and write it to all of them")
    add_labelled_options(p)


def run(args: argparse.Namespace) -> int:
    from raphe.classifier.evaluation.calibration import calibrate

    sets = {path: load_windows([path], args.channel) for path in args.data}
    for data in sets.values():
        data.require_classes(2)
    for name, fitted in calibrate(args.model, sets, args.firing, tuple(args.across)).items():
        joint = (f"; firing weight {fitted['firing_weight']:.3f}, joint margin {fitted['joint_margin']:g}, "
                 f"firing margin {fitted['firing_margin']:g}, conflict {fitted['conflict']:g}"
                 if fitted["firing_weight"] is not None else "")
        thresholds = ", ".join(f"{c} {t:g}" for c, t in fitted["certificate"]["thresholds"].items())
        print(f"{name}: cell posterior alpha {fitted['alpha']:.4f}, beta {fitted['beta']:.4f}, margin "
              f"{fitted['margin']:g}, waveform cap {fitted['waveform_cap']:g}{joint}; thresholds {thresholds} "
              f"(fitted on {fitted['cells']} cells)", file=sys.stderr)
        for part in fitted["certificate"]["per_class"].values():
            print(f"  {part['text']}", file=sys.stderr)
    return 0
