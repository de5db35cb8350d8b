"""brine.diff: how far apart two checkpoints are, variable by variable."""

from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Optional, Union

import numpy as np

from ._lazy import LazyArray
from ._optional import ByteBar

__all__ = ["diff"]

#: Arrays are compared in blocks of rows of about this many bytes each.
_BLOCK_BYTES = 32 << 20


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| in float64 (complex: the modulus); equal values, and NaN
    facing NaN, count as 0."""
    if a.size == 0:
        return 0.0
    if a.dtype.kind in "biu":
        a, b = a.astype(np.float64), b.astype(np.float64)
    d = np.abs(a - b)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    d = np.where(same, 0.0, d)
    return float(np.max(d))


def _describe(value: Any) -> str:
    if isinstance(value, LazyArray):
        return f"an array {value.dtype} {value.shape}"
    return f"a scalar {type(value).__name__}"


def diff(a: Any, b: Any, *, progress: Optional[bool] = None,
         by_rank: bool = False) -> Union[Dict[str, float], List[Dict[str, float]]]:
    """The maximum absolute difference of every variable of two checkpoints.

    Parameters
    ----------
    a, b : Checkpoint or list of Checkpoint
        Open checkpoints (:func:`brine.open`, ``run[step]``) with the same
        variables: the same names, array shapes, and numeric or same-kind values.
        Or two multi-rank checkpoints (lists of per-rank Checkpoints, as
        :func:`brine.open` gives them) of the same rank count: compared rank
        by rank, rank r of a with rank r of b.
    progress : bool or None
        A tqdm progress bar counting the bytes read (True, False, or None for
        one when there are at least 256 MiB to read).
    by_rank : bool
        For multi-rank checkpoints, a list of each rank's dict instead of
        one dict of the largest difference over the ranks.

    Returns
    -------
    dict
        Each variable's name (``"field/T"``) to ``max |a - b|`` as a float,
        computed in float64 (the modulus for complex values); NaN facing NaN
        counts as equal, NaN facing a number gives NaN.  A string scalar gives
        0.0 when both are equal and ``math.inf`` otherwise.  Arrays are read in
        blocks, never whole.

    For multi-rank checkpoints: each variable's largest difference over the
    ranks (NaN winning), the difference of the whole distributed variable.

    Raises
    ------
    ValueError
        A variable is in only one of them, or has different shapes or kinds
        (array and scalar, string and number) in the two; the message names it
        (and the rank).  Multi-rank checkpoints with different rank counts,
        or a multi-rank checkpoint and a single one.
    CorruptCheckpointError
        A chunk read is damaged.
    """
    multi = isinstance(a, list), isinstance(b, list)
    if not any(multi):
        return _diff_one(a, b, progress)
    if not all(multi):
        single, ranks = (a, b) if multi[1] else (b, a)
        raise ValueError(f"cannot compare the single checkpoint {single.path} with a multi-rank "
                         f"checkpoint of {len(ranks)} ranks: pass one rank's checkpoint "
                         f"(brine.open(..., rank=r))")
    where = lambda x: getattr(x, "path", x[0].path if x else "?")  # noqa: E731
    if len(a) != len(b):
        raise ValueError(f"{where(a)} has {len(a)} ranks but {where(b)} has {len(b)}: a multi-rank "
                         f"diff compares rank by rank; join ranks with brine.concat to compare "
                         f"the whole fields")
    per_rank = []
    for r, (x, y) in enumerate(zip(a, b)):
        try:
            per_rank.append(_diff_one(x, y, progress))
        except ValueError as exc:
            raise ValueError(f"rank {r}: {exc}") from None
    if by_rank:
        return per_rank
    result: Dict[str, float] = {}
    for d in per_rank:
        for name, value in d.items():
            result[name] = _max_abs_diff_pair(result.get(name, 0.0), value)
    return result


def _diff_one(a: Any, b: Any, progress: Optional[bool]) -> Dict[str, float]:
    """diff of two single checkpoints."""
    va, vb = a.variables(), b.variables()
    only_a = [n for n in va if n not in vb]
    only_b = [n for n in vb if n not in va]
    if only_a or only_b:
        raise ValueError(f"{a.path} and {b.path} do not hold the same variables: "
                         f"only in the first: {only_a}, only in the second: {only_b}")
    for name, x in va.items():
        y = vb[name]
        arrays = isinstance(x, LazyArray), isinstance(y, LazyArray)
        strings = isinstance(x, str), isinstance(y, str)
        if (arrays[0] != arrays[1] or strings[0] != strings[1]
                or (all(arrays) and x.shape != y.shape)):
            raise ValueError(f"variable {name!r} is {_describe(x)} in {a.path} but "
                             f"{_describe(y)} in {b.path}: cannot compare them")
    total = sum(x.nbytes + vb[n].nbytes for n, x in va.items() if isinstance(x, LazyArray))
    result: Dict[str, float] = {}
    desc = f"{os.path.basename(a.path)} vs {os.path.basename(b.path)}"
    with ByteBar(total=total, desc=desc, enabled=progress) as bar:
        for name, x in va.items():
            y = vb[name]
            if isinstance(x, str):
                result[name] = 0.0 if x == y else math.inf
            elif not isinstance(x, LazyArray):
                result[name] = _max_abs_diff(np.asarray(x), np.asarray(y))
            elif x.ndim == 0 or x.size == 0:
                result[name] = _max_abs_diff(x.read(progress=False), y.read(progress=False))
            else:
                rows = max(1, _BLOCK_BYTES // max(1, x.nbytes // x.shape[0]))
                worst = 0.0
                for start in range(0, x.shape[0], rows):
                    block_a, block_b = x[start:start + rows], y[start:start + rows]
                    worst = _max_abs_diff_pair(worst, _max_abs_diff(block_a, block_b))
                    bar.update(block_a.nbytes + block_b.nbytes)
                result[name] = worst
    return result


def _max_abs_diff_pair(u: float, v: float) -> float:
    """max(u, v) where NaN wins (a NaN difference is never hidden by a number)."""
    return math.nan if math.isnan(u) or math.isnan(v) else max(u, v)
