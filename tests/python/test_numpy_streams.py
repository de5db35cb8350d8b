"""What CPython's pickle and numpy write, read by brine's strict decoders (format 3.3).

Streams come from pickle.dumps (protocols 0 to 5, with and without a
buffer_callback) of numpy arrays of every brine dtype and layout, numpy
scalars, and plain values; a few are made by hand (Python 2's STRING
opcodes, numpy 2's module names and 5-argument _frombuffer, hostile
variants).  The C decoder's tree, printed by tests/tools/brine_pickle_dump
(BRINE_PICKLE_DUMP, set by ctest), must equal what this file computes from
the pickled objects themselves.  The Python reader (brine._unpickler, brine.load,
brine.open) must accept and refuse exactly the same streams.
"""

from __future__ import annotations

import fractions
import io
import os
import pathlib
import pickle
import struct
import subprocess
import warnings
import zlib
from typing import Any, Dict, List, Optional

import numpy as np
import pytest

import _writer
import brine
from brine import _unpickler

DTYPES = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
          np.uint64, np.float32, np.float64, np.complex64, np.complex128]


# -- the dump tool ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dump_tool() -> str:
    exe = os.environ.get("BRINE_PICKLE_DUMP")
    if not exe:
        pytest.skip("BRINE_PICKLE_DUMP is not set (ctest sets it to the compiled "
                    "tests/tools/brine_pickle_dump)")
    if not os.access(exe, os.X_OK):
        pytest.fail(f"BRINE_PICKLE_DUMP={exe} is not an executable file")
    return exe


