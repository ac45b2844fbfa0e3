"""`raphe crossval`: from labelled cells to a model and how far to trust it (needs the `train` extra)."""

from __future__ import annotations

import argparse
import shlex
import sys

from .options import Parser, add_labelled_options, load_windows, positive_int
from .train import add_recipe_options, recipe_config

HELP = ("Cross-validate the training recipe by day (else by cell) on labelled cells, train the final model "
        "with the posterior fitted on every held-out cell, and report how much the data supports.")
EXAMPLE = "raphe crossval cells/ --out-dir lab-model/ --folds 5"


def add_arguments(p: Parser) -> None:
    p.add_argument("data", nargs="+", help="labelled recordings (class folders of recordings, a CSV manifest) "
                                           "or window sets")
    p.add_argument("--out-dir", dest="out", required=True, help="folder for report.md, crossval.json, final/ and folds/")
    p.add_argument("--folds", type=positive_int, default=5, help="folds at most (default 5; fewer where there "
                                                                 "are fewer days, or cells of a class)")
    add_recipe_options(p)
    add_labelled_options(p)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from raphe.classifier.training.crossval import assign_folds, crossval
    from raphe.classifier.training.train import quiet_tensorflow
    from raphe.core.errors import RapheError

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RapheError(f"{out}: exists and is not an empty folder (nothing overwritten)")
    data = load_windows(args.data, args.channel)
    data.require_classes(2)
    assign_folds(data, args.folds, np.random.default_rng(0))  # too few cells: refused before TensorFlow loads
    if args.start_from:  # a start that cannot be had: one line before TensorFlow loads
        from raphe.classifier.training.warm_start import check_start

        check_start(args.start_from, args.kernels)
    quiet_tensorflow()
    result = crossval(data, out, recipe_config(args), n_folds=args.folds, name=args.name,
                      data_description=f"{data!r} from {', '.join(args.data)}", recipe="raphe " + shlex.join(args.argv))
    for line in result["verdict"]:
        print(line)
    print(f"wrote {out / 'report.md'} and the final model {result['final']['dynamic']}", file=sys.stderr)
    return 0
