"""`raphe firing-model`: the firing model trained on labelled cells' spike trains (needs the `train` extra)."""

from __future__ import annotations

import argparse
import sys

from .options import Parser, add_labelled_options, load_windows

HELP = "Train the firing model (evidence from a cell's intervals) on labelled cells' spike trains."
EXAMPLE = "raphe firing-model synthetic/ --out my-model/lab-firing.json"


def add_arguments(p: Parser) -> None:
    p.add_argument("data", nargs="+", help="labelled cells with spike times: `raphe synth` folders or labelled "
                                           "recordings (class folders or a manifest)")
    p.add_argument("--out", required=True, help="the firing model's .json")
    p.add_argument("--seed", type=int, default=0, help="random seed of the regularization search (default 0)")
    add_labelled_options(p)


def run(args: argparse.Namespace) -> int:
    from raphe.classifier.training.firing import train_firing_model

    data = load_windows(args.data, args.channel)
    model = train_firing_model(data, args.out, ", ".join(args.data), args.seed)
    t = model.metadata["training"]
    print(f"wrote {args.out}: {t['cells']} cells, {t['examples']} examples, C {t['C']:g}, {t['seconds']:.1f} s; "
          f"next: raphe calibrate MODEL HELD-OUT... --firing {args.out}", file=sys.stderr)
    return 0