def run_dump(exe: str, stream: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([exe], input=stream, capture_output=True, timeout=60)


def dump_ok(exe: str, stream: bytes) -> List[str]:
    r = run_dump(exe, stream)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r.stdout.decode().splitlines()


def dump_refused(exe: str, stream: bytes, *words: str) -> str:
    r = run_dump(exe, stream)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, (r.returncode, err, r.stdout[:300])
    assert err.startswith("malformed pickle stream: "), err
    for w in words:
        assert w in err, (w, err)
    return err


# -- what the dump must be, computed from the objects --------------------------------------

def bits(x: float) -> str:
    return "%016x" % struct.unpack("<Q", struct.pack("<d", x))[0]


def normal_order(a: np.ndarray) -> str:
    """format 2.3: 'F' only for a genuinely column-major array."""
    fortran = a.flags.f_contiguous and not a.flags.c_contiguous
    big = sum(n != 1 for n in a.shape)
    return "F" if fortran and big >= 2 and a.size > 0 else "C"


class Expect:
    """The dump of objects pickled with a protocol, out of band or not.

    Out of band (protocol 5, a buffer_callback returning False): numpy gives a
    PickleBuffer, thus NEXT_BUFFER, for every C- or F-contiguous array, in the
    order the pickler meets them; a shared array is pickled once.  Any other
    array is pickled in band, its bytes in its memory order.
    """

    def __init__(self, *, out_of_band: bool = False) -> None:
        self.out_of_band = out_of_band
        self.buffers: Dict[int, int] = {}

    def key(self, k: Any) -> str:
        suffix = ""
        if isinstance(k, np.generic):
            suffix = "@" + k.dtype.name
            k = k.item()
        if k is None:
            return "none"
        if type(k) is bool:
            return f"bool:{int(k)}"
        if type(k) is int:
            return f"int:{k}"
        if type(k) is float:
            return f"float:{bits(k)}"
        if type(k) is complex:
            return f"complex:{bits(k.real)}:{bits(k.imag)}"
        if type(k) is str:
            return "str:" + k.encode().hex() + suffix
        if type(k) is bytes:
            return "bytes:" + k.hex()
        if type(k) is tuple:
            return "tuple:(" + ",".join(self.key(x) for x in k) + ")"
        raise TypeError(type(k))

    def value(self, v: Any) -> str:
        if isinstance(v, np.ndarray):
            assert type(v) is np.ndarray and v.dtype.isnative
            order = normal_order(v)
            head = (f"ndarray dtype={v.dtype.name} shape=({','.join(str(n) for n in v.shape)}) "
                    f"order={order} ")
            if self.out_of_band and (v.flags.c_contiguous or v.flags.f_contiguous):
                return head + f"buffer={self.buffers.setdefault(id(v), len(self.buffers))}"
            fortran = v.flags.f_contiguous and not v.flags.c_contiguous
            data = v.tobytes(order="F" if fortran else "C")
            return (head + f"inband len={len(data)} crc32={zlib.crc32(data):08x}"
                    + (f" hex={data.hex()}" if len(data) <= 4096 else ""))
        if isinstance(v, np.generic):
            return self.value(v.item()) + f" np={v.dtype.name}"
        if v is None:
            return "none"
        if type(v) is bool:
            return f"bool {int(v)}"
        if type(v) is int:
            return f"int {v}"
        if type(v) is float:
            return f"float {bits(v)}"
        if type(v) is complex:
            return f"complex {bits(v.real)} {bits(v.imag)}"
        if type(v) in (str, bytes, bytearray):
            raw = v.encode() if type(v) is str else bytes(v)
            return f"{type(v).__name__} len={len(raw)} hex={raw.hex()}"
        if type(v) in (tuple, list):
            return f"{type(v).__name__} n={len(v)}"
        if type(v) is dict:
            return f"dict n={len(v)}"
        raise TypeError(type(v))

    def lines(self, obj: Any, path: str = "$") -> List[str]:
        out = [f"{path} {self.value(obj)}"]
        if type(obj) in (tuple, list):
            for i, x in enumerate(obj):
                out += self.lines(x, f"{path}[{i}]")
        elif type(obj) is dict:
            for k, x in obj.items():
                out += self.lines(x, f"{path}{{{self.key(k)}}}")
        return out

    def dump(self, obj: Any) -> List[str]:
        body = self.lines(obj)
        return body + [f"buffers {len(self.buffers)}"]


# -- what is pickled ------------------------------------------------------------------------

def sample(dtype: Any, shape: tuple, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.integers(0, 2, size=shape).astype(dt)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    x = rng.standard_normal(size=shape) * 1e3
    if dt.kind == "c":
        x = x + 1j * rng.standard_normal(size=shape)
    return x.astype(dt)


def scalar_of(dtype: Any, seed: int) -> np.generic:
    return sample(dtype, (1,), seed)[0]


def every_array(seed: int = 1) -> Dict[str, Any]:
    """Every brine dtype in every layout numpy pickles differently."""
    state: Dict[str, Any] = {}
    for i, dt in enumerate(DTYPES):
        name = np.dtype(dt).name
        c = sample(dt, (3, 4), seed + i)
        state[name] = {
            "c2": c,
            "f2": np.asfortranarray(sample(dt, (4, 5), seed + 20 + i)),
            "f3": np.asfortranarray(sample(dt, (2, 3, 4), seed + 40 + i)),
            "one": sample(dt, (7,), seed + 60 + i),
            "col_f": np.asfortranarray(sample(dt, (5, 1), seed + 80 + i)),  # numpy says C too
            "zero_d": np.array(sample(dt, (1,), seed + 100 + i)[0]),
            "empty": np.zeros((0, 3), dtype=dt),
            "empty_f": np.asfortranarray(np.zeros((4, 0), dtype=dt)),
            "strided": sample(dt, (10,), seed + 120 + i)[::3],  # not contiguous
            "transposed_slice": sample(dt, (4, 6), seed + 140 + i)[:, ::2].T,
            "scalar": scalar_of(dt, seed + 160 + i),
            "in_list": [sample(dt, (2,), seed + 180 + i), (scalar_of(dt, seed + 200 + i),)],
        }
    shared = sample(np.float64, (2, 2), 99)
    state["shared"] = {"x": shared, "y": [shared, shared]}
    return state


def plain_values() -> Dict[str, Any]:
    """What protocols 0 and 1 write with text opcodes (INT, LONG, FLOAT, UNICODE...)."""
    shared = [1, "two", 3.0]
    return {
        "ints": [0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, -2**31, 2**31, -2**31 - 1,
                 2**63 - 1, 2**63, 2**64 - 1, -2**63, 10**18],
        "bools": [True, False, None],
        "floats": [0.0, -0.0, 1.5, 0.1, 1 / 3, 1e300, -1e-300, 5e-324, 2.5e-308,
                   float("inf"), float("-inf"), float("nan"), 1e22, 123456789.125],
        "strs": ["", "plain", "back\\slash", "new\nline", "cr\rlf", "sub\x1aeof", "nul\0",
                 "quote'\"", "caf\u00e9", "\u00ff\u0100", "euro \u20ac", "emoji \U0001F600",
                 "\u0085\u2028", "x" * 300],
        "bytes": [b"", b"\x00\x01\xfe\xff", bytes(range(256))],
        "tuples": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4, 5), ((), ((),))],
        "complex": [complex(1, -2), complex(0.5, 1e300)],
        "nested": {"a": {"b": {"c": [[], {}, [[]]]}}},
        "keys": {1: "int", -5: "neg", "s": "str", None: "none", (1, "a"): "tuple", 2.5: "f",
                 b"k": "bytes", True: "bool"},
        "shared": [shared, shared, {"again": shared}],
        "empty": {},
    }


def numpy_scalars() -> List[Any]:
    return [np.float32(1.5), np.float32(-0.1), np.int64(-3), np.bool_(True), np.bool_(False),
            np.complex64(1 + 2j), np.complex128(-0.5 + 1e300j), np.uint64(2**64 - 1),
            np.int8(-128), np.uint8(255), np.int16(-2), np.uint16(65535), np.int32(-2**31),
            np.uint32(2**32 - 1), np.float64(np.pi)]


def pickled(obj: Any, protocol: int, out_of_band: bool) -> tuple:
    """The stream and its out-of-band buffers."""
    bufs: list = []
    if out_of_band:
        stream = pickle.dumps(obj, protocol=protocol, buffer_callback=lambda b: bufs.append(b) or False)
    else:
        stream = pickle.dumps(obj, protocol=protocol)
    return stream, bufs


CASES = [(p, False) for p in range(6)] + [(5, True)]


