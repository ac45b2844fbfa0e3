"""Issue 23, item 12: a manifest counts each recording once, under one label, from its own folder."""

from __future__ import annotations

import shutil

import pytest

from raphe.core.errors import RapheError
from raphe.pipelines.labelled_recordings import read_manifest
from tests.helpers import assert_one_line_error, require_abf_dir, run_raphe


@pytest.fixture
def lab(tmp_path):
    """A lab's folder: two recordings beside the manifest, one in a subfolder."""
    abf_dir = require_abf_dir()
    (tmp_path / "day2").mkdir()
    shutil.copy(abf_dir / "2020_06_16_0000.abf", tmp_path / "a.abf")
    shutil.copy(abf_dir / "130618-1-12.abf", tmp_path / "day2" / "b.abf")
    return tmp_path


def write(folder, rows: str):
    manifest = folder / "cells.csv"
    manifest.write_text("file,label,channel,day\n" + rows)
    return manifest


def test_an_exact_duplicate_row_is_used_once_with_a_warning(lab):
    entries, warnings = read_manifest(write(lab, "a.abf,SER,0,mon\nday2/b.abf,NSER,0,tue\na.abf,SER,0,mon\n"))
    assert [e.name for e in entries] == ["a", "day2/b"]
    assert warnings == [f"{lab / 'cells.csv'}, line 4: the same row as line 2; used once"]


def test_paths_that_lead_to_the_same_file_are_the_same_recording(lab):
    entries, warnings = read_manifest(write(lab, "a.abf,SER,0,mon\nday2/../a.abf,SER,0,mon\n"))
    assert len(entries) == 1 and len(warnings) == 1


@pytest.mark.parametrize("rows, fragment", [
    ("a.abf,SER,0,mon\nday2/b.abf,NSER,0,tue\n./a.abf,NSER,0,mon\n",
     "line 4: ./a.abf (channel 0) is labelled NSER here and SER on line 2; one recording, one class"),
    ("a.abf,SER,0,mon\na.abf,SER,0,tue\n", "line 3: a.abf is described again, differently from line 2"),
    ("../outside.abf,SER,0,mon\n", "line 2: ../outside.abf lies outside the manifest's folder"),
    ("/etc/hostname,SER,0,mon\n", "line 2: /etc/hostname lies outside the manifest's folder"),
])
def test_a_conflict_or_a_path_outside_is_refused_naming_the_row(lab, rows, fragment):
    if rows.startswith("../"):
        shutil.copy(lab / "a.abf", lab.parent / "outside.abf")
    with pytest.raises(RapheError) as refused:
        read_manifest(write(lab, rows))
    assert fragment in str(refused.value)


def test_the_same_file_on_two_channels_may_hold_two_cells_of_two_classes(lab):
    entries, warnings = read_manifest(write(lab, "a.abf,SER,0,mon\na.abf,NSER,1,mon\n"))
    assert [(e.label, e.channel) for e in entries] == [("SER", "0"), ("NSER", "1")] and warnings == []


def test_the_commands_refuse_a_conflicting_manifest_in_one_line(lab):
    manifest = write(lab, "a.abf,SER,0,mon\na.abf,NSER,0,mon\n")
    for command in (["evaluate", "default"], ["firing-model"]):
        args = ["--out", lab / "firing.json"] if command == ["firing-model"] else []
        assert_one_line_error(run_raphe(*command, manifest, *args), "one recording, one class")
