"""Output files appear whole or not at all."""

from __future__ import annotations

import pytest

from raphe.core.errors import RapheError
from raphe.core.staged import check_writable, staged


def test_a_finished_write_replaces_the_file(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    with staged(target) as partial:
        partial.write_text("new")
        assert target.read_text() == "old"  # nothing under the real name until the block ends
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_a_failed_write_leaves_the_old_file_and_no_partial(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(ZeroDivisionError):
        with staged(target) as partial:
            partial.write_text("half")
            1 / 0
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_an_interrupted_write_leaves_nothing(tmp_path):
    target = tmp_path / "new.npz"
    with pytest.raises(KeyboardInterrupt):
        with staged(target) as partial:
            partial.write_bytes(b"half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_missing_folder_is_refused_before_any_work(tmp_path):
    with pytest.raises(RapheError, match="does not exist"):
        check_writable(tmp_path / "no" / "such.csv")
