"""The `raphe` command: one entry point, one subcommand per job, each in its own module here with
its options beside its handler.

Bad input ends in one line on stderr and exit code 2; an interrupted command exits with 130.
"""

from __future__ import annotations

import logging
import sys

from raphe.core.errors import RapheError

from . import (bench, calibrate, classify, compare, crossval, demo, detect, distill, evaluate, export, firing_model,
               info, keys, listen, matrix, replay, serve, synth, train)
from .options import Parser

COMMANDS = (info, replay, listen, detect, serve, classify, bench, synth, train, firing_model, crossval, distill, evaluate,
            matrix, compare, calibrate, export, keys, demo)


def build_parser() -> Parser:
    parser = Parser(prog="raphe", description="Real-time identification of serotonergic neurons.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        name = command.__name__.rsplit(".", 1)[1].replace("_", "-")
        p = sub.add_parser(name, help=command.HELP, description=command.HELP, epilog=f"example: {command.EXAMPLE}")
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="raphe: %(message)s")
    try:
        return args.run(args)
    except RapheError as exc:
        print(f"raphe {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
