"""`raphe cascade`: a student and its ensemble as one model, the ensemble answering where the student is unsure."""

from __future__ import annotations

import argparse
import shlex
import sys

from raphe.core.specs import CASCADE_TARGET, STAND_IN_AGREEMENT

from .options import Parser, add_labelled_options, load_windows, named

HELP = ("Choose the margin below which a student hands a window to its ensemble, measure the pair, and write "
        "their cascade (a model for --model).")
EXAMPLE = ("raphe cascade my-model/lab-student-dynamic.tflite my-model/lab-model-dynamic.tflite "
           "--choose held-out=calibration/ --check test=test/ --out my-model/lab-cascade.json")


def add_arguments(p: Parser) -> None:
    p.add_argument("student", help="the student's .tflite or .json (raphe distill)")
    p.add_argument("ensemble", help="its ensemble's .tflite or .json, in the same folder")
    p.add_argument("--choose", type=named, action="append", default=[], metavar="NAME=DATA", required=True,
                   help="held-out windows to choose the margin on (repeat; it must hold on each)")
    p.add_argument("--check", type=named, action="append", default=[], metavar="NAME=DATA", required=True,
                   help="other held-out windows to measure the cascade on (repeat; it stands in where it agrees "
                        f"with the ensemble on >= {100 * STAND_IN_AGREEMENT:g}%% of each, decides no cell as "
                        "another class and no more wrongly)")
    p.add_argument("--target", type=float, default=CASCADE_TARGET,
                   help="agreement with the ensemble to choose the margin for (default %(default)g)")
    p.add_argument("--out", required=True, help="the cascade's .json, beside the two models")
    add_labelled_options(p)


def run(args: argparse.Namespace) -> int:
    from raphe.classifier.evaluation.escalation import build_cascade, summary

    choose = {name: load_windows([path], args.channel) for name, path in args.choose}
    check = {name: load_windows([path], args.channel) for name, path in args.check}
    written = build_cascade(args.student, args.ensemble, choose, check, args.out, args.target,
                            recipe="raphe " + shlex.join(args.argv))
    for line in summary(written):
        print(line, file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0
