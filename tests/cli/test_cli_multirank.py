"""The brine command on multi-rank (MPI) checkpoints (docs/format.md, section 7;
docs/cli.md, "Multi-rank runs"): ls, verify, info, diff, export and prune on
good checkpoints, a corrupt manifest, a damaged or missing rank file and a
temporary directory.

The checkpoints are built by hand as the format's section 7 says, so that
these tests run in every build, with or without MPI: each rank's file is a
normal checkpoint written by brine.save with the checkpoint's step, moved to
<prefix>-<step>/rank-<r>.h5, and a manifest (7.2) lists their sizes and
CRC-32s.  The library's own reader of that layout (coll.c's restore) is
tested against the same layout in tests/mpi.
"""

from __future__ import annotations

import os
import pathlib
import pickle
import re
import shutil
import subprocess
import zlib

import h5py
import numpy as np
import pytest

from test_cli import CLI, assert_same_state, flip_chunk_byte, run  # the same directory's helpers

import brine

pytestmark = pytest.mark.skipif(not CLI, reason="BRINE_CLI is not set (ctest sets it)")


def rank_state(step: int, rank: int) -> dict:
    """Rank r's part of the state: its own strip of a field, different on every rank."""
    y, x = np.mgrid[0:20, 0:30]
    return {
        "field": {"T": np.sin(x * 0.1 + step + rank) * np.cos(y * 0.07)},
        "ids": np.arange(8, dtype=np.int64) + 100 * rank,
        "rank": rank,
        "step": step,
    }


def manifest_text(prefix: str, step: int, files: list) -> bytes:
    body = f"brine-manifest 1\nprefix {prefix}\nstep {step}\nnranks {len(files)}\n"
    for r, f in enumerate(files):
        data = f.read_bytes()
        body += f"rank {r} rank-{r}.h5 {len(data)} {zlib.crc32(data):08x}\n"
    raw = body.encode()
    return raw + f"checksum {zlib.crc32(raw):08x}\n".encode()


def make_multirank(run_dir: pathlib.Path, step: int, nranks: int = 3, prefix: str = "ckpt") -> pathlib.Path:
    """A committed multi-rank checkpoint of step, laid out as format section 7 says."""
    cdir = run_dir / f"{prefix}-{step:012d}"
    cdir.mkdir(parents=True)
    scratch = run_dir / ".scratch"
    files = []
    for r in range(nranks):
        brine.save(scratch, rank_state(step, r), step=step, prefix=prefix)
        f = cdir / f"rank-{r}.h5"
        os.replace(scratch / f"{prefix}-{step:012d}.h5", f)
        files.append(f)
    shutil.rmtree(scratch)
    (cdir / "manifest").write_bytes(manifest_text(prefix, step, files))
    return cdir


def make_mpi_run(d: pathlib.Path, steps=(10, 20, 30), nranks: int = 3) -> pathlib.Path:
    for s in steps:
        make_multirank(d, s, nranks)
    return d


def cdir_of(d: pathlib.Path, step: int, prefix="ckpt") -> pathlib.Path:
    return d / f"{prefix}-{step:012d}"


@pytest.fixture
def mpirun(tmp_path):
    return make_mpi_run(tmp_path / "run")


def damage_manifest(cdir: pathlib.Path) -> None:
    """One digit of a rank's size changed: the manifest's checksum no longer holds."""
    text = (cdir / "manifest").read_bytes()
    i = text.index(b"rank 1 rank-1.h5 ") + len(b"rank 1 rank-1.h5 ")
    (cdir / "manifest").write_bytes(text[:i] + (b"9" if text[i:i + 1] != b"9" else b"8") + text[i + 1:])


def flip_rank_byte(f: pathlib.Path) -> None:
    """Damages a chunk of the rank file: its size stays, its CRC-32 and a chunk's fletcher32 change."""
    flip_chunk_byte(f)


