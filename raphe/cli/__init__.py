"""The `raphe` command: one entry point, one subcommand per job, each in its own module here with
its options beside its handler.

Bad input ends in one line on stderr and exit code 2; an interrupted command exits with 130.
"""

from __future__ import annotations

import logging
import sys

from raphe.core.errors import RapheError

from . import (bench, calibrate, cascade, classify, compare, crossval, demo, detect, distill, evaluate, export, firing_model,
               info, keys, listen, matrix, replay, serve, synth, train)
from .options import Parser, with_config

COMMANDS = (info, replay, listen, detect, serve, classify, bench, synth, train, firing_model, crossval, distill, cascade,
            evaluate, matrix, compare, calibrate, export, keys, demo)


def build_parser() -> Parser:
    from raphe import __version__

    parser = Parser(prog="raphe", description="Real-time identification of serotonergic neurons.")
    parser.add_argument("--version", action="version", version=f"raphe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        name = command.__name__.rsplit(".", 1)[1].replace("_", "-")
        p = sub.add_parser(name, help=command.HELP, description=command.HELP, epilog=f"example: {command.EXAMPLE}")
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv:  # a bare `raphe` asks what it can do
        parser.print_help()
        return 0
    try:
        expanded = with_config(argv)
    except RapheError as exc:
        print(f"raphe {argv[0]}: error: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(expanded)
    args.argv = argv
    logging.basicConfig(level=logging.WARNING, format="raphe: %(message)s")
    try:
        return args.run(args)
    except RapheError as exc:
        print(f"raphe {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
