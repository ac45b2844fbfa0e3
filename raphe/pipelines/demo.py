"""`raphe demo`: the main job on the shipped model, with no network and no data from outside.

A simulated rig publishes several synthetic cells of known classes (one channel each, 40 kHz, pA)
in real time on a loopback port; `raphe serve`'s service classifies them live with its table on
the terminal; at the end the decisions are compared with the truth, and a PNG shows each cell's mean
waveform and its posterior over time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from raphe.classifier.runtime.cells import CellState
from raphe.classifier.runtime.model import Model
from raphe.classifier.runtime.posterior import NOT_CLASSIFIABLE, UNDECIDED
from raphe.classifier.synthetic import template as synthetic
from raphe.core.specs import SEED_WINDOW
from raphe.outputs.report import draw_intervals, draw_posteriors, draw_shape
from raphe.outputs.snapshot import LiveView
from raphe.outputs.tables import COMPACT_TABLE
from raphe.outputs.web import WebView
from raphe.outputs.wire import Outputs
from raphe.replay.player import replay
from raphe.replay.recording import Channel, Recording
from raphe.streamer.publisher import Publisher

from .live import Service
from .wiring import ServeOptions, Sinks, subscribe
from .loop import serve

SAMPLE_RATE = SEED_WINDOW.sample_rate_hz  # the seed's recordings: no resampling needed
STREAM = "demo-rig"
# The rig's cells: two typical SER, one atypical (narrow) SER, three NSER.
CAST = ((synthetic.SER, False), (synthetic.SER, True), (synthetic.SER, False),
        (synthetic.NSER, False), (synthetic.NSER, False), (synthetic.NSER, False))


@dataclass(frozen=True)
class Truth:
    cell: synthetic.Cell
    udi_ms: float


def cast_cells(rng: np.random.Generator) -> list[Truth]:
    """Cells of the cast's classes; SER cells firing at least 1 Hz so a minute is enough to decide."""
    cells = []
    for label, atypical in CAST:
        while True:
            cell = synthetic.draw_cell(label, rng)
            if cell.atypical == atypical and (label == synthetic.NSER or cell.rate_hz >= 1.0):
                break
        cells.append(Truth(cell, synthetic.measured_udi_ms(cell)))
    return cells


def simulated_rig(cells: list[Truth], seconds: float, rng: np.random.Generator) -> Recording:
    day = synthetic.draw_day("demo", rng)
    traces = [synthetic.synth_trace(t.cell, day, seconds, SAMPLE_RATE, rng)[0] for t in cells]
    channels = [Channel(i, f"cell{i + 1}", "pA") for i in range(len(cells))]
    return Recording.from_traces(STREAM, SAMPLE_RATE, channels, traces)


def demo(seconds: float = 40.0, seed: int = 7, report: str | Path = "raphe-demo.png",
         model_path: str | None = None, web_address: str | None = None) -> int:
    """Run the demo; exit code 0 when every sample arrived and no decision is wrong ("undecided" is the
    honest answer for a cell whose calibrated posterior has not reached the threshold). With
    ``web_address``, the live browser view is served there too (as `raphe serve --web`)."""
    console = Console()
    model = Model(model_path)
    web = WebView(web_address) if web_address else None
    try:
        return run_demo(console, model, seconds, seed, Path(report), web)
    finally:
        if web is not None:
            web.close()


def run_demo(console: Console, model: Model, seconds: float, seed: int, report: Path, web: WebView | None) -> int:
    rng = np.random.default_rng(seed)
    truths = cast_cells(rng)
    recording = simulated_rig(truths, seconds, rng)
    console.print(f"simulated rig: {len(truths)} cells on stream {STREAM!r}, {SAMPLE_RATE:g} Hz, {seconds:g} s; "
                  f"model {model.path.name} ({'/'.join(model.classes)}, {model.variant})")
    done = threading.Event()
    with Publisher("tcp://127.0.0.1:*", lossless=True) as publisher, \
            Outputs("tcp://127.0.0.1:*", "tcp://127.0.0.1:*") as outputs:
        service = Service(subscribe(publisher.endpoint), model, model.posterior_config(), Sinks(outputs),
                          ServeOptions(keep_history=True))

        def publish() -> None:
            publisher.wait_for_subscribers(1)
            replay(recording, publisher, block_ms=10.0, speed=1.0)
            done.set()

        rig = threading.Thread(target=publish, name="raphe-demo-rig", daemon=True)
        title = f"raphe serve {publisher.endpoint} (simulated rig)"
        if web is not None:
            console.print(f"live view: {web.url} (open it in a browser)")
        rig.start()
        try:
            serve(service, idle_s=1.0, console=console, title=title,
                  web=LiveView(service, web, title) if web is not None else None)
        finally:
            service.close()
        rig.join(timeout=5)
    channels = [service.channels.get((STREAM, i)) for i in range(len(truths))]
    cells = [c.cell if c else None for c in channels]
    states = [c.cell.state(final=True) if c else None for c in channels]
    wrong = summary(console, truths, states)
    write_report(report, truths, cells, states, model)
    console.print(f"report: {report}")
    complete = done.is_set() and service.subscriber.stats.lost_messages == 0
    return 0 if complete and wrong == 0 else 1


