"""Damaged, hostile and newer-format checkpoints raise the documented errors,
naming the file and the variable, and a hostile stream executes nothing."""

from __future__ import annotations

import pickle
import pickletools
import struct
import zlib

import h5py
import numpy as np
import pytest

import _writer
import brine
from brine import _unpickler
from conftest import checkpoint_path

STATE = {
    "t": 1.5,
    "fluid": {"u": np.arange(12.0).reshape(3, 4), "v": np.asfortranarray(np.ones((2, 3), np.int32))},
    "n": 7,
}


def both(path):
    """Runs brine.load and brine.open on path (each must raise the same way)."""
    yield lambda: brine.load(path)
    yield lambda: brine.open(path).close()


def raises(cls, path, *needles):
    for call in both(path):
        with pytest.raises(cls) as info:
            call()
        for needle in (str(path),) + needles:
            assert needle in str(info.value), (needle, str(info.value))
    return info.value


# -- hostile streams -------------------------------------------------------------

def system_stream(marker) -> bytes:
    cmd = f"touch {marker}"
    return b"\x80\x05cos\nsystem\n" + _writer.op_str(cmd) + b"\x85R."


def test_the_hostile_stream_is_live(tmp_path):
    # Proves the payload of the next tests does run under plain pickle.
    marker = tmp_path / "proof"
    pickle.loads(system_stream(marker))
    assert marker.exists()


HOSTILE = {
    "global": lambda m: system_stream(m),
    "stack_global": lambda m: (b"\x80\x05" + _writer.op_str("os") + _writer.op_str("system")
                               + b"\x93" + _writer.op_str(f"touch {m}") + b"\x85R."),
    "nested_in_state": lambda m: (b"\x80\x05}(" + _writer.op_str("a") + b"K\x01"
                                  + _writer.op_str("b") + system_stream(m)[2:-1] + b"u."),
    "posix": lambda m: b"\x80\x05cposix\nsystem\n" + _writer.op_str(f"touch {m}") + b"\x85R.",
    "eval": lambda m: (b"\x80\x05cbuiltins\neval\n"
                       + _writer.op_str(f"__import__('os').system('touch {m}')") + b"\x85R."),
    # numpy's loaders that are not array reconstructors stay refused
    "numpy_load": lambda m: (b"\x80\x05cnumpy\nload\n"
                             + _writer.op_str(f"{m}") + b"\x85R."),
    "numpy_private": lambda m: (b"\x80\x05cnumpy.core.multiarray\n_vec_string\n"
                                + _writer.op_str(f"touch {m}") + b"\x85R."),
}


def test_allowed_numpy_global_with_hostile_arguments(tmp_path):
    # _frombuffer is allowed (numpy's own array pickles) but only builds arrays:
    # a call with anything but (buffer, dtype, shape, order) is corrupt, and runs nothing.
    marker = tmp_path / "marker"
    path = tmp_path / "ckpt-000000000001.h5"
    stream = (b"\x80\x05cnumpy.core.numeric\n_frombuffer\n"
              + _writer.op_str(f"touch {marker}") + b"\x85R.")
    _writer.write_checkpoint(path, {}, step=1, stream=stream)
    err = raises(brine.CorruptCheckpointError, path)
    assert "expected 4 or 5" in str(err)
    assert not marker.exists()


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_stream_executes_nothing(tmp_path, kind):
    marker = tmp_path / "marker"
    path = tmp_path / "ckpt-000000000001.h5"
    _writer.write_checkpoint(path, {}, step=1, stream=HOSTILE[kind](marker))
    err = raises(brine.UnsafeCheckpointError, path)
    assert isinstance(err, brine.CorruptCheckpointError) and isinstance(err, ValueError)
    with pytest.raises(brine.UnsafeCheckpointError):
        brine.load(tmp_path)
    assert not marker.exists()


def test_restricted_unpickler_refuses_at_run_time(tmp_path):
    # A STACK_GLOBAL fed from the memo escapes the static scan; find_class still refuses.
    marker = tmp_path / "marker"
    stream = (b"\x80\x05" + _writer.op_str("os") + b"\x94" + _writer.op_str("system") + b"\x94"
              + b"h\x00h\x01\x93" + _writer.op_str(f"touch {marker}") + b"\x85R.")
    with pytest.raises(brine.UnsafeCheckpointError):
        _unpickler.unpickle_state(stream, buffers=[], make_array=lambda spec: None, path="x.h5")
    assert not marker.exists()


# -- format version ----------------------------------------------------------------

