"""The terminal's tables: the live cells of `serve` (and of its workers), the cells `classify`
found, and the per-stage timings a service prints when it stops. Each cell's line is drawn from its
:class:`~raphe.classifier.runtime.cells.CellState`; the tables keep every word whole in an
80-column terminal (no vertical rules, no padding)."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.table import Table

from raphe.classifier.runtime.cells import CellState
from raphe.classifier.runtime.posterior import NOT_CLASSIFIABLE, UNDECIDED

COMPACT_TABLE = {"box": box.SIMPLE_HEAD, "padding": 0, "pad_edge": False}
LEFT = ("cell", "name", "recording", "posterior", "w/f", "decision")


def styled_decision(state: CellState) -> str:
    style = "dim" if state.decision == UNDECIDED else "yellow" if state.decision == NOT_CLASSIFIABLE else "bold green"
    return f"[{style}]{state.decision}[/]"


def cell_row(state: CellState, drops: int) -> list[str]:
    """One cell's line of the live table (plain text and markup)."""
    return [state.cell, state.channel_name, str(state.n_spikes), f"{state.rate_hz:.1f}", state.top, state.leanings,
            styled_decision(state), str(state.spikes_to_decision or "-"), f"{state.n_novel:,}", f"{drops:,}"]


def explained(states: list[CellState]) -> list[str]:
    """Why each unexplained-looking cell is as it is: its reasons (not classifiable) or hints."""
    return [f"{s.cell}: {s.explanation}" for s in states if s.explanation]


def cells_table(states: list[tuple[CellState, int]], counters: dict, spikes: int, seconds: float, title: str,
                evidence: str) -> Table:
    """The live table: one line per cell (its state and its drops, in the order given), the stream's
    counters and the cells' reasons in the caption."""
    table = Table(title=title, title_justify="left", **COMPACT_TABLE)
    for column in ("cell", "name", "spikes", "Hz", "posterior", "w/f", "decision", "at", "novel", "drops"):
        table.add_column(column, no_wrap=True, justify="left" if column in LEFT else "right")
    for state, drops in states:
        table.add_row(*cell_row(state, drops))
    c = counters
    malformed = ", ".join(f"{k} {n}" for k, n in sorted(c["malformed"].items())) or "0"
    dropped = sum(c["outputs_dropped"].values())
    why = explained([s for s, _ in states])
    table.caption = (f"messages {c['messages']:,} · lost {c['lost_messages']:,} · malformed {malformed} · "
                     f"acquisitions {c['acquisitions']} · spikes {spikes:,} · outputs dropped {dropped:,}"
                     + (f" · refused blocks {c['refused_blocks']:,}" if c["refused_blocks"] else "")
                     + (f" · cascade: {c['cascade']['handed_on']:,} of {c['cascade']['windows']:,} windows to the "
                        "ensemble" if c.get("cascade", {}).get("windows") else "")
                     + f" · {seconds:.1f} s · at: spikes to the decision · w/f: where the shapes and the "
                     f"firing point · deciding: {evidence}" + "".join(f"\n{line}" for line in why))
    table.caption_justify = "left"
    return table


def classify_table(rows: list[dict]) -> Table:
    """`raphe classify`'s people's view: one line per cell (rows as `classify --json` prints them),
    the reasons and hints below."""
    table = Table(title="raphe classify", title_justify="left", **COMPACT_TABLE)
    for column in ("recording", "ch", "spikes", "novel", "Hz", "posterior", "w/f", "decision", "at"):
        table.add_column(column, justify="left" if column in LEFT else "right",
                         no_wrap=column != "recording", overflow="fold")
    why = []
    for row in rows:
        state = CellState.from_dict(row)
        name = Path(row["recording"]).name
        table.add_row(name, str(state.channel_num), str(state.n_spikes), str(state.n_novel), f"{state.rate_hz:.2f}",
                      state.top, state.leanings, styled_decision(state), str(state.spikes_to_decision or "-"))
        if state.explanation:
            why.append(f"{name} {state.channel_num}: {state.explanation}")
    if why:
        table.caption = "\n".join(why)
        table.caption_justify = "left"
    return table


def timings_table(summary: dict, title: str = "per-stage time (µs; percentiles to within 6%)") -> Table:
    """The stages' percentiles in µs (a ``StageTimings.summary()``), as printed when a service stops."""
    table = Table(title=title, title_justify="left")
    for column in ("stage", "n", "p50", "p95", "p99", "max"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for stage, s in summary.items():
        if s["n"]:
            table.add_row(stage, f"{s['n']:,}", *(f"{1e6 * s[k]:,.1f}" for k in ("p50_s", "p95_s", "p99_s", "max_s")))
    return table
