"""What Python sees of a run that Fortran saved with module brine_mpi
(test_fortran_mpi.F90 under mpirun -np 2): one directory per step, one file
per rank, each rank's arrays in the shape that rank declared, order F.
ctest passes the program in BRINE_FORTRAN_MPI; without it this test skips.
"""

from __future__ import annotations

import os
import re
import subprocess

import numpy as np
import pytest

import brine

PROGRAM = os.environ.get("BRINE_FORTRAN_MPI")
MPIEXEC = os.environ.get("BRINE_MPIEXEC") or "mpirun"
NP = 2
# Open MPI as tests/mpi/CMakeLists.txt runs it: as root, more ranks than
# cores, no ptrace single copy.  Under the sanitizers, Open MPI's own leaks do
# not fail the run (LSAN exit code 0); a leak from brine's frames does (below).
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMPI_MCA_btl": "self,vader",
           "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
           "LSAN_OPTIONS": os.environ.get("LSAN_OPTIONS", "") + ":exitcode=0"}
BRINE_LEAK = re.compile(r"#[0-9]+ 0x[0-9a-f]+ in (brine|__brine)")


def expected_x(rank: int, step: int) -> np.ndarray:
    i = np.arange(1, 3 + 2 * rank + 1)[:, None]
    j = np.arange(1, 3)[None, :]
    return (1000 * rank + i + 10 * j + step).astype(np.float64)


@pytest.mark.skipif(not PROGRAM, reason="BRINE_FORTRAN_MPI is not set (ctest sets it)")
def test_fortran_mpi_run_loads_in_python(tmp_path):
    d = tmp_path / "ckpt"
    r = subprocess.run([MPIEXEC, "--oversubscribe", "-np", str(NP), PROGRAM, str(d)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
                       env={**os.environ, **MPI_ENV})
    assert r.returncode == 0 and not BRINE_LEAK.search(r.stdout), r.stdout
    assert f"ok: {NP} ranks saved and restored" in r.stdout
    assert [(i.step, i.ranks) for i in brine.list(d)] == [(1, NP), (2, NP)]
    for step in (1, 2):
        states = brine.load(d / f"ckpt-{step:012d}")
        assert len(states) == NP
        for rank, s in enumerate(states):
            x = s["field"]["x"]
            assert x.shape == (3 + 2 * rank, 2) and x.flags.f_contiguous
            assert x.tobytes(order="F") == expected_x(rank, step).tobytes(order="F")
            np.testing.assert_array_equal(s["ids"], 100 * rank + np.arange(1, 3 + 2 * rank + 1))
            assert s["ids"].dtype == np.int32
            assert s["rank"] == rank and s["time"] == 0.5 * step
    with brine.open(d, rank=1) as ck:
        assert ck["field/x"].order == "F" and ck["field/x"].shape == (5, 2)
    whole = brine.concat(d, "field/x", axis=0)
    np.testing.assert_array_equal(whole, np.concatenate([expected_x(r, 2) for r in range(NP)]))
