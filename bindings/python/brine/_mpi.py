"""Multi-rank checkpoints (docs/mpi.md, docs/format.md section 7).

brine_open_mpi() writes one checkpoint as a directory ``<prefix>-<step>``
holding ``rank-<r>.h5`` per rank and a ``manifest`` written last: the
checkpoint is committed when the directory has that name and a manifest
whose checksum verifies.  Each rank file is an ordinary checkpoint.
"""

from __future__ import annotations

import errno
import os
import re
import zlib
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple, TypeVar, Union

import numpy as np

from ._errors import BrineError, CorruptCheckpointError, UnsupportedVersionError
from ._names import DIR_NAME

__all__ = ["Manifest", "read_manifest", "is_multirank", "multirank_dirs", "rank_file",
           "newest_multirank", "concat", "RankCheckpoints", "open_ranks", "open_rank", "REDUCTIONS",
           "reduce_ranks"]

MANIFEST = "manifest"
_MAGIC = "brine-manifest 1\n"
_RANK_LINE = re.compile(r"rank (?P<r>0|[1-9][0-9]*) rank-(?P<r2>0|[1-9][0-9]*)\.h5 "
                        r"(?P<size>0|[1-9][0-9]*) (?P<crc>[0-9a-f]{8})")

T = TypeVar("T")


@dataclass(frozen=True)
class Manifest:
    """A multi-rank checkpoint's manifest.

    Attributes
    ----------
    path : str
        The checkpoint directory.
    prefix : str
    step : int
    nranks : int
    files : tuple of (str, int, int)
        Per rank: the file name, its size in bytes and its CRC-32.
    """

    path: str
    prefix: str
    step: int
    nranks: int
    files: Tuple[Tuple[str, int, int], ...]


def read_manifest(checkpoint_dir: "os.PathLike[str] | str") -> Manifest:
    """Reads and checks the manifest of a multi-rank checkpoint directory.

    Raises
    ------
    FileNotFoundError
        No manifest: the directory is not a committed multi-rank checkpoint.
    CorruptCheckpointError
        The checksum does not match, or a line is malformed.
    UnsupportedVersionError
        The first line names another manifest version.
    """
    cdir = os.fspath(checkpoint_dir)
    path = os.path.join(cdir, MANIFEST)
    with open(path, "rb") as f:
        data = f.read(64 << 20)
    lines = data.split(b"\n")
    if len(lines) < 6 or lines[-1] != b"" or not lines[-2].startswith(b"checksum "):
        raise CorruptCheckpointError(f"{path}: not a brine manifest (no checksum line at its end)",
                                     path=path)
    body = data[: len(data) - len(lines[-2]) - 1]
    stored = lines[-2][len(b"checksum "):].decode("ascii", "replace")
    actual = f"{zlib.crc32(body) & 0xFFFFFFFF:08x}"
    if stored != actual:
        raise CorruptCheckpointError(f"{path}: checksum mismatch (stored {stored}, computed {actual})",
                                     path=path)
    text = body.decode("utf-8")
    if not text.startswith(_MAGIC):
        raise UnsupportedVersionError(f"{path}: first line is not {_MAGIC.strip()!r}", path=path)
    rows = text[len(_MAGIC):].split("\n")[:-1]

    def field(i: int, key: str) -> str:
        if i >= len(rows) or not rows[i].startswith(key + " "):
            raise CorruptCheckpointError(f"{path}: line {i + 2} should start with {key!r}", path=path)
        return rows[i][len(key) + 1:]

    prefix = field(0, "prefix")
    try:
        step = int(field(1, "step"))
        nranks = int(field(2, "nranks"))
    except ValueError:
        raise CorruptCheckpointError(f"{path}: malformed step or nranks", path=path) from None
    if nranks < 1 or len(rows) != 3 + nranks:
        raise CorruptCheckpointError(f"{path}: {nranks} ranks but {len(rows) - 3} rank lines", path=path)
    named = DIR_NAME.fullmatch(os.path.basename(os.path.normpath(cdir)))
    if named is not None and (named["prefix"] != prefix or int(named["step"]) != step):
        raise CorruptCheckpointError(f"{path}: names prefix {prefix!r} and step {step}, but the "
                                     f"directory is {named.group(0)}", path=path)
    files = []
    for r in range(nranks):
        m = _RANK_LINE.fullmatch(rows[3 + r])
        if m is None or int(m["r"]) != r or int(m["r2"]) != r:
            raise CorruptCheckpointError(f"{path}: the line of rank {r} is malformed", path=path)
        files.append((f"rank-{r}.h5", int(m["size"]), int(m["crc"], 16)))
    return Manifest(path=cdir, prefix=prefix, step=step, nranks=nranks, files=tuple(files))


