"""A real process stopped by a signal: heat2d with brine_install_signals.

SIGUSR1 or SIGTERM (what Slurm's --signal and a time limit send) makes heat2d
checkpoint the step it reached and exit 0; the next run resumes from that
checkpoint and ends bit-identical to an uninterrupted run.  ctest passes the
program in BRINE_HEAT2D; without it these tests skip.
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import time

import numpy as np
import pytest

import brine

ARGS = ["--nx", "48", "--ny", "40", "--steps", "4000", "--every", "1000"]


def heat2d() -> str:
    path = os.environ.get("BRINE_HEAT2D")
    if not path:
        pytest.skip("BRINE_HEAT2D is not set (ctest sets it)")
    return path


def run(cmd: list, cwd: pathlib.Path) -> str:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300,
                       env=clean_env())
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r.stdout


def clean_env() -> dict:
    """The environment without brine's own variables, which would change the runs; idle
    OpenMP threads sleep (heat2d sleeps between steps, and the machine may be busy)."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("BRINE_") and k != "BRINE_HEAT2D")}
    env.setdefault("OMP_WAIT_POLICY", "passive")
    return env


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM], ids=["USR1", "TERM"])
def test_signal_checkpoints_and_resumes(tmp_path: pathlib.Path, sig: int) -> None:
    exe = heat2d()
    run([exe, *ARGS, "--dir", "ref", "--out", "ref.bin"], tmp_path)

    # Slowed down (1 ms a step) so that the signal arrives part-way.
    p = subprocess.Popen([exe, *ARGS, "--dir", "run", "--out", "run.bin", "--sleep-ms", "1"],
                         cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=clean_env())
    try:
        assert p.stdout is not None
        # Running once it has printed its banner (stdout is line-buffered).
        for line in p.stdout:
            if line.startswith("heat2d: "):
                break
        else:
            pytest.fail(f"heat2d ended before starting: {p.wait()} {p.stderr.read()}")
        time.sleep(0.3)
        p.send_signal(sig)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, f"exit status {p.returncode}\n{out}\n{err}"
    m = re.search(r"^signal received: stopped at step (\d+), its checkpoint is in run; "
                  r"rerun to resume$", out, re.M)
    assert m, out
    stopped = int(m[1])
    assert 0 < stopped < 4000, "the signal did not arrive part-way: raise --steps"
    # The step it reached is checkpointed, and it is the newest; no final field was written.
    assert (tmp_path / "run" / f"ckpt-{stopped:012d}.h5").is_file()
    assert brine.list(tmp_path / "run")[-1].step == stopped
    assert brine.load(tmp_path / "run")["step"] == stopped
    assert not (tmp_path / "run.bin").exists()

    out = run([exe, *ARGS, "--dir", "run", "--out", "run.bin"], tmp_path)
    assert out.splitlines()[0] == f"resumed from step {stopped}"
    assert "done: step 4000" in out
    ref = np.fromfile(tmp_path / "ref.bin", dtype="<f8")
    got = np.fromfile(tmp_path / "run.bin", dtype="<f8")
    assert ref.size == 48 * 40
    assert got.tobytes() == ref.tobytes()


def test_every_seconds(tmp_path: pathlib.Path) -> None:
    # No step policy: the checkpoints come from the clock (and the final one).
    out = run([heat2d(), "--nx", "16", "--ny", "16", "--steps", "300", "--every", "0",
               "--every-seconds", "0.1", "--sleep-ms", "2", "--dir", "d"], tmp_path)
    saved = [int(s) for s in re.findall(r"^step (\d+) saved$", out, re.M)]
    # At least 0.6 s of sleeping: several time-based checkpoints before the final one.
    assert len(saved) >= 3, out
    assert saved[-1] == 300
    assert saved == sorted(saved)


def test_every_seconds_is_validated(tmp_path: pathlib.Path) -> None:
    r = subprocess.run([heat2d(), "--every-seconds", "-1"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2
    assert "invalid value '-1' for --every-seconds" in r.stderr