def test_newer_format_is_refused_naming_both_versions(tmp_path):
    path = tmp_path / "ckpt-000000000001.h5"
    _writer.write_checkpoint(path, STATE, step=1, format_version=2)
    err = raises(brine.UnsupportedVersionError, path, "2", "1")
    assert isinstance(err, ValueError) and not isinstance(err, brine.CorruptCheckpointError)
    assert (err.found, err.supported) == (2, 1)
    assert "version 2" in str(err) and "version 1" in str(err)


# -- corruption ------------------------------------------------------------------------

def test_missing_dataset(tmp_path):
    path = tmp_path / "c.h5"
    _writer.write_checkpoint(path, STATE, skip_datasets=["/state/fluid/u"])
    err = raises(brine.CorruptCheckpointError, path, "fluid/u")
    assert isinstance(err, ValueError) and err.variable == "fluid/u"


@pytest.mark.parametrize("names", [["/state/fluid/u"],
                                   ["/state/fluid/u", "/state/fluid/v", "/state/fluid/u"],
                                   []])
def test_buffer_count_mismatch(tmp_path, names):
    path = tmp_path / "c.h5"
    _writer.write_checkpoint(path, STATE, buffers=names)
    err = raises(brine.CorruptCheckpointError, path, "buffers")
    assert isinstance(err, ValueError)


def test_crc32_mismatch(tmp_path):
    path = tmp_path / "c.h5"
    stream = _writer.write_checkpoint(path, STATE)
    with h5py.File(path, "r+") as f:
        f["brine/pickle"].attrs.modify("crc32", np.uint32(zlib.crc32(stream) ^ 1))
    raises(brine.CorruptCheckpointError, path, "CRC-32")


def malformed_streams():
    good, _ = _writer.encode_state(STATE)
    yield "truncated", good[:-5]
    yield "no_stop", good[:-1]
    yield "trailing_bytes", good + b"K\x00"
    yield "not_a_dict", b"\x80\x05K\x01."
    yield "build_opcode", b"\x80\x05}}b."
    yield "set", pickle.dumps({"a": {1, 2}}, protocol=5)
    yield "unknown_opcode", b"\x80\x05\xff."
    yield "stack_underflow", b"\x80\x05u."
    yield "bad_dtype", good.replace(b"\x8c\x03<f8", b"\x8c\x03>f8")
    yield "bad_order", good.replace(b"\x8c\x01F", b"\x8c\x01A")
    yield "offset", good.replace(b"\x97K\x00N", b"\x97K\x08N", 1)
    yield "inline_buffer", (b"\x80\x05}(" + _writer.op_str("a") + b"cnumpy\nndarray\n(K\x02\x85"
                            + _writer.op_str("<i1") + b"C\x02ab" + b"K\x00N" + _writer.op_str("C")
                            + b"tRu.")
    yield "complex_args", b"\x80\x05cbuiltins\ncomplex\n" + _writer.op_str("1+2j") + b"\x85R."
    yield "int_key", b"\x80\x05}(K\x01K\x02u."


@pytest.mark.parametrize("label,stream", list(malformed_streams()),
                         ids=[label for label, _ in malformed_streams()])
def test_malformed_stream(tmp_path, label, stream):
    path = tmp_path / "c.h5"
    _, bufs = _writer.encode_state(STATE)
    n_buffers = sum(op.name == "NEXT_BUFFER" for op, _, _ in pickle_ops(stream))
    names = [b[0] for b in bufs][:n_buffers]  # so that only the stream is wrong
    _writer.write_checkpoint(path, STATE, stream=stream, buffers=names)
    err = raises(brine.CorruptCheckpointError, path)
    assert not isinstance(err, brine.UnsafeCheckpointError)


def pickle_ops(stream):
    try:
        return list(pickletools.genops(stream))
    except ValueError:
        return []


def test_stock_pickle_with_memo_and_frames_is_accepted(tmp_path):
    # The C decoder accepts FRAME and the memo opcodes (format 3.3); so does the reader.
    state = {"a": 1, "b": "x" * 300, "c": {"d": -5.5, "e": 2**70}, "f": complex(1, 2)}
    stream = pickle.dumps(state, protocol=5)
    path = tmp_path / "c.h5"
    _writer.write_checkpoint(path, {}, stream=stream)
    assert brine.load(path) == state


def rewrite_dataset(path, name, data, order):
    with h5py.File(path, "r+") as f:
        del f[name]
    with h5py.File(path, "r+") as f:
        _writer.write_array_dataset(f, name, data, order)


