"""`raphe distill`: one student network trained on an ensemble's outputs (needs the `train` extra)."""

from __future__ import annotations

import argparse
import shlex
import sys

from raphe.core.specs import MAX_WINDOWS_PER_CELL, STAND_IN_AGREEMENT, STUDENT_EPOCHS

from .options import Parser, add_labelled_options, load_windows, named, positive_int

HELP = "Train one network of the seed's architecture on an ensemble's outputs; export it like the ensemble."
EXAMPLE = ("raphe distill my-model/lab-model-float32.tflite synthetic/ --out-dir my-model/ --name lab-student "
           "--check held-out=test/")


def add_arguments(p: Parser) -> None:
    p.add_argument("teacher", help="the ensemble's .tflite or .json (its float32 export is the most faithful)")
    p.add_argument("data", nargs="+", help="the window sets the teacher was trained on")
    p.add_argument("--out-dir", dest="out", required=True, help="folder for NAME-{float32,dynamic,int8}.tflite and their .json")
    p.add_argument("--name", default="student", help="model name (default student)")
    p.add_argument("--kernel", type=positive_int, default=20, help="the student's kernel size (default 20)")
    p.add_argument("--epochs", type=positive_int, default=STUDENT_EPOCHS,
                   help="at most this many epochs (default %(default)d)")
    p.add_argument("--unlabelled", nargs="+", default=[], metavar="DATA",
                   help="more window sets to learn the teacher's answers on, their labels unused (shapes the "
                        "teacher never trained on)")
    p.add_argument("--check", type=named, action="append", default=[], metavar="NAME=DATA",
                   help="a held-out window set on which the agreement with the teacher is measured and recorded "
                        f"(repeat; the student stands in where it agrees on >= {100 * STAND_IN_AGREEMENT:g}%% of each)")
    p.add_argument("--max-per-cell", type=positive_int, default=MAX_WINDOWS_PER_CELL,
                   help="windows kept per cell (default %(default)d; use the teacher's)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0; use the teacher's, for its split)")
    add_labelled_options(p)


def run(args: argparse.Namespace) -> int:
    from raphe.classifier.training.distill import distill, student_config
    from raphe.classifier.training.train import quiet_tensorflow

    data = load_windows(args.data, args.channel)
    data.require_classes(2)
    unlabelled = load_windows(args.unlabelled, args.channel) if args.unlabelled else None
    checks = {name: load_windows([path], args.channel) for name, path in args.check}
    quiet_tensorflow()
    config = student_config(args.kernel, args.epochs, args.max_per_cell, args.seed)
    described = f"{data!r} from {', '.join(args.data)}" + (
        f"; unlabelled: {', '.join(args.unlabelled)}" if args.unlabelled else "")
    models = distill(args.teacher, data, args.out, config, name=args.name, data_description=described,
                     recipe="raphe " + shlex.join(args.argv), transfer=unlabelled, checks=checks)
    print(f"wrote {', '.join(str(p) for p in models.values())}", file=sys.stderr)
    return 0
