"""The particles demo (apps/particles): a state whose size changes, killed and resumed.

ctest passes the program's path in BRINE_PARTICLES; without it these tests skip.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest

import brine

STEPS = 3000
EVERY = 150


def particles_exe() -> str:
    exe = os.environ.get("BRINE_PARTICLES")
    if not exe:
        pytest.skip("BRINE_PARTICLES is not set (ctest sets it to apps/particles)")
    return exe


def run(directory: pathlib.Path, out: pathlib.Path, *extra: str) -> str:
    cmd = [particles_exe(), "--dir", str(directory), "--out", str(out),
           "--steps", str(STEPS), "--every", str(EVERY), "--keep", "0", *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}): {r.stderr}"
    return r.stdout


def read_out(path: pathlib.Path) -> dict:
    raw = path.read_bytes()
    n = int(np.frombuffer(raw[:8], "<i8")[0])
    ids = np.frombuffer(raw[8:8 + 8 * n], "<i8")
    pos = np.frombuffer(raw[8 + 8 * n:8 + 24 * n], "<f8").reshape(n, 2)
    vel = np.frombuffer(raw[8 + 24 * n:8 + 40 * n], "<f8").reshape(n, 2)
    assert len(raw) == 8 + 40 * n
    return {"n": n, "id": ids, "pos": pos, "vel": vel}


def test_killed_and_resumed_run_is_bit_identical(tmp_path: pathlib.Path) -> None:
    run(tmp_path / "A", tmp_path / "A.bin")

    # B: slowed down, killed with SIGKILL once two checkpoints exist, resumed.
    b_dir = tmp_path / "B"
    cmd = [particles_exe(), "--dir", str(b_dir), "--out", str(tmp_path / "B.bin"),
           "--steps", str(STEPS), "--every", str(EVERY), "--keep", "0", "--sleep-ms", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(list(b_dir.glob("ckpt-*.h5"))) < 2:
            assert proc.poll() is None, "particles finished before it could be killed"
            assert time.monotonic() < deadline, "no two checkpoints after 60 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    out = run(b_dir, tmp_path / "B.bin")
    first = out.splitlines()[0]
    assert first.startswith("resumed from step "), out
    assert int(first.split()[3]) >= 2 * EVERY

    a, b = (tmp_path / "A.bin").read_bytes(), (tmp_path / "B.bin").read_bytes()
    assert a == b, "the resumed run differs from the uninterrupted one"
    state = read_out(tmp_path / "A.bin")
    assert state["n"] > 100
    assert np.all(np.diff(state["id"]) > 0)  # removal keeps the order


def test_checkpoints_change_size_and_carry_metadata(tmp_path: pathlib.Path) -> None:
    run(tmp_path / "A", tmp_path / "A.bin")
    counts = []
    for path in sorted((tmp_path / "A").glob("ckpt-*.h5")):
        with h5py.File(path, "r") as f:
            n = f["state/particles/pos"].shape[0]
            assert f["state/particles/pos"].shape == (n, 2)
            assert f["state/particles/id"].shape == (n,)
        state = brine.load(path)
        assert state["particles"]["n"] == n
        assert state["particles"]["pos"].shape == (n, 2)
        counts.append(n)
    assert len(set(counts)) > 5, counts  # the state really changes size
    assert any(b < a for a, b in zip(counts, counts[1:])), counts  # and shrinks
    last = sorted((tmp_path / "A").glob("ckpt-*.h5"))[-1]
    with brine.open(last) as ckpt:
        attrs = ckpt.attrs
    assert attrs["program"] == "particles"
    assert attrs["inject_per_step"] == 5
    assert attrs["dt"] == 0.002
    assert attrs["sim_time"] == pytest.approx(STEPS * 0.002)
    final = read_out(tmp_path / "A.bin")
    assert np.array_equal(brine.load(last)["particles"]["pos"], final["pos"])
