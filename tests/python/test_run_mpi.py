"""brine.Run, brine.open and brine.diff on multi-rank checkpoints (docs/mpi.md,
docs/format.md section 7).

The runs are written without MPI (_mpi_layout.save_ranks: brine.save per rank
and the manifest of section 7.2), so these tests run in every build; one test
runs apps/heat_mpi under mpirun when ctest passes BRINE_HEAT_MPI.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import brine

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _mpi_layout import save_ranks, write_manifest  # noqa: E402

NRANKS = 3
STEPS = (10, 20, 30)


def rank_state(step: int, rank: int) -> dict:
    """Rank r's part of the field: rows r*4 .. r*4+3 (rank 2 has 5 rows)."""
    rows = 5 if rank == NRANKS - 1 else 4
    field = np.arange(rows * 6, dtype=np.float64).reshape(rows, 6) + 1000.0 * rank + step
    return {"field": {"T": field}, "step": step, "time": 0.5 * step,
            "energy": float(field.sum()), "rank": rank}


def make_mpi_run(directory: pathlib.Path, steps=STEPS, nranks=NRANKS) -> pathlib.Path:
    for s in steps:
        save_ranks(directory, [rank_state(s, r) for r in range(nranks)], step=s,
                   attrs=lambda r: {"sim_time": s * 1.5, "host_rank": r})
    return directory


def cdir(directory: pathlib.Path, step: int) -> pathlib.Path:
    return directory / f"ckpt-{step:012d}"


