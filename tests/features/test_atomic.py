"""The one atomic writer: a failed write leaves what was stored intact and no temporary behind."""

from __future__ import annotations

import os
import stat

import pandas as pd
import pyarrow as pa
import pytest

from features.atomic import atomic_path
from features.io import write_table


class Boom(RuntimeError):
    pass


def test_a_file_is_replaced_whole_and_gets_ordinary_permissions(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_text("new")
        assert target.read_text() == "old"  # nothing is visible before the block ends
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_a_failed_file_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise Boom()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_block_that_writes_nothing_fails_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with atomic_path(target):
            pass
    assert target.read_text() == "old"


def test_a_folder_is_replaced_whole(tmp_path):
    target = tmp_path / "cohort"
    target.mkdir()
    (target / "stale.parquet").write_text("old")
    with atomic_path(target, folder=True) as tmp:
        assert tmp.is_dir() and not any(tmp.iterdir())
        (tmp / "fresh.parquet").write_text("new")
    assert [p.name for p in target.iterdir()] == ["fresh.parquet"]  # the old folder is gone, not merged
    assert [p.name for p in tmp_path.iterdir()] == ["cohort"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~umask


def test_a_failed_folder_write_keeps_the_old_folder(tmp_path):
    target = tmp_path / "cohort"
    target.mkdir()
    (target / "patients.parquet").write_text("old")
    with pytest.raises(Boom):
        with atomic_path(target, folder=True) as tmp:
            (tmp / "patients.parquet").write_text("new")
            raise Boom()
    assert [p.name for p in target.iterdir()] == ["patients.parquet"]
    assert (target / "patients.parquet").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["cohort"]


def test_a_folder_can_replace_a_file(tmp_path):
    target = tmp_path / "scores.parquet"
    target.write_text("a single file")
    with atomic_path(target, folder=True) as tmp:
        (tmp / "part.0.parquet").write_text("new")
    assert [p.name for p in target.iterdir()] == ["part.0.parquet"]


def test_a_table_that_cannot_be_written_keeps_the_stored_table(tmp_path):
    write_table(pd.DataFrame({"patient_id": ["p1", "p2"]}), tmp_path, "patients")
    unwritable = pd.DataFrame({"patient_id": [object(), object()]})  # Arrow cannot store arbitrary objects
    with pytest.raises(pa.ArrowException):
        write_table(unwritable, tmp_path, "patients")
    assert pd.read_parquet(tmp_path / "patients.parquet")["patient_id"].tolist() == ["p1", "p2"]
    assert [p.name for p in tmp_path.iterdir()] == ["patients.parquet"]
