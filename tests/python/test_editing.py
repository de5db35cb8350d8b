"""docs/editing.md, executed: a checkpoint edited in Python resumes in C.

Also the metadata round trip C -> Python -> C.  ctest passes the programs in
BRINE_HEAT2D, BRINE_PARTICLES and BRINE_ROUNDTRIP; without them these tests skip.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess

import numpy as np

import brine
import pytest

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "editing.md"
HEAT = ["--nx", "128", "--ny", "128", "--every", "200"]


def exe(var: str) -> str:
    path = os.environ.get(var)
    if not path:
        pytest.skip(f"{var} is not set (ctest sets it)")
    return path


def run(cmd: list, cwd: pathlib.Path) -> str:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r.stdout


def doc_python_block() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert blocks, "docs/editing.md has no python block"
    return blocks[0]


def test_worked_example_resumes_bit_exactly(tmp_path: pathlib.Path) -> None:
    heat2d = exe("BRINE_HEAT2D")
    run([heat2d, *HEAT, "--steps", "400", "--dir", "run1"], tmp_path)

    # The page's Python, verbatim.
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(doc_python_block(), str(DOC), "exec"), {})
    finally:
        os.chdir(cwd)

    # What the edit should have produced, computed apart from the page.
    expected = brine.load(tmp_path / "run1")["field"]["T"]
    expected[40:60, 40:60] = 0.0

    # C restores the edited state bit-exactly (zero steps to go: --out is the restored field).
    out = run([heat2d, *HEAT, "--steps", "400", "--dir", "run1-edited", "--out", "T.bin"], tmp_path)
    assert "resumed from step 400" in out
    got = np.fromfile(tmp_path / "T.bin", dtype="<f8").reshape(128, 128)
    assert got.tobytes() == expected.tobytes()

    # And continues from it.
    out = run([heat2d, *HEAT, "--steps", "800", "--dir", "run1-edited"], tmp_path)
    assert out.splitlines()[0] == "resumed from step 400"
    with brine.open(tmp_path / "run1-edited" / "ckpt-000000000400.h5") as ckpt:
        assert ckpt.attrs["edited_by"] == "notebook"
    # The original run is untouched.
    assert sorted(p.name for p in (tmp_path / "run1").glob("*.h5")) == [
        "ckpt-000000000200.h5", "ckpt-000000000400.h5"]


def inspect(path: pathlib.Path) -> dict:
    out = subprocess.run([exe("BRINE_ROUNDTRIP"), "inspect", str(path)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    attrs = {}
    for line in out.stdout.splitlines():
        if line.startswith("attr "):
            _, name, kind, value = line.split(" ", 3)
            attrs[name] = int(value) if kind == "int" else float(value) if kind == "double" else value
    return attrs


def test_metadata_round_trip_c_python_c(tmp_path: pathlib.Path) -> None:
    particles = exe("BRINE_PARTICLES")
    run([particles, "--dir", "a", "--steps", "300", "--every", "100"], tmp_path)
    newest = sorted((tmp_path / "a").glob("ckpt-*.h5"))[-1]

    c_attrs = inspect(newest)
    assert c_attrs["program"] == "particles"
    assert c_attrs["brine_threads"] >= 1

    with brine.open(newest) as ckpt:
        py_attrs = dict(ckpt.attrs)
        state = brine.load(newest)
    user = {k: v for k, v in py_attrs.items()
            if not k.startswith("brine_") and k not in ("created", "step")}
    assert user == {k: v for k, v in c_attrs.items()
                    if not k.startswith("brine_") and k != "step"}
    user["edited"] = "yes \u2713"
    brine.save(tmp_path / "b", state, step=300, attrs=user)

    back = inspect(tmp_path / "b" / "ckpt-000000000300.h5")
    for k, v in user.items():
        assert back[k] == v, k
    assert back["sim_time"] == c_attrs["sim_time"]  # doubles exact through %.17g
    assert back["brine_threads"] == 1
    assert back["step"] == 300
    # and the C program resumes from the Python-written checkpoint
    out = run([particles, "--dir", "b", "--steps", "400", "--every", "100"], tmp_path)
    assert out.startswith("resumed from step 300")