def broken_run(d: pathlib.Path) -> pathlib.Path:
    """Steps 10 good, 20 corrupt manifest, 30 a damaged rank 1, 40 no rank 2, 50 no manifest, 60 temporary."""
    make_mpi_run(d, steps=(10, 20, 30, 40, 50))
    damage_manifest(cdir_of(d, 20))
    flip_rank_byte(cdir_of(d, 30) / "rank-1.h5")
    (cdir_of(d, 40) / "rank-2.h5").unlink()
    (cdir_of(d, 50) / "manifest").unlink()
    tmp = d / ".ckpt-000000000060.tmp-4242"
    tmp.mkdir()
    shutil.copy(cdir_of(d, 10) / "rank-0.h5", tmp / "rank-0.h5")
    return d


# ------------------------------------------------------------------ ls


def test_ls_lists_multirank_checkpoints(mpirun):
    rc, out, err, _ = run("ls", mpirun)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["STEP", "CREATED", "SIZE", "RATIO", "STATUS", "FILE"]
    assert len(lines) == 4
    for line, s in zip(lines[1:], (10, 20, 30)):
        assert line.startswith(f"{s:012d}") and " ok " in line and line.endswith(f"ckpt-{s:012d}/ (3 ranks)")
    rc, _, _, doc = run("ls", "--json", "--verify", mpirun, check_json=True)
    assert rc == 0 and doc["ok"] is True
    assert [c["step"] for c in doc["checkpoints"]] == [10, 20, 30]
    for c in doc["checkpoints"]:
        cdir = cdir_of(mpirun, c["step"])
        assert c["kind"] == "multirank" and c["ranks"] == 3 and c["status"] == "ok" and c["verified"] is True
        assert c["size"] == sum((cdir / f"rank-{r}.h5").stat().st_size for r in range(3))
        assert c["path"] == str(cdir) and c["file"] == cdir.name
        # Each rank has a 20x30 float64 field and 8 int64 ids.
        assert c["array_bytes"] == 3 * (20 * 30 * 8 + 8 * 8)


def test_ls_single_files_have_one_rank(tmp_path):
    d = tmp_path / "run"
    brine.save(d, rank_state(5, 0), step=5)
    rc, _, _, doc = run("ls", "--json", d, check_json=True)
    assert rc == 0
    (c,) = doc["checkpoints"]
    assert c["kind"] == "checkpoint" and c["ranks"] == 1


def test_ls_damage_and_temporary_directory(tmp_path):
    d = broken_run(tmp_path / "run")
    rc, out, _, _ = run("ls", d)
    assert rc == 1
    text = out.splitlines()
    row = {int(l[:12]): l for l in text if l[:12].isdigit()}
    assert " ok " in row[10]
    assert " corrupt " in row[20] and row[20].endswith("ckpt-000000000020/")
    assert "checksum mismatch" in out and f"{cdir_of(d, 20)}/manifest" in out
    assert " corrupt " in row[40] and "rank 2:" in out and "rank-2.h5" in out
    assert " corrupt " in row[50] and f"{cdir_of(d, 50)}/manifest is missing" in out
    assert " incomplete " in row[60] and row[60].endswith(".ckpt-000000000060.tmp-4242")
    # Without --verify the damaged chunk of step 30's rank 1 is not read...
    assert " ok " in row[30]
    # ... with it, the CRC-32 recorded in the manifest is checked first.
    rc, _, _, doc = run("ls", "--json", "--verify", d, check_json=True)
    assert rc == 1 and doc["ok"] is False
    by = {c["step"]: c for c in doc["checkpoints"]}
    assert by[30]["status"] == "corrupt" and by[30]["error"].startswith("rank 1: ")
    assert "rank-1.h5: the manifest records" in by[30]["error"] and "CRC-32" in by[30]["error"]
    assert by[20]["ranks"] is None and by[50]["ranks"] is None
    assert by[40]["ranks"] == 3 and by[10]["ranks"] == 3
    assert by[60]["kind"] == "temporary" and by[60]["status"] == "incomplete" and by[60]["ranks"] is None
    assert by[60]["size"] == (cdir_of(d, 10) / "rank-0.h5").stat().st_size