def python_accepts(stream: bytes, n_buffers: int = 0) -> Any:
    """The Python reader's decoder on a stream, as brine.load runs it but for any value
    (brine.load also wants a dict of named variables); raises when it refuses."""
    n = _unpickler.scan_stream(stream, path="x.h5")
    assert n == n_buffers
    unpickler = _unpickler.RestrictedUnpickler(io.BytesIO(stream), buffers=[object()] * n,
                                               make_array=lambda spec: spec, path="x.h5")
    try:
        value = unpickler.load()
    except brine.CorruptCheckpointError:
        raise
    except Exception as exc:
        raise brine.CorruptCheckpointError(f"x.h5: {type(exc).__name__}: {exc}") from exc
    if unpickler.unbuilt:
        raise brine.CorruptCheckpointError("x.h5: _reconstruct without BUILD")
    todo, seen = [value], set()
    while todo:  # what collect_arrays refuses in a state: values that exist only while decoding
        v = todo.pop()
        if isinstance(v, _unpickler._INTERNAL + (_unpickler._OutOfBand,)):
            raise brine.CorruptCheckpointError(f"x.h5: a {type(v).__name__} in the value")
        if type(v) in (list, tuple, dict) and id(v) not in seen:
            seen.add(id(v))
            todo.extend(v if type(v) is not dict else [*v.keys(), *v.values()])
    return value


# -- accepted streams -------------------------------------------------------------------------

@pytest.mark.parametrize("protocol,out_of_band", CASES)
def test_arrays_of_every_dtype_and_layout(dump_tool, protocol, out_of_band):
    state = every_array()
    stream, bufs = pickled(state, protocol, out_of_band)
    expect = Expect(out_of_band=out_of_band)
    want = expect.dump(state)
    assert dump_ok(dump_tool, stream) == want
    assert len(bufs) == len(expect.buffers) == (len(DTYPES) * 9 + 1 if out_of_band else 0)
    # Within the same tree: layouts the format normalises and numpy's memo of a shared array.
    got = dump_ok(dump_tool, stream)
    assert "$" + "{str:%s}{str:%s} " % ("float64".encode().hex(), b"f2".hex()) + \
        "ndarray dtype=float64 shape=(4,5) order=F" in "\n".join(got)
    python_accepts(stream, len(bufs))


@pytest.mark.parametrize("protocol,out_of_band", CASES)
def test_plain_values(dump_tool, protocol, out_of_band):
    state = plain_values()
    stream, _ = pickled(state, protocol, out_of_band)
    assert dump_ok(dump_tool, stream) == Expect().dump(state)
    got = python_accepts(stream)
    assert repr(got) == repr(state)


@pytest.mark.parametrize("protocol", range(6))
def test_numpy_scalars(dump_tool, protocol):
    state = {"s": numpy_scalars(), "d": {"x": np.float32(2.5), "y": np.int32(7)}}
    stream, _ = pickled(state, protocol, False)
    assert dump_ok(dump_tool, stream) == Expect().dump(state)
    got = python_accepts(stream)
    for a, b in zip(state["s"], got["s"]):
        assert type(a) is type(b) and a.dtype == b.dtype and (a == b or (a != a and b != b))


def test_text_opcodes_are_used():
    # The plain values above really go through the text opcodes at protocol 0.
    import pickletools
    names = {op.name for op, _, _ in pickletools.genops(pickle.dumps(plain_values(), protocol=0))}
    assert {"INT", "LONG", "FLOAT", "UNICODE", "DICT", "LIST", "PUT", "GET", "TUPLE",
            "GLOBAL", "REDUCE"} <= names
    names = {op.name for op, _, _ in pickletools.genops(pickle.dumps(every_array(), protocol=5))}
    assert {"FRAME", "MEMOIZE", "BINGET", "BYTEARRAY8", "STACK_GLOBAL", "BUILD"} <= names


# Python 2's str opcodes and LONG's 'L' suffix, by hand; Python 3 reads STRING, BINSTRING
# and SHORT_BINSTRING as str (encoding 'ASCII').  The oracle is Python's own pickle.loads.
PYTHON2_STREAMS = {
    "string": b"(S'abc'\nS\"it's\"\nS'tab\\there\\n\\\\ \\x41\\101\\0'\nS''\nl.",
    "binstring": b"(T\x03\x00\x00\x00xyzU\x02hiU\x00l.",
    "long_suffix": b"(L12345678901234567890L\nL-5L\nL0\nL-0\nI000\nI-7\nI2\nl.",
    "dict_text": b"(dp0\nS'a'\np1\nI1\nsS'b'\np2\n(lp3\ng1\nasS'c'\ng3\ns.",
    "proto2_text": b"\x80\x02(I01\nI00\nF-1.5e-3\nFnan\nF-inf\nV\\u20ac\\U0001f600\xe9\nl.",
}


@pytest.mark.parametrize("name", sorted(PYTHON2_STREAMS))
def test_python2_streams(dump_tool, name):
    stream = PYTHON2_STREAMS[name]
    obj = pickle.loads(stream)
    assert dump_ok(dump_tool, stream) == Expect().dump(obj)
    assert repr(python_accepts(stream)) == repr(obj)


