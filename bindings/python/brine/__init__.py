"""brine: read and write the checkpoints of the brine C library.

A checkpoint is an HDF5 file holding a pickle protocol 5 stream of a
simulation's state, whose arrays are out-of-band buffers stored as HDF5
datasets (docs/format.md).  This package needs only numpy and h5py:

>>> import brine
>>> state = brine.load("run/checkpoints")          # newest checkpoint that verifies
>>> with brine.open("run/checkpoints/ckpt-000000001200.h5") as ckpt:
...     u = ckpt["fluid/u"][100:200, :]               # reads only those rows
>>> state["fluid"]["u"] *= 0.5                        # edit, then write a checkpoint
>>> brine.save("run/checkpoints", state, step=1201)  # that brine_restore() loads

Unpickling is restricted: a stream that references anything but the
globals of docs/format.md section 3.3 (``numpy.ndarray``, ``builtins.complex``
and numpy's own array, dtype and scalar reconstructors, each replaced by a
function that only builds arrays, dtypes and scalars) raises
:class:`UnsafeCheckpointError` without executing anything.
"""

from __future__ import annotations

import os
from typing import Any, Callable, List as _List, Optional

from ._checkpoint import FORMAT_VERSION, Checkpoint, Group, load_file, open_file
from ._directory import CheckpointInfo, _committed, list_checkpoints, newest_that_verifies
from ._errors import (BrineError, CorruptCheckpointError, UnsafeCheckpointError,
                      UnsupportedVersionError)
from ._compare import diff
from ._lazy import LazyArray
from . import _mpi
from ._run import RankCheckpoints, Run, RunEntry, Series, SkippedCheckpointWarning
from ._save import save

__version__ = "0.1.0"

__all__ = [
    "FORMAT_VERSION", "load", "open", "list", "save", "diff", "concat",
    "Checkpoint", "Group", "LazyArray", "CheckpointInfo",
    "Run", "RunEntry", "Series", "SkippedCheckpointWarning", "RankCheckpoints",
    "BrineError", "CorruptCheckpointError", "UnsafeCheckpointError", "UnsupportedVersionError",
]


def _multirank_or_file(path: str, prefix: Optional[str], rank: Optional[int],
                       on_dir: Callable[[str], Any], on_file: Callable[[str], Any]) -> Any:
    """Dispatches path: a multi-rank checkpoint, a run directory, or a file (docs/mpi.md)."""
    if os.path.isdir(path):
        if _mpi.is_multirank(path):
            return on_dir(path)
        # Checkpoint files first, as before multi-rank checkpoints existed.
        if not _committed(path, prefix) and _mpi.multirank_dirs(path, prefix):
            return _mpi.newest_multirank(path, on_dir, prefix=prefix)
        if rank is not None:
            raise ValueError(f"{path}: rank={rank} given, but its checkpoints are single files")
        return newest_that_verifies(path, on_file, prefix=prefix)
    if rank is not None:
        raise ValueError(f"{path}: rank={rank} given, but it is a single-file checkpoint")
    return on_file(path)


def _ranks(cdir: str, rank: Optional[int], one: Callable[[str], Any]) -> Any:
    """one(rank file) for rank, or for every rank (a list) when rank is None; files checked first."""
    m = _mpi.read_manifest(cdir)
    if rank is not None:
        return one(_mpi.rank_file(m, rank))
    files = [_mpi.rank_file(m, r) for r in range(m.nranks)]
    return [one(f) for f in files]


