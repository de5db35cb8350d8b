"""brine.Run, Run.series and Run.map, brine.diff, the HTML reprs, to_xarray and
progress bars; and that ``import brine`` needs none of pandas, xarray, tqdm.

Runs are written with brine.save (the C library's format, checked against C
by test_save.py) so that each value is known; the fixture directories of
conftest.py (written by C and by Python) check series against
fixture_values.
"""

from __future__ import annotations

import html
import math
import os
import pathlib
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest

import brine
from brine import _compare, _lazy

HERE = pathlib.Path(__file__).resolve().parent
PACKAGE = HERE.parents[1] / "bindings" / "python"


def state(step: int) -> dict:
    rng = np.random.default_rng(step)
    return {
        "field": {"T": rng.random((64, 48)),                    # incompressible: 24 KiB
                  "F": np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4) * step)},
        "step": step, "time": 0.125 * step, "label": f"step {step}",
        "energy": {"total": 10.0 - step / 3},
    }


def make_run(directory: pathlib.Path, steps=(10, 20, 30, 40)) -> pathlib.Path:
    for s in steps:
        brine.save(directory, state(s), step=s, attrs={"sim_time": s * 1.5})
    return directory


def ckpt_path(directory: pathlib.Path, step: int) -> pathlib.Path:
    return directory / f"ckpt-{step:012d}.h5"


def flip_array_chunk(path: pathlib.Path, dataset: str) -> None:
    """Flips one byte inside the stored data of a dataset's first chunk (its
    fletcher32 no longer matches; the stream and every metadata stay intact)."""
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(0)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        b = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([b[0] ^ 0xFF]))


def flip_stream(path: pathlib.Path) -> None:
    """Flips one byte of the pickle stream: its CRC-32 no longer matches."""
    with h5py.File(path, "r") as f:
        node = f["brine/pickle"]
        offset = node.id.get_offset()
    assert offset is not None, "brine/pickle is contiguous in brine's layout"
    with open(path, "r+b") as fh:
        fh.seek(offset + 20)
        b = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([b[0] ^ 0x01]))


# ------------------------------------------------------------------ Run: listing

def test_run_lists_steps_and_opens_by_step(tmp_path):
    run = brine.Run(make_run(tmp_path / "r"))
    assert run.steps == [10, 20, 30, 40] and len(run) == 4 and 30 in run and 31 not in run
    with run[20] as c:
        assert c.step == 20 and c["time"] == 2.5
    with run[-1] as c:
        assert c.step == 40
    with run[-4] as c:
        assert c.step == 10
    with pytest.raises(KeyError, match=r"no checkpoint of step 25 .*\[10, 20, 30, 40\]"):
        run[25]
    with pytest.raises(IndexError, match="4 checkpoints"):
        run[-5]
    with pytest.raises(TypeError, match="indexed by step"):
        run["20"]
    with pytest.raises(FileNotFoundError):
        brine.Run(tmp_path / "missing")


def test_run_sees_new_and_rewritten_checkpoints(tmp_path):
    d = make_run(tmp_path / "r", steps=(1, 2))
    run = brine.Run(d)
    assert [e.step for e in run.entries()] == [1, 2]
    brine.save(d, state(3), step=3)
    assert run.steps == [1, 2, 3]
    assert run.series("time").values.tolist() == [0.125, 0.25, 0.375]
    # step 2 rewritten with another time: re-read, not served from the cache
    edited = state(2)
    edited["time"] = 99.0
    ckpt_path(d, 2).unlink()
    brine.save(d, edited, step=2)
    assert run.series("time").values.tolist() == [0.125, 99.0, 0.375]


def test_table_has_status_and_scalars(tmp_path):
    pd = pytest.importorskip("pandas")
    d = make_run(tmp_path / "r")
    flip_stream(ckpt_path(d, 30))
    table = brine.Run(d).table()
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns[:6]) == ["step", "file", "size", "created", "status", "error"]
    assert {"time", "label", "energy/total"} <= set(table.columns)
    assert table["step"].tolist() == [10, 20, 30, 40]
    assert table["status"].tolist() == ["ok", "ok", "corrupt", "ok"]
    assert "CRC-32 mismatch" in table["error"][2] and str(ckpt_path(d, 30)) in table["error"][2]
    assert table["time"][1] == 2.5 and math.isnan(table["time"][2])
    assert table["size"][0] == ckpt_path(d, 10).stat().st_size
    assert table["file"][3] == str(ckpt_path(d, 40))


