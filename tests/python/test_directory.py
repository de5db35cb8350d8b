"""brine.list, and loading a directory: the newest checkpoint that verifies."""

from __future__ import annotations

import dataclasses
import os
import shutil

import h5py
import numpy as np
import pytest

import _writer
import brine
from conftest import STEPS, checkpoint_path
from fixture_values import expected_state


def test_list_sorted_committed_only(ckpt_dir):
    newest = checkpoint_path(ckpt_dir, STEPS)
    shutil.copy(newest, ckpt_dir / f".ckpt-{9:012d}.h5.tmp-1234")  # being written
    shutil.copy(newest, ckpt_dir / "ckpt-12.h5")  # wrong digit count
    shutil.copy(newest, ckpt_dir / f"ckpt-{9:012d}.h5.bak")
    (ckpt_dir / "notes.txt").write_text("x")
    (ckpt_dir / f"ckpt-{8:012d}.h5").mkdir()  # a directory, not a checkpoint
    shutil.copy(newest, ckpt_dir / f"run.b-{STEPS + 1:012d}.h5")  # another prefix
    infos = brine.list(ckpt_dir)
    assert [(os.path.basename(i.path), i.step) for i in infos] == [
        (f"ckpt-{s:012d}.h5", s) for s in range(1, STEPS + 1)] + [
        (f"run.b-{STEPS + 1:012d}.h5", STEPS + 1)]
    assert [i.step for i in brine.list(ckpt_dir, prefix="ckpt")] == list(range(1, STEPS + 1))
    info = infos[0]
    assert isinstance(info, brine.CheckpointInfo)
    assert info.size == os.path.getsize(info.path) > 0
    assert len(info.created) == 20 and info.created.endswith("Z")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.step = 5  # type: ignore[misc]
    assert brine.list(str(ckpt_dir)) == infos  # str or os.PathLike


def test_list_empty_and_missing(tmp_path):
    assert brine.list(tmp_path) == []
    with pytest.raises(FileNotFoundError):
        brine.list(tmp_path / "missing")


def test_empty_directory_raises_file_not_found(tmp_path):
    (tmp_path / ".ckpt-000000000001.h5.tmp-99").write_bytes(b"partial")
    for fn in (brine.load, brine.open):
        with pytest.raises(FileNotFoundError) as info:
            fn(tmp_path)
        assert str(tmp_path) in str(info.value)


def test_skips_newest_with_a_damaged_chunk(ckpt_dir):
    _writer.corrupt_chunk(checkpoint_path(ckpt_dir, STEPS), "/state/fluid/velocity", 1)
    state = brine.load(ckpt_dir)
    assert state["step"] == STEPS - 1
    assert np.array_equal(state["fluid"]["velocity"], expected_state(STEPS - 1)["fluid"]["velocity"])


def test_skips_newest_with_a_wrong_crc32(ckpt_dir):
    with h5py.File(checkpoint_path(ckpt_dir, STEPS), "r+") as f:
        p = f["brine/pickle"]
        p.attrs.modify("crc32", np.uint32((int(p.attrs["crc32"]) + 1) % 2**32))
    assert brine.load(ckpt_dir)["step"] == STEPS - 1
    with brine.open(ckpt_dir) as ck:
        assert ck.step == STEPS - 1


def test_none_verifies_raises_the_newest_error_with_every_reason(ckpt_dir):
    for s in range(1, STEPS):
        _writer.corrupt_chunk(checkpoint_path(ckpt_dir, s), "/state/fluid/velocity", 0)
    with h5py.File(checkpoint_path(ckpt_dir, STEPS), "r+") as f:
        f.attrs.modify("brine_format", np.int32(2))
    with pytest.raises(brine.UnsupportedVersionError) as info:
        brine.load(ckpt_dir)
    message = str(info.value)
    for s in range(1, STEPS + 1):
        assert str(checkpoint_path(ckpt_dir, s)) in message
    assert "fluid/velocity" in message
    assert isinstance(info.value.__cause__, brine.UnsupportedVersionError)


def test_directory_with_only_corrupt_files(ckpt_dir):
    for s in range(1, STEPS + 1):
        _writer.corrupt_chunk(checkpoint_path(ckpt_dir, s), "/state/fluid/velocity", 0)
    with pytest.raises(brine.CorruptCheckpointError) as info:
        brine.load(ckpt_dir)
    assert isinstance(info.value, ValueError)
    assert all(str(checkpoint_path(ckpt_dir, s)) in str(info.value) for s in range(1, STEPS + 1))


def test_c_prefix_and_list(tmp_path):
    from conftest import run_fixture
    run_fixture(tmp_path, steps=2, prefix="run.x")
    infos = brine.list(tmp_path)
    assert [(os.path.basename(i.path), i.step) for i in infos] == [
        ("run.x-000000000001.h5", 1), ("run.x-000000000002.h5", 2)]
    assert brine.list(tmp_path, prefix="ckpt") == []
    assert brine.load(tmp_path, prefix="run.x")["step"] == 2
    with pytest.raises(FileNotFoundError):
        brine.load(tmp_path, prefix="ckpt")
