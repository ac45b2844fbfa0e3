"""`raphe train`: the ensemble trained on labelled windows and exported (needs the `train` extra)."""

from __future__ import annotations

import argparse
import shlex
import sys

from raphe.core.specs import MAX_WINDOWS_PER_CELL

from .options import Parser, add_labelled_options, load_windows, positive_int

HELP = "Train the CNN ensemble on labelled windows; export float32, dynamic-range and int8 .tflite."
EXAMPLE = "raphe train synthetic/ --out-dir my-model/ --name lab-model"


def kernel_range(text: str) -> tuple[int, ...]:
    try:
        if "-" in text:
            low, high = (int(x) for x in text.split("-", 1))
            kernels = tuple(range(low, high + 1))
        else:
            kernels = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected kernels like 20-30 or 20,25,30 (got {text!r})") from None
    if not kernels or min(kernels) < 1 or max(kernels) > 60:
        raise argparse.ArgumentTypeError(f"kernel sizes must be 1..60 (got {text!r})")
    return kernels


def add_arguments(p: Parser) -> None:
    p.add_argument("data", nargs="+", help="labelled data: window sets (.npz, `raphe synth` folders, class folders of CSVs) "
                        "or labelled recordings (class folders of recordings, a CSV manifest)")
    p.add_argument("--out-dir", dest="out", required=True, help="folder for NAME-{float32,dynamic,int8}.tflite and their .json")
    add_recipe_options(p)
    add_labelled_options(p)


def add_recipe_options(p: Parser) -> None:
    """The training recipe's options (also `raphe crossval`'s)."""
    p.add_argument("--name", default="model", help="model name (default model)")
    p.add_argument("--kernels", type=kernel_range, default=tuple(range(20, 31)),
                   help="kernel sizes of the ensemble, e.g. 20-30 or 20,25,30 (default 20-30)")
    p.add_argument("--epochs", type=positive_int, default=25, help="at most this many epochs per member (default 25)")
    p.add_argument("--patience", type=positive_int, default=3, help="early-stopping patience in epochs (default 3)")
    p.add_argument("--max-per-cell", type=positive_int, default=MAX_WINDOWS_PER_CELL,
                   help="windows kept per cell (default %(default)d)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--start-from", metavar="MODEL",
                   help="fine-tune the members of a trained model at a tenth of the learning rate: 'default' "
                        "(the shipped one) or a model's .tflite whose float32 variant lies beside it (without "
                        "it: training from random weights)")


def recipe_config(args: argparse.Namespace):
    from raphe.classifier.training.train import TrainConfig

    return TrainConfig(kernels=args.kernels, epochs=args.epochs, patience=args.patience,
                       max_per_cell=args.max_per_cell, seed=args.seed, start_from=args.start_from)


def run(args: argparse.Namespace) -> int:
    from raphe.classifier.training.train import quiet_tensorflow, train

    data = load_windows(args.data, args.channel)
    data.require_classes(2)
    if args.start_from:  # a start that cannot be had: one line before TensorFlow loads
        from raphe.classifier.training.warm_start import check_start

        check_start(args.start_from, args.kernels)
    quiet_tensorflow()

    config = recipe_config(args)
    recipe = "raphe " + shlex.join(args.argv)
    result = train(data, args.out, config, name=args.name, data_description=f"{data!r} from {', '.join(args.data)}",
                   recipe=recipe)
    print(f"wrote {', '.join(str(p) for p in result.models.values())}", file=sys.stderr)
    return 0
