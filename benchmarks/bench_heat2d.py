#!/usr/bin/python3
"""What checkpointing costs a running simulation: apps/heat2d with no
checkpoints, with synchronous ones (brine_save) and with asynchronous ones
(--async: brine_save_async), the same grid and steps (docs/performance.md,
"Asynchronous saves").

Every run starts from a fresh directory and ends with heat2d's checkpoint of
its final state (it always writes one), so "none" has that one checkpoint
and the others have it plus one every --every steps.  The modes run
interleaved (none, sync, async, none, ...), --reps times each; the table
gives each mode's median wall time, its overhead against the median of
"none", and the median of the overheads against the "none" run of the same
round (which cancels most of the slow drifts of this virtual machine's
speed).  Before
each run it waits (up to --wait-idle seconds) for the other processes to
leave the CPUs idle, and a run during which they used more than
--max-others of the CPUs is thrown away and run again (up to --retries
times): on 2 cores, another program's compiler or test run changes a
30-second run by more than the few percent being measured.  Extra
variants put BRINE_* environment variables in front of a mode, e.g.
--variant async:BRINE_THREADS=1.

Run it with /usr/bin/python3; usually through benchmarks/run.py --heat2d
(scripts/run-benchmarks.sh --heat2d), which builds heat2d first.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import cpu_jiffies, wait_idle  # noqa: E402  (the suite driver's CPU accounting)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_one(heat2d, args, env_extra, data_dir, timeout):
    """One heat2d run in a fresh directory: wall seconds, checkpoints written, others' CPU share."""
    d = os.path.join(data_dir, "heat2d-run")
    shutil.rmtree(d, ignore_errors=True)
    cmd = [heat2d] + args + ["--dir", d]
    env = dict(os.environ)
    env.update(env_extra)
    busy0, total0 = cpu_jiffies()
    ru0 = os.times()
    t = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.monotonic() - t
    ru1 = os.times()
    busy1, total1 = cpu_jiffies()
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    saved = sum(1 for ln in p.stdout.splitlines() if ln.endswith(" saved"))
    done = [ln for ln in p.stdout.splitlines() if ln.startswith("done:")]
    shutil.rmtree(d, ignore_errors=True)
    hz = os.sysconf("SC_CLK_TCK")
    ours = (ru1.children_user - ru0.children_user + ru1.children_system - ru0.children_system) * hz
    others = max(0.0, (busy1 - busy0) - ours) / max(1, total1 - total0)
    return {"wall_s": wall, "saved": saved, "done": done[0] if done else "",
            "cpu_s": (ru1.children_user - ru0.children_user) + (ru1.children_system - ru0.children_system),
            "others_cpu": others}


