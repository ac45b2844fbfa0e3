"""Window sets: .npz and the seed's per-spike CSV folders, both ways, and what is refused."""

from __future__ import annotations

import numpy as np
import pytest

from raphe.classifier.runtime import windows
from raphe.core.errors import RapheError

from tests.helpers import assert_one_line_error, run_raphe


def sample_set(n_cells=4, per_cell=3, classes=("SER", "NSER")) -> windows.WindowSet:
    rng = np.random.default_rng(0)
    labels, cells, days = [], [], []
    for c in range(n_cells):
        day = f"A1310{c % 2:02d}"
        labels += [classes[c % len(classes)]] * per_cell
        cells += [f"{day}#{c:03d}"] * per_cell
        days += [day] * per_cell
    X = rng.normal(0, 30, (len(labels), 160)).astype(np.float32)
    return windows.make(X, labels, cells, days, np.linspace(0.3, 2.0, len(labels)), classes)


def write_spike(path, rows=160, value="1.5", header="time,current"):
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "\n".join(f"{i * 0.000025:.6f},{value}" for i in range(rows))
    path.write_text(f"{header}\n{body}\n")


def test_npz_round_trip_is_exact(tmp_path):
    original = sample_set()
    windows.save_npz(original, tmp_path / "w.npz")
    loaded = windows.load(tmp_path / "w.npz")
    np.testing.assert_array_equal(loaded.X, original.X)
    np.testing.assert_array_equal(loaded.y, original.y)
    assert loaded.classes == original.classes
    np.testing.assert_array_equal(loaded.cell, original.cell)
    np.testing.assert_array_equal(loaded.day, original.day)
    np.testing.assert_array_equal(loaded.udi_ms, original.udi_ms)


def test_csv_round_trip_through_the_cli(tmp_path):
    original = sample_set()
    windows.save_npz(original, tmp_path / "w.npz")
    assert run_raphe("export", tmp_path / "w.npz", tmp_path / "csv").returncode == 0
    files = sorted((tmp_path / "csv").rglob("*.csv"))
    assert len(files) == len(original)
    lines = files[0].read_text().splitlines()
    assert lines[0] == "time,current" and len(lines) == 161
    assert lines[1].startswith("0.000000,") and lines[-1].startswith("0.003975,")  # the seed's time column
    assert run_raphe("export", tmp_path / "csv", tmp_path / "back.npz").returncode == 0
    back = windows.load(tmp_path / "back.npz")
    order = np.lexsort((original.X[:, 0], original.cell))
    back_order = np.lexsort((back.X[:, 0], back.cell))
    np.testing.assert_allclose(back.X[back_order], original.X[order], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(back.cell[back_order], original.cell[order])
    np.testing.assert_array_equal(back.day[back_order], original.day[order])  # A131000#001 -> day A131000
    assert [back.classes[i] for i in back.y[back_order]] == [original.classes[i] for i in original.y[order]]


def test_flat_class_folders_group_files_by_cell_name(tmp_path):
    for cls in ("SER", "NSER"):
        for cell in ("A140313#008", "A140313#010"):
            for k in range(2):
                write_spike(tmp_path / cls / f"{cell}_{k:04d}.csv")
    data = windows.load(tmp_path)
    assert sorted(set(data.cell)) == ["A140313#008", "A140313#010"]
    assert set(data.day) == {"A140313"} and data.classes == ("NSER", "SER")


def test_semicolon_and_tab_separated_files_are_read(tmp_path):
    write_spike(tmp_path / "SER" / "c1" / "a.csv", header="t;i", value="2.0")
    (tmp_path / "SER" / "c1" / "a.csv").write_text((tmp_path / "SER" / "c1" / "a.csv").read_text().replace(",", ";"))
    write_spike(tmp_path / "NSER" / "c2" / "b.csv", header="t\ti", value="3.0")
    (tmp_path / "NSER" / "c2" / "b.csv").write_text((tmp_path / "NSER" / "c2" / "b.csv").read_text().replace(",", "\t"))
    data = windows.load(tmp_path)
    assert sorted(data.X[:, 0].tolist()) == [2.0, 3.0]


@pytest.mark.parametrize("case, fragment", [
    ("short", "must have 160 rows"),
    ("text", "non-numeric"),
    ("nan", "NaN"),
    ("one_column", "expected two columns"),
    ("empty_class", "holds no .csv"),
    ("single_class", "at least 2 classes"),
    ("no_classes", "no class folders"),
])
def test_bad_csv_folders_give_one_line_and_exit_2(tmp_path, case, fragment):
    root = tmp_path / "data"
    write_spike(root / "SER" / "c1" / "ok.csv")
    if case != "single_class":
        write_spike(root / "NSER" / "c2" / "ok.csv")
    bad = root / "NSER" / "c2" / "bad.csv"
    if case == "short":
        write_spike(bad, rows=159)
    elif case == "text":
        write_spike(bad, value="abc")
    elif case == "nan":
        write_spike(bad, value="nan")
    elif case == "one_column":
        bad.write_text("current\n" + "1.0\n" * 160)
    elif case == "empty_class":
        (root / "OTHER").mkdir()
    elif case == "no_classes":
        root = tmp_path / "nothing"
        root.mkdir()
    result = run_raphe("export", root, tmp_path / "out.npz")
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "out.npz").exists()


def test_bad_npz_files_give_one_line_and_exit_2(tmp_path):
    np.savez(tmp_path / "nolabels.npz", X=np.zeros((3, 160), np.float32))
    assert_one_line_error(run_raphe("export", tmp_path / "nolabels.npz", tmp_path / "o.npz"), "missing y, cell, day")
    good = sample_set()
    np.savez(tmp_path / "short.npz", X=good.X[:, :100], y=good.y, cell=good.cell, day=good.day)
    assert_one_line_error(run_raphe("export", tmp_path / "short.npz", tmp_path / "o.npz"), "160 points")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    assert_one_line_error(run_raphe("export", tmp_path / "junk.npz", tmp_path / "o.npz"), "not a readable")


def test_export_refuses_a_non_empty_folder(tmp_path):
    windows.save_npz(sample_set(), tmp_path / "w.npz")
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "mine.txt").write_text("keep")
    assert_one_line_error(run_raphe("export", tmp_path / "w.npz", tmp_path / "csv"), "not empty")
    assert (tmp_path / "csv" / "mine.txt").read_text() == "keep"


def test_window_set_checks_its_arrays():
    with pytest.raises(RapheError, match="160 points"):
        windows.make(np.zeros((2, 150)), ["SER", "NSER"], ["a", "b"], ["d", "d"])
    with pytest.raises(RapheError, match="not among the classes"):
        windows.make(np.zeros((1, 160)), ["FSI"], ["a"], ["d"], classes=("SER", "NSER"))
    merged = windows.concatenate([sample_set(classes=("SER", "NSER")), sample_set(classes=("NSER", "FSI"))])
    assert merged.classes == ("SER", "NSER", "FSI") and len(merged) == 24
