"""`raphe replay`: publish a recording on the Open Ephys ZMQ protocol, paced."""

from __future__ import annotations

import argparse
import math

from raphe.core.specs import DATA_ENDPOINT

from .options import Parser, add_security_options, curves, positive_float

HELP = "Publish a recording (.abf, AxoGraph, NWB) on the Open Ephys ZMQ protocol, paced."
EXAMPLE = "raphe replay recording.abf --speed 10 --block-ms 2 --channels 0 1"


def speed_value(text: str) -> float:
    if text == "max":
        return math.inf
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"speed must be > 0 or 'max' (got {text})") from None


def add_arguments(p: Parser) -> None:
    p.add_argument("file", help="an ABF1 or ABF2 file, an AxoGraph file (.axgd, .axgx) or an NWB file")
    p.add_argument("--speed", type=speed_value, default=1.0,
                   help="1 = real time (default), N = N times faster, max = as fast as possible")
    p.add_argument("--block-ms", type=positive_float, default=10.0, help="block duration in ms (default 10)")
    p.add_argument("--channels", nargs="+", metavar="CH", help="channel indices or names (default all)")
    p.add_argument("--endpoint", default=DATA_ENDPOINT,
                   help="where to bind the data socket (default %(default)s; heartbeat on port+1)")
    p.add_argument("--loop", action="store_true", help="start again at the end, as a new acquisition")
    p.add_argument("--packed", action="store_true",
                   help="all channels of a block in one packed BLOCK message (raphe's own format: for raphe "
                        "serve, not for Open Ephys clients)")
    add_security_options(p, serving=True, connecting=False)
    p.add_argument("--lossless", action="store_true",
                   help="XPUB with XPUB_NODROP: wait for a subscriber, then never drop (for raphe's consumers)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from raphe.replay.player import replay
    from raphe.replay.recording import Recording
    from raphe.streamer.publisher import Publisher

    from raphe.streamer.security import check_exposure

    rec = Recording(args.file)
    channels = rec.select(args.channels)
    err = Console(stderr=True)
    serving, _ = curves(args)
    warning = check_exposure([args.endpoint], serving, args.insecure)
    if warning:
        err.print(warning, highlight=False, markup=False)
    with Publisher(args.endpoint, lossless=args.lossless, curve=serving) as pub:
        err.print(f"replaying {rec.name} ({len(channels)} channel(s), {rec.sample_rate:g} Hz) on {pub.endpoint}"
                  + (f", heartbeat on {pub.heartbeat_endpoint}" if pub.heartbeat_endpoint else ""))
        if args.lossless:
            err.print("lossless: waiting for a subscriber ...")
            pub.wait_for_subscribers(1)
        progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                            TimeRemainingColumn(), console=err, disable=not err.is_terminal or args.loop)
        with progress:
            task = progress.add_task(rec.name, total=rec.total_samples)
            summary = replay(rec, pub, channels=channels, block_ms=args.block_ms, speed=args.speed,
                             loop=args.loop, on_block=lambda n: progress.advance(task, n), packed=args.packed)
    print(f"sent {summary.messages:,} messages, {summary.samples:,} samples per channel in "
          f"{summary.seconds:.2f} s ({summary.samples_per_s * len(channels):,.0f} samples/s)")
    return 0