def parse_variant(text):
    """'async:BRINE_THREADS=1,FOO=2' -> ('async', {'BRINE_THREADS': '1', 'FOO': '2'}, label)."""
    mode, _, envs = text.partition(":")
    if mode not in ("none", "sync", "async"):
        raise ValueError(f"variant {text!r}: the mode must be none, sync or async")
    env = {}
    for kv in filter(None, envs.split(",")):
        k, _, v = kv.partition("=")
        env[k] = v
    return mode, env, text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--data-dir", default=None, help="default: BUILD_DIR/bench-data")
    ap.add_argument("--nx", type=int, default=4096)
    ap.add_argument("--ny", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--every", type=int, default=400, help="checkpoint every N steps")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", default="2", help="OMP_NUM_THREADS of the simulation")
    ap.add_argument("--variant", action="append", default=[],
                    help="extra mode with environment, e.g. async:BRINE_THREADS=1 (repeatable)")
    ap.add_argument("--wait-idle", type=float, default=120,
                    help="before each run, wait up to this many seconds for idle CPUs (0: do not)")
    ap.add_argument("--max-others", type=float, default=0.05,
                    help="throw away a run during which others used more of the CPUs than this")
    ap.add_argument("--retries", type=int, default=5, help="reruns of a disturbed run at most")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--json", default=None, help="write the results here too")
    args = ap.parse_args()
    heat2d = os.path.join(args.build_dir, "apps", "heat2d")
    if not os.access(heat2d, os.X_OK):
        log(f"bench_heat2d.py: {heat2d} not found: build first")
        return 2
    data_dir = args.data_dir or os.path.join(args.build_dir, "bench-data")
    os.makedirs(data_dir, exist_ok=True)

    base = ["--nx", str(args.nx), "--ny", str(args.ny), "--steps", str(args.steps)]
    mode_args = {"none": ["--every", "0"], "sync": ["--every", str(args.every)],
                 "async": ["--every", str(args.every), "--async"]}
    variants = [("none", {}, "none"), ("sync", {}, "sync"), ("async", {}, "async")]
    variants += [parse_variant(v) for v in args.variant]
    env_common = {"OMP_NUM_THREADS": args.threads}
    with open("/proc/loadavg") as f:
        load_start = f.read().split()[:3]
    log(f"bench_heat2d.py: {args.ny} x {args.nx} grid ({args.nx * args.ny * 8 / 2**20:.0f} MiB "
        f"field), {args.steps} steps, checkpoint every {args.every}, OMP_NUM_THREADS="
        f"{args.threads}, {args.reps} reps; load average {' '.join(load_start)}")
    runs = {label: [] for _, _, label in variants}
    for rep in range(args.reps):
        for mode, env, label in variants:
            e = dict(env_common)
            e.update(env)
            for attempt in range(args.retries + 1):
                if args.wait_idle > 0:
                    wait_idle(args.wait_idle, threshold=0.05)
                r = run_one(heat2d, base + mode_args[mode], e, data_dir, args.timeout)
                r["attempts"] = attempt + 1
                disturbed = r["others_cpu"] > args.max_others
                log(f"  rep {rep + 1} {label:28} {r['wall_s']:7.2f} s  {r['saved']:2d} checkpoints  "
                    f"cpu {r['cpu_s']:6.1f} s  others used {100 * r['others_cpu']:.0f}% CPU"
                    + ("  (disturbed: run again)" if disturbed and attempt < args.retries else ""))
                if not disturbed:
                    break
            runs[label].append(r)
    none = statistics.median(r["wall_s"] for r in runs["none"])
    rows = []
    for _, _, label in variants:
        walls = [r["wall_s"] for r in runs[label]]
        med = statistics.median(walls)
        paired = statistics.median(w / n["wall_s"] - 1 for w, n in zip(walls, runs["none"]))
        rows.append({"variant": label, "median_s": med, "min_s": min(walls), "max_s": max(walls),
                     "walls": walls, "checkpoints": runs[label][0]["saved"],
                     "overhead": med / none - 1, "overhead_paired": paired,
                     "cpu_s": statistics.median(r["cpu_s"] for r in runs[label]),
                     "others_cpu_max": max(r["others_cpu"] for r in runs[label])})
    with open("/proc/loadavg") as f:
        load_end = f.read().split()[:3]
    print(f"| heat2d {args.ny}x{args.nx}, {args.steps} steps | checkpoints | median s | min..max s "
          f"| overhead vs none (medians) | overhead vs none (median of rounds) | CPU s "
          f"| others' CPU (max) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['checkpoints']} | {r['median_s']:.2f} | "
              f"{r['min_s']:.2f}..{r['max_s']:.2f} | {100 * r['overhead']:+.1f}% | "
              f"{100 * r['overhead_paired']:+.1f}% | {r['cpu_s']:.1f} | "
              f"{100 * r['others_cpu_max']:.0f}% |")
    print(f"load average {' '.join(load_start)} at the start, {' '.join(load_end)} at the end")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "load_start": load_start, "load_end": load_end,
                       "results": rows, "runs": runs}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
