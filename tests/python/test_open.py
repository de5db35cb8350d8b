"""brine.open: a lazy, read-only Mapping whose arrays read only what is sliced."""

from __future__ import annotations

from collections.abc import Mapping

import h5py
import numpy as np
import pytest

import brine
from conftest import checkpoint_path
from fixture_values import bits, expected_state, walk


@pytest.fixture
def reads(monkeypatch):
    """Records every h5py dataset read as (dataset name, elements read)."""
    log = []
    original = h5py.Dataset.__getitem__

    def recording(self, args, *rest, **kw):
        out = original(self, args, *rest, **kw)
        log.append((self.name, int(np.size(out))))
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", recording)
    return log


def test_open_reads_only_the_stream(ckpt_dir, reads):
    with brine.open(checkpoint_path(ckpt_dir, 2)) as ck:
        assert [name for name, _ in reads] == ["/brine/pickle"]
        v = ck["fluid/velocity"]
        assert isinstance(v, brine.LazyArray)
        assert (v.shape, v.dtype, v.ndim, v.size, len(v)) == ((700, 500), np.float64, 2, 350000, 700)
        assert [name for name, _ in reads] == ["/brine/pickle"]


def test_slicing_reads_only_the_selection(ckpt_dir, reads):
    want = expected_state(2)["fluid"]
    with brine.open(checkpoint_path(ckpt_dir, 2)) as ck:
        got = ck["fluid/velocity"][10:12, 5:8]
        assert reads[-1] == ("/state/fluid/velocity", 6)
        assert np.array_equal(bits(got), bits(want["velocity"][10:12, 5:8]))
        got = ck["fluid"]["pressure"][7, 100:110]  # Fortran order
        assert reads[-1] == ("/state/fluid/pressure", 10)
        assert np.array_equal(bits(got), bits(want["pressure"][7, 100:110]))
        got = ck["fluid/density"][1, -3:, ::250]
        assert reads[-1] == ("/state/fluid/density", 12)
        assert np.array_equal(bits(got), bits(want["density"][1, -3:, ::250]))
    assert sum(n for name, n in reads if name.startswith("/state/")) == 6 + 10 + 12


def test_whole_reads(ckpt_dir):
    want = expected_state(3)
    with brine.open(checkpoint_path(ckpt_dir, 3)) as ck:
        p = np.asarray(ck["fluid/pressure"])
        assert p.shape == (300, 1100) and p.flags.f_contiguous and p.flags.writeable
        assert np.array_equal(bits(p), bits(want["fluid"]["pressure"]))
        r = ck["fluid/velocity"].read()
        assert r.flags.c_contiguous and np.array_equal(bits(r), bits(want["fluid"]["velocity"]))
        assert np.asarray(ck["fluid/velocity"], dtype=np.float32).dtype == np.float32
        for name, w in walk(want):
            g = ck[name]
            if isinstance(w, np.ndarray):
                a = g.read()
                assert a.shape == w.shape and a.dtype == w.dtype, name
                assert a.flags.f_contiguous == w.flags.f_contiguous, name
                assert np.array_equal(bits(a), bits(w)), name
                assert np.array_equal(bits(g[...]), bits(w)), name
            else:
                assert type(g) is type(w) and g == w, name


