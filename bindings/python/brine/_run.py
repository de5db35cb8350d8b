"""brine.Run: a run's checkpoint directory, browsed from a notebook."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from . import _mpi
from ._checkpoint import Checkpoint
from ._directory import CheckpointInfo, _committed, newest_that_verifies
from ._errors import (BrineError, CorruptCheckpointError, UnsafeCheckpointError,
                      UnsupportedVersionError)
from ._lazy import LazyArray
from ._optional import optional_module, progress as progress_bar, require_module

__all__ = ["Run", "RunEntry", "Series", "SkippedCheckpointWarning", "RankCheckpoints"]

RankCheckpoints = _mpi.RankCheckpoints

#: The columns every row of Run.table() has, before the scalar variables.
TABLE_COLUMNS = ("step", "file", "size", "created", "status", "error", "ranks")

#: What Run.series(reduce=) takes: a name of _mpi.REDUCTIONS or a callable.
Reduce = Union[str, Callable[[List[Any]], Any]]


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
    rank_scalars, rank_arrays, rank_attrs : tuple of dict
        The same per rank, in rank order, for a multi-rank checkpoint
        (``ranks`` > 1); a 1-tuple of the above for a file.  ``scalars``,
        ``arrays`` and ``attrs`` are rank 0's.
    """

    status: str = "ok"
    error: str = ""
    scalars: Dict[str, Any] = field(default_factory=dict)
    arrays: Dict[str, Tuple[Tuple[int, ...], np.dtype]] = field(default_factory=dict)
    attrs: Dict[str, Any] = field(default_factory=dict)
    rank_scalars: Tuple[Dict[str, Any], ...] = ()
    rank_arrays: Tuple[Dict[str, Tuple[Tuple[int, ...], np.dtype]], ...] = ()
    rank_attrs: Tuple[Dict[str, Any], ...] = ()


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


def _contents(ckpt: Checkpoint) -> Tuple[Dict[str, Any], Dict[str, Any], Dict[str, Any]]:
    """(scalars, arrays' (shape, dtype), root attributes) of an open checkpoint."""
    variables = ckpt.variables()
    return ({n: v for n, v in variables.items() if not isinstance(v, LazyArray)},
            {n: (v.shape, v.dtype) for n, v in variables.items() if isinstance(v, LazyArray)},
            dict(ckpt.attrs))


def _examine(item: "_Item") -> RunEntry:
    """Opens a checkpoint (a file, or every rank's file of a multi-rank one)
    lazily, no array data read, and records what it holds.

    Raises FileNotFoundError when it is gone (rotated away meanwhile)."""
    step, path, size, ranks, multirank = item
    try:
        if multirank:
            with _mpi.open_ranks(path, Checkpoint) as ckpts:
                parts = [_contents(c) for c in ckpts]
                created = ckpts[0].created
        else:
            with Checkpoint(path) as ckpt:
                parts = [_contents(ckpt)]
                created = ckpt.created
    except FileNotFoundError as exc:
        # Rotation renames a whole directory away: a rank file missing
        # from a directory that still has its manifest is damage.
        if not (multirank and os.path.isfile(os.path.join(path, _mpi.MANIFEST))):
            raise
        return RunEntry(path=path, step=step, size=size, created="", ranks=ranks,
                        status="corrupt", error=f"{exc.filename}: missing ({exc.strerror})")
    except (BrineError, OSError) as exc:
        return RunEntry(path=path, step=step, size=size, created="", ranks=ranks,
                        status=_status_of(exc), error=str(exc))
    scalars, arrays, attrs = zip(*parts)
    return RunEntry(path=path, step=step, size=size, created=created, ranks=len(parts),
                    scalars=scalars[0], arrays=arrays[0], attrs=attrs[0],
                    rank_scalars=scalars, rank_arrays=arrays, rank_attrs=attrs)


#: A committed checkpoint as listed (names and manifests only): step, path,
#: size, ranks, and whether it is a multi-rank checkpoint directory.
_Item = Tuple[int, str, int, int, bool]


