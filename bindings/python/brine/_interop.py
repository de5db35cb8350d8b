"""Checkpoint.to_xarray: a checkpoint's state as an xarray Dataset."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional, Tuple

import numpy as np

from ._lazy import LazyArray
from ._optional import require_module

if TYPE_CHECKING:
    from ._checkpoint import Checkpoint

__all__ = ["checkpoint_to_xarray"]


def _dims(name: str, ndim: int, dims: Optional[Mapping[str, Any]]) -> Tuple[str, ...]:
    if dims is not None and name in dims:
        given = tuple(dims[name])
        if len(given) != ndim:
            raise ValueError(f"dims[{name!r}] names {len(given)} dimensions, but variable "
                             f"{name!r} has {ndim}")
        return given
    return tuple(f"{name}_dim_{i}" for i in range(ndim))


def _lazy_data(xr: Any, array: LazyArray) -> Any:
    """A LazyArray wrapped as an xarray backend array: xarray indexes it lazily
    and reads only the selection, as its own file backends do."""
    indexing = __import__("xarray.core.indexing", fromlist=["indexing"])

    class _Backend(xr.backends.BackendArray):
        def __init__(self) -> None:
            self.shape = array.shape
            self.dtype = array.dtype

        def __getitem__(self, key: Any) -> Any:
            return indexing.explicit_indexing_adapter(
                key, self.shape, indexing.IndexingSupport.OUTER_1VECTOR, self._raw)

        def _raw(self, key: tuple) -> np.ndarray:
            return np.asarray(array[key])

    return indexing.LazilyIndexedArray(_Backend())


def checkpoint_to_xarray(ckpt: "Checkpoint", *, lazy: bool,
                         dims: Optional[Mapping[str, Any]]) -> Any:
    """See :meth:`Checkpoint.to_xarray`."""
    xr = require_module("xarray", "Checkpoint.to_xarray", "python3-xarray")
    if ckpt.closed:
        raise ValueError(f"{ckpt.path}: the checkpoint is closed; cannot convert it")
    unknown = set(dims or ()) - set(ckpt.variables())
    if unknown:
        raise KeyError(f"dims names {sorted(unknown)}, not variables of {ckpt.path}")
    variables = {}
    for name, value in ckpt.variables().items():
        if isinstance(value, LazyArray):
            data = _lazy_data(xr, value) if lazy else value.read()
            variables[name] = xr.Variable(_dims(name, value.ndim, dims), data)
        else:
            variables[name] = xr.Variable(_dims(name, 0, dims), np.asarray(value))
    attrs = {"step": ckpt.step, **ckpt.attrs, "path": ckpt.path}
    return xr.Dataset(variables, attrs=attrs)
