"""`raphe keys`: a CURVE key pair for a rig, a raphe service or a client."""

from __future__ import annotations

import argparse
import sys

from .options import Parser

HELP = "Make a CURVE key pair (NAME.key to share, NAME.key_secret to keep) for authenticated sockets."
EXAMPLE = "raphe keys keys/ --name raphe"


def add_arguments(p: Parser) -> None:
    p.add_argument("folder", help="where to write the two files (made if missing)")
    p.add_argument("--name", default="raphe", help="the files' name (default raphe)")


def run(args: argparse.Namespace) -> int:
    from raphe.streamer.security import make_keys

    public, secret = make_keys(args.folder, args.name)
    print(f"wrote {public} (give it to peers) and {secret} (keep it; readable by you alone)", file=sys.stderr)
    return 0
