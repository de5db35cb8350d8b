"""What Python and C see of checkpoints written from Fortran (module brine).

The Fortran test programs and apps/heat_fortran write checkpoints; Python
loads them with the shapes the Fortran code declared (order 'F'), h5py sees
the reversed dimensions, and the C reader API reports order F and the
declared shape.  heat_fortran resumes bit-identically after SIGKILL and
SIGTERM, matches heat2d bit for bit, and with --c-layout shares checkpoints
with heat2d both ways.  ctest passes the programs in BRINE_* variables;
without them these tests skip.
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest

import brine

# Shapes of the rank 0..7 variables of test_fortran_kinds (kinds_case.inc).
DIMS = (2, 3, 1, 2, 3, 1, 2)
KINDS = {  # name: (numpy dtype, Python type of a scalar, pattern of element k)
    "i8": ("|i1", int, lambda k: k % 100 + 1),
    "i16": ("<i2", int, lambda k: k % 100 + 1),
    "i32": ("<i4", int, lambda k: k % 100 + 1),
    "i64": ("<i8", int, lambda k: k % 100 + 1),
    "r32": ("<f4", float, lambda k: k + 0.5),
    "r64": ("<f8", float, lambda k: k + 0.5),
    "c32": ("<c8", complex, lambda k: (k + 0.5) - 1j * k),
    "c64": ("<c16", complex, lambda k: (k + 0.5) - 1j * k),
    "lb": ("|b1", bool, lambda k: k % 3 == 1),
    "ld": ("|b1", bool, lambda k: k % 3 == 1),
}
BRINE_DTYPE = {"|b1": 0, "|i1": 1, "<i2": 2, "<i4": 3, "<i8": 4, "<f4": 9, "<f8": 10,
               "<c8": 11, "<c16": 12}
HEAT = ["--nx", "48", "--ny", "40", "--every", "100"]


def program(var: str) -> str:
    path = os.environ.get(var)
    if not path:
        pytest.skip(f"{var} is not set (ctest sets it)")
    return path


def clean_env() -> dict:
    """Without brine's own variables, which would change the runs; OpenMP threads sleep."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRINE_")}
    env.setdefault("OMP_WAIT_POLICY", "passive")
    return env


def run(cmd: list, cwd: pathlib.Path, status: int = 0) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, env=clean_env())
    assert r.returncode == status, f"{cmd}: status {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def kinds_file(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    d = tmp_path_factory.mktemp("kinds")
    run([program("BRINE_FORTRAN_KINDS"), str(d / "ckpt")], d)
    return d / "ckpt" / "ckpt-000000000001.h5"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_and_rank_has_the_declared_shape(kinds_file: pathlib.Path, kind: str) -> None:
    dtype, scalar_type, pattern = KINDS[kind]
    state = brine.load(kinds_file)
    with h5py.File(kinds_file, "r") as f:
        for rank in range(8):
            v = state[kind][f"r{rank}"]
            if rank == 0:
                assert type(v) is scalar_type and v == pattern(0), (kind, v)
                continue
            shape = DIMS[:rank]
            n = int(np.prod(shape))
            want = np.array([pattern(k) for k in range(n)], dtype=dtype).reshape(shape, order="F")
            assert v.shape == shape and v.dtype == np.dtype(dtype), (kind, rank, v.shape, v.dtype)
            assert v.flags.f_contiguous
            np.testing.assert_array_equal(v, want)
            # h5py: the bytes as they are, so the dimensions reversed (order F)
            # once two extents exceed 1 (docs/format.md, 2.3); a vector is order C.
            ds = f[f"state/{kind}/r{rank}"]
            order = "F" if rank >= 2 else "C"
            assert ds.attrs["order"] == order
            assert ds.shape == (shape[::-1] if order == "F" else shape)
            np.testing.assert_array_equal(ds[()], want.T if order == "F" else want)


def test_c_view_and_text(kinds_file: pathlib.Path) -> None:
    state = brine.load(kinds_file)
    # c_view(2, 3) registered with c_order: the C array of the same memory.
    v = state["c_view"]
    assert v.shape == (3, 2) and v.flags.c_contiguous
    np.testing.assert_array_equal(v, np.arange(6).reshape(3, 2) + 0.5)
    assert state["text"] == "Fortran écrit ceci"  # blanks trimmed, UTF-8


