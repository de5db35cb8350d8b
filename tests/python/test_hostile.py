"""Hostile pickle streams in otherwise valid checkpoints: each is refused with
UnsafeCheckpointError or CorruptCheckpointError (both ValueErrors) by
brine.load, brine.open and brine.load of the directory, executes nothing, and
allocates nothing near what it claims."""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import pickletools
import struct
import subprocess
import sys

import h5py
import numpy as np
import pytest

import _writer
import brine
from brine import _unpickler

HERE = pathlib.Path(__file__).resolve().parent
S = _writer.op_str
I = _writer.op_int
BASE = {"a": np.arange(6.0).reshape(2, 3), "b": np.arange(4, dtype=np.int32)}
DEEP = 100_000
HUGE = 1 << 60


def u64(n: int) -> bytes:
    return struct.pack("<Q", n)


def in_state(value: bytes, key: str = "x") -> bytes:
    """A stream whose state is {key: <the opcodes of value>}."""
    return b"\x80\x05}(" + S(key) + value + b"u."


def ndarray(shape=b"K\x02K\x03\x86", dtype=b"<f8", buffer=b"\x97", offset=b"K\x00",
            strides=b"N", order=b"C", extra=b"", raw_dtype=None) -> bytes:
    """The opcodes of numpy.ndarray(shape, dtype, buffer, offset, strides, order)."""
    dt = S(dtype.decode()) if raw_dtype is None else raw_dtype
    od = S(order.decode()) if isinstance(order, bytes) else order
    return b"cnumpy\nndarray\n(" + shape + dt + buffer + offset + strides + od + extra + b"tR"


def good_array_b() -> bytes:
    return ndarray(shape=b"K\x04\x85", dtype=b"<i4")


def touch(marker) -> str:
    return f"touch {marker}"


def pyopen(marker) -> str:
    return f"open({str(marker)!r}, 'w').close()"


