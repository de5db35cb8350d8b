"""Bit flips and truncations of whole checkpoint files, through brine.load.

Each damaged file, alone, must be rejected with CorruptCheckpointError (or
UnsupportedVersionError when the flip raises brine_format) or load a state
bit-identical to the original: never a different value, never another
exception type, never a crash or a hang. Next to a good older checkpoint,
brine.load(directory) must return exactly one of the two states.

Cases run in worker processes (HDF5 1.10.8 can crash on damaged metadata): a
crash or a hang (5 s) is a failure of that case, and the sweep goes on.

The default tier samples offsets (a few seconds); BRINE_PY_CORRUPT_FULL=1
flips one bit of every byte of the Python-written file and all eight bits of
the first 4 KiB, truncates at every length, and samples the C-written file
every 97th byte plus all of its first 4 KiB and of its pickle stream.
"""

from __future__ import annotations

import json
import os
import pathlib
import select
import shutil
import subprocess
import sys
import time
from typing import Dict, Iterable, List, Tuple

import h5py
import numpy as np
import pytest

import _writer
import brine

HERE = pathlib.Path(__file__).resolve().parent
FULL = os.environ.get("BRINE_PY_CORRUPT_FULL") == "1"
TIMEOUT = 5.0
ACCEPTED = ("CorruptCheckpointError", "UnsafeCheckpointError", "UnsupportedVersionError")


def small_state(step: int) -> dict:
    y, x = np.mgrid[0:40, 0:64]
    return {
        "field": {"T": np.sin(x * 0.1 + step) * np.cos(y * 0.07),  # 20 KiB f64, one chunk
                  "mask": (x[:3, :5] + step) % 3 == 0},
        "F": np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4) * step),
        "c": np.arange(3, dtype=np.complex64) * (1 + 2j),
        "empty": np.zeros((0, 3), np.float32),
        "step": step, "t": 0.25 * step, "z": complex(step, -1.5), "name": f"run-{step}",
        "ok": True,
    }


_WORKER = r"""
import json, os, shutil, sys
sys.path[:0] = sys.argv[1:3]
import brine, test_corruption as tc
new_path, old_path, scratch = sys.argv[3:6]
original = open(new_path, "rb").read()
want_new = brine.load(new_path)
want_old = brine.load(old_path)
name_new, name_old = os.path.basename(new_path), os.path.basename(old_path)
alone = os.path.join(scratch, "alone"); both = os.path.join(scratch, "both")
for d in (alone, both):
    os.makedirs(d, exist_ok=True)
shutil.copyfile(old_path, os.path.join(both, name_old))
for line in sys.stdin:
    kind, where, bit, with_old = json.loads(line)
    data = bytearray(original)
    if kind == "flip":
        data[where] ^= 1 << bit
    else:
        del data[where:]
    target = os.path.join(both if with_old else alone, name_new)
    with open(target, "wb") as fh:
        fh.write(data)
    try:
        got = brine.load(both if with_old else target)
        if tc.identical(got, want_new):
            out = "identical"
        elif with_old and tc.identical(got, want_old):
            out = "older"
        else:
            out = "DIFFERENT"
    except (brine.CorruptCheckpointError, brine.UnsupportedVersionError) as e:
        out = type(e).__name__
    except BaseException as e:
        out = "OTHER " + type(e).__name__ + ": " + str(e)[:300]
    print(json.dumps(out), flush=True)
"""


