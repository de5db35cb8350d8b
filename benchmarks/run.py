#!/usr/bin/python3
"""brine's benchmark suite driver (docs/performance.md).

Runs every case in a fresh process -- the C cases with bench_brine (brine
through its public API, how long brine_save_async blocks the caller, HDF5's
own filter pipeline, memcpy, write+fsync), the
Python ones with bench_python.py (h5py, pickle+zlib, numpy.savez_compressed)
-- then writes results.json and results.csv, prints one table with
throughputs relative to the h5py baseline and the targets of issue 3, and
draws a chart.

Run it with /usr/bin/python3 (Debian's, with numpy, h5py and matplotlib).
Usually through scripts/run-benchmarks.sh, which builds first.

    benchmarks/run.py --quick                  # 16/64/256 MiB f64, 64 MiB others
    benchmarks/run.py --scale 4                # 64/256/1024 MiB f64, 256 MiB others
    benchmarks/run.py --methods brine,h5py --data f64
    benchmarks/run.py --methods async --data f64 --scale 4 --heat2d   # issue 6's targets
"""
import argparse
import csv
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = sys.executable

# (data, MiB at scale 1)
DATASETS = [("f64", 16), ("f64", 64), ("f64", 256), ("f32", 64), ("i64", 64), ("rand", 64)]
DATA_LABEL = {"f64": "float64 field", "f32": "float32 field", "i64": "int64 index",
              "rand": "random bytes"}
