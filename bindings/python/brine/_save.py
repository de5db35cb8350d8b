"""brine.save: writing a format-v1 checkpoint from Python (docs/format.md).

The file is what the C library writes with its zlib codec, with two
differences a reader never sees: the pickle stream is CPython's own (protocol
5, with ``FRAME`` opcodes, ``STACK_GLOBAL`` rather than ``GLOBAL``,
``SETITEM`` for a one-item dict), and ``brine_threads`` is 1.

Chunks are encoded here, as the C writer encodes them (format 2.3), and
written with ``write_direct_chunk``: HDF5's own deflate filter keeps a chunk
that deflate makes larger, where the format stores it shuffled only, with the
deflate bit of its filter mask set.

The stream is pickled in the pickler's *fast* mode, which emits no memo
opcodes (``MEMOIZE``, ``BINGET``...).  With the memo, a string such as the key
``"numpy"`` met before the first array is later referenced by ``BINGET`` as
the module name of ``STACK_GLOBAL``, which readers that look at the strings
just before ``STACK_GLOBAL`` (brine's Python loader, section 3.3's advice)
take for another global; and an array object present under two names would
become one shared out-of-band buffer.  Fast mode writes every value in full.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import re
import socket
import time
import zlib
from typing import Any, Deque, Dict, List, Mapping, Optional, Tuple, Union

import h5py
import numpy as np

from ._errors import CorruptCheckpointError
from ._names import CHECKPOINT_NAME, PREFIX
from ._unpickler import scan_stream

__all__ = ["save", "MAX_STEP"]

#: The largest step a checkpoint may have (its name holds 12 digits).
MAX_STEP = 999_999_999_999

_MAX_NDIM = 8               # BRINE_MAX_NDIM
_MAX_DEPTH = 32             # BRINE_NAME_MAX_DEPTH: components of a name
_MAX_NAME_BYTES = 1024      # brine__name_valid
_MAX_ATTR_NAME_BYTES = 255  # docs/format.md 2.1, user metadata
_CHUNK_TARGET_BYTES = 1 << 20
_INT64_MIN, _INT64_MAX, _UINT64_MAX = -(1 << 63), (1 << 63) - 1, (1 << 64) - 1

# The 13 dtypes of format section 2.3, by (kind, itemsize), as explicit numpy dtype strings.
_DTYPE_STRINGS = {
    ("b", 1): "|b1",
    ("i", 1): "|i1", ("i", 2): "<i2", ("i", 4): "<i4", ("i", 8): "<i8",
    ("u", 1): "|u1", ("u", 2): "<u2", ("u", 4): "<u4", ("u", 8): "<u8",
    ("f", 4): "<f4", ("f", 8): "<f8",
    ("c", 8): "<c8", ("c", 16): "<c16",
}
_DTYPE_NAMES = ("bool, int8, int16, int32, int64, uint8, uint16, uint32, uint64, float32, "
                "float64, complex64, complex128")

_RESERVED_ATTRS = ("step", "created")

_VALUE_TYPES = "a dict (a group), a numpy array, or a bool, int, float, complex or str scalar"


# ---------------------------------------------------------------- validation

def _where(keys: Tuple[str, ...]) -> str:
    """A key path as Python subscripts: ``state['fluid']['u']``."""
    return "state" + "".join(f"[{k!r}]" for k in keys)


def _dtype_str(dtype: np.dtype) -> Optional[str]:
    """The format's dtype string of a numpy dtype of any byte order, None when it has none."""
    if dtype.fields is not None or dtype.subdtype is not None:
        return None
    return _DTYPE_STRINGS.get((dtype.kind, dtype.itemsize))


def _component_problem(key: str) -> Optional[str]:
    """Why key is not a name component (lib/common/text.c, brine__name_valid), or None."""
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid UTF-8 (it holds a lone surrogate)"
    if not raw:
        return "it is empty"
    if key in (".", ".."):
        return "'.' and '..' are not names"
    if "/" in key:
        return "it holds '/' (nest dicts to make groups)"
    for i, c in enumerate(raw):
        if c <= 0x20 or c == 0x7F:
            return f"it holds a space or control character at byte {i}"
    return None


