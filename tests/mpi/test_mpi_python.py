"""Python loading of multi-rank checkpoints, and heat_mpi (docs/mpi.md).

The checkpoints are written by mpirun: tests/mpi/test_mpi's `write`
scenario (x[i] = step*1e6 + rank*1e3 + i/4 and the scalar `rank`, steps 1
and 2) and apps/heat_mpi, compared bit for bit with apps/heat2d.
"""

import os
import signal
import subprocess
import time

import numpy as np
import pytest

import brine

MPIEXEC = os.environ.get("BRINE_MPIEXEC", "mpirun")
TEST_MPI = os.environ.get("BRINE_TEST_MPI")
HEAT2D = os.environ.get("BRINE_HEAT2D")
HEAT_MPI = os.environ.get("BRINE_HEAT_MPI")
N = 1000


def mpirun(np_, *args, **kw):
    return subprocess.run([MPIEXEC, "--oversubscribe", "-np", str(np_), *args], check=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120, **kw)


def expected(step, rank):
    return step * 1e6 + rank * 1e3 + np.arange(N) * 0.25


@pytest.fixture(scope="module", params=[2, 4])
def run(request, tmp_path_factory):
    if not TEST_MPI:
        pytest.skip("BRINE_TEST_MPI not set")
    d = tmp_path_factory.mktemp(f"np{request.param}") / "ckpt"
    mpirun(request.param, TEST_MPI, "write", str(d))
    return d, request.param


def test_load_returns_every_rank(run):
    d, n = run
    states = brine.load(d)
    assert isinstance(states, list) and len(states) == n
    for r, s in enumerate(states):
        assert s["rank"] == r
        np.testing.assert_array_equal(s["x"], expected(2, r))
    # One checkpoint directory, and rank= selects one state.
    one = brine.load(d / "ckpt-000000000001", rank=n - 1)
    assert one["rank"] == n - 1
    np.testing.assert_array_equal(one["x"], expected(1, n - 1))
    with pytest.raises(IndexError, match=f"rank {n} is not in 0..{n - 1}"):
        brine.load(d, rank=n)


def test_open_is_lazy_per_rank(run):
    d, n = run
    with brine.open(d / "ckpt-000000000002", rank=1) as ck:
        assert ck.step == 2
        assert isinstance(ck["x"], brine.LazyArray)
        np.testing.assert_array_equal(ck["x"][10:20], expected(2, 1)[10:20])
    cks = brine.open(d)
    try:
        assert [c["rank"] for c in cks] == list(range(n))
    finally:
        for c in cks:
            c.close()


def test_list_shows_ranks(run):
    d, n = run
    infos = brine.list(d)
    assert [(i.step, i.ranks) for i in infos] == [(1, n), (2, n)]
    assert infos[1].path == str(d / "ckpt-000000000002")
    assert infos[1].size == sum(os.path.getsize(d / "ckpt-000000000002" / f"rank-{r}.h5") for r in range(n))


def test_concat(run):
    d, n = run
    whole = brine.concat(d, "x")
    np.testing.assert_array_equal(whole, np.concatenate([expected(2, r) for r in range(n)]))
    states = brine.load(d / "ckpt-000000000001")
    np.testing.assert_array_equal(brine.concat(states, "x", axis=0),
                                  np.concatenate([expected(1, r) for r in range(n)]))
    with pytest.raises(KeyError, match="rank 0: no variable 'nope'"):
        brine.concat(states, "nope")


def test_damaged_rank_file_falls_back(run, tmp_path):
    d, n = run
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(d), str(copy)], check=True)
    victim = copy / "ckpt-000000000002" / f"rank-{n - 1}.h5"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x5A
    victim.write_bytes(bytes(data))
    with pytest.raises(brine.CorruptCheckpointError, match="the manifest records"):
        brine.load(copy / "ckpt-000000000002")
    states = brine.load(copy)  # the run directory: every rank falls back to step 1
    assert [s["rank"] for s in states] == list(range(n))
    np.testing.assert_array_equal(states[0]["x"], expected(1, 0))
    # A damaged manifest: the checkpoint is not listed.
    manifest = copy / "ckpt-000000000002" / "manifest"
    manifest.write_text(manifest.read_text().replace("nranks", "nrankz"))
    assert [i.step for i in brine.list(copy)] == [1]


def test_rank_of_single_file_checkpoints_is_an_error(tmp_path):
    brine.save(tmp_path, {"x": np.arange(3.0)}, step=1)
    with pytest.raises(ValueError, match="single files"):
        brine.load(tmp_path, rank=0)
    np.testing.assert_array_equal(brine.load(tmp_path)["x"], np.arange(3.0))  # unchanged


# ---- heat_mpi ----

ARGS = ["--nx", "48", "--ny", "40", "--steps", "400"]


