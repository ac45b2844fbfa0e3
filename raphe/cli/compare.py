"""`raphe compare`: model families compared on firing and on waveforms (needs the `train` extra)."""

from __future__ import annotations

import argparse
import sys

from .options import Parser, add_labelled_options, load_windows, positive_int

HELP = ("Compare 1D-CNN, RNN and LSTM with logistic regression, SVM and AdaBoost, on cells' firing and on "
        "their spikes' shapes, over repeated cell-level splits; writes report.md.")
EXAMPLE = "raphe compare synthetic/ --out-dir comparison/"


def add_arguments(p: Parser) -> None:
    p.add_argument("data", nargs="+", help="labelled cells with spike times: `raphe synth` folders or labelled "
                                           "recordings (class folders or a manifest)")
    p.add_argument("--out-dir", dest="out", required=True, help="folder for report.md, compare.json and the confusion matrices")
    p.add_argument("--splits", type=positive_int, default=10, help="repeated cell-level splits (default 10)")
    p.add_argument("--epochs", type=positive_int, default=40, help="at most this many epochs per network (default 40)")
    p.add_argument("--isis", type=positive_int, nargs="+", default=[8, 16, 24], metavar="N",
                   help="numbers of intervals the firing families read (default 8 16 24)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_labelled_options(p)


def run(args: argparse.Namespace) -> int:
    from raphe.classifier.training.compare import compare, markdown
    from raphe.classifier.training.train import quiet_tensorflow

    data = load_windows(args.data, args.channel)
    quiet_tensorflow()
    result = compare(data, args.out, ", ".join(args.data), args.splits, args.seed, args.epochs, tuple(sorted(args.isis)))
    print(markdown(result))
    print(f"wrote {args.out}/report.md, compare.json, confusion-firing.png, confusion-waveform.png", file=sys.stderr)
    return 0