# brine codec -> levels
BRINE_LEVELS = {"zlib": [1, 6], "libdeflate": [1, 6], "isal": [1, 3], "none": [0]}
METHOD_GROUPS = ["limits", "brine", "async", "hdf5", "h5py", "pickle", "savez"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_json(cmd, timeout):
    """Runs cmd; returns its last stdout line parsed as JSON (raises on failure)."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    return json.loads(lines[-1])


def label(r) -> str:
    m = r["method"]
    if m == "brine":
        c = r["codec"]
        lvl = "" if c == "none" else f"-{r['level']}"
        return f"brine {c}{lvl} t{r['threads']}"
    if m == "brine-async":
        return "brine_save_async (blocked)"
    if m == "hdf5-c":
        return f"HDF5 C deflate-{r['level']}"
    if m == "h5py":
        return "h5py gzip-4+shuffle"
    if m == "pickle-zlib":
        return f"pickle5+zlib-{r['level']}"
    if m == "savez":
        return "numpy savez_compressed"
    return m


# ------------------------------------------------------------- machine info

def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info(data_dir: str, bench: str):
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": os.cpu_count(),
        "nproc_cmd": sh(["nproc"]),
        "cpu": cpu,
        "mem_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "df": sh(["df", "-T", data_dir]),
        "python": platform.python_version(),
    }
    try:
        with open(os.path.join(os.path.dirname(os.path.dirname(bench)), "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("CMAKE_BUILD_TYPE:"):
                    info["build_type"] = line.split("=", 1)[1].strip()
                elif line.startswith("CMAKE_C_COMPILER:"):
                    info["cc"] = line.split("=", 1)[1].strip()
    except OSError:
        pass
    with open("/proc/loadavg") as f:
        info["loadavg_start"] = f.read().split()[:3]
    info["omp_env"] = {k: v for k, v in os.environ.items() if k.startswith(("OMP_", "GOMP_"))}
    try:
        info.update(run_json([bench, "--case", "codecs"], 60))
    except Exception as e:  # noqa: BLE001 - informational only
        info["codecs_error"] = str(e)
    try:
        import h5py
        import numpy
        info["numpy"] = numpy.__version__
        info["h5py"] = h5py.__version__
        info["h5py_hdf5"] = h5py.version.hdf5_version
    except ImportError:
        pass
    import zlib
    info["python_zlib"] = zlib.ZLIB_RUNTIME_VERSION
    return info


# ------------------------------------------------------------------ the plan

def plan(args, codecs):
    sel_methods = set(args.methods.split(",")) if args.methods else set(METHOD_GROUPS)
    sel_data = set(args.data.split(",")) if args.data else None
    threads = [int(t) for t in args.threads.split(",")]
    cases = []
    for data, mib in DATASETS:
        if sel_data and data not in sel_data:
            continue
        mib = mib * args.scale
        c = []
        if "limits" in sel_methods:
            c.append(("c", {"case": "memcpy"}))
            c.append(("c", {"case": "raw"}))
        if "brine" in sel_methods:
            for codec, levels in BRINE_LEVELS.items():
                if not codecs.get(codec):
                    continue
                for lvl in levels:
                    for t in threads:
                        c.append(("c", {"case": "brine", "codec": codec, "level": lvl, "threads": t}))
        if "async" in sel_methods and data == "f64":
            # The time the caller is blocked (the copy into staging memory) does
            # not depend on the codec; the background save uses the default one.
            c.append(("c", {"case": "async", "codec": "default", "level": 1,
                            "threads": max(threads)}))
        if "hdf5" in sel_methods:
            for lvl in (1, 6):
                c.append(("c", {"case": "hdf5", "level": lvl}))
        if "h5py" in sel_methods:
            c.append(("py", {"case": "h5py"}))
        if "pickle" in sel_methods:
            for lvl in (1, 6):
                c.append(("py", {"case": "pickle-zlib", "level": lvl}))
        if "savez" in sel_methods:
            c.append(("py", {"case": "savez"}))
        cases.append((data, mib, c))
    return cases


def cpu_jiffies():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v) - v[3] - v[4], sum(v)


def busy_fraction(seconds=0.5):
    b0, t0 = cpu_jiffies()
    time.sleep(seconds)
    b1, t1 = cpu_jiffies()
    return (b1 - b0) / max(1, t1 - t0)


def wait_idle(limit_s, threshold=0.10):
    """Waits (up to limit_s) until other processes use < threshold of the CPUs; returns seconds waited."""
    start = time.monotonic()
    while busy_fraction() >= threshold and time.monotonic() - start < limit_s:
        time.sleep(1.5)
    return round(time.monotonic() - start, 1)


def run_measured(cmd, timeout):
    """run_json plus how much CPU other processes used meanwhile (fraction of all CPUs)."""
    tick = os.sysconf("SC_CLK_TCK")
    ncpu = os.cpu_count() or 1
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    b0, _ = cpu_jiffies()
    t0 = time.monotonic()
    r = run_json(cmd, timeout)
    wall = time.monotonic() - t0
    b1, _ = cpu_jiffies()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    others = max(0.0, (b1 - b0) / tick - own) / (wall * ncpu)
    r["wall_s"] = round(wall, 2)
    r["others_cpu"] = round(others, 3)
    return r


def best_of(runs):
    """Per metric, the best of repeated runs (the least disturbed); the rest from the first."""
    if runs[0]["method"] == "brine-async":
        # Its ratios belong together: the whole run with the shortest blocked time.
        r = dict(min(runs, key=lambda x: x["blocked_vs_memcpy"]))
        r["others_cpu"] = max(x["others_cpu"] for x in runs)
        r["wall_s"] = round(sum(x["wall_s"] for x in runs), 2)
        r["reps"] = len(runs)
        return r
    r = dict(runs[0])
    for key in ("save", "restore_warm", "restore_cold"):
        ok = [x for x in runs if x.get(f"{key}_mbps")]
        if ok:
            b = max(ok, key=lambda x: x[f"{key}_mbps"])
            r[f"{key}_s"], r[f"{key}_mbps"] = b[f"{key}_s"], b[f"{key}_mbps"]
            if key == "save":
                r["save_write_s"], r["save_fsync_s"] = b["save_write_s"], b["save_fsync_s"]
    r["others_cpu"] = max(x["others_cpu"] for x in runs)
    r["wall_s"] = round(sum(x["wall_s"] for x in runs), 2)
    r["reps"] = len(runs)
    return r


def run_cases(args, bench, cases):
    results = []
    data_dir = args.data_dir
    os.makedirs(data_dir, exist_ok=True)
    case_dir = os.path.join(data_dir, "case")
    for data, mib, c in cases:
        gen = None
        for kind, p in c:
            if kind == "c":
                cmd = [bench, "--case", p["case"], "--data", data, "--mib", f"{mib:g}",
                       "--dir", case_dir]
                for k in ("codec", "level", "threads"):
                    if k in p:
                        cmd += [f"--{k}", str(p[k])]
            else:
                if gen is None:
                    path = os.path.join(data_dir, f"input-{data}-{mib:g}MiB.bin")
                    gen = run_json([bench, "--case", "gen", "--data", data, "--mib", f"{mib:g}",
                                    "--out", path], args.timeout)
                cmd = [PY, os.path.join(HERE, "bench_python.py"), "--case", p["case"],
                       "--input", gen["path"], "--dtype", gen["dtype"],
                       "--shape", ",".join(str(x) for x in gen["shape"]),
                       "--data", data, "--mib", f"{mib:g}", "--dir", case_dir]
                if "level" in p:
                    cmd += ["--level", str(p["level"])]
            if args.cold:
                cmd.append("--cold")
            runs, waited = [], 0.0
            try:
                for _ in range(args.reps):
                    if args.wait_idle > 0:
                        waited += wait_idle(args.wait_idle)
                    shutil.rmtree(case_dir, ignore_errors=True)
                    os.makedirs(case_dir)
                    try:
                        runs.append(run_measured(cmd, args.timeout))
                    finally:
                        shutil.rmtree(case_dir, ignore_errors=True)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                log(f"  FAILED {data} {mib:g} MiB {p}: {e}")
                continue
            r = best_of(runs)
            r["label"] = label(r)
            r["waited_s"] = waited
            results.append(r)
            cold = r.get("restore_cold_mbps")
            busy = f"  others used {100 * r['others_cpu']:.0f}% CPU" if r["others_cpu"] > 0.05 else ""
            log(f"  {data:4} {mib:5g} MiB  {r['label']:26} ratio {r['ratio'] or 0:6.3f}  "
                f"save {r['save_mbps']:8.1f} MB/s  restore {r['restore_warm_mbps'] or 0:8.1f}"
                f" (cold {cold or 0:8.1f}) MB/s  +{r['save_extra_mib']:.0f}/"
                f"+{r['restore_extra_mib']:.0f} MiB  [{r['wall_s']} s]{busy}")
        if gen:
            os.unlink(gen["path"])
    return results


# ------------------------------------------------------------------- output

CSV_FIELDS = ["data", "mib", "label", "method", "codec", "level", "threads", "dtype", "shape",
              "chunk", "bytes", "file_bytes", "ratio", "save_s", "save_mbps", "restore_warm_s",
              "restore_warm_mbps", "restore_cold_s", "restore_cold_mbps", "save_write_s",
              "save_fsync_s", "restore_read_s", "save_extra_mib", "restore_extra_mib", "cold",
              "reps", "wall_s", "waited_s", "others_cpu", "memcpy_s", "blocked_first_s",
              "blocked_median_s", "blocked_vs_memcpy", "blocked_median_vs_memcpy",
              "blocked_first_vs_memcpy"]


def write_csv(path, results):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in results:
            row = dict(r)
            row["shape"] = "x".join(str(x) for x in r["shape"])
            row["chunk"] = "x".join(str(x) for x in r["chunk"]) if r["chunk"] else ""
            w.writerow(row)


def fmt(v, nd=1):
    if v is None:
        return "-"
    if v >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{nd}f}"


def rel(v, base):
    if v is None or not base:
        return "-"
    return f"{v / base:.2f}x"


def table(results):
    """One Markdown table; throughputs also relative to h5py on the same data."""
    head = ["data", "MiB", "method", "ratio", "save MB/s", "vs h5py", "restore MB/s", "vs h5py",
            "cold restore MB/s", "vs h5py", "save +MiB", "restore +MiB", "others' CPU"]
    rows = []
    groups = []
    for r in results:
        key = (r["data"], r["mib"])
        if key not in groups:
            groups.append(key)
    for key in groups:
        rs = [r for r in results if (r["data"], r["mib"]) == key]
        base = next((r for r in rs if r["method"] == "h5py"), None)
        for r in rs:
            b = base or {}
            rows.append([
                DATA_LABEL.get(r["data"], r["data"]), f"{r['mib']:g}",
                r["label"] + (" (†)" if r.get("others_cpu", 0) > 0.10 else ""),
                fmt(r["ratio"], 3) if r["ratio"] else "-",
                fmt(r["save_mbps"]), rel(r["save_mbps"], b.get("save_mbps")),
                fmt(r["restore_warm_mbps"]), rel(r["restore_warm_mbps"], b.get("restore_warm_mbps")),
                fmt(r.get("restore_cold_mbps")),
                rel(r.get("restore_cold_mbps"), b.get("restore_cold_mbps")),
                fmt(r["save_extra_mib"], 0), fmt(r["restore_extra_mib"], 0),
                f"{100 * r.get('others_cpu', 0):.0f}%",
            ])
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def find(results, data, mib, **kw):
    for r in results:
        if r["data"] == data and r["mib"] == mib and all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def targets(results):
    """Issue 3's targets, per data set, from the measured numbers (None when not measured)."""
    out = []
    groups = sorted({(r["data"], r["mib"]) for r in results},
                    key=lambda k: ([d for d, _ in DATASETS].index(k[0]), k[1]))
    for data, mib in groups:
        h5 = find(results, data, mib, method="h5py")
        raw = find(results, data, mib, method="write+fsync")
        t = {"data": data, "mib": mib}

        def best(codec, level):
            rs = [r for r in results if r["data"] == data and r["mib"] == mib and
                  r["method"] == "brine" and r["codec"] == codec and r["level"] == level]
            return max(rs, key=lambda r: r["threads"]) if rs else None

        isal = best("isal", 1)
        ldf = best("libdeflate", 1)
        none = best("none", 0)
        if h5 and isal:
            t["isal1_save_vs_h5py"] = isal["save_mbps"] / h5["save_mbps"]
            t["isal1_size_vs_h5py"] = isal["file_bytes"] / h5["file_bytes"]
            t["isal1_restore_vs_h5py"] = isal["restore_warm_mbps"] / h5["restore_warm_mbps"]
            t["isal1_restore_gbps"] = isal["restore_warm_mbps"] / 1000
            if isal.get("restore_cold_mbps") and h5.get("restore_cold_mbps"):
                t["isal1_cold_restore_vs_h5py"] = isal["restore_cold_mbps"] / h5["restore_cold_mbps"]
                t["isal1_cold_restore_gbps"] = isal["restore_cold_mbps"] / 1000
        if h5 and ldf:
            t["libdeflate1_save_vs_h5py"] = ldf["save_mbps"] / h5["save_mbps"]
            t["libdeflate1_size_vs_h5py"] = ldf["file_bytes"] / h5["file_bytes"]
        if none and raw:
            t["none_vs_write_fsync"] = none["save_mbps"] / raw["save_mbps"]
        if raw:
            # The disk's limit for a save, in input MB/s: write+fsync of the file's bytes.
            for codec, level in (("isal", 1), ("libdeflate", 1), ("zlib", 1)):
                b = best(codec, level)
                if b:
                    t[f"{codec}{level}_disk_limit_mbps"] = raw["save_mbps"] * b["ratio"]
                    t[f"{codec}{level}_save_mbps"] = b["save_mbps"]
                    io = (b["save_write_s"] or 0) + (b["save_fsync_s"] or 0)
                    if b["save_s"] > io:
                        t[f"{codec}{level}_cpu_phase_mbps"] = b["bytes"] / 1e6 / (b["save_s"] - io)
        for codec, level in (("isal", 1), ("libdeflate", 1), ("zlib", 1), ("zlib", 6)):
            t1 = find(results, data, mib, method="brine", codec=codec, level=level, threads=1)
            t2 = find(results, data, mib, method="brine", codec=codec, level=level, threads=2)
            if t1 and t2:
                t[f"{codec}{level}_scaling_1to2"] = t2["save_mbps"] / t1["save_mbps"]
        # Issue 6: brine_save_async blocks the caller <= 1.5x a single-threaded memcpy.
        a = find(results, data, mib, method="brine-async")
        if a:
            t["async_blocked_vs_memcpy"] = a["blocked_vs_memcpy"]
            t["async_blocked_median_vs_memcpy"] = a["blocked_median_vs_memcpy"]
            t["async_first_call_vs_memcpy"] = a["blocked_first_vs_memcpy"]
        out.append(t)
    return out


def targets_text(ts):
    lines = []
    for t in ts:
        parts = [f"{t['data']} {t['mib']:g} MiB:"]
        for k, v in t.items():
            if k in ("data", "mib"):
                continue
            parts.append(f"{k}={v:.2f}")
        lines.append("  " + " ".join(parts))
    return "\n".join(lines)


def chart(results, path, data, mib):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs = [r for r in results if r["data"] == data and r["mib"] == mib]
    if not rs:
        return None
    rs.sort(key=lambda r: r["save_mbps"])
    names = [r["label"] for r in rs]
    colours = []
    for r in rs:
        colours.append({"brine": "#1f77b4", "hdf5-c": "#ff7f0e", "h5py": "#d62728",
                        "pickle-zlib": "#9467bd", "savez": "#8c564b"}.get(r["method"], "#7f7f7f"))
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.32 * len(rs) + 1.6), sharey=True)
    y = range(len(rs))
    axes[0].barh(list(y), [r["save_mbps"] for r in rs], color=colours)
    axes[0].set_title("save (write + fsync), MB/s of input")
    h = 0.4
    axes[1].barh([i + h / 2 for i in y], [r["restore_warm_mbps"] or 0 for r in rs], height=h,
                 color=colours, label="warm (page cache)")
    if any(r.get("restore_cold_mbps") for r in rs):
        axes[1].barh([i - h / 2 for i in y], [r.get("restore_cold_mbps") or 0 for r in rs],
                     height=h, color=colours, alpha=0.45, hatch="//", label="cold (caches dropped)")
        from matplotlib.patches import Patch
        axes[1].legend(handles=[Patch(color="#555555", label="warm (page cache)"),
                                Patch(facecolor="#555555", alpha=0.45, hatch="//",
                                      label="cold (caches dropped)")],
                       loc="lower right", fontsize=8)
    axes[1].set_title("restore, MB/s of input")
    axes[0].set_yticks(list(y))
    axes[0].set_yticklabels(names, fontsize=8)
    for ax in axes:
        ax.set_xscale("log")
        ax.grid(axis="x", which="both", alpha=0.3)
    base = next((r for r in rs if r["method"] == "h5py"), None)
    if base:
        axes[0].axvline(base["save_mbps"], color="#d62728", ls="--", lw=0.8)
        axes[1].axvline(base["restore_warm_mbps"], color="#d62728", ls="--", lw=0.8)
    fig.suptitle(f"{DATA_LABEL.get(data, data)}, {mib:g} MiB "
                 f"(dashed: h5py gzip+shuffle baseline; log scale)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_heat2d(args):
    """bench_heat2d.py's table and results (None when it failed)."""
    import shlex
    import tempfile
    out = tempfile.NamedTemporaryFile(suffix=".json", delete=False)
    out.close()
    cmd = [PY, os.path.join(HERE, "bench_heat2d.py"), "--build-dir", args.build_dir,
           "--data-dir", args.data_dir, "--json", out.name] + shlex.split(args.heat2d_args)
    log(f"run.py: {' '.join(cmd)}")
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    try:
        if p.returncode != 0:
            log(f"run.py: bench_heat2d.py failed ({p.returncode})")
            return None
        with open(out.name) as f:
            res = json.load(f)
        res["table"] = p.stdout.strip()
        return res
    finally:
        os.unlink(out.name)


# --------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"),
                    help="where bench_brine was built (default: build/)")
    ap.add_argument("--data-dir", default=None,
                    help="scratch directory for the files (default: BUILD_DIR/bench-data); "
                         "put it on the disk you want to measure")
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--quick", action="store_true",
                    help="the default sizes: 16/64/256 MiB float64, 64 MiB for the others (scale 1)")
    ap.add_argument("--scale", type=float,
                    default=float(os.environ.get("BRINE_BENCH_SCALE", "1")),
                    help="multiply every size (4: up to 1 GiB); env BRINE_BENCH_SCALE")
    ap.add_argument("--methods", default=None,
                    help=f"comma-separated subset of {','.join(METHOD_GROUPS)}")
    ap.add_argument("--data", default=None, help="comma-separated subset of f64,f32,i64,rand")
    ap.add_argument("--threads", default="1,2", help="brine thread counts (default 1,2)")
    ap.add_argument("--no-cold", dest="cold", action="store_false",
                    help="skip the cold restore (drop_caches needs root)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per case")
    ap.add_argument("--reps", type=int, default=1,
                    help="runs per case; each throughput is the best of them (default 1)")
    ap.add_argument("--heat2d", action="store_true",
                    help="also run benchmarks/bench_heat2d.py: apps/heat2d with no, synchronous "
                         "and asynchronous checkpoints (a few minutes)")
    ap.add_argument("--heat2d-args", default="",
                    help="extra arguments for bench_heat2d.py, e.g. \"--steps 800 --reps 3\"")
    ap.add_argument("--wait-idle", type=float, default=10,
                    help="before each run, wait up to this many seconds for other processes "
                         "to use < 10%% of the CPUs (0: do not wait; default 10)")
    args = ap.parse_args()
    if args.quick:
        args.scale = 1
    if args.scale <= 0:
        ap.error("--scale must be > 0")
    args.data_dir = args.data_dir or os.path.join(args.build_dir, "bench-data")
    bench = os.path.join(args.build_dir, "benchmarks", "bench_brine")
    if not os.access(bench, os.X_OK):
        log(f"run.py: {bench} not found: build first (scripts/run-benchmarks.sh does)")
        return 2
    os.makedirs(args.data_dir, exist_ok=True)
    os.makedirs(args.out_dir, exist_ok=True)

    info = machine_info(args.data_dir, bench)
    codecs = info.get("codecs", {"zlib": True, "none": True})
    if args.cold and os.geteuid() != 0:
        log("run.py: not root: cold restores cannot drop the page cache; they will be warm")
    log(f"run.py: {info['cpu']}, {info['nproc']} CPUs, {info['mem_gib']} GiB; "
        f"codecs built in: {', '.join(k for k, v in codecs.items() if v)}; "
        f"scale {args.scale:g}; data in {args.data_dir}")
    t0 = time.monotonic()
    results = run_cases(args, bench, plan(args, codecs))
    info["elapsed_s"] = round(time.monotonic() - t0, 1)
    info["scale"] = args.scale
    info["cold"] = sorted({r["cold"] for r in results if r.get("restore_cold_s")})

    ts = targets(results)
    heat2d = None
    if args.heat2d:
        heat2d = run_heat2d(args)
    with open(os.path.join(args.out_dir, "results.json"), "w") as f:
        json.dump({"machine": info, "results": results, "targets": ts, "heat2d": heat2d}, f,
                  indent=1)
    write_csv(os.path.join(args.out_dir, "results.csv"), results)
    md = table(results)
    with open(os.path.join(args.out_dir, "table.md"), "w") as f:
        f.write(md + "\n")

    f64 = sorted({r["mib"] for r in results if r["data"] == "f64"})
    png = None
    if f64:
        png = chart(results, os.path.join(args.out_dir, f"chart-f64-{f64[-1]:g}MiB.png"),
                    "f64", f64[-1])
    print(md)
    if any(r.get("others_cpu", 0) > 0.10 for r in results):
        print("(†) other processes used more than 10% of the CPUs during that case: "
              "its numbers are disturbed")
    print("\nissue 3 targets (ratios; *_vs_h5py are throughput ratios, *_size_* file-size ratios;"
          " async_* are issue 6's blocked time / memcpy time):")
    print(targets_text(ts))
    if heat2d:
        print("\nheat2d (issue 6: asynchronous checkpoints within 3% of none):")
        print(heat2d["table"])
    print(f"\n{len(results)} cases in {info['elapsed_s']} s; results in {args.out_dir}"
          + (f"; chart {png}" if png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