def numpy2_names(stream: bytes) -> bytes:
    """A protocol 0-2 stream as numpy 2 writes it: numpy._core instead of numpy.core."""
    out = stream.replace(b"cnumpy.core.multiarray\n", b"cnumpy._core.multiarray\n")
    assert out != stream
    return out


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_numpy2_module_names(dump_tool, protocol):
    state = {"a": np.asfortranarray(sample(np.int32, (3, 2), 5)), "s": np.float32(0.25),
             "z": np.array(3 + 4j)}
    stream = numpy2_names(pickle.dumps(state, protocol=protocol))
    assert dump_ok(dump_tool, stream) == Expect().dump(state)
    got = python_accepts(stream)
    assert np.array_equal(got["a"], state["a"]) and got["a"].flags.f_contiguous
    assert got["s"] == state["s"] and got["s"].dtype == np.float32


# _frombuffer by hand, as numpy 2 writes it (numpy._core.numeric, 5 arguments).

def op_str(s: str) -> bytes:
    return _writer.op_str(s)


def op_int(n: int) -> bytes:
    return _writer.op_int(n)


def op_tuple(items: List[bytes]) -> bytes:
    return b"(" + b"".join(items) + b"t"


def dtype_ops(code: str, order: str = "<") -> bytes:
    return (b"cnumpy\ndtype\n" + op_str(code) + b"\x89\x88\x87R"
            + op_tuple([op_int(3), op_str(order), b"N", b"N", b"N", b"J\xff\xff\xff\xff",
                        b"J\xff\xff\xff\xff", op_int(0)]) + b"b")


def frombuffer_stream(buf: bytes, code: str, shape: tuple, order: str, axis_order: Any = (),
                      module: str = "numpy._core.numeric", byteorder: str = "<") -> bytes:
    args = [buf, dtype_ops(code, byteorder), op_tuple([op_int(n) for n in shape]), op_str(order)]
    if axis_order != ():
        args.append(b"N" if axis_order is None
                    else op_tuple([op_int(n) for n in axis_order]))
    return (b"\x80\x05}" + op_str("a") + b"c" + module.encode() + b"\n_frombuffer\n"
            + op_tuple(args) + b"Rs.")


def in_band(a: np.ndarray) -> bytes:
    data = a.tobytes(order="A")
    return b"\x96" + struct.pack("<Q", len(data)) + data  # BYTEARRAY8


def numpy2_frombuffer(buf: bytes, dtype: str, shape: tuple, order: str, axis_order=None):
    # numpy 2.4's numpy/_core/numeric.py _frombuffer
    array = np.frombuffer(buf, dtype=dtype)
    if order == "K" and axis_order is not None:
        return array.reshape(shape, order="C").transpose(axis_order)
    return array.reshape(shape, order=order)


@pytest.mark.parametrize("module", ["numpy.core.numeric", "numpy._core.numeric"])
def test_frombuffer_five_arguments(dump_tool, module):
    a = sample(np.float64, (2, 3, 4), 7)
    phys = np.ascontiguousarray(a)
    cases = [
        ((), "C", phys),                      # numpy 1.x: 4 arguments
        (None, "C", phys),                    # numpy 2: axis_order None
        ((0, 1, 2), "K", phys),               # the identity: C order
        ((2, 1, 0), "K", None),               # the reversal: the F array of the reversed shape
    ]
    for axis_order, order, _ in cases:
        stream = frombuffer_stream(in_band(phys), "f8", phys.shape, order, axis_order, module)
        ax = None if axis_order in ((), None) else axis_order
        want = numpy2_frombuffer(phys.tobytes(), "<f8", phys.shape, order, ax)
        if module == "numpy.core.numeric" and axis_order == ():
            assert np.array_equal(pickle.loads(stream)["a"], want)  # numpy itself agrees
        assert dump_ok(dump_tool, stream) == Expect().dump({"a": want}), (axis_order, order)
        got = python_accepts(stream)["a"]
        assert np.array_equal(got, want) and got.shape == want.shape
        assert got.flags.f_contiguous == want.flags.f_contiguous
    # Other permutations have no C or F layout.
    stream = frombuffer_stream(in_band(phys), "f8", phys.shape, "K", (1, 0, 2), module)
    dump_refused(dump_tool, stream, "axis_order (1, 0, 2)", "neither the identity nor the reversal")
    with pytest.raises(brine.CorruptCheckpointError, match="axis_order"):
        python_accepts(stream)


def test_inband_forms_of_frombuffer(dump_tool):
    a = sample(np.uint16, (3, 3), 8)
    for buf in (in_band(a), b"B" + struct.pack("<I", a.nbytes) + a.tobytes(),
                b"C" + bytes([a.nbytes]) + a.tobytes(),
                b"\x8e" + struct.pack("<Q", a.nbytes) + a.tobytes()):
        stream = frombuffer_stream(buf, "u2", a.shape, "C", (), "numpy.core.numeric")
        assert np.array_equal(pickle.loads(stream)["a"], a)
        assert dump_ok(dump_tool, stream) == Expect().dump({"a": a})
        assert np.array_equal(python_accepts(stream)["a"], a)
    # Byte orders '|' and '=' are little-endian here.
    b = sample(np.uint8, (4,), 9)
    for order in "|=<":
        stream = frombuffer_stream(in_band(b), "u1", b.shape, "C", (), "numpy.core.numeric",
                                   byteorder=order)
        assert dump_ok(dump_tool, stream) == Expect().dump({"a": b})
        python_accepts(stream)


