#!/usr/bin/env bash
# The end-to-end demo of brine with apps/heat2d:
#   (a) run heat2d to completion into A, writing its final field to A.bin;
#   (b) run it again into B, slowed down, kill it with SIGKILL once at least two
#       checkpoints exist, restart it with the same arguments: it must resume
#       from a step > 0 and finish, writing B.bin;
#   (c) A.bin and B.bin must be bit-identical;
#   (d) run it into C, send SIGUSR1 once a checkpoint exists (what Slurm's
#       --signal sends before a time limit): it must checkpoint the step it
#       reached and exit 0; the restart resumes from that step and C.bin must
#       equal A.bin too;
#   (e) plot the newest checkpoint of B to <build>/heat2d.png.
#
# Usage: scripts/demo.sh [BUILD_DIR]      (default ./build; it builds nothing)
# Everything goes under BUILD_DIR/demo-heat2d, emptied first.  Knobs, from the
# environment: NX NY STEPS EVERY KEEP SLEEP_MS TIMEOUT (seconds to wait for checkpoints),
# and OpenMP's OMP_NUM_THREADS, OMP_WAIT_POLICY (default passive here).
set -euo pipefail

NX=${NX:-256}
NY=${NY:-256}
STEPS=${STEPS:-3000}
EVERY=${EVERY:-300}
KEEP=${KEEP:-3}
SLEEP_MS=${SLEEP_MS:-1}
TIMEOUT=${TIMEOUT:-30}
PYTHON=/usr/bin/python3   # Debian's, with numpy and matplotlib; not whatever is first on PATH
# heat2d sleeps between steps; libgomp's default busy-waiting would burn that
# time (and, on a loaded machine, stall every parallel region): let idle threads sleep.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

die() { echo "demo: FAIL: $*" >&2; exit 1; }
say() { printf '\n== %s\n' "$*"; }
indent() { sed 's/^/   | /'; }

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-./build}
[ -d "$build" ] || die "build directory $build does not exist (configure and build first)"
build=$(cd "$build" && pwd)
heat2d=$build/apps/heat2d
[ -x "$heat2d" ] || die "$heat2d not found: build the heat2d target first"
[ -x "$PYTHON" ] || die "$PYTHON not found"

work=$build/demo-heat2d
rm -rf "$work"
mkdir -p "$work"
args=(--nx "$NX" --ny "$NY" --steps "$STEPS" --every "$EVERY" --keep "$KEEP")
start=$SECONDS

# Never leave a heat2d of ours running behind us.
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid" 2>/dev/null || true
    { wait "$pid"; } 2>/dev/null || true
  fi
}
trap cleanup EXIT

shopt -s nullglob
count_ckpts() { local f=("$1"/ckpt-*.h5); echo "${#f[@]}"; }

# --- (a) ----------------------------------------------------------------------
say "(a) uninterrupted run into A: heat2d ${args[*]}"
"$heat2d" "${args[@]}" --dir "$work/A" --out "$work/A.bin" >"$work/A.log" 2>&1 \
  || { indent <"$work/A.log"; die "the uninterrupted run failed"; }
indent <"$work/A.log"

# --- (b) ----------------------------------------------------------------------
say "(b) run into B with --sleep-ms $SLEEP_MS, killed with SIGKILL after two checkpoints"
"$heat2d" "${args[@]}" --dir "$work/B" --out "$work/B.bin" --sleep-ms "$SLEEP_MS" \
  >"$work/B1.log" 2>&1 &
pid=$!
deadline=$((SECONDS + TIMEOUT))
while [ "$(count_ckpts "$work/B")" -lt 2 ]; do
  if ! kill -0 "$pid" 2>/dev/null; then
    indent <"$work/B1.log"
    die "heat2d exited before two checkpoints existed in B (raise STEPS or SLEEP_MS)"
  fi
  [ "$SECONDS" -lt "$deadline" ] || die "no two checkpoints in B after ${TIMEOUT}s"
  sleep 0.05
done
# The group's redirection also silences bash's own "Killed" job report.
rc=0
{ kill -9 "$pid" && wait "$pid"; } 2>/dev/null || rc=$?
pid=""
[ "$rc" -eq 137 ] || die "heat2d was not killed by SIGKILL (exit status $rc): raise STEPS or SLEEP_MS"
echo "killed heat2d (exit status $rc); its output so far:"
indent <"$work/B1.log"
echo "what is in B now:"
ls -la "$work/B" | indent

