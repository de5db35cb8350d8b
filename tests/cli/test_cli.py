"""The brine command (docs/cli.md), run as a program on good, corrupt,
truncated, hostile and temporary files; and the live streaming example.

Checkpoints are written by brine.save (the Python writer of the format,
byte-compatible with the C library) with names holding quotes, backslashes
and non-ASCII characters, so the JSON output's escaping is checked by
json.loads.  BRINE_CLI, BRINE_HEAT_LIVE and BRINE_LIVE_VIEWER come from ctest.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import pickle
import shutil
import subprocess
import sys
import time
import zlib

import h5py
import numpy as np
import pytest

import brine

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "python"))
import _writer  # noqa: E402  tests/python's helpers of the format

CLI = os.environ.get("BRINE_CLI")
PYTHON = "/usr/bin/python3"

pytestmark = pytest.mark.skipif(not CLI, reason="BRINE_CLI is not set (ctest sets it)")

QUOTE = 'qu"ote'
BACKSLASH = "back\\slash"
UNICODE = "naïve_π"


def state(step: int) -> dict:
    y, x = np.mgrid[0:60, 0:70]
    return {
        "field": {"T": np.sin(x * 0.1 + step) * np.cos(y * 0.07),
                  QUOTE: np.arange(10, dtype=np.int32) * step},
        "F": np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4) * step),
        "c": np.arange(3, dtype=np.complex64) * (1 + 2j),
        "mask": np.arange(7) % 2 == 0,
        "empty": np.zeros((0, 3), np.float32),
        UNICODE: {BACKSLASH: np.full(5, step, np.uint64)},
        "step": step,
        "dt": 0.5,
        "z": 1 + 2j,
        "flag": True,
        "title": "héllo \"world\"",
    }


ATTRS = {"program": "tést \"cli\"", "version": 3, "tol": 1e-6}


def run(*args: str, check_json: bool = False, stdin=None):
    r = subprocess.run([CLI, *map(str, args)], capture_output=True, timeout=120)
    out = r.stdout.decode("utf-8")
    err = r.stderr.decode("utf-8")
    # Never a crash: a signal would be a negative status, a sanitizer report status 1 with its banner.
    assert r.returncode in (0, 1, 2), (args, r.returncode, err)
    assert "Sanitizer" not in err and "runtime error" not in err, err
    doc = json.loads(out) if check_json else None
    return r.returncode, out, err, doc


def make_run(d: pathlib.Path, steps=(1, 2, 3), prefix="ckpt") -> pathlib.Path:
    for s in steps:
        brine.save(d, state(s), step=s, prefix=prefix, attrs=ATTRS)
    return d


def ckpt(d: pathlib.Path, step: int, prefix="ckpt") -> pathlib.Path:
    return d / f"{prefix}-{step:012d}.h5"


def flip_chunk_byte(path: pathlib.Path, dataset: str = "state/field/T", chunk: int = 0) -> None:
    """Damages one stored chunk of dataset (its fletcher32 no longer holds)."""
    _writer.corrupt_chunk(path, dataset, chunk)


def truncate(path: pathlib.Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)


def make_hostile(path: pathlib.Path) -> None:
    """Replaces the pickle stream by one that calls os.system, with a CRC-32 that matches."""
    stream = b"\x80\x05cos\nsystem\n\x8c\x04true\x85R."
    with h5py.File(path, "r+", libver=("v110", "v110")) as f:
        del f["brine/pickle"]
        d = f.create_dataset("brine/pickle", data=np.frombuffer(stream, np.uint8))
        d.attrs["crc32"] = np.uint32(zlib.crc32(stream))
        d.attrs.create("buffers", data=np.array([], dtype=object), dtype=h5py.string_dtype())


def leaves(tree: dict, prefix: str = ""):
    for k, v in tree.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from leaves(v, name + "/")
        else:
            yield name, v


def assert_same_state(got: dict, want: dict) -> None:
    g, w = dict(leaves(got)), dict(leaves(want))
    assert list(g) == list(w)
    for name, wv in w.items():
        gv = g[name]
        if isinstance(wv, np.ndarray):
            assert isinstance(gv, np.ndarray), name
            assert gv.dtype == wv.dtype and gv.shape == wv.shape, name
            assert gv.flags.f_contiguous == wv.flags.f_contiguous, name
            assert gv.tobytes(order="A") == wv.tobytes(order="A"), name
        else:
            assert gv == wv and type(gv) in (type(wv), float, int, complex, bool, str), (name, gv, wv)


@pytest.fixture
def rundir(tmp_path):
    return make_run(tmp_path / "run")


# ------------------------------------------------------------------ usage


@pytest.mark.parametrize("cmd", ["ls", "info", "verify", "diff", "export", "prune"])
def test_help_and_usage(cmd):
    rc, out, _, _ = run(cmd, "--help")
    assert rc == 0 and out.startswith(f"usage: brine {cmd}") and "Exit status" in out
    rc, _, err, _ = run(cmd)  # missing operands
    assert rc == 2 and "usage: brine" in err
    rc, _, err, _ = run(cmd, "--no-such-option", "x")
    assert rc == 2


def test_top_level_help_and_unknown_command():
    rc, out, _, _ = run("--help")
    assert rc == 0 and "verify" in out and "prune" in out
    rc, _, err, _ = run("frobnicate")
    assert rc == 2 and "unknown command 'frobnicate'" in err


# ------------------------------------------------------------------ ls


def test_ls_good_temp_corrupt_truncated(rundir):
    rc, out, _, doc = run("ls", "--json", rundir, check_json=True)
    assert rc == 0 and doc["ok"] is True
    assert [c["step"] for c in doc["checkpoints"]] == [1, 2, 3]
    for c in doc["checkpoints"]:
        assert c["status"] == "ok" and c["kind"] == "checkpoint" and c["prefix"] == "ckpt"
        assert c["size"] == (rundir / c["file"]).stat().st_size
        assert c["array_bytes"] > 0 and c["stored_bytes"] > 0
        assert c["ratio"] == pytest.approx(c["array_bytes"] / c["stored_bytes"])
        assert c["created"].endswith("Z") and c["error"] is None

    # A temporary file (a writer at work, or killed) and files that are not checkpoints.
    (rundir / ".ckpt-000000000004.h5.tmp-4242").write_bytes(b"partial")
    (rundir / "notes.txt").write_text("not a checkpoint")
    (rundir / "ckpt-12.h5").write_bytes(b"wrong name")
    flip_chunk_byte(ckpt(rundir, 2))
    truncate(ckpt(rundir, 3))

    rc, out, _, doc = run("ls", "--json", rundir, check_json=True)
    by = {(c["step"], c["kind"]): c for c in doc["checkpoints"]}
    assert len(doc["checkpoints"]) == 4
    assert by[(4, "temporary")]["status"] == "incomplete"
    # Without --verify array data is not read: the flipped chunk is not seen...
    assert by[(2, "checkpoint")]["status"] == "ok"
    # ...but a truncated file fails to open.
    t = by[(3, "checkpoint")]
    assert t["status"] == "corrupt" and "ckpt-000000000003.h5" in t["error"]
    assert rc == 1 and doc["ok"] is False

    rc, out, _, doc = run("ls", "--json", "--verify", rundir, check_json=True)
    by = {(c["step"], c["kind"]): c for c in doc["checkpoints"]}
    assert by[(1, "checkpoint")]["status"] == "ok" and by[(1, "checkpoint")]["verified"] is True
    bad = by[(2, "checkpoint")]
    assert bad["status"] == "corrupt" and "field/T" in bad["error"] and "chunk" in bad["error"]
    assert rc == 1

    rc, out, _, _ = run("ls", rundir)
    lines = out.splitlines()
    assert lines[0].split() == ["STEP", "CREATED", "SIZE", "RATIO", "STATUS", "FILE"]
    assert any("incomplete" in line and ".ckpt-000000000004.h5.tmp-4242" in line for line in lines)
    assert any(line.startswith("000000000003") and "corrupt" in line for line in lines)


def test_ls_prefixes_and_missing_dir(tmp_path):
    d = tmp_path / "two"
    make_run(d, steps=(5,), prefix="a")
    make_run(d, steps=(7,), prefix="b")
    rc, _, _, doc = run("ls", "--json", d, check_json=True)
    assert rc == 0 and [(c["prefix"], c["step"]) for c in doc["checkpoints"]] == [("a", 5), ("b", 7)]
    rc, _, _, doc = run("ls", "--json", "--prefix", "b", d, check_json=True)
    assert [c["step"] for c in doc["checkpoints"]] == [7]
    rc, _, err, _ = run("ls", tmp_path / "nope")
    assert rc == 2 and "nope" in err
    rc, out, _, _ = run("ls", tmp_path / "two" / "..")
    assert rc == 0 and "no checkpoints" in out


# ------------------------------------------------------------------ info


def test_info_json_lists_every_variable(rundir):
    path = ckpt(rundir, 2)
    rc, out, _, doc = run("info", "--json", path, check_json=True)
    assert rc == 0
    assert doc["format"] == 1 and doc["step"] == 2 and doc["file"] == str(path)
    attrs = doc["attributes"]
    assert attrs["program"] == ATTRS["program"] and attrs["version"] == 3 and attrs["tol"] == 1e-6
    assert attrs["brine_format"] == 1
    want = dict(leaves(state(2)))
    got = {v["name"]: v for v in doc["variables"]}
    assert list(got) == list(want)  # names with quotes and non-ASCII come back exactly
    for name, value in want.items():
        v = got[name]
        if isinstance(value, np.ndarray):
            assert v["kind"] == "array" and v["dtype"] == value.dtype.str
            assert v["shape"] == list(value.shape) and v["bytes"] == value.nbytes
            assert v["order"] == ("F" if name == "F" else "C")
            if value.size:
                assert v["in_stream"] is False and v["stored_bytes"] > 0
                assert "fletcher32" in v["filters"] and "deflate" in v["filters"]
                assert v["chunk"] and v["ratio"] == pytest.approx(value.nbytes / v["stored_bytes"])
        elif isinstance(value, str):
            assert v["kind"] == "string" and v["bytes"] == len(value.encode())
        else:
            assert v["kind"] == "scalar" and v["in_stream"] is True and v["stored_bytes"] == 0
    assert got["dt"]["dtype"] == "<f8" and got["z"]["dtype"] == "<c16" and got["flag"]["dtype"] == "|b1"
    assert doc["array_bytes"] == sum(v.nbytes for v in want.values()
                                     if isinstance(v, np.ndarray) and v.size)

    rc, out, _, _ = run("info", path)
    assert rc == 0 and "format:      1" in out and "step:        2" in out
    assert QUOTE in out and UNICODE + "/" + BACKSLASH in out and "fletcher32" in out


def test_info_bad_files(rundir, tmp_path):
    truncate(ckpt(rundir, 3))
    rc, _, err, _ = run("info", ckpt(rundir, 3))
    assert rc == 1 and "ckpt-000000000003.h5" in err
    make_hostile(ckpt(rundir, 1))
    rc, _, err, _ = run("info", ckpt(rundir, 1))
    assert rc == 1 and "os" in err and "system" in err
    rc, _, err, _ = run("info", tmp_path / "missing.h5")
    assert rc == 2 and "missing.h5" in err
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x00" * 100)
    rc, _, err, _ = run("info", junk)
    assert rc == 1 and "junk.h5" in err


# ------------------------------------------------------------------ verify


def test_verify_good_corrupt_truncated_hostile(rundir, tmp_path):
    rc, out, _, _ = run("verify", rundir)
    assert rc == 0 and out.count(": ok") == 3
    rc, _, _, doc = run("verify", "--json", ckpt(rundir, 1), check_json=True)
    assert rc == 0 and doc["ok"] is True and doc["files"][0]["status"] == "ok"
    assert doc["files"][0]["errors"] == [] and doc["files"][0]["variables"] == len(dict(leaves(state(1))))

    flip_chunk_byte(ckpt(rundir, 2))
    rc, out, _, _ = run("verify", ckpt(rundir, 2))
    assert rc == 1 and "CORRUPT" in out and "field/T" in out and "chunk 0" in out

    # Every damaged variable is reported, not only the first.
    flip_chunk_byte(ckpt(rundir, 2), dataset="state/F")
    rc, _, _, doc = run("verify", "--json", ckpt(rundir, 2), check_json=True)
    errs = doc["files"][0]["errors"]
    assert rc == 1 and doc["ok"] is False and doc["files"][0]["status"] == "corrupt"
    assert len(errs) == 2 and "'field/T'" in errs[0] and "'F'" in errs[1]

    truncate(ckpt(rundir, 3))
    (rundir / ".ckpt-000000000009.h5.tmp-77").write_bytes(b"")
    rc, _, _, doc = run("verify", "--json", rundir, check_json=True)
    st = {pathlib.Path(f["path"]).name: f["status"] for f in doc["files"]}
    assert st == {"ckpt-000000000001.h5": "ok", "ckpt-000000000002.h5": "corrupt",
                  "ckpt-000000000003.h5": "corrupt", ".ckpt-000000000009.h5.tmp-77": "incomplete"}
    assert rc == 1

    make_hostile(ckpt(rundir, 1))
    rc, out, _, doc = run("verify", "--json", ckpt(rundir, 1), check_json=True)
    assert rc == 1 and "os" in doc["files"][0]["errors"][0]

    rc, _, _, doc = run("verify", "--json", tmp_path / "missing.h5", check_json=True)
    assert rc == 2 and doc["files"][0]["status"] == "unreadable"


def test_verify_progress_bar_only_on_a_terminal(rundir):
    import pty
    path = ckpt(rundir, 1)
    master, slave = pty.openpty()
    r = subprocess.run([CLI, "verify", str(path)], stdout=subprocess.PIPE, stderr=slave, timeout=60)
    os.close(slave)
    drawn = b""
    while True:
        try:
            piece = os.read(master, 4096)
        except OSError:  # EIO once the terminal's other side is closed and drained
            break
        if not piece:
            break
        drawn += piece
    os.close(master)
    assert r.returncode == 0 and b": ok" in r.stdout
    assert b"100.0%" in drawn and b"[###" in drawn and path.name.encode() in drawn
    # In a pipe: nothing on stderr at all.
    r = subprocess.run([CLI, "verify", str(path)], capture_output=True, timeout=60)
    assert r.returncode == 0 and r.stderr == b""


def test_verify_never_modifies(rundir):
    before = {p.name: p.read_bytes() for p in rundir.iterdir()}
    for args in (("ls", "--verify", rundir), ("info", ckpt(rundir, 1)), ("verify", rundir),
                 ("diff", ckpt(rundir, 1), ckpt(rundir, 2))):
        run(*args)
    assert {p.name: p.read_bytes() for p in rundir.iterdir()} == before


# ------------------------------------------------------------------ diff


def test_diff_same_and_single_element(tmp_path):
    a = tmp_path / "a" / "ckpt-000000000001.h5"
    b = tmp_path / "b" / "ckpt-000000000001.h5"
    s = state(1)
    brine.save(a.parent, s, step=1)
    rc, out, _, doc = run("diff", "--json", a, a, check_json=True)
    assert rc == 0 and doc["same"] is True and doc["differences"] == []
    rc, out, _, _ = run("diff", a, a)
    assert rc == 0 and "no differences" in out

    s2 = state(1)
    s2["field"]["T"][17, 23] += 0.25
    brine.save(b.parent, s2, step=1)
    rc, out, _, doc = run("diff", "--json", a, b, check_json=True)
    assert rc == 1 and doc["same"] is False
    [d] = doc["differences"]
    assert d["name"] == "field/T" and d["difference"] == "values"
    assert d["count"] == 1 and d["elements"] == 60 * 70
    assert d["max_abs"] == pytest.approx(0.25, abs=1e-12)
    old = s["field"]["T"][17, 23]
    assert d["max_rel"] == pytest.approx(0.25 / max(abs(old), abs(old + 0.25)), rel=1e-9)
    rc, out, _, _ = run("diff", a, b)
    assert rc == 1 and "values differ: field/T: 1 of 4200 elements differ" in out


def test_diff_presence_dtype_shape_and_64bit_integers(tmp_path):
    s1 = state(1)
    s2 = state(1)
    del s2["mask"]
    s2["extra"] = np.zeros(2)
    s2["c"] = s2["c"].astype(np.complex128)
    s2["field"][QUOTE] = np.arange(11, dtype=np.int32)
    s2["title"] = "other"
    s1["big"] = np.array([2**62, 2**62 + 1], np.int64)
    s2["big"] = np.array([2**62, 2**62], np.int64)  # equal as doubles, not as integers
    brine.save(tmp_path / "a", s1, step=1)
    brine.save(tmp_path / "b", s2, step=1)
    rc, out, _, doc = run("diff", "--json", ckpt(tmp_path / "a", 1), ckpt(tmp_path / "b", 1), check_json=True)
    got = {d["name"]: d for d in doc["differences"]}
    assert rc == 1
    assert got["mask"]["difference"] == "only_a" and got["extra"]["difference"] == "only_b"
    assert got["c"]["difference"] == "dtype" and got["c"]["detail"] == "<c8 vs <c16"
    assert got[f"field/{QUOTE}"]["difference"] == "shape" and got[f"field/{QUOTE}"]["detail"] == "(10,) vs (11,)"
    assert got["title"]["difference"] == "values"
    assert got["big"]["difference"] == "values" and got["big"]["count"] == 1
    assert set(got) == {"mask", "extra", "c", f"field/{QUOTE}", "title", "big"}


def test_diff_trouble(rundir, tmp_path):
    flip_chunk_byte(ckpt(rundir, 2))
    rc, _, err, _ = run("diff", ckpt(rundir, 1), ckpt(rundir, 2))
    assert rc == 2 and "field/T" in err and "ckpt-000000000002.h5" in err
    rc, _, err, _ = run("diff", ckpt(rundir, 1), tmp_path / "missing.h5")
    assert rc == 2 and "missing.h5" in err


# ------------------------------------------------------------------ export

LOADER = r"""
import hashlib, pickle, sys
with open(sys.argv[1], "rb") as f:
    s = pickle.load(f)