def test_c_reader_reports_fortran_order_and_declared_shape(kinds_file: pathlib.Path) -> None:
    r = run([program("BRINE_FORTRAN_READER_LIST"), str(kinds_file)], kinds_file.parent)
    seen = {}
    for line in r.stdout.splitlines():
        name, kind, dtype, order, ndim, *shape = line.split()
        seen[name] = (int(kind), int(dtype), order, int(ndim), tuple(map(int, shape)))
    for k, (dtype, _, _) in KINDS.items():
        for rank in range(1, 8):
            want = (1, BRINE_DTYPE[dtype], "F" if rank >= 2 else "C", rank, DIMS[:rank])
            assert seen[f"{k}/r{rank}"] == want, (k, rank, seen[f"{k}/r{rank}"])
        # Scalars are Python values: int is listed as int64, float float64, complex complex128.
        scalar = {int: 4, float: 10, complex: 12, bool: 0}[KINDS[k][1]]
        assert seen[f"{k}/r0"] == (2, scalar, "C", 0, ()), (k, seen[f"{k}/r0"])
    assert seen["c_view"] == (1, 10, "C", 2, (3, 2))
    assert seen["text"][0] == 3


def test_attributes_from_fortran(tmp_path: pathlib.Path) -> None:
    run([program("BRINE_FORTRAN_OPTIONS"), str(tmp_path / "ckpt")], tmp_path)
    with brine.open(tmp_path / "ckpt" / "run-000000000004.h5") as c:
        assert c.attrs["program"] == "test_fortran_options"
        assert c.attrs["nx"] == 3 and c.attrs["big"] == 2**40 and c.attrs["dt"] == 0.125


def wait_for_saved(p: subprocess.Popen, step: int) -> None:
    assert p.stdout is not None
    for line in p.stdout:
        if line.strip() == f"step {step} saved":
            return
    pytest.fail(f"heat_fortran ended before saving step {step}: {p.wait()} {p.stderr.read()}")


def field(path: pathlib.Path, nx: int = 48, ny: int = 40) -> np.ndarray:
    """heat2d's --out file as the Fortran array T(nx, ny)."""
    return np.fromfile(path, dtype="<f8").reshape((nx, ny), order="F")


def test_heat_fortran_killed_resumes_bit_identical(tmp_path: pathlib.Path) -> None:
    exe = program("BRINE_HEAT_FORTRAN")
    run([exe, *HEAT, "--steps", "1500", "--dir", "ref", "--out", "ref.bin"], tmp_path)

    p = subprocess.Popen([exe, *HEAT, "--steps", "1500", "--dir", "run", "--sleep-ms", "1"],
                         cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=clean_env())
    try:
        wait_for_saved(p, 200)
        p.kill()
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == -signal.SIGKILL
    assert not (tmp_path / "run" / "ckpt-000000001500.h5").exists(), "killed too late"

    # Python sees the field with its declared shape (nx, ny), order F.
    state = brine.load(tmp_path / "run")
    t = state["field"]["T"]
    assert t.shape == (48, 40) and t.flags.f_contiguous and not t.flags.c_contiguous
    assert state["params"]["nx"] == 48 and state["params"]["ny"] == 40
    assert state["step"] >= 200 and state["time"] == state["step"] * state["params"]["dt"]
    assert np.all(t[:, 0] == 1.0) and np.all(t[:, -1] == 0.0)  # the hot edge j = 1

    out = run([exe, *HEAT, "--steps", "1500", "--dir", "run", "--out", "run.bin"], tmp_path).stdout
    m = re.search(r"^resumed from step (\d+)$", out, re.M)
    assert m and int(m[1]) >= 200, out
    assert (tmp_path / "run.bin").read_bytes() == (tmp_path / "ref.bin").read_bytes()
    final = brine.load(tmp_path / "run")["field"]["T"]
    np.testing.assert_array_equal(final, field(tmp_path / "ref.bin"))


def test_heat_fortran_sigterm_checkpoints_and_resumes(tmp_path: pathlib.Path) -> None:
    exe = program("BRINE_HEAT_FORTRAN")
    run([exe, *HEAT, "--steps", "3000", "--dir", "ref", "--out", "ref.bin"], tmp_path)
    p = subprocess.Popen([exe, *HEAT, "--steps", "3000", "--dir", "run", "--sleep-ms", "1"],
                         cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=clean_env())
    try:
        wait_for_saved(p, 100)
        time.sleep(0.2)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, f"{out}\n{err}"
    m = re.search(r"^signal received: stopped at step (\d+), its checkpoint is in run", out, re.M)
    assert m, out
    stopped = int(m[1])
    assert 100 <= stopped < 3000
    assert (tmp_path / "run" / f"ckpt-{stopped:012d}.h5").is_file()
    out = run([exe, *HEAT, "--steps", "3000", "--dir", "run", "--out", "run.bin"], tmp_path).stdout
    assert f"resumed from step {stopped}" in out
    assert (tmp_path / "run.bin").read_bytes() == (tmp_path / "ref.bin").read_bytes()


