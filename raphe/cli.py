"""The `raphe` command: one entry point, one subcommand per job.

Bad input ends in one line on stderr and exit code 2; an interrupted command exits with 130.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys

from rich.console import Console

from raphe.errors import RapheError

EXAMPLES = {
    "info": "raphe info recording.abf",
    "replay": "raphe replay recording.abf --speed 10 --block-ms 2 --channels 0 1",
    "listen": "raphe listen --connect tcp://127.0.0.1:5556",
    "demo": "raphe demo",
    "detect": "raphe detect recording.abf --adaptive 5 --out spikes.csv --windows windows.npz",
}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage block followed by the error."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def speed_value(text: str) -> float:
    if text == "max":
        return math.inf
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"speed must be > 0 or 'max' (got {text})") from None


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number (got {text!r})") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a number > 0 (got {text})")
    return value


def build_parser() -> Parser:
    parser = Parser(prog="raphe", description="Real-time identification of serotonergic neurons.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def command(name: str, help_text: str) -> Parser:
        return sub.add_parser(name, help=help_text, description=help_text,
                              epilog=f"example: {EXAMPLES[name]}")

    p = command("info", "Show what an .abf recording holds.")
    p.add_argument("file", help="an ABF1 or ABF2 file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(run=run_info)

    p = command("replay", "Publish an .abf recording on the Open Ephys ZMQ protocol, paced.")
    p.add_argument("file", help="an ABF1 or ABF2 file")
    p.add_argument("--speed", type=speed_value, default=1.0,
                   help="1 = real time (default), N = N times faster, max = as fast as possible")
    p.add_argument("--block-ms", type=positive_float, default=10.0, help="block duration in ms (default 10)")
    p.add_argument("--channels", nargs="+", metavar="CH", help="channel indices or names (default all)")
    p.add_argument("--endpoint", default="tcp://127.0.0.1:5556",
                   help="where to bind the data socket (default tcp://127.0.0.1:5556; heartbeat on port+1)")
    p.add_argument("--loop", action="store_true", help="start again at the end, as a new acquisition")
    p.add_argument("--lossless", action="store_true",
                   help="XPUB with XPUB_NODROP: wait for a subscriber, then never drop (for raphe's consumers)")
    p.set_defaults(run=run_replay)

    p = command("listen", "Live per-channel table of a ZMQ data stream (the rig-side diagnostic).")
    p.add_argument("--connect", default="tcp://127.0.0.1:5556", help="publisher endpoint (default %(default)s)")
    p.add_argument("--duration", type=positive_float, help="stop after this many seconds (default: Ctrl-C)")
    p.add_argument("--idle", type=positive_float, help="stop when data stops for this many seconds")
    p.add_argument("--units", help="units of channels whose header has none (Open Ephys sends µV or V)")
    p.add_argument("--scale", type=float, default=1.0, help="factor for samples of such channels (default 1)")
    p.add_argument("--json", action="store_true", help="print the final counters as one JSON object")
    p.set_defaults(run=run_listen)

    p = command("detect", "Detect spikes in an .abf recording; write a CSV of events and their windows.")
    p.add_argument("file", help="an ABF1 or ABF2 file")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--threshold", type=float, default=-50.0,
                     help="absolute threshold in the recording's units (default -50, the seed's -50 pA)")
    how.add_argument("--adaptive", type=positive_float, metavar="K",
                     help="threshold at K x robust noise (MAD / 0.6745) from the running median instead")
    p.add_argument("--polarity", choices=["neg", "pos", "both"], default="neg", help="crossing direction (default neg)")
    p.add_argument("--refractory-ms", type=float, default=2.0, help="minimum time between events (default 2)")
    p.add_argument("--channels", nargs="+", metavar="CH", help="channel indices or names (default all)")
    p.add_argument("--out", required=True, help="CSV of events to write")
    p.add_argument("--windows", help="also write the 160-point windows to this .npz")
    p.set_defaults(run=run_detect)

    p = command("demo", "Generate a recording, replay it in real time and watch it with listen.")
    p.add_argument("--seconds", type=positive_float, default=15.0, help="length of the recording (default 15)")
    p.add_argument("--seed", type=int, default=1, help="random seed of the synthetic cells (default 1)")
    p.set_defaults(run=run_demo)
    return parser


def run_info(args: argparse.Namespace) -> int:
    from raphe.replay import Recording

    rec = Recording(args.file)
    description = {
        "file": str(rec.path),
        "abf_version": rec.abf_version,
        "mode": rec.mode,
        "sample_rate_hz": rec.sample_rate,
        "channels": [{"num": c.num, "name": c.name, "units": c.units} for c in rec.channels],
        "sweeps": len(rec.sweeps),
        "samples_per_channel": rec.total_samples,
        "recorded_s": rec.recorded_s,
        "sweep_start_samples": [s.sample_num for s in rec.sweeps],
        "sweep_lengths": [s.num_samples for s in rec.sweeps],
    }
    if args.json:
        print(json.dumps(description))
        return 0
    console = Console()
    console.print(f"[bold]{rec.path.name}[/]  ABF {rec.abf_version}, {rec.mode}, {rec.sample_rate:g} Hz")
    for c in rec.channels:
        console.print(f"  channel {c.num}: {c.name} ({c.units})")
    lengths = sorted({s.num_samples for s in rec.sweeps})
    console.print(f"  {len(rec.sweeps)} sweep(s) of {', '.join(map(str, lengths))} samples; "
                  f"{rec.recorded_s:.3f} s recorded over a span of {rec.span_samples / rec.sample_rate:.3f} s")
    if len(rec.sweeps) > 1:
        starts = ", ".join(f"{s.sample_num / rec.sample_rate:g}" for s in rec.sweeps[:8])
        more = ", ..." if len(rec.sweeps) > 8 else ""
        console.print(f"  sweep starts (s): {starts}{more}")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from raphe.replay import Recording, replay
    from raphe.streamer import Publisher

    rec = Recording(args.file)
    channels = rec.select(args.channels)
    err = Console(stderr=True)
    with Publisher(args.endpoint, lossless=args.lossless) as pub:
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
                             loop=args.loop, on_block=lambda n: progress.advance(task, n))
    print(f"sent {summary.messages:,} messages, {summary.samples:,} samples per channel in "
          f"{summary.seconds:.2f} s ({summary.samples_per_s * len(channels):,.0f} samples/s)")
    return 0


def run_listen(args: argparse.Namespace) -> int:
    from raphe.listen import listen

    result = listen(args.connect, duration_s=args.duration, idle_s=args.idle, units=args.units,
                    scale=args.scale, console=Console(stderr=args.json))
    if args.json:
        s = result.stats
        print(json.dumps({
            "seconds": result.seconds, "messages": s.messages, "lost_messages": s.lost_messages,
            "acquisitions": s.acquisitions, "events": s.events, "malformed": dict(s.malformed),
            "channels": [{"stream": c.stream, "channel_num": c.channel_num, "channel_name": c.channel_name,
                          "units": c.units, "sample_rate": c.sample_rate, "samples": c.samples,
                          "blocks": c.blocks, "gaps": c.gaps, "lost_samples": c.lost_samples}
                         for c in s.channels.values()],
        }))
    return 0


def run_detect(args: argparse.Namespace) -> int:
    from raphe.detector import DetectorConfig
    from raphe.replay import Recording
    from raphe.replay.offline import detect_recording
    from raphe.spikes_io import check_writable, write_events_csv, write_windows_npz

    for path in filter(None, (args.out, args.windows)):
        check_writable(path)
    config = DetectorConfig(threshold=args.threshold, adaptive_k=args.adaptive, polarity=args.polarity,
                            refractory_ms=args.refractory_ms)
    rec = Recording(args.file)
    channels = rec.select(args.channels)
    events, detector = detect_recording(rec, channels, config)
    write_events_csv(args.out, events, channels, rec.sample_rate)
    if args.windows:
        write_windows_npz(args.windows, events, channels, rec.sample_rate, config)
    dropped = ", ".join(f"{n} {why}" for why, n in detector.dropped().items())
    print(f"{rec.name}: {len(events)} spikes on {len(channels)} channel(s) written to {args.out} "
          f"(not emitted: {dropped}; still pending at the end: {detector.pending})", file=sys.stderr)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from raphe.demo import demo

    return demo(seconds=args.seconds, seed=args.seed)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="raphe: %(message)s")
    try:
        return args.run(args)
    except RapheError as exc:
        print(f"raphe {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