def test_ls_ignores_a_file_named_like_a_checkpoint_directory(tmp_path):
    d = make_mpi_run(tmp_path / "run", steps=(10,))
    (d / "ckpt-000000000099").write_bytes(b"not a directory")
    rc, _, _, doc = run("ls", "--json", d, check_json=True)
    assert rc == 0 and [c["step"] for c in doc["checkpoints"]] == [10]


# ------------------------------------------------------------------ verify


def test_verify_multirank_run_and_checkpoint_directory(mpirun):
    rc, out, err, _ = run("verify", mpirun)
    assert rc == 0, err
    for s in (10, 20, 30):
        assert f"{cdir_of(mpirun, s)}: ok (3 ranks, 12 variables, " in out
    rc, out, _, _ = run("verify", str(cdir_of(mpirun, 20)) + "/")
    assert rc == 0 and ": ok (3 ranks" in out
    # A rank file is a normal checkpoint file.
    rc, out, _, _ = run("verify", cdir_of(mpirun, 20) / "rank-2.h5")
    assert rc == 0 and "rank-2.h5: ok (4 variables" in out


def test_verify_says_which_rank_failed_and_why(tmp_path):
    d = broken_run(tmp_path / "run")
    rc, out, _, doc = run("verify", "--json", d, check_json=True)
    assert rc == 1 and doc["ok"] is False
    by = {pathlib.Path(f["path"]).name: f for f in doc["files"]}
    assert by[cdir_of(d, 10).name]["status"] == "ok" and by[cdir_of(d, 10).name]["ranks"] == 3
    bad_manifest = by[cdir_of(d, 20).name]
    assert bad_manifest["status"] == "corrupt" and bad_manifest["ranks"] is None
    assert "checksum mismatch" in bad_manifest["errors"][0]
    damaged = by[cdir_of(d, 30).name]
    assert damaged["status"] == "corrupt" and len(damaged["errors"]) == 1
    assert damaged["errors"][0].startswith("rank 1: ") and "the file has" in damaged["errors"][0]
    assert damaged["variables"] == 8  # ranks 0 and 2 were verified all the same
    missing = by[cdir_of(d, 40).name]
    assert missing["errors"] == [f"rank 2: {cdir_of(d, 40)}/rank-2.h5 is missing: the manifest records it with "
                                 f"{missing_size(d)} bytes"]
    assert by[cdir_of(d, 50).name]["status"] == "corrupt"
    assert by[".ckpt-000000000060.tmp-4242"]["status"] == "incomplete"
    rc, out, _, _ = run("verify", cdir_of(d, 30))
    assert rc == 1 and f"{cdir_of(d, 30)}: CORRUPT" in out and "  rank 1: " in out


def missing_size(d: pathlib.Path) -> int:
    """The size step 40's manifest records for its missing rank 2."""
    line = [l for l in (cdir_of(d, 40) / "manifest").read_text().splitlines() if l.startswith("rank 2 ")][0]
    return int(line.split()[3])


def test_verify_a_chunk_damaged_after_the_manifest_was_written(tmp_path):
    """A rank file whose manifest entry was updated to match it still fails on its chunk checksum."""
    d = make_mpi_run(tmp_path / "run", steps=(10,))
    cdir = cdir_of(d, 10)
    flip_rank_byte(cdir / "rank-0.h5")
    (cdir / "manifest").write_bytes(manifest_text("ckpt", 10, [cdir / f"rank-{r}.h5" for r in range(3)]))
    rc, _, _, doc = run("verify", "--json", cdir, check_json=True)
    assert rc == 1
    (f,) = doc["files"]
    assert f["status"] == "corrupt" and f["errors"][0].startswith("rank 0: ") and "field/T" in f["errors"][0]


# ------------------------------------------------------------------ info