def summary(console: Console, truths: list[Truth], states: list[CellState | None]) -> int:
    """Print truth against decision per cell; return how many decisions are wrong."""
    table = Table(title="decisions against the truth", title_justify="left", **COMPACT_TABLE)
    for column in ("cell", "truth", "UDI", "Hz", "spikes", "decision", "at", "s", "posterior", "w/f", ""):
        table.add_column(column, no_wrap=True)
    why = []
    right = wrong = leaning_right = abstained = 0
    for i, (truth, state) in enumerate(zip(truths, states)):
        label = truth.cell.label + ("*" if truth.cell.atypical else "")
        decision = state.decision if state else UNDECIDED  # what the service says, abstentions included
        ok = decision == truth.cell.label
        right += ok
        wrong += bool(state) and state.decided and not ok
        abstained += decision == NOT_CLASSIFIABLE
        leaning_right += bool(state) and decision == UNDECIDED and state.has_evidence and \
            state.classes[int(state.posterior.argmax())] == truth.cell.label
        if state and state.explanation:
            why.append(f"cell{i + 1}: {state.explanation}")
        table.add_row(f"cell{i + 1}", label, f"{truth.udi_ms:.2f}", f"{truth.cell.rate_hz:.1f}",
                      str(state.n_spikes if state else 0), decision,
                      str(state.spikes_to_decision or "-") if state else "-",
                      f"{state.seconds_to_decision:.1f}" if state and state.seconds_to_decision is not None else "-",
                      state.top if state else "-", state.leanings if state else "-",
                      "[green]right[/]" if ok else "[yellow]abstained[/]" if decision in (UNDECIDED, NOT_CLASSIFIABLE)
                      else "[red]wrong[/]")
    table.caption = ("*: atypical SER; UDI in ms; at, s: spikes and recorded seconds to the decision; w/f: where "
                     "the shapes and the firing point" + "".join(f"\n{line}" for line in why))
    table.caption_justify = "left"
    console.print(table)
    undecided = len(truths) - right - wrong - abstained
    console.print(f"{right} of {len(truths)} cells decided rightly, {wrong} wrongly, {undecided} undecided "
                  f"(the most probable class of {leaning_right} of them is right; an undecided cell's posterior "
                  "has not reached the decision threshold, because its spikes are ambiguous to the model)"
                  + (f", {abstained} not classifiable (the reason is below its table)" if abstained else ""),
                  soft_wrap=True)
    return wrong


def write_report(path: Path, truths: list[Truth], cells: list, states: list, model: Model) -> None:
    """Per cell, why it ended as it did (``raphe.outputs.report``'s panels): the mean of the windows
    the posterior took against the class averages, shaded by the saliency of that mean window, and
    the mean of the novel ones; the intervals the firing model read; each evidence stream's
    posterior over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(truths), 3, figsize=(14, 2.4 * len(truths)), squeeze=False)
    for row, (truth, cell, state) in enumerate(zip(truths, cells, states)):
        shape, intervals, post = axes[row]
        label = truth.cell.label + (" atypical" if truth.cell.atypical else "")
        decision = state.decision if state else UNDECIDED
        if cell is not None:
            # the service keeps no windows, only their sums: the mean window stands for them
            mean = cell.mean_window
            draw_shape(shape, cell, np.empty((0, model.n_points), np.float32) if mean is None
                       else mean[np.newaxis].astype(np.float32), model)
            draw_intervals(intervals, cell)
            draw_posteriors(post, cell)
        shape.set_title(f"cell{row + 1}: {label}, UDI {truth.udi_ms:.2f} ms (red: what drove the call)", fontsize=9)
        intervals.set_title("inter-spike intervals (s)", fontsize=9)
        post.set_title(f"P({cell.classes[0] if cell else 'SER'}) per evidence stream - {decision}", fontsize=9)
        intervals.set_xscale("log")
    axes[-1][0].set_xlabel("ms from the threshold crossing")
    axes[-1][1].set_xlabel("s")
    axes[-1][2].set_xlabel("recorded s")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
