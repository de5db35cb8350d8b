"""Fixtures of the Python tests: checkpoint directories written by C and by Python.

The C checkpoints come from tests/tools/brine_fixture, whose path ctest passes
in BRINE_FIXTURE; without it those tests are skipped.  The Python ones come
from _writer.py, which follows docs/format.md, so the reader is tested even
before the C library exists.  Both hold fixture_values.expected_state(s) for
s = 1..STEPS.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import _writer  # noqa: E402
import fixture_values  # noqa: E402

STEPS = 3


def run_fixture(directory: pathlib.Path, *, steps: int = STEPS, prefix: str = "",
                extra: tuple = ()) -> None:
    """Runs brine_fixture into directory (skips when BRINE_FIXTURE is unset);
    extra: more arguments, e.g. ("--codec", "zlib")."""
    exe = os.environ.get("BRINE_FIXTURE")
    if not exe:
        pytest.skip("BRINE_FIXTURE is not set (ctest sets it to the compiled "
                    "tests/tools/brine_fixture): no C-written checkpoints to test")
    if not os.access(exe, os.X_OK):
        pytest.fail(f"BRINE_FIXTURE={exe} is not an executable file")
    cmd = [exe, str(directory), "--steps", str(steps)] + (["--prefix", prefix] if prefix else [])
    cmd += list(extra)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed with status {r.returncode}:\n{r.stderr}")


def write_python(directory: pathlib.Path, *, steps: int = STEPS, prefix: str = "ckpt") -> None:
    """Writes the fixture's checkpoints with the Python writer of the format."""
    directory.mkdir(parents=True, exist_ok=True)
    for s in range(1, steps + 1):
        _writer.write_checkpoint(directory / f"{prefix}-{s:012d}.h5",
                                 fixture_values.expected_state(s), step=s)


@pytest.fixture(scope="session")
def c_dir_session(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    d = tmp_path_factory.mktemp("c-ckpts")
    run_fixture(d)
    return d


@pytest.fixture(scope="session")
def py_dir_session(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    d = tmp_path_factory.mktemp("py-ckpts")
    write_python(d)
    return d


@pytest.fixture(params=["python", "c"])
def ckpt_dir(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> pathlib.Path:
    """A fresh copy (tests may damage it) of a directory of checkpoints of steps 1..STEPS,
    written by the Python writer or by the C library's brine_fixture."""
    source = request.getfixturevalue("c_dir_session" if request.param == "c" else "py_dir_session")
    dest = tmp_path / f"{request.param}-ckpts"
    shutil.copytree(source, dest)
    return dest


@pytest.fixture
def c_ckpt_dir(c_dir_session: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    """A fresh copy of the C-written checkpoints only."""
    dest = tmp_path / "c-ckpts"
    shutil.copytree(c_dir_session, dest)
    return dest


def checkpoint_path(directory: pathlib.Path, step: int, prefix: str = "ckpt") -> pathlib.Path:
    return directory / f"{prefix}-{step:012d}.h5"