def is_multirank(path: "os.PathLike[str] | str") -> bool:
    """Whether path is a multi-rank checkpoint directory (it has a manifest)."""
    return os.path.isfile(os.path.join(os.fspath(path), MANIFEST))


def multirank_dirs(directory: "os.PathLike[str] | str",
                   prefix: Optional[str] = None) -> List[Tuple[int, str]]:
    """(step, path) of the directory's multi-rank checkpoint directories by name, sorted; reads nothing."""
    found = []
    with os.scandir(os.fspath(directory)) as entries:
        for entry in entries:
            m = DIR_NAME.fullmatch(entry.name)
            if m is None or (prefix is not None and m["prefix"] != prefix):
                continue
            if entry.is_dir():
                found.append((int(m["step"]), entry.name, entry.path))
    found.sort()
    return [(step, p) for step, _, p in found]


def _crc_of(path: str) -> Tuple[int, int]:
    crc, size = 0, 0
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                return size, crc & 0xFFFFFFFF
            crc = zlib.crc32(block, crc)
            size += len(block)


def rank_file(manifest: Manifest, rank: int, *, verify: bool = True) -> str:
    """The path of rank's file, checked against the manifest's size and CRC-32 when verify.

    Raises
    ------
    IndexError
        rank is not in 0..nranks-1.
    CorruptCheckpointError
        The file's size or CRC-32 differs from the manifest's.
    """
    if not 0 <= rank < manifest.nranks:
        raise IndexError(f"{manifest.path}: rank {rank} is not in 0..{manifest.nranks - 1} "
                         f"(the checkpoint has {manifest.nranks} ranks)")
    name, size, crc = manifest.files[rank]
    path = os.path.join(manifest.path, name)
    if verify:
        got_size, got_crc = _crc_of(path)
        if (got_size, got_crc) != (size, crc):
            raise CorruptCheckpointError(
                f"{path}: the manifest records {size} bytes with CRC-32 {crc:08x}, the file has "
                f"{got_size} bytes with CRC-32 {got_crc:08x}", path=path)
    return path


def newest_multirank(directory: str, attempt: Callable[[str], T], *,
                     prefix: Optional[str] = None) -> T:
    """Calls attempt(checkpoint_dir) on the multi-rank checkpoints, newest first, until one succeeds."""
    dirs = multirank_dirs(directory, prefix)
    if not dirs:
        raise FileNotFoundError(errno.ENOENT, "no checkpoint in directory", directory)
    reasons = []
    newest: Optional[BaseException] = None
    for _, path in reversed(dirs):
        try:
            return attempt(path)
        except (BrineError, OSError) as exc:
            reasons.append(str(exc))
            newest = newest or exc
    assert newest is not None
    message = f"no multi-rank checkpoint in {directory} verifies; tried newest first:\n  " + "\n  ".join(reasons)
    if isinstance(newest, BrineError):
        raise type(newest)(message) from newest
    raise FileNotFoundError(errno.ENOENT, message) from newest


class RankCheckpoints(list):
    """The per-rank :class:`~brine.Checkpoint` objects of one multi-rank
    checkpoint, in rank order: what :func:`brine.open` and ``run[step]``
    return for one.  A list, and a context manager closing them all.

    Attributes
    ----------
    path : str
        The checkpoint directory.
    step : int
    nranks : int
    """

    def __init__(self, manifest: Manifest, checkpoints: Sequence[Any]) -> None:
        super().__init__(checkpoints)
        self.path = manifest.path
        self.step = manifest.step
        self.nranks = manifest.nranks

    def close(self) -> None:
        """Closes every rank's checkpoint."""
        for ckpt in self:
            ckpt.close()

    def __enter__(self) -> "RankCheckpoints":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<brine.RankCheckpoints {self.path!r} step={self.step}, {self.nranks} ranks>"

    def _repr_html_(self) -> str:
        from ._display import ranks_html
        return ranks_html(self)


