"""brine.Run: a run's checkpoint directory, browsed from a notebook."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

from ._checkpoint import Checkpoint
from ._directory import CheckpointInfo, _committed, newest_that_verifies
from ._errors import (BrineError, CorruptCheckpointError, UnsafeCheckpointError,
                      UnsupportedVersionError)
from ._lazy import LazyArray
from ._optional import optional_module, progress as progress_bar, require_module

__all__ = ["Run", "RunEntry", "Series", "SkippedCheckpointWarning"]

#: The columns every row of Run.table() has, before the scalar variables.
TABLE_COLUMNS = ("step", "file", "size", "created", "status", "error")


class SkippedCheckpointWarning(UserWarning):
    """:meth:`Run.series` or :meth:`Run.map` left out checkpoints: damaged
    ones, or ones without the quantity.  The message names each file and why."""


@dataclass(frozen=True)
class RunEntry(CheckpointInfo):
    """A checkpoint of a :class:`Run`, examined: a :class:`CheckpointInfo` plus
    what opening it found.

    Attributes
    ----------
    status : str
        ``"ok"`` when it opens and verifies (format version, CRC-32 of the
        stream, every dataset's type, shape, filters and chunks: everything
        but the chunks' fletcher32, which is checked as data is read);
        otherwise ``"corrupt"``, ``"unsafe"`` (a forbidden pickle global),
        ``"unsupported"`` (a newer format) or ``"unreadable"`` (an OSError
        such as a permission error).
    error : str
        Why, when the status is not ``"ok"`` ("" otherwise).
    scalars : dict
        The scalar variables, by hierarchical name (``"params/dt"``).
    arrays : dict
        The array variables' ``(shape, dtype)``, by name.
    attrs : dict
        The root attributes (:attr:`Checkpoint.attrs`).
    """

    status: str = "ok"
    error: str = ""
    scalars: Dict[str, Any] = field(default_factory=dict)
    arrays: Dict[str, Tuple[Tuple[int, ...], np.dtype]] = field(default_factory=dict)
    attrs: Dict[str, Any] = field(default_factory=dict)


class Series(tuple):
    """A quantity over a run's checkpoints: the tuple ``(steps, values)``.

    ``steps, values = run.series("time")`` unpacks it; ``plt.plot(*series)``
    plots it.  The same for every installation: :meth:`to_pandas` gives a
    :class:`pandas.Series` indexed by step when pandas is installed.

    Attributes
    ----------
    name : str
    steps : numpy.ndarray
        int64, increasing (the checkpoints that have the quantity and verify).
    values : numpy.ndarray
        One value per step (a row per step when the quantity is an array).
    skipped : tuple of (str, str)
        The checkpoints left out, as (path, reason); each call that skips
        any warns with :class:`SkippedCheckpointWarning`.
    """

    name: str
    skipped: Tuple[Tuple[str, str], ...]

    def __new__(cls, name: str, steps: np.ndarray, values: np.ndarray,
                skipped: Tuple[Tuple[str, str], ...] = ()) -> "Series":
        self = super().__new__(cls, (steps, values))
        self.name = name
        self.skipped = skipped
        return self

    @property
    def steps(self) -> np.ndarray:
        return self[0]

    @property
    def values(self) -> np.ndarray:
        return self[1]

    def to_pandas(self) -> Any:
        """A :class:`pandas.Series` of the values indexed by step (named
        ``"step"``); ImportError without pandas."""
        pd = require_module("pandas", "Series.to_pandas", "python3-pandas")
        return pd.Series(list(self.values) if self.values.ndim > 1 else self.values,
                         index=pd.Index(self.steps, name="step"), name=self.name)

    def __repr__(self) -> str:
        return (f"<brine.Series {self.name!r}: {len(self.steps)} steps"
                + (f", {len(self.skipped)} skipped" if self.skipped else "") + ">")


_STATUS_OF = ((UnsafeCheckpointError, "unsafe"), (UnsupportedVersionError, "unsupported"),
              (CorruptCheckpointError, "corrupt"), (BrineError, "corrupt"))


def _status_of(exc: BaseException) -> str:
    for kind, status in _STATUS_OF:
        if isinstance(exc, kind):
            return status
    return "unreadable"


def _examine(step: int, path: str, size: int) -> RunEntry:
    """Opens a checkpoint lazily (no array data read) and records what it holds.

    Raises FileNotFoundError when the file is gone (rotated away meanwhile)."""
    try:
        with Checkpoint(path) as ckpt:
            variables = ckpt.variables()
            return RunEntry(
                path=path, step=step, size=size, created=ckpt.created,
                scalars={n: v for n, v in variables.items() if not isinstance(v, LazyArray)},
                arrays={n: (v.shape, v.dtype) for n, v in variables.items()
                        if isinstance(v, LazyArray)},
                attrs=dict(ckpt.attrs))
    except FileNotFoundError:
        raise
    except (BrineError, OSError) as exc:
        return RunEntry(path=path, step=step, size=size, created="", status=_status_of(exc),
                        error=str(exc))


def _warn_skipped(what: str, skipped: List[Tuple[str, str]]) -> None:
    if skipped:
        lines = "\n  ".join(f"{os.path.basename(p)}: {why}" for p, why in skipped)
        warnings.warn(f"{what}: {len(skipped)} checkpoints skipped:\n  {lines}",
                      SkippedCheckpointWarning, stacklevel=3)


class Run:
    """The checkpoints of a run's directory, for browsing in a notebook.

    Creating it only lists file names.  Each call that needs more looks at
    the directory again (a running simulation adds and rotates checkpoints)
    and opens each new checkpoint once, lazily: its stream and scalars are
    read and its datasets' metadata checked, no array data.  Damaged
    checkpoints are listed with their status and skipped, with a warning, by
    :meth:`series` and :meth:`map`.

    Parameters
    ----------
    directory : str or os.PathLike
    prefix : str, optional
        Only ``<prefix>-<step>.h5`` files; by default every prefix.

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        The directory does not exist, or is not one.
    """

    def __init__(self, directory: "os.PathLike[str] | str", *,
                 prefix: Optional[str] = None) -> None:
        self.directory = os.fspath(directory)
        self.prefix = prefix
        self._cache: Dict[Tuple[str, int, int, int], RunEntry] = {}
        self._scan()

    def _scan(self) -> List[Tuple[int, str, int]]:
        return _committed(self.directory, self.prefix)

    # -- listing ---------------------------------------------------------------
    @property
    def steps(self) -> List[int]:
        """The steps of the committed checkpoints, increasing (names only)."""
        return [step for step, _, _ in self._scan()]

    def __len__(self) -> int:
        return len(self._scan())

    def __contains__(self, step: object) -> bool:
        return step in self.steps

    def entries(self, *, progress: Optional[bool] = None) -> List[RunEntry]:
        """Every committed checkpoint, examined, sorted by step.

        progress: a tqdm bar over the checkpoints opened (True, False, or None
        for one when there are 100 or more to open).
        """
        todo, found = [], []
        cache: Dict[Tuple[str, int, int, int], RunEntry] = {}
        for step, path, size in self._scan():
            try:
                st = os.stat(path)
            except FileNotFoundError:  # rotated away meanwhile
                continue
            key = (path, st.st_size, st.st_mtime_ns, st.st_ino)
            found.append(key)
            if key in self._cache:
                cache[key] = self._cache[key]
            else:
                todo.append((key, step, path, st.st_size))
        for key, step, path, size in progress_bar(todo, total=len(todo), enabled=progress,
                                                 desc="checkpoints", unit="file"):
            try:
                cache[key] = _examine(step, path, size)
            except FileNotFoundError:
                continue
        self._cache = cache  # forgets files gone or rewritten
        return [cache[key] for key in found if key in cache]

    def __iter__(self) -> Iterator[RunEntry]:
        return iter(self.entries())

    def table(self, *, progress: Optional[bool] = None) -> Any:
        """The checkpoints as a table, one row each, sorted by step.

        Returns
        -------
        pandas.DataFrame or list of dict
            A DataFrame when pandas is installed, otherwise a list of dicts
            with the same keys.  Columns: ``step`` (from the file name, which
            must match the root attribute), ``file`` (the path), ``size``
            (bytes), ``created``, ``status`` and ``error`` (see
            :class:`RunEntry`), then one column per scalar variable whose name
            is not one of these (heat2d's ``time``, ``params/dt``...),
            empty (NaN or None) where a checkpoint lacks it.
        """
        entries = self.entries(progress=progress)
        names: List[str] = []
        for e in entries:
            names += [n for n in e.scalars if n not in names and n not in TABLE_COLUMNS]
        rows = [{"step": e.step, "file": e.path, "size": e.size, "created": e.created,
                 "status": e.status, "error": e.error,
                 **{n: e.scalars.get(n) for n in names}} for e in entries]
        pd = optional_module("pandas")
        if pd is None:
            return rows
        return pd.DataFrame(rows, columns=[*TABLE_COLUMNS, *names])

    # -- opening -------------------------------------------------------------
    def __getitem__(self, key: int) -> Checkpoint:
        """Opens one checkpoint (lazily, see :func:`brine.open`).

        ``run[400]`` is the checkpoint of step 400; a negative key counts from
        the newest: ``run[-1]`` is the newest checkpoint, ``run[-2]`` the one
        before.  Use it in a ``with`` block or close it.

        Raises
        ------
        KeyError
            No checkpoint of that step (the message lists the steps), or
            several (with different prefixes: pass ``prefix=``).
        IndexError
            A negative key beyond the number of checkpoints.
        CorruptCheckpointError, UnsafeCheckpointError, UnsupportedVersionError
            As :func:`brine.open`.
        """
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)):
            raise TypeError(f"a run is indexed by step (an int), not {type(key).__name__}")
        found = self._scan()
        if key < 0:
            if -key > len(found):
                raise IndexError(f"run[{key}]: {self.directory} holds {len(found)} checkpoints")
            return Checkpoint(found[key][1])
        paths = [p for step, p, _ in found if step == key]
        if len(paths) != 1:
            why = ("no checkpoint of step" if not paths else
                   "several checkpoints (pass prefix=) of step")
            raise KeyError(f"{why} {int(key)} in {self.directory}; steps: "
                           f"{[s for s, _, _ in found]}")
        return Checkpoint(paths[0])

    def newest(self) -> Checkpoint:
        """Opens the newest checkpoint that verifies (see :func:`brine.open`)."""
        return newest_that_verifies(self.directory, Checkpoint, prefix=self.prefix)

    # -- quantities over time --------------------------------------------------
    def series(self, name: str, *, progress: Optional[bool] = None) -> Series:
        """A scalar over the run: a scalar variable or a root attribute.

        Reads each checkpoint's pickle stream and root attributes only (once
        per file, cached), never array data.

        Parameters
        ----------
        name : str
            A scalar variable (``"time"``, ``"params/dt"``) or, when no
            variable has that name, a root attribute (metadata such as a
            program's ``sim_time``, or ``brine_threads``).

        Returns
        -------
        Series
            ``(steps, values)`` of the checkpoints that verify and hold it.

        Raises
        ------
        KeyError
            No checkpoint that verifies holds it (the message lists the
            scalars and attributes there are).
        TypeError
            It is an array variable: reduce it with :meth:`map`.

        Warns
        -----
        SkippedCheckpointWarning
            Checkpoints that do not verify, or lack the name, were left out.
        """
        steps: List[int] = []
        values: List[Any] = []
        skipped: List[Tuple[str, str]] = []
        known: Dict[str, None] = {}
        for e in self.entries(progress=progress):
            if e.status != "ok":
                skipped.append((e.path, f"{e.status}: {e.error}"))
                continue
            if name in e.arrays:
                shape, dtype = e.arrays[name]
                raise TypeError(
                    f"{name!r} is an array variable ({dtype} {shape}) in {e.path}, not a "
                    f"scalar: reduce it per checkpoint with run.map, e.g. "
                    f"run.map(lambda c: c[{name!r}].read().mean())")
            if name in e.scalars:
                value = e.scalars[name]
            elif name in e.attrs:
                value = e.attrs[name]
            else:
                known.update(dict.fromkeys([*e.scalars, *e.attrs]))
                skipped.append((e.path, f"no scalar variable or root attribute {name!r}"))
                continue
            steps.append(e.step)
            values.append(value)
        if not steps and known:
            raise KeyError(f"{name!r}: no checkpoint of {self.directory} has a scalar variable "
                           f"or root attribute of that name; there are: {list(known)}")
        _warn_skipped(f"series {name!r} of {self.directory}", skipped)
        return Series(name, np.asarray(steps, dtype=np.int64), np.asarray(values),
                      tuple(skipped))

    def map(self, fn: Callable[[Checkpoint], Any], *, name: Optional[str] = None,
            progress: Optional[bool] = None) -> Series:
        """Computes ``fn(checkpoint)`` for every checkpoint that verifies.

        Parameters
        ----------
        fn : callable
            Called with each open :class:`Checkpoint` in turn (closed after
            the call): it must return values read, e.g.
            ``lambda c: c["field/T"].read().mean()``.
        name : str, optional
            The series' name; by default fn's ``__name__``.
        progress : bool or None
            A tqdm bar over the checkpoints (True, False, or None for one when
            there are 100 or more, or 256 MiB or more of files).

        Returns
        -------
        Series

        Warns
        -----
        SkippedCheckpointWarning
            Checkpoints that do not verify, or whose data turned out damaged
            as fn read it (fletcher32), were left out.  fn's other errors
            propagate.
        """
        entries = self.entries(progress=progress)
        steps: List[int] = []
        values: List[Any] = []
        skipped = [(e.path, f"{e.status}: {e.error}") for e in entries if e.status != "ok"]
        good = [e for e in entries if e.status == "ok"]
        for e in progress_bar(good, total=len(good), weight=sum(e.size for e in good),
                              enabled=progress, desc=name or getattr(fn, "__name__", "map"),
                              unit="ckpt"):
            try:
                with Checkpoint(e.path) as ckpt:
                    value = fn(ckpt)
            except FileNotFoundError as exc:
                skipped.append((e.path, f"gone: {exc}"))
                continue
            except CorruptCheckpointError as exc:
                skipped.append((e.path, f"corrupt: {exc}"))
                continue
            steps.append(e.step)
            values.append(value)
        label = name or getattr(fn, "__name__", "map")
        _warn_skipped(f"map {label!r} over {self.directory}", skipped)
        return Series(label, np.asarray(steps, dtype=np.int64), np.asarray(values),
                      tuple(skipped))

    # -- display ---------------------------------------------------------------
    def __repr__(self) -> str:
        return f"<brine.Run {self.directory!r}: {len(self)} checkpoints>"

    def _repr_html_(self) -> str:
        from ._display import run_html
        return run_html(self)
