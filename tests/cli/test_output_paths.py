"""Issue 23, item 10: every output path is checked before the work, and a failure while writing is
one line with nothing half-written left behind (item 13: nor an empty folder from a refused train)."""

from __future__ import annotations

import numpy as np
import pytest

from raphe.classifier.runtime.windows import WindowSet, save_npz
from raphe.core.errors import RapheError
from raphe.core.staged import check_folder, check_writable, staged
from tests.helpers import assert_one_line_error, run_raphe


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("option", ["--out", "--nwb", "--report-dir"])
def test_classify_refuses_an_unwritable_output_before_the_work(abf_dir, option):
    target = "/proc/raphe-x.csv" if option == "--out" else "/proc/raphe-rx"
    result = run_raphe("classify", abf_dir / "2020_06_16_0000.abf", option, target)
    assert_one_line_error(result, target)


def test_classify_refuses_a_folder_as_its_csv_and_leaves_no_partial(abf_dir, tmp_path):
    result = run_raphe("classify", abf_dir / "2020_06_16_0000.abf", "--out", tmp_path)
    assert_one_line_error(result, "it is a folder")
    assert leftovers(tmp_path) == []


def test_classify_refuses_a_file_as_its_report_folder(abf_dir, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("x")
    assert_one_line_error(run_raphe("classify", abf_dir / "2020_06_16_0000.abf", "--report-dir", taken), "is a file")


@pytest.mark.parametrize("option,target", [("--out", "/proc/raphe-x.csv"), ("--windows", "/proc/raphe-w.npz"),
                                           ("--out", "FOLDER")])
def test_detect_refuses_an_unwritable_output_before_the_work(abf_dir, tmp_path, option, target):
    target = tmp_path if target == "FOLDER" else target
    args = ["--out", tmp_path / "events.csv"] if option == "--windows" else []
    result = run_raphe("detect", abf_dir / "2020_06_16_0000.abf", *args, option, target)
    assert_one_line_error(result, str(target))
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("target", ["/proc/raphe-log.jsonl", "FOLDER"])
def test_serve_refuses_an_unwritable_log_before_it_binds(tmp_path, target):
    target = tmp_path if target == "FOLDER" else target
    result = run_raphe("serve", "--connect", "tcp://127.0.0.1:9", "--posterior-endpoint", "tcp://127.0.0.1:*",
                       "--events-endpoint", "tcp://127.0.0.1:*", "--log", target, "--duration", "1")
    assert_one_line_error(result, str(target))


def test_demo_refuses_an_unwritable_report():
    assert_one_line_error(run_raphe("demo", "--report", "/proc/raphe-demo.png"), "/proc/raphe-demo.png")


def test_the_checks_name_what_is_wrong(tmp_path):
    with pytest.raises(RapheError, match="does not exist"):
        check_writable(tmp_path / "missing" / "x.csv")
    with pytest.raises(RapheError, match="it is a folder"):
        check_writable(tmp_path)
    with pytest.raises(RapheError, match="cannot write /proc/x.csv"):
        check_writable("/proc/x.csv")
    with pytest.raises(RapheError, match="cannot make /proc/rx"):
        check_folder("/proc/rx", "the figures")
    assert check_folder(tmp_path / "made", "the figures").is_dir() and leftovers(tmp_path) == ["made"]
    assert leftovers(tmp_path / "made") == []  # the probe is gone


def test_a_failure_while_writing_is_one_line_and_leaves_nothing(tmp_path):
    """A disk that fills while the file is written (/dev/full): one line naming the file; neither it
    nor its partial is left."""
    with pytest.raises(RapheError, match=r"cannot write .*cells.csv: No space left on device"):
        with staged(tmp_path / "cells.csv") as partial:
            partial.write_text("cell,decision\n")
            with open("/dev/full", "w") as full:
                full.write("x" * 10_000)
                full.flush()
    assert leftovers(tmp_path) == []


def test_train_refused_for_too_few_cells_leaves_no_folder(tmp_path):
    """Item 13: two cells per class cannot be split by cell; the refusal leaves no --out behind."""
    rng = np.random.default_rng(0)
    n = 80
    windows = WindowSet(X=rng.normal(size=(n, 160)).astype(np.float32), y=np.repeat([0, 1], n // 2),
                        classes=("SER", "NSER"), cell=np.repeat(["a", "b", "c", "d"], n // 4),
                        day=np.full(n, "d1"), udi_ms=np.full(n, np.nan))
    save_npz(windows, tmp_path / "w.npz")
    result = run_raphe("train", tmp_path / "w.npz", "--out-dir", tmp_path / "model", timeout=300)
    assert_one_line_error(result, "splitting by cell needs at least 3 per class")
    assert not (tmp_path / "model").exists()