def _listing(directory: str, prefix: Optional[str]) -> List[_Item]:
    """The committed checkpoints, files and multi-rank directories, by step.

    A multi-rank directory counts when its manifest verifies (format 7.1);
    its rank files are not read here."""
    items = [(step, p, size, 1, False) for step, p, size in _committed(directory, prefix)]
    for step, p in _mpi.multirank_dirs(directory, prefix):
        try:
            m = _mpi.read_manifest(p)
        except (BrineError, OSError):
            continue  # no valid manifest: not committed
        items.append((step, p, sum(f[1] for f in m.files), m.nranks, True))
    items.sort(key=lambda i: (i[0], os.path.basename(i[1])))
    return items


def _identity(item: _Item) -> Tuple[Any, ...]:
    """What changes when a checkpoint is rewritten: the stats of its file, or
    of a multi-rank one's manifest and rank files (None for a missing rank
    file).  FileNotFoundError when the file or the manifest is gone."""
    path, multirank = item[1], item[4]
    if not multirank:
        st = os.stat(path)
        return (path, (st.st_size, st.st_mtime_ns, st.st_ino))
    st = os.stat(os.path.join(path, _mpi.MANIFEST))
    key: List[Any] = [path, (st.st_size, st.st_mtime_ns, st.st_ino)]
    for r in range(item[3]):
        try:
            st = os.stat(os.path.join(path, f"rank-{r}.h5"))
            key.append((st.st_size, st.st_mtime_ns, st.st_ino))
        except FileNotFoundError:
            key.append(None)
    return tuple(key)


def _open(item: _Item, rank: Optional[int]) -> Any:
    """A Checkpoint, or a multi-rank checkpoint's RankCheckpoints (its rank's
    Checkpoint when rank is given)."""
    path, multirank = item[1], item[4]
    if not multirank:
        if rank not in (None, 0):
            raise IndexError(f"{path}: rank {rank} of a single-file checkpoint (only rank 0)")
        return Checkpoint(path)
    if rank is None:
        return _mpi.open_ranks(path, Checkpoint)
    return _mpi.open_rank(_mpi.read_manifest(path), rank, Checkpoint)


def _per_rank(values: List[Any], where: str, name: str, rank: Optional[int],
              reduce: Optional[Reduce]) -> Any:
    """One value of a quantity from its per-rank values (see Run.series)."""
    if rank is not None:
        if not 0 <= rank < len(values):
            raise IndexError(f"{where}: rank {rank} is not in 0..{len(values) - 1}")
        return values[rank]
    if reduce is not None:
        return _mpi.reduce_ranks(values, reduce)
    if any(not _same(v, values[0]) for v in values[1:]):
        raise ValueError(f"{name!r} differs between the ranks of {where} ({values}): "
                         f"pick one with rank= or combine them with reduce=")
    return values[0]


_MISSING = object()