class _Leaf:
    """An array of the state, normalised: little-endian, C- or F-contiguous."""

    __slots__ = ("name", "data", "shape", "dtype_str", "order")

    def __init__(self, name: str, data: np.ndarray, dtype_str: str, order: str) -> None:
        self.name = name            # hierarchical name: its dataset is /state/<name>
        self.data = data            # contiguous in `order`
        self.shape = tuple(int(n) for n in data.shape)
        self.dtype_str = dtype_str
        self.order = order

    @property
    def dataset_dims(self) -> Tuple[int, ...]:
        """The dataset's dimensions: the shape, reversed for F order (format 2.3)."""
        return self.shape[::-1] if self.order == "F" else self.shape


def _array_leaf(a: np.ndarray, keys: Tuple[str, ...]) -> _Leaf:
    where = _where(keys)
    if isinstance(a, np.ma.MaskedArray):
        raise TypeError(f"brine.save: {where}: a numpy masked array would lose its mask; "
                        "expected a plain numpy array (fill it, or save data and mask apart)")
    a = a.view(np.ndarray) if type(a) is not np.ndarray else a
    dtype_str = _dtype_str(a.dtype)
    if dtype_str is None:
        raise ValueError(f"brine.save: {where}: array dtype {a.dtype} is not supported; "
                         f"expected one of {_DTYPE_NAMES}")
    if a.ndim > _MAX_NDIM:
        raise ValueError(f"brine.save: {where}: array has {a.ndim} dimensions; expected 1 to "
                         f"{_MAX_NDIM}")
    want = np.dtype(dtype_str)
    if a.dtype.byteorder == ">":
        a = a.astype(want)  # by value; keeps the memory layout (order 'K')
    elif a.dtype != want or a.dtype.metadata:
        a = a.view(want)    # the same bytes (native order), without h5py's metadata
    # F only for a genuinely column-major array (format 2.3), as the C writer decides.
    big_extents = sum(1 for n in a.shape if n != 1)
    if a.size and big_extents >= 2 and a.flags.f_contiguous and not a.flags.c_contiguous:
        return _Leaf("/".join(keys), a, dtype_str, "F")
    return _Leaf("/".join(keys), np.ascontiguousarray(a), dtype_str, "C")


def _scalar(value: Any, keys: Tuple[str, ...]) -> Union[bool, int, float, complex, str]:
    """value as one of the format's Python scalar values (section 3.1)."""
    where = _where(keys)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):  # numpy.str_ too
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"brine.save: {where}: str is not valid UTF-8 ({exc.reason} at "
                             f"index {exc.start})") from None
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"brine.save: {where}: {type(value).__name__} is not supported; "
                        f"expected {_VALUE_TYPES} (store bytes as a uint8 array)")
    if isinstance(value, (np.generic, np.ndarray)):  # numpy scalars and 0-d arrays
        if _dtype_str(value.dtype) is None:
            what = "numpy scalar" if isinstance(value, np.generic) else "0-d array"
            raise ValueError(f"brine.save: {where}: {what} of dtype {value.dtype} is not "
                             f"supported; expected one of {_DTYPE_NAMES}")
        value = value.item()  # bool, int, float or complex, exactly
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        value = int(value)
        if not _INT64_MIN <= value <= _UINT64_MAX:
            raise ValueError(f"brine.save: {where}: int {value} does not fit in int64 or "
                             "uint64, so the C library could not restore it")
        return value
    if isinstance(value, float):
        return float(value)
    if isinstance(value, complex):
        return complex(value)
    raise TypeError(f"brine.save: {where}: {type(value).__name__} is not supported; "
                    f"expected {_VALUE_TYPES}")


def _prepare(state: Any) -> Dict[str, Any]:
    """A copy of state with every leaf normalised (a :class:`_Leaf` or a Python
    scalar), every key and value checked."""
    if not isinstance(state, dict):
        raise TypeError(f"brine.save: the state is a {type(state).__name__}; expected a dict")
    return _group(state, ())


