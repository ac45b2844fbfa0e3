"""Shared by the benchmarks: the recordings they replay, and a closing table of same-run ratios.

Each benchmark records its throughput with :func:`record`; a ratio is only ever formed between two
figures measured in this same run, because these machines are shared and noisy.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import ABF_DIR

RESULTS: dict[str, float] = {}
LATENCY: list[dict] = []
SUSTAINED: dict = {}
# RAPHE_BENCH_QUICK=1: every benchmark short, so that CI runs the suite without it rotting
QUICK = os.environ.get("RAPHE_BENCH_QUICK") == "1"
REPORT_DIR = Path(os.environ.get("RAPHE_BENCH_OUT", Path(__file__).resolve().parents[1] / "build" / "bench"))


def record(benchmark, name: str, amount: float, unit: str) -> None:
    """Store ``amount`` per second of the benchmark's median round under ``name``."""
    rate = amount / benchmark.stats.stats.median
    RESULTS[name] = rate
    benchmark.extra_info[unit] = rate


def record_with_p99(benchmark, name: str, unit: str) -> None:
    """:func:`record` of one item a round, and under ``name (at the 99th percentile round)`` the rate
    of the 99th-percentile round: what a rig's p99 sees."""
    record(benchmark, name, 1, unit)
    RESULTS[f"{name} (at the 99th percentile round)"] = 1.0 / float(np.percentile(benchmark.stats.stats.data, 99))


@pytest.fixture(scope="session")
def recording_path() -> Path:
    path = ABF_DIR / "19114000.abf"  # gap-free, 60 s at 20 kHz: 1.2 M samples
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


def pytest_terminal_summary(terminalreporter):
    if RESULTS or LATENCY or SUSTAINED:
        from benchmarks.report import write as write_report

        summary = write_report(REPORT_DIR, RESULTS, LATENCY, SUSTAINED, QUICK)
        terminalreporter.write_line(f"raphe benchmark report: {summary} (results.json, latency.png beside it)")
    if not RESULTS:
        return
    write = terminalreporter.write_line
    write("")
    write("raphe figures (rates from each benchmark's median round):")
    for name, rate in RESULTS.items():
        write(f"  {name:<44} {rate:>16,.0f} /s")
    for name, rate in RESULTS.items():
        if name.startswith("detector raphe:"):
            setting = name.split(":", 1)[1]
            ref = RESULTS.get(f"detector numpy reference:{setting}")
            copy = RESULTS.get(f"detector memory copy:{setting}")
            if ref and copy:
                write(f"  ratio detector{setting}: x{rate / ref:.2f} numpy reference, x{rate / copy:.3f} memory copy")
    base = RESULTS.get("pyabf read + copy (samples)")
    if base:
        for name, rate in RESULTS.items():
            if name.startswith("replay") and name.endswith("(samples)"):
                write(f"  ratio {name} / pyabf read + copy: {rate / base:.3f}")
    for name, rate in RESULTS.items():
        if name.startswith("inference litert:"):
            kind, variant, threads, batch = name.split(":")[1:]
            predict = RESULTS.get(f"inference keras predict:{kind}:{batch}")
            call = RESULTS.get(f"inference keras call:{kind}:{batch}")
            ratios = [f"x{rate / predict:.1f} keras predict" if predict else "",
                      f"x{rate / call:.1f} keras call" if call else ""]
            write(f"  ratio {kind} {variant} {threads} {batch}: {1e6 / rate:9.1f} us/window, "
                  + ", ".join(r for r in ratios if r))
    plain, guarded = RESULTS.get("classify stage:classify"), RESULTS.get("classify stage:classify + novelty + checks")
    if plain and guarded:
        write(f"  ratio classify stage with novelty and checks / without: x{plain / guarded:.3f} time per spike")
    for kind in ("ensemble", "student"):
        alone, joint = RESULTS.get(f"classify stage:{kind}:waveform"), RESULTS.get(f"classify stage:{kind}:both")
        if alone and joint:
            write(f"  ratio classify stage ({kind}) with firing evidence / waveform alone: x{alone / joint:.3f} time per spike")
    for faster, slower, what in (("archive jobs 2", "archive jobs 1", "classify --jobs 2 / --jobs 1"),
                                 ("archive dask 2 workers", "archive dask 1 worker", "Dask 2 workers / 1 worker"),
                                 ("offline classify (student)", "offline classify", "offline student / ensemble"),
                                 ("offline classify", "offline pyabf read", "offline classify / pyabf read")):
        a, b = RESULTS.get(f"{faster} (recorded seconds)"), RESULTS.get(f"{slower} (recorded seconds)")
        if a and b:
            write(f"  ratio {what}: x{a / b:.2f}")