# name -> (stream builder taking the marker path, datasets to write over BASE's)
CASES = {
    # -- globals that execute ------------------------------------------------------
    "global_os_system": lambda m: b"\x80\x05cos\nsystem\n" + S(touch(m)) + b"\x85R.",
    "global_posix_system": lambda m: b"\x80\x05cposix\nsystem\n" + S(touch(m)) + b"\x85R.",
    "global_eval": lambda m: b"\x80\x05cbuiltins\neval\n" + S(pyopen(m)) + b"\x85R.",
    "global_exec": lambda m: b"\x80\x05cbuiltins\nexec\n" + S(pyopen(m)) + b"\x85R.",
    "global_getattr": lambda m: (b"\x80\x05cbuiltins\ngetattr\n" + b"cbuiltins\ncomplex\n"
                                 + S("__class__") + b"\x86R."),
    "global_import": lambda m: b"\x80\x05cbuiltins\n__import__\n" + S("os") + b"\x85R.",
    "global_popen": lambda m: (b"\x80\x05csubprocess\nPopen\n](" + S("touch") + S(str(m))
                               + b"e\x85R."),
    "global_in_state": lambda m: in_state(b"cos\nsystem\n" + S(touch(m)) + b"\x85R"),
    "stack_global_os_system": lambda m: (b"\x80\x05" + S("os") + S("system") + b"\x93"
                                         + S(touch(m)) + b"\x85R."),
    "stack_global_eval": lambda m: (b"\x80\x05" + S("builtins") + S("eval") + b"\x93"
                                    + S(pyopen(m)) + b"\x85R."),
    "stack_global_popen": lambda m: (b"\x80\x05" + S("subprocess") + S("Popen") + b"\x93]("
                                     + S("touch") + S(str(m)) + b"e\x85R."),
    # the last two strings before STACK_GLOBAL are allowed ones; the names come from the memo
    "stack_global_from_memo": lambda m: (b"\x80\x05" + S("os") + b"\x94" + S("system") + b"\x94"
                                         + b"\x86" + S("numpy") + S("ndarray") + b"\x86"
                                         + b"h\x00h\x01\x93" + S(touch(m)) + b"\x85R."),
    "stack_global_from_memo_popen": lambda m: (
        b"\x80\x05" + S("subprocess") + b"\x94" + S("Popen") + b"\x94" + b"\x86"
        + S("builtins") + S("complex") + b"\x86" + b"h\x00h\x01\x93]("
        + S("touch") + S(str(m)) + b"e\x85R."),
    "stack_global_non_strings": lambda m: b"\x80\x05K\x01K\x02\x93)R.",
    "inst_os_system": lambda m: b"\x80\x05(" + S(touch(m)) + b"ios\nsystem\n.",
    "obj_os_system": lambda m: b"\x80\x05(cos\nsystem\n" + S(touch(m)) + b"o.",
    # -- persistent ids, extensions ------------------------------------------------------
    "persid": lambda m: b"\x80\x05P" + touch(m).encode() + b"\n.",
    "binpersid": lambda m: b"\x80\x05" + S(touch(m)) + b"Q.",
    "ext1": lambda m: b"\x80\x05\x82\x01.",
    "ext2": lambda m: b"\x80\x05\x83\x01\x00.",
    "ext4": lambda m: b"\x80\x05\x84\x01\x00\x00\x00.",
    # -- object-building opcodes on allowed globals ---------------------------------------
    "inst_complex": lambda m: b"\x80\x05(G?\xf0\x00\x00\x00\x00\x00\x00ibuiltins\ncomplex\n.",
    "obj_complex": lambda m: b"\x80\x05(cbuiltins\ncomplex\nG?\xf0\x00\x00\x00\x00\x00\x00o.",
    "newobj_complex": lambda m: b"\x80\x05cbuiltins\ncomplex\n)\x81.",
    "newobj_ndarray": lambda m: b"\x80\x05cnumpy\nndarray\nK\x02\x85\x85\x81.",
    "newobj_ex_ndarray": lambda m: b"\x80\x05cnumpy\nndarray\nK\x02\x85\x85}\x92.",
    "build_ndarray": lambda m: in_state(ndarray() + b"}" + S("x") + b"K\x01sb", "a"),
    "build_on_dict": lambda m: b"\x80\x05}}b.",
    # -- nesting --------------------------------------------------------------------------
    "deep_lists": lambda m: in_state(b"]" * DEEP + b"a" * (DEEP - 1)),
    "deep_tuples_mark": lambda m: in_state(b"(" * DEEP + b"N" + b"t" * DEEP),
    "deep_tuple1": lambda m: in_state(b"N" + b"\x85" * DEEP),
    "deep_dicts": lambda m: (b"\x80\x05" + (b"}" + S("k")) * DEEP + b"N" + b"s" * DEEP + b"."),
    "deep_dicts_257": lambda m: (b"\x80\x05" + (b"}" + S("k")) * 257 + b"N" + b"s" * 257 + b"."),
    "recursive_dict": lambda m: b"\x80\x05}\x94" + S("k") + b"h\x00s.",
    "recursive_list": lambda m: in_state(b"]\x94h\x00a"),
    "shared_dict": lambda m: (b"\x80\x05}(" + S("a") + b"}\x94(" + S("k") + b"K\x01u" + S("b")
                              + b"h\x00u."),
    # -- lengths beyond the stream ---------------------------------------------------------
    "binunicode8_2e60": lambda m: in_state(b"\x8d" + u64(HUGE) + b"abc"),
    "binbytes8_2e60": lambda m: in_state(b"\x8e" + u64(HUGE) + b"abc"),
    "binunicode_4g": lambda m: in_state(b"X\xff\xff\xff\xff" + b"abc"),
    "binbytes_4g": lambda m: in_state(b"B\xff\xff\xff\xff" + b"abc"),
    "frame_2e60": lambda m: b"\x80\x05\x95" + u64(HUGE) + in_state(b"K\x01")[2:],
    "frame_2e63": lambda m: b"\x80\x05\x95" + u64((1 << 64) - 1) + in_state(b"K\x01")[2:],
    "long4_2g": lambda m: in_state(b"\x8b\xff\xff\xff\x7f" + b"\x01" * 8),
    # -- out-of-band buffers ---------------------------------------------------------------
    "next_buffer_beyond": lambda m: (b"\x80\x05}(" + S("a") + ndarray() + S("b") + good_array_b()
                                     + S("c") + ndarray(buffer=b"\x97") + b"u."),
    "readonly_buffer": lambda m: in_state(ndarray(buffer=b"\x97\x98"), "a")[:-2]
    + S("b") + good_array_b() + b"u.",
    "buffer_used_twice": lambda m: (b"\x80\x05}(" + S("a") + ndarray(buffer=b"\x97\x94")
                                    + S("b") + ndarray(shape=b"K\x04\x85", dtype=b"<i4",
                                                       buffer=b"h\x00") + b"u."),
    "bare_buffer": lambda m: b"\x80\x05}(" + S("a") + b"\x97" + S("b") + good_array_b() + b"u.",
    "array_in_list": lambda m: (b"\x80\x05}(" + S("a") + b"]" + ndarray() + b"a" + S("b")
                                + good_array_b() + b"u."),
    # An in-band buffer of the right length is accepted since format 3.3 takes numpy's own
    # pickles (as brine_restore always did): test_numpy_streams.py loads it.
    # -- numpy.ndarray arguments -------------------------------------------------------------
    "shape_1e15": lambda m: (b"\x80\x05}(" + S("a") + ndarray(shape=I(10**15) + b"\x85")
                             + S("b") + good_array_b() + b"u."),
    "shape_2e62_overflow": lambda m: (b"\x80\x05}(" + S("a") + ndarray(shape=I(1 << 62) + I(1 << 62)
                                                                       + b"\x86")
                                      + S("b") + good_array_b() + b"u."),
    "shape_negative": lambda m: (b"\x80\x05}(" + S("a") + ndarray(shape=b"J\xff\xff\xff\xffK\x03\x86")
                                 + S("b") + good_array_b() + b"u."),
    "shape_bool": lambda m: (b"\x80\x05}(" + S("a") + ndarray(shape=b"\x88K\x03\x86")
                             + S("b") + good_array_b() + b"u."),
    "shape_nested": lambda m: (b"\x80\x05}(" + S("a") + ndarray(shape=b"(" * 2000 + b"t" * 2000
                                                                 + b"\x85")
                               + S("b") + good_array_b() + b"u."),
    "shape_40_dims": lambda m: (b"\x80\x05}(" + S("a") + ndarray(shape=b"(" + b"K\x01" * 40 + b"t")
                                + S("b") + good_array_b() + b"u."),
    "shape_int": lambda m: (b"\x80\x05}(" + S("a") + ndarray(shape=b"K\x06")
                            + S("b") + good_array_b() + b"u."),
    "dtype_object": lambda m: (b"\x80\x05}(" + S("a") + ndarray(dtype=b"|O") + S("b")
                               + good_array_b() + b"u."),
    "dtype_O": lambda m: (b"\x80\x05}(" + S("a") + ndarray(dtype=b"O") + S("b")
                          + good_array_b() + b"u."),
    "dtype_structured": lambda m: (b"\x80\x05}(" + S("a") + ndarray(dtype=b"<f4,<f4") + S("b")
                                   + good_array_b() + b"u."),
    "dtype_void": lambda m: (b"\x80\x05}(" + S("a") + ndarray(dtype=b"|V8") + S("b")
                             + good_array_b() + b"u."),
    "dtype_unknown": lambda m: (b"\x80\x05}(" + S("a") + ndarray(dtype=b"<x9") + S("b")
                                + good_array_b() + b"u."),
    "dtype_not_str": lambda m: (b"\x80\x05}(" + S("a") + ndarray(raw_dtype=b"]" + S("<f8") + b"a")
                                + S("b") + good_array_b() + b"u."),
    "dtype_big_endian": lambda m: (b"\x80\x05}(" + S("a") + ndarray(dtype=b">f8") + S("b")
                                   + good_array_b() + b"u."),
    "args_extra": lambda m: (b"\x80\x05}(" + S("a") + ndarray(extra=b"K\x00") + S("b")
                             + good_array_b() + b"u."),
    "args_missing": lambda m: (b"\x80\x05}(" + S("a") + ndarray(order=b"") + S("b")
                               + good_array_b() + b"u."),
    "args_not_tuple": lambda m: (b"\x80\x05}(" + S("a") + b"cnumpy\nndarray\n\x97R" + S("b")
                                 + good_array_b() + b"u."),
    "strides_outside": lambda m: (b"\x80\x05}(" + S("a") + ndarray(strides=b"J\x00\x00\x00\x40K\x08\x86")
                                  + S("b") + good_array_b() + b"u."),
    "strides_negative": lambda m: (b"\x80\x05}(" + S("a") + ndarray(strides=b"J\xe8\xff\xff\xffJ\xf8\xff\xff\xff\x86")
                                   + S("b") + good_array_b() + b"u."),
    "offset_outside": lambda m: (b"\x80\x05}(" + S("a") + ndarray(offset=b"J\x00\x00\x00\x40")
                                 + S("b") + good_array_b() + b"u."),
    "offset_inside": lambda m: (b"\x80\x05}(" + S("a") + ndarray(offset=b"K\x08")
                                + S("b") + good_array_b() + b"u."),
    "offset_float": lambda m: (b"\x80\x05}(" + S("a") + ndarray(offset=b"G" + b"\0" * 8)
                               + S("b") + good_array_b() + b"u."),
    "order_A": lambda m: (b"\x80\x05}(" + S("a") + ndarray(order=b"A") + S("b")
                          + good_array_b() + b"u."),
    "shape_disagrees": lambda m: (b"\x80\x05}(" + S("a") + ndarray(shape=b"K\x03K\x02\x86")
                                  + S("b") + good_array_b() + b"u."),
    "complex_strings": lambda m: in_state(b"cbuiltins\ncomplex\n" + S("1+2j") + b"\x85R"),
    "complex_huge_int": lambda m: in_state(b"cbuiltins\ncomplex\n" + b"\x8a\x81" + b"\xff" * 128
                                           + b"\x01" + b"K\x00\x86R"),
}