def load(path: "os.PathLike[str] | str", *, prefix: Optional[str] = None,
         progress: Optional[bool] = None, rank: Optional[int] = None) -> Any:
    """Loads a checkpoint's whole state into memory.

    Parameters
    ----------
    path : str or os.PathLike
        A checkpoint file, or a checkpoint directory: then the newest
        checkpoint (by step) that verifies is loaded, trying older ones in turn.
    prefix : str, optional
        For a directory, consider only ``<prefix>-<step>.h5`` files.  By
        default every prefix is considered.
    progress : bool or None
        A tqdm progress bar counting the bytes read (when tqdm is installed):
        True, False, or None for one when the arrays add up to 256 MiB or more.

    Returns
    -------
    dict
        The state: nested dicts keyed by name components, whose leaves are
        writable :class:`numpy.ndarray` objects (F-contiguous for
        Fortran-ordered variables, with their logical shape) and Python
        ``bool``, ``int``, ``float``, ``complex`` and ``str`` values.

    Raises
    ------
    FileNotFoundError
        The file does not exist, or the directory holds no checkpoint.
    CorruptCheckpointError
        The file is damaged: checksum mismatch (CRC-32 of the stream,
        fletcher32 of a chunk), missing dataset, wrong buffer count, malformed
        stream, dataset inconsistent with the stream.  Also a ValueError.
    UnsafeCheckpointError
        The stream references a global that docs/format.md section 3.3
        does not allow; nothing was executed.
    UnsupportedVersionError
        The file's format is newer than :data:`FORMAT_VERSION`.

    For a directory where no checkpoint verifies, the newest checkpoint's
    error is raised with every file's reason in its message.

    Multi-rank checkpoints (written by brine_open_mpi, docs/mpi.md): path may
    be one checkpoint directory (``<prefix>-<step>`` with a manifest) or a
    run directory holding them (when it holds no checkpoint file); every
    rank's file is checked against the manifest's size and CRC-32, and the
    result is a list of per-rank states in rank order, or the state of
    ``rank`` when given.  A run directory falls back to older checkpoints
    as for files.  ``rank`` on a single-file checkpoint is a ValueError;
    a rank outside the checkpoint's an IndexError.
    """
    path = os.fspath(path)
    one = lambda p: load_file(p, progress=progress)  # noqa: E731
    return _multirank_or_file(path, prefix, rank, lambda d: _ranks(d, rank, one), one)


def open(path: "os.PathLike[str] | str", *, prefix: Optional[str] = None,
         rank: Optional[int] = None) -> Any:
    """Opens a checkpoint read-only, reading arrays only when they are indexed.

    Parameters
    ----------
    path : str or os.PathLike
        A checkpoint file, or a directory: then the newest checkpoint whose
        stream and datasets verify (chunk checksums are checked as data is
        read) is opened.
    prefix : str, optional
        For a directory, consider only ``<prefix>-<step>.h5`` files.

    Returns
    -------
    Checkpoint
        A context manager and a read-only Mapping of the state's top-level
        names; ``ckpt["fluid/u"]`` is ``ckpt["fluid"]["u"]``.  Arrays are
        :class:`LazyArray` objects, scalars Python values.

    Raises
    ------
    FileNotFoundError, CorruptCheckpointError, UnsafeCheckpointError, UnsupportedVersionError
        As :func:`load`; reading a damaged chunk later raises
        :class:`CorruptCheckpointError`.

    A multi-rank checkpoint (or a run directory of them, as for
    :func:`load`) opens rank ``rank``'s file, checked against the manifest;
    without ``rank``, a :class:`RankCheckpoints`: the list of every rank's
    :class:`Checkpoint`, a context manager that closes them all.
    """
    path = os.fspath(path)
    on_dir = (lambda d: _ranks(d, rank, open_file)) if rank is not None else (
        lambda d: _mpi.open_ranks(d, open_file))
    return _multirank_or_file(path, prefix, rank, on_dir, open_file)


def list(directory: "os.PathLike[str] | str", *,  # noqa: A001 (brine.list is the API)
         prefix: Optional[str] = None) -> _List[CheckpointInfo]:
    """Lists the committed checkpoints of a directory, sorted by step.

    Only names ``<prefix>-<12 digits>.h5`` count, and directories
    ``<prefix>-<12 digits>`` with a manifest whose checksum verifies
    (multi-rank checkpoints, docs/mpi.md: their entries' ``ranks`` is the
    rank count); temporary files and directories (starting with ``.``) and
    anything else are ignored.  Rank files are not verified.

    Parameters
    ----------
    directory : str or os.PathLike
    prefix : str, optional
        Only list ``<prefix>-<step>.h5`` files.  By default any prefix.

    Returns
    -------
    list of CheckpointInfo
        Sorted by step (then name).

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        The directory does not exist or is not one.
    """
    return list_checkpoints(directory, prefix=prefix)


def concat(states: Any, name: str, *, axis: int = 0) -> Any:
    """Concatenates a variable across the ranks of a multi-rank checkpoint.

    Parameters
    ----------
    states : list of dict, or str or os.PathLike
        Per-rank states (``brine.load`` of a multi-rank checkpoint), or a
        path that ``brine.load`` turns into them.
    name : str
        The variable's hierarchical name, such as ``"field/T"``.
    axis : int
        The axis the ranks' parts are joined along.

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    KeyError
        A rank lacks the variable.
    ValueError
        The parts do not fit together, or the path is a single-file checkpoint.
    """
    return _mpi.concat(states, name, axis=axis, load=load)
