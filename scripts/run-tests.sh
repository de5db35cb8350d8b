#!/usr/bin/env bash
# README command 2: install what is missing, build, and run every test of the
# default tier (C unit tests, reliability suites, fuzz corpus replay and the
# Python suite, all through ctest); then the same tier again in a build with
# AddressSanitizer and UndefinedBehaviorSanitizer.
# usage: scripts/run-tests.sh [BUILD_DIR]
#   BRINE_TEST_LABEL=long   run the long tier instead (hours)
#   BRINE_NO_SANITIZE=1     skip the sanitizer build (quicker local runs)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-"$root/build"}
label=${BRINE_TEST_LABEL:-quick}
jobs=$(nproc)

bash "$root/scripts/build.sh" "$build"
echo "== tests ($label) in $build"
ctest --test-dir "$build" -L "$label" --output-on-failure -j "$jobs"

if [ "${BRINE_NO_SANITIZE:-0}" != 1 ]; then
  asan="$build-sanitize"
  echo "== tests ($label) with ASan + UBSan in $asan"
  bash "$root/scripts/build.sh" "$asan" -DBRINE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
    -DBRINE_BUILD_BENCHMARKS=OFF
  # HDF5 legitimately attempts huge allocations when it reads damaged metadata.
  ASAN_OPTIONS=${ASAN_OPTIONS:-allocator_may_return_null=1} \
    ctest --test-dir "$asan" -L "$label" --output-on-failure -j "$jobs"
fi