def test_order_normalised(dump_tool):
    # numpy writes 'C' for these itself; a hand-made 'F' (or is_fortran) is read as C (format 2.3).
    for shape in [(5, 1), (1, 1, 6), (7,), (4, 0)]:
        a = np.asfortranarray(sample(np.int32, shape, 11))
        stream = frombuffer_stream(in_band(a), "i4", shape, "F", (), "numpy.core.numeric")
        line = dump_ok(dump_tool, stream)[1]
        assert line.endswith(Expect().value(a)) and " order=C " in line, (shape, line)
        assert np.array_equal(python_accepts(stream)["a"], a)
    for fortran, shape, order in [(b"\x88", (3, 1), "C"), (b"\x88", (3, 2), "F"), (b"\x89", (3, 2), "C")]:
        a = sample(np.uint8, shape, 12)
        a = np.asfortranarray(a) if order == "F" else a
        stream = (b"\x80\x05}" + op_str("a") + b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
                  + op_int(0) + b"\x85C\x01b\x87R" + op_tuple([op_int(1), op_tuple([op_int(n) for n in shape]),
                                                           dtype_ops("u1", "|"), fortran,
                                                           b"C" + bytes([a.size]) + a.tobytes(order="A")])
                  + b"bs.")
        assert np.array_equal(pickle.loads(stream)["a"], a)  # numpy agrees
        line = dump_ok(dump_tool, stream)[1]
        assert f" order={order} " in line and line.endswith(Expect().value(a)), line
        got = python_accepts(stream)["a"]
        assert np.array_equal(got, a) and normal_order(got) == order


# -- refused streams ------------------------------------------------------------------------

class Opaque:
    def __init__(self, x: int) -> None:
        self.x = x