# Cases whose array datasets are crafted too: name -> (dims, chunks) of /state/a
HUGE_DATASETS = {
    # numpy.ndarray((10**15,), '<f8') with a dataset of those dimensions and no chunk written
    "dataset_1e15_no_chunks": ((10**15,), (1 << 17)),
    "dataset_2e40_2d_no_chunks": ((1 << 20, 1 << 20), (1, 1 << 17)),
}

MEMORY_CASES = ["binunicode8_2e60", "binbytes8_2e60", "frame_2e60", "frame_2e63", "long4_2g",
                "shape_1e15", "shape_2e62_overflow", "binunicode_4g", "deep_lists",
                "deep_dicts", "deep_tuples_mark"] + sorted(HUGE_DATASETS)


def buffer_names(stream: bytes, base_names):
    """As many names as the stream has NEXT_BUFFER opcodes, so the count check passes."""
    try:
        n = sum(op.name == "NEXT_BUFFER" for op, _, _ in pickletools.genops(stream))
    except ValueError:
        n = stream.count(b"\x97")
    return (list(base_names) * (n // max(1, len(base_names)) + 1))[:n]


def write_case(directory: pathlib.Path, name: str, marker: pathlib.Path) -> pathlib.Path:
    """Writes the hostile checkpoint of case name as directory/ckpt-000000000001.h5."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "ckpt-000000000001.h5"
    if name in HUGE_DATASETS:
        dims, chunk = HUGE_DATASETS[name]
        shape = b"".join(I(n) for n in dims) + {1: b"\x85", 2: b"\x86"}[len(dims)]
        stream = b"\x80\x05}(" + S("a") + ndarray(shape=shape) + S("b") + good_array_b() + b"u."
        _writer.write_checkpoint(path, BASE, step=1, stream=stream, skip_datasets=["/state/a"])
        with h5py.File(path, "r+") as f:
            chunks = chunk if isinstance(chunk, tuple) else (chunk,)
            f.create_dataset("state/a", shape=dims, dtype="<f8", chunks=chunks, shuffle=True,
                             compression="gzip", fletcher32=True)
        return path
    stream = CASES[name](marker)
    _writer.write_checkpoint(path, BASE, step=1, stream=stream,
                             buffers=buffer_names(stream, ["/state/a", "/state/b"]))
    return path


ALL = sorted(CASES) + sorted(HUGE_DATASETS)


def test_cases_are_live(tmp_path):
    # The payloads run under plain pickle: the tests below would catch a loader that ran them.
    for name in ("global_os_system", "global_eval", "global_popen", "stack_global_from_memo",
                 "stack_global_popen", "global_exec"):
        marker = tmp_path / name
        result = pickle.loads(CASES[name](marker))
        if isinstance(result, subprocess.Popen):
            result.wait()
        assert marker.exists(), name


@pytest.mark.parametrize("name", ALL)
def test_hostile_stream_is_refused(tmp_path, name):
    marker = tmp_path / "marker"
    directory = tmp_path / "ckpts"
    path = write_case(directory, name, marker)
    calls = {"load": lambda: brine.load(path),
             "open": lambda: brine.open(path).close(),
             "load_dir": lambda: brine.load(directory),
             "open_dir": lambda: brine.open(directory).close()}
    for label, call in calls.items():
        with pytest.raises((brine.UnsafeCheckpointError, brine.CorruptCheckpointError)) as info:
            call()
        assert isinstance(info.value, ValueError), label
        assert str(path) in str(info.value), (label, str(info.value)[:300])
        assert len(str(info.value)) < 5000, label  # no runaway repr of a hostile value
    assert not marker.exists()


def test_runtime_refusal_without_scan(tmp_path):
    # The restricted unpickler alone (no scan) refuses every global but the two,
    # and persistent ids.
    marker = tmp_path / "marker"
    for name in ("global_os_system", "stack_global_from_memo", "global_popen", "binpersid"):
        with pytest.raises(brine.CorruptCheckpointError):
            _unpickler.unpickle_state(CASES[name](marker), buffers=[], make_array=lambda s: None,
                                      path="x.h5")
    with pytest.raises(brine.CorruptCheckpointError):  # NEXT_BUFFER beyond the buffers given
        _unpickler.unpickle_state(in_state(b"\x97"), buffers=[], make_array=lambda s: None,
                                  path="x.h5")
    assert not marker.exists()


_MEMORY_CHILD = r"""
import json, pathlib, resource, sys
sys.path[:0] = sys.argv[1:3]
import brine, test_hostile
base = pathlib.Path(sys.argv[3])
names = json.loads(sys.argv[4])
paths = [test_hostile.write_case(base / n, n, base / "marker") for n in names]
import gc; gc.collect()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = {}
for n, p in zip(names, paths):
    for call in (brine.load, brine.open):
        try:
            call(p)
            out[n] = "loaded"
        except (brine.UnsafeCheckpointError, brine.CorruptCheckpointError) as e:
            out.setdefault(n, type(e).__name__)
        except BaseException as e:
            out[n] = f"{type(e).__name__}: {e}"[:200]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"grew_kib": after - before, "results": out}))
"""


def test_huge_claims_use_bounded_memory(tmp_path):
    # ru_maxrss of a fresh interpreter: refusing claims of 2**60 bytes, 10**15
    # elements or 100,000 nesting levels must not grow the peak by more than 64 MiB.
    env = dict(os.environ)
    r = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(HERE),
                        os.path.dirname(os.path.dirname(brine.__file__)), str(tmp_path),
                        json.dumps(MEMORY_CASES)],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    for name, outcome in report["results"].items():
        assert outcome in ("UnsafeCheckpointError", "CorruptCheckpointError"), (name, outcome)
    assert report["grew_kib"] < 64 * 1024, report