assert "h5py" not in sys.modules and "brine" not in sys.modules, sorted(sys.modules)
def walk(t, p=""):
    for k, v in t.items():
        if isinstance(v, dict):
            yield from walk(v, p + k + "/")
        elif hasattr(v, "dtype"):
            yield p + k, [v.dtype.str, list(v.shape), bool(v.flags.f_contiguous and v.ndim > 1 and min(v.shape) > 1),
                          bool(v.flags.writeable), hashlib.sha256(v.tobytes(order="A")).hexdigest()]
        else:
            yield p + k, [type(v).__name__, repr(v)]
import json
print(json.dumps(dict(walk(s))))
"""


def digest(tree: dict) -> dict:
    out = {}
    for name, v in leaves(tree):
        if isinstance(v, np.ndarray):
            out[name] = [v.dtype.str, list(v.shape), bool(v.flags.f_contiguous and v.ndim > 1 and min(v.shape) > 1),
                         True, hashlib.sha256(v.tobytes(order="A")).hexdigest()]
        else:
            out[name] = [type(v).__name__, repr(v)]
    return out


def test_export_pickle_loads_with_plain_pickle(rundir, tmp_path):
    src = ckpt(rundir, 3)
    out = tmp_path / "state.pkl"
    rc, _, err, _ = run("export", src, "-o", out)
    assert rc == 0, err
    ref = brine.load(src)
    with open(out, "rb") as f:
        assert_same_state(pickle.load(f), ref)
    # A Python with numpy only: isolated mode, no PYTHONPATH, neither brine nor h5py imported.
    r = subprocess.run([PYTHON, "-I", "-c", LOADER, str(out)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == digest(ref)
    # The stream is one pickle of protocol 5 with nothing after STOP.
    data = out.read_bytes()
    assert data[:2] == b"\x80\x05" and data[-1:] == b"."
    # To stdout too.
    r = subprocess.run([CLI, "export", str(src), "-o", "-"], capture_output=True, timeout=60)
    assert r.returncode == 0 and r.stdout == data


def test_export_heat2d_checkpoint_written_by_c(tmp_path):
    heat2d = os.environ.get("BRINE_HEAT2D")
    if not heat2d:
        pytest.skip("BRINE_HEAT2D is not set")
    d = tmp_path / "heat"
    subprocess.run([heat2d, "--nx", "40", "--ny", "30", "--steps", "20", "--every", "10", "--dir", str(d)],
                   check=True, capture_output=True, timeout=120)
    out = tmp_path / "h.pkl"
    assert run("export", ckpt(d, 20), "-o", out)[0] == 0
    with open(out, "rb") as f:
        assert_same_state(pickle.load(f), brine.load(ckpt(d, 20)))


def test_export_npz_loads_with_numpy(rundir, tmp_path):
    src = ckpt(rundir, 2)
    out = tmp_path / "state.npz"
    rc, _, err, _ = run("export", src, "-o", out)  # npz chosen by the suffix
    assert rc == 0, err
    ref = dict(leaves(brine.load(src)))
    with np.load(out) as z:
        assert sorted(z.files) == sorted(ref)
        for name, want in ref.items():
            got = z[name]
            if isinstance(want, np.ndarray):
                assert got.dtype == want.dtype and got.shape == want.shape, name
                assert np.array_equal(got, want), name
            else:
                assert got.shape == () and got.item() == want, name
    other = tmp_path / "explicit.zip"
    assert run("export", src, "-o", other, "--format", "npz")[0] == 0
    assert other.read_bytes() == out.read_bytes()


def test_export_bad_input_leaves_no_output(rundir, tmp_path):
    flip_chunk_byte(ckpt(rundir, 2))
    for fmt in ("pickle", "npz"):
        out = tmp_path / f"bad.{fmt}"
        rc, _, err, _ = run("export", ckpt(rundir, 2), "-o", out, "--format", fmt)
        assert rc == 1 and "field/T" in err, err
        assert not out.exists() and not list(tmp_path.glob("bad.*.tmp-*"))
    make_hostile(ckpt(rundir, 1))
    rc, _, err, _ = run("export", ckpt(rundir, 1), "-o", tmp_path / "h.pkl")
    assert rc == 1 and not (tmp_path / "h.pkl").exists()
    rc, _, err, _ = run("export", ckpt(rundir, 3), "-o", ckpt(rundir, 3))
    assert rc == 2 and "checkpoint itself" in err
    assert brine.load(ckpt(rundir, 3))["step"] == 3
    rc, _, err, _ = run("export", ckpt(rundir, 3), "-o", tmp_path / "x", "--format", "csv")
    assert rc == 2 and "csv" in err


def test_export_streams_arrays_larger_than_a_slab(tmp_path):
    """Arrays of several 16 MiB slabs, C and F order, come out exact; a damaged
    chunk in the last slab fails the export and leaves no output."""
    rng = np.random.default_rng(7)
    big = rng.integers(0, 1000, size=(3000, 1000)).astype(np.float64)  # 24 MB: two slabs
    s = {"big": big, "bigF": np.asfortranarray(big[:, :900].T.copy()), "x": 1}
    brine.save(tmp_path / "r", s, step=1)
    src = ckpt(tmp_path / "r", 1)
    for name in ("s.pkl", "s.npz"):
        rc, _, err, _ = run("export", src, "-o", tmp_path / name)
        assert rc == 0, err
    with open(tmp_path / "s.pkl", "rb") as f:
        assert_same_state(pickle.load(f), brine.load(src))
    with np.load(tmp_path / "s.npz") as z:
        assert np.array_equal(z["big"], big) and np.array_equal(z["bigF"], s["bigF"])
        assert z["bigF"].flags.f_contiguous
    with h5py.File(src, "r") as f:
        last = f["state/big"].id.get_num_chunks() - 1
    flip_chunk_byte(src, dataset="state/big", chunk=last)
    for name in ("bad.pkl", "bad.npz"):
        rc, _, err, _ = run("export", src, "-o", tmp_path / name)
        assert rc == 1 and f"chunk {last} of /state/big" in err, err
        assert not (tmp_path / name).exists()


def test_export_memory_stays_bounded(tmp_path):
    """A 160 MB array is exported with far less memory than its size."""
    if b"libasan" in subprocess.run(["ldd", CLI], capture_output=True).stdout:
        pytest.skip("sanitizer builds keep freed memory in quarantine")
    brine.save(tmp_path / "r", {"zeros": np.zeros((4000, 5000))}, step=1)
    probe = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
             "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    for out in ("z.pkl", "z.npz"):
        r = subprocess.run([PYTHON, "-c", probe, CLI, "export", str(ckpt(tmp_path / "r", 1)), "-o",
                            str(tmp_path / out)], capture_output=True, text=True, timeout=300)
        rc, maxrss_kib = map(int, r.stdout.split())
        assert rc == 0, r.stderr
        assert (tmp_path / out).stat().st_size > 160_000_000
        assert maxrss_kib < 100_000, f"export of {out} used {maxrss_kib} KiB"


# ------------------------------------------------------------------ prune


def steps_in(d: pathlib.Path) -> list:
    return sorted(int(p.name[5:17]) for p in d.glob("ckpt-*.h5"))


def test_prune_keep_last_and_keep_every(tmp_path):
    d = make_run(tmp_path / "run", steps=range(0, 11))
    (d / ".ckpt-000000000011.h5.tmp-99").write_bytes(b"x")
    rc, out, err, _ = run("prune", d, "--keep-last", "2", "--keep-every", "5")
    assert rc == 0, err
    # Multiples of 5 (0 included) are kept and do not count toward the 2 newest others.
    assert steps_in(d) == [0, 5, 8, 9, 10]
    assert "6 checkpoints deleted" in out and f"deleted {ckpt(d, 3)}" in out
    assert (d / ".ckpt-000000000011.h5.tmp-99").exists()  # a writer may be at work
    rc, out, _, _ = run("prune", d, "--keep-last", "1")
    assert rc == 0 and steps_in(d) == [10]


def test_prune_keeps_newest_that_verifies(tmp_path):
    d = make_run(tmp_path / "run", steps=range(1, 6))
    flip_chunk_byte(ckpt(d, 5))
    truncate(ckpt(d, 4))
    rc, out, err, _ = run("prune", d, "--keep-last", "1")
    assert rc == 0, err
    assert steps_in(d) == [3, 5]  # 5 is the newest, 3 the newest that verifies

    bad = make_run(tmp_path / "bad", steps=(1, 2))
    flip_chunk_byte(ckpt(bad, 1))
    truncate(ckpt(bad, 2))
    rc, _, err, _ = run("prune", bad, "--keep-last", "1")
    assert rc == 1 and "nothing was deleted" in err and "ckpt-000000000002.h5" in err
    assert steps_in(bad) == [1, 2]


def test_prune_usage(tmp_path):
    d = make_run(tmp_path / "two", steps=(1,), prefix="a")
    make_run(d, steps=(1,), prefix="b")
    rc, _, err, _ = run("prune", d, "--keep-last", "1")
    assert rc == 2 and "--prefix" in err
    rc, _, _, _ = run("prune", d, "--keep-last", "0", "--prefix", "a")
    assert rc == 2
    rc, _, _, _ = run("prune", d, "--keep-last", "x", "--prefix", "a")
    assert rc == 2
    rc, _, err, _ = run("prune", tmp_path / "none", "--keep-last", "1")
    assert rc == 2
    assert run("prune", d, "--keep-last", "1", "--prefix", "b")[0] == 0
    assert sorted(p.name for p in d.iterdir()) == ["a-000000000001.h5", "b-000000000001.h5"]


# ------------------------------------------------------------------ live streaming


def test_live_stream_matches_checkpoints(tmp_path):
    exe, viewer = os.environ.get("BRINE_HEAT_LIVE"), os.environ.get("BRINE_LIVE_VIEWER")
    if not exe or not viewer:
        pytest.skip("BRINE_HEAT_LIVE / BRINE_LIVE_VIEWER are not set")
    sock = tmp_path / "live.sock"
    dump = tmp_path / "dump"
    ckdir = tmp_path / "ckpt"
    # The viewer runs in isolated mode: numpy and the standard library only.
    v = subprocess.Popen([PYTHON, "-I", viewer, str(sock), "--dump", str(dump)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        while not sock.exists():
            assert v.poll() is None and time.time() < deadline, v.stderr.read() if v.poll() is not None else "timeout"
            time.sleep(0.05)
        r = subprocess.run([exe, "--stream", str(sock), "--stream-every", "10", "--every", "10",
                            "--steps", "40", "--dir", str(ckdir), "--nx", "33", "--ny", "21"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        out, err = v.communicate(timeout=60)
    finally:
        if v.poll() is None:
            v.kill()
    assert v.returncode == 0, err
    assert "received 4 states" in out and out.count("step ") == 4
    received = sorted(dump.glob("state-*.pkl"))
    assert [int(p.stem[6:]) for p in received] == [10, 20, 30, 40]
    for p in received:
        step = int(p.stem[6:])
        with open(p, "rb") as f:
            live = pickle.load(f)
        saved = brine.load(ckpt(ckdir, step))
        assert live["step"] == step
        assert_same_state(live, saved)
