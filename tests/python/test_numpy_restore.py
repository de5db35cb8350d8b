"""C restores checkpoints whose stream CPython's pickle and numpy wrote themselves.

The streams are numpy's own array pickles (``_frombuffer`` with out-of-band or
in-band buffers, ``_reconstruct`` at protocols 2 and 4), memoized, with numpy
scalars; brine_roundtrip (BRINE_ROUNDTRIP, set by ctest) restores them into
registered memory, which must equal the arrays' bytes exactly.
"""

from __future__ import annotations

import os
import pathlib
import pickle
import subprocess
from typing import Dict, List, Tuple

import numpy as np
import pytest

import _writer

NAMES = {np.dtype(t): n for t, n in [
    ("?", "bool"), ("i1", "int8"), ("i2", "int16"), ("i4", "int32"), ("i8", "int64"),
    ("u1", "uint8"), ("u2", "uint16"), ("u4", "uint32"), ("u8", "uint64"),
    ("f4", "float32"), ("f8", "float64"), ("c8", "complex64"), ("c16", "complex128")]}


def roundtrip() -> str:
    exe = os.environ.get("BRINE_ROUNDTRIP")
    if not exe:
        pytest.skip("BRINE_ROUNDTRIP is not set (ctest sets it)")
    return exe


def arrays() -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    out = {}
    for i, dt in enumerate(NAMES):
        shape = (3, 4) if i % 2 else (7,)
        raw = rng.integers(0, 256, size=int(np.prod(shape)) * dt.itemsize, dtype=np.uint8)
        a = np.frombuffer(raw.tobytes(), dtype=dt).reshape(shape)
        if dt.kind == "b":
            a = a.view(np.uint8) % 2 == 1
        if dt.kind == "f":
            a = np.where(np.isnan(a), 0, a).astype(dt)  # payloads survive, but keep it simple
        out[NAMES[dt]] = np.asfortranarray(a) if i % 4 == 1 else np.array(a)
    return out


def scalars() -> Dict[str, np.generic]:
    return {"f32": np.float32(1.5), "i16": np.int16(-3), "b": np.bool_(True),
            "c64": np.complex64(1 - 2j), "u64": np.uint64(2 ** 64 - 1), "f64": np.float64(-0.0)}


def spec_lines(state: Dict[str, dict]) -> Tuple[List[str], bytes]:
    lines, data = [], b""
    for name, a in state["arr"].items():
        order = "F" if a.ndim > 1 and a.flags.f_contiguous and not a.flags.c_contiguous else "C"
        lines.append(f"arr/{name} array {NAMES[a.dtype]} {order} {a.ndim} "
                     + " ".join(map(str, a.shape)))
        data += a.tobytes(order="A")
    for name, v in state["sc"].items():
        lines.append(f"sc/{name} scalar {NAMES[v.dtype]} C 0")
        data += v.tobytes()
    return lines, data


def write(path: pathlib.Path, state: dict, protocol: int, out_of_band: bool) -> None:
    bufs: list = []
    stream = pickle.dumps(state, protocol=protocol,
                          buffer_callback=bufs.append if out_of_band else None)
    if out_of_band:
        # buffers go to /state/<name> in the order NEXT_BUFFER takes them: the arrays' order
        names = [f"/state/arr/{n}" for n in state["arr"]]
        assert len(bufs) == len(names)
        _writer.write_checkpoint(path, {"arr": state["arr"]}, step=1, stream=stream,
                                 buffers=names)
    else:
        _writer.write_checkpoint(path, {}, step=1, stream=stream, buffers=[])


@pytest.mark.parametrize("protocol,out_of_band", [(5, True), (5, False), (4, False), (2, False)])
def test_c_restores_numpy_pickles_bit_exactly(tmp_path: pathlib.Path, protocol: int,
                                               out_of_band: bool) -> None:
    exe = roundtrip()
    state = {"arr": arrays(), "sc": scalars()}
    d = tmp_path / "ck"
    d.mkdir()
    write(d / "ckpt-000000000001.h5", state, protocol, out_of_band)
    lines, want = spec_lines(state)
    (tmp_path / "spec").write_text("\n".join(lines) + "\n")
    r = subprocess.run([exe, "restore", str(d), str(tmp_path / "spec"), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"
    assert (tmp_path / "out").read_bytes() == want

    # The reader lists numpy scalars with their own dtype.
    r = subprocess.run([exe, "inspect", str(d / "ckpt-000000000001.h5")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    listed = {line.split()[1]: line.split()[2:4] for line in r.stdout.splitlines()
              if line.startswith("var ")}
    for name, v in scalars().items():
        assert listed[f"sc/{name}"] == ["scalar", NAMES[v.dtype]], name


def test_numpy_scalar_that_does_not_fit_is_a_mismatch(tmp_path: pathlib.Path) -> None:
    exe = roundtrip()
    d = tmp_path / "ck"
    d.mkdir()
    stream = pickle.dumps({"n": np.int64(70000)}, protocol=5)
    _writer.write_checkpoint(d / "ckpt-000000000001.h5", {}, step=1, stream=stream, buffers=[])
    (tmp_path / "spec").write_text("n scalar int16 C 0\n")
    r = subprocess.run([exe, "restore", str(d), str(tmp_path / "spec"), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 10 + 7, r.stderr  # BRINE_EMISMATCH
    assert "variable 'n' is registered as a int16 scalar, the checkpoint's value 70000 does not fit" \
        in r.stderr
