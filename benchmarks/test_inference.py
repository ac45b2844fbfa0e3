"""Classifier inference: LiteRT (float32, dynamic-range, int8; one member and the fused ensemble; 1 and
2 threads) against the seed's way of inferring with Keras, in the same run.

The ensemble is the shipped default model. The single member (k = 20) and the Keras baselines have
the same architecture with freshly initialised weights: weights do not change the time a forward
pass takes. The seed's consensus ran one ``model.predict`` per member and averaged the outputs.
"""

from __future__ import annotations

import dataclasses

import os

import numpy as np
import pytest

from raphe.classifier.runtime.model import DEFAULT_DIR, Model
from raphe.core.specs import MODEL_FORMAT, SEED_WINDOW

from .conftest import QUICK, record, record_with_p99

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
QUICK_ROUNDS = 50
keras = pytest.importorskip("keras")

KERNELS = tuple(range(20, 31))
VARIANTS = ("float32", "dynamic", "int8")


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    return np.random.default_rng(0).normal(0.0, 30.0, (64, 160)).astype(np.float32)


@pytest.fixture(scope="module")
def keras_members():
    from raphe.classifier.training.network import seed_model

    return [seed_model(k, 2) for k in KERNELS]


@pytest.fixture(scope="module")
def single_models(tmp_path_factory, keras_members, windows):
    """The k = 20 member alone, exported like the ensemble."""
    from raphe.classifier.training import export
    from raphe.classifier.training.network import fused_ensemble

    out = tmp_path_factory.mktemp("single")
    single = fused_ensemble(keras_members[:1], 1.0)
    paths = {}
    for variant in VARIANTS:
        meta = {"format": MODEL_FORMAT, "classes": ["SER", "NSER"], "variant": variant, "window": SEED_WINDOW.to_json()}
        paths[variant] = export.write_model(out / f"single-{variant}.tflite",
                                            export.convert(single, variant, windows), meta)
    return paths


def model_path(kind: str, variant: str, single_models) -> str:
    return single_models[variant] if kind == "single" else DEFAULT_DIR / f"raphe-default-{variant}.tflite"


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", ["single", "ensemble"])
def test_litert_one_window(benchmark, kind, variant, threads, single_models, windows):
    model = Model(model_path(kind, variant, single_models), num_threads=threads)
    benchmark(model.predict_one, windows[0])
    record(benchmark, f"inference litert:{kind}:{variant}:t{threads}:b1", 1, "windows/s")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", ["single", "ensemble"])
def test_litert_batch_64(benchmark, kind, variant, threads, single_models, windows):
    model = Model(model_path(kind, variant, single_models), num_threads=threads)
    benchmark(model.predict, windows)
    record(benchmark, f"inference litert:{kind}:{variant}:t{threads}:b64", 64, "windows/s")


@pytest.mark.parametrize("kind", ["single", "ensemble"])
def test_keras_predict_one_window(benchmark, kind, keras_members, windows):
    """The seed's way: ``model.predict`` on one window, once per member of the consensus."""
    members = keras_members[:1] if kind == "single" else keras_members
    x = windows[:1, :, np.newaxis]
    benchmark(lambda: np.mean([m.predict(x, verbose=0) for m in members], axis=0))
    record(benchmark, f"inference keras predict:{kind}:b1", 1, "windows/s")


@pytest.mark.parametrize("kind", ["single", "ensemble"])
def test_keras_call_one_window(benchmark, kind, keras_members, windows):
    """A direct ``model(x)`` call, the faster way to run Keras on one window."""
    members = keras_members[:1] if kind == "single" else keras_members
    x = windows[:1, :, np.newaxis]
    benchmark(lambda: np.mean([np.asarray(m(x, training=False)) for m in members], axis=0))
    record(benchmark, f"inference keras call:{kind}:b1", 1, "windows/s")


@pytest.mark.parametrize("kind", ["single", "ensemble"])
def test_keras_predict_batch_64(benchmark, kind, keras_members, windows):
    members = keras_members[:1] if kind == "single" else keras_members
    x = windows[:, :, np.newaxis]
    benchmark(lambda: np.mean([m.predict(x, batch_size=64, verbose=0) for m in members], axis=0))
    record(benchmark, f"inference keras predict:{kind}:b64", 64, "windows/s")


@pytest.mark.parametrize("what", ["classify", "classify + novelty + checks"])
def test_classify_stage_with_novelty_and_checks(benchmark, what, windows):
    """One spike's work in the service's classify stage with the shipped model: the interpreter call
    and the cell update, with and without the novelty score and the signal checks of its block
    (10 ms at 40 kHz; the sums they need come from the detector's own pass), so the ratio of the two
    is what abstention costs the live path."""
    from raphe.classifier.runtime.cells import Cell
    from raphe.detector.config import DetectorConfig
    from raphe.detector.plausibility import SignalChecks

    model = Model()
    assert model.novelty is not None, "the shipped model carries a novelty summary"
    cell = Cell("bench", 0, "A", 40_000.0, model.classes, model.posterior_config())
    from raphe.detector.online import Detector

    checks = SignalChecks(40_000.0, DetectorConfig(), ["pA"])
    detector = Detector(1, 40_000.0, DetectorConfig())
    detector.process(np.random.default_rng(1).normal(0.0, 5.0, (1, 400)).astype(np.float32), 0)
    stats, row = detector.row_stats.copy(), np.array([0])
    window = windows[:1]
    position = [0]

    def plain():
        cell.add_spike(0, model.predict_one(window[0]), window[0])

    def guarded():
        checks.add_block(stats, row, np.array([position[0]]), 400)  # a continuous stream, block after block
        checks.add_events(0, np.array([position[0] + 100]))
        position[0] += 400
        cell.signal_reasons = checks.reasons(0)
        novel = bool(model.novel(window)[0])
        cell.add_spike(0, model.predict_one(window[0]), window[0], novel)

    # fixed rounds for both, so that the ratio compares like with like
    benchmark.pedantic(plain if what == "classify" else guarded, rounds=QUICK_ROUNDS if QUICK else 2000,
                       warmup_rounds=20, iterations=1)
    record(benchmark, f"classify stage:{what}", 1, "spikes/s")