def identical(a, b) -> bool:
    """Bit-identical states: same keys, types, dtypes, shapes, memory order and bytes."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(identical(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return (a.dtype == b.dtype and a.shape == b.shape
                and a.flags.f_contiguous == b.flags.f_contiguous
                and a.flags.c_contiguous == b.flags.c_contiguous
                and a.tobytes(order="A") == b.tobytes(order="A"))
    if isinstance(a, float):
        return np.float64(a).tobytes() == np.float64(b).tobytes()
    if isinstance(a, complex):
        return np.complex128(a).tobytes() == np.complex128(b).tobytes()
    return a == b


class _Pool:
    """Runs cases in worker processes, restarting a worker that crashes or hangs."""

    def __init__(self, new_path: pathlib.Path, old_path: pathlib.Path, scratch: pathlib.Path):
        self.args = [sys.executable, "-c", _WORKER, str(HERE),
                     os.path.dirname(os.path.dirname(brine.__file__)),
                     str(new_path), str(old_path)]
        self.scratch = scratch
        self.n = 0

    def _start(self) -> subprocess.Popen:
        self.n += 1
        d = self.scratch / f"worker{self.n}"
        d.mkdir(parents=True)
        return subprocess.Popen(self.args + [str(d)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                bufsize=1)

    def run(self, cases: List[Tuple[str, int, int, bool]], workers: int = 2) -> List[str]:
        results: List[str] = [""] * len(cases)
        shares = [list(range(i, len(cases), workers)) for i in range(workers)]
        procs = [self._start() for _ in shares]
        pending = [list(s) for s in shares]  # case indices each worker still has to do
        inflight: Dict[int, Tuple[int, float]] = {}  # worker -> (case index, deadline)
        fresh = [True] * workers  # a new worker first imports h5py and loads the originals

        def send(w: int) -> None:
            if pending[w]:
                i = pending[w].pop(0)
                inflight[w] = (i, time.monotonic() + TIMEOUT + (30 if fresh[w] else 0))
                fresh[w] = False
                procs[w].stdin.write(json.dumps(cases[i]) + "\n")
                procs[w].stdin.flush()

        for w in range(workers):
            send(w)
        while inflight:
            fds = {procs[w].stdout.fileno(): w for w in inflight}
            ready, _, _ = select.select(list(fds), [], [], 0.5)
            for fd in ready:
                w = fds[fd]
                line = procs[w].stdout.readline()
                i, _ = inflight.pop(w)
                if line:
                    results[i] = json.loads(line)
                else:  # the worker died on this case
                    results[i] = f"CRASH (status {procs[w].wait()})"
                    procs[w] = self._start()
                    fresh[w] = True
                send(w)
            for w, (i, deadline) in list(inflight.items()):
                if time.monotonic() > deadline:
                    procs[w].kill()
                    procs[w].wait()
                    results[i] = "HANG"
                    del inflight[w]
                    procs[w] = self._start()
                    fresh[w] = True
                    send(w)
        for p in procs:
            p.stdin.close()
            p.wait(timeout=30)
        return results


def pickle_extent(path: pathlib.Path) -> Tuple[int, int]:
    with h5py.File(path, "r") as f:
        ds = f["brine/pickle"]
        return ds.id.get_offset(), ds.id.get_storage_size()


def sweep(new_path: pathlib.Path, old_path: pathlib.Path, scratch: pathlib.Path,
          offsets: Iterable[int], all_bits_below: int, lengths: Iterable[int],
          with_old_every: int) -> Dict[str, int]:
    size = new_path.stat().st_size
    cases: List[Tuple[str, int, int, bool]] = []
    for k, off in enumerate(sorted(set(o for o in offsets if 0 <= o < size))):
        bits = range(8) if off < all_bits_below else [(off * 5 + 3) % 8]
        for bit in bits:
            cases.append(("flip", off, bit, False))
            if k % with_old_every == 0:
                cases.append(("flip", off, bit, True))
    for k, n in enumerate(sorted(set(n for n in lengths if 0 <= n < size))):
        cases.append(("trunc", n, 0, False))
        if k % with_old_every == 0:
            cases.append(("trunc", n, 0, True))
    results = _Pool(new_path, old_path, scratch).run(cases)
    counts: Dict[str, int] = {}
    bad = []
    for case, out in zip(cases, results):
        counts[out] = counts.get(out, 0) + 1
        ok = out in ACCEPTED + ("identical",) if not case[3] else out in ("identical", "older")
        if not ok:
            bad.append((case, out))
    summary = {"cases": len(cases), **counts}
    print(f"\n{new_path.name} ({size} bytes): {json.dumps(summary)}")
    assert not bad, f"{len(bad)} bad outcomes of {len(cases)}, first: {bad[:10]}"
    return summary


def test_python_written_checkpoint(tmp_path):
    old_path = tmp_path / "ckpt-000000000001.h5"
    new_path = tmp_path / "ckpt-000000000002.h5"
    _writer.write_checkpoint(old_path, small_state(1), step=1)
    _writer.write_checkpoint(new_path, small_state(2), step=2)
    size = new_path.stat().st_size
    p_off, p_len = pickle_extent(new_path)
    stream_bytes = range(p_off, p_off + p_len)
    if FULL:
        offsets, all_bits, lengths, every = range(size), 4096, range(size), 1
    else:
        offsets = [*range(0, 4096, 17), *range(4096, size, 149), *range(p_off, p_off + p_len, 7)]
        all_bits, lengths, every = 0, [*range(0, size, 1297), size - 1], 8
    sweep(new_path, old_path, tmp_path / "scratch", offsets, all_bits, lengths, every)


def test_c_written_checkpoint(c_dir_session, tmp_path):
    old_path = c_dir_session / "ckpt-000000000002.h5"
    new_path = c_dir_session / "ckpt-000000000003.h5"
    size = new_path.stat().st_size
    p_off, p_len = pickle_extent(new_path)
    stream_bytes = range(p_off, p_off + p_len)
    if FULL:
        offsets = [*range(0, 4096), *range(4096, size, 97), *stream_bytes]
        all_bits, lengths, every = 0, [*range(0, 4096, 7), *range(4096, size, 997)], 4
    else:
        offsets = [*range(0, 4096, 89), *range(4096, size, 199999), *range(p_off, p_off + p_len, 43)]
        all_bits, lengths, every = 0, [*range(0, size, size // 5)], 16
    sweep(new_path, old_path, tmp_path / "scratch", offsets, all_bits, lengths, every)
