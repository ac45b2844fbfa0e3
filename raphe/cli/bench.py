"""`raphe bench`: the benchmark suite of a source checkout."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from raphe.core.errors import RapheError

from .options import Parser

HELP = "Run the benchmark suite of a source checkout; print and write the report."
EXAMPLE = "raphe bench --quick -k latency"

# pytest-benchmark options of `raphe bench --quick`: one short round each
QUICK_BENCHMARK_OPTIONS = ["--benchmark-min-rounds=1", "--benchmark-max-time=0.05", "--benchmark-warmup=off"]


def add_arguments(p: Parser) -> None:
    p.add_argument("--quick", action="store_true", help="short cases and few rounds (what CI runs)")
    p.add_argument("--out-dir", dest="out", default="build/bench", help="folder for summary.md, results.json, latency.png "
                                                         "(default %(default)s)")
    p.add_argument("-k", dest="select", metavar="EXPR", help="only the benchmarks whose names match (pytest -k)")


def run(args: argparse.Namespace) -> int:
    root = Path(__file__).resolve().parents[2]
    if not (root / "benchmarks" / "conftest.py").is_file():
        raise RapheError(f"raphe bench runs the benchmarks/ of a source checkout; none beside {root}")
    out = Path(args.out).resolve()
    env = {**os.environ, "RAPHE_BENCH_OUT": str(out), "RAPHE_BENCH_QUICK": "1" if args.quick else "0"}
    command = [sys.executable, "-m", "pytest", "benchmarks", "--benchmark-only", "-q"]
    if args.quick:
        command += QUICK_BENCHMARK_OPTIONS
    if args.select:
        command += ["-k", args.select]
    code = subprocess.call(command, cwd=root, env=env)
    if (out / "summary.md").is_file():
        print((out / "summary.md").read_text())
    return 0 if code == 0 else 1
