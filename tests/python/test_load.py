"""brine.load and the stock loader of format.md section 4 on checkpoints written
by C (brine_fixture) and by the Python writer: bit-identical values, shapes,
dtypes, memory orders; stock tools (pickletools, h5dump) accept every file."""

from __future__ import annotations

import io
import pickle
import pickletools
import shutil
import subprocess

import h5py
import numpy as np
import pytest

import brine
from conftest import STEPS, checkpoint_path
from fixture_values import bits, expected_state, walk


def stock_load(path):
    """The snippet of format.md section 4, verbatim."""
    with h5py.File(path, "r") as f:
        p = f["brine/pickle"]
        state = pickle.loads(p[()].tobytes(), buffers=[f[n][()] for n in p.attrs["buffers"]])
    return state


def assert_state_equal(got, want, *, check_order=True):
    got_items, want_items = list(walk(got)), list(walk(want))
    assert [n for n, _ in got_items] == [n for n, _ in want_items]  # names and their order
    for (name, g), (_, w) in zip(got_items, want_items):
        if isinstance(w, np.ndarray):
            assert isinstance(g, np.ndarray), name
            assert g.shape == w.shape, name
            assert g.dtype == w.dtype, name
            if check_order:
                assert g.flags.c_contiguous == w.flags.c_contiguous, name
                assert g.flags.f_contiguous == w.flags.f_contiguous, name
            assert np.array_equal(bits(g), bits(w)), name
        else:
            assert type(g) is type(w), (name, g, w)
            assert g == w, name


@pytest.mark.parametrize("step", range(1, STEPS + 1))
def test_load_file_is_bit_identical(ckpt_dir, step):
    state = brine.load(checkpoint_path(ckpt_dir, step))
    assert_state_equal(state, expected_state(step))


def test_loaded_arrays_are_writable_and_f_arrays_f_contiguous(ckpt_dir):
    state = brine.load(checkpoint_path(ckpt_dir, 1))
    for name, value in walk(state):
        if isinstance(value, np.ndarray):
            assert value.flags.writeable, name
            value[...] = value  # really writable
    p = state["fluid"]["pressure"]
    assert p.shape == (300, 1100) and p.flags.f_contiguous and not p.flags.c_contiguous
    assert state["arrays"]["bool"]["d2"].flags.f_contiguous  # d = 0, even: d2 is F
    assert state["arrays"]["bool"]["d3"].flags.c_contiguous
    assert state["arrays"]["int8"]["d3"].flags.f_contiguous  # d = 1, odd: d3 is F
    assert state["arrays"]["int8"]["d2"].flags.c_contiguous


@pytest.mark.parametrize("step", range(1, STEPS + 1))
def test_stock_snippet_is_bit_identical(ckpt_dir, step):
    path = checkpoint_path(ckpt_dir, step)
    stock = stock_load(path)
    assert_state_equal(stock, expected_state(step))
    assert_state_equal(stock, brine.load(path))


def test_pure_python_unpickler_agrees(ckpt_dir):
    path = checkpoint_path(ckpt_dir, 2)
    with h5py.File(path, "r") as f:
        p = f["brine/pickle"]
        state = pickle._loads(p[()].tobytes(), buffers=[f[n][()] for n in p.attrs["buffers"]])
    assert_state_equal(state, expected_state(2))


def test_pickletools_accepts_every_stream(ckpt_dir):
    for path in sorted(ckpt_dir.glob("*.h5")):
        with h5py.File(path, "r") as f:
            stream = f["brine/pickle"][()].tobytes()
        pickletools.dis(stream, out=io.StringIO())
        assert stream[:2] == b"\x80\x05"
        globals_ = {arg for op, arg, _ in pickletools.genops(stream) if op.name == "GLOBAL"}
        assert globals_ <= {"numpy ndarray", "builtins complex"}
        names = {op.name for op, _, _ in pickletools.genops(stream)}
        assert not names & {"FRAME", "MEMOIZE", "BINPUT", "LONG_BINPUT", "BINGET", "LONG_BINGET"}


@pytest.mark.skipif(shutil.which("h5dump") is None, reason="h5dump (hdf5-tools) not installed")
def test_h5dump_reads_every_file(ckpt_dir):
    for path in sorted(ckpt_dir.glob("*.h5")):
        r = subprocess.run(["h5dump", str(path)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, timeout=300)
        assert r.returncode == 0, f"h5dump {path}: {r.stderr[-500:]}"


def test_dataset_layout_follows_the_format(ckpt_dir):
    want = dict(walk(expected_state(1)))
    with h5py.File(checkpoint_path(ckpt_dir, 1), "r") as f:
        assert int(f.attrs["brine_format"]) == 1
        assert int(f.attrs["step"]) == 1
        names = [n.decode() if isinstance(n, bytes) else n for n in f["brine/pickle"].attrs["buffers"]]
        arrays = [n for n, v in want.items() if isinstance(v, np.ndarray)]
        assert names == ["/state/" + n for n in arrays]
        for name in arrays:
            a, ds = want[name], f["state/" + name]
            fortran = a.ndim > 1 and a.flags.f_contiguous and not a.flags.c_contiguous
            assert ds.attrs["order"] == ("F" if fortran else "C"), name
            assert ds.shape == (a.shape[::-1] if fortran else a.shape), name
            assert ds.dtype == a.dtype, name
            if a.size:
                assert ds.chunks is not None and ds.shuffle and ds.fletcher32, name
                assert ds.compression == "gzip", name
            else:
                assert ds.chunks is None and ds.compression is None, name
        # registered Fortran but written "C": empty, and a single extent different from 1
        assert f["state/empty/e2"].attrs["order"] == "C"
        assert f["state/edge/row_f"].attrs["order"] == "C" and f["state/edge/row_f"].shape == (1, 5)
        # the big arrays span several chunks, with edge chunks
        v = f["state/fluid/velocity"]
        assert v.id.get_num_chunks() > 1 and v.shape[0] % v.chunks[0] != 0
        p = f["state/fluid/pressure"]
        assert p.shape == (1100, 300) and p.id.get_num_chunks() > 1


def test_load_directory_gives_the_newest(ckpt_dir):
    state = brine.load(ckpt_dir)
    assert state["step"] == STEPS
    assert_state_equal(state, expected_state(STEPS))
