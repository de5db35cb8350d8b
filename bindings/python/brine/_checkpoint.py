"""Reading one checkpoint file: verification, brine.load of a file, Checkpoint."""

from __future__ import annotations

import errno
import os
import zlib
from builtins import open as builtins_open
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Dict, Iterator, Optional, Tuple

import h5py
import numpy as np

from ._directory import CHECKPOINT_NAME
from ._errors import BrineError, CorruptCheckpointError, UnsupportedVersionError
from ._lazy import LazyArray, read_whole
from ._optional import ByteBar
from ._unpickler import ArraySpec, collect_arrays, scan_stream, unpickle_state

__all__ = ["FORMAT_VERSION", "Checkpoint", "Group", "load_file"]

#: The newest checkpoint format this package reads.
FORMAT_VERSION = 1

_STATE_PREFIX = "/state/"


def _variable_of(dataset_path: str) -> str:
    """The variable name of an array dataset path: ``/state/fluid/u`` -> ``fluid/u``."""
    if dataset_path.startswith(_STATE_PREFIX):
        return dataset_path[len(_STATE_PREFIX):]
    return dataset_path


def _as_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _as_str(value[()])
    return str(value)


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

#: deflate never shrinks data more than this (zlib's technical limit, ~1032:1).
_MAX_DEFLATE_RATIO = 1032

_SHUFFLE, _DEFLATE, _FLETCHER32 = 2, 1, 3

# What h5py raises for a damaged file: OSError from HDF5's error stack, and
# sometimes the others for metadata it decodes itself.
_H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError,
              OverflowError)


def _check_superblock(path: str) -> None:
    """Refuses, before HDF5 parses a byte, a file that is not HDF5 or whose
    superblock is older than version 2 (no metadata checksums): HDF5 1.10.8
    crashes on some damaged metadata of the old format, which the C library's
    restore refuses for the same reason (format section 2)."""
    with builtins_open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) < 9 or head[:8] != _HDF5_SIGNATURE:
        raise CorruptCheckpointError(f"{path}: not an HDF5 file (no HDF5 signature at byte 0)",
                                     path=path)
    if head[8] < 2:
        raise CorruptCheckpointError(
            f"{path}: its HDF5 superblock is version {head[8]}, a format without metadata "
            "checksums (brine writes version 3: docs/format.md, section 2)", path=path)