def test_info_checkpoint_directory_shows_manifest_and_a_rank(mpirun):
    cdir = cdir_of(mpirun, 20)
    sizes = [(cdir / f"rank-{r}.h5").stat().st_size for r in range(3)]
    crcs = [f"{zlib.crc32((cdir / f'rank-{r}.h5').read_bytes()):08x}" for r in range(3)]
    rc, out, err, _ = run("info", cdir)
    assert rc == 0, err
    assert f"checkpoint:  {cdir} (multi-rank)" in out and "step:        20" in out and "ranks:       3," in out
    for r in range(3):
        assert f"rank-{r}.h5" in out and crcs[r] in out
    assert f"file:        {cdir}/rank-0.h5" in out and "field/T" in out
    rc, _, _, doc = run("info", "--json", "--rank", "2", cdir, check_json=True)
    assert rc == 0
    assert doc["checkpoint"] == str(cdir) and doc["nranks"] == 3 and doc["rank"] == 2 and doc["step"] == 20
    assert [x["size"] for x in doc["ranks"]] == sizes and [x["crc32"] for x in doc["ranks"]] == crcs
    assert [x["file"] for x in doc["ranks"]] == ["rank-0.h5", "rank-1.h5", "rank-2.h5"]
    assert doc["file"] == f"{cdir}/rank-2.h5"
    names = {v["name"]: v for v in doc["variables"]}
    assert names["ids"]["shape"] == [8] and names["field/T"]["shape"] == [20, 30]
    # A rank file given directly is a normal checkpoint file.
    rc, _, _, doc = run("info", "--json", cdir / "rank-1.h5", check_json=True)
    assert rc == 0 and doc["file"] == str(cdir / "rank-1.h5") and "checkpoint" not in doc


def test_info_checkpoint_directory_errors(tmp_path):
    d = broken_run(tmp_path / "run")
    rc, _, err, _ = run("info", "--rank", "3", cdir_of(d, 10))
    assert rc == 2 and "has 3 ranks (0 to 2): there is no rank 3" in err
    rc, _, err, _ = run("info", "--rank", "-1", cdir_of(d, 10))
    assert rc == 2 and "--rank '-1' is not an integer >= 0" in err
    rc, _, err, _ = run("info", "--rank", "0", cdir_of(d, 10) / "rank-0.h5")
    assert rc == 2 and "is not a multi-rank checkpoint directory" in err
    rc, _, err, _ = run("info", cdir_of(d, 20))
    assert rc == 1 and "checksum mismatch" in err
    rc, _, err, _ = run("info", "--rank", "1", cdir_of(d, 30))
    assert rc == 1 and "rank-1.h5: the manifest records" in err
    rc, _, err, _ = run("info", "--rank", "2", cdir_of(d, 40))
    assert rc == 1 and "rank-2.h5 is missing" in err
    rc, _, err, _ = run("info", cdir_of(d, 50))
    assert rc == 1 and "manifest is missing" in err


# ------------------------------------------------------------------ diff, export


def test_diff_ranks_of_checkpoint_directories(mpirun):
    c10, c20 = cdir_of(mpirun, 10), cdir_of(mpirun, 20)
    rc, out, err, _ = run("diff", "--rank", "1", c10, c10)
    assert rc == 0, err
    rc, _, _, doc = run("diff", "--json", "--rank", "1", c10, c20, check_json=True)
    assert rc == 1
    what = {d["name"]: d["difference"] for d in doc["differences"]}
    assert what == {"field/T": "values", "step": "values"}  # rank and ids are per rank, not per step
    assert doc["a"] == f"{c10}/rank-1.h5" and doc["b"] == f"{c20}/rank-1.h5"
    # A directory's rank against a rank file: rank 0 and rank 2 differ in rank and ids.
    rc, _, _, doc = run("diff", "--json", "--rank", "0", c10, c10 / "rank-2.h5", check_json=True)
    assert rc == 1 and {d["name"] for d in doc["differences"]} == {"field/T", "ids", "rank"}
    rc, _, err, _ = run("diff", c10, c20)
    assert rc == 2 and "choose one with --rank R (0 to 2)" in err
    rc, _, err, _ = run("diff", "--rank", "0", c10 / "rank-0.h5", c20 / "rank-0.h5")
    assert rc == 2 and "neither" in err
    flip_rank_byte(c20 / "rank-1.h5")
    rc, _, err, _ = run("diff", "--rank", "1", c10, c20)
    assert rc == 2 and "rank-1.h5: the manifest records" in err


