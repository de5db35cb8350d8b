"""brine.save: what it writes loads bit-identically with brine.load, brine.open,
stock h5py + pickle and the C library's brine_restore (tests/tools/brine_roundtrip),
in every direction; the file's layout is format.md's; publication is atomic;
invalid input is refused with the key path named, before anything is written."""

from __future__ import annotations

import hashlib
import io
import os
import pathlib
import pickle
import pickletools
import re
import socket
import struct
import subprocess
import zlib
from fractions import Fraction
from typing import Any, Dict, List, Optional, Tuple

import h5py
import numpy as np
import pytest

import _writer
import brine
import brine._save
from conftest import checkpoint_path, run_fixture
from fixture_values import DTYPES, bits, expected_state, walk

NUMPY_STR = {"bool": "|b1", "int8": "|i1", "int16": "<i2", "int32": "<i4", "int64": "<i8",
             "uint8": "|u1", "uint16": "<u2", "uint32": "<u4", "uint64": "<u8",
             "float32": "<f4", "float64": "<f8", "complex64": "<c8", "complex128": "<c16"}
DTYPE_NAME = {v: k for k, v in NUMPY_STR.items()}


# ---------------------------------------------------------------- helpers

def random_array(rng: np.random.Generator, dtype: str, shape: Tuple[int, ...],
                 order: str = "C") -> np.ndarray:
    """Random bits (NaNs with random payloads, -0.0, ...), bool 0 or 1."""
    dt = np.dtype(NUMPY_STR[dtype])
    n = int(np.prod(shape, dtype=np.int64))
    if dtype == "bool":
        flat = rng.integers(0, 2, n).astype(bool)
    else:
        flat = rng.integers(0, 256, n * dt.itemsize, dtype=np.uint8).view(dt)
    return flat.reshape(shape, order=order)


def is_fortran(a: np.ndarray) -> bool:
    """format.md 2.3: F only for a genuinely column-major array."""
    return bool(a.size and sum(n != 1 for n in a.shape) >= 2
                and a.flags.f_contiguous and not a.flags.c_contiguous)


def normalized(value: Any) -> Any:
    """What brine.load should give back for a value given to brine.save."""
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items()}
    if isinstance(value, np.ndarray) and value.ndim >= 1:
        a = value.astype(value.dtype.newbyteorder("<")) if value.dtype.byteorder == ">" else value
        return np.asfortranarray(a) if is_fortran(a) else np.ascontiguousarray(a)
    if isinstance(value, (np.generic, np.ndarray)):
        return value.item()
    return value


def scalar_bits(x: Any) -> Any:
    if type(x) is float:
        return struct.pack("<d", x)
    if type(x) is complex:
        return struct.pack("<dd", x.real, x.imag)
    return x


def assert_same(got: Dict[str, Any], want: Dict[str, Any]) -> None:
    """Same names in the same order, arrays bit-identical with the same dtype,
    shape and memory order, scalars of the same type and bits."""
    got_items, want_items = list(walk(got)), list(walk(want))
    assert [n for n, _ in got_items] == [n for n, _ in want_items]
    for (name, g), (_, w) in zip(got_items, want_items):
        if isinstance(w, np.ndarray):
            assert isinstance(g, np.ndarray), name
            assert (g.shape, g.dtype.str) == (w.shape, w.dtype.str), name
            assert (g.flags.c_contiguous, g.flags.f_contiguous) == \
                (w.flags.c_contiguous, w.flags.f_contiguous), name
            assert np.array_equal(bits(g), bits(w)), name
        else:
            assert type(g) is type(w), (name, g, w)
            assert scalar_bits(g) == scalar_bits(w), (name, g, w)


def stock_load(path: Any) -> Dict[str, Any]:
    """The snippet of format.md section 4, verbatim."""
    with h5py.File(path, "r") as f:
        p = f["brine/pickle"]
        state = pickle.loads(p[()].tobytes(), buffers=[f[n][()] for n in p.attrs["buffers"]])
    return state


def open_load(path: Any) -> Dict[str, Any]:
    """brine.open, every array read whole."""
    def read(group: Any) -> Dict[str, Any]:
        return {k: read(v) if isinstance(v, brine.Group) else
                v.read() if isinstance(v, brine.LazyArray) else v for k, v in group.items()}
    with brine.open(path) as ckpt:
        return read(ckpt)


LOADERS = {"brine.load": brine.load, "brine.open": open_load, "stock": stock_load}


