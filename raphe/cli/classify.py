"""`raphe classify`: the offline path over files and folders."""

from __future__ import annotations

import argparse
import json

from .options import Parser, add_detector_options, add_model_options, detector_settings, load_model, positive_int

HELP = "Classify every cell of .abf files or folders offline, as fast as the CPU allows."
EXAMPLE = "raphe classify archive/ --json > cells.jsonl"


def add_arguments(p: Parser) -> None:
    p.add_argument("paths", nargs="+", help=".abf files or folders (searched recursively)")
    p.add_argument("--json", action="store_true", help="one JSON object per cell per line on stdout")
    p.add_argument("--out", help="also write one CSV row per cell here")
    p.add_argument("--channels", nargs="+", metavar="CH", help="channel indices or names (default: every pA channel)")
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="files classified at once, each in its own process (default 1)")
    p.add_argument("--scheduler", metavar="tcp://HOST:8786",
                   help="classify on a Dask cluster: its scheduler's address (needs raphe[cluster])")
    add_model_options(p)
    add_detector_options(p)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from raphe.core.staged import check_writable
    from raphe.pipelines.offline import classify_paths

    model, posterior = load_model(args)
    if args.out:
        check_writable(args.out)
    on_row = (lambda row: print(json.dumps(row), flush=True)) if args.json else None
    result = classify_paths(args.paths, model, detector_settings(args), posterior, args.channels, on_row,
                            jobs=args.jobs, scheduler=args.scheduler)
    if args.out:
        result.write_csv(args.out)
    if not args.json and result.rows:
        Console().print(result.table())
    if result.interrupted:
        return 130
    if result.failed:
        # unusable input is exit 2 everywhere; 1 says that some files of many failed
        return 2 if not result.rows and not result.skipped else 1
    return 0