@pytest.mark.parametrize("data,order,needle", [
    (np.arange(12.0, dtype=np.float32).reshape(3, 4), "C", "float32"),  # dtype
    (np.arange(12.0).reshape(4, 3), "C", "(4, 3)"),  # shape
    (np.arange(12.0).reshape(4, 3).T, "F", "order"),  # order attribute and dims
    (np.arange(13.0), "C", "(13,)"),
])
def test_dataset_inconsistent_with_pickle(tmp_path, data, order, needle):
    path = tmp_path / "c.h5"
    _writer.write_checkpoint(path, STATE)
    rewrite_dataset(path, "/state/fluid/u", data, order)
    err = raises(brine.CorruptCheckpointError, path, "fluid/u", needle)
    assert err.variable == "fluid/u"


def test_order_attribute_is_not_trusted(tmp_path):
    # As brine_restore, the reader reads no variable-length string (their bytes
    # live in HDF5's unchecksummed global heap, on which HDF5 1.10 crashes when
    # it is damaged): the order in the stream, under the CRC-32, is authoritative.
    path = tmp_path / "c.h5"
    _writer.write_checkpoint(path, STATE)
    with h5py.File(path, "r+") as f:
        f["state/fluid/v"].attrs["order"] = "C"
        f["brine/pickle"].attrs["buffers"] = ["/state/damaged", "/x"]
    v = brine.load(path)["fluid"]["v"]
    assert v.flags.f_contiguous and not v.flags.c_contiguous
    np.testing.assert_array_equal(v, STATE["fluid"]["v"])
    with brine.open(path) as ck:
        assert ck["fluid/v"].order == "F"


def test_damaged_chunk(ckpt_dir):
    path = checkpoint_path(ckpt_dir, 2)
    _writer.corrupt_chunk(path, "/state/fluid/velocity", 1)
    with pytest.raises(brine.CorruptCheckpointError) as info:
        brine.load(path)
    assert str(path) in str(info.value) and "fluid/velocity" in str(info.value)
    assert isinstance(info.value.__cause__, OSError)
    with brine.open(path) as ck:  # opening reads no chunk; reading the damaged one fails
        v = ck["fluid/velocity"]
        v[0:2]  # chunk 0 is intact
        with pytest.raises(brine.CorruptCheckpointError, match="fluid/velocity"):
            v[300]  # in chunk 1: rows 262..523
        with pytest.raises(brine.CorruptCheckpointError):
            np.asarray(v)


def test_not_hdf5_and_missing_file(tmp_path):
    path = tmp_path / "ckpt-000000000001.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    raises(brine.CorruptCheckpointError, path, "HDF5")
    for fn in (brine.load, brine.open):
        with pytest.raises(FileNotFoundError):
            fn(tmp_path / "missing.h5")


def test_missing_pickle_and_attributes(tmp_path):
    path = tmp_path / "c.h5"
    _writer.write_checkpoint(path, STATE)
    with h5py.File(path, "r+") as f:
        del f["brine/pickle"].attrs["crc32"]
    raises(brine.CorruptCheckpointError, path, "crc32")
    with h5py.File(path, "r+") as f:
        del f["brine/pickle"]
    raises(brine.CorruptCheckpointError, path, "/brine/pickle")
    with h5py.File(path, "r+") as f:
        del f.attrs["brine_format"]
    raises(brine.CorruptCheckpointError, path, "brine_format")


def test_error_hierarchy():
    assert issubclass(brine.CorruptCheckpointError, brine.BrineError)
    assert issubclass(brine.CorruptCheckpointError, ValueError)
    assert issubclass(brine.UnsafeCheckpointError, brine.CorruptCheckpointError)
    assert issubclass(brine.UnsupportedVersionError, brine.BrineError)
    assert issubclass(brine.UnsupportedVersionError, ValueError)
    assert issubclass(brine.BrineError, Exception)


def test_scalars_encoding_round_trip(tmp_path):
    # every integer opcode of format 3.1 and its boundaries
    ints = [0, 255, 256, 65535, 65536, -1, -(2**31), 2**31 - 1, 2**31, -(2**31) - 1,
            2**63 - 1, -(2**63), 2**64 - 1]
    state = {f"i{j}": n for j, n in enumerate(ints)}
    state.update(t=True, f=False, x=-0.0, nan=float("nan"), c=complex(-1.5, 2.25),
                 s="é" * 200, long="x" * 300)
    path = tmp_path / "c.h5"
    _writer.write_checkpoint(path, state)
    got = brine.load(path)
    for key, want in state.items():
        assert type(got[key]) is type(want)
        assert struct.pack(">d", got[key]) == struct.pack(">d", want) if isinstance(want, float) \
            else got[key] == want
    with brine.open(path) as ck:
        assert ck["i12"] == 2**64 - 1 and ck["c"] == complex(-1.5, 2.25)
