"""A checkpoint writer in Python, following docs/format.md, for the tests.

It writes exactly what the format says brine writes (hand-encoded pickle
opcodes, one dataset per array with shuffle + deflate + fletcher32 and the
format's chunk rule), so the reader can be tested without the C library, and
it takes overrides for crafting damaged or hostile files.
"""

from __future__ import annotations

import pickle
import struct
import zlib
from typing import Any, Dict, List, Optional, Sequence, Tuple

import h5py
import numpy as np

CHUNK_BYTES = 1 << 20


# -- pickle opcodes (format section 3) ------------------------------------------

def op_int(n: int) -> bytes:
    if 0 <= n <= 0xFF:
        return b"K" + bytes([n])  # BININT1
    if 0 <= n <= 0xFFFF:
        return b"M" + struct.pack("<H", n)  # BININT2
    if -(1 << 31) <= n < (1 << 31):
        return b"J" + struct.pack("<i", n)  # BININT
    body = pickle.encode_long(n)
    assert len(body) <= 9
    return b"\x8a" + bytes([len(body)]) + body  # LONG1


def op_float(x: float) -> bytes:
    return b"G" + struct.pack(">d", x)  # BINFLOAT


def op_str(s: str) -> bytes:
    raw = s.encode("utf-8")
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE
    return b"X" + struct.pack("<I", len(raw)) + raw  # BINUNICODE


def op_global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def op_tuple(items: Sequence[bytes]) -> bytes:
    if len(items) == 0:
        return b")"
    if len(items) <= 3:
        return b"".join(items) + {1: b"\x85", 2: b"\x86", 3: b"\x87"}[len(items)]
    return b"(" + b"".join(items) + b"t"


def array_order(a: np.ndarray) -> str:
    """'F' only for a genuinely column-major array (format 2.3)."""
    return "F" if a.ndim > 1 and a.flags.f_contiguous and not a.flags.c_contiguous else "C"


class _Encoder:
    def __init__(self) -> None:
        self.buffers: List[Tuple[str, np.ndarray, str]] = []  # (dataset path, array, order)

    def value(self, v: Any, name: str) -> bytes:
        if isinstance(v, dict):
            out = b"}"  # EMPTY_DICT
            if v:
                out += b"(" + b"".join(op_str(k) + self.value(x, f"{name}/{k}" if name else k)
                                       for k, x in v.items()) + b"u"  # MARK ... SETITEMS
            return out
        if isinstance(v, (bool, np.bool_)):
            return b"\x88" if v else b"\x89"
        if isinstance(v, (int, np.integer)):
            return op_int(int(v))
        if isinstance(v, (float, np.floating)):
            return op_float(float(v))
        if isinstance(v, (complex, np.complexfloating)):
            c = complex(v)
            return op_global("builtins", "complex") + op_float(c.real) + op_float(c.imag) + b"\x86R"
        if isinstance(v, str):
            return op_str(v)
        if isinstance(v, np.ndarray):
            order = array_order(v)
            self.buffers.append(("/state/" + name, v, order))
            return (op_global("numpy", "ndarray") + b"("
                    + op_tuple([op_int(n) for n in v.shape]) + op_str(v.dtype.str)
                    + b"\x97" + op_int(0) + b"N" + op_str(order) + b"tR")
        raise TypeError(f"{name}: cannot encode {type(v).__name__}")


def encode_state(state: Dict[str, Any]) -> Tuple[bytes, List[Tuple[str, np.ndarray, str]]]:
    """The format's pickle stream of state and its buffers (dataset path, array, order)."""
    enc = _Encoder()
    body = enc.value(state, "")
    return b"\x80\x05" + body + b".", enc.buffers


# -- HDF5 layout (format section 2) ---------------------------------------------

def chunk_shape(dims: Sequence[int], itemsize: int) -> Tuple[int, ...]:
    """The format's chunk rule: trailing dimensions whole while <= 1 MiB."""
    chunk = [1] * len(dims)
    nbytes = itemsize
    for d in reversed(range(len(dims))):
        if nbytes * dims[d] <= CHUNK_BYTES:
            chunk[d] = dims[d]
            nbytes *= dims[d]
        else:
            chunk[d] = max(1, CHUNK_BYTES // nbytes)
            break
    return tuple(chunk)


def write_array_dataset(f: h5py.File, path: str, a: np.ndarray, order: str, level: int = 1) -> None:
    data = a.T if order == "F" else np.ascontiguousarray(a)  # dataset dims reversed for F
    if data.size == 0:
        ds = f.create_dataset(path, shape=data.shape, dtype=data.dtype)
    else:
        ds = f.create_dataset(path, data=data, chunks=chunk_shape(data.shape, data.dtype.itemsize),
                              shuffle=True, compression="gzip", compression_opts=level,
                              fletcher32=True)
    ds.attrs.create("order", order, dtype=h5py.string_dtype())


def write_checkpoint(path: Any, state: Dict[str, Any], *, step: int = 0,
                     created: str = "2024-01-02T03:04:05Z", brine_version: str = "0.1.0",
                     format_version: int = 1, stream: Optional[bytes] = None,
                     buffers: Optional[Sequence[str]] = None, crc32: Optional[int] = None,
                     skip_datasets: Sequence[str] = (),
                     libver: Any = ("v110", "v110")) -> bytes:
    """Writes a checkpoint of state; the keyword overrides craft broken files.

    The file is in the HDF5 1.10 format, as the format requires (libver
    "earliest" writes the old format without metadata checksums, which
    readers refuse).

    Returns the pickle stream written.
    """
    good_stream, bufs = encode_state(state)
    stream = good_stream if stream is None else stream
    names = [b[0] for b in bufs] if buffers is None else list(buffers)
    with h5py.File(path, "w", libver=libver) as f:
        f.attrs.create("brine_format", format_version, dtype=np.int32)
        f.attrs.create("brine_version", brine_version, dtype=h5py.string_dtype())
        f.attrs.create("step", step, dtype=np.int64)
        f.attrs.create("created", created, dtype=h5py.string_dtype())
        p = f.create_dataset("brine/pickle", data=np.frombuffer(stream, dtype=np.uint8),
                             dtype=np.uint8)
        p.attrs.create("buffers", np.array(names, dtype=object), shape=(len(names),),
                       dtype=h5py.string_dtype())
        p.attrs.create("crc32", zlib.crc32(stream) if crc32 is None else crc32, dtype=np.uint32)
        for ds_path, a, order in bufs:
            if ds_path not in skip_datasets:
                write_array_dataset(f, ds_path, a, order)
    return stream


def set_crc32(path: Any, stream: bytes) -> None:
    """Rewrites /brine/pickle of an existing file with stream and its CRC-32."""
    with h5py.File(path, "r+") as f:
        attrs = dict(f["brine/pickle"].attrs)
        del f["brine/pickle"]
        p = f.create_dataset("brine/pickle", data=np.frombuffer(stream, dtype=np.uint8))
        p.attrs.create("buffers", np.asarray(attrs["buffers"], dtype=object),
                       dtype=h5py.string_dtype())
        p.attrs.create("crc32", zlib.crc32(stream), dtype=np.uint32)


def corrupt_chunk(path: Any, dataset: str, chunk: int = 0) -> None:
    """Flips bytes in the middle of one stored chunk of dataset (trips fletcher32)."""
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(chunk)
    offset = info.byte_offset + info.size // 2
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(4)
        fh.seek(offset)
        fh.write(bytes(x ^ 0x5A for x in b))