def _same(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)


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

    Multi-rank checkpoints (directories written by brine_open_mpi,
    docs/mpi.md) are checkpoints of the run too, listed when their manifest
    verifies: a row with ``ranks`` > 1 whose status is ``"ok"`` only when
    every rank's file matches the manifest, opens and verifies, with the
    manifest's step; ``run[step]`` gives their :class:`RankCheckpoints`.

    Parameters
    ----------
    directory : str or os.PathLike
    prefix : str, optional
        Only ``<prefix>-<step>.h5`` files (and ``<prefix>-<step>/``
        directories); by default every prefix.

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        The directory does not exist, or is not one.
    """

    def __init__(self, directory: "os.PathLike[str] | str", *,
                 prefix: Optional[str] = None) -> None:
        self.directory = os.fspath(directory)
        self.prefix = prefix
        self._cache: Dict[Tuple[Any, ...], RunEntry] = {}
        self._scan()

    def _scan(self) -> List[_Item]:
        return _listing(self.directory, self.prefix)

    # -- listing ---------------------------------------------------------------
    @property
    def steps(self) -> List[int]:
        """The steps of the committed checkpoints, increasing (names only)."""
        return [item[0] for item in self._scan()]

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
        cache: Dict[Tuple[Any, ...], RunEntry] = {}
        for item in self._scan():
            try:
                key = _identity(item)
            except FileNotFoundError:  # rotated away meanwhile
                continue
            found.append(key)
            if key in self._cache:
                cache[key] = self._cache[key]
            else:
                todo.append((key, item))
        for key, item in progress_bar(todo, total=len(todo), enabled=progress,
                                      desc="checkpoints", unit="file"):
            try:
                cache[key] = _examine(item)
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
            must match the root attribute), ``file`` (the path: a directory
            for a multi-rank checkpoint), ``size`` (bytes, of every rank),
            ``created``, ``status`` and ``error`` (see :class:`RunEntry`),
            ``ranks`` (1 for a file), then one column per scalar variable
            whose name is not one of these (heat2d's ``time``,
            ``params/dt``...), rank 0's for a multi-rank checkpoint, empty
            (NaN or None) where a checkpoint lacks it.
        """
        entries = self.entries(progress=progress)
        names: List[str] = []
        for e in entries:
            names += [n for n in e.scalars if n not in names and n not in TABLE_COLUMNS]
        rows = [{"step": e.step, "file": e.path, "size": e.size, "created": e.created,
                 "status": e.status, "error": e.error, "ranks": e.ranks,
                 **{n: e.scalars.get(n) for n in names}} for e in entries]
        pd = optional_module("pandas")
        if pd is None:
            return rows
        return pd.DataFrame(rows, columns=[*TABLE_COLUMNS, *names])

    # -- opening -------------------------------------------------------------
    def __getitem__(self, key: int) -> Any:
        """Opens one checkpoint (lazily, see :func:`brine.open`): ``run.open(key)``.

        ``run[400]`` is the checkpoint of step 400; a negative key counts from
        the newest: ``run[-1]`` is the newest checkpoint, ``run[-2]`` the one
        before.  Use it in a ``with`` block or close it.  A multi-rank
        checkpoint gives a :class:`RankCheckpoints` (a list of every rank's
        :class:`Checkpoint`, also a context manager).

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
        return self.open(key)

    def open(self, key: int, *, rank: Optional[int] = None) -> Any:
        """Opens one checkpoint as ``run[key]`` does; ``rank=r`` opens only
        rank r's :class:`Checkpoint` of a multi-rank checkpoint (checked
        against the manifest), an IndexError when r is not one of its ranks
        (a file has rank 0 only)."""
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)):
            raise TypeError(f"a run is indexed by step (an int), not {type(key).__name__}")
        found = self._scan()
        if key < 0:
            if -key > len(found):
                raise IndexError(f"run[{key}]: {self.directory} holds {len(found)} checkpoints")
            return _open(found[key], rank)
        items = [item for item in found if item[0] == key]
        if len(items) != 1:
            why = ("no checkpoint of step" if not items else
                   "several checkpoints (pass prefix=) of step")
            raise KeyError(f"{why} {int(key)} in {self.directory}; steps: "
                           f"{[item[0] for item in found]}")
        return _open(items[0], rank)

    def newest(self, *, rank: Optional[int] = None) -> Any:
        """Opens the newest checkpoint that verifies, as :func:`brine.open`
        does the directory (checkpoint files first, else multi-rank ones;
        ``rank`` as for :meth:`open`)."""
        if not _committed(self.directory, self.prefix) and _mpi.multirank_dirs(self.directory,
                                                                               self.prefix):
            return _mpi.newest_multirank(
                self.directory, lambda d: _open((_mpi.read_manifest(d).step, d, 0, 0, True), rank),
                prefix=self.prefix)
        return newest_that_verifies(self.directory, lambda p: _open((0, p, 0, 1, False), rank),
                                    prefix=self.prefix)

    # -- quantities over time --------------------------------------------------
    def series(self, name: str, *, rank: Optional[int] = None, reduce: Optional[Reduce] = None,
               progress: Optional[bool] = None) -> Series:
        """A scalar over the run: a scalar variable or a root attribute.

        Reads each checkpoint's pickle stream and root attributes only (once
        per file, cached), never array data.

        Parameters
        ----------
        name : str
            A scalar variable (``"time"``, ``"params/dt"``) or, when no
            variable has that name, a root attribute (metadata such as a
            program's ``sim_time``, or ``brine_threads``).
        rank : int, optional
            Of a multi-rank checkpoint, rank ``rank``'s value.
        reduce : {"sum", "max", "min", "mean"} or callable, optional
            Of a multi-rank checkpoint, the ranks' values combined: a
            callable gets the list of them in rank order.  Without ``rank``
            or ``reduce`` the value must be the same on every rank (a time,
            a step) and that value is taken; a file counts as one rank.

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
        ValueError
            Both ``rank`` and ``reduce``, an unknown ``reduce``, or, with
            neither, ranks holding different values (the message gives them).
        IndexError
            ``rank`` is not a rank of a checkpoint.

        Warns
        -----
        SkippedCheckpointWarning
            Checkpoints that do not verify, or lack the name (on any rank),
            were left out.
        """
        if rank is not None and reduce is not None:
            raise ValueError("series: pass rank= or reduce=, not both")
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
            per_rank = [s[name] if name in s else a[name] if name in a else _MISSING
                        for s, a in zip(e.rank_scalars, e.rank_attrs)]
            if any(v is _MISSING for v in per_rank):
                for s, a in zip(e.rank_scalars, e.rank_attrs):
                    known.update(dict.fromkeys([*s, *a]))
                ranks = [r for r, v in enumerate(per_rank) if v is _MISSING]
                where = f" (ranks {ranks})" if e.ranks > 1 else ""
                skipped.append((e.path, f"no scalar variable or root attribute {name!r}{where}"))
                continue
            steps.append(e.step)
            values.append(_per_rank(per_rank, e.path, name, rank, reduce))
        if not steps and known:
            raise KeyError(f"{name!r}: no checkpoint of {self.directory} has a scalar variable "
                           f"or root attribute of that name; there are: {list(known)}")
        _warn_skipped(f"series {name!r} of {self.directory}", skipped)
        return Series(name, np.asarray(steps, dtype=np.int64), np.asarray(values),
                      tuple(skipped))

    def map(self, fn: Callable[[Any], Any], *, name: Optional[str] = None,
            rank: Optional[int] = None, progress: Optional[bool] = None) -> Series:
        """Computes ``fn(checkpoint)`` for every checkpoint that verifies.

        Parameters
        ----------
        fn : callable
            Called with each open :class:`Checkpoint` in turn (closed after
            the call): it must return values read, e.g.
            ``lambda c: c["field/T"].read().mean()``.  A multi-rank
            checkpoint is passed as its :class:`RankCheckpoints`, the list
            of every rank's Checkpoint in rank order, e.g.
            ``lambda ranks: sum(c["field/T"].read().sum() for c in ranks)``.
        name : str, optional
            The series' name; by default fn's ``__name__``.
        rank : int, optional
            Pass fn rank ``rank``'s Checkpoint only (a file is rank 0).
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
            propagate, as does an IndexError for a rank a checkpoint lacks.
        """
        entries = self.entries(progress=progress)
        steps: List[int] = []
        values: List[Any] = []
        skipped = [(e.path, f"{e.status}: {e.error}") for e in entries if e.status != "ok"]
        good = [e for e in entries if e.status == "ok"]
        for e in progress_bar(good, total=len(good), weight=sum(e.size for e in good),
                              enabled=progress, desc=name or getattr(fn, "__name__", "map"),
                              unit="ckpt"):
            multirank = os.path.isdir(e.path)
            try:
                with _open((e.step, e.path, e.size, e.ranks, multirank), rank) as ckpt:
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