def open_ranks(cdir: str, opener: Callable[[str], Any]) -> RankCheckpoints:
    """opener(rank file) for every rank of a multi-rank checkpoint, files checked first.

    Every rank's file is checked against the manifest (size, CRC-32) before
    any is opened, and each rank's ``step`` must be the manifest's; on any
    failure the ranks already opened are closed.

    Raises
    ------
    CorruptCheckpointError
        A rank file differs from the manifest, or is of another step (the
        message names the file, the expected and the found step).
    """
    m = read_manifest(cdir)
    for r in range(m.nranks):
        rank_file(m, r)
    opened: List[Any] = []
    try:
        for r in range(m.nranks):
            opened.append(open_rank(m, r, opener, verify=False))
    except BaseException:
        for ckpt in opened:
            ckpt.close()
        raise
    return RankCheckpoints(m, opened)


def open_rank(manifest: Manifest, rank: int, opener: Callable[[str], Any], *,
              verify: bool = True) -> Any:
    """opener(rank's file), the file checked against the manifest when verify,
    and its ``step`` against the manifest's (CorruptCheckpointError otherwise)."""
    path = rank_file(manifest, rank, verify=verify)
    ckpt = opener(path)
    if ckpt.step != manifest.step:
        ckpt.close()
        raise CorruptCheckpointError(f"{path}: root attribute 'step' is {ckpt.step}, but the "
                                     f"manifest says step {manifest.step}", path=path)
    return ckpt


#: The named reductions of per-rank values (Run.series(reduce=...)).
REDUCTIONS = {"sum": np.sum, "max": np.max, "min": np.min, "mean": np.mean}


def reduce_ranks(values: Sequence[Any], reduce: Union[str, Callable[[List[Any]], Any]]) -> Any:
    """reduce (a name of REDUCTIONS or a callable) of one value per rank, in rank order."""
    if callable(reduce):
        return reduce(list(values))
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce={reduce!r}: not one of {sorted(REDUCTIONS)} nor a callable")
    return REDUCTIONS[reduce](np.asarray(values)).item()


def _lookup(state: Any, name: str, where: str) -> Any:
    value = state
    for part in name.split("/"):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"{where}: no variable {name!r}")
        value = value[part]
    return value


def concat(states: Union[Sequence[Any], "os.PathLike[str]", str], name: str, *, axis: int = 0,
           load: Optional[Callable[[str], Any]] = None) -> np.ndarray:
    """Concatenates one variable across the ranks of a multi-rank checkpoint.

    Parameters
    ----------
    states : list of dict, or str or os.PathLike
        Per-rank states as :func:`brine.load` returns them, or a path that
        :func:`brine.load` turns into them (a run directory or a checkpoint
        directory).
    name : str
        The variable's hierarchical name, such as ``"field/T"``.
    axis : int
        The axis along which the ranks' arrays are joined (the one the
        application split its domain along).

    Returns
    -------
    numpy.ndarray
        ``numpy.concatenate`` of the ranks' arrays in rank order.

    Raises
    ------
    KeyError
        A rank's state has no such variable (the message names the rank).
    ValueError
        The arrays' shapes do not fit together along axis, or states is not
        a multi-rank checkpoint.
    """
    if isinstance(states, (str, os.PathLike)):
        assert load is not None
        where = os.fspath(states)
        states = load(where)
        if not isinstance(states, list):
            raise ValueError(f"{where} is a single-file checkpoint: nothing to concatenate")
    parts = []
    for r, state in enumerate(states):
        value = _lookup(state, name, f"rank {r}")
        parts.append(np.asarray(value))
    try:
        return np.concatenate(parts, axis=axis)
    except ValueError as exc:
        shapes = ", ".join(f"rank {r}: {p.shape}" for r, p in enumerate(parts))
        raise ValueError(f"variable {name!r} cannot be joined along axis {axis} ({shapes}): {exc}") from None
