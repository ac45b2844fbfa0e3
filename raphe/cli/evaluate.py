"""`raphe evaluate`: a model judged on labelled windows, with a report."""

from __future__ import annotations

import argparse

from .options import Parser, add_labelled_options, load_windows

HELP = "Evaluate a model (or every model in a folder) on labelled windows; write a report."
EXAMPLE = "raphe evaluate my-model/lab-model-dynamic.tflite held-out/ --out-dir report/"


def add_arguments(p: Parser) -> None:
    p.add_argument("model", help="a model's .tflite or .json, a folder of models, or 'default' (the shipped one)")
    p.add_argument("data", nargs="+", help="labelled data: window sets (.npz, `raphe synth` folders, class folders of CSVs) "
                        "or labelled recordings (class folders of recordings, a CSV manifest)")
    p.add_argument("--out-dir", dest="out", help="folder for report.md, metrics.json and the PNG figures")
    add_labelled_options(p)


def run(args: argparse.Namespace) -> int:
    from raphe.classifier.evaluation.evaluate import evaluate
    from raphe.classifier.evaluation.report import markdown

    data = load_windows(args.data, args.channel)
    summary = evaluate(args.model, data, args.out, data_name=", ".join(args.data))
    print(markdown(summary))
    return 0
