"""The benchmark report: results.json, summary.md and latency.png, written at the end of a run."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def ms(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def stage_p50_us(result: dict) -> str:
    timings = result.get("timings") or {}
    return " / ".join(f"{1e6 * timings[s]['p50_s']:.0f}" if timings.get(s, {}).get("n") else "-"
                      for s in ("receive", "detect", "classify", "publish"))


def per_spike_us(result: dict, stage: str) -> float:
    """A stage's total time over the run, per spike classified, in µs."""
    t = result["timings"].get(stage) or {}
    return 1e6 * (t.get("mean_s") or 0.0) * t.get("n", 0) / result["spikes"]


def markdown(results: dict[str, float], latency: list[dict], sustained: dict, quick: bool) -> str:
    lines = [f"# raphe benchmarks, {datetime.date.today().isoformat()}{' (quick mode)' if quick else ''}", "",
             f"Machine: {machine()}. Every ratio is between figures of this same run.", ""]
    if latency:
        lines += ["## End-to-end latency (DATA message sent → POSTERIOR received), ms", "",
                  "| case | served by | posteriors | p50 | p95 | p99 | max | stage p50 µs (receive / detect / "
                  "classify / publish) | rig pace | lost |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in latency:
            lines.append(f"| {r['label']} | {'echo (ZeroMQ round trip)' if r['baseline'] else 'raphe'} | "
                         f"{r['posteriors']} | {ms(r.get('p50_ms'))} | {ms(r.get('p95_ms'))} | {ms(r.get('p99_ms'))} | "
                         f"{ms(r.get('max_ms'))} | {stage_p50_us(r)} | {r['rig_real_time']:.2f}× | "
                         f"{r.get('lost_messages', '-')} |")
        lines += ["", "Rig pace: wall time the rig took over the recorded time it sent (1.00× = it kept real "
                  "time; above, the rig itself could not send that many messages that fast).", ""]
        extras = {"flood_samples": 0, "web": False, "lsl": False, "workers": 1, "threads": 1}
        for r in latency:
            plain = [c for c in latency if c["case"] == {**r["case"], **extras} and not c["baseline"]]
            added = [k for k, v in extras.items() if r["case"].get(k, v) != v]
            if added and plain and r.get("p50_ms") and plain[0].get("p50_ms"):
                stage = {s: r["timings"][s]["mean_s"] / plain[0]["timings"][s]["mean_s"]
                         for s in ("publish",) if r.get("timings", {}).get(s, {}).get("n")
                         and plain[0].get("timings", {}).get(s, {}).get("n")}
                lines += [f"{r['label']}: p50 ×{r['p50_ms'] / plain[0]['p50_ms']:.2f}, "
                          f"p99 ×{r['p99_ms'] / plain[0]['p99_ms']:.2f} of the plain case (the same channels without it)"
                          + "".join(f", mean {s} stage ×{v:.2f}" for s, v in stage.items())
                          + (f"; {r['snapshots']} snapshots of {r['snapshot_ms']:.2f} ms" if "snapshots" in r else "")
                          + ".", ""]
    breakdown = [r for r in latency if not r["baseline"] and r.get("spikes") and (r.get("timings") or {}).get("cells")]
    if breakdown:
        lines += ["## A spike's cost, part by part (µs per spike, from the service's own stage timings)", "",
                  "| case | spikes | interpreter | novelty | cells | publish | beyond the interpreter |",
                  "|---|---|---|---|---|---|---|"]
        for r in breakdown:
            per_spike = {s: per_spike_us(r, s) for s in ("interpreter", "novelty", "cells", "publish")}
            beyond = per_spike["novelty"] + per_spike["cells"] + per_spike["publish"]
            lines.append(f"| {r['label']} | {r['spikes']} | " + " | ".join(f"{v:.0f}" for v in per_spike.values())
                         + f" | {beyond:.0f} ({100 * beyond / max(beyond + per_spike['interpreter'], 1e-9):.0f}%) |")
        lines += ["", "Per spike: each stage's total time over the run divided by the spikes it classified "
                  "(one interpreter call serves every spike of a drain).", ""]
    for label, found in sustained.items():
        lines += [f"## Sustained in real time ({label}; 10 ms blocks, 2 Hz): {found['channels']} channels", "",
                  "| channels | sustained | rig pace | lost | served / sent | p50 ms | p99 ms |",
                  "|---|---|---|---|---|---|---|"]
        for t in found["trials"]:
            lines.append(f"| {t['channels']} | {'yes' if t['sustained'] else 'no'} | {t['rig_real_time']:.2f}× | "
                         f"{t['lost_messages']} | {t['messages']} / {t['messages_sent']} | {ms(t.get('p50_ms'))} | "
                         f"{ms(t.get('p99_ms'))} |")
        lines.append("")
    if results:
        lines += ["## Throughput (per second of the median round)", "", "| what | per second |", "|---|---|"]
        lines += [f"| {name} | {rate:,.1f} |" for name, rate in results.items()]
        lines.append("")
    return "\n".join(lines)


def latency_png(path: Path, latency: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in latency if r["latency_ms"]]
    if not shown:
        return
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(shown) + 1.5))
    ax.boxplot([r["latency_ms"] for r in shown], orientation="horizontal", whis=(1, 99), showfliers=False)
    ax.set_yticks(range(1, len(shown) + 1),
                  [f"{r['label']}{' (echo)' if r['baseline'] else ''}" for r in shown], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("ms from DATA sent to POSTERIOR received (box: quartiles, whiskers: 1st-99th percentile)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write(out: Path, results: dict[str, float], latency: list[dict], sustained: dict, quick: bool) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    summary = [{k: v for k, v in r.items() if k != "latency_ms"} for r in latency]
    (out / "results.json").write_text(json.dumps({"machine": machine(), "quick": quick, "throughput": results,
                                                  "latency": summary, "sustained": sustained}, indent=2) + "\n")
    (out / "summary.md").write_text(markdown(results, latency, sustained, quick))
    latency_png(out / "latency.png", latency)
    return out / "summary.md"