def flip_byte(path: pathlib.Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.fixture
def run_dir(tmp_path):
    return make_mpi_run(tmp_path / "m")


# ------------------------------------------------------------------ listing and table

def test_run_lists_multirank_checkpoints(run_dir):
    run = brine.Run(run_dir)
    assert run.steps == list(STEPS) and len(run) == 3 and 20 in run
    entries = run.entries()
    assert [(e.step, e.ranks, e.status) for e in entries] == [(s, NRANKS, "ok") for s in STEPS]
    e = entries[1]
    assert e.path == str(cdir(run_dir, 20))
    assert e.size == sum(os.path.getsize(cdir(run_dir, 20) / f"rank-{r}.h5") for r in range(NRANKS))
    assert [s["rank"] for s in e.rank_scalars] == [0, 1, 2] and e.scalars["rank"] == 0
    assert [a["field/T"][0] for a in e.rank_arrays] == [(4, 6), (4, 6), (5, 6)]
    assert [a["host_rank"] for a in e.rank_attrs] == [0, 1, 2]


def test_table_has_ranks_column(run_dir, tmp_path):
    table = brine.Run(run_dir).table()
    rows = table.to_dict("records") if hasattr(table, "to_dict") else table
    assert [r["ranks"] for r in rows] == [NRANKS] * 3
    assert [r["time"] for r in rows] == [5.0, 10.0, 15.0]
    assert [r["rank"] for r in rows] == [0, 0, 0]  # rank 0's scalars
    # a run of files: ranks is 1
    brine.save(tmp_path / "f", rank_state(1, 0), step=1)
    rows = brine.Run(tmp_path / "f").table()
    rows = rows.to_dict("records") if hasattr(rows, "to_dict") else rows
    assert rows[0]["ranks"] == 1 and rows[0]["status"] == "ok"


def test_uncommitted_and_bad_manifest_are_not_listed(run_dir):
    shutil.copytree(cdir(run_dir, 30), run_dir / ".ckpt-000000000040.tmp-x")
    bad = run_dir / "ckpt-000000000050"
    shutil.copytree(cdir(run_dir, 30), bad)
    (bad / "manifest").write_text((bad / "manifest").read_text().replace("nranks", "nrankz"))
    assert brine.Run(run_dir).steps == list(STEPS)


# ------------------------------------------------------------------ opening

def test_getitem_returns_every_rank(run_dir):
    run = brine.Run(run_dir)
    with run[20] as ranks:
        assert isinstance(ranks, list) and isinstance(ranks, brine.RankCheckpoints)
        assert len(ranks) == NRANKS and ranks.step == 20 and ranks.nranks == NRANKS
        for r, c in enumerate(ranks):
            assert c.step == 20 and c["rank"] == r
            np.testing.assert_array_equal(c["field/T"][1:3], rank_state(20, r)["field"]["T"][1:3])
        html = ranks._repr_html_()
        assert "3 ranks" in html and "rank-2.h5" in html and "(5, 6)" in html
    assert all(c.closed for c in ranks)
    with run[-1] as newest:
        assert newest.step == 30
    with run.open(10, rank=2) as one:
        assert one.step == 10 and one["rank"] == 2
    with pytest.raises(IndexError, match=r"rank 3 is not in 0..2"):
        run.open(10, rank=3)
    with run.newest() as good:
        assert [c["rank"] for c in good] == [0, 1, 2] and good.step == 30
    with run.newest(rank=1) as good1:
        assert good1.step == 30 and good1["rank"] == 1
    # brine.open of a checkpoint directory gives the same kind of list
    with brine.open(cdir(run_dir, 10)) as ranks:
        assert isinstance(ranks, brine.RankCheckpoints) and [c["rank"] for c in ranks] == [0, 1, 2]


def test_open_on_a_file_run_with_rank(tmp_path):
    brine.save(tmp_path, rank_state(1, 0), step=1)
    run = brine.Run(tmp_path)
    with run.open(1, rank=0) as c:
        assert c.step == 1
    with pytest.raises(IndexError, match="single-file checkpoint"):
        run.open(1, rank=1)


# ------------------------------------------------------------------ series and map

def test_series_same_on_every_rank_takes_rank0(run_dir):
    run = brine.Run(run_dir)
    steps, time = run.series("time")
    assert steps.tolist() == list(STEPS) and time.tolist() == [5.0, 10.0, 15.0]
    assert run.series("sim_time").values.tolist() == [15.0, 30.0, 45.0]  # a root attribute


def test_series_differing_ranks_need_rank_or_reduce(run_dir):
    run = brine.Run(run_dir)
    with pytest.raises(ValueError, match=r"'energy' differs between the ranks of .*ckpt-000000000010"):
        run.series("energy")
    per_rank = [[rank_state(s, r)["energy"] for r in range(NRANKS)] for s in STEPS]
    assert run.series("energy", rank=1).values.tolist() == [p[1] for p in per_rank]
    assert run.series("energy", reduce="sum").values.tolist() == [sum(p) for p in per_rank]
    assert run.series("energy", reduce="max").values.tolist() == [max(p) for p in per_rank]
    assert run.series("rank", reduce="mean").values.tolist() == [1.0] * 3
    spread = run.series("energy", reduce=lambda v: max(v) - min(v))
    assert spread.values.tolist() == [max(p) - min(p) for p in per_rank]
    assert run.series("host_rank", rank=2).values.tolist() == [2, 2, 2]  # per-rank attribute
    with pytest.raises(ValueError, match="not both"):
        run.series("energy", rank=0, reduce="sum")
    with pytest.raises(ValueError, match=r"reduce='median': not one of"):
        run.series("energy", reduce="median")
    with pytest.raises(IndexError, match="rank 5 is not in 0..2"):
        run.series("time", rank=5)
    with pytest.raises(TypeError, match="array variable"):
        run.series("field/T")


def test_map_gets_the_rank_list(run_dir):
    run = brine.Run(run_dir)
    total = run.map(lambda ranks: sum(float(c["field/T"].read().sum()) for c in ranks), name="total")
    want = [sum(rank_state(s, r)["field"]["T"].sum() for r in range(NRANKS)) for s in STEPS]
    assert total.steps.tolist() == list(STEPS) and total.values.tolist() == want
    rows = run.map(lambda c: c["field/T"].shape[0], rank=2)
    assert rows.values.tolist() == [5, 5, 5]
    # the same as joining the ranks' strips with brine.concat
    whole = brine.concat(cdir(run_dir, 30), "field/T")
    assert whole.shape == (13, 6) and whole.sum() == want[-1]


# ------------------------------------------------------------------ damage

def test_corrupt_rank_file_is_listed_and_skipped(run_dir):
    flip_byte(cdir(run_dir, 20) / "rank-1.h5")
    run = brine.Run(run_dir)
    entries = run.entries()
    bad = entries[1]
    assert (bad.step, bad.status, bad.ranks) == (20, "corrupt", NRANKS)
    assert "rank-1.h5" in bad.error and "the manifest records" in bad.error
    with pytest.warns(brine.SkippedCheckpointWarning, match=r"ckpt-000000000020: corrupt"):
        steps, _ = run.series("time")
    assert steps.tolist() == [10, 30]
    with pytest.warns(brine.SkippedCheckpointWarning, match="1 checkpoints skipped"):
        assert run.map(lambda ranks: len(ranks)).steps.tolist() == [10, 30]
    with pytest.raises(brine.CorruptCheckpointError, match="the manifest records"):
        run[20]
    page = run._repr_html_()
    assert "3 checkpoints, steps 10 to 30, 2 verify" in page and "3 multi-rank" in page
    assert '<td class="bad"' in page and "<th>ranks</th>" in page


def test_rank_file_of_another_step_is_corrupt(run_dir, tmp_path):
    """A rank file that verifies alone but belongs to another step (copied in,
    manifest rewritten to match it): a mismatch, listed and skipped."""
    victim = cdir(run_dir, 20)
    shutil.copy(cdir(run_dir, 10) / "rank-2.h5", victim / "rank-2.h5")
    write_manifest(victim, "ckpt", 20, NRANKS)
    run = brine.Run(run_dir)
    e = run.entries()[1]
    assert e.status == "corrupt"
    assert "rank-2.h5: root attribute 'step' is 10, but the manifest says step 20" in e.error
    with pytest.warns(brine.SkippedCheckpointWarning):
        assert run.series("time").steps.tolist() == [10, 30]
    with pytest.raises(brine.CorruptCheckpointError, match="manifest says step 20"):
        run.open(20, rank=2)
    with pytest.raises(brine.CorruptCheckpointError, match="manifest says step 20"):
        brine.open(victim)


def test_missing_rank_file_is_corrupt_and_a_removed_checkpoint_is_gone(run_dir):
    (cdir(run_dir, 20) / "rank-2.h5").unlink()
    run = brine.Run(run_dir)
    e = run.entries()[1]
    assert (e.step, e.status, e.ranks) == (20, "corrupt", NRANKS)
    assert "rank-2.h5: missing" in e.error
    shutil.rmtree(cdir(run_dir, 30))  # rotated away: no longer listed
    assert [x.step for x in run.entries()] == [10, 20]


def test_newest_falls_back_past_a_damaged_checkpoint(run_dir):
    flip_byte(cdir(run_dir, 30) / "rank-0.h5")
    with brine.Run(run_dir).newest() as ranks:
        assert ranks.step == 20


def test_rewritten_checkpoint_is_examined_again(run_dir):
    run = brine.Run(run_dir)
    assert run.entries()[0].status == "ok"
    flip_byte(cdir(run_dir, 10) / "rank-0.h5")
    assert run.entries()[0].status == "corrupt"


# ------------------------------------------------------------------ diff

def test_diff_rank_by_rank(tmp_path):
    a = make_mpi_run(tmp_path / "a", steps=(10,))
    states = [rank_state(10, r) for r in range(NRANKS)]
    states[1]["field"]["T"][2, 3] += 0.25
    states[2]["field"]["T"][0, 0] -= 4.0
    b = tmp_path / "b"
    save_ranks(b, states, step=10)
    with brine.open(cdir(a, 10)) as x, brine.open(cdir(b, 10)) as y:
        d = brine.diff(x, y)
        assert d["field/T"] == 4.0 and d["time"] == 0.0 and d["rank"] == 0.0
        per = brine.diff(x, y, by_rank=True)
        assert [p["field/T"] for p in per] == [0.0, 0.25, 4.0]
        with pytest.raises(ValueError, match="cannot compare the single checkpoint"):
            brine.diff(x[0], y)


def test_diff_refuses_different_rank_counts_and_shapes(tmp_path):
    a = make_mpi_run(tmp_path / "a", steps=(10,))
    b = make_mpi_run(tmp_path / "b", steps=(10,), nranks=2)
    with brine.open(cdir(a, 10)) as x, brine.open(cdir(b, 10)) as y:
        with pytest.raises(ValueError, match=r"has 3 ranks but .* has 2: a multi-rank diff "
                                             r"compares rank by rank"):
            brine.diff(x, y)
    c = tmp_path / "c"
    save_ranks(c, [rank_state(10, 2), rank_state(10, 1), rank_state(10, 0)], step=10)
    with brine.open(cdir(a, 10)) as x, brine.open(cdir(c, 10)) as z:
        with pytest.raises(ValueError, match=r"rank 0: variable 'field/T' is an array float64 "
                                             r"\(4, 6\) in .* but an array float64 \(5, 6\)"):
            brine.diff(x, z)


# ------------------------------------------------------------------ a real heat_mpi run

HEAT_MPI = os.environ.get("BRINE_HEAT_MPI")
MPIEXEC = os.environ.get("BRINE_MPIEXEC", "mpirun")
# As tests/mpi/CMakeLists.txt: Open MPI as root, more ranks than cores, no
# ptrace single copy; under the sanitizers Open MPI's own leaks do not fail
# the run (LSan exit code 0), a leak reported in brine's frames does.
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMPI_MCA_btl": "self,vader",
           "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
           "LSAN_OPTIONS": os.environ.get("LSAN_OPTIONS", "") + ":exitcode=0"}