# ------------------------------------------------------------------ series and map

def test_series_of_scalars_matches_the_fixture(ckpt_dir):
    """C- and Python-written fixtures: exact values of several dtypes."""
    run = brine.Run(ckpt_dir)
    steps, values = run.series("time")
    assert steps.dtype == np.int64 and steps.tolist() == [1, 2, 3]
    assert values.tolist() == [0.25, 0.5, 0.75]
    big = run.series("scalars/int64")
    assert big.values.dtype == np.int64
    assert big.values.tolist() == [9000000000000000000 + s for s in (1, 2, 3)]
    assert run.series("scalars/uint64").values.tolist() == [2**64 - 1 - s for s in (1, 2, 3)]
    assert run.series("meta/title").values.tolist() == [
        f"brine fixture step {s} \u2713" for s in (1, 2, 3)]


def test_series_reads_no_array_data(tmp_path):
    """A damaged array chunk does not disturb series (scalars live in the
    verified stream); map, which reads the array, skips that checkpoint."""
    d = make_run(tmp_path / "r")
    flip_array_chunk(ckpt_path(d, 20), "state/field/T")
    run = brine.Run(d)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = run.series("energy/total")
    assert s.steps.tolist() == [10, 20, 30, 40]
    assert s.values.tolist() == [10.0 - k / 3 for k in (10, 20, 30, 40)]
    with pytest.warns(brine.SkippedCheckpointWarning, match=r"ckpt-000000000020\.h5: corrupt"):
        m = run.map(lambda c: c["field/T"].read().sum(), name="sum T")
    assert m.name == "sum T" and m.steps.tolist() == [10, 30, 40]
    assert m.values.tolist() == [state(k)["field"]["T"].sum() for k in (10, 30, 40)]
    assert [p for p, _ in m.skipped] == [str(ckpt_path(d, 20))]


def test_series_of_root_attributes(tmp_path, c_ckpt_dir):
    run = brine.Run(make_run(tmp_path / "r"))
    assert run.series("sim_time").values.tolist() == [15.0, 30.0, 45.0, 60.0]
    assert run.series("brine_threads").values.tolist() == [1, 1, 1, 1]
    threads = brine.Run(c_ckpt_dir).series("brine_threads")  # what the C library records
    assert threads.steps.tolist() == [1, 2, 3] and (threads.values >= 1).all()


def test_series_skips_damaged_checkpoints_with_a_warning(tmp_path):
    d = make_run(tmp_path / "r")
    flip_stream(ckpt_path(d, 20))
    ckpt_path(d, 40).write_bytes(b"not an HDF5 file")
    run = brine.Run(d)
    with pytest.warns(brine.SkippedCheckpointWarning) as record:
        s = run.series("time")
    assert s.steps.tolist() == [10, 30] and s.values.tolist() == [1.25, 3.75]
    message = str(record[0].message)
    assert "2 checkpoints skipped" in message
    assert "ckpt-000000000020.h5: corrupt:" in message and "CRC-32" in message
    assert "ckpt-000000000040.h5: corrupt:" in message and "no HDF5 signature" in message
    assert [e.status for e in run.entries()] == ["ok", "corrupt", "ok", "corrupt"]
    with run.newest() as c:  # the newest that verifies
        assert c.step == 30


def test_series_errors(tmp_path):
    d = make_run(tmp_path / "r", steps=(1, 2))
    brine.save(d, {**state(3), "extra": 7}, step=3)
    run = brine.Run(d)
    with pytest.raises(TypeError, match=r"'field/T' is an array variable .*run\.map"):
        run.series("field/T")
    with pytest.raises(KeyError, match=r"'nope': no checkpoint .* there are: .*'time'"):
        run.series("nope")
    with pytest.warns(brine.SkippedCheckpointWarning, match="no scalar variable or root attribute"):
        extra = run.series("extra")
    assert extra.steps.tolist() == [3] and len(extra.skipped) == 2


