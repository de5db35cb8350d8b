"""Reading one checkpoint file: verification, brine.load of a file, Checkpoint."""

from __future__ import annotations

import errno
import os
import zlib
from collections.abc import Mapping
from typing import Any, Iterator, List, Tuple

import h5py
import numpy as np

from ._errors import CorruptCheckpointError, UnsupportedVersionError
from ._lazy import LazyArray, read_dataset
from ._unpickler import ArraySpec, scan_stream, unpickle_state

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


def _open_h5(path: str) -> h5py.File:
    """Opens path read-only with h5py; a non-HDF5 file is a corrupt checkpoint."""
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if not os.access(path, os.R_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise CorruptCheckpointError(f"{path}: not a readable HDF5 file ({exc})",
                                     path=path) from exc


class _Header:
    """The root attributes of a checkpoint (format section 2.1)."""

    __slots__ = ("format_version", "brine_version", "step", "created")

    def __init__(self, f: h5py.File, path: str) -> None:
        attrs = f.attrs
        if "brine_format" not in attrs:
            raise CorruptCheckpointError(
                f"{path}: root attribute 'brine_format' missing: not a brine checkpoint", path=path)
        try:
            version = int(attrs["brine_format"])
        except (TypeError, ValueError) as exc:
            raise CorruptCheckpointError(
                f"{path}: root attribute 'brine_format' is not an integer", path=path) from exc
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
        try:
            step = int(attrs["step"])
        except (TypeError, ValueError) as exc:
            raise CorruptCheckpointError(
                f"{path}: root attribute 'step' is not an integer", path=path) from exc
        self.format_version = version
        self.step = step
        self.brine_version = _as_str(attrs["brine_version"]) if "brine_version" in attrs else ""
        self.created = _as_str(attrs["created"]) if "created" in attrs else ""


def _read_stream(f: h5py.File, path: str) -> Tuple[bytes, List[str]]:
    """Reads and checks /brine/pickle: its bytes, CRC-32 and buffer list."""
    node = f.get("brine/pickle")
    if not isinstance(node, h5py.Dataset):
        raise CorruptCheckpointError(f"{path}: dataset /brine/pickle missing", path=path)
    if node.dtype != np.uint8 or node.ndim != 1:
        raise CorruptCheckpointError(
            f"{path}: /brine/pickle is {node.dtype}{list(node.shape)}, expected a 1-D uint8 dataset",
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
    names = np.asarray(node.attrs["buffers"])
    if names.ndim != 1:
        raise CorruptCheckpointError(
            f"{path}: attribute /brine/pickle buffers is not one-dimensional", path=path)
    return stream, [_as_str(n) for n in names]


def _buffer_datasets(f: h5py.File, names: List[str], n_buffers: int,
                     path: str) -> List[h5py.Dataset]:
    """The datasets the buffers attribute names, checked against the stream's count."""
    if len(names) != n_buffers:
        raise CorruptCheckpointError(
            f"{path}: the pickle stream consumes {n_buffers} out-of-band buffers but "
            f"attribute /brine/pickle buffers lists {len(names)}", path=path)
    datasets = []
    for name in names:
        node = f.get(name)
        if not isinstance(node, h5py.Dataset):
            raise CorruptCheckpointError(
                f"{path}: variable {_variable_of(name)!r}: dataset {name} missing",
                path=path, variable=_variable_of(name))
        datasets.append(node)
    return datasets


def _check_dataset(ds: h5py.Dataset, spec: ArraySpec, path: str) -> None:
    """Checks an array dataset against the array the stream describes (format 2.3)."""
    variable = _variable_of(ds.name)
    where = f"{path}: variable {variable!r} (dataset {ds.name})"
    want_shape = spec.shape[::-1] if spec.order == "F" else spec.shape
    if ds.shape != want_shape:
        raise CorruptCheckpointError(
            f"{where}: dataset dimensions {ds.shape}, but the pickle describes shape "
            f"{spec.shape} in order {spec.order!r} (dimensions {want_shape})",
            path=path, variable=variable)
    if ds.dtype != spec.dtype:
        raise CorruptCheckpointError(
            f"{where}: dataset type {ds.dtype}, but the pickle says {spec.dtype.str}",
            path=path, variable=variable)
    order = _as_str(ds.attrs["order"]) if "order" in ds.attrs else None
    if order != spec.order:
        raise CorruptCheckpointError(
            f"{where}: order attribute {order!r}, but the pickle says {spec.order!r}",
            path=path, variable=variable)


class _ArrayMaker:
    """The stream's ``numpy.ndarray``: checks each call against its dataset.

    buffers[i] is the object the unpickler hands over for the i-th NEXT_BUFFER
    (the dataset's data for brine.load, a placeholder for brine.open), so the
    dataset is found by the identity of the object the stream passes.
    """

    def __init__(self, buffers: List[Any], datasets: List[h5py.Dataset], path: str,
                 *, lazy: bool) -> None:
        self._dataset_of = {id(b): ds for b, ds in zip(buffers, datasets)}
        self._buffers = buffers  # keeps the ids valid
        self._used: set = set()
        self._path = path
        self._lazy = lazy

    def __call__(self, spec: ArraySpec) -> Any:
        key = id(spec.buffer)
        ds = self._dataset_of.get(key)
        if ds is None:
            raise CorruptCheckpointError(
                f"{self._path}: numpy.ndarray called with a buffer that is not an "
                "out-of-band buffer", path=self._path)
        if key in self._used:
            raise CorruptCheckpointError(
                f"{self._path}: dataset {ds.name} used by two arrays", path=self._path)
        self._used.add(key)
        _check_dataset(ds, spec, self._path)
        if self._lazy:
            return LazyArray(ds, shape=spec.shape, dtype=spec.dtype, order=spec.order,
                             path=self._path, name=_variable_of(ds.name))
        return np.ndarray(spec.shape, spec.dtype, spec.buffer, 0, None, spec.order)

    def check_all_used(self) -> None:
        for b in self._buffers:
            if id(b) not in self._used:
                name = self._dataset_of[id(b)].name
                raise CorruptCheckpointError(
                    f"{self._path}: out-of-band buffer {name} is not used by an array",
                    path=self._path, variable=_variable_of(name))


class _BufferPlaceholder:
    """Stands for a dataset's data in the stream of a lazily opened checkpoint."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


def _decode(f: h5py.File, path: str, *, lazy: bool) -> Tuple[_Header, dict]:
    header = _Header(f, path)
    stream, names = _read_stream(f, path)
    n_buffers = scan_stream(stream, path=path)
    datasets = _buffer_datasets(f, names, n_buffers, path)
    if lazy:
        buffers: List[Any] = [_BufferPlaceholder(ds.name) for ds in datasets]
    else:
        # h5py checks each chunk's fletcher32 while reading.
        buffers = [read_dataset(ds, (), path=path, variable=_variable_of(ds.name))
                   for ds in datasets]
    maker = _ArrayMaker(buffers, datasets, path, lazy=lazy)
    state = unpickle_state(stream, buffers=buffers, make_array=maker, path=path)
    maker.check_all_used()
    return header, state


def load_file(path: str) -> dict:
    """Loads and verifies the whole state of one checkpoint file (see :func:`brine.load`)."""
    path = os.fspath(path)
    with _open_h5(path) as f:
        _, state = _decode(f, path, lazy=False)
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
            header, state = _decode(self._file, self.path, lazy=True)
        except BaseException:
            self._file.close()
            raise
        super().__init__(state, "", self.path)
        self.step: int = header.step
        self.created: str = header.created
        self.format_version: int = header.format_version
        self.brine_version: str = header.brine_version

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


def open_file(path: "os.PathLike[str] | str") -> Checkpoint:
    """Opens one checkpoint file lazily (see :func:`brine.open`)."""
    return Checkpoint(path)