def _keys(shape):
    n0 = shape[0]
    keys = [0, -1, n0 - 1, slice(None), slice(1, None, 2), slice(None, None, -1),
            slice(n0 - 1, 0, -2), slice(2, 2), Ellipsis, (Ellipsis, 0), (None, 0),
            [n0 - 1, 0, 1], np.array([True, False] * (n0 // 2) + [True] * (n0 % 2)),
            np.array([], dtype=np.intp), np.int64(1)]
    if len(shape) >= 2:
        keys += [(1, 2), (slice(None), -1), (slice(None, None, -1), slice(1, None, 3)),
                 (np.array([0, 2]), np.array([1, 1])), (0, None, slice(None)), (Ellipsis, -1, None),
                 (slice(0, 2), [1, 0]), np.arange(int(np.prod(shape))).reshape(shape) % 3 == 0]
    if len(shape) >= 3:
        keys += [(1, 2, 1), (slice(None), 0, slice(None)), (Ellipsis, 1, slice(None, None, -1)),
                 (0, [2, 0], [1, 0])]
    return keys


@pytest.mark.parametrize("name", ["arrays/int8/d1", "arrays/bool/d2", "arrays/int16/d2",
                                  "arrays/float32/d3", "arrays/complex128/d3",
                                  "arrays/complex64/d3", "fluid/pressure", "edge/row_f"])
def test_indexing_matches_numpy(ckpt_dir, name):
    want = dict(walk(expected_state(1)))[name]
    with brine.open(checkpoint_path(ckpt_dir, 1)) as ck:
        lazy = ck[name]
        for key in _keys(want.shape):
            try:
                w = want[key]
            except IndexError:  # numpy refuses it: so must the lazy array
                with pytest.raises(IndexError):
                    lazy[key]
                continue
            g = lazy[key]
            assert np.shape(g) == np.shape(w), (name, key)
            assert np.asarray(g).dtype == w.dtype, (name, key)
            assert np.array_equal(bits(np.asarray(g)), bits(np.asarray(w))), (name, key)
        for bad in [want.shape[0], -want.shape[0] - 1, (0,) * (want.ndim + 1), 1.5, "x",
                    (Ellipsis, Ellipsis)]:
            with pytest.raises(IndexError):
                lazy[bad]


def test_empty_arrays(ckpt_dir):
    with brine.open(checkpoint_path(ckpt_dir, 1)) as ck:
        e2 = ck["empty/e2"]
        assert e2.shape == (4, 0) and e2.size == 0 and len(e2) == 4
        assert e2.read().shape == (4, 0) and e2[1:3].shape == (2, 0)
        assert np.asarray(ck["empty/e3"]).shape == (0, 3, 2)
        assert ck["empty/e1"][:].shape == (0,)


def test_mapping_api(ckpt_dir):
    with brine.open(checkpoint_path(ckpt_dir, 2)) as ck:
        assert isinstance(ck, Mapping) and isinstance(ck["fluid"], Mapping)
        assert list(ck) == ["step", "time", "scalars", "meta", "arrays", "fluid", "grid",
                            "empty", "edge", "noise"]
        assert len(ck) == 10 and "fluid" in ck and "fluid/velocity" in ck and "nope" not in ck
        assert list(ck["fluid"].keys()) == ["velocity", "pressure", "density"]
        assert ck["grid"]["params"]["dx"] == ck["grid/params/dx"] == 1.0 / 700
        assert ck["grid/params"]["nx"] == 700 and type(ck["grid/params/nx"]) is int
        assert ck["step"] == 2 and ck["scalars/complex128"] == complex(2 / 7.0, -1.0 / 3)
        assert ck["meta/title"] == "brine fixture step 2 \u2713"
        assert ck.step == 2 and ck.format_version == 1 and ck.brine_version
        assert len(ck.created) == 20 and ck.created.endswith("Z")
        assert ck.path == str(checkpoint_path(ckpt_dir, 2))
        with pytest.raises(KeyError):
            ck["fluid/nope"]
        with pytest.raises(KeyError):
            ck["step/x"]
        assert "velocity" in repr(ck["fluid/velocity"])


def test_close(ckpt_dir):
    ck = brine.open(checkpoint_path(ckpt_dir, 1))
    v = ck["fluid/velocity"]
    assert not ck.closed
    ck.close()
    assert ck.closed
    ck.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        v[0]
    with brine.open(checkpoint_path(ckpt_dir, 1)) as ck2:
        pass
    assert ck2.closed


def test_open_directory_gives_the_newest(ckpt_dir):
    with brine.open(ckpt_dir) as ck:
        assert ck.step == 3