def descendants(pid):
    """pid's descendant processes (Linux /proc): mpirun puts its ranks in process groups of their own."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            kids = []
        found += kids
        todo += kids
    return found


def kill_job(pid):
    """SIGKILL to mpirun and every rank at once: a crash mid-run, nothing gets to clean up."""
    for p in [pid, *descendants(pid)]:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def exe_of(pid):
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return ""


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def heat2d_field(tmp_path):
    out = tmp_path / "heat2d.bin"
    subprocess.run([HEAT2D, *ARGS, "--every", "0", "--dir", str(tmp_path / "h2d"), "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL, timeout=120)
    return out.read_bytes()


@pytest.mark.skipif(not (HEAT2D and HEAT_MPI), reason="heat2d or heat_mpi not built")
def test_heat_mpi_is_bit_identical_to_heat2d(tmp_path):
    want = heat2d_field(tmp_path)
    out = tmp_path / "mpi.bin"
    mpirun(4, HEAT_MPI, *ARGS, "--every", "100", "--dir", str(tmp_path / "m"), "--out", str(out))
    assert out.read_bytes() == want
    # The last checkpoint's strips, joined, are the same field.
    field = brine.concat(tmp_path / "m", "field/T", axis=0)
    assert field.tobytes() == want


@pytest.mark.skipif(not (HEAT2D and HEAT_MPI), reason="heat2d or heat_mpi not built")
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_heat_mpi_killed_and_resumed(tmp_path, mode):
    want = heat2d_field(tmp_path)
    d = tmp_path / "m"
    extra = ["--async"] if mode == "async" else []
    cmd = [MPIEXEC, "--oversubscribe", "-np", "4", HEAT_MPI, *ARGS, "--every", "20", "--sleep-ms", "5",
           "--dir", str(d), *extra]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(i.step >= 100 for i in brine.list(d)) if d.exists() else False:
                break
            time.sleep(0.05)
        else:
            pytest.fail("heat_mpi wrote no checkpoint of step >= 100 within 60 s")
        ranks = descendants(p.pid)
        kill_job(p.pid)
    finally:
        p.wait(timeout=60)
    for r in ranks:  # gone before the restart writes to the same directory
        while alive(r):
            time.sleep(0.01)
    killed_at = max(i.step for i in brine.list(d))
    assert killed_at < 400, "the run finished before it was killed"
    out = tmp_path / "resumed.bin"
    log = mpirun(4, HEAT_MPI, *ARGS, "--every", "20", "--dir", str(d), "--out", str(out), *extra).stdout
    assert "resumed from step" in log
    assert out.read_bytes() == want


@pytest.mark.skipif(not HEAT_MPI, reason="heat_mpi not built")
def test_heat_mpi_rank_count_mismatch(tmp_path):
    d = tmp_path / "m"
    mpirun(2, HEAT_MPI, *ARGS, "--steps", "40", "--every", "20", "--dir", str(d))
    r = subprocess.run([MPIEXEC, "--oversubscribe", "-np", "4", HEAT_MPI, *ARGS, "--dir", str(d)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert r.returncode != 0
    assert "saved by 2 ranks but this run has 4" in r.stdout


@pytest.mark.skipif(not (HEAT2D and HEAT_MPI), reason="heat2d or heat_mpi not built")
def test_heat_mpi_signal_to_one_rank(tmp_path):
    """SIGUSR1 to one rank (what Slurm's --signal does): every rank saves the same step and exits 0."""
    want = heat2d_field(tmp_path)
    d = tmp_path / "m"
    cmd = [MPIEXEC, "--oversubscribe", "-np", "4", HEAT_MPI, *ARGS, "--every", "0", "--sleep-ms", "5",
           "--dir", str(d)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        ranks = []
        while len(ranks) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
            ranks = [r for r in descendants(p.pid) if exe_of(r) == "heat_mpi"]
        assert len(ranks) == 4
        # Rank 0 prints this after the collective restore: every rank has its handlers by then.
        head = ""
        while "starting fresh" not in head:
            line = p.stdout.readline()
            assert line, f"heat_mpi ended early: {head}"
            head += line
        os.kill(ranks[2], signal.SIGUSR1)
        out, _ = p.communicate(timeout=60)
        out = head + out
    finally:
        if p.poll() is None:
            kill_job(p.pid)
            p.wait()
    assert p.returncode == 0, out
    assert "signal received: stopped at step" in out
    infos = brine.list(d)
    assert len(infos) == 1 and infos[0].ranks == 4 and 0 < infos[0].step < 400
    assert [s["step"] for s in brine.load(d)] == [infos[0].step] * 4
    out2 = tmp_path / "resumed.bin"
    log = mpirun(4, HEAT_MPI, *ARGS, "--every", "0", "--dir", str(d), "--out", str(out2)).stdout
    assert f"resumed from step {infos[0].step}" in log
    assert out2.read_bytes() == want