def _group(group: dict, keys: Tuple[str, ...]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in group.items():
        if not isinstance(key, str):
            raise TypeError(f"brine.save: key {key!r} of {_where(keys)} is a "
                            f"{type(key).__name__}; expected a str")
        problem = _component_problem(key)
        if problem is not None:
            raise ValueError(f"brine.save: key {key!r} of {_where(keys)} is not a valid brine "
                             f"name: {problem}")
        path = keys + (str(key),)
        if len(path) > _MAX_DEPTH:
            raise ValueError(f"brine.save: {_where(path)}: groups nest deeper than "
                             f"{_MAX_DEPTH} levels")
        if len("/".join(path).encode("utf-8")) > _MAX_NAME_BYTES:
            raise ValueError(f"brine.save: {_where(path)}: the name {'/'.join(path)!r} is "
                             f"longer than {_MAX_NAME_BYTES} bytes")
        if isinstance(value, dict):
            out[str(key)] = _group(value, path)
        elif isinstance(value, np.ndarray) and value.ndim >= 1:
            out[str(key)] = _array_leaf(value, path)
        else:
            out[str(key)] = _scalar(value, path)
    return out


def _check_int(value: Any, what: str, lo: int, hi: Optional[int]) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"brine.save: {what} is a {type(value).__name__}; expected an int")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        span = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"brine.save: {what} is {value}; expected {span}")
    return value


def _attr_name_problem(name: str) -> Optional[str]:
    """Why name is not a user metadata name (format 2.1), or None."""
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid UTF-8 (it holds a lone surrogate)"
    if not 1 <= len(raw) <= _MAX_ATTR_NAME_BYTES:
        return f"it is {len(raw)} bytes long; names are 1 to {_MAX_ATTR_NAME_BYTES} bytes"
    if "/" in name:
        return "it holds '/'"
    for i, c in enumerate(raw):
        if c < 0x20 or c == 0x7F:
            return f"it holds a control character at byte {i}"
    if name.startswith("brine_"):
        return "names starting with 'brine_' are reserved for brine"
    if name in _RESERVED_ATTRS:
        return f"{name!r} is brine's own root attribute"
    return None


def _prepare_attrs(attrs: Optional[Mapping[str, Any]]) -> Dict[str, Union[int, float, bytes]]:
    """User metadata as int, float, or the UTF-8 bytes of a str."""
    if attrs is None:
        return {}
    if not isinstance(attrs, Mapping):
        raise TypeError(f"brine.save: attrs is a {type(attrs).__name__}; expected a dict")
    out: Dict[str, Union[int, float, bytes]] = {}
    for name, value in attrs.items():
        if not isinstance(name, str):
            raise TypeError(f"brine.save: attrs key {name!r} is a {type(name).__name__}; "
                            "expected a str")
        problem = _attr_name_problem(name)
        if problem is not None:
            raise ValueError(f"brine.save: attrs[{name!r}]: invalid metadata name: {problem}")
        where = f"brine.save: attrs[{name!r}]"
        if isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{where}: bool is not a metadata type (HDF5 has none); expected "
                            "an int, float or str: pass int(value)")
        if isinstance(value, (int, np.integer)):
            value = int(value)
            if not _INT64_MIN <= value <= _INT64_MAX:
                raise ValueError(f"{where}: int {value} does not fit in int64")
            out[name] = value
        elif isinstance(value, float) or (isinstance(value, np.floating)
                                          and value.dtype.itemsize <= 8):
            out[name] = float(value)  # float16 and float32 exactly
        elif isinstance(value, str):
            try:
                raw = value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"{where}: str is not valid UTF-8 (it holds a lone "
                                 "surrogate)") from None
            if b"\0" in raw:
                raise ValueError(f"{where}: str holds a NUL character at byte "
                                 f"{raw.index(0)}; metadata strings end at their first NUL")
            out[name] = raw
        else:
            raise TypeError(f"{where}: {type(value).__name__} is not a metadata type; "
                            "expected an int (int64), float or str")
    return out


# ---------------------------------------------------------------- pickling

