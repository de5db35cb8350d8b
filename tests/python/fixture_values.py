"""The state brine_fixture (tests/tools/brine_fixture.c) writes, recomputed with numpy.

Formulas (see the top of brine_fixture.c; change both together): s is the
step; k is an element's flat index in the logical shape in C order, whatever
the array's order.  Integer arithmetic is exact, reduced modulo as written;
divisions are IEEE divisions in the element's own precision.

dtype index d in brine_dtype order: bool int8 int16 int32 int64 uint8 uint16
uint32 uint64 float32 float64 complex64 complex128.

step int64 s; time float64 s * 0.25
scalars/<dtype>: bool s % 2 == 1; int8 -100 + s % 200; int16 300 + s % 30000;
    int32 -2000000000 + s; int64 9000000000000000000 + s; uint8 200 + s % 50;
    uint16 60000 + s % 5000; uint32 4000000000 + s; uint64 2**64 - 1 - s;
    float32 f32(s) / f32(3); float64 s / 3; complex64 (f32(s) / f32(3), f32(-0.5) * f32(s));
    complex128 (s / 7, -1 / (s + 1))
meta/title "brine fixture step <s> \u2713"
arrays/<dtype>/d1 (5 + d,) C; d2 (3 + d % 3, 2 + d % 4), F when d even;
    d3 (2 + d % 2, 3, 2 + d % 3), F when d odd; values:
    bool (k + s) % 3 == 0; int8 (7k + s) % 256 - 128; int16 (31k + 1000s) % 65536 - 32768;
    int32 (2654435761k + s) % 2**32 - 2**31; int64 (0x9E3779B97F4A7C15 k + s) mod 2**64 signed;
    uint8 (k + s) % 256; uint16 (257k + s) % 65536; uint32 (2654435761k + s) % 2**32;
    uint64 (0x9E3779B97F4A7C15 k + s) mod 2**64;
    float32 k % 11 == 5 NaN, 7 -0.0, 9 -inf, else f32(k - 2s) / f32(3);
    float64 k % 13 == 5 NaN, 7 -0.0, 9 +inf, else (k - 2s) / 3;
    complex64 (f32(k + s) / f32(3), f32(k) * f32(-0.25)); complex128 (k / 7, s - k * 0.5)
fluid/velocity f64 (700, 500) C ((7919k + 104729s) % 1000003) / 1000003
fluid/pressure f32 (300, 1100) F f32((31k + s) % 65521) / f32(7)
fluid/density f64 (2, 150, 1000) C (k % 1000) * 0.5 + s
grid/params/dx 1/700, dy 1/500 (float64), nx 700, ny 500 (int32); grid/x f64 (700,) k * (1/700)
empty/e1 f64 (0,); empty/e2 int32 (4, 0) (registered F, written C); empty/e3 c128 (0, 3, 2)
edge/row_f uint16 (1, 5) registered F, written C: (k + s) % 65536
noise/bytes uint8 (3, 400000) C, incompressible: x = k * 0x9E3779B97F4A7C15 + s * 0xD1B54A32D192ED03,
    x ^= x >> 29, x *= 0xBF58476D1CE4E5B9, x ^= x >> 32 (all mod 2**64); value x >> 56
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float32", "float64", "complex64", "complex128"]
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
f32 = np.float32


def _k(shape: Tuple[int, ...]) -> np.ndarray:
    return np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)


def generic(dtype: str, shape: Tuple[int, ...], s: int) -> np.ndarray:
    """Values of arrays/<dtype>/d* (C order; the caller sets the memory order)."""
    k = _k(shape)
    if dtype == "bool":
        return (k + s) % 3 == 0
    if dtype == "int8":
        return ((7 * k + s) % 256 - 128).astype(np.int8)
    if dtype == "int16":
        return ((31 * k + 1000 * s) % 65536 - 32768).astype(np.int16)
    if dtype == "int32":
        return ((2654435761 * k + s) % 2**32 - 2**31).astype(np.int32)
    if dtype in ("int64", "uint64"):
        u = k.astype(np.uint64) * GOLDEN + np.uint64(s)
        return u.view(np.int64) if dtype == "int64" else u
    if dtype == "uint8":
        return ((k + s) % 256).astype(np.uint8)
    if dtype == "uint16":
        return ((257 * k + s) % 65536).astype(np.uint16)
    if dtype == "uint32":
        return ((2654435761 * k + s) % 2**32).astype(np.uint32)
    if dtype == "float32":
        x = (k - 2 * s).astype(np.float32) / f32(3)
        x[k % 11 == 5] = np.float32("nan")
        x[k % 11 == 7] = f32(-0.0)
        x[k % 11 == 9] = f32(-np.inf)
        return x
    if dtype == "float64":
        x = (k - 2 * s).astype(np.float64) / 3.0
        x[k % 13 == 5] = np.nan
        x[k % 13 == 7] = -0.0
        x[k % 13 == 9] = np.inf
        return x
    if dtype == "complex64":
        out = np.empty(shape, np.complex64)
        out.real = (k + s).astype(np.float32) / f32(3)
        out.imag = k.astype(np.float32) * f32(-0.25)
        return out
    if dtype == "complex128":
        out = np.empty(shape, np.complex128)
        out.real = k.astype(np.float64) / 7.0
        out.imag = float(s) - k.astype(np.float64) * 0.5
        return out
    raise ValueError(dtype)


def _order(a: np.ndarray, fortran: bool) -> np.ndarray:
    return np.asfortranarray(a) if fortran else np.ascontiguousarray(a)


def expected_state(s: int) -> Dict[str, Any]:
    """The state of step s, with arrays in their memory order."""
    scalars = {
        "bool": s % 2 == 1, "int8": -100 + s % 200, "int16": 300 + s % 30000,
        "int32": -2000000000 + s, "int64": 9000000000000000000 + s, "uint8": 200 + s % 50,
        "uint16": 60000 + s % 5000, "uint32": 4000000000 + s, "uint64": 2**64 - 1 - s,
        "float32": float(f32(s) / f32(3)), "float64": s / 3.0,
        "complex64": complex(float(f32(s) / f32(3)), float(f32(-0.5) * f32(s))),
        "complex128": complex(s / 7.0, -1.0 / (s + 1)),
    }
    arrays = {}
    for d, name in enumerate(DTYPES):
        d2, d3 = (3 + d % 3, 2 + d % 4), (2 + d % 2, 3, 2 + d % 3)
        arrays[name] = {
            "d1": generic(name, (5 + d,), s),
            "d2": _order(generic(name, d2, s), d % 2 == 0),
            "d3": _order(generic(name, d3, s), d % 2 == 1),
        }
    kv, kp, kd = _k((700, 500)), _k((300, 1100)), _k((2, 150, 1000))
    return {
        "step": s,
        "time": s * 0.25,
        "scalars": scalars,
        "meta": {"title": f"brine fixture step {s} \u2713"},
        "arrays": arrays,
        "fluid": {
            "velocity": ((7919 * kv + 104729 * s) % 1000003).astype(np.float64) / 1000003.0,
            "pressure": np.asfortranarray(((31 * kp + s) % 65521).astype(np.float32) / f32(7)),
            "density": (kd % 1000).astype(np.float64) * 0.5 + float(s),
        },
        "grid": {
            "params": {"dx": 1.0 / 700, "dy": 1.0 / 500, "nx": 700, "ny": 500},
            "x": np.arange(700).astype(np.float64) * (1.0 / 700),
        },
        "empty": {
            "e1": np.zeros((0,), np.float64),
            "e2": np.zeros((4, 0), np.int32),
            "e3": np.zeros((0, 3, 2), np.complex128),
        },
        "edge": {"row_f": ((_k((1, 5)) + s) % 65536).astype(np.uint16)},
        "noise": {"bytes": noise((3, 400000), s)},
    }


def noise(shape: Tuple[int, ...], s: int) -> np.ndarray:
    """noise/bytes: a 64-bit mixing hash of k and s, top byte (incompressible)."""
    with np.errstate(over="ignore"):
        x = _k(shape).astype(np.uint64) * GOLDEN + np.uint64(s) * np.uint64(0xD1B54A32D192ED03)
        x ^= x >> np.uint64(29)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(32)
    return (x >> np.uint64(56)).astype(np.uint8)


def walk(state: Dict[str, Any], prefix: str = ""):
    """Yields (hierarchical name, value) of every variable of a state."""
    for key, value in state.items():
        name = f"{prefix}/{key}" if prefix else key
        if isinstance(value, dict):
            yield from walk(value, name)
        else:
            yield name, value


def bits(a: np.ndarray) -> np.ndarray:
    """The raw bits of an array as unsigned integers (NaN-aware comparison)."""
    a = np.ascontiguousarray(a)
    if a.dtype.kind == "c":
        a = a.view(np.dtype(f"<f{a.dtype.itemsize // 2}"))
    return a.view(np.dtype(f"<u{a.dtype.itemsize}")) if a.dtype.itemsize > 1 else a.view(np.uint8)
