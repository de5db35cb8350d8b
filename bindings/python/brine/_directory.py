"""Checkpoint directories: listing committed checkpoints, picking the newest that verifies."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple, TypeVar

import h5py

from ._errors import BrineError
from ._mpi import multirank_dirs, read_manifest
from ._names import CHECKPOINT_NAME

__all__ = ["CHECKPOINT_NAME", "CheckpointInfo", "list_checkpoints", "newest_that_verifies"]


T = TypeVar("T")


@dataclass(frozen=True)
class CheckpointInfo:
    """A committed checkpoint file of a directory, as listed by :func:`brine.list`.

    Attributes
    ----------
    path : str
        The file's path (the directory joined with the file name).
    step : int
        The step, from the file name.
    size : int
        The file's size in bytes.
    created : str
        The file's ``created`` attribute (UTC, ``YYYY-MM-DDTHH:MM:SSZ``), or
        "" when it cannot be read: listing does not verify files.
    ranks : int
        1 for a checkpoint file; for a multi-rank checkpoint (a directory
        written by brine_open_mpi, docs/mpi.md) the number of ranks, and
        then path is the directory, size the sum of its rank files' sizes
        (from the manifest) and created rank 0's.
    """

    path: str
    step: int
    size: int
    created: str
    ranks: int = 1


def _created_of(path: str) -> str:
    try:
        with h5py.File(path, "r") as f:
            value = f.attrs.get("created", "")
    except (OSError, ValueError, KeyError):
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def list_checkpoints(directory: "os.PathLike[str] | str", *,
                     prefix: Optional[str] = None) -> List[CheckpointInfo]:
    """Lists the committed checkpoints of a directory (see :func:`brine.list`)."""
    infos = [CheckpointInfo(path=p, step=step, size=size, created=_created_of(p))
             for step, p, size in _committed(directory, prefix)]
    for step, p in multirank_dirs(directory, prefix):
        try:
            m = read_manifest(p)
        except (BrineError, OSError):
            continue  # no valid manifest: not committed (a killed save's, or damaged)
        infos.append(CheckpointInfo(path=p, step=step, size=sum(f[1] for f in m.files),
                                    created=_created_of(os.path.join(p, m.files[0][0])),
                                    ranks=m.nranks))
    infos.sort(key=lambda i: (i.step, os.path.basename(i.path)))
    return infos


def _committed(directory: "os.PathLike[str] | str",
               prefix: Optional[str]) -> List[Tuple[int, str, int]]:
    """(step, path, size) of the committed checkpoints, sorted; opens no file."""
    directory = os.fspath(directory)
    found = []
    with os.scandir(directory) as entries:
        for entry in entries:
            m = CHECKPOINT_NAME.fullmatch(entry.name)
            if m is None or (prefix is not None and m["prefix"] != prefix):
                continue
            try:
                if not entry.is_file():
                    continue
                size = entry.stat().st_size
            except FileNotFoundError:  # deleted by a writer's rotation meanwhile
                continue
            found.append((int(m["step"]), entry.name, entry.path, size))
    found.sort()
    return [(step, p, size) for step, _, p, size in found]


def newest_that_verifies(directory: str, attempt: Callable[[str], T], *,
                         prefix: Optional[str] = None) -> T:
    """Calls attempt(path) on the directory's checkpoints, newest first, until one succeeds.

    Raises
    ------
    FileNotFoundError
        The directory holds no committed checkpoint.
    BrineError or OSError
        Of the newest checkpoint's type, when none succeeds; the message gives
        every file's reason.
    """
    # Lists by name only: reading each file's `created` (a variable-length
    # string in HDF5's unchecksummed global heap) could crash on a damaged file.
    infos = _committed(directory, prefix)
    if not infos:
        what = f"no checkpoint ({prefix or '<prefix>'}-<step>.h5) in directory"
        raise FileNotFoundError(errno.ENOENT, what, directory)
    reasons = []
    newest: Optional[BaseException] = None
    for _, path, _ in reversed(infos):
        try:
            return attempt(path)
        except (BrineError, OSError) as exc:
            reasons.append(str(exc))
            newest = newest or exc
    assert newest is not None
    message = (f"no checkpoint in {directory} verifies; tried newest first:\n  "
               + "\n  ".join(reasons))
    raise _same_kind(newest, message) from newest


def _same_kind(exc: BaseException, message: str) -> BaseException:
    """A new exception of exc's type, attributes and errno, with another message."""
    if isinstance(exc, BrineError):
        new: BaseException = type(exc)(message)
        new.__dict__.update(exc.__dict__)
        return new
    assert isinstance(exc, OSError)
    if exc.errno is not None:
        return type(exc)(exc.errno, message)
    return type(exc)(message)
