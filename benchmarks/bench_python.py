"""One Python benchmark case per process; prints one JSON line like bench_brine.

What a Python user would write to checkpoint a numpy array:

- ``h5py``: ``create_dataset(..., compression="gzip", shuffle=True)`` (gzip
  level 4, h5py's default, with h5py's automatic chunk shape), then fsync;
  restore is ``f["field"][()]``.
- ``pickle-zlib``: ``zlib.compress(pickle.dumps(state, protocol=5), level)``,
  written and fsynced; restore is ``pickle.loads(zlib.decompress(data))``.
- ``savez``: ``numpy.savez_compressed`` then fsync; restore is ``numpy.load``.

The input is the file ``bench_brine --case gen`` wrote (the same bytes the C
cases generate), read into memory before anything is timed.  Peak memory
and the cold restore are measured as in bench_brine.c: extra memory over the
phase's starting RSS (after resetting the peak with /proc/self/clear_refs);
for a restore the restored array itself (input bytes) is subtracted, since
bench_brine restores into memory allocated beforehand.

usage: bench_python.py --case h5py|pickle-zlib|savez --input FILE --dtype <f8
       --shape 1024,2048 --data f64 --mib 16 [--level L] [--dir DIR] [--cold]
"""
import argparse
import gc
import json
import os
import pickle
import sys
import time
import zlib

import numpy as np

MIB = 1 << 20


def status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


class MemPhase:
    """Extra memory (MiB) of a phase: VmHWM at its end minus VmRSS at its start."""

    def __enter__(self):
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
        self.base = status_kib("VmRSS")
        return self

    def __exit__(self, *exc):
        self.extra_mib = (status_kib("VmHWM") - self.base) / 1024.0
        return False


def drop_caches() -> bool:
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------ methods

def h5py_save(arr, path, level):
    import h5py
    with h5py.File(path, "w") as f:
        d = f.create_dataset("field", data=arr, compression="gzip", shuffle=True)
        chunk = list(d.chunks)
    fsync_path(path)
    return chunk


def h5py_load(path):
    import h5py
    with h5py.File(path, "r") as f:
        return f["field"][()]


def pickle_save(arr, path, level):
    blob = zlib.compress(pickle.dumps({"field": arr}, protocol=5), level)
    with open(path, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    return []


def pickle_load(path):
    with open(path, "rb") as f:
        data = f.read()
    return pickle.loads(zlib.decompress(data))["field"]


def savez_save(arr, path, level):
    np.savez_compressed(path, field=arr)
    fsync_path(path)
    return []


def savez_load(path):
    with np.load(path) as z:
        return z["field"]


METHODS = {
    # name: (save, load, file name, codec label, level used)
    "h5py": (h5py_save, h5py_load, "h5py.h5", "zlib (HDF5)", lambda lvl: 4),
    "pickle-zlib": (pickle_save, pickle_load, "state.pkl.z", "zlib", lambda lvl: lvl),
    "savez": (savez_save, savez_load, "state.npz", "zlib (zipfile)", lambda lvl: 6),
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", required=True, choices=sorted(METHODS))
    ap.add_argument("--input", required=True)
    ap.add_argument("--dtype", required=True)
    ap.add_argument("--shape", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--mib", type=float, required=True)
    ap.add_argument("--level", type=int, default=1)
    ap.add_argument("--dir", default=".")
    ap.add_argument("--cold", action="store_true")
    a = ap.parse_args()

    save, load, fname, codec, level_of = METHODS[a.case]
    level = level_of(a.level)
    shape = tuple(int(x) for x in a.shape.split(","))
    arr = np.fromfile(a.input, dtype=np.dtype(a.dtype)).reshape(shape)
    nbytes = arr.nbytes
    os.makedirs(a.dir, exist_ok=True)
    path = os.path.join(a.dir, fname)
    gc.collect()

    with MemPhase() as m:
        t = time.perf_counter()
        chunk = save(arr, path, level)
        save_s = time.perf_counter() - t
    save_extra = m.extra_mib
    file_bytes = os.path.getsize(path)
    gc.collect()

    with MemPhase() as m:
        t = time.perf_counter()
        out = load(path)
        warm_s = time.perf_counter() - t
    restore_extra = m.extra_mib - nbytes / MIB
    verified = out.dtype == arr.dtype and out.shape == arr.shape and \
        np.array_equal(out.view(np.uint8), arr.view(np.uint8))
    del out
    gc.collect()

    cold_s, dropped = None, False
    if a.cold:
        dropped = drop_caches()
        t = time.perf_counter()
        out = load(path)
        cold_s = time.perf_counter() - t
        verified = verified and np.array_equal(out.view(np.uint8), arr.view(np.uint8))
        del out
    os.unlink(path)
    if not verified:
        print(f"bench_python: {a.case}: restored data differ from the saved data", file=sys.stderr)
        return 1

    mb = nbytes / 1e6
    rec = {
        "method": a.case, "codec": codec, "level": level, "threads": 1,
        "data": a.data, "dtype": a.dtype, "shape": list(shape), "chunk": chunk,
        "mib": a.mib, "bytes": nbytes, "file_bytes": file_bytes,
        "ratio": round(nbytes / file_bytes, 4),
        "save_s": save_s, "save_mbps": mb / save_s,
        "restore_warm_s": warm_s, "restore_warm_mbps": mb / warm_s,
        "restore_cold_s": cold_s, "restore_cold_mbps": (mb / cold_s) if cold_s else None,
        "save_write_s": None, "save_fsync_s": None, "restore_read_s": None,
        "save_extra_mib": round(save_extra, 1), "restore_extra_mib": round(restore_extra, 1),
        "cold": "dropped" if dropped else "not dropped", "verified": True,
    }
    print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
