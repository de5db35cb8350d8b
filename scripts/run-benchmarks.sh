#!/usr/bin/env bash
# The benchmark suite (docs/performance.md): install what is missing, build
# into BUILD_DIR (default build/, Release), run benchmarks/run.py.
#
# usage: scripts/run-benchmarks.sh [run.py options...]
#   default: --quick (16/64/256 MiB float64 field, 64 MiB others: a few minutes on 2 cores)
#   --scale 4                     sizes x4 (float64 field up to 1 GiB); env BRINE_BENCH_SCALE too
#   --methods brine,h5py --data f64 --reps 3 --no-cold --data-dir DIR ...   (see run.py --help)
#   --methods async --data f64 --scale 4 --heat2d   asynchronous saves (issue 6): blocked time
#                                 against memcpy, and heat2d with none/sync/async checkpoints
# Environment: BUILD_DIR (default <repo>/build).  Results: benchmarks/results/.
# Run as root for cold restores (it drops the page cache with /proc/sys/vm/drop_caches).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-"$root/build"}
PYTHON=/usr/bin/python3   # Debian's, with numpy, h5py and matplotlib; not whatever is first on PATH

bash "$root/scripts/install-deps.sh"
# A fresh build directory is configured Release; an existing one keeps its
# build type (build.sh uses RelWithDebInfo), so the two do not rebuild each other.
type_arg=()
if [ ! -f "$build/CMakeCache.txt" ]; then
  type_arg=(-DCMAKE_BUILD_TYPE=Release)
fi
cmake -S "$root" -B "$build" "${type_arg[@]}" -DBRINE_BUILD_BENCHMARKS=ON >/dev/null
targets=(bench_brine)
for a in "$@"; do
  if [ "$a" = --heat2d ]; then targets+=(heat2d); fi
done
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"

args=("$@")
if [ ${#args[@]} -eq 0 ]; then
  args=(--quick)
fi
exec "$PYTHON" "$root/benchmarks/run.py" --build-dir "$build" "${args[@]}"
