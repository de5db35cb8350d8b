"""Writes multi-rank checkpoints without MPI, in the layout of docs/format.md
section 7: brine.save writes each rank's file (a complete format-1 file) into
``<prefix>-<step>/rank-<r>.h5``, then the manifest of section 7.2 is written
last, so the Python tests of multi-rank runs need no MPI build.
"""

from __future__ import annotations

import os
import pathlib
import zlib
from typing import Any, Sequence

import brine


def crc32_of(path: pathlib.Path) -> int:
    return zlib.crc32(path.read_bytes()) & 0xFFFFFFFF


def manifest_text(cdir: pathlib.Path, prefix: str, step: int, nranks: int) -> str:
    """The manifest of section 7.2 for the rank files now in cdir."""
    body = f"brine-manifest 1\nprefix {prefix}\nstep {step}\nnranks {nranks}\n"
    for r in range(nranks):
        f = cdir / f"rank-{r}.h5"
        body += f"rank {r} rank-{r}.h5 {f.stat().st_size} {crc32_of(f):08x}\n"
    return body + f"checksum {zlib.crc32(body.encode()) & 0xFFFFFFFF:08x}\n"


def write_manifest(cdir: pathlib.Path, prefix: str, step: int, nranks: int) -> None:
    (cdir / "manifest").write_text(manifest_text(cdir, prefix, step, nranks))


def save_ranks(directory: pathlib.Path, states: Sequence[Any], *, step: int,
               prefix: str = "ckpt", attrs: Any = None) -> pathlib.Path:
    """Writes states (one per rank, in rank order) as the multi-rank checkpoint
    ``directory/<prefix>-<step>/`` and returns its path."""
    cdir = pathlib.Path(directory) / f"{prefix}-{step:012d}"
    cdir.mkdir(parents=True, exist_ok=False)
    for r, state in enumerate(states):
        per_rank = attrs(r) if callable(attrs) else attrs
        brine.save(cdir / f"rank-{r}.h5", state, step=step, attrs=per_rank)
    write_manifest(cdir, prefix, step, len(states))
    assert os.path.isfile(cdir / "manifest")
    return cdir