def test_heat_fortran_matches_heat2d_and_shares_checkpoints(tmp_path: pathlib.Path) -> None:
    fortran, c = program("BRINE_HEAT_FORTRAN"), program("BRINE_HEAT2D")
    run([c, *HEAT, "--steps", "300", "--dir", "c", "--out", "c.bin"], tmp_path)
    run([fortran, *HEAT, "--steps", "300", "--dir", "f", "--out", "f.bin"], tmp_path)
    # Same arithmetic in the same order: the same bits; background saves change nothing.
    assert (tmp_path / "f.bin").read_bytes() == (tmp_path / "c.bin").read_bytes()
    run([fortran, *HEAT, "--steps", "300", "--dir", "fa", "--out", "fa.bin", "--async"], tmp_path)
    assert (tmp_path / "fa.bin").read_bytes() == (tmp_path / "c.bin").read_bytes()
    np.testing.assert_array_equal(brine.load(tmp_path / "fa")["field"]["T"], field(tmp_path / "c.bin"))

    # By default the layouts differ, (48, 40) order F against (40, 48) order C,
    # and brine never transposes silently: heat2d refuses, naming both.
    r = run([c, *HEAT, "--steps", "400", "--dir", "f"], tmp_path, status=1)
    assert "float64 (48, 40) order F" in r.stderr and "float64 (40, 48) order C" in r.stderr

    # --c-layout: Fortran writes what heat2d writes; either resumes the other.
    run([fortran, *HEAT, "--steps", "150", "--dir", "f2c", "--c-layout"], tmp_path)
    assert brine.load(tmp_path / "f2c")["field"]["T"].shape == (40, 48)
    out = run([c, *HEAT, "--steps", "300", "--dir", "f2c", "--out", "f2c.bin"], tmp_path).stdout
    assert "resumed from step 150" in out
    assert (tmp_path / "f2c.bin").read_bytes() == (tmp_path / "c.bin").read_bytes()

    run([c, *HEAT, "--steps", "150", "--dir", "c2f"], tmp_path)
    out = run([fortran, *HEAT, "--steps", "300", "--dir", "c2f", "--c-layout", "--out", "c2f.bin"],
              tmp_path).stdout
    assert "resumed from step 150" in out
    assert (tmp_path / "c2f.bin").read_bytes() == (tmp_path / "c.bin").read_bytes()


def test_heat_fortran_refuses_another_grid(tmp_path: pathlib.Path) -> None:
    exe = program("BRINE_HEAT_FORTRAN")
    run([exe, *HEAT, "--steps", "100", "--dir", "d"], tmp_path)
    r = run([exe, "--nx", "40", "--ny", "48", "--steps", "200", "--dir", "d"], tmp_path, status=1)
    assert "different parameters" in r.stderr and "nx=48 ny=40" in r.stderr, r.stderr
    r = run([exe, "--nx", "2"], tmp_path, status=2)
    assert "invalid value '2' for --nx" in r.stderr


def test_doc_example(tmp_path: pathlib.Path) -> None:
    """docs/fortran.md's program runs, resumes, and Python sees what the guide shows."""
    exe = program("BRINE_FORTRAN_DOC_EXAMPLE")
    first = run([exe], tmp_path).stdout
    assert "done: sum(u) = 3200.0" in first and "resumed" not in first
    # Its checkpoints: the two newest kept (keep_last = 2).
    names = sorted(p.name for p in (tmp_path / "minimal-ckpt").glob("*.h5"))
    assert names == ["ckpt-000000000090.h5", "ckpt-000000000100.h5"]
    state = brine.load(tmp_path / "minimal-ckpt")
    u = state["field"]["u"]
    assert (u.shape, u.flags.f_contiguous, state["label"]) == ((64, 32), True, "minimal example")
    assert state["step"] == 100 and u.sum() == 3200.0
    # Rows 0..35 were incremented twice (steps 1..100 cycle over 64 rows).
    np.testing.assert_array_equal(u[:, 0], [2.0] * 36 + [1.0] * 28)
    # Run again: it resumes from step 100 and has nothing left to do.
    second = run([exe], tmp_path).stdout
    assert "resumed from step 100" in second and "done: sum(u) = 3200.0" in second