def test_series_contract_and_pandas(tmp_path):
    s = brine.Run(make_run(tmp_path / "r")).series("time")
    steps, values = s
    assert isinstance(s, tuple) and s.steps is steps and s.values is values
    assert repr(s) == "<brine.Series 'time': 4 steps>"
    pd = pytest.importorskip("pandas")
    p = s.to_pandas()
    assert isinstance(p, pd.Series) and p.name == "time" and p.index.name == "step"
    assert p.loc[30] == 3.75


# ------------------------------------------------------------------ diff

def test_diff_gives_each_variables_max_abs_difference(tmp_path, monkeypatch):
    a = {"f": np.zeros((50, 7)), "u8": np.array([0, 10, 255], np.uint8),
         "c": np.array([1 + 1j, 2], np.complex128), "nan": np.array([np.nan, 1.0, np.nan]),
         "F": np.asfortranarray(np.zeros((4, 6), np.float32)), "s": "same", "t": "a",
         "x": 1.5, "n": 3}
    b = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in a.items()}
    b["f"][37, 2] = -2.5          # in the 4th block of 10 rows
    b["f"][3, 1] = 1.0
    b["u8"][0] = 255              # 255, not a uint8 wrap-around
    b["c"][1] = 2 + 3j            # modulus: 3
    b["nan"][2] = 4.0             # NaN facing 4 is NaN; NaN facing NaN is equal
    b["F"][3, 0] = 0.5
    b["t"], b["x"], b["n"] = "b", 1.0, 10
    brine.save(tmp_path / "a", a, step=1)
    brine.save(tmp_path / "b", b, step=1)
    monkeypatch.setattr(_compare, "_BLOCK_BYTES", 10 * 7 * 8)  # blocks of 10 rows
    with brine.open(tmp_path / "a") as ca, brine.open(tmp_path / "b") as cb:
        d = brine.diff(ca, cb)
        via_method = ca.compare(cb)
    assert via_method.keys() == d.keys()
    assert all(via_method[k] == v or (math.isnan(v) and math.isnan(via_method[k]))
               for k, v in d.items())
    assert d["f"] == 2.5 and d["u8"] == 255.0 and d["c"] == 3.0 and d["F"] == 0.5
    assert math.isnan(d["nan"])
    assert d["s"] == 0.0 and d["t"] == math.inf and d["x"] == 0.5 and d["n"] == 7.0
    b["nan"][2] = np.nan
    brine.save(tmp_path / "b2", b, step=1)
    with brine.open(tmp_path / "a") as ca, brine.open(tmp_path / "b2") as cb:
        assert brine.diff(ca, cb)["nan"] == 0.0


def test_diff_refuses_different_variables(tmp_path):
    brine.save(tmp_path / "a", {"f": np.zeros((3, 4)), "k": 1}, step=1)
    brine.save(tmp_path / "b", {"f": np.zeros((4, 3)), "k": 1}, step=1)
    brine.save(tmp_path / "c", {"f": np.zeros((3, 4)), "j": 1}, step=1)
    with brine.open(tmp_path / "a") as a, brine.open(tmp_path / "b") as b, \
            brine.open(tmp_path / "c") as c:
        with pytest.raises(ValueError, match=r"variable 'f' is an array float64 \(3, 4\) .* "
                                             r"an array float64 \(4, 3\)"):
            brine.diff(a, b)
        with pytest.raises(ValueError, match=r"only in the first: \['k'\], only in the second: "
                                             r"\['j'\]"):
            brine.diff(a, c)


# ------------------------------------------------------------------ HTML reprs

