"""`raphe synth`: labelled synthetic recordings, their manifest and their window set."""

from __future__ import annotations

import argparse
import sys

from raphe.core.specs import SEED_WINDOW

from .options import Parser, fraction, positive_float, positive_int

HELP = "Generate labelled synthetic SER/NSER recordings (ABF), a manifest and a window set."
EXAMPLE = "raphe synth --cells 40 --days 4 --seed 1 --out-dir synthetic/"


def add_arguments(p: Parser) -> None:
    p.add_argument("--cells", type=positive_int, required=True, help="number of cells")
    p.add_argument("--days", type=positive_int, default=1, help="recording days, each with its own rig noise (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed; also names the days (default 0)")
    p.add_argument("--out-dir", dest="out", required=True, help="a new or empty folder")
    p.add_argument("--rate", type=positive_float, default=SEED_WINDOW.sample_rate_hz,
                   help="sample rate in Hz (default %(default)g)")
    p.add_argument("--duration", type=positive_float, default=60.0, help="seconds per recording (default 60)")
    p.add_argument("--ser-fraction", type=fraction, default=0.5, help="share of SER cells (default 0.5)")
    p.add_argument("--noise-from", nargs="+", metavar="ABF",
                   help="recordings whose spike-free current stretches replace the synthetic baseline noise")
    p.add_argument("--no-abf", action="store_true", help="write only the manifest and the window set")
    p.add_argument("--generator", choices=["template", "biophysical", "compartmental"], default="template",
                   help="template: parametric spike templates; biophysical: action currents from simulated "
                        "membrane dynamics and a patch model; compartmental: a soma-axon-dendrite conductance "
                        "model's patch current, written apart from the other two (default %(default)s)")
    p.add_argument("--rates", type=positive_float, nargs="+", metavar="HZ",
                   help="each recording day draws its sample rate from these (default: --rate for every day)")
    p.add_argument("--firing", choices=["varied", "classic"], default="varied",
                   help="varied: the textbook's firing with its exceptions (slow regular NSER, bursting and "
                        "irregular SER cells, rate drift, missed and extra detections; docs/synthetic-data.md \"Synthetic "
                        "firing\"); classic: without them, as earlier versions (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    from raphe.classifier.synthetic.dataset import synthesize

    summary = synthesize(args.out, cells=args.cells, days=args.days, seed=args.seed, sample_rate=args.rate,
                         duration_s=args.duration, ser_fraction=args.ser_fraction, write_abf=not args.no_abf,
                         noise_from=args.noise_from, generator=args.generator, rates=tuple(args.rates or ()),
                         firing=args.firing)
    counts = ", ".join(f"{c} {n}" for c, n in summary.per_class.items())
    print(f"{summary.cells} {args.generator} cells over {args.days} day(s): {summary.windows} windows ({counts}), "
          f"{summary.abf_files} ABF files, manifest.csv and windows.npz in {args.out}", file=sys.stderr)
    return 0
