#!/usr/bin/env bash
# README command 2: install what is missing, build, and run every test of the
# default tier (C unit tests and the Python suite, all through ctest).
# usage: scripts/run-tests.sh [BUILD_DIR]      BRINE_TEST_LABEL=long runs the long tier too
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-"$root/build"}

bash "$root/scripts/build.sh" "$build"
label=${BRINE_TEST_LABEL:-quick}
ctest --test-dir "$build" -L "$label" --output-on-failure -j "$(nproc)"
