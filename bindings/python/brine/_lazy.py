"""LazyArray: an array variable of an open checkpoint, read on demand."""

from __future__ import annotations

import operator
from typing import Any, Iterator, List, Optional, Tuple

import h5py
import numpy as np

from ._errors import CorruptCheckpointError
from ._optional import ByteBar

__all__ = ["LazyArray", "read_dataset", "read_whole"]

#: Rows are read in blocks of about this many bytes when a progress bar counts them.
_BLOCK_BYTES = 16 << 20

_INDEX_HELP = ("only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) "
               "and integer or boolean arrays are valid indices")


def read_dataset(ds: h5py.Dataset, selection: Any, *, path: str, variable: str) -> np.ndarray:
    """Reads ``ds[selection]``, turning HDF5's read errors into corruption errors.

    h5py raises OSError when a chunk's fletcher32 does not match, a chunk does
    not inflate, or a chunk is missing.
    """
    try:
        return ds[selection]
    except OSError as exc:
        raise CorruptCheckpointError(
            f"{path}: variable {variable!r} (dataset {ds.name}): cannot read the data, "
            f"a chunk is damaged (fletcher32 or deflate failure): {exc}",
            path=path, variable=variable) from exc


def read_whole(ds: h5py.Dataset, *, path: str, variable: str, bar: Optional[ByteBar] = None
               ) -> np.ndarray:
    """Reads a whole dataset; with an active bar, in blocks of rows (whole
    chunks), reporting each block's bytes."""
    if bar is None or not bar.active or ds.ndim == 0 or ds.size == 0:
        data = read_dataset(ds, (), path=path, variable=variable)
        if bar is not None:
            bar.update(data.nbytes)
        return data
    out = np.empty(ds.shape, dtype=ds.dtype)
    row_bytes = max(1, out.nbytes // ds.shape[0])
    chunk_rows = ds.chunks[0] if ds.chunks else 1
    rows = max(chunk_rows, _BLOCK_BYTES // row_bytes // chunk_rows * chunk_rows)
    for start in range(0, ds.shape[0], rows):
        block = read_dataset(ds, np.s_[start:start + rows], path=path, variable=variable)
        out[start:start + rows] = block
        bar.update(block.nbytes)
    return out


class LazyArray:
    """An array variable of a checkpoint opened with :func:`brine.open`.

    Nothing is read until the array is indexed, converted with
    :func:`numpy.asarray` or :meth:`read`.  Indexing follows numpy's rules and
    reads only the bounding box of the selection from the file.  Every read
    returns a new, writable :class:`numpy.ndarray`; a Fortran-ordered
    variable comes back with its logical shape (its dataset stores the shape
    reversed) and, when read whole, F-contiguous.

    Attributes
    ----------
    name : str
        The variable's hierarchical name, e.g. ``"fluid/u"``.
    shape : tuple of int
    dtype : numpy.dtype
    order : str
        ``'C'`` or ``'F'``: the variable's memory order in the simulation.
    """

    __slots__ = ("_ds", "_path", "name", "shape", "dtype", "order")

    def __init__(self, ds: h5py.Dataset, *, shape: Tuple[int, ...], dtype: np.dtype,
                 order: str, path: str, name: str) -> None:
        self._ds = ds
        self._path = path
        self.name = name
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.order = order

    # -- numpy-like attributes -------------------------------------------------
    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        """Bytes the whole array takes in memory."""
        return self.size * self.dtype.itemsize

    @property
    def stored_bytes(self) -> int:
        """Bytes the array's dataset takes in the file (compressed chunks and
        their checksums), read from HDF5's metadata; ValueError once closed."""
        return int(self._dataset().id.get_storage_size())

    def __len__(self) -> int:
        return self.shape[0]

    def __iter__(self) -> Iterator[Any]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return (f"<brine.LazyArray {self.name!r} shape={self.shape} dtype={self.dtype} "
                f"order={self.order!r}>")

    # -- reading ---------------------------------------------------------------
    def read(self, *, progress: Optional[bool] = None) -> np.ndarray:
        """Reads the whole array.

        Parameters
        ----------
        progress : bool or None
            A tqdm progress bar (when tqdm is installed): True, False, or None
            for one when the array is at least 256 MiB.

        Returns
        -------
        numpy.ndarray
            A writable array of the variable's shape, C- or F-contiguous as the
            variable's order says.

        Raises
        ------
        CorruptCheckpointError
            A chunk is damaged (fletcher32 mismatch, bad deflate data).
        ValueError
            The checkpoint has been closed.
        """
        with ByteBar(total=self.nbytes, desc=self.name, enabled=progress) as bar:
            return self.read_counted(bar)

    def read_counted(self, bar: Optional[ByteBar]) -> np.ndarray:
        """:meth:`read`, reporting the bytes read to a bar shared with other reads."""
        ds = self._dataset()
        if self.size == 0:
            return np.empty(self.shape, dtype=self.dtype, order=self.order)
        data = read_whole(ds, path=self._path, variable=self.name, bar=bar)
        return data.T if self.order == "F" else data

    def __array__(self, dtype: Optional[Any] = None, copy: Optional[bool] = None) -> np.ndarray:
        data = self.read()
        return data if dtype is None else data.astype(dtype, copy=False)

    def __getitem__(self, key: Any) -> Any:
        plan = _plan(key, self.shape)
        if plan is None:  # an index HDF5 cannot select (multi-dimensional masks)
            return self.read()[key]
        box, post = plan
        ds = self._dataset()
        box_shape = tuple(len(range(*s.indices(n))) for s, n in zip(box, self.shape))
        if 0 in box_shape:
            data = np.empty(box_shape, dtype=self.dtype)
        elif self.order == "F":  # the dataset's dimensions are the shape reversed
            data = read_dataset(ds, box[::-1], path=self._path, variable=self.name).T
        else:
            data = read_dataset(ds, box, path=self._path, variable=self.name)
        return data[post]

    def _dataset(self) -> h5py.Dataset:
        if not self._ds.id.valid:
            raise ValueError(f"{self._path}: the checkpoint is closed; "
                             f"cannot read variable {self.name!r}")
        return self._ds


def _plan(key: Any, shape: Tuple[int, ...]) -> Optional[Tuple[Tuple[slice, ...], tuple]]:
    """Splits a numpy index into a box to read and an index to apply to the box.

    The box has one slice with a positive step per axis (what HDF5 selects
    directly); the second index, applied to the box with numpy, gives exactly
    ``array[key]``: integers become 0, negative steps a reversal, integer
    arrays offsets into the box (which spans their minimum to maximum).
    Returns None when the key cannot be split (a mask over several axes).
    """
    if not isinstance(key, tuple):
        key = (key,)
    if sum(k is Ellipsis for k in key) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    used = 0
    for k in key:
        if k is None or k is Ellipsis:
            continue
        if isinstance(k, (bool, np.bool_)) or (isinstance(k, (np.ndarray, list, tuple))
                                               and np.asarray(k).dtype == bool
                                               and np.asarray(k).ndim != 1):
            return None
        used += 1
    if used > len(shape):
        raise IndexError(f"too many indices for array: array is {len(shape)}-dimensional, "
                         f"but {used} were indexed")
    rest = [slice(None)] * (len(shape) - used)
    expanded: List[Any] = []
    for k in key:
        expanded.extend(rest if k is Ellipsis else [k])
    if not any(k is Ellipsis for k in key):
        expanded.extend(rest)
    box: List[slice] = []
    post: List[Any] = []
    axis = 0
    for k in expanded:
        if k is None:
            post.append(None)
            continue
        n = shape[axis]
        b, p = _plan_axis(k, n, axis)
        box.append(b)
        post.append(p)
        axis += 1
    return tuple(box), tuple(post)


def _plan_axis(k: Any, n: int, axis: int) -> Tuple[slice, Any]:
    if isinstance(k, slice):
        r = range(*k.indices(n))
        if len(r) == 0:
            return slice(0, 0), slice(None)
        if r.step > 0:
            return slice(r[0], r[-1] + 1, r.step), slice(None)
        return slice(r[-1], r[0] + 1, -r.step), slice(None, None, -1)
    if not isinstance(k, (np.ndarray, list, tuple)):
        try:
            i = operator.index(k)
        except TypeError:
            raise IndexError(_INDEX_HELP) from None
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of bounds for axis {axis} with size {n}")
        i %= n
        return slice(i, i + 1), 0
    arr = np.asarray(k)
    if arr.dtype == bool:
        if arr.shape[0] != n:
            raise IndexError(f"boolean index did not match indexed array along dimension "
                             f"{axis}; dimension is {n} but corresponding boolean dimension "
                             f"is {arr.shape[0]}")
        arr = np.flatnonzero(arr)
    elif arr.size == 0:
        arr = arr.astype(np.intp)
    elif arr.dtype.kind not in "iu":
        raise IndexError(_INDEX_HELP)
    arr = arr.astype(np.intp)
    if arr.size and (arr.min() < -n or arr.max() >= n):
        bad = arr[(arr < -n) | (arr >= n)][0]
        raise IndexError(f"index {bad} is out of bounds for axis {axis} with size {n}")
    arr = np.where(arr < 0, arr + n, arr)
    if arr.size == 0:
        return slice(0, 0), arr
    lo = int(arr.min())
    return slice(lo, int(arr.max()) + 1), arr - lo