def test_checkpoint_html_shows_metadata_and_variables(tmp_path):
    d = make_run(tmp_path / "r", steps=(5,))
    with brine.open(ckpt_path(d, 5)) as c:
        page = c._repr_html_()
        stored = c["field/T"].stored_bytes
    assert "step 5" in page and "sim_time" in page and "7.5" in page
    for name in ("field/T", "field/F", "energy/total", "label"):
        assert f"<code>{name}</code>" in page
    assert "float64</td><td>(64, 48)</td>" in page and "int32</td><td>(3, 4)</td>" in page
    assert "24.0 KiB" in page                       # 64 * 48 * 8 bytes in memory
    assert f"{64 * 48 * 8 / stored:.2f}" in page    # its compression ratio
    assert "&#x27;step 5&#x27;" in page             # a string scalar's value
    assert "(closed)" in c._repr_html_()


def test_html_escapes_every_name(tmp_path):
    hostile = "<script>alert(1)"
    d = tmp_path / "r"
    brine.save(d, {hostile: np.arange(3.0), "<b>": "<i>x</i>", "ok": {"<u>": 1}}, step=1,
               attrs={"<img>": "<script>alert(2)</script>"})
    (d / "ckpt-000000000002.h5").write_bytes(b"<script>alert(3)</script>")
    with brine.open(ckpt_path(d, 1)) as c:
        pages = [c._repr_html_()]
    pages.append(brine.Run(d)._repr_html_())
    for page in pages:
        body = page.replace("<style>", "").replace("</style>", "")
        assert "<script" not in body and "<img" not in body and "<b>" not in body.replace(
            "<b>brine", "")
    assert html.escape(hostile) in pages[0] and "&lt;script&gt;alert(2)&lt;/script&gt;" in pages[0]
    assert "ok/&lt;u&gt;" in pages[0] and "&#x27;&lt;i&gt;x&lt;/i&gt;&#x27;" in pages[0]
    assert "corrupt" in pages[1] and "no HDF5 signature" in pages[1]


def test_run_html_lists_checkpoints(tmp_path, monkeypatch):
    from brine import _display
    d = make_run(tmp_path / "r", steps=range(1, 8))
    page = brine.Run(d)._repr_html_()
    assert "7 checkpoints, steps 1 to 7, 7 verify" in page
    assert page.count("<tr>") == 8 and "<th>energy/total</th>" in page
    monkeypatch.setattr(_display, "MAX_ROWS", 4)
    page = brine.Run(d)._repr_html_()
    assert page.count("<tr>") == 1 + 2 + 1 + 2 and "&hellip;" in page
    assert "ckpt-000000000001.h5" in page and "ckpt-000000000007.h5" in page
    assert "ckpt-000000000004.h5" not in page


# ------------------------------------------------------------------ xarray

def test_to_xarray(c_ckpt_dir):
    xr = pytest.importorskip("xarray")
    with brine.open(c_ckpt_dir) as c:
        ds = c.to_xarray(dims={"fluid/pressure": ("a", "b")})
        assert isinstance(ds, xr.Dataset)
        assert ds.attrs["step"] == 3 and ds.attrs["path"] == c.path
        pressure = ds["fluid/pressure"]  # F order, (300, 1100)
        assert pressure.dims == ("a", "b") and pressure.shape == (300, 1100)
        full = c["fluid/pressure"].read()
        assert np.array_equal(pressure.isel(a=slice(5, 9), b=[3, 700]).values,
                              full[5:9][:, [3, 700]])
        assert ds["fluid/velocity"].dims == ("fluid/velocity_dim_0", "fluid/velocity_dim_1")
        assert float(ds["time"]) == 0.75 and str(ds["meta/title"].values) == c["meta/title"]
        eager = c.to_xarray(lazy=False)
        for name, value in c.variables().items():
            got = eager[name].values
            want = value.read() if isinstance(value, brine.LazyArray) else np.asarray(value)
            assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=(
                got.dtype.kind in "fc")), name
        with pytest.raises(ValueError, match=r"dims\['time'\] names 1 dimensions"):
            c.to_xarray(dims={"time": ("t",)})
        with pytest.raises(KeyError, match="nope"):
            c.to_xarray(dims={"nope": ()})
    with pytest.raises(ValueError, match="closed"):
        pressure.values  # lazy: the checkpoint must stay open


# ------------------------------------------------------------------ numpy, matplotlib, progress