def refused_cases() -> Dict[str, tuple]:
    """name -> (stream, words of the C message)."""
    cases: Dict[str, tuple] = {}
    for p in (2, 4, 5):
        cases[f"big_endian_p{p}"] = (pickle.dumps({"a": np.arange(3, dtype=">f8")}, protocol=p),
                                     ["big-endian", "float64"])
        cases[f"float16_p{p}"] = (pickle.dumps({"a": np.zeros(3, np.float16)}, protocol=p),
                                  ["'f2'", "float16"])
        cases[f"object_p{p}"] = (pickle.dumps({"a": np.array([1, None], dtype=object)}, protocol=p),
                                 ["'O8'", "object"])
    cases["str_array"] = (pickle.dumps(np.array(["ab"]), protocol=5), ["'U2'", "str"])
    cases["datetime"] = (pickle.dumps(np.array(["2020-01-01"], dtype="M8[D]"), protocol=5),
                         ["'M8'", "datetime64"])
    cases["structured"] = (pickle.dumps(np.zeros(2, dtype=[("x", "<f4"), ("y", "<i4")]),
                                        protocol=5), ["'V8'", "structured"])
    cases["longdouble"] = (pickle.dumps(np.zeros(2, dtype=np.longdouble), protocol=5), ["float128"])
    cases["float16_scalar"] = (pickle.dumps(np.float16(1), protocol=5), ["float16"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        cases["matrix"] = (pickle.dumps(np.matrix([[1.0]]), protocol=5), ["global 'numpy matrix'"])
    cases["os_system"] = (pickle.dumps(os.system, protocol=5), ["global 'posix system'"])
    cases["os_system_call"] = (b"\x80\x05cos\nsystem\n" + op_str("true") + b"\x85R.",
                               ["global 'os system' is not allowed"])
    cases["set"] = (pickle.dumps({1, 2}, protocol=4), ["EMPTY_SET", "sets are not state"])
    cases["frozenset"] = (pickle.dumps(frozenset({1}), protocol=4), ["FROZENSET"])
    cases["set_p2"] = (pickle.dumps({1, 2}, protocol=2), ["global '__builtin__ set'"])
    cases["bytearray_p2"] = (pickle.dumps(bytearray(b"x"), protocol=2),
                             ["global '__builtin__ bytearray'"])
    cases["instance"] = (pickle.dumps(Opaque(1), protocol=5), ["global '"])
    cases["fraction"] = (pickle.dumps(fractions.Fraction(1, 3), protocol=2),
                         ["global 'fractions Fraction'"])
    ro = np.arange(4.0)
    ro.flags.writeable = False
    cases["readonly_buffer"] = (pickle.dumps(ro, protocol=5, buffer_callback=lambda b: False),
                                ["READONLY_BUFFER"])
    cases["build_on_list"] = (b"\x80\x05]}b.", ["BUILD applies only", "not to a list"])
    cases["build_on_dict_p0"] = (b"(dp0\n(dp1\nb.", ["BUILD applies only", "dict"])
    cases["build_on_array"] = (frombuffer_stream(in_band(np.zeros(2)), "f8", (2,), "C")[:-2]
                               + b"NbX\x01\x00\x00\x00as.", ["BUILD applies only"])
    cases["dtype_built_twice"] = (b"\x80\x05" + dtype_ops("f8")
                                  + op_tuple([op_int(3), op_str("<"), b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xff",
                                              op_int(0)]) + b"b.", ["already has its state"])
    cases["dtype_bad_state"] = (b"\x80\x05cnumpy\ndtype\n" + op_str("f8") + b"\x89\x88\x87R"
                                + op_tuple([op_int(3), op_str("<")]) + b"b.", ["state of the numpy.dtype"])
    cases["dtype_pipe_f8"] = (frombuffer_stream(in_band(np.zeros(1)), "f8", (1,), "C",
                                                byteorder="|"), ["'|'"])
    cases["dtype_alone"] = (b"\x80\x05" + dtype_ops("f8") + b".", ["numpy.dtype"])
    cases["dtype_in_list"] = (b"\x80\x05]" + dtype_ops("f8") + b"a.", ["numpy.dtype", "list"])
    cases["reconstruct_without_build"] = (
        b"\x80\x05cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R.",
        ["_reconstruct"])
    cases["reconstruct_other_class"] = (
        b"\x80\x05cnumpy.core.multiarray\n_reconstruct\ncbuiltins\ncomplex\nK\x00\x85C\x01b\x87R.",
        ["_reconstruct takes exactly"])
    cases["frombuffer_short"] = (frombuffer_stream(b"C\x07" + b"\0" * 7, "f8", (1,), "C"),
                                 ["7 bytes", "need 8"])
    cases["frombuffer_long"] = (frombuffer_stream(b"C\x09" + b"\0" * 9, "f8", (1,), "C"),
                                ["9 bytes", "need 8"])
    cases["frombuffer_3_args"] = (b"\x80\x05cnumpy.core.numeric\n_frombuffer\n"
                                  + op_tuple([b"\x97", dtype_ops("f8"), b")"]) + b"R.",
                                  ["got 3 arguments"])
    cases["frombuffer_str_dtype"] = (b"\x80\x05cnumpy.core.numeric\n_frombuffer\n"
                                     + op_tuple([b"\x97", op_str("<f8"), b")", op_str("C")])
                                     + b"R.", ["not a numpy.dtype"])
    cases["frombuffer_K_no_axes"] = (frombuffer_stream(in_band(np.zeros(2)), "f8", (2,), "K"),
                                     ["order 'K' needs an axis_order"])
    cases["frombuffer_axes_with_C"] = (frombuffer_stream(in_band(np.zeros(2)), "f8", (2,), "C",
                                                         (0,)), ["must be None"])
    cases["frombuffer_9_dims"] = (frombuffer_stream(in_band(np.zeros(1)), "f8", (1,) * 9, "C"),
                                  ["at most 8"])
    cases["scalar_bool_2"] = (b"\x80\x05cnumpy.core.multiarray\nscalar\n" + dtype_ops("b1")
                              + b"C\x01\x02\x86R.", ["0 or 1"])
    cases["scalar_short"] = (b"\x80\x05cnumpy.core.multiarray\nscalar\n" + dtype_ops("f8")
                             + b"C\x04\0\0\0\0\x86R.", ["4 bytes, not 8"])
    cases["scalar_str_data"] = (b"\x80\x05cnumpy.core.multiarray\nscalar\n" + dtype_ops("u1")
                                + op_str("x") + b"\x86R.", ["numpy.dtype, bytes"])
    cases["bytes_huge"] = (b"c__builtin__\nbytes\n(I1000000000\ntR.", ["takes no arguments"])
    cases["encode_utf8"] = (b"\x80\x02c_codecs\nencode\n" + op_str("x") + op_str("utf8")
                            + b"\x86R.", ["'latin1'"])
    cases["encode_euro"] = (b"\x80\x02c_codecs\nencode\n" + op_str("\u20ac") + op_str("latin1")
                            + b"\x86R.", ["above U+00FF"])
    # Text arguments Python would read but pickle never writes.
    cases["int_hex"] = (b"I0x10\n.", ["not a decimal integer"])
    cases["int_leading_zeros"] = (b"I007\n.", ["leading zeros"])
    cases["int_underscore"] = (b"I1_000\n.", ["not a decimal integer"])
    cases["int_space"] = (b"I 1\n.", ["not a decimal integer"])
    cases["int_plus"] = (b"I+1\n.", ["not a decimal integer"])  # True for CPython's C unpickler
    cases["int_minus_zero"] = (b"I-0\n.", ["ambiguous"])
    cases["float_overflow"] = (b"F1e999\n.", ["out of the range"])
    cases["int_2_64"] = (b"I18446744073709551616\n.", ["does not fit in 64 bits"])
    cases["int_no_newline"] = (b"I1", ["no end of line"])
    cases["long_below"] = (b"L-9223372036854775809L\n.", ["below -2**63"])
    cases["float_underscore"] = (b"F1_0.5\n.", ["not a float"])
    cases["float_hex"] = (b"F0x1p3\n.", ["not a float"])
    cases["float_empty"] = (b"F\n.", ["not a float"])
    cases["unicode_backslash"] = (b"Va\\b\n.", ["backslash"])
    cases["unicode_bad_escape"] = (b"V\\u12\n.", ["truncated"])
    cases["unicode_surrogate"] = (b"V\\ud800\n.", ["surrogate"])
    cases["unicode_above_max"] = (b"V\\U00110000\n.", ["above U+10FFFF"])
    cases["string_unquoted"] = (b"Sabc\n.", ["must be quoted"])
    cases["string_mismatched_quotes"] = (b"S'abc\"\n.", ["must be quoted"])
    cases["string_unknown_escape"] = (b"S'a\\qb'\n.", ["escape '\\q'"])
    cases["string_not_ascii"] = (b"S'\\xe9'\n.", ["not ASCII"])
    cases["string_raw_not_ascii"] = (b"S'\xc3\xa9'\n.", ["not ASCII"])
    cases["binstring_not_ascii"] = (b"T\x01\x00\x00\x00\xe9.", ["not ASCII"])
    cases["binstring_negative"] = (b"T\xff\xff\xff\xffx.", ["negative byte count"])
    cases["binstring_past_end"] = (b"T\x10\x00\x00\x00x.", ["needs 16 more bytes"])
    cases["put_negative"] = (b"Np-1\n.", ["negative memo index"])
    cases["get_missing"] = (b"Ng7\n.", ["memo entry 7"])
    cases["dict_odd"] = (b"(I1\nd.", ["odd number"])
    cases["list_without_mark"] = (b"l.", ["no MARK"])
    cases["bytearray8_past_end"] = (b"\x80\x05\x96\x10\0\0\0\0\0\0\0abc.", ["needs 16 more bytes"])
    cases["stop_two_values"] = (b"\x80\x05NN.", ["holds 2 values"])
    cases["stop_open_mark"] = (b"\x80\x05(N.", ["MARK never closed"])
    cases["bytearray_key"] = (b"\x80\x05}\x96\x01\0\0\0\0\0\0\0xNs.", ["bytearray cannot be a dict key"])
    return cases


REFUSED = refused_cases()

#: Refused by the C decoder, which has no place for integers beyond 64 bits; the Python
#: reader has (brine.load returns them, as it does for LONG1 and LONG4).
C_ONLY = {"int_2_64", "long_below"}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused(dump_tool, name):
    stream, words = REFUSED[name]
    dump_refused(dump_tool, stream, *words)
    # The Python reader refuses the same streams.
    if name in C_ONLY:
        python_accepts(stream)
        return
    with pytest.raises(brine.CorruptCheckpointError):
        python_accepts(stream, stream.count(b"\x97"))


#: What the C decoder alone refuses (format 3.3): integers beyond 64 bits, lists and dicts
#: changed once inside another value.  The Python reader alone refuses a bare out-of-band
#: buffer, which is no variable of a state.
C_ONLY_WORDS = ("does not fit in 64 bits", "below -2**63", "already inside another value")


def test_fuzz_corpus_parity(dump_tool):
    # The committed fuzz corpus (tests/fuzz/corpus/fuzz_pickle_decode): both decoders
    # accept and refuse the same inputs, but for the documented differences.
    corpus = pathlib.Path(__file__).resolve().parent.parent / "fuzz" / "corpus" / "fuzz_pickle_decode"
    files = sorted(corpus.iterdir())
    assert len(files) > 100
    accepted = 0
    for f in files:
        stream = f.read_bytes()
        r = run_dump(dump_tool, stream)
        assert r.returncode in (0, 1), (f.name, r.stderr)
        try:
            python_accepts(stream, _unpickler.scan_stream(stream, path="x.h5"))
            python_ok, why = True, ""
        except brine.CorruptCheckpointError as exc:
            python_ok, why = False, str(exc)
        if (r.returncode == 0) != python_ok:
            c_why = r.stderr.decode(errors="replace")
            assert (any(w in c_why for w in C_ONLY_WORDS) if python_ok else "_OutOfBand" in why), \
                (f.name, c_why, why)
        accepted += r.returncode == 0
    assert accepted > 20


@pytest.mark.parametrize("protocol,out_of_band", [(0, False), (2, False), (5, False), (5, True)])
def test_truncated_streams(dump_tool, protocol, out_of_band):
    state = {"a": np.asfortranarray(sample(np.float32, (2, 3), 3)), "s": np.int16(-7),
             "v": [1.5, "x\u20ac", b"yz", None]}
    stream, bufs = pickled(state, protocol, out_of_band)
    dump_ok(dump_tool, stream)
    for n in range(len(stream)):
        r = run_dump(dump_tool, stream[:n])
        assert r.returncode == 1, (n, r.stdout[:200])
        assert r.stderr.startswith(b"malformed pickle stream: "), r.stderr


# -- brine.load and brine.open of checkpoints whose stream numpy wrote ------------------------

def write_numpy_checkpoint(path: pathlib.Path, state: dict, protocol: int, out_of_band: bool,
                           datasets: Optional[dict] = None) -> None:
    """A checkpoint of state whose stream is pickle.dumps itself; the arrays of datasets (by
    default every array of state, which must then be contiguous) are written at /state/<name>
    as the format says, in the order numpy gives them out of band."""
    stream, bufs = pickled(state, protocol, out_of_band)
    names = [] if not out_of_band else ["/state/" + n for n in (datasets or {})]
    assert len(names) == len(bufs)
    _writer.write_checkpoint(path, datasets or {}, step=1, stream=stream, buffers=names)


def test_load_and_open_out_of_band(tmp_path):
    arrays = {"c": sample(np.float64, (3, 4), 1),
              "f": np.asfortranarray(sample(np.int32, (4, 5), 2)),
              "b": sample(np.bool_, (6,), 3), "z": sample(np.complex64, (2, 2), 4)}
    state = dict(arrays, t=np.float64(0.5), n=np.int64(7), name="run", nc=sample(np.uint8, (9,), 5)[::2])
    path = tmp_path / "ckpt-000000000001.h5"
    # nc is not contiguous: numpy pickles it in band (_reconstruct), with no dataset.
    write_numpy_checkpoint(path, state, 5, True, datasets=arrays)
    loaded = brine.load(path)
    assert set(loaded) == set(state)
    for k, v in state.items():
        if isinstance(v, np.ndarray):
            assert type(loaded[k]) is np.ndarray and loaded[k].dtype == v.dtype
            assert np.array_equal(loaded[k], v)
            assert loaded[k].flags.f_contiguous == (normal_order(v) == "F" or v.ndim < 2)
        else:
            assert type(loaded[k]) is type(v) and loaded[k] == v
    with brine.open(path) as ckpt:
        for k in arrays:
            lazy = ckpt[k]
            assert isinstance(lazy, brine.LazyArray)
            assert lazy.shape == arrays[k].shape and lazy.dtype == arrays[k].dtype
            assert np.array_equal(lazy[...], arrays[k])
        assert lazy.order == "C"
        assert ckpt["f"].order == "F" and np.array_equal(ckpt["f"][1:3, ::2], arrays["f"][1:3, ::2])
        assert type(ckpt["nc"]) is np.ndarray and np.array_equal(ckpt["nc"], state["nc"])
        assert ckpt["t"] == 0.5 and ckpt["t"].dtype == np.float64


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_load_in_band(tmp_path, protocol):
    # Everything in band (protocols 2 to 4: _reconstruct; 5 without callback: _frombuffer
    # of a bytearray): read at once, no dataset.
    state = {"f": np.asfortranarray(sample(np.float32, (3, 2), 6)),
             "g": {"i": sample(np.int16, (5,), 7), "s": np.complex128(1 - 1j), "l": [1, (2.5,)]}}
    path = tmp_path / "ckpt-000000000001.h5"
    write_numpy_checkpoint(path, state, protocol, False)
    for loaded in (brine.load(path), brine.open(path)):
        assert np.array_equal(loaded["f"], state["f"]) and loaded["f"].flags.f_contiguous
        assert loaded["f"].flags.writeable
        assert np.array_equal(loaded["g"]["i"], state["g"]["i"])
        assert loaded["g"]["s"] == state["g"]["s"] and loaded["g"]["l"] == [1, (2.5,)]


def test_load_brine_ndarray_in_band(tmp_path):
    # brine's own form with in-band bytes, which brine_restore reads (it was refused before
    # numpy's own pickles were accepted).
    stream = (b"\x80\x05}(" + op_str("a") + b"cnumpy\nndarray\n(" + op_int(2) + op_int(3)
              + b"\x86" + op_str("<f8") + b"C\x30" + np.arange(6.0).tobytes() + op_int(0) + b"N"
              + op_str("C") + b"tRu.")
    path = tmp_path / "ckpt-000000000001.h5"
    _writer.write_checkpoint(path, {}, step=1, stream=stream)
    assert np.array_equal(brine.load(path)["a"], np.arange(6.0).reshape(2, 3))


@pytest.mark.parametrize("name", ["big_endian_p5", "float16_p4", "build_on_list", "set",
                                  "reconstruct_without_build", "bytes_huge", "unicode_backslash",
                                  "dtype_in_list", "frombuffer_short"])
def test_load_refuses(tmp_path, name):
    stream, _ = REFUSED[name]
    path = tmp_path / "ckpt-000000000001.h5"
    _writer.write_checkpoint(path, {}, step=1, stream=stream, buffers=[])
    for call in (brine.load, brine.open):
        with pytest.raises(brine.CorruptCheckpointError) as info:
            call(path)
        assert str(path) in str(info.value)


def test_bare_buffer_and_dtype_in_state_are_refused(tmp_path):
    path = tmp_path / "ckpt-000000000001.h5"
    stream = b"\x80\x05}(" + op_str("a") + b"\x97u."
    _writer.write_checkpoint(path, {}, step=1, stream=stream, buffers=["/state/a"])
    with pytest.raises(brine.CorruptCheckpointError, match="bare out-of-band buffer"):
        brine.load(path)
    # A dtype hidden in a tuple: the C decoder refuses the tuple, the reader the dtype.
    stream = b"\x80\x05}(" + op_str("a") + dtype_ops("f8") + b"\x85u."
    _writer.write_checkpoint(path, {}, step=1, stream=stream, buffers=[])
    with pytest.raises(brine.CorruptCheckpointError, match="numpy.dtype"):
        brine.load(path)


def test_dump_tool_usage(dump_tool, tmp_path):
    f = tmp_path / "s.pkl"
    f.write_bytes(pickle.dumps({"k": [1]}, protocol=5))
    r = subprocess.run([dump_tool, str(f)], capture_output=True, timeout=60)
    assert r.returncode == 0 and r.stdout.decode().splitlines() == Expect().dump({"k": [1]})
    r = subprocess.run([dump_tool, str(tmp_path / "missing")], capture_output=True, timeout=60)
    assert r.returncode == 2
    dump_refused(dump_tool, b"", "empty")
