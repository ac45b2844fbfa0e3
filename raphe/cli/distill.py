"""`raphe distill`: one student network trained on an ensemble's outputs (needs the `train` extra)."""

from __future__ import annotations

import argparse
import shlex
import sys

from raphe.core.specs import MAX_WINDOWS_PER_CELL

from .options import Parser, add_labelled_options, load_windows, positive_int

HELP = "Train one network of the seed's architecture on an ensemble's outputs; export it like the ensemble."
EXAMPLE = "raphe distill my-model/lab-model-float32.tflite synthetic/ --out-dir my-model/ --name lab-student"


def add_arguments(p: Parser) -> None:
    p.add_argument("teacher", help="the ensemble's .tflite or .json (its float32 export is the most faithful)")
    p.add_argument("data", nargs="+", help="the window sets the teacher was trained on")
    p.add_argument("--out-dir", dest="out", required=True, help="folder for NAME-{float32,dynamic,int8}.tflite and their .json")
    p.add_argument("--name", default="student", help="model name (default student)")
    p.add_argument("--kernel", type=positive_int, default=20, help="the student's kernel size (default 20)")
    p.add_argument("--epochs", type=positive_int, default=25, help="at most this many epochs (default 25)")
    p.add_argument("--max-per-cell", type=positive_int, default=MAX_WINDOWS_PER_CELL,
                   help="windows kept per cell (default %(default)d; use the teacher's)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0; use the teacher's, for its split)")
    add_labelled_options(p)


def run(args: argparse.Namespace) -> int:
    from raphe.classifier.training.distill import distill
    from raphe.classifier.training.train import TrainConfig, quiet_tensorflow

    data = load_windows(args.data, args.channel)
    data.require_classes(2)
    quiet_tensorflow()
    config = TrainConfig(kernels=(args.kernel,), epochs=args.epochs, max_per_cell=args.max_per_cell, seed=args.seed)
    models = distill(args.teacher, data, args.out, config, name=args.name,
                     data_description=f"{data!r} from {', '.join(args.data)}", recipe="raphe " + shlex.join(args.argv))
    print(f"wrote {', '.join(str(p) for p in models.values())}", file=sys.stderr)
    return 0