class _StatePickler(pickle.Pickler):
    """CPython's pickler, reducing each array to the format's ``numpy.ndarray(...)``
    call with an out-of-band buffer (format 3.2)."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=5, buffer_callback=self._out_of_band)
        self.fast = True  # no memo opcodes: see the module's docstring
        self._reduced: Deque[_Leaf] = collections.deque()
        #: The arrays in the order of their NEXT_BUFFER opcodes.
        self.leaves: List[_Leaf] = []

    def reducer_override(self, obj: Any) -> Any:  # noqa: D102 (pickle's API)
        if type(obj) is not _Leaf:
            return NotImplemented
        self._reduced.append(obj)
        # A read-only buffer would add READONLY_BUFFER, outside format 3.3; the
        # buffer's bytes never enter the stream, so stand in a writable one.
        data = obj.data if obj.data.flags.writeable else bytearray()
        return (np.ndarray, (obj.shape, obj.dtype_str, pickle.PickleBuffer(data), 0, None,
                             obj.order))

    def _out_of_band(self, buffer: pickle.PickleBuffer) -> bool:
        # Called right after the reduction of the array the buffer belongs to.
        self.leaves.append(self._reduced.popleft())
        return False  # out of band: NEXT_BUFFER


def _pickle(tree: Dict[str, Any]) -> Tuple[bytes, List[_Leaf]]:
    out = io.BytesIO()
    pickler = _StatePickler(out)
    pickler.dump(tree)
    stream = out.getvalue()
    # What the readers will check (format 3.3): a writer bug must not publish a
    # file that brine refuses to load.
    try:
        n_buffers = scan_stream(stream, path="<the stream brine.save wrote>")
    except CorruptCheckpointError as exc:  # pragma: no cover (a bug of this module)
        raise RuntimeError(f"brine.save: internal error, the pickle stream breaks the "
                           f"format: {exc}") from exc
    if n_buffers != len(pickler.leaves) or pickler._reduced:  # pragma: no cover
        raise RuntimeError(f"brine.save: internal error, {n_buffers} NEXT_BUFFER opcodes for "
                           f"{len(pickler.leaves)} arrays")
    return stream, pickler.leaves


# ---------------------------------------------------------------- HDF5 layout

def chunk_shape(dims: Tuple[int, ...], itemsize: int) -> Tuple[int, ...]:
    """The C writer's chunk shape of a non-empty dataset (format 2.3, brine_chunk__plan):
    trailing dimensions whole while the chunk stays at most 1 MiB, then as many
    elements of the next as fit (at least 1), then 1."""
    chunk = [1] * len(dims)
    nbytes = itemsize
    for d in reversed(range(len(dims))):
        if dims[d] > _CHUNK_TARGET_BYTES // nbytes:
            chunk[d] = max(1, _CHUNK_TARGET_BYTES // nbytes)
            break
        chunk[d] = dims[d]
        nbytes *= dims[d]
    return tuple(chunk)


def fletcher32(data: bytes) -> int:
    """HDF5's fletcher32 of data (format 2.3): 16-bit big-endian words, both
    sums folded after every 360 words, an odd last byte as a word ``byte << 8``.

    Within a block of 360 words, HDF5's ``sum2 += sum1`` word by word adds
    ``360 * sum1 + sum((360 - k) * w[k])``: numpy computes the block sums and
    only the folds run in Python.  All sums are modulo 2^32, as HDF5's uint32_t.
    """
    mask = 0xFFFFFFFF
    words = np.frombuffer(data, dtype=">u2", count=len(data) // 2).astype(np.int64)
    sum1 = sum2 = 0
    for start in range(0, len(words), 360 * 4096):  # bounded temporaries
        part = words[start:start + 360 * 4096]
        full = len(part) // 360 * 360
        blocks = part[:full].reshape(-1, 360)
        sums = blocks.sum(axis=1).tolist()
        weighted = (blocks @ np.arange(360, 0, -1, dtype=np.int64)).tolist()
        tail = part[full:]
        if len(tail):
            sums.append(int(tail.sum()))
            weighted.append(int(tail @ np.arange(len(tail), 0, -1, dtype=np.int64)))
        for n, (s, w) in enumerate(zip(sums, weighted)):
            count = 360 if n < full // 360 else len(tail)
            sum2 = (sum2 + count * sum1 + w) & mask
            sum1 = (sum1 + s) & mask
            sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
            sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
    if len(data) % 2:
        sum1 = (sum1 + (data[-1] << 8)) & mask
        sum2 = (sum2 + sum1) & mask
        sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
        sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
    sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
    sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
    return (sum2 << 16) | sum1


def encode_chunk(chunk: np.ndarray, level: int) -> Tuple[bytes, int]:
    """A chunk's stored bytes and filter mask under the pipeline shuffle,
    deflate, fletcher32 (format 2.3): shuffled, deflated as a zlib stream when
    that makes it strictly smaller (otherwise kept shuffled, with bit 1 of the
    mask, deflate's position, set), then its fletcher32 appended little-endian."""
    esize = chunk.dtype.itemsize
    raw = np.ascontiguousarray(chunk).view(np.uint8)
    shuffled = raw.reshape(-1, esize).T.tobytes() if esize > 1 else raw.tobytes()
    packed = zlib.compress(shuffled, level)
    mask = 0
    if len(packed) >= len(shuffled):
        packed, mask = shuffled, 1 << 1
    return packed + fletcher32(packed).to_bytes(4, "little"), mask


def _write_array(f: h5py.File, leaf: _Leaf, level: int) -> h5py.Dataset:
    """/state/<name> as the C writer makes it (format 2.3, brine_h5__write_array)."""
    dtype = np.dtype(leaf.dtype_str)
    dims = leaf.dataset_dims
    path = "/state/" + leaf.name
    if leaf.data.size == 0:  # contiguous, no filters, no data
        return f.create_dataset(path, shape=dims, dtype=dtype)
    chunk = chunk_shape(dims, dtype.itemsize)
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_chunk(chunk)
    dcpl.set_shuffle()
    dcpl.set_deflate(level)
    dcpl.set_fletcher32()
    # Every chunk is written whole below: no fill values, no early allocation.
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_INCR)
    lcpl = h5py.h5p.create(h5py.h5p.LINK_CREATE)
    lcpl.set_create_intermediate_group(True)
    lcpl.set_char_encoding(h5py.h5t.CSET_UTF8)
    dsid = h5py.h5d.create(f.id, path.encode("utf-8"), h5py.h5t.py_create(dtype, logical=True),
                           h5py.h5s.create_simple(dims), dcpl=dcpl, lcpl=lcpl)
    # An F array's bytes as they are: its transpose is C-contiguous with the dims reversed.
    data = leaf.data.T if leaf.order == "F" else leaf.data
    grid = [-(-n // c) for n, c in zip(dims, chunk)]
    for index in np.ndindex(*grid):
        offset = tuple(i * c for i, c in zip(index, chunk))
        piece = data[tuple(slice(o, o + c) for o, c in zip(offset, chunk))]
        if piece.shape != chunk:  # an edge chunk, padded with zeros to the full chunk shape
            padded = np.zeros(chunk, dtype=dtype)
            padded[tuple(slice(0, n) for n in piece.shape)] = piece
            piece = padded
        stored, mask = encode_chunk(piece, level)
        dsid.write_direct_chunk(offset, stored, filter_mask=mask)
    return h5py.Dataset(dsid)


def _fixed_utf8(raw: bytes) -> Tuple[np.bytes_, Any]:
    """A value and type for a fixed-length UTF-8 NULLPAD string attribute of the
    string's byte length (1 for the empty string: one NUL), format 2.1."""
    return np.bytes_(raw), h5py.string_dtype("utf-8", max(1, len(raw)))


def _write_file(path: str, *, step: int, stream: bytes, leaves: List[_Leaf],
                attrs: Dict[str, Union[int, float, bytes]], level: int, version: str) -> None:
    vlen = h5py.string_dtype("utf-8")
    # HDF5 1.10 file format: superblock 3, checksummed metadata (format 2).
    with h5py.File(path, "w", libver=("v110", "v110")) as f:
        f.attrs.create("brine_format", 1, dtype=np.int32)
        f.attrs.create("brine_version", version, dtype=vlen)
        f.attrs.create("step", step, dtype=np.int64)
        f.attrs.create("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       dtype=vlen)
        host, host_type = _fixed_utf8(socket.gethostname().encode("utf-8", "replace")
                                      .split(b"\0", 1)[0])
        f.attrs.create("brine_host", host, dtype=host_type)
        f.attrs.create("brine_threads", 1, dtype=np.int64)
        for name, value in attrs.items():
            if isinstance(value, bytes):
                data, string_type = _fixed_utf8(value)
                f.attrs.create(name, data, dtype=string_type)
            elif isinstance(value, int):
                f.attrs.create(name, value, dtype=np.int64)
            else:
                f.attrs.create(name, value, dtype=np.float64)

        for leaf in leaves:
            _write_array(f, leaf, level).attrs.create("order", leaf.order, dtype=vlen)

        p = f.create_dataset("brine/pickle", data=np.frombuffer(stream, dtype=np.uint8))
        names = ["/state/" + leaf.name for leaf in leaves]
        p.attrs.create("buffers", np.array(names, dtype=object), shape=(len(names),),
                       dtype=vlen)
        p.attrs.create("crc32", zlib.crc32(stream), dtype=np.uint32)
        f.flush()


# ---------------------------------------------------------------- publication

def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs(directory: str) -> None:
    """mkdir -p, fsyncing the parent of each directory it creates (as brine_open)."""
    if os.path.isdir(directory):
        return
    parent = os.path.dirname(os.path.abspath(directory))
    if parent != os.path.abspath(directory):
        _makedirs(parent)
    try:
        os.mkdir(directory)
    except FileExistsError:
        if not os.path.isdir(directory):
            raise
        return
    _fsync_dir(parent)


def _remove_leftovers(directory: str, prefix: str) -> None:
    """Removes temporary files of this prefix left by a killed writer (format 1);
    the C library's brine_scan__is_temp rule.  Best effort."""
    temp = re.compile(r"\." + re.escape(prefix) + r"-[0-9]{12}\.h5\.tmp-")
    for name in os.listdir(directory):
        if temp.match(name):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


def _rotate(directory: str, prefix: str, keep_last: int, keep_step: int,
            keep_every: int = 0) -> None:
    """Deletes the oldest committed checkpoints of prefix beyond keep_last, never
    keep_step nor, when keep_every > 0, a multiple of keep_every, which does not
    count toward keep_last (lib/io/dir_scan.c, brine_scan__rotate_every).  Best effort."""
    committed = re.compile(re.escape(prefix) + r"-([0-9]{12})\.h5")
    steps = sorted(int(m[1]) for m in map(committed.fullmatch, os.listdir(directory)) if m)
    if keep_every > 0:
        steps = [s for s in steps if s % keep_every != 0]
    deleted = 0
    for s in steps[:max(0, len(steps) - keep_last)]:
        if s == keep_step:
            continue
        try:
            os.unlink(os.path.join(directory, f"{prefix}-{s:012d}.h5"))
            deleted += 1
        except OSError:  # retried by the next rotation
            pass
    if deleted:
        try:
            _fsync_dir(directory)
        except OSError:
            pass


def save(path_or_dir: "os.PathLike[str] | str", state: Dict[str, Any], *, step: int,
         keep_last: Optional[int] = None, keep_every: Optional[int] = None, prefix: str = "ckpt",
         attrs: Optional[Mapping[str, Any]] = None, level: int = 1) -> str:
    """Writes a checkpoint of state that brine_restore(), brine.load and stock
    h5py read (format version 1).

    Parameters
    ----------
    path_or_dir : str or os.PathLike
        A checkpoint directory (created with its parents when missing): the
        file is ``<dir>/<prefix>-<step, 12 digits>.h5``.  Or a path ending in
        ``.h5`` that is not a directory: exactly that file is written (its
        directory must exist); when its name is a checkpoint name
        ``<prefix>-<12 digits>.h5`` its step must be `step`.
    state : dict
        Nested dicts: keys are name components (non-empty str, not ``.`` or
        ``..``, without ``/``, spaces or control characters; at most 32
        levels, names at most 1024 bytes), values are dicts (groups), numpy
        arrays (ndim 1 to 8) of bool, int8 ... int64, uint8 ... uint64,
        float32, float64, complex64 or complex128, or scalars: bool, int
        (within int64 or uint64), float, complex, str, and numpy scalars and
        0-d arrays of those dtypes (saved as the Python value).
    step : int
        0 to 999999999999.
    keep_last : int, optional
        Directory only: after publishing, delete the oldest checkpoints of
        `prefix` so that `keep_last` (>= 1) remain, never the one just
        written.  By default every checkpoint is kept.
    keep_every : int, optional
        Directory only: checkpoints whose step is a multiple of `keep_every`
        (>= 1; step 0 included) survive rotation and do not count toward
        `keep_last`, as the C library's ``brine_options.keep_every``.  Only
        matters with `keep_last`.
    prefix : str
        Directory only: 1 to 64 of ``[A-Za-z0-9_.+-]``, not starting with ``.``.
    attrs : dict, optional
        User metadata, written as root attributes (format 2.1): names are 1
        to 255 bytes of UTF-8 without ``/`` or control characters, not
        starting with ``brine_`` and not ``step`` or ``created``; values are
        int (int64), float (float64) or str (fixed-length UTF-8, without
        NUL), numpy scalars included.  bool is refused (HDF5 has no bool
        attribute; pass ``int(flag)``).
    level : int
        Deflate level, 0 to 9.

    Returns
    -------
    str
        The path of the checkpoint written.

    Raises
    ------
    TypeError, ValueError
        An invalid argument, key or value; the message names the key path
        (``state['fluid']['u']``) and says what was expected.  Nothing is
        written.
    OSError
        Writing failed; the temporary file is removed and every existing
        checkpoint is untouched.  (Only a failing fsync of the directory
        after the rename leaves the new checkpoint in place.)

    Notes
    -----
    Publication is atomic, as the C library's: the file is written under
    the hidden name ``.<name>.tmp-<pid>`` in the same directory, fsynced,
    renamed to its final name (replacing a checkpoint of the same step) and
    the directory fsynced.  In a directory, temporary files of `prefix` left
    by a killed writer are removed first; only one process may write into a
    directory with a given prefix.

    Arrays are stored as they lie in memory: an F-contiguous array with at
    least two extents other than 1 as order ``"F"``, any other array in C
    order (non-contiguous ones are copied), big-endian ones converted to
    little-endian by value.
    """
    from . import __version__

    target = os.fsdecode(path_or_dir)
    step = _check_int(step, "step", 0, MAX_STEP)
    level = _check_int(level, "level", 0, 9)
    if keep_last is not None:
        keep_last = _check_int(keep_last, "keep_last", 1, None)
    if keep_every is not None:
        keep_every = _check_int(keep_every, "keep_every", 1, None)
    if not isinstance(prefix, str) or not PREFIX.fullmatch(prefix):
        raise ValueError(f"brine.save: prefix {prefix!r} is not 1 to 64 characters of "
                         "[A-Za-z0-9_.+-] not starting with '.'")
    to_directory = os.path.isdir(target) or not target.endswith(".h5")
    if to_directory:
        directory = target
        final = os.path.join(directory, f"{prefix}-{step:012d}.h5")
    else:
        for what, value in (("keep_last", keep_last), ("keep_every", keep_every)):
            if value is not None:
                raise ValueError(f"brine.save: {what} is for a checkpoint directory, and "
                                 f"{target!r} is a file name")
        named = CHECKPOINT_NAME.fullmatch(os.path.basename(target))
        if named and int(named["step"]) != step:
            raise ValueError(f"brine.save: the file name {os.path.basename(target)!r} says "
                             f"step {int(named['step'])} but step is {step}; readers would "
                             "refuse the file")
        directory = os.path.dirname(target) or "."
        final = target
    tmp = os.path.join(directory, f".{os.path.basename(final)}.tmp-{os.getpid()}")

    tree = _prepare(state)
    metadata = _prepare_attrs(attrs)
    stream, leaves = _pickle(tree)

    if to_directory:
        _makedirs(directory)
        _remove_leftovers(directory, prefix)
    try:
        _write_file(tmp, step=step, stream=stream, leaves=leaves, attrs=metadata, level=level,
                    version=__version__)
        _fsync_file(tmp)
        os.rename(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)
    if keep_last is not None:
        _rotate(directory, prefix, keep_last, step, keep_every or 0)
    return final