def test_export_a_rank_round_trips(mpirun, tmp_path):
    cdir = cdir_of(mpirun, 30)
    for r in range(3):
        out = tmp_path / f"r{r}.pkl"
        rc, _, err, _ = run("export", "--rank", str(r), cdir, "-o", out)
        assert rc == 0, err
        with open(out, "rb") as f:
            assert_same_state(pickle.load(f), rank_state(30, r))
    npz = tmp_path / "r1.npz"
    rc, _, err, _ = run("export", cdir, "--rank", "1", "-o", npz)
    assert rc == 0, err
    with np.load(npz) as z:
        assert np.array_equal(z["ids"], rank_state(30, 1)["ids"])
        assert z["field/T"].tobytes() == rank_state(30, 1)["field"]["T"].tobytes()
    rc, _, err, _ = run("export", cdir, "-o", tmp_path / "x.pkl")
    assert rc == 2 and "choose one with --rank R" in err and not (tmp_path / "x.pkl").exists()
    (cdir / "rank-2.h5").unlink()
    rc, _, err, _ = run("export", "--rank", "2", cdir, "-o", tmp_path / "y.pkl")
    assert rc == 1 and "rank-2.h5 is missing" in err and not (tmp_path / "y.pkl").exists()


# ------------------------------------------------------------------ prune


def dir_steps(d: pathlib.Path) -> list:
    return sorted(int(p.name[5:17]) for p in d.glob("ckpt-*") if p.is_dir())


def test_prune_multirank_keep_last_and_keep_every(tmp_path):
    d = make_mpi_run(tmp_path / "run", steps=range(0, 8), nranks=2)
    tmp = d / ".ckpt-000000000008.tmp-99"
    tmp.mkdir()
    (tmp / "rank-0.h5").write_bytes(b"being written")
    before = {s: (cdir_of(d, s) / "rank-1.h5").read_bytes() for s in range(8)}
    rc, out, err, _ = run("prune", d, "--keep-last", "2", "--keep-every", "3")
    assert rc == 0, err
    # Multiples of 3 (0 included) stay and do not count toward the 2 newest others.
    assert dir_steps(d) == [0, 3, 5, 6, 7]
    assert "3 checkpoints deleted" in out and f"deleted {cdir_of(d, 4)}" in out
    assert f"deleted {cdir_of(d, 3)}" not in out
    # What stays is untouched; the temporary directory of a writer at work too, and nothing else is left.
    for s in (0, 3, 5, 6, 7):
        assert (cdir_of(d, s) / "rank-1.h5").read_bytes() == before[s]
    assert (tmp / "rank-0.h5").read_bytes() == b"being written"
    assert sorted(p.name for p in d.iterdir() if p.name.startswith(".")) == [tmp.name]
    rc, out, _, _ = run("prune", d, "--keep-last", "1")
    assert rc == 0 and dir_steps(d) == [7] and "4 checkpoints deleted" in out
    rc, _, _, doc = run("verify", "--json", d, check_json=True)
    assert rc == 0 and [f["status"] for f in doc["files"]] == ["ok", "incomplete"]


def test_prune_multirank_keeps_newest_that_verifies(tmp_path):
    d = make_mpi_run(tmp_path / "run", steps=(1, 2, 3, 4, 5), nranks=2)
    damage_manifest_two_ranks(cdir_of(d, 5))
    flip_rank_byte(cdir_of(d, 4) / "rank-1.h5")
    (cdir_of(d, 3) / "rank-0.h5").unlink()
    rc, out, err, _ = run("prune", d, "--keep-last", "1")
    assert rc == 0, err
    assert dir_steps(d) == [2, 5]  # 5 is the newest, 2 the newest whose manifest and ranks all verify

    bad = make_mpi_run(tmp_path / "bad", steps=(1, 2), nranks=2)
    flip_rank_byte(cdir_of(bad, 1) / "rank-0.h5")
    (cdir_of(bad, 2) / "manifest").unlink()
    rc, _, err, _ = run("prune", bad, "--keep-last", "1")
    assert rc == 1 and "nothing was deleted" in err
    assert f"{cdir_of(bad, 2)}/manifest is missing" in err and f"{cdir_of(bad, 1)}/rank-0.h5" in err
    assert dir_steps(bad) == [1, 2]