say "(b) restart with the same arguments"
"$heat2d" "${args[@]}" --dir "$work/B" --out "$work/B.bin" --sleep-ms "$SLEEP_MS" \
  >"$work/B2.log" 2>&1 || { indent <"$work/B2.log"; die "the restarted run failed"; }
indent <"$work/B2.log"
resumed=$(sed -n 's/^resumed from step \([0-9][0-9]*\)$/\1/p' "$work/B2.log")
[ -n "$resumed" ] || die "the restarted run did not print 'resumed from step S'"
[ "$resumed" -gt 0 ] || die "the restarted run resumed from step $resumed, expected > 0"

# --- (c) ----------------------------------------------------------------------
say "(c) compare the final fields"
expected=$((NX * NY * 8))
for f in "$work/A.bin" "$work/B.bin"; do
  [ -f "$f" ] || die "$f was not written"
  size=$(stat -c %s "$f")
  [ "$size" -eq "$expected" ] || die "$f holds $size bytes, expected $expected"
done
if ! cmp "$work/A.bin" "$work/B.bin"; then
  die "the killed-and-resumed run differs from the uninterrupted one ($work/A.bin vs $work/B.bin)"
fi
echo "A.bin and B.bin are bit-identical ($expected bytes)"

# --- (d) ----------------------------------------------------------------------
say "(d) run into C, stopped with SIGUSR1 after a checkpoint: it saves and exits 0"
"$heat2d" "${args[@]}" --dir "$work/C" --out "$work/C.bin" --sleep-ms "$SLEEP_MS" \
  >"$work/C1.log" 2>&1 &
pid=$!
deadline=$((SECONDS + TIMEOUT))
while [ "$(count_ckpts "$work/C")" -lt 1 ]; do
  if ! kill -0 "$pid" 2>/dev/null; then
    indent <"$work/C1.log"
    die "heat2d exited before a checkpoint existed in C (raise STEPS or SLEEP_MS)"
  fi
  [ "$SECONDS" -lt "$deadline" ] || die "no checkpoint in C after ${TIMEOUT}s"
  sleep 0.05
done
kill -USR1 "$pid"
rc=0
wait "$pid" || rc=$?
pid=""
indent <"$work/C1.log"
[ "$rc" -eq 0 ] || die "heat2d did not exit 0 after SIGUSR1 (exit status $rc)"
stopped=$(sed -n 's/^signal received: stopped at step \([0-9][0-9]*\),.*/\1/p' "$work/C1.log")
[ -n "$stopped" ] || die "heat2d did not say at which step it stopped"
ckpt=$(printf '%s/ckpt-%012d.h5' "$work/C" "$stopped")
[ -f "$ckpt" ] || die "no checkpoint of step $stopped in C"
echo "stopped at step $stopped, exit status 0, $(basename "$ckpt") published"
"$heat2d" "${args[@]}" --dir "$work/C" --out "$work/C.bin" >"$work/C2.log" 2>&1 \
  || { indent <"$work/C2.log"; die "the run restarted after SIGUSR1 failed"; }
indent <"$work/C2.log"
grep -qx "resumed from step $stopped" "$work/C2.log" || die "the restart did not resume from step $stopped"
cmp "$work/A.bin" "$work/C.bin" || die "the run stopped by SIGUSR1 and resumed differs from A"
echo "A.bin and C.bin are bit-identical"

# --- (e) ----------------------------------------------------------------------
say "(e) plot the newest checkpoint of B"
"$PYTHON" "$src/apps/heat2d/plot_field.py" "$work/B" -o "$build/heat2d.png" | indent

say "summary"
cat <<EOF
   grid ${NY} x ${NX}, ${STEPS} steps, checkpoint every ${EVERY}, keep ${KEEP}
   run A: uninterrupted                      -> $work/A.bin
   run B: killed (SIGKILL), resumed from step ${resumed} -> $work/B.bin
   A.bin == B.bin: bit-identical
   run C: SIGUSR1 at step ${stopped}, exit 0, resumed -> $work/C.bin == A.bin
   plot: $build/heat2d.png
   demo: OK in $((SECONDS - start)) s
EOF