def nan64(payload: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", payload))[0]


def full_state(seed: int = 1) -> Dict[str, Any]:
    """Every dtype in C and F order, non-contiguous, big-endian and empty arrays,
    scalars of every kind, nested and empty groups."""
    rng = np.random.default_rng(seed)
    arrays: Dict[str, Any] = {}
    for d, name in enumerate(DTYPES):
        dt = NUMPY_STR[name]
        arrays[name] = {
            "c1": random_array(rng, name, (5 + d,)),
            "c2": random_array(rng, name, (3, 4 + d % 3)),
            "f2": random_array(rng, name, (4 + d % 2, 3), "F"),
            "f3": random_array(rng, name, (2, 3, 4), "F"),
            "strided": random_array(rng, name, (6, 8))[::2, 1::3],  # copied to C order
            "f_row": random_array(rng, name, (1, 7), "F"),          # one extent != 1: C
            "empty": np.zeros((0, 3), dtype=dt),
            "empty_f": np.zeros((4, 0), dtype=dt, order="F"),
        }
        if np.dtype(dt).itemsize > 1:
            arrays[name]["big_endian"] = random_array(rng, name, (3, 5)).astype(
                np.dtype(dt).newbyteorder(">"))
    arrays["nd8"] = random_array(rng, "int16", (2, 1, 3, 1, 2, 2, 1, 3), "F")
    scalars = {
        "true": True, "false": False, "np_bool": np.bool_(True),
        "int0": 0, "int255": 255, "int256": 256, "int65536": 65536, "neg": -1,
        "int32_min": -2**31, "int32_max": 2**31 - 1, "big": 2**40 + 3,
        "int64_min": -2**63, "int64_max": 2**63 - 1, "uint64_max": 2**64 - 1,
        "np_int8": np.int8(-7), "np_uint64": np.uint64(2**64 - 2), "np_int64": np.int64(-2**63),
        "float": 0.1, "neg_zero": -0.0, "inf": float("inf"), "ninf": float("-inf"),
        "nan": nan64(0x7FF8000000000000), "nan_payload": nan64(0x7FF8000000012345),
        "neg_nan": nan64(0xFFF8000000000001), "snan": nan64(0x7FF0000000000001),
        "tiny": 5e-324, "np_float32": np.float32(1 / 3), "np_float64": np.float64(-2.5),
        "complex": complex(1.5, -0.0), "complex_nan": complex(nan64(0x7FF8000000000042), -1.0),
        "np_complex64": np.complex64(complex(0.25, 1 / 3)), "np_complex128": np.complex128(2j),
        "zero_d": np.array(7, dtype=np.uint16), "zero_d_f": np.array(1.25, dtype=">f8"),
        "str": "héllo wörld ✓ 😀", "empty_str": "", "np_str": np.str_("numpy str"),
        "long_str": "é" * 300, "huge_str": "x" * 70000 + "✓",
    }
    deep: Dict[str, Any] = {"leaf": np.arange(3, dtype=np.int64)}
    for level in range(29):  # groups/deep/level28/.../level0/leaf: 32 components
        deep = {f"level{level}": deep}
    return {
        "numpy": "a key named like the module, before the first array",
        "arrays": arrays,
        "scalars": scalars,
        "groups": {"a": {"b": {"c": np.ones((2, 2))}, "empty": {}}, "deep": deep},
        "t": 1.0,
    }


def roundtrip_exe() -> str:
    exe = os.environ.get("BRINE_ROUNDTRIP")
    if not exe:
        pytest.skip("BRINE_ROUNDTRIP is not set (ctest sets it to the compiled "
                    "tests/tools/brine_roundtrip): no C round trips")
    if not os.access(exe, os.X_OK):
        pytest.fail(f"BRINE_ROUNDTRIP={exe} is not an executable file")
    return exe


def c_spec(state: Dict[str, Any], *, scalar_dtypes: Optional[Dict[str, str]] = None,
           capacities: Optional[Dict[str, int]] = None) -> Tuple[str, bytes]:
    """brine_roundtrip's SPEC for a (normalized) state, and the variables' bytes."""
    scalar_dtypes = scalar_dtypes or {}
    capacities = capacities or {}
    lines: List[str] = []
    data = io.BytesIO()
    for name, v in walk(state):
        if isinstance(v, dict):  # an empty group holds no variable
            continue
        if isinstance(v, np.ndarray):
            order = "F" if is_fortran(v) else "C"
            dims = " ".join(str(n) for n in v.shape)
            lines.append(f"{name} array {DTYPE_NAME[v.dtype.str]} {order} {v.ndim} {dims}")
            data.write(v.tobytes(order=order))
        elif isinstance(v, str):
            raw = v.encode("utf-8")
            capacity = capacities.get(name, len(raw) + 1)
            lines.append(f"{name} string - - 0 {capacity}")
            data.write(raw + b"\0" * (capacity - len(raw)))
        else:
            dtype = scalar_dtypes.get(name) or (
                "bool" if isinstance(v, bool) else
                ("uint64" if v > 2**63 - 1 else "int64") if isinstance(v, int) else
                "float64" if isinstance(v, float) else "complex128")
            lines.append(f"{name} scalar {dtype} C 0")
            data.write(np.array(v, dtype=NUMPY_STR[dtype]).tobytes())
    return "\n".join(lines) + "\n", data.getvalue()


def run_roundtrip(*args: Any) -> subprocess.CompletedProcess:
    return subprocess.run([roundtrip_exe()] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=300)


def c_restore(directory: pathlib.Path, spec: str, work: pathlib.Path) -> Tuple[int, bytes]:
    """brine_roundtrip restore: (the restored step, the variables' bytes)."""
    (work / "spec").write_text(spec)
    r = run_roundtrip("restore", directory, work / "spec", work / "out")
    assert r.returncode == 0, r.stderr
    return int(r.stdout), (work / "out").read_bytes()


def c_save(directory: pathlib.Path, spec: str, data: bytes, step: int,
           work: pathlib.Path) -> None:
    (work / "spec").write_text(spec)
    (work / "data").write_bytes(data)
    r = run_roundtrip("save", directory, work / "spec", work / "data", step)
    assert r.returncode == 0, r.stderr


def snapshot(directory: pathlib.Path) -> Dict[str, str]:
    """Every file of a directory and the SHA-256 of its bytes."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir()) if p.is_file()}


def h5dump(*args: Any) -> str:
    r = subprocess.run(["h5dump"] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def block(dump: str, kind: str, name: str) -> str:
    """The text of `kind "name" { ... }` in h5dump's output (braces balanced)."""
    start = dump.index(f'{kind} "{name}" {{')
    depth = 0
    for i in range(start, len(dump)):
        depth += {"{": 1, "}": -1}.get(dump[i], 0)
        if dump[i] == "}" and depth == 0:
            return dump[start:i + 1]
    raise AssertionError(f"unbalanced h5dump output at {kind} {name}")


# ---------------------------------------------------------------- Python -> Python

@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_save_then_load_is_bit_identical(tmp_path, loader):
    state = full_state()
    path = brine.save(tmp_path, state, step=5)
    assert path == os.path.join(tmp_path, "ckpt-000000000005.h5")
    assert_same(LOADERS[loader](path), normalized(state))


def test_loaded_state_keeps_types_and_orders(tmp_path):
    state = full_state()
    got = brine.load(brine.save(tmp_path, state, step=1))
    arrays = got["arrays"]
    f2, strided = arrays["float64"]["f2"], arrays["float64"]["strided"]
    assert f2.flags.f_contiguous and not f2.flags.c_contiguous
    assert strided.flags.c_contiguous and strided.shape == (3, 3)
    assert arrays["int32"]["big_endian"].dtype.str == "<i4"
    assert np.array_equal(arrays["int32"]["big_endian"], state["arrays"]["int32"]["big_endian"])
    s = got["scalars"]
    assert type(s["np_float32"]) is float and s["np_float32"] == float(np.float32(1 / 3))
    assert type(s["np_bool"]) is bool and type(s["np_uint64"]) is int and type(s["zero_d"]) is int
    assert s["uint64_max"] == 2**64 - 1 and s["int64_min"] == -2**63
    assert struct.pack("<d", s["snan"]) == struct.pack("<Q", 0x7FF0000000000001)
    assert got["groups"]["a"]["empty"] == {}
    assert got["numpy"].startswith("a key")


def test_stock_unpicklers_and_pickletools_accept_the_stream(tmp_path):
    path = brine.save(tmp_path, full_state(), step=1)
    with h5py.File(path, "r") as f:
        p = f["brine/pickle"]
        stream = p[()].tobytes()
        names = list(p.attrs["buffers"])
        assert zlib.crc32(stream) == int(p.attrs["crc32"])
        pure = pickle._loads(stream, buffers=[f[n][()] for n in names])
    assert_same(pure, normalized(full_state()))
    pickletools.dis(stream, out=io.StringIO())


def test_stream_opcodes(tmp_path):
    """CPython's pickler in fast mode: FRAME, STACK_GLOBAL, no memo, no READONLY_BUFFER;
    numpy.ndarray is the only global besides builtins.complex."""
    ro = np.arange(6, dtype=np.float64)
    ro.flags.writeable = False
    same = np.arange(4)
    state = {"numpy": 1, "ndarray": "x", "ro": ro, "a": same, "b": same, "z": 1j,
             "items": {f"k{i}": i for i in range(2500)}}
    path = brine.save(tmp_path, state, step=1)
    with h5py.File(path, "r") as f:
        stream = f["brine/pickle"][()].tobytes()
        buffers = [n.decode() if isinstance(n, bytes) else n
                   for n in f["brine/pickle"].attrs["buffers"]]
    names = [op.name for op, _, _ in pickletools.genops(stream)]
    assert stream[:2] == b"\x80\x05" and names[-1] == "STOP"
    assert "FRAME" in names
    assert not {"MEMOIZE", "BINPUT", "LONG_BINPUT", "BINGET", "LONG_BINGET", "READONLY_BUFFER",
                "NEWOBJ", "NEWOBJ_EX", "BUILD"} & set(names)
    strings = []
    found = set()
    for op, arg, _ in pickletools.genops(stream):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            found.add(tuple(strings[-2:]))
        elif op.name == "GLOBAL":
            found.add(tuple(arg.split(" ")))
    assert found == {("numpy", "ndarray"), ("builtins", "complex")}
    assert names.count("NEXT_BUFFER") == 3
    assert buffers == ["/state/ro", "/state/a", "/state/b"]
    got = brine.load(path)
    assert np.array_equal(got["a"], same) and np.array_equal(got["b"], same)
    assert np.array_equal(got["ro"], ro) and got["items"]["k2499"] == 2499


def test_empty_state_and_scalars_only(tmp_path):
    for step, state in enumerate([{}, {"x": 1, "g": {}}], start=1):
        path = brine.save(tmp_path, state, step=step)
        assert brine.load(path) == state
        with h5py.File(path, "r") as f:
            assert f["brine/pickle"].attrs.get_id("buffers").shape == (0,)
            assert "state" not in f


# ---------------------------------------------------------------- layout

def test_layout_matches_the_format(tmp_path):
    rng = np.random.default_rng(3)
    state = {
        "fluid": {
            "velocity": random_array(rng, "float64", (700, 500)),
            "pressure": random_array(rng, "float32", (300, 1100), "F"),
            "density": random_array(rng, "float64", (2, 150, 1000)),
            "flags": random_array(rng, "bool", (10,)),
            "z": random_array(rng, "complex128", (3, 200000)),
            "c": random_array(rng, "complex64", (4,)),
        },
        "noise": random_array(rng, "uint8", (3, 400000)),
        "empty": np.zeros((0, 5), dtype=np.int16),
        "n": 3,
    }
    path = brine.save(tmp_path, state, step=42, level=6)
    with open(path, "rb") as fh:
        head = fh.read(9)
    assert head[:8] == b"\x89HDF\r\n\x1a\n" and head[8] >= 2  # superblock 3 (HDF5 1.10 format)

    expected_chunks = {  # format 2.3, worked out by hand
        "/state/fluid/velocity": ((700, 500), (262, 500)),
        "/state/fluid/pressure": ((1100, 300), (873, 300)),
        "/state/fluid/density": ((2, 150, 1000), (1, 131, 1000)),
        "/state/fluid/flags": ((10,), (10,)),
        "/state/fluid/z": ((3, 200000), (1, 65536)),
        "/state/fluid/c": ((4,), (4,)),
        "/state/noise": ((3, 400000), (2, 400000)),
    }
    with h5py.File(path, "r") as f:
        for name, (dims, chunk) in expected_chunks.items():
            ds = f[name]
            assert ds.shape == dims and ds.chunks == chunk, name
            assert chunk == _writer.chunk_shape(dims, ds.dtype.itemsize), name
            order = "F" if name.endswith("pressure") else "C"
            assert ds.attrs["order"] in (order, order.encode())
            assert ds.id.get_num_chunks() == int(np.prod([-(-n // c) for n, c in zip(dims, chunk)]))
        assert f["state/empty"].chunks is None and f["state/empty"].compression is None
        p = f["brine/pickle"]
        assert p.chunks is None and p.compression is None and p.dtype == np.uint8
        assert f.attrs["step"] == 42 and f.attrs["brine_format"] == 1
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", f.attrs["created"])
        assert f.attrs["brine_version"] == brine.__version__
        # An incompressible chunk is stored shuffled only, its deflate bit set (format 2.3).
        assert f["state/noise"].id.get_chunk_info(0).filter_mask == 0b10

    dump = h5dump("-H", "-p", path)
    for name in ["velocity", "pressure", "density", "flags", "z", "c"]:
        text = block(dump, "DATASET", name)
        assert re.search(r"FILTERS \{\s*PREPROCESSING SHUFFLE\s*COMPRESSION DEFLATE \{ LEVEL 6 \}"
                         r"\s*CHECKSUM FLETCHER32\s*\}", text), text
        assert "CHUNKED" in text
    empty = block(dump, "DATASET", "empty")
    assert "CONTIGUOUS" in empty and re.search(r"FILTERS \{\s*NONE\s*\}", empty)
    assert "CONTIGUOUS" in block(dump, "DATASET", "pickle")
    assert re.search(r'H5T_ENUM \{\s*H5T_STD_I8LE;\s*"FALSE"\s*0;\s*"TRUE"\s*1;\s*\}',
                     block(dump, "DATASET", "flags"))
    assert re.search(r'H5T_COMPOUND \{\s*H5T_IEEE_F64LE "r";\s*H5T_IEEE_F64LE "i";\s*\}',
                     block(dump, "DATASET", "z"))
    assert re.search(r'H5T_COMPOUND \{\s*H5T_IEEE_F32LE "r";\s*H5T_IEEE_F32LE "i";\s*\}',
                     block(dump, "DATASET", "c"))

    vlen = r"H5T_STRING \{\s*STRSIZE H5T_VARIABLE;\s*STRPAD H5T_STR_NULLTERM;\s*CSET H5T_CSET_UTF8;"
    for name, type_name in [("brine_format", "H5T_STD_I32LE"), ("step", "H5T_STD_I64LE"),
                            ("brine_threads", "H5T_STD_I64LE")]:
        assert re.search(rf"DATATYPE  {type_name}\s*DATASPACE  SCALAR",
                         block(dump, "ATTRIBUTE", name)), name
    for name in ("brine_version", "created"):
        assert re.search(vlen, block(dump, "ATTRIBUTE", name)), name
        assert "SCALAR" in block(dump, "ATTRIBUTE", name)
    host = socket.gethostname().encode()
    assert re.search(rf"STRSIZE {max(1, len(host))};\s*STRPAD H5T_STR_NULLPAD;\s*"
                     r"CSET H5T_CSET_UTF8;", block(dump, "ATTRIBUTE", "brine_host"))
    buffers = block(dump, "ATTRIBUTE", "buffers")
    assert re.search(vlen, buffers) and "SIMPLE { ( 8 ) / ( 8 ) }" in buffers
    assert re.search(r"DATATYPE  H5T_STD_U32LE\s*DATASPACE  SCALAR",
                     block(dump, "ATTRIBUTE", "crc32"))
    order = block(block(dump, "DATASET", "velocity"), "ATTRIBUTE", "order")
    assert re.search(vlen, order) and "SCALAR" in order


def test_edge_chunks_are_padded_with_zeros(tmp_path):
    a = np.full((700, 500), -1.5)  # chunks of 262 rows: the third holds 176 rows and padding
    path = brine.save(tmp_path, {"a": a}, step=1)
    with h5py.File(path, "r") as f:
        mask, stored = f["state/a"].id.read_direct_chunk((524, 0))
    assert mask == 0
    data = stored[:-4]
    shuffled = np.frombuffer(zlib.decompress(data), dtype=np.uint8)
    raw = shuffled.reshape(8, -1).T.copy().view("<f8").reshape(262, 500)  # unshuffle
    assert np.all(raw[:176] == -1.5)
    assert not raw[176:].view(np.uint64).any()


def test_chunks_are_byte_identical_to_the_c_writers(tmp_path):
    """Re-saving brine_fixture's state (edge chunks, an incompressible chunk
    stored shuffled only, every dtype) gives the chunks the C library wrote with
    its zlib codec, byte for byte, and the same filter masks."""
    run_fixture(tmp_path / "c", steps=1, extra=("--codec", "zlib", "--level", "1"))
    path = brine.save(tmp_path / "py", brine.load(tmp_path / "c"), step=1, level=1)
    compared = []
    with h5py.File(checkpoint_path(tmp_path / "c", 1), "r") as fc, h5py.File(path, "r") as fp:
        def compare(name: str, node: Any) -> None:
            if not (isinstance(node, h5py.Dataset) and name.startswith("state/") and node.size):
                return
            c, p = fc[name].id, fp[name].id
            assert (fc[name].shape, fc[name].chunks) == (fp[name].shape, fp[name].chunks), name
            assert c.get_num_chunks() == p.get_num_chunks(), name
            for i in range(c.get_num_chunks()):
                offset = c.get_chunk_info(i).chunk_offset
                assert c.read_direct_chunk(offset) == p.read_direct_chunk(offset), (name, offset)
                compared.append(c.read_direct_chunk(offset)[0])
        fc.visititems(compare)
    assert len(compared) > 40 and 0b10 in compared  # the incompressible chunk is among them


def test_level_zero_and_nine(tmp_path):
    a = np.arange(10000, dtype=np.int64)
    for level in (0, 9):
        path = brine.save(tmp_path / str(level), {"a": a}, step=1, level=level)
        with h5py.File(path, "r") as f:
            assert f["state/a"].compression_opts == level
        assert np.array_equal(brine.load(path)["a"], a)


# ---------------------------------------------------------------- Python <-> C

def test_python_to_c_is_bit_exact(tmp_path):
    state = full_state(seed=7)
    brine.save(tmp_path / "ckpts", state, step=12)
    spec, data = c_spec(normalized(state))
    step, out = c_restore(tmp_path / "ckpts", spec, tmp_path)
    assert step == 12
    assert out == data  # every variable in SPEC order, bit for bit


def test_python_to_c_scalar_dtypes(tmp_path):
    """Python values restore into narrower C scalars (brine_restore's rules)."""
    state = {"b": True, "i8": -128, "u16": 65535, "f32": float(np.float32(0.1)),
             "c64": complex(np.float32(0.5), np.float32(-0.25)), "f_from_int": 3,
             "s": "✓ ok"}
    brine.save(tmp_path, state, step=0)
    dtypes = {"b": "bool", "i8": "int8", "u16": "uint16", "f32": "float32", "c64": "complex64",
              "f_from_int": "float64"}
    spec, data = c_spec(state, scalar_dtypes=dtypes, capacities={"s": 64})
    step, out = c_restore(tmp_path, spec, tmp_path)
    assert (step, out) == (0, data)


def test_c_restore_error_codes(tmp_path):
    brine.save(tmp_path / "d", {"x": np.zeros(3)}, step=1)
    (tmp_path / "spec").write_text("x array float32 C 1 3\n")
    r = run_roundtrip("restore", tmp_path / "d", tmp_path / "spec", tmp_path / "out")
    assert r.returncode == 10 + 7, r.stderr  # BRINE_EMISMATCH
    r = run_roundtrip("restore", tmp_path / "nothing", tmp_path / "spec", tmp_path / "out")
    assert r.returncode == 10 + 5, r.stderr  # BRINE_ENOTFOUND


def c_written_state(seed: int) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """A state for brine_roundtrip save: arrays of every dtype and order,
    scalars of every dtype, strings; with each scalar's C dtype."""
    rng = np.random.default_rng(seed)
    state: Dict[str, Any] = {"arrays": {}, "scalars": {}}
    dtypes: Dict[str, str] = {}
    for d, name in enumerate(DTYPES):
        state["arrays"][name] = {"c": random_array(rng, name, (3 + d % 2, 5)),
                                 "f": random_array(rng, name, (4, 2 + d % 3), "F"),
                                 "e": np.zeros((2, 0), dtype=NUMPY_STR[name])}
        value = random_array(rng, name, (1,))[0].item()
        state["scalars"][name] = value
        dtypes[f"scalars/{name}"] = name
    state["text"] = {"title": "C wrote this ✓", "empty": ""}
    state["step"] = 3
    return state, dtypes


def test_c_to_python_edit_to_c(tmp_path):
    d = tmp_path / "ckpts"
    state, dtypes = c_written_state(11)
    capacities = {"text/title": 40, "text/empty": 8}
    spec, data = c_spec(state, scalar_dtypes=dtypes, capacities=capacities)
    c_save(d, spec, data, 3, tmp_path)

    loaded = brine.load(d)
    assert_same(loaded, state)
    rng = np.random.default_rng(12)
    for name, a in walk(loaded["arrays"]):
        a[...] = random_array(rng, DTYPE_NAME[a.dtype.str], a.shape)  # same dtype, shape, order
    for name in DTYPES:
        loaded["scalars"][name] = random_array(rng, name, (1,))[0].item()
    loaded["text"]["title"] = "edited in Python: ünïcode ✓"
    loaded["step"] = 4
    brine.save(d, loaded, step=4, attrs={"edited_by": "test_save.py"})

    edited_spec, edited = c_spec(loaded, scalar_dtypes=dtypes, capacities=capacities)
    assert edited_spec == spec and edited != data
    step, out = c_restore(d, spec, tmp_path)
    assert step == 4 and out == edited


def test_c_fixture_to_python_edit_to_c(tmp_path):
    """The brine_fixture state (every dtype, edge chunks, an incompressible array)."""
    d = tmp_path / "fixture"
    run_fixture(d, steps=1)
    state = brine.load(d)
    assert_same(state, expected_state(1))
    state["fluid"]["velocity"][::7] *= -2.0
    state["noise"]["bytes"][1, ::3] = 0
    state["scalars"]["uint64"] = 2**64 - 1
    state["meta"]["title"] = "edited ✓"
    brine.save(d, state, step=2)
    dtypes = {f"scalars/{name}": name for name in DTYPES}
    dtypes.update({"step": "int64", "time": "float64", "grid/params/nx": "int32",
                   "grid/params/ny": "int32"})
    spec, data = c_spec(state, scalar_dtypes=dtypes, capacities={"meta/title": 64})
    step, out = c_restore(d, spec, tmp_path)
    assert step == 2 and out == data


def test_python_to_c_to_python(tmp_path):
    state = full_state(seed=5)
    brine.save(tmp_path / "a", state, step=1)
    spec, _ = c_spec(normalized(state))
    _, out = c_restore(tmp_path / "a", spec, tmp_path)
    c_save(tmp_path / "b", spec, out, 2, tmp_path)
    assert_same(brine.load(tmp_path / "b"), normalized(state))


# ---------------------------------------------------------------- publication

def test_temporary_name_is_the_c_librarys(tmp_path, monkeypatch):
    seen = []
    real = brine._save._write_file

    def spy(path, **kwargs):
        seen.append(path)
        real(path, **kwargs)
        assert os.path.exists(path)
        assert not os.path.exists(tmp_path / "run-000000000005.h5")  # not yet published
    monkeypatch.setattr(brine._save, "_write_file", spy)
    brine.save(tmp_path, {"a": np.ones(3)}, step=5, prefix="run")
    assert seen == [os.path.join(tmp_path, f".run-000000000005.h5.tmp-{os.getpid()}")]
    assert sorted(os.listdir(tmp_path)) == ["run-000000000005.h5"]


def test_publication_order(tmp_path, monkeypatch):
    """Written, fsynced, renamed, then the directory fsynced; rotation after publishing."""
    events = []
    real = {"_fsync_file": brine._save._fsync_file, "_fsync_dir": brine._save._fsync_dir}
    real_rename, real_unlink = os.rename, os.unlink

    def spy(name):
        def call(path):
            events.append((name, os.path.basename(path)))
            real[name](path)
        return call
    monkeypatch.setattr(brine._save, "_fsync_file", spy("_fsync_file"))
    monkeypatch.setattr(brine._save, "_fsync_dir", spy("_fsync_dir"))
    monkeypatch.setattr(os, "rename", lambda a, b: (events.append(
        ("rename", os.path.basename(a), os.path.basename(b))), real_rename(a, b)))
    monkeypatch.setattr(os, "unlink", lambda a: (events.append(
        ("unlink", os.path.basename(a))), real_unlink(a)))
    brine.save(tmp_path, {"x": 1}, step=1)
    events.clear()
    brine.save(tmp_path, {"x": 2}, step=2, keep_last=1)
    tmp = f".ckpt-000000000002.h5.tmp-{os.getpid()}"
    assert events == [("_fsync_file", tmp), ("rename", tmp, "ckpt-000000000002.h5"),
                      ("_fsync_dir", tmp_path.name), ("unlink", "ckpt-000000000001.h5"),
                      ("_fsync_dir", tmp_path.name)]


def test_leftovers_are_ignored_and_removed(tmp_path):
    d = tmp_path / "d"
    brine.save(d, {"x": np.arange(3.0)}, step=1)
    # A brine.save killed while writing step 2 left its temporary file, and a C writer one too.
    py_left = d / f".ckpt-000000000002.h5.tmp-{os.getpid()}"
    c_left = d / ".ckpt-000000000003.h5.tmp-99999"
    other = d / ".other-000000000003.h5.tmp-99999"
    for p in (py_left, c_left, other):
        p.write_bytes(b"half a checkpoint")
    assert [i.step for i in brine.list(d)] == [1]
    assert np.array_equal(brine.load(d)["x"], np.arange(3.0))
    step, out = c_restore(d, "x array float64 C 1 3\n", tmp_path)
    assert step == 1 and out == np.arange(3.0).tobytes()
    # The C library's next save removes the Python writer's leftover (same rule) ...
    c_save(d, "x array float64 C 1 3\n", np.arange(3.0).tobytes(), 4, tmp_path)
    assert not py_left.exists() and not c_left.exists() and other.exists()
    # ... and brine.save removes the C library's.
    c_left.write_bytes(b"x")
    brine.save(d, {"x": np.arange(3.0)}, step=5)
    assert not c_left.exists() and other.exists()


def test_same_step_is_replaced(tmp_path):
    brine.save(tmp_path, {"x": 1}, step=3)
    brine.save(tmp_path, {"x": 2}, step=3)
    assert brine.load(tmp_path) == {"x": 2}
    assert os.listdir(tmp_path) == ["ckpt-000000000003.h5"]


def test_keep_last_rotation(tmp_path):
    (tmp_path / "other-000000000001.h5").write_bytes(b"another prefix")
    (tmp_path / "ckpt-000000000001.h5.bak").write_bytes(b"not a checkpoint")
    for step in range(1, 6):
        brine.save(tmp_path, {"s": step}, step=step, keep_last=2)
    names = sorted(os.listdir(tmp_path))
    assert names == ["ckpt-000000000001.h5.bak", "ckpt-000000000004.h5", "ckpt-000000000005.h5",
                     "other-000000000001.h5"]
    # Without keep_last nothing is deleted.
    brine.save(tmp_path, {"s": 6}, step=6)
    assert len(brine.list(tmp_path, prefix="ckpt")) == 3
    # Never the checkpoint just written, even when it is older than stale ones.
    brine.save(tmp_path, {"s": 2}, step=2, keep_last=1)
    assert [i.step for i in brine.list(tmp_path, prefix="ckpt")] == [2, 6]


def test_directory_is_created(tmp_path):
    d = tmp_path / "a" / "b" / "c"
    path = brine.save(d, {"x": 1}, step=0)
    assert path == os.path.join(d, "ckpt-000000000000.h5") and os.path.isfile(path)


def test_single_file(tmp_path):
    path = brine.save(tmp_path / "state.h5", {"x": np.arange(4)}, step=9)
    assert path == str(tmp_path / "state.h5")
    assert os.listdir(tmp_path) == ["state.h5"]
    assert np.array_equal(brine.load(path)["x"], np.arange(4))
    with brine.open(path) as ckpt:
        assert ckpt.step == 9
    # A checkpoint name must carry the step.
    named = tmp_path / "ckpt-000000000007.h5"
    brine.save(named, {"x": 1}, step=7)
    with pytest.raises(ValueError, match="step 7 but step is 8"):
        brine.save(named, {"x": 1}, step=8)
    with pytest.raises(ValueError, match="keep_last"):
        brine.save(tmp_path / "other.h5", {"x": 1}, step=1, keep_last=2)
    assert not (tmp_path / "other.h5").exists()


def fill_directory(d: pathlib.Path) -> Dict[str, str]:
    brine.save(d, {"x": np.arange(5.0)}, step=1)
    brine.save(d, {"x": np.arange(6.0)}, step=2)
    return snapshot(d)


def test_failure_while_writing_leaves_everything_untouched(tmp_path, monkeypatch):
    d = tmp_path / "d"
    before = fill_directory(d)

    real = brine._save.encode_chunk
    calls = []

    def disk_full(*args):  # fails on the second chunk: the first one is in the file
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device (simulated)")
        return real(*args)
    monkeypatch.setattr(brine._save, "encode_chunk", disk_full)
    with pytest.raises(OSError, match="No space left"):
        brine.save(d, {"x": np.arange(7.0), "y": np.ones(3)}, step=3)
    assert snapshot(d) == before
    calls.clear()
    with pytest.raises(OSError, match="No space left"):
        brine.save(d, {"x": np.arange(7.0), "y": np.ones(3)}, step=2, keep_last=1)  # the same step
    assert snapshot(d) == before


def test_failure_at_fsync_or_rename_leaves_everything_untouched(tmp_path, monkeypatch):
    d = tmp_path / "d"
    before = fill_directory(d)
    # The final name is taken by a directory: rename fails.
    (d / "ckpt-000000000003.h5").mkdir()
    before_dirs = sorted(os.listdir(d))
    with pytest.raises(OSError):
        brine.save(d, {"x": np.arange(7.0)}, step=3, keep_last=1)
    assert snapshot(d) == before and sorted(os.listdir(d)) == before_dirs

    def failing_fsync(path):
        raise OSError(5, "Input/output error (simulated)")
    monkeypatch.setattr(brine._save, "_fsync_file", failing_fsync)
    with pytest.raises(OSError, match="simulated"):
        brine.save(d, {"x": np.arange(7.0)}, step=4)
    assert snapshot(d) == before and sorted(os.listdir(d)) == before_dirs


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_unwritable_directory(tmp_path):
    d = tmp_path / "d"
    before = fill_directory(d)
    d.chmod(0o555)
    try:
        with pytest.raises(OSError):
            brine.save(d, {"x": np.arange(7.0)}, step=3)
    finally:
        d.chmod(0o755)
    assert snapshot(d) == before


# ---------------------------------------------------------------- validation

class Opaque:
    pass


BAD_STATES = [
    ({"a": {"b": None}}, TypeError, r"state\['a'\]\['b'\]: NoneType is not supported"),
    ({"a": [1, 2]}, TypeError, r"state\['a'\]: list"),
    ({"a": (1,)}, TypeError, r"state\['a'\]: tuple"),
    ({"g": {"a": b"xy"}}, TypeError, r"state\['g'\]\['a'\]: bytes"),
    ({"a": {1, 2}}, TypeError, r"state\['a'\]: set"),
    ({"a": Opaque()}, TypeError, r"state\['a'\]: Opaque"),
    ({"a": Fraction(1, 3)}, TypeError, r"state\['a'\]: Fraction"),
    ({"a": np.bytes_(b"x")}, TypeError, r"state\['a'\]: bytes_"),
    ({"g": {"h": np.zeros(3, np.float16)}}, ValueError,
     r"state\['g'\]\['h'\]: array dtype float16"),
    ({"a": np.array(["x"])}, ValueError, r"state\['a'\]: array dtype <U1"),
    ({"a": np.array([None])}, ValueError, r"state\['a'\]: array dtype object"),
    ({"a": np.zeros(2, "datetime64[s]")}, ValueError, r"state\['a'\]: array dtype datetime64"),
    ({"a": np.zeros(2, [("x", "<f8")])}, ValueError, r"state\['a'\]: array dtype"),
    ({"a": np.zeros((1,) * 9)}, ValueError, r"state\['a'\]: array has 9 dimensions"),
    ({"a": np.ma.masked_array([1, 2], mask=[0, 1])}, TypeError, r"state\['a'\]: a numpy masked"),
    ({"a": np.float16(1)}, ValueError, r"state\['a'\]: numpy scalar of dtype float16"),
    ({"a": np.longdouble(1)}, ValueError, r"state\['a'\]: numpy scalar of dtype float128"),
    ({"a": np.array(1, np.float16)}, ValueError, r"state\['a'\]: 0-d array of dtype float16"),
    ({"a": 2**64}, ValueError, r"state\['a'\]: int 18446744073709551616 does not fit"),
    ({"a": -2**63 - 1}, ValueError, r"state\['a'\]: int -9223372036854775809 does not fit"),
    ({"a": "\ud800"}, ValueError, r"state\['a'\]: str is not valid UTF-8"),
    ({"g": {"a b": 1}}, ValueError, r"key 'a b' of state\['g'\] .*space or control"),
    ({"a/b": 1}, ValueError, r"key 'a/b' of state .*'/'"),
    ({"": 1}, ValueError, r"key '' of state .*empty"),
    ({".": 1}, ValueError, r"key '.' of state"),
    ({"g": {"..": 1}}, ValueError, r"key '..' of state\['g'\]"),
    ({"a\x01": 1}, ValueError, r"key 'a\\x01' of state .*control"),
    ({"a\x7f": 1}, ValueError, r"key 'a\\x7f' of state .*control"),
    ({"\ud800": 1}, ValueError, r"key '\\ud800' of state .*UTF-8"),
    ({"g": {3: 1}}, TypeError, r"key 3 of state\['g'\] is a int; expected a str"),
    ({("t",): 1}, TypeError, r"key \('t',\) of state is a tuple"),
    ({"x" * 1025: 1}, ValueError, r"longer than 1024 bytes"),
    ([("a", 1)], TypeError, r"the state is a list; expected a dict"),
]


def deep_state(depth: int) -> Dict[str, Any]:
    state: Dict[str, Any] = {"leaf": 1}
    for i in range(depth - 1):
        state = {f"g{i}": state}
    return state


@pytest.mark.parametrize("state, error, message", BAD_STATES + [
    (deep_state(33), ValueError, r"\['leaf'\]: groups nest deeper than 32"),
])
def test_invalid_state_is_refused_before_writing(tmp_path, state, error, message):
    d = tmp_path / "d"
    before = fill_directory(d)
    with pytest.raises(error, match=message):
        brine.save(d, state, step=3)
    assert snapshot(d) == before and not any(n.startswith(".") for n in os.listdir(d))
    with pytest.raises(error, match=message):
        brine.save(tmp_path / "new", state, step=3)
    assert not (tmp_path / "new").exists()  # not even the directory


def test_deepest_and_longest_names_are_accepted(tmp_path):
    state = deep_state(32)
    state["y" * 1024] = 2
    assert brine.load(brine.save(tmp_path, state, step=1)) == state


@pytest.mark.parametrize("kwargs, error, message", [
    ({"step": -1}, ValueError, r"step is -1; expected 0\.\.999999999999"),
    ({"step": 10**12}, ValueError, r"step is 1000000000000"),
    ({"step": True}, TypeError, r"step is a bool; expected an int"),
    ({"step": 1.0}, TypeError, r"step is a float"),
    ({"step": 1, "level": 10}, ValueError, r"level is 10; expected 0\.\.9"),
    ({"step": 1, "level": -1}, ValueError, r"level is -1"),
    ({"step": 1, "keep_last": 0}, ValueError, r"keep_last is 0; expected >= 1"),
    ({"step": 1, "keep_last": 2.0}, TypeError, r"keep_last is a float"),
    ({"step": 1, "prefix": ".hidden"}, ValueError, r"prefix '.hidden'"),
    ({"step": 1, "prefix": "a/b"}, ValueError, r"prefix 'a/b'"),
    ({"step": 1, "prefix": ""}, ValueError, r"prefix ''"),
    ({"step": 1, "prefix": "x" * 65}, ValueError, r"prefix 'x+'"),
    ({"step": 1, "attrs": {"flag": True}}, TypeError,
     r"attrs\['flag'\]: bool is not a metadata type"),
    ({"step": 1, "attrs": {"x": None}}, TypeError, r"attrs\['x'\]: NoneType is not a metadata"),
    ({"step": 1, "attrs": {"x": 1j}}, TypeError, r"attrs\['x'\]: complex is not a metadata"),
    ({"step": 1, "attrs": {"x": b"raw"}}, TypeError, r"attrs\['x'\]: bytes is not a metadata"),
    ({"step": 1, "attrs": {"x": [1]}}, TypeError, r"attrs\['x'\]: list is not a metadata"),
    ({"step": 1, "attrs": {"x": 2**63}}, ValueError, r"attrs\['x'\]: int 9223372036854775808"),
    ({"step": 1, "attrs": {"x": np.uint64(2**63)}}, ValueError, r"attrs\['x'\]: int"),
    ({"step": 1, "attrs": {"x": "a\0b"}}, ValueError, r"attrs\['x'\]: str holds a NUL"),
    ({"step": 1, "attrs": {"x": "\udc80"}}, ValueError, r"attrs\['x'\]: str is not valid UTF-8"),
    ({"step": 1, "attrs": {"brine_x": 1}}, ValueError, r"attrs\['brine_x'\]: .*reserved"),
    ({"step": 1, "attrs": {"step": 1}}, ValueError, r"attrs\['step'\]: .*brine's own"),
    ({"step": 1, "attrs": {"created": "x"}}, ValueError, r"attrs\['created'\]"),
    ({"step": 1, "attrs": {"": 1}}, ValueError, r"attrs\[''\]: .*1 to 255 bytes"),
    ({"step": 1, "attrs": {"é" * 128: 1}}, ValueError, r"256 bytes long"),
    ({"step": 1, "attrs": {"a/b": 1}}, ValueError, r"attrs\['a/b'\]: .*'/'"),
    ({"step": 1, "attrs": {"a\nb": 1}}, ValueError, r"attrs\['a\\nb'\]: .*control character"),
    ({"step": 1, "attrs": {5: 1}}, TypeError, r"attrs key 5 is a int"),
    ({"step": 1, "attrs": [("x", 1)]}, TypeError, r"attrs is a list"),
])
def test_invalid_arguments_are_refused_before_writing(tmp_path, kwargs, error, message):
    d = tmp_path / "d"
    before = fill_directory(d)
    with pytest.raises(error, match=message):
        brine.save(d, {"x": np.ones(2)}, **kwargs)
    assert snapshot(d) == before


# ---------------------------------------------------------------- metadata

def test_user_metadata(tmp_path):
    attrs = {"program": "heat2d ✓", "git": "", "n": -5, "big": 2**63 - 1, "dt": 0.125,
             "np_int": np.int32(7), "np_float": np.float32(0.5), "with space": "ok",
             "é" * 127: "max length name"}
    path = brine.save(tmp_path, {"x": 1}, step=3, attrs=attrs)
    with brine.open(path) as ckpt:
        got = dict(ckpt.attrs)
    assert got.pop("brine_host") == socket.gethostname()
    assert got.pop("brine_threads") == 1
    assert got.pop("brine_version") == brine.__version__
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", got.pop("created"))
    want = {k: (int(v) if isinstance(v, np.integer) else float(v) if isinstance(v, np.floating)
                else v) for k, v in attrs.items()}
    assert got == want
    assert type(got["n"]) is int and type(got["dt"]) is float and type(got["np_float"]) is float

    dump = h5dump("-A", path)
    program = block(dump, "ATTRIBUTE", "program")
    assert re.search(r"STRSIZE 10;\s*STRPAD H5T_STR_NULLPAD;\s*CSET H5T_CSET_UTF8;\s*"
                     r"CTYPE H5T_C_S1;", program), program
    assert "SCALAR" in program
    git = block(dump, "ATTRIBUTE", "git")
    assert re.search(r"STRSIZE 1;\s*STRPAD H5T_STR_NULLPAD;", git) and '"\\000"' in git
    assert re.search(r"DATATYPE  H5T_STD_I64LE\s*DATASPACE  SCALAR",
                     block(dump, "ATTRIBUTE", "np_int"))
    assert re.search(r"DATATYPE  H5T_IEEE_F64LE\s*DATASPACE  SCALAR",
                     block(dump, "ATTRIBUTE", "np_float"))
    with h5py.File(path, "r") as f:  # stock h5py: numpy.bytes_, as format 2.1 says
        assert f.attrs["program"] == "heat2d ✓".encode()


def test_attrs_skip_other_types_and_old_files(tmp_path):
    old = tmp_path / "ckpt-000000000001.h5"
    _writer.write_checkpoint(old, {"x": np.arange(3)}, step=1)  # no brine_host, no brine_threads
    with h5py.File(old, "r+") as f:
        f.attrs.create("vlen_user", "skipped", dtype=h5py.string_dtype())
        f.attrs.create("array", np.arange(3))
        f.attrs.create("cplx", 1 + 2j)
        f.attrs.create("fixed", np.bytes_(b"ab\0cd"), dtype=h5py.string_dtype("utf-8", 5))
        f.attrs.create("i32", 5, dtype=np.int32)
    with brine.open(old) as ckpt:
        attrs = ckpt.attrs
        assert dict(attrs) == {"brine_version": "0.1.0", "created": "2024-01-02T03:04:05Z",
                               "fixed": "ab", "i32": 5}
        with pytest.raises(TypeError):
            attrs["x"] = 1  # type: ignore[index]
    assert ckpt.attrs["i32"] == 5  # read before closing: still there
    ckpt = brine.open(old)
    ckpt.close()
    with pytest.raises(ValueError, match="closed"):
        ckpt.attrs


def test_attrs_of_c_written_checkpoints(tmp_path):
    run_fixture(tmp_path, steps=1)
    with brine.open(tmp_path) as ckpt:
        attrs = dict(ckpt.attrs)
    assert attrs["brine_version"] and attrs["created"].endswith("Z")
    assert "step" not in attrs and "brine_format" not in attrs


def test_conformance_of_stock_checks(tmp_path):
    """What /work/shared/conformance checks, done with stock tools: every array
    dataset's shape, order, dtype, filters and values agree with the stream."""
    path = brine.save(tmp_path, full_state(seed=9), step=1)
    state = stock_load(path)
    with h5py.File(path, "r") as f:
        for name, value in walk(state):
            if not isinstance(value, np.ndarray):
                continue
            ds = f["state/" + name]
            fortran = is_fortran(value)
            assert ds.shape == (value.shape[::-1] if fortran else value.shape), name
            order = ds.attrs["order"]
            order = order.decode() if isinstance(order, bytes) else order
            assert order == ("F" if fortran else "C"), name
            assert ds.dtype == value.dtype, name
            if ds.size:
                assert ds.compression == "gzip" and ds.shuffle and ds.fletcher32, name
                assert np.array_equal(bits(ds[()].reshape(-1)),
                                      bits(value.reshape(-1, order="F" if fortran else "C"))), name