BRINE_LEAK = re.compile(r"#[0-9]+ 0x[0-9a-f]+ in brine")


@pytest.mark.skipif(not HEAT_MPI, reason="BRINE_HEAT_MPI not set (heat_mpi not built)")
def test_run_of_heat_mpi(tmp_path):
    d = tmp_path / "m"
    r = subprocess.run([MPIEXEC, "--oversubscribe", "-np", "2", HEAT_MPI, "--nx", "32", "--ny",
                        "24", "--steps", "60", "--every", "20", "--keep", "0", "--dir", str(d)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
                       env={**os.environ, **MPI_ENV})
    assert r.returncode == 0 and not BRINE_LEAK.search(r.stdout), r.stdout
    run = brine.Run(d)
    entries = run.entries()
    assert [(e.step, e.ranks, e.status) for e in entries] == [(20, 2, "ok"), (40, 2, "ok"),
                                                               (60, 2, "ok")]
    steps, _ = run.series("step")
    assert steps.tolist() == [20, 40, 60]
    means = run.map(lambda ranks: np.concatenate([c["field/T"].read() for c in ranks]).mean())
    for step, mean in zip(means.steps, means.values):
        assert mean == brine.concat(d / f"ckpt-{step:012d}", "field/T").mean()
    with run[60] as ranks:
        assert sum(c["field/T"].shape[0] for c in ranks) == 24
        d60 = brine.diff(ranks, ranks)
        assert d60["field/T"] == 0.0