def damage_manifest_two_ranks(cdir: pathlib.Path) -> None:
    text = (cdir / "manifest").read_bytes()
    (cdir / "manifest").write_bytes(text.replace(b"nranks 2", b"nranks 3"))


def test_prune_files_and_directories_each_keep_their_own(tmp_path):
    """A directory with both kinds (two runs): each kind is rotated on its own."""
    d = make_mpi_run(tmp_path / "run", steps=(1, 2, 3), nranks=2)
    for s in (1, 2, 3):
        brine.save(d, rank_state(s, 0), step=s)
    rc, out, err, _ = run("prune", d, "--keep-last", "1")
    assert rc == 0, err
    assert dir_steps(d) == [3] and sorted(p.name for p in d.glob("ckpt-*.h5")) == ["ckpt-000000000003.h5"]
    assert "4 checkpoints deleted" in out


# ------------------------------------------------------------------ a real MPI run

HEAT_MPI = os.environ.get("BRINE_HEAT_MPI")
MPIEXEC = os.environ.get("BRINE_MPIEXEC")
# Open MPI as root, more ranks than cores, no ptrace-based copies (as tests/mpi/CMakeLists.txt).
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMPI_MCA_btl": "self,vader",
           "OMPI_MCA_btl_vader_single_copy_mechanism": "none"}


@pytest.mark.skipif(not (HEAT_MPI and MPIEXEC), reason="heat_mpi is not built (no MPI)")
def test_commands_on_a_heat_mpi_run(tmp_path):
    d = tmp_path / "m"
    # Sanitizer builds: Open MPI keeps memory to the end, in plugins already unloaded when LeakSanitizer
    # reports, so leaks do not fail the run; one allocated in brine's code does, through the output.
    r = subprocess.run([MPIEXEC, "--oversubscribe", "-np", "2", HEAT_MPI, "--nx", "48", "--ny", "40", "--steps",
                        "60", "--every", "20", "--keep", "3", "--dir", str(d)],
                       capture_output=True, timeout=120, env={**os.environ, **MPI_ENV, "LSAN_OPTIONS": "exitcode=0"})
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert not re.search(r"#[0-9]+ 0x[0-9a-f]+ in brine", r.stderr.decode(errors="replace"))
    rc, _, err, doc = run("ls", "--json", "--verify", d, check_json=True)
    assert rc == 0, err
    assert [(c["step"], c["kind"], c["ranks"], c["status"]) for c in doc["checkpoints"]] == [
        (20, "multirank", 2, "ok"), (40, "multirank", 2, "ok"), (60, "multirank", 2, "ok")]
    rc, out, _, _ = run("verify", d)
    assert rc == 0 and out.count(": ok (2 ranks, ") == 3
    c60 = cdir_of(d, 60)
    rc, _, _, doc = run("info", "--json", "--rank", "1", c60, check_json=True)
    assert rc == 0 and doc["nranks"] == 2 and doc["step"] == 60
    shape = {v["name"]: v["shape"] for v in doc["variables"]}["field/T"]
    out = tmp_path / "r1.pkl"
    rc, _, err, _ = run("export", "--rank", "1", c60, "-o", out)
    assert rc == 0, err
    with open(out, "rb") as f:
        got = pickle.load(f)
    with h5py.File(c60 / "rank-1.h5", "r") as h:
        assert got["field"]["T"].tobytes() == h["state/field/T"][...].tobytes()
    assert list(got["field"]["T"].shape) == shape and got["step"] == 60
    rc, _, _, _ = run("diff", "--rank", "0", c60, c60)
    assert rc == 0
    rc, out, err, _ = run("prune", d, "--keep-last", "1")
    assert rc == 0, err
    assert dir_steps(d) == [60] and "2 checkpoints deleted" in out