def _open_h5(path: str) -> h5py.File:
    """Opens path read-only with h5py; a non-HDF5 file is a corrupt checkpoint."""
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if not os.access(path, os.R_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
    _check_superblock(path)
    try:
        return h5py.File(path, "r")
    except _H5_ERRORS as exc:
        raise CorruptCheckpointError(f"{path}: not a readable HDF5 file ({exc})",
                                     path=path) from exc


def _step_of_name(path: str) -> Optional[int]:
    """The step in a committed checkpoint's file name, None for other names."""
    m = CHECKPOINT_NAME.fullmatch(os.path.basename(path))
    return int(m["step"]) if m else None


def _read_vlen_str(obj: Any, name: str) -> str:
    """A variable-length string attribute, "" when absent or unreadable.

    Only for information: verification reads no variable-length string, whose
    bytes live in HDF5's global heap, covered by no checksum (format section 6).
    """
    try:
        return _as_str(obj.attrs[name]) if name in obj.attrs else ""
    except (_H5_ERRORS + (UnicodeDecodeError,)):
        return ""


class _Header:
    """The integer root attributes of a checkpoint (format section 2.1)."""

    __slots__ = ("format_version", "step")

    def __init__(self, f: h5py.File, path: str) -> None:
        attrs = f.attrs
        if "brine_format" not in attrs:
            raise CorruptCheckpointError(
                f"{path}: root attribute 'brine_format' missing: not a brine checkpoint", path=path)
        version = _int_attr(attrs, "brine_format", path)
        if version > FORMAT_VERSION:
            raise UnsupportedVersionError(
                f"{path}: checkpoint format version {version} is newer than version "
                f"{FORMAT_VERSION}, the newest this brine package reads; upgrade brine",
                path=path, found=version, supported=FORMAT_VERSION)
        if version < 1:
            raise CorruptCheckpointError(
                f"{path}: invalid checkpoint format version {version}", path=path)
        if "step" not in attrs:
            raise CorruptCheckpointError(f"{path}: root attribute 'step' missing", path=path)
        step = _int_attr(attrs, "step", path)
        named = _step_of_name(path)
        if named is not None and named != step:
            raise CorruptCheckpointError(
                f"{path}: root attribute 'step' is {step}, but the file name says step {named}",
                path=path)
        self.format_version = version
        self.step = step


def _int_attr(attrs: Any, name: str, path: str) -> int:
    value = attrs[name]
    if not (isinstance(value, (int, np.integer))
            or (isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "iu")):
        raise CorruptCheckpointError(f"{path}: root attribute {name!r} is not an integer",
                                     path=path)
    return int(value)


def _read_stream(f: h5py.File, path: str) -> Tuple[bytes, int]:
    """Reads and checks /brine/pickle: its bytes, CRC-32 and the number of buffers.

    Of ``buffers`` only the count is read (its dataspace), not the text: each
    array's dataset is ``/state/<name>`` (format sections 2.3 and 6).
    """
    node = f.get("brine/pickle")
    if not isinstance(node, h5py.Dataset):
        raise CorruptCheckpointError(f"{path}: dataset /brine/pickle missing", path=path)
    if node.dtype != np.uint8 or node.ndim != 1:
        raise CorruptCheckpointError(
            f"{path}: /brine/pickle is {node.dtype}{list(node.shape)}, expected a 1-D uint8 dataset",
            path=path)
    limit = os.path.getsize(path)
    if node.id.get_create_plist().get_nfilters() > 0:
        limit *= _MAX_DEFLATE_RATIO
    if node.shape[0] > limit:
        raise CorruptCheckpointError(
            f"{path}: /brine/pickle claims {node.shape[0]} bytes, more than the file can hold",
            path=path)
    try:
        stream = node[()].tobytes()
    except OSError as exc:
        raise CorruptCheckpointError(f"{path}: cannot read /brine/pickle ({exc})",
                                     path=path) from exc
    if "crc32" not in node.attrs:
        raise CorruptCheckpointError(f"{path}: attribute /brine/pickle crc32 missing", path=path)
    expected = int(node.attrs["crc32"])
    actual = zlib.crc32(stream)
    if actual != expected:
        raise CorruptCheckpointError(
            f"{path}: CRC-32 mismatch of the pickle stream: computed {actual:#010x}, "
            f"attribute crc32 says {expected:#010x}", path=path)
    if "buffers" not in node.attrs:
        raise CorruptCheckpointError(f"{path}: attribute /brine/pickle buffers missing",
                                     path=path)
    shape = node.attrs.get_id("buffers").shape  # the dataspace; reads no string
    if len(shape) != 1:
        raise CorruptCheckpointError(
            f"{path}: attribute /brine/pickle buffers is not one-dimensional", path=path)
    return stream, int(shape[0])


def _check_dataset(ds: h5py.Dataset, spec: ArraySpec, path: str) -> None:
    """Checks an array dataset against the array the stream describes, and that
    every chunk is there and verifiable (format sections 2.3 and 6), reading
    only metadata."""
    variable = _variable_of(ds.name)
    where = f"{path}: variable {variable!r} (dataset {ds.name})"

    def corrupt(what: str) -> CorruptCheckpointError:
        return CorruptCheckpointError(f"{where}: {what}", path=path, variable=variable)

    want_shape = spec.shape[::-1] if spec.order == "F" else spec.shape
    if ds.shape != want_shape:
        raise corrupt(f"dataset dimensions {ds.shape}, but the pickle describes shape "
                      f"{spec.shape} in order {spec.order!r} (dimensions {want_shape})")
    if ds.dtype != spec.dtype:
        raise corrupt(f"dataset type {ds.dtype}, but the pickle says {spec.dtype.str}")
    nbytes = spec.dtype.itemsize * int(np.prod(spec.shape, dtype=object))
    if nbytes == 0:
        return
    dcpl = ds.id.get_create_plist()
    if dcpl.get_layout() != h5py.h5d.CHUNKED:
        raise corrupt("a non-empty array dataset is not chunked")
    filters = [dcpl.get_filter(i) for i in range(dcpl.get_nfilters())]
    codes = [flt[0] for flt in filters]
    if codes not in ([_SHUFFLE, _DEFLATE, _FLETCHER32], [_SHUFFLE, _FLETCHER32],
                     [_DEFLATE, _FLETCHER32], [_FLETCHER32]):
        raise corrupt(f"filter pipeline {codes}: a non-empty array must be chunked with "
                      "shuffle (2), deflate (1), fletcher32 (3), in this order, fletcher32 "
                      "always (a dataset without checksums cannot be verified)")
    for code, _, values, _ in filters:
        if code == _SHUFFLE and tuple(values[:1]) != (spec.dtype.itemsize,):
            raise corrupt(f"shuffle filter with element size {tuple(values)}, "
                          f"expected {spec.dtype.itemsize}")
    deflate_bit = 1 << codes.index(_DEFLATE) if _DEFLATE in codes else 0
    chunk = dcpl.get_chunk()
    if len(chunk) != len(ds.shape) or min(chunk) < 1:
        raise corrupt(f"chunk shape {chunk}")
    grid = [-(-n // c) for n, c in zip(ds.shape, chunk)]
    n_chunks = int(np.prod(grid, dtype=object))
    chunk_bytes = spec.dtype.itemsize * int(np.prod(chunk, dtype=object))
    # zlib's compressBound (HDF5's deflate filter may expand data), + fletcher32
    max_stored = (chunk_bytes + (chunk_bytes >> 12) + (chunk_bytes >> 14) + (chunk_bytes >> 25)
                  + 13 + 4)
    stored = ds.id.get_num_chunks()
    if stored != n_chunks:
        raise corrupt(f"{stored} chunks stored of {n_chunks}: a chunk is missing")
    file_size = os.path.getsize(path)
    for index in np.ndindex(*grid):
        offset = tuple(int(i) * c for i, c in zip(index, chunk))
        info = ds.id.get_chunk_info_by_coord(offset)
        if info.byte_offset is None or info.size == 0:
            raise corrupt(f"the chunk at {offset} is missing")
        if info.filter_mask & ~deflate_bit:
            raise corrupt(f"the chunk at {offset} has filter mask {info.filter_mask:#x}: it "
                          "skips a filter other than deflate")
        raw = not deflate_bit or info.filter_mask & deflate_bit
        if info.size > max_stored or (raw and info.size != chunk_bytes + 4):
            raise corrupt(f"the chunk at {offset} is {info.size} bytes stored, impossible for "
                          f"a chunk of {chunk_bytes} bytes")
        if info.byte_offset + info.size > file_size:
            raise corrupt(f"the chunk at {offset} lies beyond the end of the file")


class _Buffer:
    """Stands for the i-th out-of-band buffer while the stream is decoded."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


class _Pending:
    """An array of the stream, before its dataset is checked and read."""

    __slots__ = ("spec",)

    def __init__(self, spec: ArraySpec) -> None:
        self.spec = spec


def _pending(spec: ArraySpec) -> _Pending:
    if type(spec.buffer) is not _Buffer:
        raise CorruptCheckpointError("numpy.ndarray called with a buffer that is not an "
                                     "out-of-band buffer")
    return _Pending(spec)


def _decode(f: h5py.File, path: str, *, lazy: bool,
            show_progress: Optional[bool] = False) -> Tuple[_Header, dict]:
    """Verifies a checkpoint and decodes its state (arrays read, or LazyArrays).

    show_progress: a progress bar over the arrays read (see _optional.progress).

    Every check that needs no array data (header, stream, every dataset's
    type, shape, filters and chunk index) passes before any array is read.
    """
    header = _Header(f, path)
    stream, n_names = _read_stream(f, path)
    n_buffers = scan_stream(stream, path=path)
    if n_names != n_buffers:
        raise CorruptCheckpointError(
            f"{path}: the pickle stream consumes {n_buffers} out-of-band buffers but "
            f"attribute /brine/pickle buffers lists {n_names}", path=path)

    def make_array(spec: ArraySpec) -> _Pending:
        try:
            return _pending(spec)
        except CorruptCheckpointError as exc:
            raise CorruptCheckpointError(f"{path}: {exc}", path=path) from None

    state = unpickle_state(stream, buffers=[_Buffer(i) for i in range(n_buffers)],
                           make_array=make_array, path=path)
    arrays = collect_arrays(state, lambda v: type(v) in (_Pending, _Buffer), path=path)
    used = set()
    checked = []
    for name, group, key, pending in arrays:
        if type(pending) is _Buffer:
            raise CorruptCheckpointError(
                f"{path}: variable {name!r} is a bare out-of-band buffer, not an array",
                path=path, variable=name)
        index = pending.spec.buffer.index
        if index in used:
            raise CorruptCheckpointError(
                f"{path}: out-of-band buffer {index} used by two arrays", path=path, variable=name)
        used.add(index)
        node = f.get(_STATE_PREFIX + name)
        if not isinstance(node, h5py.Dataset):
            raise CorruptCheckpointError(
                f"{path}: variable {name!r}: dataset {_STATE_PREFIX}{name} missing",
                path=path, variable=name)
        _check_dataset(node, pending.spec, path)
        checked.append((name, group, key, pending.spec, node))
    if len(used) != n_buffers:
        raise CorruptCheckpointError(
            f"{path}: {n_buffers - len(used)} of the {n_buffers} out-of-band buffers are "
            "not used by an array", path=path)
    if lazy:
        for name, group, key, spec, ds in checked:
            group[key] = LazyArray(ds, shape=spec.shape, dtype=spec.dtype, order=spec.order,
                                   path=path, name=name)
        return header, state
    total = sum(spec.dtype.itemsize * int(np.prod(spec.shape, dtype=object))
                for _, _, _, spec, _ in checked)
    with ByteBar(total=total, desc=os.path.basename(path), enabled=show_progress) as bar:
        for name, group, key, spec, ds in checked:
            # h5py checks each chunk's fletcher32 while reading.
            data = read_whole(ds, path=path, variable=name, bar=bar)
            group[key] = np.ndarray(spec.shape, spec.dtype, data, 0, None, spec.order)
    return header, state


def _decode_file(f: h5py.File, path: str, *, lazy: bool,
                 show_progress: Optional[bool] = False) -> Tuple[_Header, dict]:
    """:func:`_decode`, with h5py's errors on a damaged file as corruption errors."""
    try:
        return _decode(f, path, lazy=lazy, show_progress=show_progress)
    except BrineError:
        raise
    except _H5_ERRORS as exc:
        raise CorruptCheckpointError(
            f"{path}: damaged HDF5 metadata ({type(exc).__name__}: {exc})", path=path) from exc


def load_file(path: str, *, progress: Optional[bool] = None) -> dict:
    """Loads and verifies the whole state of one checkpoint file (see :func:`brine.load`)."""
    path = os.fspath(path)
    with _open_h5(path) as f:
        _, state = _decode_file(f, path, lazy=False, show_progress=progress)
    return state


class Group(Mapping):
    """A group of variables of an open checkpoint, e.g. ``ckpt["fluid"]``.

    A read-only :class:`~collections.abc.Mapping` from names to
    :class:`LazyArray`, nested :class:`Group` or Python scalars.  A key may be
    a path: ``group["a/b"]`` is ``group["a"]["b"]``.

    Attributes
    ----------
    name : str
        The group's hierarchical name ("" for the whole checkpoint).
    """

    def __init__(self, content: dict, name: str, path: str) -> None:
        self._content = content
        self.name = name
        self._file_path = path

    def __getitem__(self, key: str) -> Any:
        if not isinstance(key, str):
            raise KeyError(key)
        node: Any = self._content
        for part in key.strip("/").split("/"):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(f"{key!r}: no such variable or group in "
                               f"{self._file_path} {self.name or '/'}")
            node = node[part]
        if isinstance(node, dict):
            full = f"{self.name}/{key.strip('/')}" if self.name else key.strip("/")
            return Group(node, full, self._file_path)
        return node

    def __iter__(self) -> Iterator[str]:
        return iter(self._content)

    def __len__(self) -> int:
        return len(self._content)

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
        except KeyError:
            return False
        return True

    def __repr__(self) -> str:
        return f"<brine.Group {self.name or '/'!r} ({len(self)} members) of {self._file_path!r}>"

    def variables(self) -> Dict[str, Any]:
        """Every variable under this group, flattened, in the state's order.

        Returns
        -------
        dict
            Full hierarchical names (``"field/T"``, relative to the
            checkpoint's root) to :class:`LazyArray` objects and Python scalars.
        """
        found: Dict[str, Any] = {}

        def walk(prefix: str, content: dict) -> None:  # nesting is at most 32 deep
            for key, value in content.items():
                name = f"{prefix}/{key}" if prefix else key
                if isinstance(value, dict):
                    walk(name, value)
                else:
                    found[name] = value
        walk(self.name, self._content)
        return found


class Checkpoint(Group):
    """A checkpoint opened read-only with :func:`brine.open`.

    A :class:`~collections.abc.Mapping` of the top-level names of the state
    (see :class:`Group`) whose arrays are :class:`LazyArray` objects that read
    from the file only when indexed.  Use it as a context manager, or call
    :meth:`close`; arrays cannot be read after closing.

    Opening checks the format version, the pickle stream's CRC-32, its
    opcodes and globals, and every array dataset's presence, type and shape;
    chunk checksums are checked as data is read.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file.

    Attributes
    ----------
    path : str
    step : int
    created : str
        UTC time of writing, ``YYYY-MM-DDTHH:MM:SSZ`` ("" when absent).
    format_version : int
    brine_version : str
        Version of the library that wrote the file ("" when absent).
    """

    def __init__(self, path: "os.PathLike[str] | str") -> None:
        self.path = os.fspath(path)
        self._file = _open_h5(self.path)
        try:
            header, state = _decode_file(self._file, self.path, lazy=True)
        except BaseException:
            self._file.close()
            raise
        super().__init__(state, "", self.path)
        self.step: int = header.step
        self.format_version: int = header.format_version

        self._strings: dict = {}
        self._attrs: Optional[Mapping] = None

    # Read on first use, not when opening: verification reads no
    # variable-length string (format section 6).
    def _string_attr(self, name: str) -> str:
        if name not in self._strings:
            self._strings[name] = "" if self.closed else _read_vlen_str(self._file, name)
        return self._strings[name]

    @property
    def created(self) -> str:
        """UTC time of writing, ``YYYY-MM-DDTHH:MM:SSZ`` ("" when absent or unreadable)."""
        return self._string_attr("created")

    @property
    def brine_version(self) -> str:
        """Version of the library that wrote the file ("" when absent or unreadable)."""
        return self._string_attr("brine_version")

    @property
    def attrs(self) -> "Mapping[str, Any]":
        """The root attributes but ``brine_format`` and ``step``: user metadata
        (format section 2.1) and what brine records (``brine_version``,
        ``created``, ``brine_host``, ``brine_threads``), when present.

        A read-only mapping from names to ``int`` (integer attributes),
        ``float`` (floating-point ones) and ``str`` (fixed-length strings, up
        to their first NUL; ``created`` and ``brine_version``, the only
        variable-length strings read).  Attributes of any other type or shape,
        or that cannot be read, are left out.  Read on first use: raises
        ValueError when the checkpoint was closed before.
        """
        if self._attrs is not None:
            return self._attrs
        if self.closed:
            raise ValueError(f"{self.path}: the checkpoint is closed; read attrs before closing")
        found: dict = {}
        try:
            names = list(self._file.attrs)
        except _H5_ERRORS + (UnicodeDecodeError,):
            names = []
        for name in names:
            if name in ("brine_format", "step"):
                continue
            try:
                attr = self._file.attrs.get_id(name)
                if attr.get_space().get_simple_extent_type() != h5py.h5s.SCALAR:
                    continue
                kind = attr.get_type()
                if kind.get_class() == h5py.h5t.INTEGER:
                    found[name] = int(self._file.attrs[name])
                elif kind.get_class() == h5py.h5t.FLOAT:
                    found[name] = float(self._file.attrs[name])
                elif kind.get_class() == h5py.h5t.STRING and kind.is_variable_str():
                    # Variable-length strings live in HDF5's unchecksummed
                    # global heap (format section 6): only brine's own two.
                    if name in ("created", "brine_version"):
                        found[name] = self._string_attr(name)
                elif kind.get_class() == h5py.h5t.STRING:
                    raw = np.empty((), dtype=f"S{kind.get_size()}")
                    attr.read(raw, mtype=kind)  # the bytes as stored
                    found[name] = raw.tobytes().split(b"\0", 1)[0].decode("utf-8", "replace")
            except _H5_ERRORS:
                continue
        self._attrs = MappingProxyType(found)
        return self._attrs

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return not self._file.id.valid

    def close(self) -> None:
        """Closes the file.  Calling it again does nothing."""
        if self._file.id.valid:
            self._file.close()

    def __enter__(self) -> "Checkpoint":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<brine.Checkpoint {self.path!r} step={self.step} ({state})>"

    def load(self, *, progress: Optional[bool] = None) -> dict:
        """Reads the whole state into memory, as :func:`brine.load` returns it.

        Parameters
        ----------
        progress : bool or None
            A tqdm progress bar counting bytes (when tqdm is installed): True,
            False, or None for one when the arrays add up to 256 MiB or more.

        Raises
        ------
        CorruptCheckpointError
            A chunk is damaged (its fletcher32 is checked as it is read).
        ValueError
            The checkpoint is closed.
        """
        if self.closed:
            raise ValueError(f"{self.path}: the checkpoint is closed; cannot load it")
        total = sum(v.nbytes for v in self.variables().values() if isinstance(v, LazyArray))
        with ByteBar(total=total, desc=os.path.basename(self.path), enabled=progress) as bar:
            def copy(content: dict) -> dict:
                return {k: copy(v) if isinstance(v, dict)
                        else v.read_counted(bar) if isinstance(v, LazyArray) else v
                        for k, v in content.items()}
            return copy(self._content)

    def to_xarray(self, *, lazy: bool = True, dims: Optional[Mapping[str, Any]] = None) -> Any:
        """The state as an :class:`xarray.Dataset` (needs xarray).

        Parameters
        ----------
        lazy : bool
            True (the default): arrays are read when xarray needs their values
            (indexing, computing, ``.load()``), only the part selected, and
            only while this checkpoint is open.  False: every array is read now.
        dims : mapping, optional
            Dimension names per variable, e.g. ``{"field/T": ("y", "x")}``;
            by default ``"<name>_dim_<i>"``.

        Returns
        -------
        xarray.Dataset
            One data variable per variable of the state (named as in the
            checkpoint, e.g. ``"field/T"``; scalars are 0-d variables), and the
            root attributes, ``step`` included, as the Dataset's ``attrs``.

        Raises
        ------
        ImportError
            xarray is not installed.
        """
        from ._interop import checkpoint_to_xarray
        return checkpoint_to_xarray(self, lazy=lazy, dims=dims)

    def compare(self, other: "Checkpoint", *, progress: Optional[bool] = None
                ) -> Dict[str, float]:
        """Per-variable maximum absolute difference with another checkpoint;
        see :func:`brine.diff`."""
        from ._compare import diff
        return diff(self, other, progress=progress)

    def _repr_html_(self) -> str:
        from ._display import checkpoint_html
        return checkpoint_html(self)


def open_file(path: "os.PathLike[str] | str") -> Checkpoint:
    """Opens one checkpoint file lazily (see :func:`brine.open`)."""
    return Checkpoint(path)