@pytest.mark.parametrize("model_name", ["ensemble", "student"])
@pytest.mark.parametrize("evidence", ["waveform", "both"])
def test_classify_stage_with_firing_evidence(benchmark, model_name, evidence, windows):
    """One spike's work in the classify stage (the interpreter call and the cell update) with the
    waveform evidence alone and with the joint posterior, whose firing model reads the cell's last
    256 intervals at every spike: their ratio is what the firing evidence costs the live path."""
    from raphe.classifier.runtime.cells import Cell

    model = Model(model_name)
    assert model.firing is not None, "the shipped model carries a firing model"
    config = model.posterior_config(evidence=evidence)
    if evidence == "waveform":  # no firing part computed at all: the path as it was without one
        config = dataclasses.replace(config, firing=None)
    cell = Cell("bench", 0, "A", 40_000.0, model.classes, config)
    window = windows[0]
    rng = np.random.default_rng(3)
    gaps = rng.integers(4_000, 40_000, 10_000)  # 1-10 Hz at 40 kHz: the window is always full
    position = [0]

    def spike():
        position[0] += int(gaps[position[0] % len(gaps)])
        cell.add_spike(position[0], model.predict_one(window), window)

    for _ in range(300):
        spike()
    benchmark.pedantic(spike, rounds=QUICK_ROUNDS if QUICK else 3000, warmup_rounds=20, iterations=1)
    record(benchmark, f"classify stage:{model_name}:{evidence}", 1, "spikes/s")


@pytest.mark.parametrize("pause_ms", [0, 50, 500])
def test_one_window_after_a_pause(benchmark, pause_ms, windows):
    """One window through the shipped ensemble after the process did nothing for ``pause_ms`` (the
    pause is not timed): at a rig firing at 2 Hz every spike comes after such a pause, and on some
    machines (virtual ones above all) memory left alone that long is far slower to reach again."""
    import time

    model = Model()
    window = windows[:1]
    for _ in range(20):
        model.predict(window)
    benchmark.pedantic(model.predict, args=(window,), setup=lambda: time.sleep(pause_ms / 1000),
                       rounds=10 if QUICK else 30)
    record(benchmark, f"inference ensemble after a pause of {pause_ms} ms", 1, "windows/s")


@pytest.mark.parametrize("pause_ms", [0, 50])
@pytest.mark.parametrize("call", ["bare interpreter", "student", "cascade"])
def test_one_window_beyond_the_interpreter(benchmark, call, pause_ms):
    """One window the student is sure of, through the bare interpreter of the shipped student (its
    tensors' indices found beforehand: ``set_tensor``, ``invoke``, ``get_tensor``), through
    ``Model.predict`` of the same student, and through the shipped cascade (the student and its
    rule for handing a window on), back to back and after 50 ms asleep, in the same run: what a
    service's call costs beyond the interpreter's own, at a slow cell's spike above all."""
    import time

    from benchmarks.test_bookkeeping import spike_windows
    from raphe.classifier.runtime.cascade import unsure
    from raphe.classifier.runtime.serving import load

    cascade = load("cascade")
    student = cascade.student
    window = spike_windows(student, 1)
    assert not unsure(student.predict(window), cascade.margin).any()  # the ensemble is not part of this cost
    interpreter = student._sized[1].interpreter
    index_in, index_out = (interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"])

    def bare() -> np.ndarray:
        interpreter.set_tensor(index_in, window)
        interpreter.invoke()
        return interpreter.get_tensor(index_out)

    once = {"bare interpreter": bare, "student": lambda: student.predict(window),
            "cascade": lambda: cascade.predict(window)}[call]
    for _ in range(50):
        once()
    setup = (lambda: time.sleep(pause_ms / 1000)) if pause_ms else None
    benchmark.pedantic(once, setup=setup, rounds=10 if QUICK else (3000 if setup is None else 200), iterations=1)
    record_with_p99(benchmark, f"one window through the {call}, "
                               + ("back to back" if setup is None else f"after {pause_ms} ms asleep"), "windows/s")


@pytest.mark.parametrize("xnnpack", [True, False])
@pytest.mark.parametrize("model_name", ["ensemble", "student"])
def test_one_window_with_and_without_xnnpack(benchmark, model_name, xnnpack, windows):
    """One window through the shipped ensemble and its student with LiteRT's default XNNPACK delegate
    (what raphe runs) and with the built-in kernels alone, judged by the median and by the 99th
    percentile of many rounds (what a rig's p99 sees)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from raphe.classifier.runtime.model import SHIPPED

    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(model_path=str(SHIPPED[model_name]), num_threads=1,
                              experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    window = windows[:1]

    def once() -> None:
        interpreter.set_tensor(index, window)
        interpreter.invoke()

    benchmark.pedantic(once, rounds=QUICK_ROUNDS if QUICK else 3000, warmup_rounds=50, iterations=1)
    label = f"inference {model_name}, {'XNNPACK' if xnnpack else 'built-in kernels only'}"
    record_with_p99(benchmark, label, "windows/s")