def test_lazy_arrays_feed_numpy_and_matplotlib(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    d = make_run(tmp_path / "r", steps=(1,))
    want = state(1)["field"]["T"]
    with brine.open(d) as c:
        T = c["field/T"]
        assert np.array_equal(np.asarray(T), want) and np.mean(T) == want.mean()
        fig, ax = plt.subplots()
        image = ax.imshow(T)
        line, = ax.plot(T[3])
        plt.close(fig)
    assert np.array_equal(image.get_array(), want)
    assert np.array_equal(line.get_ydata(), want[3])


def test_progress_bars(tmp_path, capsys, monkeypatch):
    pytest.importorskip("tqdm")
    d = make_run(tmp_path / "r", steps=(1, 2))
    want = brine.load(d, progress=False)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(_lazy, "_BLOCK_BYTES", 8 * 48 * 5)  # blocks of 5 rows of field/T
    got = brine.load(d, progress=True)
    err = capsys.readouterr().err
    assert "ckpt-000000000002.h5" in err and "100%" in err
    assert got["field"]["T"].tobytes() == want["field"]["T"].tobytes()
    assert np.array_equal(got["field"]["F"], want["field"]["F"]) and got["field"]["F"].flags.f_contiguous
    with brine.open(d) as c:
        assert c.load(progress=True)["field"]["T"].tobytes() == want["field"]["T"].tobytes()
        assert c["field/T"].read(progress=True).tobytes() == want["field"]["T"].tobytes()
    assert "100%" in capsys.readouterr().err
    brine.Run(d).map(lambda c: c["time"], progress=True)
    assert "2/2" in capsys.readouterr().err


# ------------------------------------------------------------------ optional packages

_WITHOUT_EXTRAS = r"""
import sys, warnings
for name in ("pandas", "xarray", "tqdm", "tqdm.auto", "ipywidgets"):
    sys.modules[name] = None          # import raises ImportError
import numpy as np
import brine
d = sys.argv[1]
run = brine.Run(d)
table = run.table()
assert isinstance(table, list) and table[0]["step"] == 10 and table[1]["time"] == 2.5, table
assert table[0]["status"] == "ok" and table[0]["energy/total"] == 10.0 - 10 / 3
steps, values = run.series("time")
assert values.tolist() == [1.25, 2.5, 3.75, 5.0]
state = brine.load(d, progress=True)  # asked for, but no tqdm: no bar, no error
with brine.open(d) as c:
    assert "<table>" in c._repr_html_()
    try:
        c.to_xarray()
    except ImportError as exc:
        assert "python3-xarray" in str(exc), exc
    else:
        raise AssertionError("to_xarray without xarray")
try:
    run.series("time").to_pandas()
except ImportError as exc:
    assert "python3-pandas" in str(exc), exc
else:
    raise AssertionError("to_pandas without pandas")
print("ok")
"""


def test_import_and_run_without_pandas_xarray_tqdm(tmp_path):
    d = make_run(tmp_path / "r")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(PACKAGE)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    r = subprocess.run([sys.executable, "-c", _WITHOUT_EXTRAS, str(d)], capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
    assert r.stderr == ""
    # and when they are installed, import brine does not import them
    r = subprocess.run([sys.executable, "-c", "import sys, brine; print(sorted("
                        "{'pandas', 'xarray', 'tqdm', 'matplotlib'} & set(sys.modules)))"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


# ------------------------------------------------------------------ docs/python.md

DOC = HERE.parents[1] / "docs" / "python.md"


def test_python_md_examples_run(tmp_path, monkeypatch):
    """docs/python.md's Python blocks, in order, in one namespace, on the heat2d
    run its sh block makes."""
    import re
    heat2d = os.environ.get("BRINE_HEAT2D")
    if not heat2d:
        pytest.skip("BRINE_HEAT2D is not set (ctest sets it)")
    for name in ("pandas", "xarray", "tqdm", "matplotlib"):
        pytest.importorskip(name)
    text = DOC.read_text()
    command = re.findall(r"```sh\n(.*?)```", text, re.S)[0].split()
    assert command[0] == "build/apps/heat2d"
    r = subprocess.run([heat2d, *command[1:]], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 10
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{DOC}, python block {i + 1}", "exec"), namespace)
