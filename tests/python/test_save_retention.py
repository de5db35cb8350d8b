"""brine.save's keep_every: the Python writer rotates as the C library does
(lib/io/dir_scan.c, brine_scan__rotate_every; docs/format.md section 1).

The cross-check against C runs heat2d, whose path ctest passes in BRINE_HEAT2D;
without it that test skips.
"""

from __future__ import annotations

import os
import pathlib
import subprocess

import pytest

import brine


def steps_in(directory: pathlib.Path, prefix: str = "ckpt") -> list:
    return [info.step for info in brine.list(directory, prefix=prefix)]


def test_keep_every_survives_rotation(tmp_path: pathlib.Path) -> None:
    for step in range(1, 36):
        brine.save(tmp_path, {"s": step}, step=step, keep_last=2, keep_every=10)
        # The multiples so far, and the two newest of the others.
        others = step - step // 10
        assert len(steps_in(tmp_path)) == step // 10 + min(others, 2), step
    assert steps_in(tmp_path) == [10, 20, 30, 34, 35]
    assert brine.load(tmp_path)["s"] == 35


def test_step_zero_is_a_multiple(tmp_path: pathlib.Path) -> None:
    for step in range(0, 31, 3):
        brine.save(tmp_path, {"s": step}, step=step, keep_last=1, keep_every=4)
    assert steps_in(tmp_path) == [0, 12, 24, 30]


def test_without_keep_last_nothing_is_deleted(tmp_path: pathlib.Path) -> None:
    for step in range(1, 8):
        brine.save(tmp_path, {"s": step}, step=step, keep_every=5)
    assert steps_in(tmp_path) == list(range(1, 8))


def test_keep_step_and_other_prefixes(tmp_path: pathlib.Path) -> None:
    (tmp_path / "other-000000000001.h5").write_bytes(b"another prefix")
    for step in (5, 6, 7, 10, 11, 12):
        brine.save(tmp_path, {"s": step}, step=step, keep_every=5)
    # Step 3, older than every other, is the one just written: it stays.
    brine.save(tmp_path, {"s": 3}, step=3, keep_last=1, keep_every=5)
    assert steps_in(tmp_path) == [3, 5, 10, 12]
    assert (tmp_path / "other-000000000001.h5").exists()
    # Without keep_every the multiples rotate like the others.
    brine.save(tmp_path, {"s": 13}, step=13, keep_last=2)
    assert steps_in(tmp_path) == [12, 13]


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"keep_last": 2, "keep_every": 0}, ValueError, r"keep_every is 0; expected >= 1"),
    ({"keep_last": 2, "keep_every": -10}, ValueError, r"keep_every is -10"),
    ({"keep_last": 2, "keep_every": 2.0}, TypeError, r"keep_every is a float"),
    ({"keep_last": 2, "keep_every": True}, TypeError, r"keep_every is a bool"),
])
def test_keep_every_errors(tmp_path: pathlib.Path, kwargs: dict, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        brine.save(tmp_path, {"x": 1}, step=1, **kwargs)
    assert not list(tmp_path.iterdir())


def test_keep_every_needs_a_directory(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="keep_every is for a checkpoint directory"):
        brine.save(tmp_path / "one.h5", {"x": 1}, step=1, keep_every=2)


def test_same_files_as_the_c_library(tmp_path: pathlib.Path) -> None:
    heat2d = os.environ.get("BRINE_HEAT2D")
    if not heat2d:
        pytest.skip("BRINE_HEAT2D is not set (ctest sets it)")
    # The C side takes keep_every from the environment.
    env = dict(os.environ, BRINE_KEEP_EVERY="20", OMP_WAIT_POLICY="passive")
    r = subprocess.run([heat2d, "--nx", "16", "--ny", "16", "--steps", "130", "--every", "5",
                        "--keep", "2", "--dir", str(tmp_path / "c")],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    for step in range(5, 131, 5):
        brine.save(tmp_path / "py", {"s": step}, step=step, keep_last=2, keep_every=20)
    assert steps_in(tmp_path / "c") == [20, 40, 60, 80, 100, 120, 125, 130]
    assert steps_in(tmp_path / "py") == steps_in(tmp_path / "c")
